//! Receiving without copying: data-connection bytes are spliced through a pipe into
//! /dev/null, counted and never touched, so the load generator costs far less CPU per byte
//! than any server it measures and is not what limits a download.

use super::BenchError;
use super::bounded;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;
use tokio::io::Interest;
use tokio::net::TcpStream;

/// Pipe capacity asked for (the unprivileged maximum, `/proc/sys/fs/pipe-max-size`); fewer,
/// larger splices. If refused, the default 64 KiB pipe works too, with more calls.
const PIPE_CAPACITY: libc::c_int = 1 << 20;

/// A pipe and /dev/null: what one session needs to throw received bytes away.
pub struct Discard {
    pipe_out: OwnedFd,
    pipe_in: OwnedFd,
    null: File,
    capacity: usize,
}

impl Discard {
    pub fn new() -> io::Result<Discard> {
        let mut ends = [0; 2];
        // SAFETY: `ends` has room for the two descriptors pipe2 writes.
        if unsafe { libc::pipe2(ends.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe2 succeeded: two new descriptors owned by nothing else.
        let (pipe_out, pipe_in) =
            unsafe { (OwnedFd::from_raw_fd(ends[0]), OwnedFd::from_raw_fd(ends[1])) };
        // SAFETY: fcntl on a descriptor we own; a refusal leaves the default size.
        let capacity =
            unsafe { libc::fcntl(pipe_in.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_CAPACITY) };
        Ok(Discard {
            pipe_out,
            pipe_in,
            null: File::options().write(true).open("/dev/null")?,
            capacity: usize::try_from(capacity).unwrap_or(64 * 1024),
        })
    }

    /// Reads `input` to its end; returns the byte count. The receive code of every download
    /// and of the raw loopback ceiling, so the two are comparable.
    pub async fn receive_all(
        &self,
        input: &TcpStream,
        io_timeout: Duration,
    ) -> Result<u64, BenchError> {
        let mut received = 0u64;
        loop {
            bounded(io_timeout, "data", input.readable()).await?;
            match input.try_io(Interest::READABLE, || self.splice_from(input)) {
                Ok(0) => return Ok(received),
                Ok(moved) => {
                    self.drain(moved)?;
                    received += moved as u64;
                }
                Err(error)
                    if matches!(
                        error.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) => {}
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// Moves what the socket has (up to the pipe's capacity) into the empty pipe.
    fn splice_from(&self, input: &TcpStream) -> io::Result<usize> {
        // SAFETY: valid descriptors, null offsets (neither is seekable).
        let moved = unsafe {
            libc::splice(
                input.as_raw_fd(),
                std::ptr::null_mut(),
                self.pipe_in.as_raw_fd(),
                std::ptr::null_mut(),
                self.capacity,
                libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
            )
        };
        usize::try_from(moved).map_err(|_| io::Error::last_os_error())
    }

    /// Empties `len` bytes from the pipe into /dev/null.
    fn drain(&self, mut len: usize) -> io::Result<()> {
        while len > 0 {
            // SAFETY: valid descriptors, null offsets.
            let moved = unsafe {
                libc::splice(
                    self.pipe_out.as_raw_fd(),
                    std::ptr::null_mut(),
                    self.null.as_raw_fd(),
                    std::ptr::null_mut(),
                    len,
                    libc::SPLICE_F_MOVE,
                )
            };
            match usize::try_from(moved) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(moved) => len -= moved,
                Err(_) => {
                    let error = io::Error::last_os_error();
                    if error.kind() != io::ErrorKind::Interrupted {
                        return Err(error);
                    }
                }
            }
        }
        Ok(())
    }
}
