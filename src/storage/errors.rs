//! The one place storage errors become FTP replies.

use super::StoreError;
use libunftp::options::{Reply, ReplyCode};
use unftp_core::storage::{Error, ErrorKind};

/// Maps a storage error to the libunftp error kind that selects the FTP reply code.
pub fn to_ftp_error(error: StoreError) -> Error {
    // 554 (RFC 3659, section 5): no ErrorKind carries it, so libunftp's
    // `invalid-rest-offset` patch answers 554 when the source is its `InvalidRestOffset`;
    // the kind only sorts the failure in libunftp's metrics (a client error).
    if let StoreError::InvalidRestOffset { offset, len } = error {
        let invalid = libunftp::storage::InvalidRestOffset { offset, len };
        return Error::new(ErrorKind::PermanentFileNotAvailable, invalid);
    }
    // The `storage-reply-text` patch: these say more than their kind's generic text.
    if let Some(text) = own_text(&error) {
        return Error::new(kind_of(&error), libunftp::storage::ReplyText(text));
    }
    Error::new(kind_of(&error), error)
}

/// The reply text of errors the generic one of their kind would misdescribe: an operation the
/// store does not offer is not "File not found", and a storage service that failed tells the
/// client to retry (without S3's own message, which names keys and buckets: that is logged).
fn own_text(error: &StoreError) -> Option<String> {
    match error {
        StoreError::Unsupported(reason) | StoreError::QuotaExceeded(reason) => Some(reason.clone()),
        StoreError::Backend(_) => Some(BACKEND_FAILED.to_owned()),
        StoreError::QuotaUnavailable(_) => Some(QUOTA_UNAVAILABLE.to_owned()),
        _ => None,
    }
}

/// The reply to an upload whose quota could not be checked (the usage store is unreachable).
const QUOTA_UNAVAILABLE: &str = "Quota accounting unavailable; try again later";

/// The reply to a command whose storage service failed or could not be reached.
const BACKEND_FAILED: &str = "Storage service unavailable; try again later";

fn kind_of(error: &StoreError) -> ErrorKind {
    match error {
        StoreError::NotFound | StoreError::NotAFile | StoreError::AlreadyExists => {
            ErrorKind::PermanentFileNotAvailable
        } // 550
        StoreError::Denied(_) | StoreError::NoHome => ErrorKind::PermissionDenied, // 550
        StoreError::NotADirectory => ErrorKind::PermanentDirectoryNotAvailable,    // 550
        StoreError::DirectoryNotEmpty => ErrorKind::PermanentDirectoryNotEmpty,    // 550
        StoreError::NoSpace => ErrorKind::InsufficientStorageSpaceError,           // 452
        StoreError::BadName(_) => ErrorKind::FileNameNotAllowedError,              // 553
        StoreError::Interrupted(_) => ErrorKind::ConnectionClosed,                 // 426
        StoreError::ShuttingDown | StoreError::TooManyTransfers => {
            ErrorKind::TransientFileNotAvailable // 450
        }
        StoreError::Io(_) | StoreError::Backend(_) | StoreError::QuotaUnavailable(_) => {
            ErrorKind::LocalError // 451
        }
        StoreError::Unsupported(_) => ErrorKind::PermanentFileNotAvailable, // 550
        StoreError::QuotaExceeded(_) => ErrorKind::ExceededStorageAllocationError, // 552
        // Only sorts it for the replies Ferry writes itself: libunftp answers 554 (see above).
        StoreError::InvalidRestOffset { .. } => ErrorKind::PermanentFileNotAvailable,
    }
}

/// The reply to a command Ferry answers itself (MFMT, HASH, SITE CHMOD) when it fails: the
/// code and text libunftp gives the same error kind when it answers a built-in command.
pub fn to_reply(error: &StoreError) -> Reply {
    let (code, text) = match kind_of(error) {
        ErrorKind::PermanentFileNotAvailable => (ReplyCode::FileError, "File not found"),
        ErrorKind::PermissionDenied => (ReplyCode::FileError, "Permission denied"),
        ErrorKind::PermanentDirectoryNotAvailable => (ReplyCode::FileError, "Directory not found"),
        ErrorKind::PermanentDirectoryNotEmpty => (ReplyCode::FileError, "Directory not empty"),
        ErrorKind::InsufficientStorageSpaceError => {
            (ReplyCode::OutOfSpace, "Insufficient storage space")
        }
        ErrorKind::FileNameNotAllowedError => (ReplyCode::BadFileName, "File name not allowed"),
        ErrorKind::ConnectionClosed => (ReplyCode::ConnectionClosed, "Connection closed"),
        ErrorKind::ExceededStorageAllocationError => (
            ReplyCode::ExceededStorageAllocation,
            "Exceeded storage allocation",
        ),
        ErrorKind::TransientFileNotAvailable => (ReplyCode::TransientFileError, "File not found"),
        _ => (ReplyCode::LocalError, "Local error"),
    };
    if let Some(own) = own_text(error) {
        return Reply::new_with_string(code, own);
    }
    // A busy server says why: the client should retry, not conclude the file is missing.
    match error {
        StoreError::ShuttingDown | StoreError::TooManyTransfers => {
            Reply::new_with_string(code, error.to_string())
        }
        _ => Reply::new(code, text),
    }
}
