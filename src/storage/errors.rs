//! The one place storage errors become FTP replies.

use super::StoreError;
use unftp_core::storage::{Error, ErrorKind};

/// Maps a storage error to the libunftp error kind that selects the FTP reply code.
pub fn to_ftp_error(error: StoreError) -> Error {
    let kind = match &error {
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
        StoreError::Io(_) => ErrorKind::LocalError, // 451
        // 554 (RFC 3659, section 5): no ErrorKind carries it, so libunftp's
        // `invalid-rest-offset` patch answers 554 when the source is its `InvalidRestOffset`;
        // the kind only sorts the failure in libunftp's metrics (a client error).
        StoreError::InvalidRestOffset { offset, len } => {
            let invalid = libunftp::storage::InvalidRestOffset {
                offset: *offset,
                len: *len,
            };
            return Error::new(ErrorKind::PermanentFileNotAvailable, invalid);
        }
    };
    Error::new(kind, error)
}
