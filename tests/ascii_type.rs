//! TYPE A converts line endings as RFC 959 (section 3.1.1.1) and ProFTPD do: CRLF on the wire,
//! LF on disk. TYPE I stays byte-exact. SIZE and REST in TYPE A are refused as ProFTPD refuses
//! them (the size on disk is not what a download sends).

mod common;

use common::{RawSession, TestServer, read_all};
use tokio::io::AsyncWriteExt;

async fn upload(raw: &mut RawSession, server: &TestServer, command: &str, bytes: &[u8]) {
    let mut data = raw.epsv(server.addr).await;
    raw.expect(command, 150).await;
    data.write_all(bytes).await.expect("upload");
    data.shutdown().await.expect("end of upload");
    drop(data);
    assert_eq!(raw.reply().await.0, 226, "{command}");
}

async fn download(raw: &mut RawSession, server: &TestServer, name: &str) -> Vec<u8> {
    let data = raw.epsv(server.addr).await;
    raw.expect(format!("RETR {name}"), 150).await;
    let bytes = read_all(data).await;
    assert_eq!(raw.reply().await.0, 226, "RETR {name}");
    bytes
}

/// A text file larger than any single buffer of the data path, lines of varying length.
fn long_text() -> Vec<u8> {
    let mut text = Vec::new();
    for line in 0..40_000 {
        text.extend_from_slice(format!("line {line} {}\n", "x".repeat(line % 17)).as_bytes());
    }
    text
}

fn with_crlf(text: &[u8]) -> Vec<u8> {
    let mut wire = Vec::new();
    for &byte in text {
        if byte == b'\n' {
            wire.push(b'\r');
        }
        wire.push(byte);
    }
    wire
}

#[tokio::test]
async fn type_a_stores_crlf_as_lf_and_sends_lf_as_crlf() {
    let server = TestServer::start().await;
    let mut raw = server.raw_login("alice").await;
    let home = server.home("alice");
    raw.expect("TYPE A", 200).await;

    upload(&mut raw, &server, "STOR a.txt", b"a\r\nb\r\n").await;
    assert_eq!(
        std::fs::read(home.join("a.txt")).expect("stored"),
        b"a\nb\n"
    );

    upload(&mut raw, &server, "APPE a.txt", b"c\r\n").await;
    assert_eq!(
        std::fs::read(home.join("a.txt")).expect("appended"),
        b"a\nb\nc\n"
    );

    std::fs::write(home.join("b.txt"), b"a\nb\n").expect("write");
    assert_eq!(download(&mut raw, &server, "b.txt").await, b"a\r\nb\r\n");

    // Large enough for the transfer's own buffers, where a CRLF can fall across a boundary.
    let text = long_text();
    std::fs::write(home.join("long.txt"), &text).expect("write");
    assert!(download(&mut raw, &server, "long.txt").await == with_crlf(&text));
    upload(&mut raw, &server, "STOR long-up.txt", &with_crlf(&text)).await;
    assert!(std::fs::read(home.join("long-up.txt")).expect("stored") == text);
}

#[tokio::test]
async fn type_i_round_trips_crlf_bytes_unchanged() {
    let server = TestServer::start().await;
    let mut raw = server.raw_login("alice").await;
    let home = server.home("alice");
    raw.expect("TYPE A", 200).await;
    raw.expect("TYPE I", 200).await;
    let bytes = b"a\r\nb\nc\r\r\n".to_vec();
    upload(&mut raw, &server, "STOR crlf.bin", &bytes).await;
    assert_eq!(std::fs::read(home.join("crlf.bin")).expect("stored"), bytes);
    assert_eq!(download(&mut raw, &server, "crlf.bin").await, bytes);
    let text = with_crlf(&long_text());
    std::fs::write(home.join("long.bin"), &text).expect("write");
    assert!(download(&mut raw, &server, "long.bin").await == text);
}

#[tokio::test]
async fn size_and_rest_are_refused_in_type_a_as_proftpd_does() {
    let server = TestServer::start().await;
    let mut raw = server.raw_login("alice").await;
    std::fs::write(server.home("alice").join("a.txt"), b"a\nb\n").expect("write");
    raw.expect("SIZE a.txt", 213).await;
    raw.expect("TYPE A", 200).await;
    let text = raw.expect("SIZE a.txt", 550).await;
    assert!(text.contains("SIZE not allowed in ASCII mode"), "{text}");
    let text = raw.expect("REST 2", 501).await;
    assert!(text.contains("not allowed in ASCII mode"), "{text}");
    raw.expect("REST 0", 350).await;
    raw.expect("TYPE I", 200).await;
    raw.expect("SIZE a.txt", 213).await;
}
