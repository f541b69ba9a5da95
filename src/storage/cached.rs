//! Filesystem work the kernel can answer from its caches, done on the async worker: a lookup
//! whose every path component is already cached (`RESOLVE_CACHED`) and a small read whose
//! bytes are already in the page cache (`RWF_NOWAIT`). Each returns `None` whenever the
//! kernel would have to wait for a disk, a network filesystem or anything else, and the
//! caller then does the same work on the blocking pool.
//!
//! Why: handing work to the blocking pool and back costs two thread wake-ups, ~45 µs of CPU
//! on a 2-vCPU guest, while a cached stat is ~2 µs. SIZE, MDTM and small downloads, most of
//! what a client syncing a tree does, would otherwise pay the hand-off every time.
//!
//! Confinement is the kernel's: `RESOLVE_BENEATH` refuses any lookup that leaves the home
//! (`..` past it, absolute paths or symlinks) and `RESOLVE_NO_MAGICLINKS` refuses /proc-style
//! links. Any refusal or error here is only a `None`: the blocking path, through cap-std,
//! decides what the client is told.

use cap_std::fs::Dir;
use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::ReadWriteFlags;
use std::fs::File;
use std::io::IoSliceMut;
use std::os::fd::OwnedFd;
use std::path::Path;

/// Largest download served from the page cache on the async worker. Larger files go out with
/// sendfile(2) from the blocking pool, where the hand-off is small next to the transfer.
pub const SMALL_FILE_LIMIT: u64 = 64 * 1024;

fn resolve_flags() -> ResolveFlags {
    ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS | ResolveFlags::CACHED
}

/// Opens `relative` beneath `home` only if the lookup needs no I/O.
fn open_cached(home: &Dir, relative: &Path, flags: OFlags) -> Option<OwnedFd> {
    if relative.as_os_str().is_empty() {
        return None; // the home itself: openat2 has no empty-path form
    }
    rustix::fs::openat2(
        home,
        relative,
        flags | OFlags::CLOEXEC,
        Mode::empty(),
        resolve_flags(),
    )
    .ok()
}

/// What stat(2) says of `relative` (symlinks followed, within the home), if the lookup and
/// the inode are cached.
pub fn metadata(home: &Dir, relative: &Path) -> Option<cap_std::fs::Metadata> {
    let handle = File::from(open_cached(home, relative, OFlags::PATH)?);
    let metadata = handle.metadata().ok()?;
    Some(cap_std::fs::Metadata::from_just_metadata(metadata))
}

/// What the page cache did for a download (see [`small_file`]).
#[derive(Debug)]
pub enum CachedRead {
    /// The file's bytes from the offset to its end, read without waiting.
    Content(Vec<u8>),
    /// A regular file, opened beneath the home, that is too large or not all in the page
    /// cache: to be sent from the blocking pool without opening it again.
    Open(File),
    /// Not answered here (the lookup was not cached, or it is not a regular file): the
    /// blocking path opens it and decides what the client is told.
    Unanswered,
}

/// The bytes of the regular file `relative` from `offset` to its end, if it is at most
/// [`SMALL_FILE_LIMIT`] long and every byte is in the page cache; otherwise the file, if it
/// could be opened without waiting.
pub fn small_file(home: &Dir, relative: &Path, offset: u64) -> CachedRead {
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
    let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY;
    let Some(file) = open_cached(home, relative, flags).map(File::from) else {
        return CachedRead::Unanswered;
    };
    let Ok(metadata) = file.metadata() else {
        return CachedRead::Unanswered;
    };
    if !metadata.is_file() {
        return CachedRead::Unanswered;
    }
    // Past the end: the blocking path refuses the offset.
    if metadata.len() > SMALL_FILE_LIMIT || offset > metadata.len() {
        return CachedRead::Open(file);
    }
    match read_to_end_without_waiting(&file, offset, metadata.len()) {
        Some(content) => CachedRead::Content(content),
        None => CachedRead::Open(file),
    }
}

/// Reads `file` (`len` bytes long when it was looked at) from `offset` to its end, or None
/// if that would wait for the disk, fails, or the file has grown meanwhile.
fn read_to_end_without_waiting(file: &File, offset: u64, len: u64) -> Option<Vec<u8>> {
    let expected = len.saturating_sub(offset) as usize;
    // One byte more than expected, so a file that grew since the stat reads short of EOF
    // and is left to the blocking path, which sends it whole.
    let mut content = vec![0u8; expected + 1];
    let mut filled = 0;
    let mut in_memory = false;
    loop {
        let position = offset.checked_add(filled as u64)?;
        let unfilled = &mut content[filled..];
        let read = if in_memory {
            rustix::io::pread(file, unfilled, position).ok()?
        } else {
            let without_waiting = rustix::io::preadv2(
                file,
                &mut [IoSliceMut::new(unfilled)],
                position,
                ReadWriteFlags::NOWAIT,
            );
            match without_waiting {
                Ok(read) => read,
                // Asked only here, so filesystems that support RWF_NOWAIT never pay for it.
                Err(rustix::io::Errno::OPNOTSUPP) if lives_in_memory(file) => {
                    in_memory = true;
                    continue;
                }
                Err(_) => return None,
            }
        };
        if read == 0 {
            content.truncate(filled);
            return Some(content);
        }
        filled += read;
        if filled == content.len() {
            return None;
        }
    }
}

/// Whether `file` is on tmpfs or ramfs, whose pages are memory: a plain read never waits
/// there (unless the machine swapped them out), and RWF_NOWAIT is not supported on them.
fn lives_in_memory(file: &File) -> bool {
    /// From linux/magic.h (the libc crate has tmpfs's but not ramfs's).
    const RAMFS_MAGIC: i64 = 0x8584_58f6;
    // f_type's integer type differs between architectures; the casts are for the others.
    #[allow(clippy::unnecessary_cast)]
    rustix::fs::fstatfs(file).is_ok_and(|filesystem| {
        let kind = filesystem.f_type as i64;
        kind == libc::TMPFS_MAGIC as i64 || kind == RAMFS_MAGIC
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use cap_std::ambient_authority;

    impl CachedRead {
        /// The content, if the read was answered from the page cache.
        fn content(self) -> Option<Vec<u8>> {
            match self {
                CachedRead::Content(content) => Some(content),
                CachedRead::Open(_) | CachedRead::Unanswered => None,
            }
        }
    }

    fn home_with(files: &[(&str, &[u8])]) -> (tempfile::TempDir, Dir) {
        let dir = tempfile::tempdir().expect("temp dir");
        for (name, content) in files {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(path, content).expect("write");
        }
        let home = Dir::open_ambient_dir(dir.path(), ambient_authority()).expect("open home");
        (dir, home)
    }

    /// The first lookup may miss the cache; the test files were just written, so at most
    /// one retry finds them cached.
    fn twice<T>(attempt: impl Fn() -> Option<T>) -> Option<T> {
        attempt().or_else(attempt)
    }

    #[test]
    fn reads_a_small_cached_file_from_an_offset() {
        let (_dir, home) = home_with(&[("sub/a.txt", b"hello, cache")]);
        let whole = twice(|| small_file(&home, Path::new("sub/a.txt"), 0).content());
        assert_eq!(whole.as_deref(), Some(&b"hello, cache"[..]));
        let tail = small_file(&home, Path::new("sub/a.txt"), 7).content();
        assert_eq!(tail.as_deref(), Some(&b"cache"[..]));
        // Past the end is left to the blocking path, which refuses the offset (554).
        let past_end = small_file(&home, Path::new("sub/a.txt"), 100).content();
        assert_eq!(past_end, None);
    }

    #[test]
    fn reads_from_tmpfs_where_nowait_reads_are_unsupported() {
        let Ok(dir) = tempfile::tempdir_in("/dev/shm") else {
            return; // no /dev/shm on this machine
        };
        std::fs::write(dir.path().join("t.bin"), b"in memory").expect("write");
        let file = File::open(dir.path().join("t.bin")).expect("open");
        if !lives_in_memory(&file) {
            return; // /dev/shm is not tmpfs here
        }
        let home = Dir::open_ambient_dir(dir.path(), ambient_authority()).expect("open home");
        let content = twice(|| small_file(&home, Path::new("t.bin"), 3).content());
        assert_eq!(content.as_deref(), Some(&b"memory"[..]));
    }

    #[test]
    fn leaves_large_files_directories_and_missing_paths_to_the_blocking_path() {
        let large = vec![7u8; SMALL_FILE_LIMIT as usize + 1];
        let (_dir, home) = home_with(&[("large.bin", &large), ("d/x", b"x")]);
        assert!(twice(|| metadata(&home, Path::new("large.bin"))).is_some());
        assert_eq!(small_file(&home, Path::new("large.bin"), 0).content(), None);
        assert_eq!(small_file(&home, Path::new("d"), 0).content(), None);
        assert_eq!(small_file(&home, Path::new("missing"), 0).content(), None);
        assert!(metadata(&home, Path::new("missing")).is_none());
        assert!(metadata(&home, Path::new("")).is_none());
    }

    #[test]
    fn never_resolves_outside_the_home() {
        let outside = tempfile::tempdir().expect("outside");
        std::fs::write(outside.path().join("secret"), b"secret").expect("write");
        let (dir, home) = home_with(&[("inside.txt", b"in")]);
        std::os::unix::fs::symlink(outside.path().join("secret"), dir.path().join("abs"))
            .expect("symlink");
        let relative_escape = Path::new("..")
            .join(outside.path().file_name().expect("name"))
            .join("secret");
        std::os::unix::fs::symlink(&relative_escape, dir.path().join("rel")).expect("symlink");
        std::os::unix::fs::symlink("inside.txt", dir.path().join("link")).expect("symlink");
        let secret_path = outside.path().join("secret");
        for path in [Path::new("abs"), Path::new("rel"), secret_path.as_path()] {
            assert_eq!(
                twice(|| small_file(&home, path, 0).content()),
                None,
                "{path:?}"
            );
            assert!(twice(|| metadata(&home, path)).is_none(), "{path:?}");
        }
        assert_eq!(
            twice(|| small_file(&home, &relative_escape, 0).content()),
            None,
            "dot-dot"
        );
        let through_link = twice(|| small_file(&home, Path::new("link"), 0).content());
        assert_eq!(through_link.as_deref(), Some(&b"in"[..]), "in-home symlink");
    }

    #[test]
    fn metadata_follows_in_home_symlinks_like_stat() {
        let (dir, home) = home_with(&[("target.txt", b"12345")]);
        std::os::unix::fs::symlink("target.txt", dir.path().join("link")).expect("symlink");
        let metadata = twice(|| metadata(&home, Path::new("link"))).expect("cached");
        assert!(metadata.is_file());
        assert_eq!(metadata.len(), 5);
    }
}
