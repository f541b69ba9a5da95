//! Writes into the file everyone sees (APPE, REST+STOR), one at a time per file.
//!
//! An atomic upload never needs this: it writes a private temporary and renames it. An append
//! or a resumed upload writes into the live file, so two at once would interleave or land at
//! the same offset and one would be lost. Each holds an exclusive flock(2) on the file from
//! before it reads the file's length until its last byte is written, or undone. flock rather
//! than fcntl locks, because fcntl locks belong to the process and every session shares one.
//! The lock is waited for on the async side, trying with `LOCK_NB` and sleeping in between,
//! so a waiting transfer holds no thread and stops waiting as soon as it is abandoned (ABOR).

use super::store::StoreError;
use crate::storage::paths::UserPath;
use cap_std::fs::{Dir, MetadataExt, OpenOptions, OpenOptionsExt};
use rustix::fs::FlockOperation;
use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt as StdMetadataExt;
use std::sync::Arc;
use std::time::Duration;

/// First wait before trying a busy lock again; doubled on each try up to
/// [`LOCK_RETRY_MAX_WAIT`]. Short, since most appends are small and end quickly.
const LOCK_RETRY_FIRST_WAIT: Duration = Duration::from_millis(5);

/// Longest wait between two tries: a waiter starts at most this long after the holder ends,
/// and a queue of waiters costs at most a few blocking-pool hops a second each.
const LOCK_RETRY_MAX_WAIT: Duration = Duration::from_millis(100);

/// What the locked file is opened for.
#[derive(Debug, Clone, Copy)]
pub enum LockedWrite {
    /// APPE: create the file if it is missing; write at its end.
    Append,
    /// REST+STOR: the file must exist and be at least `offset` bytes long.
    Resume { offset: u64 },
}

/// A regular file under this process's exclusive flock, opened beneath the home. The lock
/// lasts until `file` and every duplicate of it are closed.
#[derive(Debug)]
pub struct LockedFile {
    pub file: File,
    /// The file's length once the lock was held: where the write starts for an append.
    pub len: u64,
    /// Set when this append created the file: undoing it removes the file again.
    created: bool,
}

/// Opens `path` for `purpose` and waits (without holding a thread) until the lock is ours.
pub async fn lock_for_writing(
    home: Arc<Dir>,
    path: &UserPath,
    purpose: LockedWrite,
) -> Result<LockedFile, StoreError> {
    let mut wait = LOCK_RETRY_FIRST_WAIT;
    loop {
        let (home, path) = (home.clone(), path.clone());
        let attempt = tokio::task::spawn_blocking(move || try_lock(&home, &path, purpose))
            .await
            .map_err(|join_error| StoreError::Io(io::Error::other(join_error)))??;
        match attempt {
            Attempt::Locked(locked) => return Ok(locked),
            Attempt::Busy => {
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(LOCK_RETRY_MAX_WAIT);
            }
            // Replaced or removed while we waited: open what the name holds now.
            Attempt::Moved => {}
        }
    }
}

enum Attempt {
    Locked(LockedFile),
    /// Another writer holds the lock.
    Busy,
    /// The lock was free, but the name no longer leads to the file that was opened.
    Moved,
}

fn try_lock(home: &Dir, path: &UserPath, purpose: LockedWrite) -> Result<Attempt, StoreError> {
    let open = |create_new: bool| {
        let mut options = OpenOptions::new();
        // O_NONBLOCK: opening a FIFO would otherwise wait for a reader; files ignore it.
        options.custom_flags(libc::O_NONBLOCK);
        match purpose {
            // O_APPEND on top of the lock: a writer that ignores flock (another program)
            // still cannot make this append overwrite its bytes.
            LockedWrite::Append => options.append(true).create_new(create_new),
            LockedWrite::Resume { .. } => options.write(true),
        };
        home.open_with(path.relative(), &options)
    };
    let (file, created) = match (open(false), purpose) {
        (Ok(file), _) => (file, false),
        (Err(error), LockedWrite::Append) if error.kind() == io::ErrorKind::NotFound => {
            match open(true) {
                Ok(file) => (file, true),
                // Created by another append meanwhile: append to that one.
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
                    return Ok(Attempt::Moved);
                }
                Err(error) => return Err(error.into()),
            }
        }
        (Err(error), LockedWrite::Resume { offset }) if error.kind() == io::ErrorKind::NotFound => {
            return Err(StoreError::InvalidRestOffset { offset, len: None });
        }
        (Err(error), _) => return Err(error.into()),
    };
    if !file.metadata()?.is_file() {
        return Err(StoreError::NotAFile);
    }
    let file = file.into_std();
    match rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        Err(rustix::io::Errno::WOULDBLOCK) => return Ok(Attempt::Busy),
        Err(error) => return Err(io::Error::from(error).into()),
    }
    // The lock is ours, but while we waited a STOR may have renamed a new file over the name,
    // or a DELE removed it: bytes written to this inode would then be lost.
    if !names_file(home, path, &file)? {
        return Ok(Attempt::Moved);
    }
    let len = file.metadata()?.len();
    if let LockedWrite::Resume { offset } = purpose
        && offset > len
    {
        return Err(StoreError::InvalidRestOffset {
            offset,
            len: Some(len),
        });
    }
    Ok(Attempt::Locked(LockedFile { file, len, created }))
}

/// Whether `path` (beneath `home`) still leads to the open `file`.
fn names_file(home: &Dir, path: &UserPath, file: &File) -> Result<bool, StoreError> {
    let named = match home.metadata(path.relative()) {
        Ok(named) => named,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(error) => return Err(error.into()),
    };
    let open = file.metadata()?;
    Ok((named.dev(), named.ino()) == (StdMetadataExt::dev(&open), StdMetadataExt::ino(&open)))
}

/// An append under way: until [`AppendInProgress::keep`], dropping it truncates the file back
/// to its length before the append (and removes a file the append created), under the lock.
#[derive(Debug)]
pub struct AppendInProgress {
    locked: LockedFile,
    /// For removing a file this append created, if the name still leads to it.
    home: Arc<Dir>,
    path: UserPath,
    kept: bool,
}

impl AppendInProgress {
    pub fn new(locked: LockedFile, home: Arc<Dir>, path: UserPath) -> Self {
        AppendInProgress {
            locked,
            home,
            path,
            kept: false,
        }
    }

    /// A duplicate of the locked file, for the transfer to write with (sharing the lock).
    pub fn writer(&self) -> io::Result<File> {
        self.locked.file.try_clone()
    }

    /// Every byte arrived and the policy agreed: the append stands.
    pub fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for AppendInProgress {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        // Best effort: a failure here (EIO) leaves the partial append, as any write would.
        let _ = self.locked.file.set_len(self.locked.len);
        if self.locked.created
            && self.locked.len == 0
            && names_file(&self.home, &self.path, &self.locked.file).unwrap_or(false)
        {
            // Still under the lock, so no other append can be writing to it; a STOR that
            // renames over the name between the check and here would lose its file, a window
            // of microseconds on a name this session has just created.
            let _ = self.home.remove_file(self.path.relative());
        }
    }
}
