//! One logged-in FTP or FTPS session: connecting and logging in over suppaftp, the control
//! commands, and opening data connections (EPSV, falling back to PASV; or PORT/EPRT).
//!
//! Data connections are opened here rather than by suppaftp's `retr`/`put`/`list`: suppaftp
//! 7.1 leaves its "data connection open" flag set when the server refuses a transfer (a `550`
//! for a missing file), after which every later transfer on the session fails
//! (veeso/suppaftp#155). It also parses EPSV, PASV and SIZE replies with `unwrap`.

use super::data::{self, DataConnection, DataTls};
use super::error::{ClientError, reply_parts};
use super::listing::{self, Entry};
use super::target::Target;
use std::io::{self, Read};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};
use suppaftp::rustls::ClientConfig;
use suppaftp::types::{FileType, Response};
use suppaftp::{FtpStream, RustlsConnector, RustlsFtpStream, Status};

/// How long to wait for a TCP connection, control or data, to be established.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// How long a reply may take. Generous because a server answers a STOR only once the file is
/// on disk, and answers the final reply of a large RETR only after the last byte.
const REPLY_TIMEOUT: Duration = Duration::from_secs(120);

/// Largest listing read into memory: millions of entries, yet a server that never stops
/// sending cannot exhaust the client's memory.
const MAX_LISTING_BYTES: u64 = 256 * 1024 * 1024;

/// Replies that open a data transfer (RFC 959): 150 "opening", 125 "already open".
const PRELIMINARY: &[Status] = &[Status::AboutToSend, Status::AlreadyOpen];

/// Replies that complete a file action: 250, or 200 from some servers.
const FILE_ACTION_DONE: &[Status] = &[Status::RequestedFileActionOk, Status::CommandOk];

/// How to connect.
#[derive(Clone, Default)]
pub struct ConnectOptions {
    /// Set for `ftps://`.
    pub tls: Option<Arc<ClientConfig>>,
    /// `--active`: the server connects back to us (PORT/EPRT) instead of passive mode.
    pub active: bool,
}

/// What FEAT said the server supports, as far as the client cares.
#[derive(Debug, Clone, Copy, Default)]
pub struct Features {
    /// `REST STREAM`: REST before STOR and RETR resumes a transfer (RFC 3659 section 5).
    pub rest_stream: bool,
    /// `MLST`: MLST and MLSD give machine-readable listings.
    pub mlst: bool,
}

enum Control {
    Plain(FtpStream),
    Tls(Box<RustlsFtpStream>),
}

/// Runs `$body` with `$ftp` bound to the control stream, whichever kind it is.
macro_rules! on_control {
    ($session:expr, $ftp:ident => $body:expr) => {
        match &mut $session.control {
            Control::Plain($ftp) => $body,
            Control::Tls($ftp) => $body,
        }
    };
}

pub struct Session {
    control: Control,
    /// For FTPS: data connections are TLS too (PROT P), with the control connection's config.
    data_tls: Option<DataTls>,
    active: bool,
    /// The server refused EPSV once; PASV from then on.
    epsv_refused: bool,
    /// The server's address on the control connection: where passive data connections go.
    server: SocketAddr,
    /// Our address on the control connection: where active mode listens.
    local: IpAddr,
    pub features: Features,
    /// The server's 220 greeting.
    pub greeting: String,
}

impl Session {
    /// Connects, secures the connection for `ftps://`, logs in, switches to binary, reads FEAT,
    /// and changes to the URL's directory.
    pub fn open(
        target: &Target,
        password: &str,
        options: &ConnectOptions,
    ) -> Result<Session, ClientError> {
        let socket = connect(&target.host, target.port)?;
        let server = socket.peer_addr().map_err(ClientError::Data)?;
        let local = socket.local_addr().map_err(ClientError::Data)?.ip();
        socket
            .set_read_timeout(Some(REPLY_TIMEOUT))
            .and_then(|()| socket.set_write_timeout(Some(REPLY_TIMEOUT)))
            .and_then(|()| socket.set_nodelay(true))
            .map_err(ClientError::Data)?;
        let (control, data_tls) = match &options.tls {
            None => (
                Control::Plain(FtpStream::connect_with_stream(socket)?),
                None,
            ),
            Some(config) => {
                let name = super::tls::server_name(&target.host)
                    .map_err(|error| ClientError::Tls(error.to_string()))?;
                let stream = RustlsFtpStream::connect_with_stream(socket)?
                    .into_secure(RustlsConnector::from(config.clone()), &target.host)
                    .map_err(|error| match ClientError::from(error) {
                        ClientError::Reply { code, text } => ClientError::Tls(format!(
                            "the server refused AUTH TLS ({code} {text}); is it an FTPS server?"
                        )),
                        other => other,
                    })?;
                (Control::Tls(Box::new(stream)), Some((config.clone(), name)))
            }
        };
        let mut session = Session {
            control,
            data_tls,
            active: options.active,
            epsv_refused: false,
            server,
            local,
            features: Features::default(),
            greeting: String::new(),
        };
        session.greeting = on_control!(session, ftp => ftp.get_welcome_msg())
            .map(super::error::reply_text)
            .unwrap_or_default();
        reject_line_breaks(&target.user)?;
        reject_line_breaks(password)?;
        on_control!(session, ftp => ftp.login(target.user.as_str(), password))?;
        on_control!(session, ftp => ftp.transfer_type(FileType::Binary))?;
        session.read_features()?;
        if let Some(dir) = &target.dir {
            session.cwd(dir)?;
        }
        Ok(session)
    }

    fn read_features(&mut self) -> Result<(), ClientError> {
        let features = match on_control!(self, ftp => ftp.feat()) {
            Ok(features) => features,
            // FEAT is optional (RFC 2389): a server without it just gets the basics.
            Err(suppaftp::FtpError::UnexpectedResponse(_)) => return Ok(()),
            Err(error) => return Err(error.into()),
        };
        let has = |name: &str| {
            features
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(name))
                .map(|(_, value)| value.clone().unwrap_or_default())
        };
        self.features = Features {
            rest_stream: has("REST").is_some_and(|value| value.eq_ignore_ascii_case("STREAM")),
            mlst: has("MLST").is_some(),
        };
        if has("UTF8").is_some() {
            // RFC 2640: ask for UTF-8 names; a refusal changes nothing.
            match self.command("OPTS UTF8 ON", &[Status::CommandOk]) {
                Ok(_) | Err(ClientError::Reply { .. }) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }

    /// Sends one command line and reads its reply, which must have one of the `expected`
    /// codes. Refuses line breaks, which would smuggle a second command onto the connection.
    pub fn command(&mut self, line: &str, expected: &[Status]) -> Result<Response, ClientError> {
        reject_line_breaks(line)?;
        Ok(on_control!(self, ftp => ftp.custom_command(line, expected))?)
    }

    /// NOOP; returns the round-trip time.
    pub fn noop(&mut self) -> Result<Duration, ClientError> {
        let started = Instant::now();
        self.command("NOOP", &[Status::CommandOk])?;
        Ok(started.elapsed())
    }

    pub fn pwd(&mut self) -> Result<String, ClientError> {
        let reply = self.command("PWD", &[Status::PathCreated])?;
        let (_, text) = reply_parts(&reply);
        quoted_path(&text).ok_or(ClientError::Protocol(text))
    }

    pub fn cwd(&mut self, path: &str) -> Result<(), ClientError> {
        self.file_action("CWD", path)
    }

    pub fn mkdir(&mut self, path: &str) -> Result<(), ClientError> {
        let ok = [Status::PathCreated, Status::RequestedFileActionOk];
        self.command(&format!("MKD {path}"), &ok).map(drop)
    }

    pub fn rmdir(&mut self, path: &str) -> Result<(), ClientError> {
        self.file_action("RMD", path)
    }

    pub fn rm(&mut self, path: &str) -> Result<(), ClientError> {
        self.file_action("DELE", path)
    }

    /// A command on one path that answers 250 (RFC 959), or 200 from some servers.
    fn file_action(&mut self, verb: &str, path: &str) -> Result<(), ClientError> {
        self.command(&format!("{verb} {path}"), FILE_ACTION_DONE)
            .map(drop)
    }

    pub fn rename(&mut self, from: &str, to: &str) -> Result<(), ClientError> {
        self.command(&format!("RNFR {from}"), &[Status::RequestFilePending])?;
        self.file_action("RNTO", to)
    }

    /// SIZE (RFC 3659), in bytes; we are always in binary mode, so this is the file's length.
    pub fn size(&mut self, path: &str) -> Result<u64, ClientError> {
        let reply = self.command(&format!("SIZE {path}"), &[Status::File])?;
        let (_, text) = reply_parts(&reply);
        text.trim().parse().map_err(|_| ClientError::Protocol(text))
    }

    /// MLST (RFC 3659): the facts about one path. The entry's name is the path.
    pub fn mlst(&mut self, path: &str) -> Result<Entry, ClientError> {
        let reply = self.command(&format!("MLST {path}"), &[Status::RequestedFileActionOk])?;
        let body = String::from_utf8_lossy(&reply.body).into_owned();
        // The entry is the one line that starts with a space (RFC 3659 section 7.2).
        body.lines()
            .find_map(|line| line.strip_prefix(' ').and_then(listing::parse_mlsx))
            .ok_or(ClientError::Protocol(body))
    }

    /// Whether `path` is a directory on the server.
    pub fn is_dir(&mut self, path: &str) -> Result<bool, ClientError> {
        if self.features.mlst {
            return match self.mlst(path) {
                Ok(entry) => Ok(entry.kind == listing::EntryKind::Dir),
                Err(ClientError::Reply { .. }) => Ok(false),
                Err(error) => Err(error),
            };
        }
        // Without MLST, try to enter it and come back.
        let here = self.pwd()?;
        match self.cwd(path) {
            Ok(()) => self.cwd(&here).map(|()| true),
            Err(ClientError::Reply { .. }) => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// REST: the next RETR or STOR starts at `offset`.
    pub fn rest(&mut self, offset: u64) -> Result<(), ClientError> {
        self.command(&format!("REST {offset}"), &[Status::RequestFilePending])
            .map(drop)
    }

    pub fn quit(mut self) -> Result<(), ClientError> {
        self.command("QUIT", &[Status::Closing]).map(drop)
    }

    /// Sends a transfer command (`RETR x`, `STOR x`, `LIST`...) and returns its data connection,
    /// after the server's preliminary reply. Finish with [`Session::finish_data`].
    pub fn open_data(&mut self, command: &str) -> Result<DataConnection, ClientError> {
        let socket = if self.active {
            let listener = self.announce_active_port()?;
            self.command(command, PRELIMINARY)?;
            data::accept_from(&listener, self.server.ip(), CONNECT_TIMEOUT)
                .map_err(ClientError::Data)?
        } else {
            let address = SocketAddr::new(self.server.ip(), self.passive_port()?);
            // Connected before the command is sent: servers may hold the preliminary reply
            // until the data connection is there.
            let socket =
                TcpStream::connect_timeout(&address, CONNECT_TIMEOUT).map_err(ClientError::Data)?;
            self.command(command, PRELIMINARY)?;
            socket
        };
        DataConnection::new(socket, self.data_tls.as_ref()).map_err(ClientError::Data)
    }

    /// Reads the final reply of a transfer (226), once its data connection is closed.
    pub fn finish_data(&mut self) -> Result<(), ClientError> {
        Ok(on_control!(self, ftp => ftp.close_data_connection(io::empty()))?)
    }

    /// Runs a listing command (`LIST x`, `MLSD x`) and returns its lines.
    pub fn listing(&mut self, command: &str) -> Result<Vec<String>, ClientError> {
        let data = self.open_data(command)?;
        let mut bytes = Vec::new();
        let read = data.take(MAX_LISTING_BYTES + 1).read_to_end(&mut bytes);
        if read.is_err() && super::interrupt::requested() {
            return Err(ClientError::Interrupted);
        }
        self.finish_data()?;
        read.map_err(ClientError::Data)?;
        if bytes.len() as u64 > MAX_LISTING_BYTES {
            return Err(ClientError::Protocol(format!(
                "{command}: listing longer than {MAX_LISTING_BYTES} bytes"
            )));
        }
        Ok(String::from_utf8_lossy(&bytes)
            .lines()
            .map(|line| line.trim_end_matches('\r').to_owned())
            .filter(|line| !line.is_empty())
            .collect())
    }

    /// The entries of a remote directory: MLSD when the server has it, else LIST.
    pub fn entries(&mut self, dir: &str) -> Result<Vec<Entry>, ClientError> {
        let (command, parse): (&str, fn(&str) -> Option<Entry>) = if self.features.mlst {
            ("MLSD", listing::parse_mlsx)
        } else {
            ("LIST", listing::parse_list)
        };
        let command = if dir.is_empty() {
            command.to_owned()
        } else {
            format!("{command} {dir}")
        };
        Ok(self
            .listing(&command)?
            .iter()
            .filter_map(|line| parse(line))
            .collect())
    }

    fn passive_port(&mut self) -> Result<u16, ClientError> {
        if !self.epsv_refused {
            match self.command("EPSV", &[Status::ExtendedPassiveMode]) {
                Ok(reply) => {
                    let (_, text) = reply_parts(&reply);
                    return data::parse_epsv_port(&text).ok_or(ClientError::Protocol(text));
                }
                // 500/502 unknown, 501 unsupported address family, 504 refused (RFC 2428).
                Err(ClientError::Reply { code, .. }) if (500..=504).contains(&code) => {
                    self.epsv_refused = true;
                }
                Err(error) => return Err(error),
            }
        }
        let reply = self.command("PASV", &[Status::PassiveMode])?;
        let (_, text) = reply_parts(&reply);
        data::parse_pasv_port(&text).ok_or(ClientError::Protocol(text))
    }

    fn announce_active_port(&mut self) -> Result<TcpListener, ClientError> {
        let listener = TcpListener::bind((self.local, 0)).map_err(ClientError::Data)?;
        let address = listener.local_addr().map_err(ClientError::Data)?;
        let eprt = format!("EPRT {}", data::eprt_argument(address));
        match self.command(&eprt, &[Status::CommandOk]) {
            Ok(_) => Ok(listener),
            Err(ClientError::Reply { code, text }) if (500..=504).contains(&code) => {
                // Servers without RFC 2428 still take PORT, for IPv4.
                let port = data::port_argument(address).ok_or(ClientError::Reply { code, text })?;
                self.command(&format!("PORT {port}"), &[Status::CommandOk])?;
                Ok(listener)
            }
            Err(error) => Err(error),
        }
    }
}

fn connect(host: &str, port: u16) -> Result<TcpStream, ClientError> {
    let name = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let failed = |source| ClientError::Connect {
        addr: name.clone(),
        source,
    };
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address for the host");
    for address in (host, port).to_socket_addrs().map_err(failed)? {
        match TcpStream::connect_timeout(&address, CONNECT_TIMEOUT) {
            Ok(socket) => return Ok(socket),
            Err(error) => last = error,
        }
    }
    Err(failed(last))
}

fn reject_line_breaks(text: &str) -> Result<(), ClientError> {
    if text.contains(['\r', '\n', '\0']) {
        return Err(ClientError::Usage(
            "names and passwords may not contain line breaks or NUL".into(),
        ));
    }
    Ok(())
}

/// The path in a 257 reply: `"/a ""quoted"" dir" is the current directory` (RFC 959 appendix II).
fn quoted_path(text: &str) -> Option<String> {
    let rest = text
        .strip_prefix('"')
        .or_else(|| Some(&text[text.find('"')? + 1..]))?;
    let mut path = String::new();
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '"' {
            if chars.peek() == Some(&'"') {
                chars.next();
            } else {
                return Some(path);
            }
        }
        path.push(c);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pwd_replies_give_their_quoted_path() {
        assert_eq!(
            quoted_path("\"/pub\" is the current directory").as_deref(),
            Some("/pub")
        );
        assert_eq!(
            quoted_path("\"/a \"\"b\"\"\" created").as_deref(),
            Some("/a \"b\"")
        );
        assert_eq!(quoted_path("no quotes"), None);
    }

    #[test]
    fn commands_with_line_breaks_are_refused_before_sending() {
        assert!(matches!(
            reject_line_breaks("x\r\nDELE y"),
            Err(ClientError::Usage(_))
        ));
        assert!(reject_line_breaks("a name with spaces").is_ok());
    }
}
