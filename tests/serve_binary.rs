//! The `ferry serve` binary with the shipped configuration: the README's quick start.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const FERRY: &str = env!("CARGO_BIN_EXE_ferry");

/// Starts `ferry serve` with the shipped config/ferry.toml and users file, on an ephemeral
/// loopback port and a temporary root, and returns the child and the address it listens on.
fn serve_shipped_config(root: &std::path::Path, extra: &[&str]) -> (Child, SocketAddr) {
    let mut child = Command::new(FERRY)
        .args([
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--root",
            root.to_str().unwrap(),
            "--log-format",
            "json",
        ])
        .args(extra)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ferry serve");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let deadline = Instant::now() + Duration::from_secs(30);
    let addr = loop {
        assert!(
            Instant::now() < deadline,
            "ferry never said it was listening"
        );
        let line = lines
            .next()
            .expect("ferry exited before listening")
            .expect("read stderr");
        if line.contains("ferry listening") {
            let bind = line
                .split("\"bind\":\"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .expect("bind field");
            break bind.parse().expect("bind address");
        }
    };
    // Keep draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, addr)
}

fn terminate(child: &mut Child) -> std::process::ExitStatus {
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    child.wait().expect("wait for ferry")
}

#[test]
fn shipped_config_serves_the_demo_user_on_loopback_and_exits_cleanly_on_sigterm() {
    let root = tempfile::tempdir().unwrap();
    let (mut child, addr) = serve_shipped_config(root.path(), &[]);
    let mut ftp = suppaftp::FtpStream::connect(addr).expect("connect");
    ftp.login("demo", "ferry-demo")
        .expect("demo login with the README password");
    ftp.transfer_type(suppaftp::types::FileType::Binary)
        .unwrap();
    ftp.put_file("hello.txt", &mut std::io::Cursor::new(b"hello".to_vec()))
        .expect("upload");
    assert_eq!(
        std::fs::read(root.path().join("demo/hello.txt")).unwrap(),
        b"hello"
    );
    ftp.quit().unwrap();
    let status = terminate(&mut child);
    assert_eq!(status.code(), Some(0), "SIGTERM is a clean exit");
}

#[test]
fn published_demo_password_is_refused_off_loopback() {
    let root = tempfile::tempdir().unwrap();
    let output = Command::new(FERRY)
        .args([
            "serve",
            "--bind",
            "0.0.0.0:0",
            "--root",
            root.path().to_str().unwrap(),
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run ferry serve");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("published demo password") && stderr.contains("demo"),
        "{stderr}"
    );
}

#[test]
fn check_config_validates_the_shipped_configuration() {
    let output = Command::new(FERRY)
        .args(["serve", "--check-config"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run ferry serve --check-config");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("configuration OK (config/ferry.toml)")
    );
}
