//! The data-connection inactivity limit (`data_timeout`): a transfer during which the client
//! moves no byte for that long ends with `TimedOut`, so a stalled client cannot hold a passive
//! port, a blocking thread and its descriptors for ever. Progress of any size restarts the clock.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

fn timed_out(limit: Duration) -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!(
            "no data moved on the data connection for {} s",
            limit.as_secs()
        ),
    )
}

/// The clock of a blocking transfer loop (sendfile, splice).
#[derive(Debug)]
pub struct IdleClock {
    last_progress: Instant,
    limit: Duration,
}

impl IdleClock {
    pub fn start(limit: Duration) -> Self {
        IdleClock {
            last_progress: Instant::now(),
            limit,
        }
    }

    /// Bytes moved: the clock starts again.
    pub fn progressed(&mut self) {
        self.last_progress = Instant::now();
    }

    /// After a wait for the socket: an error once nothing has moved for the limit.
    pub fn check(&self) -> io::Result<()> {
        if self.last_progress.elapsed() >= self.limit {
            Err(timed_out(self.limit))
        } else {
            Ok(())
        }
    }
}

/// An async stream whose reads and writes fail with `TimedOut` once nothing has moved for the
/// limit (the buffered path: TLS data connections).
pub struct IdleStream<'a, S: ?Sized> {
    inner: &'a mut S,
    limit: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl<'a, S: ?Sized> IdleStream<'a, S> {
    pub fn new(inner: &'a mut S, limit: Duration) -> Self {
        IdleStream {
            inner,
            limit,
            deadline: Box::pin(tokio::time::sleep(limit)),
        }
    }

    /// What a poll of the inner stream came to, with the clock applied: progress restarts it,
    /// waiting past the deadline fails.
    fn clocked<T>(
        &mut self,
        cx: &mut Context<'_>,
        poll: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match poll {
            Poll::Ready(result) => {
                let restart = tokio::time::Instant::now() + self.limit;
                self.deadline.as_mut().reset(restart);
                Poll::Ready(result)
            }
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(timed_out(self.limit))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl<S: AsyncRead + Unpin + ?Sized> AsyncRead for IdleStream<'_, S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let poll = Pin::new(&mut *this.inner).poll_read(cx, buf);
        this.clocked(cx, poll)
    }
}

impl<S: AsyncWrite + Unpin + ?Sized> AsyncWrite for IdleStream<'_, S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let poll = Pin::new(&mut *this.inner).poll_write(cx, buf);
        this.clocked(cx, poll)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let poll = Pin::new(&mut *this.inner).poll_flush(cx);
        this.clocked(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let poll = Pin::new(&mut *this.inner).poll_shutdown(cx);
        this.clocked(cx, poll)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_silent_stream_times_out_and_a_moving_one_does_not() {
        let (mut client, mut server) = tokio::io::duplex(64);
        let limit = Duration::from_millis(200);
        let mut idle = IdleStream::new(&mut server, limit);
        let mut buffer = [0u8; 8];
        // Bytes every 100 ms: never idle for the limit.
        for _ in 0..4 {
            client.write_all(b"x").await.unwrap();
            assert_eq!(idle.read(&mut buffer).await.unwrap(), 1);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let error = idle.read(&mut buffer).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    }

    #[test]
    fn the_blocking_clock_restarts_on_progress() {
        let mut clock = IdleClock::start(Duration::from_millis(50));
        assert!(clock.check().is_ok());
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(clock.check().unwrap_err().kind(), io::ErrorKind::TimedOut);
        clock.progressed();
        assert!(clock.check().is_ok());
    }
}
