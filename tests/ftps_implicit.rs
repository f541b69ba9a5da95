//! Implicit FTPS on the optional second listener (`tls_implicit_bind`): TLS from the first
//! byte, the greeting inside it, and the session secured as after AUTH TLS, PBSZ 0 and PROT P,
//! data connections included. (curl's `ftps://` is in `ftps_clients.rs`.)

mod common;
mod ftps_support;

use common::{PASSWORD, pattern, read_reply};
use ftps_support::{REPLY_TIMEOUT, TlsFiles, TlsRawSession, start_ftps, trusting, write_file};
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, BufReader};

fn implicit_on_loopback(config: &mut ferry::config::Config) {
    config.tls.implicit_bind = Some("127.0.0.1:0".parse().expect("address"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn implicit_listener_handshakes_first_and_protects_data_without_prot_p() {
    let files = TlsFiles::new();
    let server = start_ftps(&files, implicit_on_loopback, &common::default_users()).await;
    let implicit: SocketAddr = server.implicit_addr.expect("implicit listener");
    assert_ne!(implicit, server.addr);

    let mut session = TlsRawSession::connect_implicit(implicit, trusting(&files))
        .await
        .expect("TLS handshake before the greeting");
    // `tls = required`: a login is accepted only on a secured control connection.
    session.expect("USER alice", 331).await;
    session.expect(format!("PASS {PASSWORD}"), 230).await;
    session.expect("TYPE I", 200).await;
    let content = pattern(500_000);
    write_file(&server.home("alice"), "down.bin", &content);

    // No PBSZ or PROT P: the data connection is protected from the start.
    let data = session.epsv().await;
    session.expect("RETR down.bin", 150).await;
    let mut data = session.secure_data(data).await.expect("data TLS");
    let mut received = Vec::new();
    tokio::time::timeout(REPLY_TIMEOUT, data.read_to_end(&mut received))
        .await
        .expect("within the timeout")
        .expect("read download");
    assert!(received == content, "RETR byte-exact");
    assert_eq!(session.reply().await.0, 226);

    // AUTH TLS on the explicit listener still works beside it.
    let mut explicit = TlsRawSession::login(server.addr, trusting(&files), "alice").await;
    explicit.expect("PWD", 257).await;
}

#[tokio::test]
async fn plaintext_client_on_the_implicit_listener_gets_no_greeting() {
    let files = TlsFiles::new();
    let server = start_ftps(&files, implicit_on_loopback, &common::default_users()).await;
    let stream = tokio::net::TcpStream::connect(server.implicit_addr.expect("implicit listener"))
        .await
        .expect("connect");
    let mut reader = BufReader::new(stream);
    // The server waits for a ClientHello: no plaintext 220 comes.
    let greeting = tokio::time::timeout(
        std::time::Duration::from_millis(500),
        read_reply(&mut reader),
    )
    .await;
    assert!(greeting.is_err(), "no plaintext greeting: {greeting:?}");
}

/// Python's aioftp with `ssl=` speaks implicit FTPS and handshakes on each data connection
/// before sending its command: it needs both the implicit listener and the data handshake
/// started at accept (it hung against explicit FTPS servers that wait for the command).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aioftp_over_implicit_tls_uploads_lists_and_downloads() {
    const SCRIPT: &str = r#"
import asyncio, pathlib, ssl, sys, tempfile
import aioftp
port, password, cafile, local = sys.argv[1:5]
async def main():
    context = ssl.create_default_context(cafile=cafile)
    client = aioftp.Client(ssl=context, socket_timeout=20, connection_timeout=20)
    await client.connect("127.0.0.1", int(port))
    await client.login("alice", password)
    await client.upload(local, "up.bin", write_into=True)
    names = [str(path) for path, _ in await client.list()]
    assert "up.bin" in names, names
    target = pathlib.Path(tempfile.mkdtemp()) / "back.bin"
    await client.download("up.bin", target, write_into=True)
    assert target.read_bytes() == pathlib.Path(local).read_bytes()
    await client.quit()
    print("ok")
asyncio.run(main())
"#;
    let files = TlsFiles::new();
    let server = start_ftps(&files, implicit_on_loopback, &common::default_users()).await;
    let content = pattern(200_003);
    let local = write_file(files.dir.path(), "local.bin", &content);
    let mut python = std::process::Command::new("python3");
    python
        .arg("-c")
        .arg(SCRIPT)
        .arg(
            server
                .implicit_addr
                .expect("implicit listener")
                .port()
                .to_string(),
        )
        .arg(PASSWORD)
        .arg(&files.cert)
        .arg(&local);
    let output = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        tokio::task::spawn_blocking(move || python.output()),
    )
    .await
    .expect("aioftp finishes within 60 s")
    .expect("join")
    .expect("python3 is installed (.ci/run installs it and aioftp)");
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(std::fs::read(server.home("alice").join("up.bin")).expect("stored") == content);
}
