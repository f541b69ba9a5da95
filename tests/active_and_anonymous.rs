//! Active mode (PORT) is on by default (off with `active_mode = false`) and connects only back
//! to the client; anonymous login is off by default and, when on, is read-only and confined.

mod common;

use common::{TestServer, download};
use std::io::Cursor;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

/// `PORT h1,h2,h3,h4,p1,p2` for a socket address.
fn port_argument(addr: std::net::SocketAddr) -> String {
    let std::net::IpAddr::V4(ip) = addr.ip() else {
        panic!("IPv4 only")
    };
    let [a, b, c, d] = ip.octets();
    format!(
        "PORT {a},{b},{c},{d},{},{}",
        addr.port() >> 8,
        addr.port() & 0xff
    )
}

#[tokio::test]
async fn port_is_refused_when_active_mode_is_off() {
    let server = TestServer::start_with(|c| c.active_mode = false, &common::default_users()).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut raw = server.raw_login("alice").await;
    raw.send(port_argument(listener.local_addr().unwrap()))
        .await;
    let (code, text) = raw.reply().await;
    assert_eq!(code / 100, 5, "PORT with active mode off: {text}");
    raw.expect("NOOP", 200).await;
}

#[tokio::test]
async fn port_to_the_clients_own_address_transfers_data_by_default() {
    // Default settings: active mode is on, as in the C servers.
    let server = TestServer::start().await;
    std::fs::create_dir_all(server.home("alice")).unwrap();
    std::fs::write(server.home("alice").join("active.txt"), b"sent actively").unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut raw = server.raw_login("alice").await;
    raw.expect(port_argument(listener.local_addr().unwrap()), 200)
        .await;
    raw.expect("RETR active.txt", 150).await;
    let (mut data, peer) = listener.accept().await.unwrap();
    assert_eq!(peer.ip(), server.addr.ip());
    let mut received = Vec::new();
    data.read_to_end(&mut received).await.unwrap();
    assert_eq!(received, b"sent actively");
    assert_eq!(raw.reply().await.0, 226);
}

#[tokio::test]
async fn port_to_another_address_or_a_privileged_port_is_refused_before_connecting() {
    let server = TestServer::start_with(|c| c.active_mode = true, &common::default_users()).await;
    let mut raw = server.raw_login("alice").await;
    // Another host (a bounce target): refused without any connection attempt.
    raw.expect("PORT 127,0,0,2,195,80", 504).await;
    raw.expect("PORT 10,0,0,1,0,21", 504).await;
    // The client's own address, but a privileged port (RFC 2577).
    raw.expect("PORT 127,0,0,1,0,25", 504).await;
    raw.expect("NOOP", 200).await;
}

#[tokio::test]
async fn anonymous_login_is_refused_by_default() {
    let server = TestServer::start().await;
    let mut raw = server.raw().await;
    raw.expect("USER anonymous", 331).await;
    raw.expect("PASS guest@example.com", 530).await;
}

#[tokio::test]
async fn anonymous_login_when_enabled_is_read_only_and_confined_to_its_home() {
    let server = TestServer::start_with(|c| c.anonymous = true, &common::default_users()).await;
    let public = server.root.join("anonymous");
    std::fs::create_dir_all(&public).unwrap();
    std::fs::write(public.join("readme.txt"), b"public file").unwrap();
    std::fs::create_dir_all(server.home("alice")).unwrap();
    std::fs::write(server.home("alice").join("private.txt"), b"alice only").unwrap();

    let mut ftp = server.connect().await;
    ftp.login("anonymous", "guest@example.com")
        .await
        .expect("anonymous login");
    assert_eq!(download(&mut ftp, "readme.txt").await, b"public file");
    assert!(
        ftp.put_file("upload.txt", &mut Cursor::new(b"x".to_vec()))
            .await
            .is_err()
    );
    assert!(ftp.rm("readme.txt").await.is_err());
    assert!(!public.join("upload.txt").exists());
    assert!(public.join("readme.txt").exists());
    // Another user's home is out of reach.
    let mut raw = server.raw().await;
    raw.expect("USER anonymous", 331).await;
    raw.expect("PASS guest@example.com", 230).await;
    let _data = raw.epsv(server.addr).await;
    // Refused before any 150: nothing is sent.
    raw.expect("RETR ../alice/private.txt", 550).await;
}
