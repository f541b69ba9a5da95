//! Stock clients over FTPS against a self-signed certificate: curl (OpenSSL), lftp (GnuTLS)
//! and Python's ftplib (OpenSSL; it waits for the server's close_notify after each transfer).
//! Each uploads, lists and downloads with TLS 1.2 and with TLS 1.3; `.ci/run` installs them.

mod common;
mod ftps_support;

use common::{PASSWORD, TestServer, pattern};
use ftps_support::{TlsFiles, start_ftps, write_file};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// A bound on each client run; each client also bounds its own network waits.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

/// Large enough for many TLS records and several socket buffers.
const FILE_SIZE: usize = 3 * 1024 * 1024 + 17;

/// Uploads argv[6] as up.bin, lists, downloads it to argv[7]; prints the TLS version.
const FTPLIB_SCRIPT: &str = r#"
import ftplib, ssl, sys
port, user, password, cafile, version, source, target = sys.argv[1:8]
ctx = ssl.create_default_context(cafile=cafile)
ctx.minimum_version = ctx.maximum_version = getattr(ssl.TLSVersion, version)
ftp = ftplib.FTP_TLS(context=ctx, timeout=20)
ftp.connect("127.0.0.1", int(port))
ftp.login(user, password)
ftp.prot_p()
with open(source, "rb") as f:
    ftp.storbinary("STOR up.bin", f)
lines = []
ftp.retrlines("LIST", lines.append)
assert any(line.endswith(" up.bin") for line in lines), lines
with open(target, "wb") as f:
    ftp.retrbinary("RETR up.bin", f.write)
print(ftp.sock.version())
ftp.quit()
"#;

async fn run(mut command: Command) -> Output {
    let program = command.get_program().to_string_lossy().into_owned();
    let output = tokio::time::timeout(
        CLIENT_TIMEOUT,
        tokio::task::spawn_blocking(move || command.output()),
    )
    .await
    .unwrap_or_else(|_| panic!("{program} finishes within {CLIENT_TIMEOUT:?}"))
    .expect("join");
    output.unwrap_or_else(|error| panic!("{program} is installed (.ci/run installs it): {error}"))
}

fn assert_success(label: &str, output: &Output) {
    assert!(
        output.status.success(),
        "{label}: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The upload landed whole and the download came back whole.
fn assert_round_trip(label: &str, server: &TestServer, content: &[u8], downloaded: &Path) {
    let stored = std::fs::read(server.home("alice").join("up.bin")).expect("uploaded file");
    assert!(stored == content, "{label}: upload differs");
    let back = std::fs::read(downloaded).expect("downloaded file");
    assert!(back == content, "{label}: download differs");
}

/// A server with `tls = required`, and a file of [`FILE_SIZE`] bytes to upload.
async fn ftps_server_and_file() -> (TlsFiles, TestServer, Vec<u8>, PathBuf) {
    let files = TlsFiles::new();
    let server = start_ftps(&files, |_| {}, &common::default_users()).await;
    let content = pattern(FILE_SIZE);
    let source = write_file(files.dir.path(), "source.bin", &content);
    (files, server, content, source)
}

/// curl, trusting the server's certificate, as alice: uploads `source` as up.bin under `base`,
/// lists `base` and downloads up.bin again; `options` choose the TLS mode and versions.
async fn curl_round_trip(
    label: &str,
    files: &TlsFiles,
    server: &TestServer,
    options: &[&str],
    base: &str,
    (content, source): (&[u8], &Path),
) {
    let credentials = format!("alice:{PASSWORD}");
    let target = files.dir.path().join("curl-download.bin");
    let curl = |args: &[&str]| {
        let mut command = Command::new("curl");
        command
            .args(["--silent", "--show-error", "--max-time", "30"])
            .arg("--cacert")
            .arg(&files.cert)
            .args(options)
            .args(["--user", &credentials])
            .args(args);
        command
    };
    let upload = run(curl(&[
        "-T",
        source.to_str().expect("utf-8"),
        &format!("{base}up.bin"),
    ]))
    .await;
    assert_success(&format!("curl upload {label}"), &upload);
    let listing = run(curl(&[base])).await;
    assert_success(&format!("curl LIST {label}"), &listing);
    assert!(String::from_utf8_lossy(&listing.stdout).contains(" up.bin"));
    let download = run(curl(&[
        "-o",
        target.to_str().expect("utf-8"),
        &format!("{base}up.bin"),
    ]))
    .await;
    assert_success(&format!("curl download {label}"), &download);
    assert_round_trip(&format!("curl {label}"), server, content, &target);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_round_trips_over_tls_12_and_13() {
    let (files, server, content, source) = ftps_server_and_file().await;
    let base = format!("ftp://127.0.0.1:{}/", server.addr.port());
    for (label, version) in [
        ("TLS 1.2", ["--tlsv1.2", "--tls-max", "1.2"]),
        ("TLS 1.3", ["--tlsv1.3", "--tls-max", "1.3"]),
    ] {
        let options = [&["--ssl-reqd"][..], &version[..]].concat();
        curl_round_trip(label, &files, &server, &options, &base, (&content, &source)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lftp_round_trips_over_tls_12_and_13() {
    let (files, server, content, source) = ftps_server_and_file().await;
    for (label, priority) in [
        ("TLS 1.2", "NORMAL:-VERS-ALL:+VERS-TLS1.2"),
        ("TLS 1.3", "NORMAL:-VERS-ALL:+VERS-TLS1.3"),
    ] {
        let target = files.dir.path().join("lftp-download.bin");
        let script = format!(
            "set ssl:ca-file '{cert}'; set ssl:priority '{priority}'; \
             set ftp:ssl-force true; set ftp:ssl-protect-data true; \
             set net:timeout 10; set net:max-retries 2; set net:reconnect-interval-base 1; \
             set xfer:clobber on; set cmd:fail-exit yes; \
             open -u 'alice,{PASSWORD}' -p {port} 127.0.0.1; \
             put '{source}' -o up.bin; cls -l; get up.bin -o '{target}'; bye",
            cert = files.cert.display(),
            port = server.addr.port(),
            source = source.display(),
            target = target.display(),
        );
        let mut lftp = Command::new("lftp");
        lftp.args(["-c", &script]);
        let output = run(lftp).await;
        assert_success(&format!("lftp {label}"), &output);
        assert!(String::from_utf8_lossy(&output.stdout).contains(" up.bin"));
        assert_round_trip(&format!("lftp {label}"), &server, &content, &target);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_ftplib_round_trips_over_tls_12_and_13_with_clean_tls_shutdowns() {
    let (files, server, content, source) = ftps_server_and_file().await;
    for (label, version) in [("TLSv1.2", "TLSv1_2"), ("TLSv1.3", "TLSv1_3")] {
        let target = files.dir.path().join("ftplib-download.bin");
        let mut python = Command::new("python3");
        python
            .args(["-c", FTPLIB_SCRIPT])
            .arg(server.addr.port().to_string())
            .args(["alice", PASSWORD])
            .arg(&files.cert)
            .arg(version)
            .arg(&source)
            .arg(&target);
        let output = run(python).await;
        // ftplib raises (SSLEOFError) when the server closes a data connection without
        // answering its close_notify, even though the file arrived whole.
        assert_success(&format!("ftplib {label}"), &output);
        assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), label);
        assert_round_trip(&format!("ftplib {label}"), &server, &content, &target);
    }
}

/// Kills the server process a test started when the test ends, however it ends.
struct ChildGuard(std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Reads the server's JSON log, sending the address of the "ferry listening" record on
/// `listening`; keeps reading until the server exits so that its log writes never fail.
fn watch_log(stderr: std::process::ChildStderr, listening: tokio::sync::oneshot::Sender<String>) {
    use std::io::BufRead;
    let mut listening = Some(listening);
    for line in std::io::BufReader::new(stderr).lines() {
        let Ok(line) = line else { return };
        if line.contains("\"msg\":\"ferry listening\"")
            && let Some(sender) = listening.take()
            && let Some(bind) = line.split("\"bind\":\"").nth(1)
        {
            let _ = sender.send(bind.split('"').next().unwrap_or_default().to_owned());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_quick_start_self_signed_certificate_and_example_config_serve_ftps() {
    let repository = Path::new(env!("CARGO_MANIFEST_DIR"));
    let workdir = tempfile::tempdir().expect("temp dir");
    let config_dir = workdir.path().join("config");
    std::fs::create_dir_all(workdir.path().join("data")).expect("data/");
    std::fs::create_dir_all(&config_dir).expect("config/");
    for file in ["ferry-ftps.toml", "users.toml"] {
        std::fs::copy(repository.join("config").join(file), config_dir.join(file))
            .expect("copy shipped config");
    }
    let ferry = |args: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ferry"));
        command.args(args).current_dir(workdir.path());
        command
    };
    let cert_args = [
        "cert",
        "self-signed",
        "--out",
        "config/tls",
        "--host",
        "localhost",
    ];
    assert_success("ferry cert self-signed", &run(ferry(&cert_args)).await);
    let again = run(ferry(&cert_args)).await;
    assert!(
        !again.status.success(),
        "an existing key is not overwritten"
    );
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let key = std::fs::metadata(config_dir.join("tls/key.pem")).expect("key.pem");
        assert_eq!(key.permissions().mode() & 0o777, 0o600);
    }

    let mut serve = ferry(&[
        "serve",
        "--config",
        "config/ferry-ftps.toml",
        "--bind",
        "127.0.0.1:0",
        "--passive-ports",
        "25000-25999",
        "--log-format",
        "json",
    ]);
    serve.stderr(std::process::Stdio::piped());
    let mut child = ChildGuard(serve.spawn().expect("start ferry serve"));
    let stderr = child.0.stderr.take().expect("stderr");
    let (listening, address) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || watch_log(stderr, listening));
    let address = tokio::time::timeout(CLIENT_TIMEOUT, address)
        .await
        .expect("the server starts in time")
        .expect("the server logs its address before exiting");

    // The README's client commands: curl with -k, plaintext refused.
    let url = format!("ftp://demo:ferry-demo@{address}/");
    let mut listing = Command::new("curl");
    listing.args([
        "--silent",
        "--show-error",
        "--max-time",
        "30",
        "--ssl-reqd",
        "-k",
        &url,
    ]);
    assert_success("curl -k over the example config", &run(listing).await);
    let mut plaintext = Command::new("curl");
    plaintext.args(["--silent", "--max-time", "30", &url]);
    assert!(!run(plaintext).await.status.success(), "plaintext refused");
    drop(child);
}

/// curl's `ftps://` is implicit FTPS: TLS from the first byte, on `tls_implicit_bind`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_implicit_ftps_uploads_lists_and_downloads() {
    let files = TlsFiles::new();
    let server = start_ftps(
        &files,
        |config| config.tls.implicit_bind = Some("127.0.0.1:0".parse().expect("address")),
        &common::default_users(),
    )
    .await;
    let content = pattern(FILE_SIZE);
    let source = write_file(files.dir.path(), "source.bin", &content);
    let implicit = server.implicit_addr.expect("implicit listener");
    let base = format!("ftps://127.0.0.1:{}/", implicit.port());
    curl_round_trip("implicit", &files, &server, &[], &base, (&content, &source)).await;
}
