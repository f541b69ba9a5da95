//! Behind a load balancer (`proxy_from`): the PROXY header's address is the client's for
//! session limits, bans, allowed networks, audit records and the data connection checks; a
//! header from anyone else, or none from the balancer, closes the connection unanswered. The
//! test is the balancer here, sending v1 and v2 headers from 127.0.0.1 (`tests/haproxy.rs`
//! puts a real HAProxy in between).

mod common;
mod ftps_support;
mod proxy_support;

use common::audit_capture::AuditCapture;
use common::{PASSWORD, RawSession, TestServer, TestUser, connect_from, download, pattern};
use proxy_support::{Version, balanced, closed_without_a_word, ftp_for, header, v2_local};
use std::io::Cursor;
use std::net::SocketAddr;
use suppaftp::tokio::{AsyncFtpStream, AsyncNoTlsStream, AsyncRustlsStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A client that is not on this machine at all: only the header says it exists.
const REMOTE: &str = "203.0.113.7:40001";
const OTHER_REMOTE: &str = "203.0.113.8:40002";

fn addr(text: &str) -> SocketAddr {
    text.parse().expect("socket address")
}

fn trusting_the_balancer(config: &mut ferry::config::Config) {
    config.proxy_from = vec!["127.0.0.1/32".parse().expect("network")];
}

async fn start(configure: impl FnOnce(&mut ferry::config::Config)) -> (TestServer, AuditCapture) {
    start_with_users(configure, &common::default_users()).await
}

async fn start_with_users(
    configure: impl FnOnce(&mut ferry::config::Config),
    users: &[TestUser],
) -> (TestServer, AuditCapture) {
    let capture = AuditCapture::default();
    let server = TestServer::start_logging_to(
        |config| {
            trusting_the_balancer(config);
            configure(config);
        },
        users,
        capture.logger(),
    )
    .await;
    (server, capture)
}

/// A raw session through the test's balancer for `client`; the greeting is read.
async fn raw_for(server: &TestServer, version: Version, client: &str) -> RawSession {
    RawSession::over(balanced(server.addr, &header(version, addr(client), server.addr)).await).await
}

/// suppaftp through the test's balancer for `client`, logged in as alice (TYPE I).
async fn alice_for(server: &TestServer, version: Version, client: &str) -> AsyncFtpStream {
    let client = addr(client);
    let mut ftp = ftp_for::<AsyncNoTlsStream>(server.addr, version, client, client.ip()).await;
    ftp.login("alice", PASSWORD).await.expect("login");
    ftp.transfer_type(suppaftp::types::FileType::Binary)
        .await
        .expect("TYPE I");
    ftp
}

fn client_ips_of(capture: &AuditCapture, op: &str) -> Vec<String> {
    capture
        .of(op)
        .iter()
        .map(|record| record.get("client_ip").cloned().unwrap_or_default())
        .collect()
}

#[tokio::test]
async fn audit_records_carry_the_address_the_header_names_v1_and_v2() {
    let (server, capture) = start(|_| {}).await;
    for (version, client) in [(Version::V1, REMOTE), (Version::V2, "127.0.0.2:40003")] {
        let mut ftp = alice_for(&server, version, client).await;
        ftp.put_file("a.bin", &mut Cursor::new(b"abc".to_vec()))
            .await
            .expect("upload");
        ftp.quit().await.expect("QUIT");
    }
    assert_eq!(
        client_ips_of(&capture, "login"),
        ["203.0.113.7", "127.0.0.2"]
    );
    assert_eq!(
        client_ips_of(&capture, "upload"),
        ["203.0.113.7", "127.0.0.2"]
    );
}

#[tokio::test]
async fn the_session_limit_per_ip_counts_the_header_address() {
    let (server, capture) = start(|config| config.max_sessions_per_ip = 1).await;
    let first = raw_for(&server, Version::V2, REMOTE).await;
    assert_eq!(first.greeting.0, 220);
    // Same balancer, same client behind it: over the limit.
    let second = raw_for(&server, Version::V1, "203.0.113.7:40009").await;
    assert_eq!(second.greeting.0, 421, "{}", second.greeting.1);
    // Same balancer, another client: a place of its own.
    let other = raw_for(&server, Version::V2, OTHER_REMOTE).await;
    assert_eq!(other.greeting.0, 220);
    let refused = capture
        .everything()
        .into_iter()
        .find(|record| record.get("msg").map(String::as_str) == Some("connection refused"))
        .expect("the refusal is logged");
    assert_eq!(refused["client"], "203.0.113.7:40009");
}

#[tokio::test]
async fn a_ban_on_one_header_address_leaves_another_alone() {
    let (server, _capture) = start(|config| {
        config.login_failures = Some(ferry::config::LoginFailurePolicy {
            max_attempts: 2,
            ban: std::time::Duration::from_secs(300),
        });
    })
    .await;
    let mut attacker = raw_for(&server, Version::V1, REMOTE).await;
    for _ in 0..2 {
        attacker.expect("USER alice", 331).await;
        attacker.expect("PASS wrong", 530).await;
    }
    let banned = raw_for(&server, Version::V2, "203.0.113.7:40010").await;
    assert_eq!(banned.greeting.0, 421, "{}", banned.greeting.1);

    let mut bystander = raw_for(&server, Version::V2, OTHER_REMOTE).await;
    assert_eq!(bystander.greeting.0, 220);
    bystander.expect("USER alice", 331).await;
    bystander.expect(format!("PASS {PASSWORD}"), 230).await;
}

#[tokio::test]
async fn allowed_networks_are_checked_against_the_header_address() {
    let users = [TestUser {
        name: "office",
        permissions: common::ALL,
        extra: "allowed_networks = [\"203.0.113.0/24\"]",
    }];
    let (server, _capture) = start_with_users(|_| {}, &users).await;
    let mut inside = raw_for(&server, Version::V1, REMOTE).await;
    inside.expect("USER office", 331).await;
    inside.expect(format!("PASS {PASSWORD}"), 230).await;
    // The balancer's own address (127.0.0.1) is not in the user's networks either.
    let mut outside = raw_for(&server, Version::V2, "198.51.100.9:40004").await;
    outside.expect("USER office", 331).await;
    outside.expect(format!("PASS {PASSWORD}"), 530).await;
}

#[tokio::test]
async fn port_to_the_header_address_passes_the_check_and_to_the_balancer_does_not() {
    let (server, _capture) = start(|_| {}).await;
    std::fs::create_dir_all(server.home("alice")).expect("home");
    let content = pattern(100_000);
    std::fs::write(server.home("alice").join("f.bin"), &content).expect("file");
    // The header names 127.0.0.2, where this test can listen for the active connection.
    let mut raw = raw_for(&server, Version::V2, "127.0.0.2:40005").await;
    raw.expect("USER alice", 331).await;
    raw.expect(format!("PASS {PASSWORD}"), 230).await;
    raw.expect("TYPE I", 200).await;

    let balancer_port = TcpListener::bind("127.0.0.1:0").await.expect("listen");
    let port = balancer_port.local_addr().expect("address").port();
    let to_balancer = format!("PORT 127,0,0,1,{},{}", port >> 8, port & 0xff);
    raw.expect(to_balancer, 504).await;

    let listener = TcpListener::bind("127.0.0.2:0").await.expect("listen");
    let port = listener.local_addr().expect("address").port();
    raw.expect(format!("PORT 127,0,0,2,{},{}", port >> 8, port & 0xff), 200)
        .await;
    raw.expect("RETR f.bin", 150).await;
    let (mut data, _) = listener.accept().await.expect("active connection");
    let mut received = Vec::new();
    data.read_to_end(&mut received).await.expect("read");
    assert!(
        received == content,
        "active-mode download is byte-identical"
    );
    assert_eq!(raw.reply().await.0, 226);
}

#[tokio::test]
async fn a_header_from_outside_proxy_from_is_refused_without_a_greeting() {
    let (server, capture) = start(|_| {}).await;
    for version in [Version::V1, Version::V2] {
        let mut stream = connect_from(server.addr, "127.0.0.3".parse().expect("ip")).await;
        stream
            .write_all(&header(version, addr(REMOTE), server.addr))
            .await
            .expect("send header");
        assert!(closed_without_a_word(&mut stream).await, "{version:?}");
    }
    let refusals: Vec<_> = capture
        .everything()
        .into_iter()
        .filter(|record| record.get("msg").map(String::as_str) == Some("connection refused"))
        .collect();
    assert_eq!(refusals.len(), 2, "one log line each: {refusals:?}");
    assert!(
        refusals[0]["peer"].starts_with("127.0.0.3:"),
        "{refusals:?}"
    );
    assert!(
        refusals[0]["reason"].contains("not in proxy_from"),
        "{refusals:?}"
    );

    // Without a header, 127.0.0.3 is a client like any other, and its own address counts.
    let mut direct = RawSession::connect_from(server.addr, "127.0.0.3".parse().expect("ip")).await;
    assert_eq!(direct.greeting.0, 220);
    direct.expect("USER alice", 331).await;
    direct.expect(format!("PASS {PASSWORD}"), 230).await;
    assert_eq!(client_ips_of(&capture, "login"), ["127.0.0.3"]);
}

#[tokio::test]
async fn the_balancer_without_a_valid_header_is_refused_without_a_greeting() {
    let (server, capture) = start(|_| {}).await;
    let not_headers: [&[u8]; 3] = [
        b"USER alice\r\n",
        b"PROXY TCP4 203.0.113.7 127.0.0.1 99999 21\r\n",
        b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x04\x01\x02\x03\x04",
    ];
    for bytes in not_headers {
        let mut stream = balanced(server.addr, bytes).await;
        assert!(closed_without_a_word(&mut stream).await, "{bytes:?}");
    }
    // One that sends nothing is closed when the header's time is up.
    let mut silent = connect_from(server.addr, proxy_support::BALANCER).await;
    assert!(closed_without_a_word(&mut silent).await);
    // A health check (v2 LOCAL) is closed quietly: no greeting and no warning.
    let mut health_check = balanced(server.addr, &v2_local()).await;
    assert!(closed_without_a_word(&mut health_check).await);

    let refusals = capture
        .everything()
        .into_iter()
        .filter(|record| record.get("msg").map(String::as_str) == Some("connection refused"))
        .count();
    assert_eq!(refusals, not_headers.len() + 1);
    assert!(capture.of("login").is_empty());
}

#[tokio::test]
async fn passive_data_with_a_header_naming_the_client_moves_bytes_unchanged() {
    let (server, capture) = start(|_| {}).await;
    for version in [Version::V1, Version::V2] {
        let mut ftp = alice_for(&server, version, REMOTE).await;
        let content = pattern(1024 * 1024 + 17);
        let name = format!("{version:?}.bin");
        ftp.put_file(&name, &mut Cursor::new(content.clone()))
            .await
            .expect("STOR through the balancer");
        assert!(download(&mut ftp, &name).await == content, "RETR");
        let listing = ftp.list(None).await.expect("LIST");
        assert!(
            listing.iter().any(|line| line.ends_with(&name)),
            "{listing:?}"
        );
        ftp.quit().await.expect("QUIT");
    }
    assert!(
        client_ips_of(&capture, "download")
            .iter()
            .all(|ip| ip == "203.0.113.7")
    );
}

#[tokio::test]
async fn passive_data_naming_another_client_or_without_a_header_is_refused() {
    let (server, _capture) = start(|_| {}).await;
    std::fs::create_dir_all(server.home("alice")).expect("home");
    std::fs::write(server.home("alice").join("secret.txt"), b"secret").expect("file");
    let mut raw = raw_for(&server, Version::V2, REMOTE).await;
    raw.expect("USER alice", 331).await;
    raw.expect(format!("PASS {PASSWORD}"), 230).await;

    // Another client's data connection, through the same balancer: refused.
    let reply = raw.expect("EPSV", 229).await;
    let data_port = epsv_port(server.addr, &reply);
    let mut stolen = balanced(
        data_port,
        &header(Version::V2, addr(OTHER_REMOTE), data_port),
    )
    .await;
    assert!(closed_without_a_word(&mut stolen).await);
    // The balancer itself without a header (what it would send is data): refused.
    let reply = raw.expect("EPSV", 229).await;
    let data_port = epsv_port(server.addr, &reply);
    let mut headless = balanced(data_port, b"RETR secret.txt\r\n").await;
    assert!(closed_without_a_word(&mut headless).await);

    // The session goes on, and a data connection for its client works.
    let reply = raw.expect("EPSV", 229).await;
    let data_port = epsv_port(server.addr, &reply);
    let data = balanced(data_port, &header(Version::V1, addr(REMOTE), data_port)).await;
    raw.expect("RETR secret.txt", 150).await;
    assert_eq!(common::read_all(data).await, b"secret");
    assert_eq!(raw.reply().await.0, 226);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ftps_explicit_and_implicit_run_after_the_header() {
    let files = ftps_support::TlsFiles::new();
    let capture = AuditCapture::default();
    let server = TestServer::start_logging_to(
        |config| {
            files.required(config);
            config.tls.implicit_bind = Some(addr("127.0.0.1:0"));
            trusting_the_balancer(config);
        },
        &common::default_users(),
        capture.logger(),
    )
    .await;
    let config = ftps_support::trusting(&files);
    let connector = || {
        suppaftp::tokio::AsyncRustlsConnector::from(tokio_rustls::TlsConnector::from(
            config.clone(),
        ))
    };
    let client = addr(REMOTE);

    let ftp = ftp_for::<AsyncRustlsStream>(server.addr, Version::V2, client, client.ip()).await;
    let mut ftp = ftp
        .into_secure(connector(), ftps_support::SERVER_NAME)
        .await
        .expect("AUTH TLS after the header");
    ftp.login("alice", PASSWORD).await.expect("login over TLS");
    ftp.transfer_type(suppaftp::types::FileType::Binary)
        .await
        .expect("TYPE I");
    let content = pattern(300_000);
    ftp.put_file("tls.bin", &mut Cursor::new(content.clone()))
        .await
        .expect("STOR over TLS through the balancer");
    assert!(download(&mut ftp, "tls.bin").await == content);
    ftp.quit().await.expect("QUIT");

    let implicit = server.implicit_addr.expect("implicit listener");
    let mut raw = ftps_support::TlsRawSession::connect_implicit_over(
        balanced(implicit, &header(Version::V1, client, implicit)).await,
        config.clone(),
        implicit,
    )
    .await
    .expect("TLS handshake after the header");
    raw.expect("USER alice", 331).await;
    raw.expect(format!("PASS {PASSWORD}"), 230).await;
    let reply = raw.expect("EPSV", 229).await;
    let data_port = epsv_port(implicit, &reply);
    let data = balanced(data_port, &header(Version::V1, client, data_port)).await;
    raw.expect("NLST", 150).await;
    let mut secured = raw
        .secure_data(data)
        .await
        .expect("data TLS after the header");
    let mut names = String::new();
    secured.read_to_string(&mut names).await.expect("listing");
    assert!(names.contains("tls.bin"), "{names}");
    assert_eq!(raw.reply().await.0, 226);
    assert_eq!(
        client_ips_of(&capture, "login"),
        ["203.0.113.7", "203.0.113.7"]
    );
}

/// The data port a 229 reply (`|||port|`) announces, on `server`'s address.
fn epsv_port(server: SocketAddr, reply: &str) -> SocketAddr {
    let port = reply
        .split("|||")
        .nth(1)
        .and_then(|rest| rest.split('|').next())
        .and_then(|port| port.parse().ok())
        .unwrap_or_else(|| panic!("bad EPSV reply {reply}"));
    SocketAddr::new(server.ip(), port)
}
