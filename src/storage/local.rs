//! The local-filesystem store: every path opened beneath the user's home directory handle.
//!
//! The home is held as a cap-std [`Dir`]; all opens go through it, so `..` and symlinks cannot
//! reach outside the home (cap-std uses `openat2(RESOLVE_BENEATH)` where the kernel has it and
//! resolves component by component otherwise). Uploads are written to a file of their own in
//! the target's directory that gets the final name only when complete: an unnamed one
//! (`O_TMPFILE`) linked in under a name nobody has yet, else a hidden temporary renamed over it.

use super::cached::{self, CachedRead};
use super::checksum::{self, Checksum, HashAlgorithm};
use super::locked_writes::{self, AppendInProgress, LockedWrite};
use super::store::{
    CommitGate, Entry, EntryKind, EntryPages, HomeUsage, Listing, Replace, Store, StoreError,
};
use crate::storage::paths::{UPLOAD_TEMP_PREFIX, UserPath, is_reserved_name};
use crate::transfer;
use async_trait::async_trait;
use cap_std::ambient_authority;
use cap_std::fs::{Dir, MetadataExt, OpenOptions, OpenOptionsExt};
use rustix::fs::{AtFlags, CWD, Mode, OFlags};
use rustix::io::Errno;
use std::collections::HashMap;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt as StdMetadataExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncRead, AsyncWrite};

/// A session's filesystem store. Holds no home until the user has logged in.
#[derive(Debug)]
pub struct LocalStore {
    home: Option<Arc<Dir>>,
    /// How long a transfer may move no byte before it ends (`data_timeout`).
    data_timeout: Duration,
}

impl LocalStore {
    pub fn new(data_timeout: Duration) -> Self {
        LocalStore {
            home: None,
            data_timeout,
        }
    }

    fn home(&self) -> Result<Arc<Dir>, StoreError> {
        self.home.clone().ok_or(StoreError::NoHome)
    }

    /// Runs blocking filesystem work on the home handle off the async runtime.
    async fn blocking<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Dir) -> Result<T, StoreError> + Send + 'static,
    {
        let home = self.home()?;
        tokio::task::spawn_blocking(move || work(&home))
            .await
            .map_err(|join_error| StoreError::Io(io::Error::other(join_error)))?
    }
}

#[async_trait]
impl Store for LocalStore {
    fn enter(&mut self, home: &Path) -> io::Result<()> {
        std::fs::create_dir_all(home)?;
        self.home = Some(open_home(home)?);
        Ok(())
    }

    async fn entry(&self, path: &UserPath) -> Result<Entry, StoreError> {
        if let Some(metadata) = cached::metadata(&*self.home()?, path.relative()) {
            return Ok(entry_from(&metadata));
        }
        let path = path.clone();
        self.blocking(move |home| Ok(entry_from(&home.metadata(path.relative())?)))
            .await
    }

    async fn list(&self, path: &UserPath) -> Result<Vec<(String, Entry)>, StoreError> {
        let path = path.clone();
        self.blocking(move |home| read_entries(&home.open_dir(path.relative())?))
            .await
    }

    /// One stat decides between a directory and the file itself, and the directory is opened
    /// in the same blocking task: a LIST is one hop off the async runtime before its first page.
    async fn listing(&self, path: &UserPath) -> Result<Listing, StoreError> {
        let path = path.clone();
        self.blocking(move |home| {
            let metadata = home.metadata(path.relative())?;
            if !metadata.is_dir() {
                return Ok(Listing::File(path.file_name(), entry_from(&metadata)));
            }
            let dir = home.open_dir(path.relative())?;
            let entries = dir.entries()?;
            Ok(Listing::Dir(Box::new(LocalPages {
                dir: Arc::new(dir),
                entries: Some(entries),
            })))
        })
        .await
    }

    async fn read_into<W>(
        &self,
        path: &UserPath,
        offset: u64,
        out: &mut W,
    ) -> Result<u64, StoreError>
    where
        W: AsyncWrite + Unpin + Send + Sync + ?Sized,
    {
        let home = self.home()?;
        let already_open = match cached::small_file(&home, path.relative(), offset) {
            CachedRead::Content(content) => {
                return Ok(transfer::send_bytes(&content, out, self.data_timeout).await?);
            }
            CachedRead::Open(file) => Some(file),
            CachedRead::Unanswered => None,
        };
        let path = path.clone();
        let open = move || {
            if let Some(file) = already_open {
                refuse_offset_past_end(offset, file.metadata()?.len())?;
                return Ok(file);
            }
            let file = open_regular_file(&home, &path)?;
            refuse_offset_past_end(offset, file.metadata()?.len())?;
            Ok(file)
        };
        transfer::send_file(open, offset, out, self.data_timeout).await
    }

    async fn write_atomically<R>(
        &self,
        path: &UserPath,
        input: &mut R,
        gate: Arc<dyn CommitGate>,
        replace: Replace,
    ) -> Result<u64, StoreError>
    where
        R: AsyncRead + Unpin + Send + ?Sized,
    {
        let (parent, name) = path.split_parent().ok_or(StoreError::NotAFile)?;
        let (home, name) = (self.home()?, name.to_owned());
        // The upload's own file beside the target. From here until `commit`, dropping it (an
        // error, ABOR, a disconnect) deletes the file; an unnamed one needs nothing deleted,
        // even after a crash.
        let open = move || {
            let dir = home.open_dir(parent.relative())?;
            let target = dir.metadata(&name);
            if target.as_ref().is_ok_and(|m| m.is_dir()) {
                return Err(StoreError::NotAFile);
            }
            // A new name: an unnamed file, linked in at commit. Replacing a file: a named
            // temporary renamed over it (an unnamed one would need a name and a rename too).
            if target.is_err()
                && let Some(file) = create_unnamed(&dir)?
            {
                let linkable = file.try_clone()?;
                return Ok((
                    file,
                    TemporaryUpload::new(dir, Temporary::Unnamed(linkable), name),
                ));
            }
            let (temp_name, file) = create_temporary(&dir)?;
            let upload = TemporaryUpload::new(dir, Temporary::Named(temp_name), name);
            Ok((file.into_std(), upload))
        };
        // Every byte is written: replace the target, if the client is still there to see it.
        let finish = move |temp: TemporaryUpload| {
            gate.may_commit()?;
            temp.commit(replace)
        };
        transfer::receive_into_file(input, 0, open, finish, self.data_timeout).await
    }

    async fn write_in_place<R>(
        &self,
        path: &UserPath,
        offset: u64,
        input: &mut R,
        // Written in place: what arrived stays, as the client expects of a resumed upload.
        _gate: Arc<dyn CommitGate>,
    ) -> Result<u64, StoreError>
    where
        R: AsyncRead + Unpin + Send + ?Sized,
    {
        // Locked like an append, so that a resumed upload and an append never interleave.
        let locked =
            locked_writes::lock_for_writing(self.home()?, path, LockedWrite::Resume { offset })
                .await?;
        let open = move || Ok((locked.file.try_clone()?, locked));
        transfer::receive_into_file(input, offset, open, |_locked| Ok(()), self.data_timeout).await
    }

    async fn append<R>(
        &self,
        path: &UserPath,
        input: &mut R,
        gate: Arc<dyn CommitGate>,
    ) -> Result<u64, StoreError>
    where
        R: AsyncRead + Unpin + Send + ?Sized,
    {
        let home = self.home()?;
        let locked =
            locked_writes::lock_for_writing(home.clone(), path, LockedWrite::Append).await?;
        let offset = locked.len;
        // From here until `keep`, dropping it (an error, ABOR, a disconnect) truncates the file
        // back to `offset`; the transfer drops it only after its last write.
        let append = AppendInProgress::new(locked, home, path.clone());
        let open = move || Ok((append.writer()?, append));
        let finish = move |append: AppendInProgress| {
            gate.may_commit()?;
            append.keep();
            Ok(())
        };
        transfer::receive_into_file(input, offset, open, finish, self.data_timeout).await
    }

    async fn checksum(
        &self,
        path: &UserPath,
        algorithm: HashAlgorithm,
    ) -> Result<Checksum, StoreError> {
        let path = path.clone();
        self.blocking(move |home| {
            let file = open_regular_file(home, &path)?;
            Ok(checksum::digest_reader(file, algorithm)?)
        })
        .await
    }

    async fn set_modified(&self, path: &UserPath, time: SystemTime) -> Result<(), StoreError> {
        let path = path.clone();
        self.blocking(move |home| {
            // futimens(2) on the opened file: the time lands on what was opened beneath the
            // home, never on a path looked up again.
            let file = open_regular_file(home, &path)?;
            Ok(file.set_times(std::fs::FileTimes::new().set_modified(time))?)
        })
        .await
    }

    async fn set_permissions(&self, path: &UserPath, mode: u32) -> Result<(), StoreError> {
        let path = path.clone();
        let permissions = std::fs::Permissions::from_mode(mode & 0o777);
        self.blocking(move |home| {
            // cap-std changes the mode of what the path leads to beneath the home (an O_PATH
            // handle opened there, then chmod through /proc/self/fd, else fchmod): a symlink
            // that leads outside the home is refused like any other escape.
            let permissions = cap_std::fs::Permissions::from_std(permissions);
            Ok(home.set_permissions(path.relative(), permissions)?)
        })
        .await
    }

    async fn available_space(&self) -> Option<u64> {
        self.blocking(|home| {
            let stats = rustix::fs::fstatvfs(home).map_err(io::Error::from)?;
            Ok(stats.f_bavail.saturating_mul(stats.f_frsize))
        })
        .await
        .ok()
    }

    async fn measure(&self) -> Result<HomeUsage, StoreError> {
        self.blocking(|home| measure_dir(home.try_clone()?)).await
    }

    async fn remove_file(&self, path: &UserPath) -> Result<(), StoreError> {
        let path = path.clone();
        self.blocking(move |home| Ok(home.remove_file(path.relative())?))
            .await
    }

    async fn create_dir(&self, path: &UserPath) -> Result<(), StoreError> {
        let path = path.clone();
        self.blocking(move |home| Ok(home.create_dir(path.relative())?))
            .await
    }

    async fn remove_dir(&self, path: &UserPath) -> Result<(), StoreError> {
        if path.is_home() {
            return Err(StoreError::Denied(
                "the home directory cannot be removed".into(),
            ));
        }
        let path = path.clone();
        self.blocking(move |home| Ok(home.remove_dir(path.relative())?))
            .await
    }

    async fn rename(&self, from: &UserPath, to: &UserPath) -> Result<(), StoreError> {
        let (from_parent, from_name) = from.split_parent().ok_or(StoreError::NotAFile)?;
        let (to_parent, to_name) = to.split_parent().ok_or(StoreError::NotAFile)?;
        let (from_name, to_name) = (from_name.to_owned(), to_name.to_owned());
        self.blocking(move |home| {
            let from_dir = home.open_dir(from_parent.relative())?;
            let to_dir = home.open_dir(to_parent.relative())?;
            Ok(from_dir.rename(&from_name, &to_dir, &to_name)?)
        })
        .await
    }
}

/// Opens `path` beneath the home for reading, refusing anything but a regular file.
fn open_regular_file(home: &Dir, path: &UserPath) -> Result<std::fs::File, StoreError> {
    // O_NONBLOCK: a FIFO would otherwise wait for a writer; regular files ignore it.
    let file = home.open_with(
        path.relative(),
        OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK),
    )?;
    if !file.metadata()?.is_file() {
        return Err(StoreError::NotAFile);
    }
    Ok(file.into_std())
}

/// A download may start anywhere up to the end of the file (at the end it sends nothing, which
/// a client resuming a complete file expects); past the end is a REST the file cannot honour.
fn refuse_offset_past_end(offset: u64, len: u64) -> Result<(), StoreError> {
    if offset > len {
        return Err(StoreError::InvalidRestOffset {
            offset,
            len: Some(len),
        });
    }
    Ok(())
}

/// Home directory handles shared by the sessions of each home: an idle session then costs one
/// descriptor (its control socket) instead of two, which is what lets 10,000 sessions fit
/// under a 20,000 descriptor limit. Weak, so a handle closes with the last session using it.
static OPEN_HOMES: LazyLock<Mutex<OpenHomes>> = LazyLock::new(Mutex::default);

#[derive(Default)]
struct OpenHomes {
    handles: HashMap<PathBuf, Weak<Dir>>,
    /// Size at which entries of homes without sessions are swept out next (amortised).
    sweep_at: usize,
}

/// Entries swept at the earliest; below this the map is too small to bother.
const HOMES_FIRST_SWEEP: usize = 64;

/// The handle on `home`: a live one if another session has it and the path still names that
/// directory (a home removed and created again is a new directory), a new one otherwise.
fn open_home(home: &Path) -> io::Result<Arc<Dir>> {
    let mut open = OPEN_HOMES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(dir) = open.handles.get(home).and_then(Weak::upgrade) {
        let named = std::fs::metadata(home)?;
        let held = dir.dir_metadata()?;
        if (held.dev(), held.ino()) == (StdMetadataExt::dev(&named), StdMetadataExt::ino(&named)) {
            return Ok(dir);
        }
    }
    let dir = Arc::new(Dir::open_ambient_dir(home, ambient_authority())?);
    if open.handles.len() >= open.sweep_at {
        open.handles.retain(|_, handle| handle.strong_count() > 0);
        open.sweep_at = (open.handles.len() * 2).max(HOMES_FIRST_SWEEP);
    }
    open.handles
        .insert(home.to_path_buf(), Arc::downgrade(&dir));
    Ok(dir)
}

/// Entries of one directory per page: a listing holds this many entries in memory at a time,
/// and each page is one blocking-pool task.
const LISTING_PAGE: usize = 1000;

/// A local directory being listed; its `ReadDir` moves to the blocking pool for each page.
struct LocalPages {
    dir: Arc<Dir>,
    /// None once exhausted (or while a page is read).
    entries: Option<cap_std::fs::ReadDir>,
}

#[async_trait]
impl EntryPages for LocalPages {
    async fn next_page(&mut self) -> Result<Option<Vec<(String, Entry)>>, StoreError> {
        let Some(mut entries) = self.entries.take() else {
            return Ok(None);
        };
        let dir = self.dir.clone();
        let (entries, page) = tokio::task::spawn_blocking(move || {
            let page = read_page(&dir, &mut entries, LISTING_PAGE);
            (entries, page)
        })
        .await
        .map_err(|join_error| StoreError::Io(io::Error::other(join_error)))?;
        let page = page?;
        if page.is_empty() {
            return Ok(None);
        }
        self.entries = Some(entries);
        Ok(Some(page))
    }
}

/// The files under `dir` and their bytes, walked depth first without following symlinks
/// (each counts as itself); entries that vanish meanwhile are skipped.
fn measure_dir(dir: Dir) -> Result<HomeUsage, StoreError> {
    let mut usage = HomeUsage::default();
    let mut pending = vec![dir];
    while let Some(dir) = pending.pop() {
        for dir_entry in dir.entries()? {
            let Ok(dir_entry) = dir_entry else { continue };
            let name = dir_entry.file_name();
            if is_reserved_name(&name.to_string_lossy()) {
                continue;
            }
            let Ok(metadata) = dir_entry.metadata() else {
                continue;
            };
            if metadata.is_dir() {
                if let Ok(child) = dir_entry.open_dir() {
                    pending.push(child);
                }
            } else {
                usage.files += 1;
                usage.bytes += metadata.len();
            }
        }
    }
    Ok(usage)
}

/// All entries of `dir` (see [`read_page`]).
fn read_entries(dir: &Dir) -> Result<Vec<(String, Entry)>, StoreError> {
    let mut entries = dir.entries()?;
    read_page(dir, &mut entries, usize::MAX)
}

/// Up to `max` entries of `dir` from `entries`, without upload temporaries. A symlink is listed as what it leads to
/// within the home; one that leads outside the home (or nowhere) is left out, since no command
/// can use it: listing it as a 0-byte file from 1970 only misled clients.
fn read_page(
    dir: &Dir,
    entries: &mut cap_std::fs::ReadDir,
    max: usize,
) -> Result<Vec<(String, Entry)>, StoreError> {
    let mut page = Vec::new();
    while page.len() < max {
        let Some(dir_entry) = entries.next() else {
            break;
        };
        let dir_entry = dir_entry?;
        let Ok(name) = dir_entry.file_name().into_string() else {
            continue; // names that are not UTF-8 cannot be sent in a UTF-8 listing
        };
        if is_reserved_name(&name) {
            continue;
        }
        let Ok(metadata) = dir_entry.metadata() else {
            continue; // removed while listing
        };
        let entry = if metadata.is_symlink() {
            // Followed only as far as the home allows (cap-std refuses an escape).
            match dir.metadata(&name) {
                Ok(target) => entry_from(&target),
                Err(_) => continue,
            }
        } else {
            entry_from(&metadata)
        };
        page.push((name, entry));
    }
    Ok(page)
}

fn entry_from(metadata: &cap_std::fs::Metadata) -> Entry {
    let kind = if metadata.is_dir() {
        EntryKind::Dir
    } else if metadata.is_symlink() {
        EntryKind::Symlink
    } else {
        EntryKind::File
    };
    Entry {
        kind,
        len: metadata.len(),
        modified: metadata.modified().ok().map(|time| time.into_std()),
        mode: metadata.mode() & 0o7777,
    }
}

/// Distinguishes temporaries created in the same directory by this process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A new temporary name: hidden from listings, unique within this process, and told apart from
/// other processes' by the process id.
fn temporary_name() -> String {
    static PROCESS_ID: LazyLock<u32> = LazyLock::new(std::process::id);
    format!(
        "{UPLOAD_TEMP_PREFIX}{}-{}",
        *PROCESS_ID,
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Creates a new, uniquely named temporary file in `dir`.
fn create_temporary(dir: &Dir) -> Result<(String, cap_std::fs::File), StoreError> {
    loop {
        let name = temporary_name();
        match dir.open_with(&name, OpenOptions::new().write(true).create_new(true)) {
            Ok(file) => return Ok((name, file)),
            // Left by an earlier process with the same pid: pick the next number.
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(error) => return Err(error.into()),
        }
    }
}

/// Opens a file without a name in `dir` (`O_TMPFILE`), or `None` where the filesystem (or the
/// kernel) has no such files.
///
/// Cheaper than a named temporary: on the benchmark guest's ext4, creating, writing (4 KiB) and
/// naming 20,000 files cost 25 µs of CPU each this way against 39 µs for create + rename. And a
/// crash leaves nothing behind: the kernel frees an unnamed file with its last descriptor.
fn create_unnamed(dir: &Dir) -> Result<Option<std::fs::File>, StoreError> {
    let flags = OFlags::WRONLY | OFlags::TMPFILE | OFlags::CLOEXEC;
    match rustix::fs::openat(dir, ".", flags, Mode::from_raw_mode(0o666)) {
        Ok(file) => Ok(Some(file.into())),
        // EOPNOTSUPP: the filesystem cannot; EISDIR, EINVAL: a kernel without O_TMPFILE.
        Err(Errno::OPNOTSUPP | Errno::ISDIR | Errno::INVAL) => Ok(None),
        Err(error) => Err(io::Error::from(error).into()),
    }
}

/// Set once linking an unnamed file by its descriptor (`AT_EMPTY_PATH`) was refused (Linux
/// before 6.10 allows it only with CAP_DAC_READ_SEARCH) and its `/proc/self/fd` path worked.
static LINK_THROUGH_PROC: AtomicBool = AtomicBool::new(false);

/// Gives the unnamed `file` the name `name` in `dir`; fails with `AlreadyExists` if the name is
/// taken (linkat(2) never replaces).
fn link_unnamed(file: &std::fs::File, dir: &Dir, name: &str) -> io::Result<()> {
    if !LINK_THROUGH_PROC.load(Ordering::Relaxed) {
        match rustix::fs::linkat(file, "", dir, name, AtFlags::EMPTY_PATH) {
            Ok(()) => return Ok(()),
            Err(Errno::NOENT | Errno::PERM) => {}
            Err(error) => return Err(error.into()),
        }
    }
    let by_path = format!("/proc/self/fd/{}", file.as_raw_fd());
    rustix::fs::linkat(CWD, by_path.as_str(), dir, name, AtFlags::SYMLINK_FOLLOW)?;
    LINK_THROUGH_PROC.store(true, Ordering::Relaxed);
    Ok(())
}

/// The file an upload is written to before it has its final name.
enum Temporary {
    /// A hidden name beside the target (see [`create_temporary`]).
    Named(String),
    /// No name at all (see [`create_unnamed`]); a second descriptor, to link it at commit.
    Unnamed(std::fs::File),
}

/// An upload's file until it is committed under its final name; deleted on drop otherwise.
struct TemporaryUpload {
    dir: Dir,
    temp: Temporary,
    final_name: String,
    committed: bool,
}

impl TemporaryUpload {
    fn new(dir: Dir, temp: Temporary, final_name: String) -> Self {
        TemporaryUpload {
            dir,
            temp,
            final_name,
            committed: false,
        }
    }

    /// Atomically puts the complete upload under the final name.
    fn commit(mut self, replace: Replace) -> Result<(), StoreError> {
        match &self.temp {
            Temporary::Named(temp_name) => {
                rename_into_place(&self.dir, temp_name, &self.final_name, replace)?
            }
            Temporary::Unnamed(file) => match link_unnamed(file, &self.dir, &self.final_name) {
                Ok(()) => {}
                // The name appeared during the upload: replace it like a named temporary
                // would, through a name of its own.
                Err(error)
                    if error.kind() == io::ErrorKind::AlreadyExists
                        && replace == Replace::Allowed =>
                {
                    let temp_name = link_temporary(file, &self.dir)?;
                    let renamed =
                        rename_into_place(&self.dir, &temp_name, &self.final_name, replace);
                    // Named now: if the rename failed, the drop removes that name.
                    self.temp = Temporary::Named(temp_name);
                    renamed?;
                }
                Err(error) => return Err(error.into()),
            },
        }
        self.committed = true;
        Ok(())
    }
}

/// Renames `temp_name` to `final_name` in `dir`, over a file of that name only if `replace`
/// allows it.
fn rename_into_place(
    dir: &Dir,
    temp_name: &str,
    final_name: &str,
    replace: Replace,
) -> io::Result<()> {
    match replace {
        Replace::Allowed => dir.rename(temp_name, dir, final_name),
        // Both names are single components of one directory: nothing to resolve beneath.
        Replace::Never => rustix::fs::renameat_with(
            dir,
            temp_name,
            dir,
            final_name,
            rustix::fs::RenameFlags::NOREPLACE,
        )
        .map_err(io::Error::from),
    }
}

/// Links the unnamed `file` into `dir` under a new temporary name, which it returns.
fn link_temporary(file: &std::fs::File, dir: &Dir) -> io::Result<String> {
    loop {
        let name = temporary_name();
        match link_unnamed(file, dir, &name) {
            Ok(()) => return Ok(name),
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(error) => return Err(error),
        }
    }
}

impl Drop for TemporaryUpload {
    fn drop(&mut self) {
        if let (false, Temporary::Named(temp_name)) = (self.committed, &self.temp) {
            let _ = self.dir.remove_file(temp_name);
        }
    }
}

/// Removes upload temporaries left under `root` by a crash; returns how many. Symlinks are
/// not followed, so nothing outside the root is touched.
pub fn remove_stale_temporaries(root: &Path) -> io::Result<usize> {
    let mut removed = 0;
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(file_type) = entry.file_type() else {
                continue;
            };
            if file_type.is_dir() {
                pending.push(entry.path());
            } else if file_type.is_file()
                && entry
                    .file_name()
                    .to_string_lossy()
                    .starts_with(UPLOAD_TEMP_PREFIX)
            {
                std::fs::remove_file(entry.path())?;
                removed += 1;
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// An upload to a new name in a fresh directory, written but not committed: unnamed where
    /// the filesystem allows it. Returns the directory's path too.
    fn upload_to_new_name(content: &[u8]) -> (tempfile::TempDir, TemporaryUpload) {
        let root = tempfile::tempdir().expect("temp dir");
        let dir = Dir::open_ambient_dir(root.path(), ambient_authority()).expect("open");
        let (mut file, temp) = match create_unnamed(&dir).expect("create") {
            Some(file) => {
                let linkable = file.try_clone().expect("dup");
                (file, Temporary::Unnamed(linkable))
            }
            None => {
                let (name, file) = create_temporary(&dir).expect("create named");
                (file.into_std(), Temporary::Named(name))
            }
        };
        file.write_all(content).expect("write");
        (root, TemporaryUpload::new(dir, temp, "target.bin".into()))
    }

    #[test]
    fn an_upload_to_a_new_name_appears_whole_at_commit_and_leaves_nothing_else() {
        let (root, upload) = upload_to_new_name(b"new");
        assert!(
            names_in(root.path()).is_empty(),
            "nothing visible before commit"
        );
        upload.commit(Replace::Never).expect("commit");
        assert_eq!(names_in(root.path()), ["target.bin"]);
        assert_eq!(
            std::fs::read(root.path().join("target.bin")).unwrap(),
            b"new"
        );
    }

    #[test]
    fn a_name_taken_during_the_upload_is_kept_when_replacing_is_not_allowed() {
        let (root, upload) = upload_to_new_name(b"new");
        std::fs::write(root.path().join("target.bin"), b"theirs").unwrap();
        let error = upload.commit(Replace::Never).expect_err("refused");
        assert!(matches!(error, StoreError::AlreadyExists), "{error:?}");
        assert_eq!(names_in(root.path()), ["target.bin"]);
        assert_eq!(
            std::fs::read(root.path().join("target.bin")).unwrap(),
            b"theirs"
        );
    }

    #[test]
    fn a_name_taken_during_the_upload_is_replaced_when_allowed() {
        let (root, upload) = upload_to_new_name(b"new");
        std::fs::write(root.path().join("target.bin"), b"theirs").unwrap();
        upload.commit(Replace::Allowed).expect("commit");
        assert_eq!(names_in(root.path()), ["target.bin"]);
        assert_eq!(
            std::fs::read(root.path().join("target.bin")).unwrap(),
            b"new"
        );
    }

    #[test]
    fn an_upload_dropped_before_commit_leaves_nothing() {
        let (root, upload) = upload_to_new_name(b"partial");
        drop(upload);
        assert!(names_in(root.path()).is_empty());
    }

    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn sessions_of_one_home_share_a_handle_until_the_home_is_replaced() {
        let root = tempfile::tempdir().expect("temp dir");
        let home = root.path().join("alice");
        std::fs::create_dir(&home).expect("home");
        let first = open_home(&home).expect("open");
        let second = open_home(&home).expect("open again");
        assert!(Arc::ptr_eq(&first, &second));

        std::fs::remove_dir(&home).expect("remove");
        std::fs::create_dir(&home).expect("create again");
        let third = open_home(&home).expect("open the new home");
        assert!(!Arc::ptr_eq(&first, &third));
        std::fs::write(home.join("seen"), b"x").expect("write");
        assert!(
            third.exists("seen"),
            "the new handle is on the new directory"
        );
    }
}
