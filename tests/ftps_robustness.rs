//! FTPS under stress: garbage instead of a TLS handshake, and certificate reload while
//! sessions run.

mod common;
mod ftps_support;

use common::pattern;
use ftps_support::{
    REPLY_TIMEOUT, TlsFiles, TlsRawSession, client_config, ftps_login, server_certificate,
    start_ftps, trusting,
};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The data-channel handshake fails as soon as the garbage arrives; well under the server's
/// 10 s handshake bound.
const GARBAGE_REPLY_WITHIN: Duration = Duration::from_secs(5);

/// Not a TLS record: what a confused client or a port scanner sends.
const GARBAGE: &[u8] = b"GET / HTTP/1.1\r\nHost: ferry\r\n\r\n\x00\x01\x02 not a ClientHello";

/// The first byte of a TLS alert record.
const TLS_ALERT: u8 = 0x15;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_instead_of_a_data_handshake_gets_425_and_sessions_keep_working() {
    let files = TlsFiles::new();
    let server = start_ftps(&files, |_| {}, &common::default_users()).await;
    std::fs::create_dir_all(server.home("alice")).expect("home");
    std::fs::write(server.home("alice").join("kept.txt"), b"kept").expect("file");
    let mut session = TlsRawSession::login(server.addr, trusting(&files), "alice").await;

    let mut data = session.epsv().await;
    data.write_all(GARBAGE).await.expect("send garbage");
    let started = Instant::now();
    session.send("LIST").await;
    // 150 (the transfer starts), then 425 once the handshake has failed.
    let mut codes = Vec::new();
    while codes.len() < 2 && !codes.iter().any(|code| (400..500).contains(code)) {
        codes.push(session.reply().await.0);
    }
    assert_eq!(codes.last(), Some(&425), "replies {codes:?}");
    assert!(
        started.elapsed() < GARBAGE_REPLY_WITHIN,
        "4xx after {:?}",
        started.elapsed()
    );
    drop(data);

    // The same session goes on: a proper data connection works.
    assert!(session.nlst().await.contains("kept.txt"));
    // And new sessions are served.
    let mut ftp = ftps_login(&server, trusting(&files), "alice").await;
    assert!(
        ftp.nlst(None)
            .await
            .expect("NLST")
            .iter()
            .any(|n| n.ends_with("kept.txt"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_instead_of_a_control_handshake_closes_only_that_session() {
    let files = TlsFiles::new();
    let server = start_ftps(&files, |_| {}, &common::default_users()).await;
    let mut raw = server.raw().await;
    raw.expect("AUTH TLS", 234).await;
    raw.send(String::from_utf8_lossy(GARBAGE)).await;
    // The server answers with a TLS alert at most, then closes.
    let (mut reader, _writer) = raw.into_parts();
    let mut rest = Vec::new();
    tokio::time::timeout(REPLY_TIMEOUT, reader.read_to_end(&mut rest))
        .await
        .expect("the server closes a failed handshake")
        .expect("read until closed");
    assert!(
        rest.first().is_none_or(|&byte| byte == TLS_ALERT),
        "{rest:?}"
    );
    let mut session = TlsRawSession::login(server.addr, trusting(&files), "alice").await;
    session.nlst().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_reload_reaches_new_sessions_without_dropping_running_ones() {
    let files = TlsFiles::new();
    let server = start_ftps(&files, |_| {}, &common::default_users()).await;
    let ftps = server.ftps.clone().expect("TLS is on");
    let old = &files.server;
    let trusting_old = client_config(&[old.cert_der()], rustls::ALL_VERSIONS, None);
    let mut running = TlsRawSession::login(server.addr, trusting_old.clone(), "alice").await;
    assert_eq!(running.server_certificate(), Some(old.cert_der()));

    let new = server_certificate();
    let trusting_new = client_config(&[new.cert_der()], rustls::ALL_VERSIONS, None);
    files.replace(&new);
    tokio::time::timeout(REPLY_TIMEOUT, ftps.reloads().wait_for_generation(1))
        .await
        .expect("the change is picked up");

    let fresh = TlsRawSession::connect(server.addr, trusting_new.clone())
        .await
        .expect("new sessions get the new certificate");
    assert_eq!(fresh.server_certificate(), Some(new.cert_der()));
    assert!(
        TlsRawSession::connect(server.addr, trusting_old)
            .await
            .is_err(),
        "the old certificate is no longer presented"
    );

    // The session that started before the reload keeps its TLS config, data channel included.
    let content = pattern(300_000);
    let data = running.epsv().await;
    running.expect("STOR during-reload.bin", 150).await;
    let mut data = running.secure_data(data).await.expect("data TLS handshake");
    data.write_all(&content).await.expect("upload");
    data.shutdown().await.expect("close_notify");
    assert_eq!(running.reply().await.0, 226);
    let stored = std::fs::read(server.home("alice").join("during-reload.bin")).expect("stored");
    assert!(stored == content);

    // A broken certificate file is refused and the current certificate stays in force.
    let failures = ftps.reloads().failed_reloads();
    std::fs::write(&files.cert, "not a certificate").expect("break the file");
    tokio::time::timeout(
        REPLY_TIMEOUT,
        ftps.reloads().wait_for_failed_reloads(failures + 1),
    )
    .await
    .expect("the broken file is noticed");
    let session = TlsRawSession::connect(server.addr, trusting_new)
        .await
        .expect("still served with the new certificate");
    assert_eq!(session.server_certificate(), Some(new.cert_der()));
}
