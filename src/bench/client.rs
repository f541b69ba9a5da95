//! A minimal FTP client for load generation: one control connection, EPSV data connections,
//! large reads and writes, and a bound on every wait.

use super::discard::Discard;
use super::{BenchError, bounded};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::Semaphore;

/// TCP handshakes in flight at once. vsftpd listens with a backlog of 32
/// (`VSFTP_LISTEN_BACKLOG`); past it, SYNs are dropped and connects hang for a retransmit
/// timeout (1 s, then 3 s...), which would measure the backlog rather than the server.
pub const MAX_HANDSHAKES_IN_FLIGHT: usize = 16;

/// Longest reply line accepted; a server that sends more is broken, not slow.
const MAX_REPLY_LINE: u64 = 64 * 1024;

/// Where and how to connect; shared by every session of a scenario.
#[derive(Debug)]
pub struct Connector {
    pub addr: SocketAddr,
    pub user: String,
    pub password: String,
    /// Bounds every single wait (connect, reply, one read or write).
    pub io_timeout: Duration,
    handshakes: Semaphore,
}

impl Connector {
    pub fn new(addr: SocketAddr, user: String, password: String, io_timeout: Duration) -> Self {
        Connector {
            addr,
            user,
            password,
            io_timeout,
            handshakes: Semaphore::new(MAX_HANDSHAKES_IN_FLIGHT),
        }
    }

    /// Connects with at most [`MAX_HANDSHAKES_IN_FLIGHT`] handshakes outstanding.
    pub async fn connect(&self, addr: SocketAddr) -> Result<TcpStream, BenchError> {
        let _permit = self
            .handshakes
            .acquire()
            .await
            .map_err(|_| BenchError::Protocol("handshake limiter closed".into()))?;
        let stream = bounded(self.io_timeout, "connect", TcpStream::connect(addr)).await?;
        // Commands are single small writes; without this each waits for the server's ACK.
        stream.set_nodelay(true)?;
        Ok(stream)
    }
}

/// One FTP reply: its code and its text (all lines).
#[derive(Debug, Clone)]
pub struct Reply {
    pub code: u16,
    pub text: String,
}

/// A logged-in (or about to be) control connection.
pub struct Session {
    connector: Arc<Connector>,
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl Session {
    /// Connects and reads the greeting.
    pub async fn open(connector: Arc<Connector>) -> Result<Session, BenchError> {
        let stream = connector.connect(connector.addr).await?;
        let (read, writer) = stream.into_split();
        let mut session = Session {
            connector,
            reader: BufReader::new(read),
            writer,
        };
        session.expect_reply("greeting", &[220]).await?;
        Ok(session)
    }

    /// Connects and logs in with the scenario's credentials, binary mode.
    pub async fn open_logged_in(connector: Arc<Connector>) -> Result<Session, BenchError> {
        let user = connector.user.clone();
        Session::open_logged_in_as(connector, &user).await
    }

    /// Connects and logs in as `user` with the scenario's password, binary mode.
    pub async fn open_logged_in_as(
        connector: Arc<Connector>,
        user: &str,
    ) -> Result<Session, BenchError> {
        let mut session = Session::open(connector).await?;
        session.login_as(user).await?;
        session.command("TYPE I", &[200]).await?;
        Ok(session)
    }

    /// USER `user` and PASS with the scenario's password (a server may accept USER alone).
    pub async fn login_as(&mut self, user: &str) -> Result<(), BenchError> {
        let user = format!("USER {user}");
        let reply = self.command(&user, &[230, 331]).await?;
        if reply.code == 331 {
            let pass = format!("PASS {}", self.connector.password);
            self.command(&pass, &[230]).await?;
        }
        Ok(())
    }

    /// Sends `line` and expects one of `codes`.
    pub async fn command(&mut self, line: &str, codes: &[u16]) -> Result<Reply, BenchError> {
        self.send(line).await?;
        let what = line.split(' ').next().unwrap_or(line).to_owned();
        self.expect_reply(&what, codes).await
    }

    async fn send(&mut self, line: &str) -> Result<(), BenchError> {
        let limit = self.connector.io_timeout;
        let bytes = format!("{line}\r\n");
        bounded(
            limit,
            "send command",
            self.writer.write_all(bytes.as_bytes()),
        )
        .await
    }

    async fn expect_reply(&mut self, what: &str, codes: &[u16]) -> Result<Reply, BenchError> {
        let reply = self.reply().await?;
        if codes.contains(&reply.code) {
            Ok(reply)
        } else {
            Err(BenchError::UnexpectedReply {
                command: what.to_owned(),
                reply: reply.text.trim_end().to_owned(),
            })
        }
    }

    /// Reads one reply, multi-line ones (`123-` ... `123 `) included.
    async fn reply(&mut self) -> Result<Reply, BenchError> {
        let first = self.line().await?;
        let code = first
            .get(..3)
            .and_then(|code| code.parse::<u16>().ok())
            .ok_or_else(|| BenchError::Protocol(format!("not a reply: {first:?}")))?;
        let mut text = first.clone();
        if first.as_bytes().get(3) == Some(&b'-') {
            let last = format!("{code} ");
            loop {
                let line = self.line().await?;
                text.push_str(&line);
                if line.starts_with(&last) {
                    break;
                }
            }
        }
        Ok(Reply { code, text })
    }

    async fn line(&mut self) -> Result<String, BenchError> {
        let mut line = String::new();
        let limit = self.connector.io_timeout;
        let mut bounded_reader = (&mut self.reader).take(MAX_REPLY_LINE);
        let read = bounded(limit, "reply", bounded_reader.read_line(&mut line)).await?;
        if read == 0 {
            return Err(BenchError::Protocol("control connection closed".into()));
        }
        Ok(line)
    }

    /// EPSV, then connects to the announced port on the control connection's address.
    pub async fn data_connection(&mut self) -> Result<TcpStream, BenchError> {
        let reply = self.command("EPSV", &[229]).await?;
        let port = reply
            .text
            .split("|||")
            .nth(1)
            .and_then(|rest| rest.split('|').next())
            .and_then(|port| port.parse::<u16>().ok())
            .ok_or_else(|| BenchError::Protocol(format!("bad EPSV reply {:?}", reply.text)))?;
        let addr = SocketAddr::new(self.connector.addr.ip(), port);
        self.connector.connect(addr).await
    }

    /// RETR `path`, counting and discarding the bytes; returns how many arrived.
    pub async fn retr(&mut self, path: &str, discard: &Discard) -> Result<u64, BenchError> {
        let data = self.data_connection().await?;
        self.command(&format!("RETR {path}"), &[125, 150]).await?;
        let received = discard
            .receive_all(&data, self.connector.io_timeout)
            .await?;
        drop(data);
        self.expect_reply("RETR", &[226, 250]).await?;
        Ok(received)
    }

    /// RETR `path` into memory (for small files whose content is checked).
    pub async fn retr_to_vec(&mut self, path: &str) -> Result<Vec<u8>, BenchError> {
        self.read_whole("RETR", path).await
    }

    /// STOR `len` bytes (repetitions of `block`) to `path`; returns the bytes sent.
    pub async fn stor(&mut self, path: &str, len: u64, block: &[u8]) -> Result<u64, BenchError> {
        let mut data = self.data_connection().await?;
        self.command(&format!("STOR {path}"), &[125, 150]).await?;
        let sent = send_repeated(&mut data, len, block, self.connector.io_timeout).await?;
        drop(data);
        self.expect_reply("STOR", &[226, 250]).await?;
        Ok(sent)
    }

    /// LIST `path`; returns the listing.
    pub async fn list(&mut self, path: &str) -> Result<Vec<u8>, BenchError> {
        self.read_whole("LIST", path).await
    }

    /// `verb path` on a new data connection, whose whole content is returned.
    async fn read_whole(&mut self, verb: &'static str, path: &str) -> Result<Vec<u8>, BenchError> {
        let mut data = self.data_connection().await?;
        self.command(&format!("{verb} {path}"), &[125, 150]).await?;
        let mut content = Vec::new();
        let limit = self.connector.io_timeout;
        bounded(limit, verb, data.read_to_end(&mut content)).await?;
        drop(data);
        self.expect_reply(verb, &[226, 250]).await?;
        Ok(content)
    }

    /// SIZE `path`, as the server reports it.
    pub async fn size(&mut self, path: &str) -> Result<u64, BenchError> {
        let reply = self.command(&format!("SIZE {path}"), &[213]).await?;
        reply
            .text
            .get(4..)
            .and_then(|size| size.trim().parse().ok())
            .ok_or_else(|| BenchError::Protocol(format!("bad SIZE reply {:?}", reply.text)))
    }

    /// QUIT, waiting for the goodbye so the server has seen the session end.
    pub async fn quit(mut self) -> Result<(), BenchError> {
        self.command("QUIT", &[221]).await.map(|_| ())
    }
}

/// Writes `len` bytes (repetitions of `block`) to `output`, then closes its sending side;
/// returns the byte count. The send code of every upload and of the raw loopback ceiling.
pub async fn send_repeated<W>(
    output: &mut W,
    len: u64,
    block: &[u8],
    io_timeout: Duration,
) -> Result<u64, BenchError>
where
    W: AsyncWrite + Unpin,
{
    let mut sent = 0u64;
    while sent < len {
        let chunk = (len - sent).min(block.len() as u64) as usize;
        bounded(io_timeout, "data", output.write_all(&block[..chunk])).await?;
        sent += chunk as u64;
    }
    bounded(io_timeout, "closing data", output.shutdown()).await?;
    Ok(sent)
}
