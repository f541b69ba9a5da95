//! Re-exports storage traits/types from unftp-core.

pub(crate) use unftp_core::storage::{Error, ErrorKind, FEATURE_RESTART, FEATURE_SITEMD5, Metadata, StorageBackend};

// FERRY PATCH (raw-data-socket): storage backends receive the data connection as a boxed
// `AsyncRead`/`AsyncWrite`, which hides the socket, so a backend cannot use sendfile(2) or
// splice(2). While RETR, STOR or APPE runs on a plaintext data connection, its storage call runs
// inside this task-local scope holding the socket's descriptor.
tokio::task_local! {
    pub(crate) static PLAINTEXT_DATA_SOCKET: Option<std::os::fd::RawFd>;
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
