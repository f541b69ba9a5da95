//! The contract between Ferry's storage policy and a place that holds files.
//!
//! [`super::FerryStorage`] owns everything that does not depend on where bytes live:
//! permissions, audit, transfer accounting, and *when* an upload becomes visible. A [`Store`]
//! owns *how*: the local filesystem renames a temporary file; an object store would complete a
//! multipart upload. A second backend implements this trait and inherits the policy unchanged.

use crate::storage::checksum::{Checksum, HashAlgorithm};
use crate::storage::paths::{PathError, UserPath};
use crate::transfer::pace::BudgetExceeded;
use async_trait::async_trait;
use std::fmt::Debug;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;
use tokio::io::{AsyncRead, AsyncWrite};

/// What a store knows about one file or directory.
#[derive(Debug, Clone)]
pub struct Entry {
    pub kind: EntryKind,
    pub len: u64,
    pub modified: Option<SystemTime>,
    /// Unix permission bits (shown in LIST); stores without them report 0o644 / 0o755.
    pub mode: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
    /// A link whose target could not be followed inside the home.
    Symlink,
}

/// Why a storage operation failed. Mapped to FTP replies in one place (`super::errors`).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no such file or directory")]
    NotFound,
    #[error("permission denied: {0}")]
    Denied(String),
    #[error("not a regular file")]
    NotAFile,
    #[error("not a directory")]
    NotADirectory,
    #[error("already exists")]
    AlreadyExists,
    #[error("directory not empty")]
    DirectoryNotEmpty,
    #[error("no space left on device")]
    NoSpace,
    #[error("file name not allowed: {0}")]
    BadName(#[from] PathError),
    #[error("transfer interrupted: {0}")]
    Interrupted(String),
    #[error("the server is shutting down")]
    ShuttingDown,
    #[error("too many transfers in progress; try again later")]
    TooManyTransfers,
    /// A restart offset (REST) past the end of the file, or any offset but 0 on a missing
    /// file (`len` None): honouring it would leave a hole or send nothing.
    #[error("restart offset {offset} is past the end of the file")]
    InvalidRestOffset { offset: u64, len: Option<u64> },
    #[error("not logged in")]
    NoHome,
    /// The object store failed, or could not be reached, after its retries; the text is what
    /// it answered (never a credential).
    #[error("storage service error: {0}")]
    Backend(String),
    /// What this store cannot do (on object storage: MFMT, SITE CHMOD, renaming a large
    /// directory); the text says what and why.
    #[error("{0}")]
    Unsupported(String),
    /// Where usage is kept could not be read or written (451): quotas cannot be checked.
    #[error("quota accounting unavailable: {0}")]
    QuotaUnavailable(String),
    /// An upload or an ALLO past the user's quota (552); the text says which limit.
    #[error("{0}")]
    QuotaExceeded(String),
    #[error("I/O error: {0}")]
    Io(io::Error),
}

impl From<io::Error> for StoreError {
    fn from(error: io::Error) -> Self {
        use io::ErrorKind as Kind;
        if let Some(exceeded) = BudgetExceeded::within(&error) {
            return StoreError::QuotaExceeded(exceeded.0.clone());
        }
        match (error.kind(), error.raw_os_error()) {
            (Kind::NotFound, _) => StoreError::NotFound,
            // cap-std reports a path that leads outside the home (through `..` in a symlink
            // or an absolute link) as PermissionDenied.
            (Kind::PermissionDenied, _) => StoreError::Denied(error.to_string()),
            (Kind::AlreadyExists, _) => StoreError::AlreadyExists,
            (_, Some(libc::ENOSPC | libc::EDQUOT)) => StoreError::NoSpace,
            (_, Some(libc::ENOTEMPTY)) => StoreError::DirectoryNotEmpty,
            (_, Some(libc::ENOTDIR)) => StoreError::NotADirectory,
            (_, Some(libc::EISDIR)) => StoreError::NotAFile,
            (_, Some(libc::ELOOP)) => {
                StoreError::Denied("too many levels of symbolic links".into())
            }
            (_, Some(libc::EROFS)) => StoreError::Denied("read-only filesystem".into()),
            (
                Kind::ConnectionReset
                | Kind::ConnectionAborted
                | Kind::BrokenPipe
                | Kind::UnexpectedEof
                // The data connection moved nothing for `data_timeout`.
                | Kind::TimedOut,
                _,
            ) => StoreError::Interrupted(error.to_string()),
            _ => StoreError::Io(error),
        }
    }
}

/// A directory's entries, read a page at a time.
#[async_trait]
pub trait EntryPages: Send {
    /// The next page of entries (upload temporaries left out, in no particular order); None
    /// once every entry has been given.
    async fn next_page(&mut self) -> Result<Option<Vec<(String, Entry)>>, StoreError>;
}

/// What a listing of a path holds.
pub enum Listing {
    /// A directory: its entries, page by page.
    Dir(Box<dyn EntryPages>),
    /// A file (or anything not a directory): its one entry, under its own name.
    File(String, Entry),
}

/// All entries in one page, for stores that read a directory whole.
struct OnePage(Option<Vec<(String, Entry)>>);

#[async_trait]
impl EntryPages for OnePage {
    async fn next_page(&mut self) -> Result<Option<Vec<(String, Entry)>>, StoreError> {
        Ok(self.0.take())
    }
}

/// Asked once an upload's data has all arrived, just before it is made visible: the policy's
/// last chance to refuse (for instance because the control connection died meanwhile). Asked
/// from whatever thread finishes the upload.
pub trait CommitGate: Send + Sync {
    fn may_commit(&self) -> Result<(), StoreError>;
}

/// What a home holds, as [`Store::measure`] counts it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HomeUsage {
    pub bytes: u64,
    pub files: u64,
}

/// Whether an upload may replace a file already under its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replace {
    Allowed,
    /// Only a new file: of two sessions racing to create one name, one wins and the other gets
    /// [`StoreError::AlreadyExists`] (a user without the `overwrite` permission).
    Never,
}

/// One user's view of a place that holds files. Every path is a [`UserPath`] (already confined
/// lexically); the store must also keep symlinks and the like from leading outside the home.
#[async_trait]
pub trait Store: Send + Sync + Debug + 'static {
    /// Binds the store to the logged-in user's home (absolute), creating it if missing.
    fn enter(&mut self, home: &Path) -> io::Result<()>;

    async fn entry(&self, path: &UserPath) -> Result<Entry, StoreError>;

    /// The entries of a directory, without upload temporaries, in no particular order.
    async fn list(&self, path: &UserPath) -> Result<Vec<(String, Entry)>, StoreError>;

    /// What LIST, NLST and MLSD show: the entries of a directory, page by page, or the one
    /// entry of a file under its own name, as `ls` does. A store that can page through a
    /// directory should, so that listing one of any size holds one page in memory; this
    /// default reads it whole.
    async fn listing(&self, path: &UserPath) -> Result<Listing, StoreError> {
        let entry = self.entry(path).await?;
        if entry.kind == EntryKind::Dir {
            let entries = self.list(path).await?;
            return Ok(Listing::Dir(Box::new(OnePage(Some(entries)))));
        }
        Ok(Listing::File(path.file_name(), entry))
    }

    /// Sends a regular file from `offset` to `out`; an offset past the end of the file is
    /// [`StoreError::InvalidRestOffset`] (at the end, nothing is sent).
    async fn read_into<W>(
        &self,
        path: &UserPath,
        offset: u64,
        out: &mut W,
    ) -> Result<u64, StoreError>
    where
        W: AsyncWrite + Unpin + Send + Sync + ?Sized;

    /// Writes `input` to a staging area and, if it ends cleanly and `gate` agrees, replaces
    /// `path` with it in one atomic step (or, with [`Replace::Never`], creates it only if it is
    /// still absent then). Otherwise nothing under `path` changes, also when this future is
    /// dropped midway (ABOR).
    async fn write_atomically<R>(
        &self,
        path: &UserPath,
        input: &mut R,
        gate: Arc<dyn CommitGate>,
        replace: Replace,
    ) -> Result<u64, StoreError>
    where
        R: AsyncRead + Unpin + Send + ?Sized;

    /// Writes `input` into the existing file `path` from `offset` (REST+STOR). The offset must
    /// be within the file (at most its length): a larger one, or a missing file, is
    /// [`StoreError::InvalidRestOffset`] and nothing is written. A store that cannot write in
    /// place (objects) builds the new file aside and commits it when `gate` agrees.
    async fn write_in_place<R>(
        &self,
        path: &UserPath,
        offset: u64,
        input: &mut R,
        gate: Arc<dyn CommitGate>,
    ) -> Result<u64, StoreError>
    where
        R: AsyncRead + Unpin + Send + ?Sized;

    /// The digest of a regular file, read from start to end (HASH, XCRC...).
    async fn checksum(
        &self,
        path: &UserPath,
        algorithm: HashAlgorithm,
    ) -> Result<Checksum, StoreError>;

    /// Sets the modification time of a regular file (MFMT).
    async fn set_modified(&self, path: &UserPath, time: SystemTime) -> Result<(), StoreError>;

    /// Sets the permission bits of a file or directory (SITE CHMOD); bits above 0o777
    /// (setuid, setgid, sticky) are never set, whatever `mode` holds.
    async fn set_permissions(&self, path: &UserPath, mode: u32) -> Result<(), StoreError>;

    /// Appends `input` to `path` (APPE), creating it if missing. Appends to one file run one
    /// at a time, whatever their number and whichever sessions send them, each one landing
    /// whole after the last. If `input` does not end cleanly, `gate` refuses, or this future is
    /// dropped midway (ABOR), the file is left exactly as it was (one this append created is
    /// removed again).
    async fn append<R>(
        &self,
        path: &UserPath,
        input: &mut R,
        gate: Arc<dyn CommitGate>,
    ) -> Result<u64, StoreError>
    where
        R: AsyncRead + Unpin + Send + ?Sized;

    /// What the whole home holds: its files and their bytes (directories and upload
    /// temporaries not counted; a symlink counts as itself, not what it leads to). Walks the
    /// home or lists every key under it: for quota accounting, measured once and on rescans.
    async fn measure(&self) -> Result<HomeUsage, StoreError>;

    /// Bytes that can still be written where the home lives (AVBL without a quota); None when
    /// the store cannot tell (object storage has no such limit).
    async fn available_space(&self) -> Option<u64> {
        None
    }

    async fn remove_file(&self, path: &UserPath) -> Result<(), StoreError>;
    async fn create_dir(&self, path: &UserPath) -> Result<(), StoreError>;
    async fn remove_dir(&self, path: &UserPath) -> Result<(), StoreError>;
    async fn rename(&self, from: &UserPath, to: &UserPath) -> Result<(), StoreError>;
}
