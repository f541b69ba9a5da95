//! Test harness: a Ferry server in-process on an ephemeral port with a temporary root and
//! users file, plus a raw FTP control client for the cases stock client libraries hide.
#![allow(dead_code)]

pub mod audit_capture;

use ferry::accounts::auth::UserDirectory;
use ferry::config::Config;
use ferry::server::ServerError;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use suppaftp::tokio::AsyncFtpStream;
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Every test user's password.
pub const PASSWORD: &str = "correct horse battery staple";

/// An account in the test users file.
pub struct TestUser {
    pub name: &'static str,
    pub permissions: &'static [&'static str],
    pub extra: &'static str,
}

pub const ALL: &[&str] = &ferry::accounts::users::Permissions::NAMES;

/// `alice` may do everything; `reader` may only list and download.
pub fn default_users() -> Vec<TestUser> {
    vec![
        TestUser {
            name: "alice",
            permissions: ALL,
            extra: "",
        },
        TestUser {
            name: "reader",
            permissions: &["list", "download"],
            extra: "",
        },
    ]
}

/// Writes a users file for `users`, all with [`PASSWORD`].
pub fn write_users_file(path: &Path, users: &[TestUser]) {
    let hash = ferry::accounts::password::hash_password(PASSWORD).expect("hash test password");
    let mut text = String::new();
    for user in users {
        let permissions: Vec<String> = user
            .permissions
            .iter()
            .map(|p| format!("\"{p}\""))
            .collect();
        text.push_str(&format!(
            "[users.{name}]\npassword = \"{hash}\"\nhome = \"{name}\"\npermissions = [{perms}]\n{extra}\n",
            name = user.name,
            perms = permissions.join(", "),
            extra = user.extra
        ));
    }
    std::fs::write(path, text).expect("write users file");
}

/// A running in-process server; dropped at the end of the test.
pub struct TestServer {
    pub addr: SocketAddr,
    /// The admin HTTP listener, when the test set `admin_bind`.
    pub admin_addr: Option<SocketAddr>,
    /// The implicit-FTPS listener, when the test set `tls.implicit_bind`.
    pub implicit_addr: Option<SocketAddr>,
    /// The passive ports the server was configured with.
    pub passive_ports: std::ops::RangeInclusive<u16>,
    /// The server's users, to await reloads.
    pub users: Arc<UserDirectory>,
    /// The server's TLS config, to await certificate reloads; None when TLS is off.
    pub ftps: Option<Arc<ferry::tls::Ftps>>,
    pub root: PathBuf,
    pub users_file: PathBuf,
    _dir: TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), ServerError>>>,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}, &default_users()).await
    }

    /// Starts a server on 127.0.0.1 with an ephemeral port; `configure` may change any setting.
    pub async fn start_with(configure: impl FnOnce(&mut Config), users: &[TestUser]) -> TestServer {
        Self::start_logging_to(configure, users, test_logger()).await
    }

    /// As `start_with`, with the server logging to `logger` (see `audit_capture`).
    pub async fn start_logging_to(
        configure: impl FnOnce(&mut Config),
        users: &[TestUser],
        logger: slog::Logger,
    ) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().join("root");
        std::fs::create_dir(&root).expect("create root");
        let users_file = dir.path().join("users.toml");
        write_users_file(&users_file, users);
        let mut config = Config {
            bind: "127.0.0.1:0".parse().expect("loopback address"),
            root: root.clone(),
            users_file: users_file.clone(),
            ..Config::default()
        };
        // Below Linux's ephemeral ports (32768-60999), so the tests' own outgoing connections
        // never hold a port the server wants to listen on.
        config.passive_ports = 20000..=24999;
        config.shutdown_grace = Duration::from_secs(10);
        configure(&mut config);
        let passive_ports = config.passive_ports.clone();
        let server = ferry::server::start(config, logger)
            .await
            .expect("server starts");
        let addr = server.local_addr();
        let admin_addr = server.admin_addr();
        let implicit_addr = server.implicit_tls_addr();
        let users = server.authenticator().directory().clone();
        let ftps = server.ftps().cloned();
        let (shutdown, stop) = oneshot::channel::<()>();
        let task = tokio::spawn(server.serve(async move {
            let _ = stop.await;
        }));
        TestServer {
            addr,
            admin_addr,
            implicit_addr,
            passive_ports,
            users,
            ftps,
            root,
            users_file,
            _dir: dir,
            shutdown: Some(shutdown),
            task: Some(task),
        }
    }

    pub fn home(&self, user: &str) -> PathBuf {
        self.root.join(user)
    }

    /// Logs in with suppaftp in extended passive mode (EPSV), binary type.
    pub async fn login(&self, user: &str) -> AsyncFtpStream {
        let mut ftp = self.connect().await;
        ftp.login(user, PASSWORD).await.expect("login");
        ftp.transfer_type(suppaftp::types::FileType::Binary)
            .await
            .expect("TYPE I");
        ftp
    }

    pub async fn connect(&self) -> AsyncFtpStream {
        let mut ftp = AsyncFtpStream::connect(self.addr).await.expect("connect");
        ftp.set_mode(suppaftp::Mode::ExtendedPassive);
        ftp
    }

    pub async fn raw(&self) -> RawSession {
        RawSession::connect(self.addr).await
    }

    /// Raw session logged in as `user`.
    pub async fn raw_login(&self, user: &str) -> RawSession {
        let mut raw = self.raw().await;
        raw.expect("USER ".to_owned() + user, 331).await;
        raw.expect(format!("PASS {PASSWORD}"), 230).await;
        raw.expect("TYPE I", 200).await;
        raw
    }

    /// Signals shutdown and waits for `serve` to return.
    pub async fn stop(mut self) -> Result<(), ServerError> {
        self.begin_stop();
        self.wait().await
    }

    pub fn begin_stop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }

    pub async fn wait(&mut self) -> Result<(), ServerError> {
        let task = self.task.take().expect("server task");
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("server stops within 30 s")
            .expect("server task does not panic")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

fn test_logger() -> slog::Logger {
    match std::env::var("FERRY_TEST_LOG") {
        Ok(level) => ferry::observe::logging::build_logger(
            ferry::observe::logging::LogFormat::Human,
            level.parse().unwrap_or(slog::Level::Info),
        )
        .expect("logging thread"),
        Err(_) => slog::Logger::root(slog::Discard, slog::o!()),
    }
}

/// Deterministic test content of `len` bytes (not periodic at any power of two).
pub fn pattern(len: usize) -> Vec<u8> {
    ferry::bench::pattern(len, 0)
}

/// A control connection spoken to line by line, for what client libraries do not expose.
pub struct RawSession {
    reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
    pub greeting: (u32, String),
    /// The client address data connections come from, when not the default.
    source: Option<std::net::IpAddr>,
}

impl RawSession {
    pub async fn connect(addr: SocketAddr) -> RawSession {
        let stream = TcpStream::connect(addr).await.expect("connect");
        RawSession::over(stream).await
    }

    /// Connects from `source` (a loopback address such as 127.0.0.2), to appear as another
    /// client; data connections then come from `source` too.
    pub async fn connect_from(addr: SocketAddr, source: std::net::IpAddr) -> RawSession {
        let mut session = RawSession::over(connect_from(addr, source).await).await;
        session.source = Some(source);
        session
    }

    /// Takes over a connected control connection and reads the greeting.
    pub async fn over(stream: TcpStream) -> RawSession {
        let (read, writer) = stream.into_split();
        let mut session = RawSession {
            reader: BufReader::new(read),
            writer,
            greeting: (0, String::new()),
            source: None,
        };
        session.greeting = session.reply().await;
        session
    }

    pub async fn send(&mut self, line: impl AsRef<str>) {
        self.writer
            .write_all(format!("{}\r\n", line.as_ref()).as_bytes())
            .await
            .expect("send command");
    }

    /// Reads one (possibly multi-line) reply: its code and full text.
    pub async fn reply(&mut self) -> (u32, String) {
        read_reply(&mut self.reader).await
    }

    /// Sends `line` and asserts the reply code.
    pub async fn expect(&mut self, line: impl AsRef<str>, code: u32) -> String {
        self.send(line.as_ref()).await;
        let (got, text) = self.reply().await;
        assert_eq!(got, code, "reply to {:?}: {text}", line.as_ref());
        text
    }

    /// EPSV, then connects the data socket.
    pub async fn epsv(&mut self, server: SocketAddr) -> TcpStream {
        let text = self.expect("EPSV", 229).await;
        let port: u16 = text
            .split("|||")
            .nth(1)
            .and_then(|rest| rest.split('|').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("bad EPSV reply {text}"));
        let data_port = SocketAddr::new(server.ip(), port);
        match self.source {
            Some(source) => connect_from(data_port, source).await,
            None => TcpStream::connect(data_port)
                .await
                .expect("connect data port"),
        }
    }

    /// The next reply's code, or None if none comes within `within`.
    pub async fn reply_within(&mut self, within: Duration) -> Option<u32> {
        tokio::time::timeout(within, self.reply())
            .await
            .ok()
            .map(|(code, _)| code)
    }

    /// True once the server has closed the control connection.
    pub async fn is_closed(&mut self) -> bool {
        let mut byte = [0u8; 1];
        matches!(
            tokio::time::timeout(Duration::from_secs(10), self.reader.read(&mut byte)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }

    pub fn into_parts(
        self,
    ) -> (
        BufReader<tokio::net::tcp::OwnedReadHalf>,
        tokio::net::tcp::OwnedWriteHalf,
    ) {
        (self.reader, self.writer)
    }
}

/// Connects to the data port a 229 reply (`|||port|`) announces.
pub async fn connect_epsv(server: SocketAddr, reply: &str) -> TcpStream {
    let port: u16 = reply
        .split("|||")
        .nth(1)
        .and_then(|rest| rest.split('|').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("bad EPSV reply {reply}"));
    TcpStream::connect(SocketAddr::new(server.ip(), port))
        .await
        .expect("connect data port")
}

/// Reads one (possibly multi-line) FTP reply from any control stream (plain or TLS): its code
/// and full text.
pub async fn read_reply<R: tokio::io::AsyncBufRead + Unpin>(reader: &mut R) -> (u32, String) {
    let mut text = String::new();
    let mut line = String::new();
    let read = tokio::time::timeout(Duration::from_secs(20), reader.read_line(&mut line))
        .await
        .expect("reply within 20 s")
        .expect("read reply");
    assert!(read > 0, "connection closed while waiting for a reply");
    text.push_str(&line);
    let code: u32 = line
        .get(..3)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad reply line {line:?}"));
    if line.as_bytes().get(3) == Some(&b'-') {
        let end = format!("{code} ");
        loop {
            line.clear();
            let read = reader.read_line(&mut line).await.expect("read reply");
            assert!(read > 0, "connection closed inside a multi-line reply");
            text.push_str(&line);
            if line.starts_with(&end) {
                break;
            }
        }
    }
    (code, text)
}

/// RETR into memory, over plain FTP or FTPS.
pub async fn download<T>(ftp: &mut suppaftp::tokio::ImplAsyncFtpStream<T>, name: &str) -> Vec<u8>
where
    T: suppaftp::tokio::TokioTlsStream + Send,
{
    let mut stream = ftp.retr_as_stream(name).await.expect("RETR accepted");
    let mut data = Vec::new();
    stream.read_to_end(&mut data).await.expect("read download");
    ftp.finalize_retr_stream(stream)
        .await
        .expect("226 after RETR");
    data
}

/// A TCP connection to `addr` from the local address `source`.
pub async fn connect_from(addr: SocketAddr, source: std::net::IpAddr) -> TcpStream {
    let socket = match source {
        std::net::IpAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
        std::net::IpAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
    }
    .expect("socket");
    socket
        .bind(SocketAddr::new(source, 0))
        .expect("bind source address");
    socket.connect(addr).await.expect("connect")
}

/// Reads a whole data connection.
pub async fn read_all(mut data: TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    data.read_to_end(&mut out)
        .await
        .expect("read data connection");
    out
}

/// Lists the names in a directory on disk, sorted (includes hidden files).
pub fn names_on_disk(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// This process's resident memory (VmRSS), for the memory tests that run alone in their binary.
pub fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| {
            value
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map(|kib| kib * 1024)
        .expect("VmRSS line")
}

/// Runs the built `ferry user rescan USER ARGS...` in `dir` (so no `config/ferry.toml` of the
/// working directory is read); panics unless it succeeds; returns what it printed.
pub fn ferry_rescan<S: AsRef<std::ffi::OsStr>>(user: &str, args: &[S], dir: &Path) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["user", "rescan", user])
        .args(args)
        .env_remove("FERRY_CONFIG")
        .current_dir(dir)
        .output()
        .expect("run ferry user rescan");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}
