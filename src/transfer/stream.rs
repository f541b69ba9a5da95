//! Transfers whose other end is not a file but a stream of chunks (object storage): the client
//! side of an upload or a download, with TYPE A conversion and the data timeout applied.

use super::ascii::{FromCrlf, ToCrlf};
use super::digest::UploadHasher;
use super::idle::IdleStream;
use super::pace::{self, Pace};
use std::io;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Bytes asked of the data connection per read.
const READ_CHUNK: usize = 256 * 1024;

/// An upload as it arrives from the client: bytes to store (in TYPE A, each CRLF as LF).
pub struct Incoming<'a, R: ?Sized> {
    input: IdleStream<'a, R>,
    from_crlf: Option<FromCrlf>,
    scratch: Vec<u8>,
    /// Bytes read from the data connection (on the wire).
    received: u64,
    pace: Pace,
    /// Hashes what is stored, when the upload's digest is wanted ([`super::digest`]).
    hasher: Option<UploadHasher>,
}

impl<'a, R: AsyncRead + Unpin + ?Sized> Incoming<'a, R> {
    pub fn new(input: &'a mut R, data_timeout: Duration) -> Self {
        Incoming {
            input: IdleStream::new(input, data_timeout),
            from_crlf: super::ascii_mode().then(FromCrlf::default),
            scratch: Vec::new(),
            received: 0,
            pace: pace::current(),
            hasher: UploadHasher::wanted(),
        }
    }

    /// Appends what the client sends to `buffer` until it holds `limit` bytes or the upload
    /// ends; true at the end. A client that sends nothing for the data timeout fails it with
    /// `TimedOut`.
    pub async fn fill(&mut self, buffer: &mut Vec<u8>, limit: usize) -> io::Result<bool> {
        let before = buffer.len();
        let ended = self.fill_unhashed(buffer, limit).await?;
        if let Some(hasher) = &mut self.hasher {
            hasher.update(&buffer[before..]);
        }
        if ended && let Some(hasher) = self.hasher.take() {
            hasher.finish();
        }
        Ok(ended)
    }

    async fn fill_unhashed(&mut self, buffer: &mut Vec<u8>, limit: usize) -> io::Result<bool> {
        while buffer.len() < limit {
            let want = (limit - buffer.len()).min(self.pace.chunk(READ_CHUNK)) as u64;
            let read = match &mut self.from_crlf {
                None => (&mut self.input).take(want).read_buf(buffer).await?,
                Some(from_crlf) => {
                    self.scratch.clear();
                    let read = (&mut self.input)
                        .take(want)
                        .read_buf(&mut self.scratch)
                        .await?;
                    from_crlf.convert(&self.scratch, buffer);
                    if read == 0 {
                        from_crlf.finish(buffer);
                    }
                    read
                }
            };
            self.received += read as u64;
            if read == 0 {
                return Ok(true);
            }
            self.pace.after_chunk_async(read as u64).await?;
        }
        Ok(false)
    }

    /// Bytes read from the data connection so far.
    pub fn received(&self) -> u64 {
        self.received
    }
}

/// A download on its way to the client (in TYPE A, each LF sent as CRLF).
pub struct Outgoing<'a, W: ?Sized> {
    out: IdleStream<'a, W>,
    to_crlf: Option<ToCrlf>,
    converted: Vec<u8>,
    /// Bytes written to the data connection (on the wire).
    sent: u64,
    pace: Pace,
}

impl<'a, W: AsyncWrite + Unpin + ?Sized> Outgoing<'a, W> {
    pub fn new(out: &'a mut W, data_timeout: Duration) -> Self {
        Outgoing {
            out: IdleStream::new(out, data_timeout),
            to_crlf: super::ascii_mode().then(ToCrlf::default),
            converted: Vec::new(),
            sent: 0,
            pace: pace::current(),
        }
    }

    pub async fn send(&mut self, chunk: &[u8]) -> io::Result<()> {
        let wire = match &mut self.to_crlf {
            Some(to_crlf) => {
                self.converted.clear();
                to_crlf.convert(chunk, &mut self.converted);
                &self.converted[..]
            }
            None => chunk,
        };
        self.out.write_all(wire).await?;
        self.sent += wire.len() as u64;
        self.pace.after_chunk_async(wire.len() as u64).await
    }

    /// Flushes what is buffered; returns the bytes sent.
    pub async fn finish(mut self) -> io::Result<u64> {
        self.out.flush().await?;
        Ok(self.sent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn incoming_fills_to_the_limit_then_reports_the_end() {
        let data: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        let mut input = &data[..];
        let mut incoming = Incoming::new(&mut input, Duration::from_secs(5));
        let mut buffer = Vec::new();
        assert!(!incoming.fill(&mut buffer, 600).await.unwrap());
        assert_eq!(buffer, &data[..600]);
        buffer.clear();
        assert!(incoming.fill(&mut buffer, 600).await.unwrap());
        assert_eq!(buffer, &data[600..]);
        assert_eq!(incoming.received(), 1000);
    }

    #[tokio::test]
    async fn outgoing_counts_what_it_sent() {
        let mut out = Vec::new();
        let mut outgoing = Outgoing::new(&mut out, Duration::from_secs(5));
        outgoing.send(b"hello ").await.unwrap();
        outgoing.send(b"world").await.unwrap();
        assert_eq!(outgoing.finish().await.unwrap(), 11);
        assert_eq!(out, b"hello world");
    }
}
