//! Clients nobody here wrote, against Ferry: rclone, ncftp, inetutils ftp (active mode over
//! IPv6, which is EPRT), busybox ftpput/ftpget, Python's aioftp and Node's basic-ftp. Each was
//! broken by a protocol defect once; `.ci/run` installs them all (apt, pip, npm).

mod common;

use common::{PASSWORD, TestServer, pattern};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Runs `command` off the async runtime with a time limit; panics with its output on failure.
async fn run(mut command: Command, what: &'static str) -> Output {
    command.stdin(Stdio::null());
    let output = tokio::task::spawn_blocking(move || {
        let child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| panic!("{what} is installed (.ci/run installs it): {error}"));
        child.wait_with_output().expect("wait for the client")
    });
    let output = tokio::time::timeout(std::time::Duration::from_secs(120), output)
        .await
        .unwrap_or_else(|_| panic!("{what} finishes within 120 s"))
        .expect("client task");
    assert!(
        output.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn local_file(dir: &Path, name: &str, len: usize) -> (PathBuf, Vec<u8>) {
    let path = dir.join(name);
    let content = pattern(len);
    std::fs::write(&path, &content).unwrap();
    (path, content)
}

fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rclone_copies_into_a_new_directory_and_checks_it() {
    let server = TestServer::start().await;
    std::fs::create_dir_all(server.home("alice")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source");
    std::fs::create_dir(&source).unwrap();
    let (_, first) = local_file(&source, "first.bin", 300_000);
    let (_, second) = local_file(&source, "name with space.txt", 1234);
    let mut obscure = Command::new("rclone");
    obscure.args(["obscure", PASSWORD]);
    let obscured = run(obscure, "rclone").await;
    let obscured = String::from_utf8(obscured.stdout).unwrap();
    let remote = format!(
        ":ftp,host=127.0.0.1,port={},user=alice,pass={}:newdir",
        server.addr.port(),
        obscured.trim()
    );
    // Listing the missing target must be "not found" (550), not a transfer error after a
    // 150, for rclone to create it.
    let mut copy = Command::new("rclone");
    copy.args(["copy", "--config", "/dev/null", "--retries", "1"])
        .arg(&source)
        .arg(&remote);
    run(copy, "rclone").await;
    let home = server.home("alice");
    assert!(std::fs::read(home.join("newdir/first.bin")).unwrap() == first);
    assert!(std::fs::read(home.join("newdir/name with space.txt")).unwrap() == second);

    let mut check = Command::new("rclone");
    check
        .args(["check", "--config", "/dev/null", "--size-only"])
        .arg(&source)
        .arg(&remote);
    run(check, "rclone").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ncftpls_lists_names_with_ls_options() {
    let server = TestServer::start().await;
    let home = server.home("alice");
    std::fs::create_dir_all(home.join("docs")).unwrap();
    std::fs::write(home.join("docs/a.txt"), b"a").unwrap();
    std::fs::write(home.join("docs/b.txt"), b"b").unwrap();
    let mut ls = Command::new("ncftpls");
    ls.args(["-u", "alice", "-p", PASSWORD, "-P"])
        .arg(server.addr.port().to_string())
        .args(["-1", "ftp://127.0.0.1/docs/"]);
    let output = run(ls, "ncftpls").await;
    let names = String::from_utf8_lossy(&output.stdout);
    let mut names: Vec<&str> = names.lines().map(str::trim).collect();
    names.sort_unstable();
    assert_eq!(names, ["a.txt", "b.txt"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inetutils_ftp_transfers_in_active_mode_over_ipv6() {
    let server = TestServer::start_with(
        |c| c.bind = "[::1]:0".parse().expect("IPv6 loopback"),
        &common::default_users(),
    )
    .await;
    std::fs::create_dir_all(server.home("alice")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (local, content) = local_file(dir.path(), "up.bin", 200_000);
    let back = dir.path().join("back.bin");
    // inetutils ftp starts in active mode, which over IPv6 is EPRT.
    let script = format!(
        "user alice \"{PASSWORD}\"\nbinary\nput {} up.bin\nget up.bin {}\nls\nquit\n",
        local.display(),
        back.display()
    );
    let script_file = dir.path().join("script");
    std::fs::write(&script_file, script).unwrap();
    let mut ftp = Command::new("inetutils-ftp");
    ftp.args(["-n", "-v", "::1"])
        .arg(server.addr.port().to_string())
        .stdin(std::fs::File::open(&script_file).unwrap());
    let output = tokio::task::spawn_blocking(move || ftp.output().expect("inetutils-ftp runs"))
        .await
        .unwrap();
    let transcript = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        transcript.matches("200 EPRT command successful").count(),
        3,
        "put, get and ls each in active mode over EPRT:\n{transcript}"
    );
    assert!(
        !transcript.lines().any(|line| line.starts_with("229 ")),
        "no passive mode: {transcript}"
    );
    assert!(std::fs::read(server.home("alice").join("up.bin")).unwrap() == content);
    assert!(std::fs::read(&back).unwrap() == content);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busybox_ftpput_and_ftpget_round_trip() {
    let server = TestServer::start().await;
    std::fs::create_dir_all(server.home("alice")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (local, content) = local_file(dir.path(), "device.log", 100_003);
    let port = server.addr.port().to_string();
    let mut put = Command::new("busybox");
    put.args([
        "ftpput",
        "-u",
        "alice",
        "-p",
        PASSWORD,
        "-P",
        &port,
        "127.0.0.1",
    ])
    .arg("device.log")
    .arg(&local);
    run(put, "busybox").await;
    assert!(std::fs::read(server.home("alice").join("device.log")).unwrap() == content);
    let back = dir.path().join("back.log");
    let mut get = Command::new("busybox");
    get.args([
        "ftpget",
        "-u",
        "alice",
        "-p",
        PASSWORD,
        "-P",
        &port,
        "127.0.0.1",
    ])
    .arg(&back)
    .arg("device.log");
    run(get, "busybox").await;
    assert!(std::fs::read(&back).unwrap() == content);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aioftp_uploads_stats_relative_names_lists_and_downloads() {
    let server = TestServer::start().await;
    std::fs::create_dir_all(server.home("alice")).unwrap();
    // A file of the same name in the home, of another size: MLST must not answer for it.
    std::fs::write(server.home("alice").join("upload.bin"), b"decoy").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (local, content) = local_file(dir.path(), "up.bin", 70_001);
    let mut python = Command::new("python3");
    python
        .arg(clients_dir().join("aioftp_round_trip.py"))
        .arg(server.addr.port().to_string())
        .args(["alice", PASSWORD])
        .arg(&local);
    let output = run(python, "python3 with aioftp").await;
    let seen: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON line");
    assert_eq!(seen["size"], content.len(), "{seen}");
    assert_eq!(seen["type"], "file", "{seen}");
    assert_eq!(seen["exists"], true, "{seen}");
    assert_eq!(seen["missing"], false, "{seen}");
    assert_eq!(seen["same"], true, "{seen}");
    assert!(
        std::fs::read(server.home("alice").join("sub/upload.bin")).unwrap() == content,
        "the upload landed in sub/"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_ftp_sends_opts_mlst_and_round_trips() {
    let server = TestServer::start().await;
    std::fs::create_dir_all(server.home("alice")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (local, content) = local_file(dir.path(), "up.bin", 150_000);
    let mut node = Command::new("node");
    node.current_dir(clients_dir())
        .arg("basic_ftp_round_trip.js")
        .arg(server.addr.port().to_string())
        .args(["alice", PASSWORD])
        .arg(&local);
    let output = run(node, "node with basic-ftp (npm ci in tests/clients)").await;
    let seen: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON line");
    assert_eq!(seen["same"], true, "{seen}");
    let entries = seen["entries"].as_array().expect("entries");
    assert!(
        entries.iter().any(|e| e["name"] == "upload.bin"
            && e["size"] == content.len()
            && e["isFile"] == true),
        "{seen}"
    );
    assert!(std::fs::read(server.home("alice").join("from-node/upload.bin")).unwrap() == content);
}
