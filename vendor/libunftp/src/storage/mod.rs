//! Re-exports storage traits/types from unftp-core.

pub(crate) use unftp_core::storage::{Error, ErrorKind, FEATURE_RESTART, FEATURE_SITEMD5, Metadata, StorageBackend};

// FERRY PATCH (raw-data-socket): storage backends receive the data connection as a boxed
// `AsyncRead`/`AsyncWrite`, which hides the socket, so a backend cannot use sendfile(2) or
// splice(2). While RETR, STOR or APPE runs on a plaintext data connection, its storage call runs
// inside this task-local scope holding the socket's descriptor.
tokio::task_local! {
    pub(crate) static PLAINTEXT_DATA_SOCKET: Option<std::os::fd::RawFd>;
}

// FERRY PATCH (ascii-type): while RETR, STOR or APPE runs in TYPE A, its storage call runs
// inside this task-local scope set to true.
tokio::task_local! {
    pub(crate) static ASCII_TRANSFER: bool;
}

/// FERRY PATCH (ascii-type): whether the RETR, STOR or APPE being served by the calling task
/// runs in TYPE A: a download then sends each LF as CRLF, an upload stores each CRLF as LF
/// (RFC 959 section 3.1.1.1), which is the storage backend's job. False anywhere else.
pub fn ascii_transfer() -> bool {
    ASCII_TRANSFER.try_with(|ascii| *ascii).unwrap_or(false)
}

/// FERRY PATCH (raw-data-socket): the descriptor of the plaintext data socket of the RETR, STOR
/// or APPE being served by the calling task; None for TLS data connections and anywhere else.
///
/// The descriptor is valid until the storage call returns: a backend that hands it to another
/// thread must duplicate it first. Bytes written to or read from it bypass the boxed stream,
/// which buffers nothing, so the two may be mixed.
pub fn plaintext_data_socket() -> Option<std::os::fd::RawFd> {
    PLAINTEXT_DATA_SOCKET.try_with(|socket| *socket).ok().flatten()
}

// FERRY PATCH (listings-by-backend): upstream built every listing whole in memory and formatted
// MLSD/MLST itself on the async workers (12 MLSDs of 200,000 entries stalled other sessions for
// seconds, 20 unread LISTs held 1.2 GB), and could not say what a user may do with an entry
// (RFC 3659 `perm`). LIST, NLST, MLSD and MLST now all ask the backend's `list_fmt`, inside
// this scope saying which format is wanted; the backend may answer with the whole text, or hand
// over a stream with `stream_listing` that is copied to the data connection after the 150.
tokio::task_local! {
    pub(crate) static LISTING_REQUEST: ListingRequest;
}

/// FERRY PATCH (listings-by-backend): which listing a `list_fmt` call is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListingFormat {
    /// LIST: `ls -l` lines.
    Long,
    /// NLST: bare names.
    Names,
    /// MLSD: RFC 3659 fact lines, one per entry of the directory.
    Mlsd,
    /// MLST: the fact line of the path itself (file or directory), without line break.
    MlstEntry,
}

/// FERRY PATCH (listings-by-backend): a listing request, with the MLST facts the client chose
/// (OPTS MLST).
pub struct ListingRequest {
    /// The listing wanted.
    pub format: ListingFormat,
    /// The MLST facts to write (MLSD, MLST).
    pub facts: Vec<&'static str>,
    /// Set by [`stream_listing`].
    pub(crate) body: std::sync::Mutex<Option<ListingBody>>,
}

/// FERRY PATCH (listings-by-backend): a listing produced while it is sent.
pub type ListingBody = Box<dyn tokio::io::AsyncRead + Send + Unpin>;

impl std::fmt::Debug for ListingRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListingRequest")
            .field("format", &self.format)
            .field("facts", &self.facts)
            .finish_non_exhaustive()
    }
}

impl ListingRequest {
    pub(crate) fn new(format: ListingFormat, facts: Vec<&'static str>) -> Self {
        ListingRequest {
            format,
            facts,
            body: std::sync::Mutex::new(None),
        }
    }

    /// The stream the backend handed over, if any.
    pub(crate) fn take_body(&self) -> Option<ListingBody> {
        self.body.lock().ok().and_then(|mut body| body.take())
    }
}

/// FERRY PATCH (listings-by-backend): the format and facts the current `list_fmt` call is for;
/// None outside a listing (e.g. STAT with a path, which wants `ls -l` lines).
pub fn listing_request() -> Option<(ListingFormat, Vec<&'static str>)> {
    LISTING_REQUEST.try_with(|request| (request.format, request.facts.clone())).ok()
}

/// FERRY PATCH (listings-by-backend): hands over the listing as a stream, sent after the 150;
/// `list_fmt` then returns an empty cursor. False (and `body` dropped) outside a listing.
pub fn stream_listing(body: ListingBody) -> bool {
    LISTING_REQUEST
        .try_with(|request| match request.body.lock() {
            Ok(mut slot) => {
                *slot = Some(body);
                true
            }
            Err(_) => false,
        })
        .unwrap_or(false)
}

// FERRY PATCH (appe-append): upstream served APPE by asking the backend's `metadata` for the
// file's size and then calling `put` at that offset. A backend that refuses the lookup (Ferry
// does without the `list` permission) made the offset 0 and the append an overwrite, and two
// APPEs to one file wrote at the same offset, so one was lost. APPE now calls `put` at offset 0
// inside this scope instead, and the backend appends (atomically, as it sees fit).
tokio::task_local! {
    pub(crate) static APPEND_UPLOAD: bool;
}

/// FERRY PATCH (appe-append): true while the `put` of an APPE is running in the calling task:
/// the backend must append the data to the file (creating it if missing) and ignore the
/// offset, which is 0. False for STOR and anywhere else.
pub fn upload_is_append() -> bool {
    APPEND_UPLOAD.try_with(|append| *append).unwrap_or(false)
}

/// FERRY PATCH (invalid-rest-offset): none of unftp-core's `ErrorKind`s gives 554, RFC 959's
/// "Requested action not taken: invalid REST parameter", the reply for a restart offset the
/// file cannot honour (past its end). A backend returns this as the source of its storage error
/// (`Error::new(kind, InvalidRestOffset { .. })`, the kind chosen for metrics) and the client
/// gets 554 whatever the kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidRestOffset {
    /// The offset REST asked for.
    pub offset: u64,
    /// The file's length, or None when it does not exist.
    pub len: Option<u64>,
}

impl std::fmt::Display for InvalidRestOffset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.len {
            Some(len) => write!(f, "restart offset {} is past the end of the file ({} bytes)", self.offset, len),
            None => write!(f, "restart offset {} on a file that does not exist", self.offset),
        }
    }
}

impl std::error::Error for InvalidRestOffset {}

/// FERRY PATCH (invalid-rest-offset): whether a storage error is an [`InvalidRestOffset`].
pub(crate) fn is_invalid_rest_offset(error: &Error) -> bool {
    std::error::Error::source(error).is_some_and(|source| source.is::<InvalidRestOffset>())
}

/// FERRY PATCH (storage-reply-text): the reply text a backend chose for its error, for failures
/// the kind's generic text would misdescribe ("File not found" for an operation the backend
/// does not offer). A backend returns this as the source of its storage error; the code is
/// still the one the kind gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyText(pub String);

impl std::fmt::Display for ReplyText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ReplyText {}

/// FERRY PATCH (storage-reply-text): the [`ReplyText`] of a storage error, if it has one.
pub(crate) fn reply_text(error: &Error) -> Option<String> {
    std::error::Error::source(error)
        .and_then(|source| source.downcast_ref::<ReplyText>())
        .map(|text| text.0.replace(['\r', '\n'], " "))
}
