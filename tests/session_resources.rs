//! What a session opens for data closes as soon as the session ends or moves on: pending
//! passive listeners, accepted but unused data connections, stalled transfers. Otherwise any
//! user could hold the whole passive range (and blocking threads) for minutes after leaving.

mod common;
mod support;

use common::{TestServer, default_users, names_on_disk};
use std::ops::RangeInclusive;
use std::time::{Duration, Instant};
use support::sockets::{Held, sockets_on};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Each test's own passive range (tests of one binary run at once), below Linux's ephemeral
/// ports so the test's client sockets never count; 51 ports, fewer than the sessions the first
/// test opens one after another.
fn ports(test: u16) -> RangeInclusive<u16> {
    let first = 30000 + test * 51;
    first..=first + 50
}

/// Longest wait for the server to let go of something. The leaks this guards against lasted
/// 15 s (a pending listener) and 5 minutes (an unused data connection).
const RELEASE_WITHIN: Duration = Duration::from_secs(3);

async fn server(test: u16) -> TestServer {
    TestServer::start_with(|c| c.passive_ports = ports(test), &default_users()).await
}

/// Polls until the server holds no socket of `held` on the passive range, or the time is up;
/// returns how many it still holds.
async fn held_after_release(server: &TestServer, held: Held) -> usize {
    let ports = server.passive_ports.clone();
    let deadline = Instant::now() + RELEASE_WITHIN;
    loop {
        let count = sockets_on(&ports, server.addr.port(), held);
        if count == 0 || Instant::now() >= deadline {
            return count;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Reads `data` until the server closes it (end of stream or reset) or [`RELEASE_WITHIN`]
/// passes: whether it was closed, and the bytes read on the way.
async fn read_until_closed(data: &mut TcpStream) -> (bool, usize) {
    let mut buffer = vec![0u8; 1 << 16];
    let mut read = 0;
    let deadline = Instant::now() + RELEASE_WITHIN;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, data.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (true, read),
            Ok(Ok(n)) => read += n,
            Err(_) => return (false, read),
        }
    }
}

async fn closed_by_server(data: &mut TcpStream) -> bool {
    read_until_closed(data).await.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unused_passive_connections_close_when_their_sessions_quit() {
    let server = server(1).await;
    std::fs::create_dir_all(server.home("alice")).unwrap();
    std::fs::write(server.home("alice").join("doc.txt"), b"still served").unwrap();
    // More sessions than ports: had any of them kept its port, a later EPSV would get 425.
    for _ in 0..60 {
        let mut session = server.raw_login("alice").await;
        let data = session.epsv(server.addr).await;
        session.expect("NOOP", 200).await;
        session.expect("SIZE doc.txt", 213).await;
        session.expect("QUIT", 221).await;
        drop(data);
    }
    assert_eq!(held_after_release(&server, Held::Any).await, 0);

    let mut session = server.raw_login("alice").await;
    let data = session.epsv(server.addr).await;
    session.expect("RETR doc.txt", 150).await;
    assert_eq!(common::read_all(data).await, b"still served");
    assert_eq!(session.reply().await.0, 226);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_passive_listener_closes_when_its_session_quits_or_disconnects() {
    let server = server(2).await;
    let mut quitting = server.raw_login("alice").await;
    quitting.expect("EPSV", 229).await;
    assert_eq!(
        sockets_on(&server.passive_ports, server.addr.port(), Held::Listening),
        1
    );
    quitting.expect("QUIT", 221).await;
    assert_eq!(held_after_release(&server, Held::Listening).await, 0);

    let mut vanishing = server.raw_login("alice").await;
    vanishing.expect("PASV", 227).await;
    drop(vanishing);
    assert_eq!(held_after_release(&server, Held::Listening).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unused_data_connection_closes_when_the_next_epsv_supersedes_it() {
    let server = server(3).await;
    std::fs::create_dir_all(server.home("alice")).unwrap();
    let mut session = server.raw_login("alice").await;
    let mut first = session.epsv(server.addr).await;
    let mut second = session.epsv(server.addr).await;
    // libunftp hands an accepted connection the session's current channels: if the first
    // connection is accepted only after the second EPSV (the client was quicker than the
    // server's accept task), it carries the next command and the second one is closed instead.
    // Either way the session keeps one data connection, and the other is closed at once.
    let live = if closed_by_server(&mut first).await {
        second
    } else {
        assert!(
            closed_by_server(&mut second).await,
            "neither data connection was closed when the second EPSV superseded the first"
        );
        first
    };
    session.expect("NLST", 150).await;
    common::read_all(live).await;
    assert_eq!(session.reply().await.0, 226);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_upload_ends_with_its_session_and_leaves_nothing() {
    let server = server(4).await;
    let home = server.home("alice");
    std::fs::create_dir_all(&home).unwrap();
    let mut session = server.raw_login("alice").await;
    let mut data = session.epsv(server.addr).await;
    session.expect("STOR stalled.bin", 150).await;
    data.write_all(&[7u8; 1000]).await.unwrap();
    // The client goes away with the upload unfinished and its data connection still open.
    drop(session);
    assert!(
        closed_by_server(&mut data).await,
        "the stalled upload outlived its session"
    );
    assert_eq!(held_after_release(&server, Held::Any).await, 0);
    assert!(
        names_on_disk(&home).is_empty(),
        "no file and no temporary: {:?}",
        names_on_disk(&home)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_download_ends_with_its_session() {
    let server = server(5).await;
    std::fs::create_dir_all(server.home("alice")).unwrap();
    // Far more than the socket buffers hold, so the server is stuck waiting for the client.
    const SIZE: usize = 64 << 20;
    std::fs::write(server.home("alice").join("big.bin"), vec![1u8; SIZE]).unwrap();
    let mut session = server.raw_login("alice").await;
    let mut data = session.epsv(server.addr).await;
    session.expect("RETR big.bin", 150).await;
    drop(session);
    // Give the server time to notice; then reading drains only what the buffers held.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (closed, read) = read_until_closed(&mut data).await;
    assert!(closed, "the stalled download outlived its session");
    assert!(
        read < SIZE,
        "the whole file was sent after the session ended"
    );
    assert_eq!(held_after_release(&server, Held::Any).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_that_moves_nothing_for_data_timeout_ends_with_426_and_leaves_nothing() {
    let server = TestServer::start_with(
        |c| {
            c.passive_ports = ports(9);
            c.data_timeout = Duration::from_secs(1);
        },
        &default_users(),
    )
    .await;
    let home = server.home("alice");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(home.join("big.bin"), vec![2u8; 64 << 20]).unwrap();

    // An upload that stops sending, its data connection left open.
    let mut uploader = server.raw_login("alice").await;
    let mut upload = uploader.epsv(server.addr).await;
    uploader.expect("STOR stalled.bin", 150).await;
    upload.write_all(&[7u8; 100]).await.unwrap();
    assert_eq!(
        uploader.reply_within(Duration::from_secs(5)).await,
        Some(426)
    );
    assert!(closed_by_server(&mut upload).await);
    assert_eq!(
        names_on_disk(&home),
        ["big.bin"],
        "no file and no temporary"
    );
    uploader.expect("NOOP", 200).await; // the session goes on

    // A download whose client stops reading.
    let mut downloader = server.raw_login("alice").await;
    let mut download = downloader.epsv(server.addr).await;
    downloader.expect("RETR big.bin", 150).await;
    assert_eq!(
        downloader.reply_within(Duration::from_secs(5)).await,
        Some(426)
    );
    let (closed, read) = read_until_closed(&mut download).await;
    assert!(
        closed && read < 64 << 20,
        "the stalled download went on: {read} bytes"
    );
    downloader.expect("NOOP", 200).await;
}
