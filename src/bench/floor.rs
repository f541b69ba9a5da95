//! `ferry-bench floor`: the least an async FTP server can do for small files, to measure
//! against. One task per session reads a command, answers it and, for STOR and RETR, accepts
//! the data connection and moves the bytes in the same task, with plain file system calls on
//! the async worker (no blocking pool, no permission checks, no atomic upload, no logging, no
//! accounting). It answers only what `small-files` sends: USER, PASS, TYPE, EPSV, STOR, RETR,
//! QUIT. The runtime is Ferry's on two cores (one async worker), so that Ferry's cost per
//! small file can be split into what tokio and the kernel take and what Ferry adds.
//! With `--atomic-uploads`, STOR writes as Ferry does instead of in place: on a blocking-pool
//! thread (creating and naming a file may wait on the disk), into an unnamed file
//! (`O_TMPFILE`) linked under its name once complete; that is the cost of safe uploads alone.
//! A measuring instrument: it trusts its client and must only listen on loopback.

use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// Serves `root` on `bind` until the process is killed.
pub fn run(bind: SocketAddr, root: &Path, uploads: Uploads) -> std::process::ExitCode {
    if !bind.ip().is_loopback() {
        eprintln!("ferry-bench floor: {bind} is not a loopback address");
        return std::process::ExitCode::FAILURE;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build();
    let served = runtime.and_then(|runtime| {
        runtime.block_on(async {
            serve(TcpListener::bind(bind).await?, root.to_path_buf(), uploads).await
        })
    });
    match served {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("ferry-bench floor: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// How STOR puts a file on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uploads {
    /// Created under its name and written on the async worker.
    InPlace,
    /// Ferry's way: off the async worker, an unnamed file linked in once complete.
    Atomic,
}

/// Serves `root` on `listener`, a session per connection, until accepting fails.
pub async fn serve(listener: TcpListener, root: PathBuf, uploads: Uploads) -> std::io::Result<()> {
    loop {
        let (control, _) = listener.accept().await?;
        tokio::spawn(session(control, root.clone(), uploads));
    }
}

async fn session(control: TcpStream, root: PathBuf, uploads: Uploads) -> std::io::Result<()> {
    // Replies are small writes in a row: without NODELAY, Nagle holds each until the last is
    // acknowledged, and the client delays its acknowledgement.
    control.set_nodelay(true)?;
    let ip = control.local_addr()?.ip();
    let (read_half, mut replies) = control.into_split();
    let mut commands = BufReader::new(read_half);
    let mut passive: Option<TcpListener> = None;
    let mut line = String::new();
    replies.write_all(b"220 floor\r\n").await?;
    loop {
        line.clear();
        if commands.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let (verb, argument) = line
            .trim_end()
            .split_once(' ')
            .unwrap_or((line.trim_end(), ""));
        let reply = match verb.to_ascii_uppercase().as_str() {
            "USER" => "331 password\r\n".to_owned(),
            "PASS" => "230 in\r\n".to_owned(),
            "TYPE" => "200 ok\r\n".to_owned(),
            "EPSV" => match passive_listener(ip).await {
                Some(listener) => {
                    let port = listener.local_addr()?.port();
                    passive = Some(listener);
                    format!("229 Entering Extended Passive Mode (|||{port}|)\r\n")
                }
                None => "425 no passive port free\r\n".to_owned(),
            },
            "RETR" | "STOR" => match (passive.take(), inside(&root, argument)) {
                (Some(listener), Some(path)) => {
                    let (mut data, _) = listener.accept().await?;
                    data.set_nodelay(true)?;
                    drop(listener);
                    let moved = if verb.eq_ignore_ascii_case("RETR") {
                        match std::fs::read(&path) {
                            Ok(bytes) => {
                                replies.write_all(b"150 sending\r\n").await?;
                                data.write_all(&bytes).await.and(data.shutdown().await)
                            }
                            Err(error) => Err(error),
                        }
                    } else {
                        replies.write_all(b"150 receiving\r\n").await?;
                        let mut bytes = Vec::new();
                        match data.read_to_end(&mut bytes).await {
                            Ok(_) if uploads == Uploads::Atomic => {
                                tokio::task::spawn_blocking(move || write_atomically(&path, &bytes))
                                    .await
                                    .unwrap_or_else(|joined| Err(std::io::Error::other(joined)))
                            }
                            Ok(_) => std::fs::write(&path, &bytes),
                            Err(error) => Err(error),
                        }
                    };
                    match moved {
                        Ok(()) => "226 done\r\n".to_owned(),
                        Err(error) => format!("550 {error}\r\n"),
                    }
                }
                (None, _) => "425 no EPSV\r\n".to_owned(),
                (_, None) => "553 bad path\r\n".to_owned(),
            },
            "QUIT" => {
                replies.write_all(b"221 bye\r\n").await?;
                return Ok(());
            }
            _ => "502 not here\r\n".to_owned(),
        };
        replies.write_all(reply.as_bytes()).await?;
    }
}

/// Passive ports: below the ephemeral range, where the load generator's own ports are (a
/// listener on a port that was a client's moments ago meets its TIME_WAIT), and apart from
/// the ranges `bench/compare.sh` gives the servers.
const PASSIVE_PORTS: std::ops::Range<u16> = 10_000..14_000;

/// A listener on the next free passive port.
async fn passive_listener(ip: std::net::IpAddr) -> Option<TcpListener> {
    static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let span = PASSIVE_PORTS.end - PASSIVE_PORTS.start;
    for _ in 0..64 {
        let offset = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % span;
        if let Ok(listener) = TcpListener::bind((ip, PASSIVE_PORTS.start + offset)).await {
            return Some(listener);
        }
    }
    None
}

/// Writes `bytes` to an unnamed file in `path`'s directory and links it in as `path`,
/// replacing nothing (Ferry's upload to a new name).
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_TMPFILE)
        .mode(0o644)
        .open(dir)?;
    file.write_all(bytes)?;
    let by_descriptor = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&file));
    rustix::fs::linkat(
        rustix::fs::CWD,
        by_descriptor.as_str(),
        rustix::fs::CWD,
        path,
        rustix::fs::AtFlags::SYMLINK_FOLLOW,
    )?;
    Ok(())
}

/// `argument` under `root`, if it names nothing above it.
fn inside(root: &Path, argument: &str) -> Option<PathBuf> {
    let relative = Path::new(argument.trim_start_matches('/'));
    relative
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
        .then(|| root.join(relative))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::client::{Connector, Session};
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn floor_stores_and_returns_files_byte_for_byte_under_its_root() {
        for uploads in [Uploads::InPlace, Uploads::Atomic] {
            stores_and_returns(uploads).await;
        }
    }

    async fn stores_and_returns(uploads: Uploads) {
        let root = tempfile::tempdir().expect("temporary directory");
        std::fs::create_dir(root.path().join("small")).expect("directory");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("listener");
        let addr = listener.local_addr().expect("address");
        tokio::spawn(serve(listener, root.path().to_path_buf(), uploads));
        let connector = Connector::new(addr, "any".into(), "any".into(), Duration::from_secs(10));
        let mut session = Session::open_logged_in(Arc::new(connector))
            .await
            .expect("login");
        let content: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
        let sent = session
            .stor("small/a.bin", content.len() as u64, &content)
            .await
            .expect("STOR");
        assert_eq!(sent, content.len() as u64);
        assert_eq!(
            std::fs::read(root.path().join("small/a.bin")).expect("on disk"),
            content
        );
        assert_eq!(
            session.retr_to_vec("small/a.bin").await.expect("RETR"),
            content
        );
        // A path above the root is refused, and the session goes on.
        let escape = session.retr_to_vec("../outside").await;
        assert!(escape.is_err(), "a path above the root must be refused");
        session.quit().await.expect("QUIT");
    }
}
