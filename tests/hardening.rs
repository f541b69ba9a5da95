//! Abuse of the control connection: over-long lines, clients that never log in, PASV loops,
//! password guessing. Ferry answers clearly, keeps serving everyone else, and says so in the log.

mod common;
mod support;

use common::{PASSWORD, RawSession, TestServer, default_users, read_all};
use std::net::{IpAddr, Ipv4Addr};
use std::ops::RangeInclusive;
use std::time::{Duration, Instant};
use support::process::{FerryProcess, json_field, prepared_dir};
use support::sockets::{Held, sockets_on};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

/// The vendored libunftp's `line-limit` patch: longest command line, line break included.
const MAX_COMMAND_LINE: usize = 4096;

/// A second client address on the loopback network (all of 127.0.0.0/8 is local on Linux).
const OTHER_CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

#[tokio::test]
async fn a_4096_byte_line_is_served_and_a_longer_one_gets_500_and_is_closed() {
    let server = TestServer::start().await;
    let mut raw = server.raw().await;
    let longest_name = "a".repeat(MAX_COMMAND_LINE - "USER \r\n".len());
    raw.expect(format!("USER {longest_name}"), 331).await;
    let text = raw.expect(format!("USER {longest_name}a"), 500).await;
    assert!(text.contains("Command line too long"), "{text}");
    assert!(raw.is_closed().await);
}

#[tokio::test]
async fn a_line_that_never_ends_gets_500_and_is_closed_after_4096_bytes() {
    let server = TestServer::start().await;
    let (mut reader, mut writer) = server.raw().await.into_parts();
    writer
        .write_all(&vec![b'x'; MAX_COMMAND_LINE + 1])
        .await
        .expect("send");
    let mut reply = String::new();
    reader.read_line(&mut reply).await.expect("read reply");
    assert_eq!(reply, "500 Command line too long\r\n");
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), reader.read_to_end(&mut rest))
        .await
        .expect("closed within 10 s");
    assert!(closed.is_err() || rest.is_empty(), "nothing after the 500");
}

/// A server whose connections must log in within one second.
async fn server_with_one_second_login_timeout() -> TestServer {
    TestServer::start_with(
        |config| config.login_timeout = Duration::from_secs(1),
        &default_users(),
    )
    .await
}

/// A connection made `waited` ago was closed by the one-second login timeout: not before it,
/// and not much after (5 s leaves room for a loaded CI machine).
fn assert_closed_at_the_login_timeout(waited: Duration) {
    assert!(
        waited >= Duration::from_secs(1) && waited < Duration::from_secs(5),
        "closed after {waited:?}"
    );
}

#[tokio::test]
async fn a_silent_connection_is_closed_with_421_after_the_login_timeout() {
    let server = server_with_one_second_login_timeout().await;
    let connected = Instant::now();
    let mut raw = server.raw().await;
    assert_eq!(raw.greeting.0, 220);
    let (code, text) = raw.reply().await;
    assert_eq!(code, 421, "{text}");
    assert!(text.contains("Login timed out"), "{text}");
    assert!(raw.is_closed().await);
    assert_closed_at_the_login_timeout(connected.elapsed());
}

#[tokio::test]
async fn a_client_trickling_commands_without_logging_in_is_closed_after_the_login_timeout() {
    let server = server_with_one_second_login_timeout().await;
    let connected = Instant::now();
    let (mut reader, mut writer) = server.raw().await.into_parts();
    // One byte every 50 ms: a NOOP completes every 300 ms, which keeps resetting an idle timer.
    let trickle = tokio::spawn(async move {
        for byte in b"NOOP\r\n".iter().cycle().take(200) {
            if writer.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let mut replies = Vec::new();
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line).await {
                Ok(0) | Err(_) => break,
                Ok(_) => replies.push(line),
            }
        }
    })
    .await;
    trickle.abort();
    assert!(ended.is_ok(), "still open after 10 s: {replies:?}");
    assert_closed_at_the_login_timeout(connected.elapsed());
    assert!(
        replies.last().is_some_and(|last| last.starts_with("421 ")),
        "{replies:?}"
    );
    assert!(
        replies.len() >= 2,
        "NOOPs were answered meanwhile: {replies:?}"
    );
}

#[tokio::test]
async fn a_logged_in_session_outlives_the_login_timeout() {
    let server = server_with_one_second_login_timeout().await;
    let mut raw = server.raw_login("alice").await;
    // Nothing to await: this checks that nothing happens once the login timeout has passed.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    raw.expect("NOOP", 200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pasv_in_a_loop_holds_one_port_and_leaves_the_range_to_others() {
    // A range of its own, outside the harness's, small enough that leaking ports shows at once.
    const PORTS: RangeInclusive<u16> = 31500..=31507;
    let server = TestServer::start_with(|c| c.passive_ports = PORTS, &default_users()).await;
    std::fs::create_dir_all(server.home("reader")).unwrap();
    std::fs::write(server.home("reader").join("doc.txt"), b"still served").unwrap();
    let mut abuser = server.raw_login("alice").await;
    let mut other = server.raw_login("reader").await;

    for round in 0..200 {
        let (command, code) = if round % 2 == 0 {
            ("PASV", 227)
        } else {
            ("EPSV", 229)
        };
        abuser.expect(command, code).await;
        let listening = sockets_on(&PORTS, server.addr.port(), Held::Listening);
        assert!(
            listening <= 1,
            "round {round}: {listening} passive ports listening"
        );
    }
    // Another session gets ports and transfers while the abuser holds its one pending port.
    for _ in 0..3 {
        let data = other.epsv(server.addr).await;
        other.expect("RETR doc.txt", 150).await;
        assert_eq!(read_all(data).await, b"still served");
        assert_eq!(other.reply().await.0, 226);
    }
    // The abuser's latest passive port is the one that works.
    let data = abuser.epsv(server.addr).await;
    abuser.expect("NLST", 150).await;
    read_all(data).await;
    assert_eq!(abuser.reply().await.0, 226);
}

/// Whether `line` is an audit record of a login with `result`.
fn is_login_audit(line: &str, result: &str) -> bool {
    line.contains("\"audit\":true")
        && json_field(line, "op") == Some("login")
        && json_field(line, "result") == Some(result)
}

#[tokio::test]
async fn repeated_failed_logins_ban_the_ip_at_login_and_connect_say_so_in_the_audit_log_and_spare_other_ips()
 {
    let dir = prepared_dir();
    let ban = [
        "--failed-login-max-attempts",
        "3",
        "--failed-login-ban",
        "2",
    ];
    let mut ferry = FerryProcess::start(dir.path(), &ban).await;

    let mut attacker = RawSession::connect(ferry.addr).await;
    for _ in 0..3 {
        attacker.expect("USER alice", 331).await;
        attacker.expect("PASS guess", 530).await;
    }
    let banned = Instant::now();
    // New connections from the banned address are turned away at once, holding no slot.
    let turned_away = RawSession::connect(ferry.addr).await;
    assert_eq!(turned_away.greeting.0, 421, "{:?}", turned_away.greeting);
    assert!(
        turned_away.greeting.1.contains("failed logins"),
        "{:?}",
        turned_away.greeting
    );
    // A session opened before the ban is refused at PASS, even with the right password.
    attacker.expect("USER alice", 331).await;
    attacker.expect(format!("PASS {PASSWORD}"), 530).await;

    let mut bystander = RawSession::connect_from(ferry.addr, OTHER_CLIENT).await;
    bystander.expect("USER alice", 331).await;
    bystander.expect(format!("PASS {PASSWORD}"), 230).await;

    let wait = Duration::from_secs(10);
    let ban_started = ferry
        .wait_for_log(wait, |line| {
            is_login_audit(line, "denied") && line.contains("ip now banned for 2s after 3 failures")
        })
        .await;
    assert_eq!(json_field(&ban_started, "client_ip"), Some("127.0.0.1"));
    let refused = ferry
        .wait_for_log(wait, |line| {
            is_login_audit(line, "denied")
                && json_field(line, "reason") == Some("ip banned after 3 failures")
        })
        .await;
    assert_eq!(json_field(&refused, "client_ip"), Some("127.0.0.1"));
    let allowed = ferry
        .wait_for_log(wait, |line| is_login_audit(line, "ok"))
        .await;
    assert_eq!(json_field(&allowed, "client_ip"), Some("127.0.0.2"));
    ferry
        .wait_for_log(wait, |line| {
            line.contains("client IP banned after repeated failed logins")
        })
        .await;

    // The ban ends by itself; there is nothing to await but the clock.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        attacker.expect("USER alice", 331).await;
        attacker.send(format!("PASS {PASSWORD}")).await;
        if attacker.reply().await.0 == 230 {
            break;
        }
        assert!(Instant::now() < deadline, "the ban never ended");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        banned.elapsed() >= Duration::from_millis(1500),
        "ban lifted after {:?}",
        banned.elapsed()
    );
    let welcomed = RawSession::connect(ferry.addr).await;
    assert_eq!(welcomed.greeting.0, 220, "{:?}", welcomed.greeting);
}
