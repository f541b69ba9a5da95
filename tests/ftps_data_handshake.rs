//! With PROT P the data connection's TLS handshake starts when the connection is accepted, so
//! both orders work: a client that handshakes first and then sends its transfer command (aioftp
//! does; it hung against Ferry, ProFTPD and Pure-FTPd), and the usual order (command, 150, then
//! the handshake).

mod common;
mod ftps_support;

use common::pattern;
use ftps_support::{REPLY_TIMEOUT, TlsFiles, TlsRawSession, start_ftps, trusting, write_file};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Reads a secured data connection to its end (close_notify).
async fn read_secured(mut data: impl tokio::io::AsyncRead + Unpin) -> Vec<u8> {
    let mut out = Vec::new();
    tokio::time::timeout(REPLY_TIMEOUT, data.read_to_end(&mut out))
        .await
        .expect("data within the timeout")
        .expect("read data connection");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_before_the_command_serves_retr_list_and_stor_byte_exact() {
    let files = TlsFiles::new();
    let server = start_ftps(&files, |_| {}, &common::default_users()).await;
    let content = pattern(1024 * 1024 + 7);
    let mut session = TlsRawSession::login(server.addr, trusting(&files), "alice").await;
    write_file(&server.home("alice"), "down.bin", &content);

    // RETR: connect, handshake, and only then the command.
    let data = session.epsv().await;
    let data = session
        .secure_data(data)
        .await
        .expect("the server handshakes before any transfer command");
    session.expect("RETR down.bin", 150).await;
    assert!(read_secured(data).await == content, "RETR byte-exact");
    assert_eq!(session.reply().await.0, 226);

    // LIST.
    let data = session.epsv().await;
    let data = session.secure_data(data).await.expect("handshake first");
    session.expect("LIST", 150).await;
    let listing = String::from_utf8(read_secured(data).await).expect("UTF-8 listing");
    assert!(listing.contains("down.bin"), "{listing}");
    assert_eq!(session.reply().await.0, 226);

    // STOR.
    let data = session.epsv().await;
    let mut data = session.secure_data(data).await.expect("handshake first");
    session.expect("STOR up.bin", 150).await;
    data.write_all(&content).await.expect("upload");
    data.shutdown().await.expect("close_notify");
    assert_eq!(session.reply().await.0, 226);
    assert!(std::fs::read(server.home("alice").join("up.bin")).expect("stored") == content);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_before_the_handshake_still_works() {
    let files = TlsFiles::new();
    let server = start_ftps(&files, |_| {}, &common::default_users()).await;
    let content = pattern(300_001);
    let mut session = TlsRawSession::login(server.addr, trusting(&files), "alice").await;
    write_file(&server.home("alice"), "down.bin", &content);

    let data = session.epsv().await;
    session.expect("RETR down.bin", 150).await;
    let data = session
        .secure_data(data)
        .await
        .expect("handshake after 150");
    assert!(read_secured(data).await == content, "RETR byte-exact");
    assert_eq!(session.reply().await.0, 226);

    let data = session.epsv().await;
    session.expect("STOR up.bin", 150).await;
    let mut data = session
        .secure_data(data)
        .await
        .expect("handshake after 150");
    data.write_all(&content).await.expect("upload");
    data.shutdown().await.expect("close_notify");
    assert_eq!(session.reply().await.0, 226);
    assert!(std::fs::read(server.home("alice").join("up.bin")).expect("stored") == content);
}
