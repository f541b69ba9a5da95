//! The pipes uploads splice through (socket → pipe → file), reused from one upload to the next
//! and, while few are in use, enlarged.
//!
//! A pipe of the default 64 KiB makes the kernel drain the socket in 64 KiB steps, each one a
//! pair of splice(2) calls and a TCP window update: on the benchmark guest a 1 GiB upload cost
//! 0.62-0.69 s of CPU that way against 0.38-0.40 s through a 1 MiB pipe (same loop, ext4,
//! loopback). But Linux charges pipe pages to the user: past `pipe-user-pages-soft` (64 MiB)
//! every new pipe of that user shrinks to 8 KiB. So only [`LARGE_PIPES`] pipes at a time are
//! enlarged (16 MiB in all, a quarter of the soft limit); the rest keep the default size, which
//! 1,000 concurrent uploads already bring close to that limit.
//!
//! A pipe goes back to the pool only if it is empty (a transfer that failed midway may leave
//! bytes in it), so no upload ever sees another's bytes. Reuse saves each upload the pipe2(2),
//! fcntl(2) and two close(2) of a new pipe.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Capacity asked of an enlarged pipe: where the CPU per GiB stopped falling on the benchmark
/// guest (256 KiB: 0.40-0.44 s, 512 KiB and 1 MiB: 0.38-0.40 s), and `pipe-max-size`'s
/// default, so an unprivileged process may ask for it.
const LARGE_PIPE_BYTES: usize = 1 << 20;

/// Enlarged pipes that may exist at once (in use or pooled): 16 MiB of pipe pages at most.
const LARGE_PIPES: usize = 16;

/// Idle pipes kept for the next uploads; more are closed when their upload ends.
const POOLED_PIPES: usize = 16;

/// Linux's default pipe capacity (16 pages), what a pipe that could not be enlarged holds.
const DEFAULT_PIPE_BYTES: usize = 64 * 1024;

static POOL: Mutex<Vec<Pipe>> = Mutex::new(Vec::new());
static LARGE_IN_EXISTENCE: AtomicUsize = AtomicUsize::new(0);

/// A pipe's two ends and how many bytes it holds at most.
#[derive(Debug)]
struct Pipe {
    read_end: OwnedFd,
    write_end: OwnedFd,
    capacity: usize,
}

impl Pipe {
    fn new() -> io::Result<Pipe> {
        let mut ends = [0; 2];
        // SAFETY: `ends` has room for the two descriptors pipe2 writes.
        if unsafe { libc::pipe2(ends.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe2 succeeded, so both are new descriptors owned by nobody else.
        let (read_end, write_end) =
            unsafe { (OwnedFd::from_raw_fd(ends[0]), OwnedFd::from_raw_fd(ends[1])) };
        let mut pipe = Pipe {
            read_end,
            write_end,
            capacity: DEFAULT_PIPE_BYTES,
        };
        pipe.enlarge_if_allowed();
        Ok(pipe)
    }

    /// Raises the capacity to [`LARGE_PIPE_BYTES`] if fewer than [`LARGE_PIPES`] are.
    fn enlarge_if_allowed(&mut self) {
        let reserved = LARGE_IN_EXISTENCE
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |large| {
                (large < LARGE_PIPES).then_some(large + 1)
            })
            .is_ok();
        if !reserved {
            return;
        }
        // SAFETY: an open pipe descriptor; F_SETPIPE_SZ takes an int and returns the new size.
        let size = unsafe {
            libc::fcntl(
                self.write_end.as_raw_fd(),
                libc::F_SETPIPE_SZ,
                LARGE_PIPE_BYTES as libc::c_int,
            )
        };
        match usize::try_from(size) {
            Ok(size) if size >= LARGE_PIPE_BYTES => self.capacity = size,
            // Refused (the user is over the soft limit, or pipe-max-size was lowered): this
            // pipe stays as it is and gives its reservation back.
            _ => {
                LARGE_IN_EXISTENCE.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    fn is_large(&self) -> bool {
        self.capacity > DEFAULT_PIPE_BYTES
    }

    /// Whether the pipe holds no byte (FIONREAD).
    fn is_empty(&self) -> bool {
        let mut queued: libc::c_int = 0;
        // SAFETY: an open pipe descriptor; FIONREAD writes one int.
        let result = unsafe { libc::ioctl(self.read_end.as_raw_fd(), libc::FIONREAD, &mut queued) };
        result == 0 && queued == 0
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        if self.is_large() {
            LARGE_IN_EXISTENCE.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// A pipe lent to one upload; back to the pool when dropped, if it is empty.
#[derive(Debug)]
pub struct UploadPipe {
    pipe: Option<Pipe>,
}

impl UploadPipe {
    /// A pooled pipe, or a new one (enlarged if allowed).
    pub fn take() -> io::Result<UploadPipe> {
        let pooled = POOL
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop();
        let pipe = match pooled {
            Some(pipe) => pipe,
            None => Pipe::new()?,
        };
        Ok(UploadPipe { pipe: Some(pipe) })
    }

    fn pipe(&self) -> &Pipe {
        // Only `drop` takes it out.
        self.pipe.as_ref().expect("an upload pipe until dropped")
    }

    /// The end splice(2) reads from (into the file).
    pub fn read_end(&self) -> &OwnedFd {
        &self.pipe().read_end
    }

    /// The end splice(2) writes to (from the socket).
    pub fn write_end(&self) -> &OwnedFd {
        &self.pipe().write_end
    }

    /// Most bytes the pipe holds: what one splice from the socket may ask for.
    pub fn capacity(&self) -> usize {
        self.pipe().capacity
    }
}

impl Drop for UploadPipe {
    fn drop(&mut self) {
        if let Some(pipe) = self.pipe.take() {
            let mut pool = POOL
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            give_back(&mut pool, pipe);
        }
    }
}

/// Puts `pipe` in `pool` if it is empty and the pool has room; closes it otherwise (with
/// whatever bytes a failed transfer left in it).
fn give_back(pool: &mut Vec<Pipe>, pipe: Pipe) {
    if pool.len() < POOLED_PIPES && pipe.is_empty() {
        pool.push(pipe);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn only_an_empty_pipe_goes_back_to_the_pool() {
        let mut pool = Vec::new();
        give_back(&mut pool, Pipe::new().expect("pipe"));
        assert_eq!(pool.len(), 1);

        let pipe = Pipe::new().expect("pipe");
        let mut writer = std::fs::File::from(pipe.write_end.try_clone().expect("dup"));
        writer.write_all(b"left by a failed upload").expect("write");
        give_back(&mut pool, pipe);
        assert_eq!(pool.len(), 1, "a pipe holding bytes is closed, not pooled");
    }

    #[test]
    fn a_pipe_holds_what_its_capacity_says() {
        let pipe = UploadPipe::take().expect("pipe");
        assert!(pipe.capacity() >= DEFAULT_PIPE_BYTES);
        // SAFETY: an open pipe descriptor; F_GETPIPE_SZ returns its size.
        let size = unsafe { libc::fcntl(pipe.write_end().as_raw_fd(), libc::F_GETPIPE_SZ) };
        assert_eq!(usize::try_from(size).expect("size"), pipe.capacity());
    }
}
