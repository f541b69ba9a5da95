//! Transfers on plaintext data sockets without copying through user space: sendfile(2) from
//! the file to the socket for downloads, splice(2) from the socket through a pipe into the
//! file for uploads. Each runs on one blocking-pool thread that waits for the socket with
//! poll(2), so a file read that has to wait for the disk never holds up an async worker.
//!
//! The socket is non-blocking (tokio set it so); these loops treat EAGAIN as "poll, then try
//! again" and look at a cancellation flag at least every [`CANCEL_CHECK_INTERVAL_MS`].

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::idle::IdleClock;
use super::pace::Pace;
use super::pipes::UploadPipe;

/// Longest wait for the socket before a transfer checks whether it was abandoned (ABOR, a
/// dropped session): an abandoned transfer's thread and socket linger at most this long.
const CANCEL_CHECK_INTERVAL_MS: i32 = 100;

/// Most bytes asked of one sendfile(2). On a non-blocking socket a call returns once the
/// socket buffer is full anyway; the cap only keeps one call short when it is huge.
const SENDFILE_CHUNK: usize = 4 << 20;

/// The plaintext data socket libunftp lends to the running RETR/STOR/APPE (the
/// `raw-data-socket` patch), duplicated so that it stays open for as long as a blocking thread
/// uses it, even if the transfer is abandoned and libunftp closes its own descriptor.
pub fn lent_data_socket() -> io::Result<Option<OwnedFd>> {
    let Some(raw) = libunftp::storage::plaintext_data_socket() else {
        return Ok(None);
    };
    // SAFETY: libunftp guarantees the descriptor is open until the storage call that runs
    // this code returns; it is only borrowed here to duplicate it.
    let socket = unsafe { BorrowedFd::borrow_raw(raw) };
    socket.try_clone_to_owned().map(Some)
}

/// Where the bytes written to a socket are.
#[derive(Debug, PartialEq, Eq)]
pub enum Delivery {
    /// The peer has acknowledged all of them.
    Done,
    /// Some are still queued or unacknowledged.
    Pending,
    /// Some are unacknowledged and the peer has hung up.
    PeerGone,
}

/// Reads the socket's send queue (`SIOCOUTQ`: bytes not yet acknowledged) and its hang-up state.
pub fn delivery_state(socket: &OwnedFd) -> io::Result<Delivery> {
    let mut queued: libc::c_int = 0;
    // SAFETY: `socket` is open; TIOCOUTQ (SIOCOUTQ for TCP) writes one int.
    if unsafe { libc::ioctl(socket.as_raw_fd(), libc::TIOCOUTQ, &mut queued) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if queued == 0 {
        return Ok(Delivery::Done);
    }
    let mut poll = libc::pollfd {
        fd: socket.as_raw_fd(),
        events: libc::POLLRDHUP,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout.
    let ready = unsafe { libc::poll(&mut poll, 1, 0) };
    if ready > 0 && poll.revents & (libc::POLLHUP | libc::POLLERR) != 0 {
        return Ok(Delivery::PeerGone);
    }
    Ok(Delivery::Pending)
}

fn abandoned() -> io::Error {
    io::Error::new(io::ErrorKind::Interrupted, "transfer abandoned")
}

/// Sends `file` from `offset` to its end on `socket`; returns the bytes sent.
pub fn send_file(
    socket: &OwnedFd,
    file: &File,
    offset: u64,
    cancelled: &AtomicBool,
    data_timeout: Duration,
    pace: &Pace,
) -> io::Result<u64> {
    let mut clock = IdleClock::start(data_timeout);
    let chunk = pace.chunk(SENDFILE_CHUNK);
    let start = libc::off_t::try_from(offset)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset too large"))?;
    let mut position = start;
    loop {
        if cancelled.load(Ordering::Relaxed) {
            return Err(abandoned());
        }
        // SAFETY: both descriptors are open for the duration of the call; `position` is a
        // valid off_t that sendfile advances instead of the file's own offset.
        let sent =
            unsafe { libc::sendfile(socket.as_raw_fd(), file.as_raw_fd(), &mut position, chunk) };
        match sent {
            0 => return Ok((position - start) as u64), // end of file
            sent if sent > 0 => {
                pace.after_chunk_blocking(sent as u64, cancelled)?;
                clock.progressed();
            }
            _ => {
                wait_if_would_block(socket.as_fd(), libc::POLLOUT, io::Error::last_os_error())?;
                clock.check()?;
            }
        }
    }
}

/// Receives `socket` until the peer closes it into `file` at `offset`; returns the bytes
/// received. Socket pages go into a pipe by reference and from there into the file, which is
/// the only copy; a filesystem that cannot take pages from a pipe gets them by read/write.
pub fn receive_into_file(
    socket: &OwnedFd,
    file: &File,
    offset: u64,
    cancelled: &AtomicBool,
    data_timeout: Duration,
    pace: &Pace,
) -> io::Result<u64> {
    let mut clock = IdleClock::start(data_timeout);
    // Moved per splice(2) from the socket: as much as the pipe holds (see `pipes`).
    let pipe = UploadPipe::take()?;
    let (pipe_out, pipe_in, pipe_chunk) = (pipe.read_end(), pipe.write_end(), pipe.capacity());
    let chunk = pace.chunk(pipe_chunk);
    let mut position = offset;
    let mut splice_into_file = true;
    loop {
        if cancelled.load(Ordering::Relaxed) {
            return Err(abandoned());
        }
        // SAFETY: valid descriptors; null offsets because neither is seekable.
        let moved = unsafe {
            libc::splice(
                socket.as_raw_fd(),
                std::ptr::null_mut(),
                pipe_in.as_raw_fd(),
                std::ptr::null_mut(),
                chunk,
                libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
            )
        };
        match moved {
            0 => return Ok(position - offset), // the client finished sending
            moved if moved > 0 => {
                let moved = moved as usize;
                // Charged before the write: an upload past its budget never reaches the file.
                pace.after_chunk_blocking(moved as u64, cancelled)?;
                if splice_into_file {
                    match drain_pipe_into_file(pipe_out, file, position, moved) {
                        Err(error) if error.raw_os_error() == Some(libc::EINVAL) => {
                            splice_into_file = false;
                            copy_pipe_into_file(pipe_out, file, position, moved)?;
                        }
                        result => result?,
                    }
                } else {
                    copy_pipe_into_file(pipe_out, file, position, moved)?;
                }
                position += moved as u64;
                clock.progressed();
            }
            _ => {
                wait_if_would_block(socket.as_fd(), libc::POLLIN, io::Error::last_os_error())?;
                clock.check()?;
            }
        }
    }
}

/// After a failed call: waits for `events` on `socket` if the call would have blocked, does
/// nothing if it was interrupted, and returns any other error.
fn wait_if_would_block(socket: BorrowedFd<'_>, events: i16, error: io::Error) -> io::Result<()> {
    match error.kind() {
        io::ErrorKind::WouldBlock => {
            let mut poll = libc::pollfd {
                fd: socket.as_raw_fd(),
                events,
                revents: 0,
            };
            // SAFETY: one valid pollfd. A timeout just returns to the caller's cancel check;
            // readiness includes errors and hang-ups, which the next call then reports.
            if unsafe { libc::poll(&mut poll, 1, CANCEL_CHECK_INTERVAL_MS) } < 0 {
                let error = io::Error::last_os_error();
                if error.kind() != io::ErrorKind::Interrupted {
                    return Err(error);
                }
            }
            Ok(())
        }
        io::ErrorKind::Interrupted => Ok(()),
        _ => Err(error),
    }
}

/// Moves `len` bytes from the pipe into `file` at `position` without copying them to user
/// space. Blocking: the pipe holds exactly those bytes.
fn drain_pipe_into_file(pipe: &OwnedFd, file: &File, position: u64, len: usize) -> io::Result<()> {
    let mut offset = libc::loff_t::try_from(position)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset too large"))?;
    let mut pending = len;
    while pending > 0 {
        // SAFETY: valid descriptors; `offset` is advanced by the kernel instead of the file
        // position, so concurrent positional writes elsewhere are unaffected.
        let written = unsafe {
            libc::splice(
                pipe.as_raw_fd(),
                std::ptr::null_mut(),
                file.as_raw_fd(),
                &mut offset,
                pending,
                libc::SPLICE_F_MOVE,
            )
        };
        match written {
            0 => return Err(io::ErrorKind::WriteZero.into()),
            written if written > 0 => pending -= written as usize,
            _ => {
                let error = io::Error::last_os_error();
                if error.kind() != io::ErrorKind::Interrupted {
                    return Err(error);
                }
            }
        }
    }
    Ok(())
}

/// The fallback of [`drain_pipe_into_file`]: reads the pipe and writes the bytes.
fn copy_pipe_into_file(pipe: &OwnedFd, file: &File, position: u64, len: usize) -> io::Result<()> {
    let mut buffer = vec![0u8; len];
    let mut pipe = File::from(pipe.try_clone()?);
    io::Read::read_exact(&mut pipe, &mut buffer)?;
    file.write_all_at(&buffer, position)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEST_TIMEOUT: Duration = Duration::from_secs(10);
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    /// A connected loopback pair; the server side is non-blocking, as tokio leaves it.
    fn socket_pair() -> (OwnedFd, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (server, _) = listener.accept().expect("accept");
        server.set_nonblocking(true).expect("non-blocking");
        (OwnedFd::from(server), client)
    }

    #[test]
    fn send_file_sends_every_byte_from_the_offset() {
        let data = pattern(3 * SENDFILE_CHUNK / 2 + 17);
        let mut file = tempfile::tempfile().expect("temp file");
        file.write_all(&data).expect("write");
        let (server, mut client) = socket_pair();
        let reader = std::thread::spawn(move || {
            let mut received = Vec::new();
            client.read_to_end(&mut received).expect("read");
            received
        });
        let sent = send_file(
            &server,
            &file,
            1000,
            &AtomicBool::new(false),
            TEST_TIMEOUT,
            &Pace::default(),
        )
        .expect("send");
        drop(server);
        assert_eq!(sent as usize, data.len() - 1000);
        assert_eq!(reader.join().expect("reader"), &data[1000..]);
    }

    #[test]
    fn receive_into_file_writes_every_byte_at_the_offset() {
        let data = pattern(5 * (1 << 20) + 3);
        let file = tempfile::tempfile().expect("temp file");
        let (server, mut client) = socket_pair();
        let sent = data.clone();
        let writer = std::thread::spawn(move || client.write_all(&sent).expect("write"));
        let received = receive_into_file(
            &server,
            &file,
            2,
            &AtomicBool::new(false),
            TEST_TIMEOUT,
            &Pace::default(),
        )
        .expect("receive");
        writer.join().expect("writer");
        assert_eq!(received as usize, data.len());
        let mut written = Vec::new();
        (&file).read_to_end(&mut written).expect("read back");
        assert_eq!(&written[..2], &[0, 0]);
        assert_eq!(&written[2..], &data[..]);
    }

    #[test]
    fn a_cancelled_transfer_stops_while_the_peer_is_silent() {
        let file = tempfile::tempfile().expect("temp file");
        let (server, _silent_client) = socket_pair();
        let cancelled = AtomicBool::new(false);
        let error = std::thread::scope(|scope| {
            scope.spawn(|| {
                std::thread::sleep(std::time::Duration::from_millis(150));
                cancelled.store(true, Ordering::Relaxed);
            });
            receive_into_file(
                &server,
                &file,
                0,
                &cancelled,
                TEST_TIMEOUT,
                &Pace::default(),
            )
            .expect_err("cancelled")
        });
        assert_eq!(error.kind(), io::ErrorKind::Interrupted);
    }
}
