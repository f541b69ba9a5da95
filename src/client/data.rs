//! Data connections: the socket a transfer or listing flows over, plain or TLS (`PROT P`),
//! with the parsing of EPSV/PASV replies and the PORT/EPRT arguments for active mode.
//!
//! Reads and writes wake up every [`POLL_INTERVAL`] so that Ctrl-C cancels a stalled transfer
//! and a data connection that stops moving gives up after [`DATA_IDLE_TIMEOUT`].

use super::interrupt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};
use suppaftp::rustls::pki_types::ServerName;
use suppaftp::rustls::{ClientConfig, ClientConnection, StreamOwned};

/// A data connection that moves no byte for this long is given up: long enough for a busy
/// server to open a large file or flush a large upload to disk.
pub const DATA_IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// How long an upload waits for the server to close the data connection after the last byte.
/// Servers close it as soon as they have read the end of the file; this only bounds the wait
/// for one that does not.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// How often a blocked read or write wakes up to check for Ctrl-C: short enough to feel
/// immediate, long enough to cost nothing.
const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// The error a read or write returns once Ctrl-C was pressed (callers check
/// [`interrupt::requested`] to tell it apart).
fn cancelled() -> io::Error {
    io::Error::other("transfer cancelled")
}

/// How data connections of an FTPS session are secured: the session's TLS configuration and
/// the name the server's certificate was checked against.
pub type DataTls = (Arc<ClientConfig>, ServerName<'static>);

enum Stream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

/// An open data connection. Reading it to the end, or writing it and calling
/// [`DataConnection::finish_writing`], leaves the final reply on the control connection.
pub struct DataConnection {
    stream: Stream,
}

impl DataConnection {
    /// Wraps a connected socket. With TLS, the handshake happens on first use, after the
    /// server's preliminary reply, which is when servers start listening for it.
    pub fn new(socket: TcpStream, tls: Option<&DataTls>) -> Result<Self, io::Error> {
        socket.set_read_timeout(Some(POLL_INTERVAL))?;
        socket.set_write_timeout(Some(POLL_INTERVAL))?;
        let stream = match tls {
            None => Stream::Plain(socket),
            Some((config, name)) => {
                let connection = ClientConnection::new(config.clone(), name.clone())
                    .map_err(io::Error::other)?;
                Stream::Tls(Box::new(StreamOwned::new(connection, socket)))
            }
        };
        Ok(DataConnection { stream })
    }

    /// Ends an upload: flushes, sends TLS close_notify, half-closes the socket so the server
    /// sees the end of the file, and waits for the server to close its side.
    pub fn finish_writing(mut self) -> io::Result<()> {
        self.flush()?;
        match &mut self.stream {
            Stream::Plain(socket) => {
                socket.shutdown(Shutdown::Write)?;
                drain(socket);
            }
            Stream::Tls(tls) => {
                tls.conn.send_close_notify();
                retry_until_idle(|| tls.flush())?;
                tls.sock.shutdown(Shutdown::Write)?;
                // Read through TLS, not the raw socket: the session tickets the server sent on
                // this connection go into the session cache, and each later data connection
                // needs a fresh one to resume the session (vsftpd's require_ssl_reuse).
                drain(tls.as_mut());
            }
        }
        Ok(())
    }
}

/// Reads and discards until the server closes the connection (or [`DRAIN_TIMEOUT`]). Closing a
/// socket with unread data in it (a TLS server's close_notify or session ticket) sends a reset,
/// and a reset can destroy the end of an upload before the server has read it: vsftpd then
/// answers "426 Failure reading network stream" and keeps a truncated file.
fn drain(socket: &mut dyn Read) {
    let started = Instant::now();
    let mut discard = [0u8; 4096];
    loop {
        match socket.read(&mut discard) {
            Ok(0) => return,
            Ok(_) => {}
            Err(error)
                if is_wakeup(&error)
                    && started.elapsed() < DRAIN_TIMEOUT
                    && !interrupt::requested() => {}
            // Reset or closed, or waited long enough: nothing left to protect.
            Err(_) => return,
        }
    }
}

/// A read or write that only woke up for a poll interval or a signal, and can be retried.
fn is_wakeup(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// Runs `op` again while it only timed out on a poll interval or was interrupted by a signal,
/// until Ctrl-C or [`DATA_IDLE_TIMEOUT`].
fn retry_until_idle<T>(mut op: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    let started = Instant::now();
    loop {
        if interrupt::requested() {
            return Err(cancelled());
        }
        match op() {
            Err(error) if is_wakeup(&error) => {
                if started.elapsed() >= DATA_IDLE_TIMEOUT {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("no data for {} s", DATA_IDLE_TIMEOUT.as_secs()),
                    ));
                }
            }
            other => return other,
        }
    }
}

impl Read for DataConnection {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.stream {
            Stream::Plain(socket) => retry_until_idle(|| socket.read(buf)),
            // Many servers close the data connection without TLS close_notify. Completeness
            // is checked by the caller instead: the 226 reply and the size the server announced.
            Stream::Tls(tls) => match retry_until_idle(|| tls.read(buf)) {
                Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
                other => other,
            },
        }
    }
}

impl Write for DataConnection {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.stream {
            Stream::Plain(socket) => retry_until_idle(|| socket.write(buf)),
            Stream::Tls(tls) => retry_until_idle(|| tls.write(buf)),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.stream {
            Stream::Plain(socket) => retry_until_idle(|| socket.flush()),
            Stream::Tls(tls) => retry_until_idle(|| tls.flush()),
        }
    }
}

/// The port of an EPSV reply: `229 Entering Extended Passive Mode (|||6446|)` (RFC 2428).
pub fn parse_epsv_port(text: &str) -> Option<u16> {
    let open = text.find('(')?;
    let inner = &text[open + 1..text[open..].find(')')? + open];
    let delimiter = inner.chars().next()?;
    let fields: Vec<&str> = inner.split(delimiter).collect();
    // (<d><d><d><port><d>) splits into ["", "", "", port, ""].
    match fields.as_slice() {
        ["", "", "", port, ""] => port.parse().ok().filter(|&port| port != 0),
        _ => None,
    }
}

/// The port of a PASV reply: `227 Entering Passive Mode (h1,h2,h3,h4,p1,p2)`.
///
/// Only the port is used; the data connection goes to the control connection's server address,
/// as curl does by default. An announced address that differs is either a misconfigured NAT
/// (a private address nobody outside can reach) or a server trying to make the client connect
/// somewhere else.
pub fn parse_pasv_port(text: &str) -> Option<u16> {
    // The six numbers are the one run of digits and commas with five commas in it.
    let numbers = text
        .split(|c: char| !(c.is_ascii_digit() || c == ','))
        .find(|run| run.matches(',').count() == 5)?;
    let numbers: Vec<u8> = numbers
        .split(',')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    match numbers.as_slice() {
        [_, _, _, _, high, low] => Some(u16::from(*high) << 8 | u16::from(*low)),
        _ => None,
    }
}

/// The argument of `EPRT` for a local listening address: `|1|192.0.2.1|6446|` (RFC 2428).
pub fn eprt_argument(address: SocketAddr) -> String {
    let family = if address.is_ipv4() { 1 } else { 2 };
    format!("|{family}|{}|{}|", address.ip(), address.port())
}

/// The argument of `PORT`, which only IPv4 has: `192,0,2,1,25,46`.
pub fn port_argument(address: SocketAddr) -> Option<String> {
    let IpAddr::V4(ip) = address.ip() else {
        return None;
    };
    let [a, b, c, d] = ip.octets();
    let [high, low] = address.port().to_be_bytes();
    Some(format!("{a},{b},{c},{d},{high},{low}"))
}

/// Active mode: waits for the server to connect to `listener`, refusing connections from any
/// address but the server's own (anyone else would be hijacking the transfer).
pub fn accept_from(
    listener: &TcpListener,
    server: IpAddr,
    timeout: Duration,
) -> io::Result<TcpStream> {
    listener.set_nonblocking(true)?;
    let deadline = Instant::now() + timeout;
    loop {
        if interrupt::requested() {
            return Err(cancelled());
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the server did not connect for active mode",
            ));
        }
        wait_readable(listener, (deadline - now).min(POLL_INTERVAL))?;
        match listener.accept() {
            Ok((socket, peer)) if peer.ip() == server => {
                socket.set_nonblocking(false)?;
                return Ok(socket);
            }
            Ok(_) => continue,
            Err(error)
                if matches!(
                    error.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                continue;
            }
            Err(error) => return Err(error),
        }
    }
}

/// Blocks until `listener` has a connection to accept or `timeout` passes.
fn wait_readable(listener: &TcpListener, timeout: Duration) -> io::Result<()> {
    let mut poll_fd = libc::pollfd {
        fd: listener.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let millis = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: one valid pollfd for a descriptor `listener` keeps open during the call.
    let ready = unsafe { libc::poll(&mut poll_fd, 1, millis) };
    if ready < 0 {
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epsv_replies_give_their_port() {
        assert_eq!(
            parse_epsv_port("229 Entering Extended Passive Mode (|||6446|)"),
            Some(6446)
        );
        assert_eq!(parse_epsv_port("229 EPSV ok (!!!40001!)"), Some(40001));
        assert_eq!(parse_epsv_port("229 Entering Extended Passive Mode"), None);
        assert_eq!(parse_epsv_port("229 (|||99999|)"), None);
        assert_eq!(parse_epsv_port("229 (|||0|)"), None);
    }

    #[test]
    fn pasv_replies_give_their_port_whatever_the_address() {
        assert_eq!(
            parse_pasv_port("227 Entering Passive Mode (10,0,0,5,156,64)."),
            Some(156 * 256 + 64)
        );
        assert_eq!(
            parse_pasv_port("227 Entering Passive Mode 127,0,0,1,117,56"),
            Some(30008)
        );
        assert_eq!(parse_pasv_port("227 Entering Passive Mode (1,2,3)"), None);
        assert_eq!(parse_pasv_port("227 (1,2,3,4,5,300)"), None);
    }

    #[test]
    fn active_mode_arguments_follow_rfc_959_and_2428() {
        let v4: SocketAddr = "192.0.2.1:6446".parse().expect("address");
        let v6: SocketAddr = "[2001:db8::1]:6446".parse().expect("address");
        assert_eq!(eprt_argument(v4), "|1|192.0.2.1|6446|");
        assert_eq!(eprt_argument(v6), "|2|2001:db8::1|6446|");
        assert_eq!(port_argument(v4).as_deref(), Some("192,0,2,1,25,46"));
        assert_eq!(port_argument(v6), None);
    }
}
