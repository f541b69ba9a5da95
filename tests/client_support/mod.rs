//! Helpers for the `ferry client` tests: running the real binary against an in-process server,
//! and an FTP proxy that injects faults (cut or stalled downloads, a refused EPSV, dropped
//! control connections) so interruptions happen exactly where a test wants them.
#![allow(dead_code)]

use crate::common::{PASSWORD, TestServer};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::Command;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// Longest a client run may take before the test fails instead of hanging.
const CLIENT_DEADLINE: Duration = Duration::from_secs(60);

/// What a finished client run left behind.
#[derive(Debug)]
pub struct Outcome {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    /// Asserts exit status 0, showing stderr otherwise.
    pub fn success(self) -> Outcome {
        assert_eq!(self.code, Some(0), "client failed: {self:#?}");
        self
    }
}

/// A server, and a local working directory for the client.
pub struct Fixture {
    pub server: TestServer,
    pub local: tempfile::TempDir,
}

impl Fixture {
    pub async fn start() -> Fixture {
        Self::with_server(TestServer::start().await)
    }

    pub fn with_server(server: TestServer) -> Fixture {
        Fixture {
            server,
            local: tempfile::tempdir().expect("local temp dir"),
        }
    }

    /// alice's home on the server, created if she has not logged in yet.
    pub fn home(&self) -> PathBuf {
        let home = self.server.home("alice");
        std::fs::create_dir_all(&home).expect("create alice's home");
        home
    }

    pub fn local(&self, name: &str) -> PathBuf {
        self.local.path().join(name)
    }

    /// `ferry client ftp://alice@SERVER/` in the local directory, password in the environment.
    pub fn client(&self) -> Command {
        self.client_at(self.server.addr, "alice", "/")
    }

    /// `ferry client ftp://USER@ADDR/DIR`, e.g. through a proxy.
    pub fn client_at(&self, addr: SocketAddr, user: &str, dir: &str) -> Command {
        client_command(&format!("ftp://{user}@{addr}{dir}"), self.local.path())
    }
}

/// The real binary, with a password, a private HOME (history file) and `cwd` as working dir.
pub fn client_command(url: &str, cwd: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ferry"));
    command
        .arg("client")
        .arg(url)
        .env("FERRY_PASSWORD", PASSWORD)
        .env("HOME", cwd)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Runs `command` with `stdin` piped in, to completion.
pub async fn run(command: &mut Command, stdin: &str) -> Outcome {
    command.stdin(Stdio::piped());
    let mut child = command.spawn().expect("start ferry client");
    let mut input = child.stdin.take().expect("stdin pipe");
    input
        .write_all(stdin.as_bytes())
        .await
        .expect("write commands");
    drop(input);
    finish(child).await
}

/// Waits for a started client and collects its output.
pub async fn finish(child: tokio::process::Child) -> Outcome {
    let output = tokio::time::timeout(CLIENT_DEADLINE, child.wait_with_output())
        .await
        .expect("client finishes in time")
        .expect("wait for client");
    Outcome {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Runs the client with `-c` for each of `commands`.
pub async fn run_commands(mut command: Command, commands: &[&str]) -> Outcome {
    for line in commands {
        command.arg("-c").arg(line);
    }
    run(&mut command, "").await
}

/// Every file and directory under `root`, relative, with file contents: two trees are equal
/// when their snapshots are.
pub fn snapshot(root: &Path) -> Vec<(String, Option<Vec<u8>>)> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir").flatten() {
            let path = entry.path();
            let relative = path
                .strip_prefix(root)
                .expect("under root")
                .to_string_lossy()
                .into_owned();
            if path.is_dir() {
                found.push((relative, None));
                stack.push(path);
            } else {
                found.push((relative, Some(std::fs::read(&path).expect("read file"))));
            }
        }
    }
    found.sort();
    found
}

/// Which faults the proxy injects.
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    /// Forward only this many bytes of each download, then cut the data connection.
    pub cut_downloads_after: Option<u64>,
    /// After the cut, hold both sides open and silent instead of closing them.
    pub stall_after_cut: bool,
    /// Answer EPSV with 502 instead of passing it on, so the client must fall back to PASV.
    pub refuse_epsv: bool,
}

/// An FTP proxy on loopback in front of a server. EPSV replies are rewritten to data ports of
/// the proxy's own, so that data connections pass through it too.
pub struct Proxy {
    pub addr: SocketAddr,
    /// Notified each time a download is cut.
    pub cut: Arc<Notify>,
    controls: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Proxy {
    pub async fn start(server: SocketAddr, faults: Faults) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy bind");
        let addr = listener.local_addr().expect("proxy address");
        let cut = Arc::new(Notify::new());
        let controls = Arc::new(Mutex::new(Vec::new()));
        let accept = tokio::spawn({
            let (cut, controls) = (cut.clone(), controls.clone());
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    let task = tokio::spawn(relay_control(client, server, faults, cut.clone()));
                    controls.lock().expect("controls lock").push(task);
                }
            }
        });
        Proxy {
            addr,
            cut,
            controls,
            accept,
        }
    }

    /// Closes every control connection through the proxy, as a server or NAT timing out would,
    /// and returns once they are closed.
    pub async fn drop_control_connections(&self) {
        let tasks: Vec<_> = self
            .controls
            .lock()
            .expect("controls lock")
            .drain(..)
            .collect();
        for task in tasks {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        for task in self.controls.lock().expect("controls lock").iter() {
            task.abort();
        }
    }
}

async fn relay_control(client: TcpStream, server: SocketAddr, faults: Faults, cut: Arc<Notify>) {
    let Ok(upstream) = TcpStream::connect(server).await else {
        return;
    };
    let (client_read, client_write) = client.into_split();
    let (server_read, mut server_write) = upstream.into_split();
    let client_write = Arc::new(tokio::sync::Mutex::new(client_write));
    let to_client = {
        let client_write = client_write.clone();
        async move {
            let mut replies = BufReader::new(server_read);
            let mut line = String::new();
            while replies.read_line(&mut line).await.unwrap_or(0) > 0 {
                if line.starts_with("229 ") {
                    line = redirect_epsv(&line, server, faults, cut.clone()).await;
                }
                if client_write
                    .lock()
                    .await
                    .write_all(line.as_bytes())
                    .await
                    .is_err()
                {
                    return;
                }
                line.clear();
            }
        }
    };
    let to_server = async move {
        let mut commands = BufReader::new(client_read);
        let mut line = String::new();
        while commands.read_line(&mut line).await.unwrap_or(0) > 0 {
            let sent = if faults.refuse_epsv && line.trim().eq_ignore_ascii_case("EPSV") {
                let refusal = b"502 EPSV refused by the test proxy\r\n";
                client_write.lock().await.write_all(refusal).await
            } else {
                server_write.write_all(line.as_bytes()).await
            };
            if sent.is_err() {
                return;
            }
            line.clear();
        }
    };
    tokio::select! {
        () = to_client => {}
        () = to_server => {}
    }
}

/// Opens a data port of the proxy's own for an EPSV reply and returns the rewritten reply.
async fn redirect_epsv(
    reply: &str,
    server: SocketAddr,
    faults: Faults,
    cut: Arc<Notify>,
) -> String {
    let port: u16 = reply
        .split("|||")
        .nth(1)
        .and_then(|rest| rest.split('|').next())
        .and_then(|port| port.parse().ok())
        .unwrap_or_else(|| panic!("bad EPSV reply {reply:?}"));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("data bind");
    let ours = listener.local_addr().expect("data address").port();
    tokio::spawn(relay_data(
        listener,
        SocketAddr::new(server.ip(), port),
        faults,
        cut,
    ));
    format!("229 Entering Extended Passive Mode (|||{ours}|)\r\n")
}

async fn relay_data(listener: TcpListener, server: SocketAddr, faults: Faults, cut: Arc<Notify>) {
    let Ok((client, _)) = listener.accept().await else {
        return;
    };
    let Ok(upstream) = TcpStream::connect(server).await else {
        return;
    };
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = upstream.into_split();
    let upload = async move {
        let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
        let _ = server_write.shutdown().await;
    };
    let download = async move {
        match faults.cut_downloads_after {
            None => {
                let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
                let _ = client_write.shutdown().await;
            }
            Some(limit) => {
                let mut head = (&mut server_read).take(limit);
                let _ = tokio::io::copy(&mut head, &mut client_write).await;
                let _ = client_write.flush().await;
                cut.notify_one();
                if faults.stall_after_cut {
                    // Hold both sockets open, silent, until the client goes away.
                    std::future::pending::<()>().await;
                }
            }
        }
    };
    if faults.cut_downloads_after.is_some() {
        // Whichever ends first ends the relay; dropping the sockets is the cut.
        tokio::select! {
            () = upload => {}
            () = download => {}
        }
    } else {
        tokio::join!(upload, download);
    }
}
