//! Transfers through any async stream (TLS data connections, tests): large-buffer copy loops.
//!
//! Disk I/O is blocking, so each transfer runs one blocking-pool task that does all of its file
//! reads (or writes), connected to the async stream side by a short channel of large buffers.
//! Disk and network then overlap, and a transfer costs one blocking-pool hop in total instead
//! of one per 4–8 KiB (what libunftp's default path does through `tokio::fs`).

use super::ascii::{FromCrlf, ToCrlf};
use super::digest::UploadHasher;
use super::pace::Pace;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

/// Bytes moved per buffer. 256 KiB is where loopback throughput stops improving on the
/// benchmark machine while per-transfer memory (CHUNK × BUFFERS) stays under 1 MiB.
const CHUNK: usize = 256 * 1024;

/// Buffers in flight per transfer: one being filled, one being drained, one queued.
const BUFFERS: usize = 3;

/// Sends `file` from byte `offset` to `out`; returns the bytes sent (on the wire: in TYPE A,
/// `ascii`, with each LF sent as CRLF).
///
/// Download path: blocking reader (pread into a buffer) → channel → async socket writes,
/// with emptied buffers handed back to the reader for reuse.
pub async fn send_file<W>(
    file: File,
    offset: u64,
    out: &mut W,
    ascii: bool,
    pace: &Pace,
) -> io::Result<u64>
where
    W: AsyncWrite + Unpin + ?Sized,
{
    let (full_tx, mut full_rx) = mpsc::channel::<io::Result<Vec<u8>>>(BUFFERS);
    let (empty_tx, mut empty_rx) = mpsc::channel::<Vec<u8>>(BUFFERS);
    let chunk = pace.chunk(CHUNK);
    for _ in 0..BUFFERS {
        // Cannot fail: the channel has room for exactly BUFFERS buffers.
        let _ = empty_tx.try_send(vec![0u8; chunk]);
    }

    let reader = tokio::task::spawn_blocking(move || {
        let mut position = offset;
        while let Some(mut buffer) = empty_rx.blocking_recv() {
            buffer.resize(chunk, 0);
            let read = match read_full(&file, &mut buffer, position) {
                Ok(read) => read,
                Err(error) => {
                    let _ = full_tx.blocking_send(Err(error));
                    return;
                }
            };
            if read == 0 {
                return; // end of file: dropping full_tx ends the writer loop
            }
            position += read as u64;
            buffer.truncate(read);
            if full_tx.blocking_send(Ok(buffer)).is_err() {
                return; // the socket side gave up
            }
        }
    });

    let mut sent = 0u64;
    let mut to_crlf = ascii.then(ToCrlf::default);
    let mut converted = Vec::new();
    let result = async {
        while let Some(buffer) = full_rx.recv().await {
            let buffer = buffer?;
            let wire = match &mut to_crlf {
                Some(to_crlf) => {
                    converted.clear();
                    to_crlf.convert(&buffer, &mut converted);
                    &converted
                }
                None => &buffer,
            };
            out.write_all(wire).await?;
            sent += wire.len() as u64;
            pace.after_chunk_async(wire.len() as u64).await?;
            let _ = empty_tx.send(buffer).await;
        }
        out.flush().await
    }
    .await;
    // Closing both channels stops the reader however the loop above ended.
    drop(full_rx);
    drop(empty_tx);
    let _ = reader.await;
    result.map(|()| sent)
}

/// Receives `input` until end of stream into `file`, starting at byte `offset`; returns the
/// bytes received (on the wire: in TYPE A, `ascii`, each CRLF is stored as LF).
///
/// Upload path: async socket reads fill a buffer → channel → blocking writer (pwrite), with
/// written buffers handed back for reuse. An error on either side stops both.
///
/// `held` is owned by the writer and handed back once it has written its last byte. If this
/// future is dropped midway, the writer still drains the buffers already queued, and `held`
/// is dropped only after that: whatever undoes a failed upload on drop (an append truncating
/// the file back) then runs after every write, never before one.
///
/// With `hasher`, the writer hashes each buffer as it writes it (the bytes stored).
pub async fn receive_into_file<R, T>(
    input: &mut R,
    file: File,
    offset: u64,
    held: T,
    ascii: bool,
    pace: &Pace,
    mut hasher: Option<UploadHasher>,
) -> io::Result<(u64, T)>
where
    R: AsyncRead + Unpin + ?Sized,
    T: Send + 'static,
{
    let (full_tx, mut full_rx) = mpsc::channel::<Vec<u8>>(BUFFERS);
    let (empty_tx, mut empty_rx) = mpsc::channel::<Vec<u8>>(BUFFERS);

    let writer = tokio::task::spawn_blocking(move || -> io::Result<T> {
        let mut position = offset;
        let mut file = file;
        while let Some(buffer) = full_rx.blocking_recv() {
            file.write_all_at(&buffer, position)?;
            if let Some(hasher) = &mut hasher {
                hasher.update(&buffer);
            }
            position += buffer.len() as u64;
            let _ = empty_tx.blocking_send(buffer);
        }
        file.flush()?;
        if let Some(hasher) = hasher {
            // Also when the reading side failed: the caller then has an error, not a digest.
            hasher.finish();
        }
        Ok(held)
    });

    let mut received = 0u64;
    let mut free_buffers = BUFFERS;
    let mut from_crlf = ascii.then(FromCrlf::default);
    let read_result: io::Result<()> = async {
        loop {
            let mut buffer = if free_buffers > 0 {
                free_buffers -= 1;
                Vec::with_capacity(CHUNK)
            } else {
                match empty_rx.recv().await {
                    Some(buffer) => buffer,
                    None => return Ok(()), // the writer stopped: its error is reported below
                }
            };
            buffer.clear();
            let end_of_stream = fill_buffer(input, &mut buffer, pace.chunk(CHUNK)).await?;
            received += buffer.len() as u64;
            pace.after_chunk_async(buffer.len() as u64).await?;
            if let Some(from_crlf) = &mut from_crlf {
                // A new buffer: the conversion shrinks, except for a CR held from the last one.
                let mut converted = Vec::with_capacity(buffer.len() + 1);
                from_crlf.convert(&buffer, &mut converted);
                if end_of_stream {
                    from_crlf.finish(&mut converted);
                }
                buffer = converted;
            }
            if !buffer.is_empty() && full_tx.send(buffer).await.is_err() {
                return Ok(()); // the writer stopped: its error is reported below
            }
            if end_of_stream {
                return Ok(());
            }
        }
    }
    .await;
    drop(full_tx);
    drop(empty_rx);
    let write_result = writer
        .await
        .unwrap_or_else(|join_error| Err(io::Error::other(join_error)));
    // A disk error (ENOSPC) is the more useful report when both sides failed.
    let held = write_result?;
    read_result.map(|()| (received, held))
}

/// Reads from `input` until `buffer` holds `chunk` bytes or the stream ends; true at the end.
async fn fill_buffer<R>(input: &mut R, buffer: &mut Vec<u8>, chunk: usize) -> io::Result<bool>
where
    R: AsyncRead + Unpin + ?Sized,
{
    while buffer.len() < chunk {
        let read = (&mut *input)
            .take((chunk - buffer.len()) as u64)
            .read_buf(buffer)
            .await?;
        if read == 0 {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Reads into `buffer` at `position` until it is full or the file ends.
fn read_full(file: &File, buffer: &mut [u8], position: u64) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match file.read_at(&mut buffer[filled..], position + filled as u64) {
            Ok(0) => break,
            Ok(read) => filled += read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::io::Read;
    use std::time::Duration;

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[tokio::test]
    async fn send_file_streams_every_byte_from_the_offset() {
        let data = pattern(3 * CHUNK + 17);
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&data).unwrap();
        let mut out = Vec::new();
        let sent = send_file(
            file.try_clone().unwrap(),
            0,
            &mut out,
            false,
            &Pace::default(),
        )
        .await
        .unwrap();
        assert_eq!(sent as usize, data.len());
        assert_eq!(out, data);

        let mut tail = Vec::new();
        let sent = send_file(file, 1000, &mut tail, false, &Pace::default())
            .await
            .unwrap();
        assert_eq!(sent as usize, data.len() - 1000);
        assert_eq!(tail, &data[1000..]);
    }

    #[tokio::test]
    async fn receive_into_file_writes_every_byte_at_the_offset() {
        let data = pattern(2 * CHUNK + 5);
        let file = tempfile::tempfile().unwrap();
        let (received, ()) = receive_into_file(
            &mut &data[..],
            file.try_clone().unwrap(),
            3,
            (),
            false,
            &Pace::default(),
            None,
        )
        .await
        .unwrap();
        assert_eq!(received as usize, data.len());
        let mut written = Vec::new();
        (&file).read_to_end(&mut written).unwrap();
        assert_eq!(&written[..3], &[0, 0, 0]);
        assert_eq!(&written[3..], &data[..]);
    }

    /// A client that sends `len` bytes of 7s, then fails (`reset`) or stalls forever.
    struct Client {
        len: usize,
        reset: bool,
    }

    impl AsyncRead for Client {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            match (self.len, self.reset) {
                (0, true) => std::task::Poll::Ready(Err(io::ErrorKind::ConnectionReset.into())),
                (0, false) => std::task::Poll::Pending,
                (len, _) => {
                    let len = len.min(buf.remaining());
                    buf.put_slice(&vec![7u8; len]);
                    self.len -= len;
                    std::task::Poll::Ready(Ok(()))
                }
            }
        }
    }

    #[tokio::test]
    async fn receive_reports_a_broken_stream() {
        let file = tempfile::tempfile().unwrap();
        let mut client = Client {
            len: 5000,
            reset: true,
        };
        let error = receive_into_file(&mut client, file, 0, (), false, &Pace::default(), None)
            .await
            .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::ConnectionReset);
    }

    /// An append undoes itself on drop by truncating the file: that must never run before a
    /// write the abandoned transfer had already queued, or the write would land after it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn what_the_writer_holds_is_dropped_after_its_last_write_when_abandoned() {
        /// Reports the file's length when dropped.
        struct LengthOnDrop(File, Option<tokio::sync::oneshot::Sender<u64>>);
        impl Drop for LengthOnDrop {
            fn drop(&mut self) {
                let len = self.0.metadata().map(|m| m.len()).unwrap_or(0);
                if let Some(report) = self.1.take() {
                    let _ = report.send(len);
                }
            }
        }
        let file = tempfile::tempfile().unwrap();
        let (report, length_at_drop) = tokio::sync::oneshot::channel();
        let held = LengthOnDrop(file.try_clone().unwrap(), Some(report));
        // Three full buffers, then a client that stalls.
        let mut input = Client {
            len: BUFFERS * CHUNK,
            reset: false,
        };
        let pace = Pace::default();
        let mut transfer = Box::pin(receive_into_file(
            &mut input, file, 0, held, false, &pace, None,
        ));
        // One poll queues every buffer for the writer and then waits for an empty one; the
        // transfer is abandoned right there, before the writer has (likely) written anything.
        let first = std::future::poll_fn(|cx| std::task::Poll::Ready(transfer.as_mut().poll(cx)));
        assert!(
            first.await.is_pending(),
            "the stalled transfer is still running"
        );
        drop(transfer);
        let len = tokio::time::timeout(Duration::from_secs(10), length_at_drop)
            .await
            .expect("dropped once the writer is done")
            .expect("reported");
        assert_eq!(len, (BUFFERS * CHUNK) as u64);
    }
}
