//! Passive-mode listening sockets, created by Ferry rather than libunftp (its `binder` hook).

use async_trait::async_trait;
use std::hash::{BuildHasher, RandomState};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use tokio::net::TcpSocket;

/// Ports tried per PASV/EPSV before answering 425; the range is walked from a random start.
const BIND_ATTEMPTS: usize = 64;

/// Binds one passive listener per PASV/EPSV in the configured port range, on the address the
/// client reached the server on, with TCP_NODELAY set so accepted data sockets inherit it
/// (without it, the reply after a small transfer waits ~40 ms for the client's delayed ACK).
#[derive(Debug, Default)]
pub struct PassiveBinder;

#[async_trait]
impl libunftp::options::Binder for PassiveBinder {
    async fn bind(
        &mut self,
        local_ip: IpAddr,
        ports: RangeInclusive<u16>,
    ) -> io::Result<TcpSocket> {
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
}
