//! The data path: how a download leaves a file and an upload reaches one. It uses nothing else
//! of Ferry's; `storage` calls it.
//!
//! On a plaintext data connection the bytes never pass through Ferry's memory: downloads use
//! sendfile(2) and uploads splice(2) ([`zero_copy`]), and the whole transfer, from opening the
//! file to committing the upload, is one blocking-pool task. TLS data connections (and
//! anything else that is only an async stream) go through large buffers ([`buffered`]).
//! Either way, dropping the transfer's future (ABOR, a closed session) stops it.
//!
//! In TYPE A (ASCII) the bytes change on the way ([`ascii`]): such transfers always take the
//! buffered path, even on a plaintext socket, since sendfile and splice move bytes unchanged.

mod ascii;
mod buffered;
pub mod digest;
mod idle;
pub mod pace;
mod pipes;
mod stream;
mod zero_copy;

use idle::IdleStream;
use std::fs::File;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
pub use stream::{Incoming, Outgoing};
use tokio::io::{AsyncRead, AsyncWrite};

/// Sends a file to the client from byte `offset` to its end; returns the bytes sent.
///
/// `open` runs on the thread that then sends the file, so from open to last byte a download
/// is one blocking-pool task. `out` is the data connection as libunftp hands it over; when it
/// is a plaintext socket, libunftp also lends its descriptor and the file goes out with
/// sendfile(2) instead. A client that takes no byte for `data_timeout` ends the transfer
/// with `TimedOut`.
pub async fn send_file<W, E>(
    open: impl FnOnce() -> Result<File, E> + Send + 'static,
    offset: u64,
    out: &mut W,
    data_timeout: Duration,
) -> Result<u64, E>
where
    W: AsyncWrite + Unpin + ?Sized,
    E: From<io::Error> + Send + 'static,
{
    let pace = pace::current();
    match zero_copy_socket()? {
        Some(socket) => {
            run_cancellable(move |cancelled| {
                let file = open()?;
                Ok(zero_copy::send_file(
                    &socket,
                    &file,
                    offset,
                    cancelled,
                    data_timeout,
                    &pace,
                )?)
            })
            .await
        }
        None => {
            let file = run_cancellable(move |_| open()).await?;
            let mut out = IdleStream::new(out, data_timeout);
            Ok(buffered::send_file(file, offset, &mut out, ascii_mode(), &pace).await?)
        }
    }
}

/// Sends `content` (a small file already read) to the client; returns the bytes sent.
pub async fn send_bytes<W>(content: &[u8], out: &mut W, data_timeout: Duration) -> io::Result<u64>
where
    W: AsyncWrite + Unpin + ?Sized,
{
    use tokio::io::AsyncWriteExt;
    let mut converted = Vec::new();
    let wire = if ascii_mode() {
        ascii::ToCrlf::default().convert(content, &mut converted);
        &converted
    } else {
        content
    };
    let mut out = IdleStream::new(out, data_timeout);
    out.write_all(wire).await?;
    out.flush().await?;
    pace::current().after_chunk_async(wire.len() as u64).await?;
    Ok(wire.len() as u64)
}

/// Receives the client's upload until end of stream into a file; returns the bytes received.
///
/// `open` gives the file to write from byte `offset` and whatever `finish` needs. `finish`
/// runs once every byte has arrived and been written, and decides whether the upload stands
/// (an atomic upload renames its temporary file there). If the transfer fails or is
/// abandoned, `finish` does not run and what `open` gave is dropped, always after the last
/// write to the file (so a drop that undoes the upload sees every byte it has to undo). On a
/// plaintext data socket the three steps run on one blocking-pool thread and the bytes move
/// with splice(2), unless the upload's SHA-256 is wanted ([`digest::sha256_of_upload`]): its
/// bytes must then pass through memory, so it takes the buffered path, which hashes them on
/// the writer thread. A client that sends no byte for `data_timeout` ends the transfer with
/// `TimedOut`.
pub async fn receive_into_file<R, E, T>(
    input: &mut R,
    offset: u64,
    open: impl FnOnce() -> Result<(File, T), E> + Send + 'static,
    finish: impl FnOnce(T) -> Result<(), E> + Send + 'static,
    data_timeout: Duration,
) -> Result<u64, E>
where
    R: AsyncRead + Unpin + ?Sized,
    E: From<io::Error> + Send + 'static,
    T: Send + 'static,
{
    let pace = pace::current();
    let hasher = digest::UploadHasher::wanted();
    let socket = match hasher {
        Some(_) => None,
        None => zero_copy_socket()?,
    };
    match socket {
        Some(socket) => {
            run_cancellable(move |cancelled| {
                let (file, opened) = open()?;
                let received = zero_copy::receive_into_file(
                    &socket,
                    &file,
                    offset,
                    cancelled,
                    data_timeout,
                    &pace,
                )?;
                drop(file);
                finish(opened)?;
                Ok(received)
            })
            .await
        }
        None => {
            let (file, opened) = run_cancellable(move |_| open()).await?;
            let mut input = IdleStream::new(input, data_timeout);
            let (received, opened) = buffered::receive_into_file(
                &mut input,
                file,
                offset,
                opened,
                ascii_mode(),
                &pace,
                hasher,
            )
            .await?;
            run_cancellable(move |_| finish(opened)).await?;
            Ok(received)
        }
    }
}

/// Whether the transfer this task serves runs in TYPE A (libunftp says so: the ascii-type patch).
fn ascii_mode() -> bool {
    libunftp::storage::ascii_transfer()
}

/// The plaintext data socket to move bytes with sendfile or splice: the one libunftp lends,
/// except in TYPE A, whose bytes must be converted on the way.
fn zero_copy_socket() -> io::Result<Option<std::os::fd::OwnedFd>> {
    if ascii_mode() {
        return Ok(None);
    }
    zero_copy::lent_data_socket()
}

/// Waits until the client has acknowledged every byte sent on the plaintext data socket lent to
/// this transfer (the socket's send queue is empty), or it hangs up (`ConnectionReset`), or
/// `limit` passes (`TimedOut`). TLS data connections return at once: their close is libunftp's.
pub async fn await_delivery(limit: Duration) -> io::Result<()> {
    let Some(socket) = zero_copy::lent_data_socket()? else {
        return Ok(());
    };
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match zero_copy::delivery_state(&socket)? {
            zero_copy::Delivery::Done => return Ok(()),
            zero_copy::Delivery::PeerGone => {
                return Err(io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    "the client closed the data connection before receiving everything",
                ));
            }
            zero_copy::Delivery::Pending => {}
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client did not take the last bytes in time",
            ));
        }
        tokio::time::sleep(DELIVERY_POLL_INTERVAL).await;
    }
}

/// How often [`await_delivery`] looks at the send queue.
const DELIVERY_POLL_INTERVAL: Duration = Duration::from_millis(10);

/// Runs `work` on the blocking pool; if the returned future is dropped, `work` sees its flag
/// raised and stops at its next check.
async fn run_cancellable<T, E, F>(work: F) -> Result<T, E>
where
    T: Send + 'static,
    E: From<io::Error> + Send + 'static,
    F: FnOnce(&AtomicBool) -> Result<T, E> + Send + 'static,
{
    let cancelled = Arc::new(AtomicBool::new(false));
    let _raise_when_dropped = RaiseWhenDropped(cancelled.clone());
    tokio::task::spawn_blocking(move || work(&cancelled))
        .await
        .unwrap_or_else(|join_error| Err(io::Error::other(join_error).into()))
}

/// Raises its flag when dropped: on completion (harmless) and on cancellation (the point).
struct RaiseWhenDropped(Arc<AtomicBool>);

impl Drop for RaiseWhenDropped {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}
