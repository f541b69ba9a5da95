//! Editing the users file reaches sessions already open: an account made read-only (or given
//! fewer permissions) is held to them from its next command, and a session whose account was
//! disabled or removed is closed with 421, however busy it keeps itself with NOOP.

mod common;

use common::{RawSession, TestServer, TestUser, read_all};
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// Rewrites the users file with `users` and waits until the server has reloaded it.
async fn reload_with(server: &TestServer, users: &[TestUser]) {
    let generation = server.users.generation();
    common::write_users_file(&server.users_file, users);
    tokio::time::timeout(
        Duration::from_secs(10),
        server.users.wait_for_generation(generation + 1),
    )
    .await
    .expect("the users file is reloaded within 10 s");
}

fn reader() -> TestUser {
    TestUser {
        name: "reader",
        permissions: &["list", "download"],
        extra: "",
    }
}

/// Sends `command` over a fresh data connection and returns its final reply code.
async fn data_command(raw: &mut RawSession, server: &TestServer, command: &str) -> u32 {
    let mut data = raw.epsv(server.addr).await;
    raw.send(command).await;
    let mut reply = raw.reply().await;
    if reply.0 == 150 {
        let _ = data.shutdown().await;
        drop(data);
        reply = raw.reply().await;
    }
    reply.0
}

/// Reads until the server's unsolicited 421, then expects the connection closed.
async fn closed_with_421(raw: &mut RawSession) {
    let (code, text) = raw.reply().await;
    assert_eq!(code, 421, "{text}");
    assert!(raw.is_closed().await, "the session stays open after 421");
}

#[tokio::test]
async fn fewer_permissions_apply_to_the_open_sessions_next_command() {
    let server = TestServer::start().await;
    let home = server.home("alice");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(home.join("keep.txt"), b"still mine").unwrap();
    let mut alice = server.raw_login("alice").await;
    alice.expect("MKD before", 257).await;

    reload_with(
        &server,
        &[
            TestUser {
                name: "alice",
                permissions: &["download"],
                extra: "",
            },
            reader(),
        ],
    )
    .await;
    assert_eq!(data_command(&mut alice, &server, "STOR new.txt").await, 550);
    alice.expect("DELE keep.txt", 550).await;
    alice.expect("MKD after", 550).await;
    assert_eq!(data_command(&mut alice, &server, "LIST").await, 550);
    assert!(!home.join("new.txt").exists() && !home.join("after").exists());
    assert!(home.join("keep.txt").exists());
    // What is still granted still works, in the same session.
    let data = alice.epsv(server.addr).await;
    alice.expect("RETR keep.txt", 150).await;
    assert_eq!(read_all(data).await, b"still mine");
    assert_eq!(alice.reply().await.0, 226);
}

#[tokio::test]
async fn a_disabled_accounts_session_is_closed_with_421() {
    let server = TestServer::start().await;
    let mut alice = server.raw_login("alice").await;
    let mut other = server.raw_login("reader").await;
    alice.expect("NOOP", 200).await;
    reload_with(
        &server,
        &[
            TestUser {
                name: "alice",
                permissions: common::ALL,
                extra: "enabled = false",
            },
            reader(),
        ],
    )
    .await;
    closed_with_421(&mut alice).await;
    other.expect("NOOP", 200).await;
    // And it cannot come back.
    let mut again = server.raw().await;
    again.expect("USER alice", 331).await;
    again
        .expect(format!("PASS {}", common::PASSWORD), 530)
        .await;
}

#[tokio::test]
async fn a_removed_accounts_session_is_closed_with_421() {
    let server = TestServer::start().await;
    let mut alice = server.raw_login("alice").await;
    let mut other = server.raw_login("reader").await;
    alice.expect("NOOP", 200).await;
    reload_with(&server, &[reader()]).await;
    closed_with_421(&mut alice).await;
    other.expect("NOOP", 200).await;
}
