//! How sessions end: every close the server decides on (idle timeout, login timeout, shutdown)
//! is a 421, not QUIT's 221; over FTPS it is sent inside TLS and followed by close_notify, as
//! is the 221 to QUIT, so that TLS clients see a clean end (FileZilla reported the idle
//! timeout as "GnuTLS error -110: The TLS connection was non-properly terminated").

mod common;
mod ftps_support;

use common::{PASSWORD, TestServer};
use ftps_support::{TlsFiles, TlsRawSession, start_ftps, trusting};
use std::process::Command;
use std::time::Duration;

/// The reply, and the end of the connection, must come well within this.
const CLOSE_WITHIN: Duration = Duration::from_secs(15);

/// A session over TLS that reads, after `last_reply`, nothing but a clean TLS close.
async fn assert_reply_then_close_notify(session: &mut TlsRawSession, code: u32, text: &str) {
    let (got, reply) = tokio::time::timeout(CLOSE_WITHIN, session.reply())
        .await
        .expect("a reply before the close");
    assert_eq!(got, code, "{reply}");
    assert!(reply.contains(text), "{reply}");
    let rest = session
        .read_until_closed()
        .await
        .expect("the server ends TLS with close_notify, not a bare TCP close");
    assert_eq!(rest, "", "nothing after the {code}");
}

#[tokio::test]
async fn idle_timeout_is_421_inside_tls_then_close_notify() {
    let files = TlsFiles::new();
    let server = start_ftps(
        &files,
        |config| config.idle_timeout = Duration::from_secs(1),
        &common::default_users(),
    )
    .await;
    let mut session = TlsRawSession::login(server.addr, trusting(&files), "alice").await;
    assert_reply_then_close_notify(&mut session, 421, "Session timed out").await;
}

#[tokio::test]
async fn idle_timeout_over_plain_ftp_is_421_not_221() {
    let server = TestServer::start_with(
        |config| config.idle_timeout = Duration::from_secs(1),
        &common::default_users(),
    )
    .await;
    let mut raw = server.raw_login("alice").await;
    let (code, text) = tokio::time::timeout(CLOSE_WITHIN, raw.reply())
        .await
        .expect("a reply when the session times out");
    assert_eq!(code, 421, "{text}");
    assert!(text.contains("Session timed out"), "{text}");
    assert!(raw.is_closed().await);
}

#[tokio::test]
async fn shutdown_is_421_inside_tls_then_close_notify() {
    let files = TlsFiles::new();
    let mut server = start_ftps(&files, |_| {}, &common::default_users()).await;
    let mut session = TlsRawSession::login(server.addr, trusting(&files), "alice").await;
    server.begin_stop();
    assert_reply_then_close_notify(&mut session, 421, "Server shutting down").await;
    server.wait().await.expect("clean shutdown");
}

#[tokio::test]
async fn login_timeout_is_421_inside_tls_then_close_notify() {
    let files = TlsFiles::new();
    let server = start_ftps(
        &files,
        |config| config.login_timeout = Duration::from_secs(1),
        &common::default_users(),
    )
    .await;
    let mut session = TlsRawSession::connect(server.addr, trusting(&files))
        .await
        .expect("AUTH TLS");
    session.expect("USER alice", 331).await;
    assert_reply_then_close_notify(&mut session, 421, "Login timed out").await;
}

#[tokio::test]
async fn quit_over_tls_is_221_then_close_notify() {
    let files = TlsFiles::new();
    let server = start_ftps(&files, |_| {}, &common::default_users()).await;
    let mut session = TlsRawSession::login(server.addr, trusting(&files), "alice").await;
    session.send("QUIT").await;
    assert_reply_then_close_notify(&mut session, 221, "").await;
}

/// After QUIT, Python's `ssl.SSLSocket.unwrap` ends TLS as clients that close cleanly do, and
/// raises if the server drops the connection without close_notify. `.ci/run` installs python3.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_ftplib_quits_a_tls_session_without_error() {
    const SCRIPT: &str = r#"
import ftplib, ssl, sys
port, password, cafile = sys.argv[1:4]
ftp = ftplib.FTP_TLS(context=ssl.create_default_context(cafile=cafile), timeout=20)
ftp.connect("127.0.0.1", int(port))
ftp.login("alice", password)
ftp.prot_p()
ftp.nlst()
print(ftp.voidcmd("QUIT"))
ftp.sock.unwrap()  # waits for the server's close_notify; raises SSLEOFError without it
"#;
    let files = TlsFiles::new();
    let server = start_ftps(&files, |_| {}, &common::default_users()).await;
    let mut command = Command::new("python3");
    command
        .arg("-c")
        .arg(SCRIPT)
        .arg(server.addr.port().to_string())
        .arg(PASSWORD)
        .arg(&files.cert);
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::task::spawn_blocking(move || command.output()),
    )
    .await
    .expect("python3 finishes within 60 s")
    .expect("join")
    .expect("python3 is installed (.ci/run installs it)");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("221"));
}
