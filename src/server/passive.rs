//! Passive-mode listening sockets, created by Ferry rather than libunftp (its `binder` hook).
//!
//! libunftp answers each PASV/EPSV by binding a listener and spawning a task that waits up to
//! 15 s for the client to connect. A client that repeats PASV without ever connecting would
//! hold a new port per command, and a few hundred commands a second empty the whole passive
//! range for everyone. Ferry builds one binder per session, so the binder stops the session's
//! pending listener before binding the next: each session holds at most one passive port that
//! nobody has connected to. It stops it by dropping the sender whose receiver libunftp's
//! waiting task watches (the `passive-cancel` patch): the task ends and the listener closes with
//! it, and Ferry holds no descriptor, no timer and no task of its own per listener.

use async_trait::async_trait;
use std::hash::{BuildHasher, RandomState};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use tokio::net::TcpSocket;
use tokio::sync::oneshot;

/// Ports tried per PASV/EPSV before answering 425; the range is walked from a random start.
const BIND_ATTEMPTS: usize = 64;

/// Binds one passive listener per PASV/EPSV in the configured port range, on the address the
/// client reached the server on, with TCP_NODELAY set so accepted data sockets inherit it
/// (without it, the reply after a small transfer waits ~40 ms for the client's delayed ACK).
/// One binder serves one session (see the module docs).
#[derive(Debug, Default)]
pub struct PassiveBinder {
    /// Ends the wait on this session's previous listener when dropped: before the next bind,
    /// and with the session.
    pending: Option<oneshot::Sender<()>>,
}

#[async_trait]
impl libunftp::options::Binder for PassiveBinder {
    async fn bind(
        &mut self,
        local_ip: IpAddr,
        ports: RangeInclusive<u16>,
    ) -> io::Result<TcpSocket> {
        // Dropping the previous sender stops that listener, freeing its port for this bind or
        // anyone else's (the waiting task runs on another worker and closes it at once).
        self.pending = None;
        bind_in_range(local_ip, ports)
    }

    fn until_superseded(&mut self) -> Option<oneshot::Receiver<()>> {
        let (sender, receiver) = oneshot::channel();
        self.pending = Some(sender);
        Some(receiver)
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

#[cfg(test)]
mod tests {
    use super::*;
    use libunftp::options::Binder;
    use std::net::Ipv4Addr;
    use std::time::Duration;

    const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    type Waiting = tokio::task::JoinHandle<io::Result<(tokio::net::TcpStream, SocketAddr)>>;

    /// Binds through `binder` and then does what libunftp does with the socket: listen, and
    /// wait in accept (for 15 s) until the binder's receiver says the listener is superseded.
    /// Returns the port and the waiting task, which owns (and closes) the listener.
    async fn pending_listener(binder: &mut PassiveBinder) -> (u16, Waiting) {
        let socket = binder.bind(LOOPBACK, 1024..=65535).await.expect("bind");
        let superseded = binder.until_superseded().expect("a receiver");
        let port = socket.local_addr().expect("address").port();
        let listener = socket.listen(1024).expect("listen");
        let waiting = tokio::spawn(async move {
            tokio::select! {
                accepted = tokio::time::timeout(Duration::from_secs(15), listener.accept()) => {
                    accepted.unwrap_or_else(|_| Err(io::Error::other("timed out")))
                }
                _ = superseded => Err(io::Error::other("superseded")),
            }
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
