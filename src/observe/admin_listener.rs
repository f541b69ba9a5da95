//! The admin listener's sockets, bounded: at most [`MAX_ADMIN_CONNECTIONS`] at once, and each
//! closed when the client stops sending for [`READ_IDLE_TIMEOUT`] or has been connected for
//! [`CONNECTION_LIFETIME`].
//!
//! axum's own listener has neither: 300 connections that each sent half a request header stayed
//! open for over a minute, and with a low descriptor limit they took the descriptors the FTP
//! listener needed to accept. Orchestrator probes and a scraper need a handful of connections
//! and a few milliseconds each.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// Admin connections served at once; the next ones wait in the kernel's backlog, holding no
/// descriptor of Ferry's, until one closes.
pub const MAX_ADMIN_CONNECTIONS: usize = 64;

/// How long a connection may send nothing while the server waits for (the rest of) a request:
/// a real client sends a whole request in one packet.
pub const READ_IDLE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long one connection is kept at all, however it trickles; a keep-alive scraper simply
/// reconnects.
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);

/// How long to wait after a failed `accept()` (out of descriptors, say) before trying again.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// A TCP listener that admits [`MAX_ADMIN_CONNECTIONS`] connections at a time.
#[derive(Debug)]
pub struct BoundedListener {
    listener: TcpListener,
    slots: Arc<Semaphore>,
}

impl BoundedListener {
    pub fn new(listener: TcpListener) -> Self {
        BoundedListener {
            listener,
            slots: Arc::new(Semaphore::new(MAX_ADMIN_CONNECTIONS)),
        }
    }
}

impl axum::serve::Listener for BoundedListener {
    type Io = BoundedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        // A slot is taken before accepting, so connections over the cap stay in the backlog.
        let Ok(slot) = self.slots.clone().acquire_owned().await else {
            // The semaphore is never closed; should it be, serve without a cap rather than stop.
            return self.accept_unbounded(None).await;
        };
        self.accept_unbounded(Some(slot)).await
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

impl BoundedListener {
    async fn accept_unbounded(
        &mut self,
        slot: Option<OwnedSemaphorePermit>,
    ) -> (BoundedStream, SocketAddr) {
        loop {
            match self.listener.accept().await {
                Ok((stream, peer)) => return (BoundedStream::new(stream, slot), peer),
                Err(_) => tokio::time::sleep(ACCEPT_ERROR_PAUSE).await,
            }
        }
    }
}

/// One admin connection: reads fail with `TimedOut` once the client has been silent for
/// [`READ_IDLE_TIMEOUT`] or connected for [`CONNECTION_LIFETIME`], which makes the HTTP server
/// close it; the slot is given back when it is dropped.
#[derive(Debug)]
pub struct BoundedStream {
    stream: TcpStream,
    idle: Pin<Box<Sleep>>,
    lifetime: Pin<Box<Sleep>>,
    _slot: Option<OwnedSemaphorePermit>,
}

impl BoundedStream {
    fn new(stream: TcpStream, slot: Option<OwnedSemaphorePermit>) -> Self {
        let now = Instant::now();
        BoundedStream {
            stream,
            idle: Box::pin(tokio::time::sleep_until(now + READ_IDLE_TIMEOUT)),
            lifetime: Box::pin(tokio::time::sleep_until(now + CONNECTION_LIFETIME)),
            _slot: slot,
        }
    }
}

impl AsyncRead for BoundedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if let Poll::Ready(result) = Pin::new(&mut this.stream).poll_read(cx, buf) {
            this.idle.as_mut().reset(Instant::now() + READ_IDLE_TIMEOUT);
            return Poll::Ready(result);
        }
        let idle = this.idle.as_mut().poll(cx).is_ready();
        let expired = this.lifetime.as_mut().poll(cx).is_ready();
        if idle || expired {
            let why = if idle {
                "admin client sent nothing for too long"
            } else {
                "admin connection open for too long"
            };
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, why)));
        }
        Poll::Pending
    }
}

impl AsyncWrite for BoundedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
