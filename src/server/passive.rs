//! Passive-mode listening sockets, created by Ferry rather than libunftp (its `binder` hook).
//!
//! libunftp answers each PASV/EPSV by binding a listener and spawning a task that waits up to
//! [`LIBUNFTP_PASSIVE_ACCEPT_WAIT`] for the client to connect. A client that repeats PASV
//! without ever connecting would hold a new port per command, and a few hundred commands a
//! second empty the whole passive range for everyone. Ferry builds one binder per session, so
//! the binder remembers the session's pending listener and stops it before binding the next:
//! each session holds at most one passive port that nobody has connected to.

use async_trait::async_trait;
use std::hash::{BuildHasher, RandomState};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpSocket;
use tokio::task::AbortHandle;

/// Ports tried per PASV/EPSV before answering 425; the range is walked from a random start.
const BIND_ATTEMPTS: usize = 64;

/// How long libunftp waits in `accept()` on a passive listener (hard-coded in its
/// `passive_common.rs`) before it gives up and closes the listener.
const LIBUNFTP_PASSIVE_ACCEPT_WAIT: Duration = Duration::from_secs(15);

/// How long Ferry keeps its handle on a pending listener: libunftp's wait plus a second, so
/// that a client connecting at the last moment of libunftp's wait is still served.
const PENDING_LISTENER_LIFETIME: Duration =
    Duration::from_secs(LIBUNFTP_PASSIVE_ACCEPT_WAIT.as_secs() + 1);

/// Binds one passive listener per PASV/EPSV in the configured port range, on the address the
/// client reached the server on, with TCP_NODELAY set so accepted data sockets inherit it
/// (without it, the reply after a small transfer waits ~40 ms for the client's delayed ACK).
/// One binder serves one session (see the module docs).
#[derive(Debug, Default)]
pub struct PassiveBinder {
    /// The listener of this session's previous PASV/EPSV, stopped before the next is bound.
    pending: Option<PendingListener>,
}

#[async_trait]
impl libunftp::options::Binder for PassiveBinder {
    async fn bind(
        &mut self,
        local_ip: IpAddr,
        ports: RangeInclusive<u16>,
    ) -> io::Result<TcpSocket> {
        // Dropping the previous one stops it, freeing its port for this bind or anyone else's.
        self.pending = None;
        let socket = bind_in_range(local_ip, ports)?;
        self.pending = Some(PendingListener::track(&socket)?);
        Ok(socket)
    }
}

fn bind_in_range(local_ip: IpAddr, ports: RangeInclusive<u16>) -> io::Result<TcpSocket> {
    let (first, last) = (*ports.start(), *ports.end());
    let span = usize::from(last - first) + 1;
    let start = RandomState::new().hash_one(std::time::Instant::now()) as usize % span;
    let mut last_error = io::Error::new(io::ErrorKind::AddrInUse, "no free passive port");
    for attempt in 0..span.min(BIND_ATTEMPTS) {
        let port = first + ((start + attempt) % span) as u16;
        let socket = if local_ip.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_nodelay(true)?;
        // Ports still in TIME_WAIT from earlier transfers stay usable (Linux never lets
        // two listeners share a port, SO_REUSEADDR or not).
        socket.set_reuseaddr(true)?;
        match socket.bind(SocketAddr::new(local_ip, port)) {
            Ok(()) => return Ok(socket),
            Err(error) => last_error = error,
        }
    }
    Err(last_error)
}

/// A second descriptor on a passive listener that libunftp may still be waiting on.
///
/// Dropping it stops the listener: `shutdown(2)` on a listening socket makes Linux stop
/// listening and wakes a pending `accept()` with an error, so libunftp's waiting task ends and
/// closes its descriptor too. A connection already accepted is a different socket and is not
/// touched. The handle is also dropped once libunftp has stopped waiting by itself, so that it
/// never keeps a port open longer than libunftp would.
#[derive(Debug)]
struct PendingListener {
    listener: Arc<OwnedFd>,
    expiry: AbortHandle,
}

impl PendingListener {
    fn track(socket: &TcpSocket) -> io::Result<Self> {
        let listener = Arc::new(socket.as_fd().try_clone_to_owned()?);
        let expiring = listener.clone();
        let expiry = tokio::spawn(async move {
            tokio::time::sleep(PENDING_LISTENER_LIFETIME).await;
            stop_listening(&expiring);
        })
        .abort_handle();
        Ok(PendingListener { listener, expiry })
    }
}

impl Drop for PendingListener {
    fn drop(&mut self) {
        self.expiry.abort();
        stop_listening(&self.listener);
    }
}

fn stop_listening(listener: &OwnedFd) {
    // SAFETY: `listener` owns an open descriptor for the duration of the call. The result is
    // ignored: ENOTCONN means the socket never listened or already stopped, which is the goal.
    unsafe {
        libc::shutdown(listener.as_raw_fd(), libc::SHUT_RDWR);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libunftp::options::Binder;
    use std::net::Ipv4Addr;

    const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    type Waiting = tokio::task::JoinHandle<io::Result<(tokio::net::TcpStream, SocketAddr)>>;

    /// Binds through `binder` and then does what libunftp does with the socket: listen, and
    /// wait in accept (for 15 s). Returns the port and the waiting task.
    async fn pending_listener(binder: &mut PassiveBinder) -> (u16, Waiting) {
        let socket = binder.bind(LOOPBACK, 1024..=65535).await.expect("bind");
        let port = socket.local_addr().expect("address").port();
        let listener = socket.listen(1024).expect("listen");
        let waiting = tokio::spawn(async move {
            tokio::time::timeout(LIBUNFTP_PASSIVE_ACCEPT_WAIT, listener.accept())
                .await
                .unwrap_or_else(|_| Err(io::Error::other("timed out")))
        });
        (port, waiting)
    }

    /// What the task waiting in accept ended with, asserting it ended at once (not after 15 s).
    async fn woken_promptly(waiting: Waiting) -> io::Result<(tokio::net::TcpStream, SocketAddr)> {
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the pending accept is woken at once")
            .expect("task does not panic")
    }

    #[tokio::test]
    async fn binding_again_stops_the_previous_listener_and_wakes_its_accept() {
        let mut binder = PassiveBinder::default();
        let (first_port, first) = pending_listener(&mut binder).await;
        let (second_port, second) = pending_listener(&mut binder).await;
        let accepted = woken_promptly(first).await;
        assert!(accepted.is_err(), "the stopped listener accepted nothing");
        let refused = std::net::TcpStream::connect((LOOPBACK, first_port));
        assert!(refused.is_err(), "the first port no longer listens");

        let _client = tokio::net::TcpStream::connect((LOOPBACK, second_port))
            .await
            .expect("the latest listener still accepts");
        let accepted = second.await.expect("task does not panic");
        assert!(accepted.is_ok(), "{accepted:?}");
    }

    #[tokio::test]
    async fn dropping_the_binder_stops_its_pending_listener() {
        let mut binder = PassiveBinder::default();
        let (_, waiting) = pending_listener(&mut binder).await;
        drop(binder);
        assert!(woken_promptly(waiting).await.is_err());
    }

    #[tokio::test]
    async fn a_connection_already_accepted_survives_the_next_bind() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut binder = PassiveBinder::default();
        let (port, waiting) = pending_listener(&mut binder).await;
        let mut client = tokio::net::TcpStream::connect((LOOPBACK, port))
            .await
            .expect("connect");
        let (mut data, _) = waiting.await.expect("no panic").expect("accepted");
        let _next = pending_listener(&mut binder).await;
        data.write_all(b"still flowing").await.expect("write");
        drop(data);
        let mut received = Vec::new();
        client.read_to_end(&mut received).await.expect("read");
        assert_eq!(received, b"still flowing");
    }
}
