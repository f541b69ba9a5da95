//! Reply codes and sequences real clients depend on (issues 12 and 13): a bad argument is
//! refused and the session goes on; 150 only once a transfer can start; RFC 959's replies to
//! MKD, ABOR, STAT and HELP; EPRT; and replies in command order even when commands are
//! pipelined.

mod common;

use common::{PASSWORD, RawSession, TestServer, pattern, read_all};
use std::net::SocketAddr;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

/// After a refusal, the session still answers.
async fn assert_session_goes_on(raw: &mut RawSession) {
    raw.expect("NOOP", 200).await;
}

#[tokio::test]
async fn a_bad_argument_is_refused_and_the_session_goes_on() {
    let server = TestServer::start().await;
    let mut raw = server.raw_login("alice").await;
    for command in [
        "OPTS UTF8",
        "OPTS NOSUCH ON",
        "REST abc",
        "MODE Z",
        "TYPE X",
        "CWD",
        "SIZE",
        "MDTM",
    ] {
        raw.send(command).await;
        let (code, text) = raw.reply().await;
        assert!(code == 501 || code == 504, "{command}: {text}");
        assert_session_goes_on(&mut raw).await;
    }
    raw.expect("TYPE A", 200).await;
    raw.expect("TYPE I", 200).await;
}

#[tokio::test]
async fn opts_mlst_selects_the_facts_feat_advertises() {
    let server = TestServer::start().await;
    std::fs::create_dir_all(server.home("alice")).unwrap();
    std::fs::write(server.home("alice").join("f.txt"), b"12345").unwrap();
    let mut raw = server.raw_login("alice").await;

    let feat = raw.expect("FEAT", 211).await;
    assert!(
        feat.lines()
            .any(|l| l.starts_with(" MLST type*;size*;modify*;")),
        "{feat}"
    );
    let text = raw.expect("OPTS MLST type;size;modify;", 200).await;
    assert_eq!(text, "200 MLST OPTS type;size;modify;\r\n");
    // Unknown facts are ignored; the reply names those that will be sent.
    let text = raw.expect("OPTS MLST Size;UNIX.owner;", 200).await;
    assert_eq!(text, "200 MLST OPTS size;\r\n");
    let facts = raw.expect("MLST f.txt", 250).await;
    assert!(facts.contains(" size=5; "), "{facts}");
    assert!(!facts.contains("type="), "{facts}");
    assert_session_goes_on(&mut raw).await;
}

/// The codes of the next `count` replies.
async fn reply_codes(raw: &mut RawSession, count: usize) -> Vec<u32> {
    let mut codes = Vec::new();
    for _ in 0..count {
        codes.push(raw.reply().await.0);
    }
    codes
}

#[tokio::test]
async fn pipelined_login_is_answered_in_command_order() {
    let server = TestServer::start().await;
    let mut raw = server.raw().await;
    raw.send(format!("USER alice\r\nPASS {PASSWORD}\r\nPWD\r\nNOOP"))
        .await;
    assert_eq!(reply_codes(&mut raw, 4).await, [331, 230, 257, 200]);

    let mut raw = server.raw().await;
    raw.send("USER alice\r\nPASS wrong\r\nPWD\r\nNOOP").await;
    assert_eq!(reply_codes(&mut raw, 4).await, [331, 530, 530, 200]);
}

#[tokio::test]
async fn pipelined_commands_answered_from_other_tasks_keep_their_order() {
    let server = TestServer::start().await;
    std::fs::create_dir_all(server.home("alice").join("d")).unwrap();
    std::fs::write(server.home("alice").join("d/f.txt"), b"abc").unwrap();
    let mut raw = server.raw_login("alice").await;
    raw.send(
        "CWD d\r\nPWD\r\nMKD sub\r\nSIZE f.txt\r\nMDTM f.txt\r\nRNFR f.txt\r\nRNTO g.txt\r\nNOOP",
    )
    .await;
    assert_eq!(
        reply_codes(&mut raw, 8).await,
        [250, 257, 257, 213, 213, 350, 250, 200]
    );
}

#[tokio::test]
async fn a_missing_file_or_directory_gets_550_without_a_150_first() {
    let server = TestServer::start().await;
    std::fs::create_dir_all(server.home("alice").join("dir")).unwrap();
    let mut raw = server.raw_login("alice").await;
    for command in [
        "RETR missing.bin",
        "RETR dir",
        "LIST missing-dir",
        "NLST missing-dir",
        "MLSD missing-dir",
    ] {
        let _data = raw.epsv(server.addr).await;
        raw.send(command).await;
        let (code, text) = raw.reply().await;
        assert_eq!(code, 550, "{command}: {text}");
        assert_session_goes_on(&mut raw).await;
    }
}

#[tokio::test]
async fn an_existing_file_and_directory_are_still_sent_after_150() {
    let server = TestServer::start().await;
    let content = pattern(200_000);
    std::fs::create_dir_all(server.home("alice").join("dir")).unwrap();
    std::fs::write(server.home("alice").join("dir/file.bin"), &content).unwrap();
    let mut raw = server.raw_login("alice").await;

    let data = raw.epsv(server.addr).await;
    raw.expect("RETR dir/file.bin", 150).await;
    assert!(read_all(data).await == content);
    assert_eq!(raw.reply().await.0, 226);

    for command in ["LIST dir", "NLST dir", "MLSD dir"] {
        let data = raw.epsv(server.addr).await;
        raw.expect(command, 150).await;
        let listing = String::from_utf8(read_all(data).await).unwrap();
        assert!(listing.contains("file.bin"), "{command}: {listing}");
        assert_eq!(raw.reply().await.0, 226, "{command}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abor_during_a_download_answers_426_for_the_transfer_then_226() {
    let server = TestServer::start().await;
    let home = server.home("alice");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(home.join("big.bin"), pattern(64 << 20)).unwrap();
    std::fs::write(home.join("small.txt"), b"small").unwrap();
    let mut raw = server.raw_login("alice").await;

    let mut data = raw.epsv(server.addr).await;
    raw.expect("RETR big.bin", 150).await;
    let mut first = vec![0u8; 64 * 1024];
    tokio::io::AsyncReadExt::read_exact(&mut data, &mut first)
        .await
        .unwrap();
    raw.send("ABOR").await;
    assert_eq!(reply_codes(&mut raw, 2).await, [426, 226]);
    drop(data);
    assert_session_goes_on(&mut raw).await;

    let data = raw.epsv(server.addr).await;
    raw.expect("RETR small.txt", 150).await;
    assert_eq!(read_all(data).await, b"small");
    assert_eq!(raw.reply().await.0, 226);
}

#[tokio::test]
async fn abor_without_a_running_transfer_gets_226_alone() {
    let server = TestServer::start().await;
    std::fs::create_dir_all(server.home("alice")).unwrap();
    std::fs::write(server.home("alice").join("small.txt"), b"small").unwrap();
    let mut raw = server.raw_login("alice").await;
    // No data connection at all.
    raw.expect("ABOR", 226).await;
    assert_session_goes_on(&mut raw).await;
    // A data connection with no transfer on it.
    let _data = raw.epsv(server.addr).await;
    raw.expect("ABOR", 226).await;
    assert_session_goes_on(&mut raw).await;
    // After a transfer that has ended.
    let data = raw.epsv(server.addr).await;
    raw.expect("RETR small.txt", 150).await;
    assert_eq!(read_all(data).await, b"small");
    assert_eq!(raw.reply().await.0, 226);
    raw.expect("ABOR", 226).await;
    assert_session_goes_on(&mut raw).await;
}

#[tokio::test]
async fn mkd_quotes_the_created_path_and_says_when_it_already_exists() {
    let server = TestServer::start().await;
    let mut raw = server.raw_login("alice").await;
    assert_eq!(
        raw.expect("MKD created-dir", 257).await,
        "257 \"/created-dir\" created\r\n"
    );
    assert_eq!(
        raw.expect("MKD say \"hi\"", 257).await,
        "257 \"/say \"\"hi\"\"\" created\r\n"
    );
    raw.expect("CWD say \"hi\"", 250).await;
    assert_eq!(raw.expect("PWD", 257).await, "257 \"/say \"\"hi\"\"\"\r\n");
    raw.expect("CWD /", 250).await;

    let text = raw.expect("MKD created-dir", 550).await;
    assert!(text.contains("already exists"), "{text}");
    std::fs::write(server.home("alice").join("plain.txt"), b"x").unwrap();
    let text = raw.expect("MKD plain.txt", 550).await;
    assert!(text.contains("already exists"), "{text}");
    let text = raw.expect("MKD no-such-parent/child", 550).await;
    assert!(!text.contains("already exists"), "{text}");
    assert_session_goes_on(&mut raw).await;
}

#[tokio::test]
async fn help_and_stat_name_ferry_without_a_library_version() {
    let server = TestServer::start().await;
    let mut raw = server.raw_login("alice").await;
    for (command, code) in [("HELP", 214), ("STAT", 211)] {
        let text = raw.expect(command, code).await;
        assert!(text.contains("Ferry FTP server"), "{command}: {text}");
        assert!(
            !text.to_lowercase().contains("libunftp"),
            "{command}: {text}"
        );
        assert!(!text.contains("0.24"), "{command}: {text}");
    }
    raw.expect("SYST", 215).await;
    assert_session_goes_on(&mut raw).await;
}

/// The lines of a multi-line reply, checked for RFC 959's form: `code-` first, `code ` last,
/// and every line between them indented.
fn multiline_body(code: u32, text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.trim_end_matches("\r\n").split("\r\n").collect();
    assert!(lines.len() >= 2, "not a multi-line reply: {text:?}");
    assert!(lines[0].starts_with(&format!("{code}-")), "{text:?}");
    assert!(
        lines[lines.len() - 1].starts_with(&format!("{code} ")),
        "{text:?}"
    );
    let inner = &lines[1..lines.len() - 1];
    assert!(inner.iter().all(|l| l.starts_with(' ')), "{text:?}");
    inner.iter().map(|l| l.to_string()).collect()
}

#[tokio::test]
async fn stat_with_a_path_lists_it_in_a_well_formed_multiline_reply() {
    let server = TestServer::start().await;
    let home = server.home("alice");
    std::fs::create_dir_all(home.join("dir")).unwrap();
    std::fs::write(home.join("dir/a.txt"), b"aaa").unwrap();
    std::fs::write(home.join("dir/b.txt"), b"bb").unwrap();
    let mut raw = server.raw_login("alice").await;

    let text = raw.expect("STAT dir", 213).await;
    let body = multiline_body(213, &text);
    assert!(text.starts_with("213-Status of \"dir\":"), "{text}");
    assert!(text.ends_with("213 End of status\r\n"), "{text}");
    assert_eq!(body.len(), 2, "{text}");
    assert!(body.iter().any(|l| l.ends_with(" a.txt")), "{text}");

    raw.expect("CWD dir", 250).await;
    let text = raw.expect("STAT b.txt", 213).await;
    let body = multiline_body(213, &text);
    assert_eq!(body.len(), 1, "{text}");
    assert!(
        body[0].starts_with(" -") && body[0].ends_with(" b.txt"),
        "{text}"
    );

    raw.expect("STAT missing", 550).await;
    let text = raw.expect("STAT", 211).await;
    multiline_body(211, &text);
    assert_session_goes_on(&mut raw).await;
}

#[tokio::test]
async fn nlst_skips_ls_options_as_list_does() {
    let server = TestServer::start().await;
    let home = server.home("alice");
    std::fs::create_dir_all(home.join("dir")).unwrap();
    std::fs::write(home.join("top.txt"), b"x").unwrap();
    std::fs::write(home.join("dir/inner.txt"), b"x").unwrap();
    let mut raw = server.raw_login("alice").await;
    for (command, expected) in [
        ("NLST -1", "top.txt"),
        ("NLST -a", "top.txt"),
        ("NLST -la", "top.txt"),
        ("NLST -l dir", "inner.txt"),
        ("NLST -a -l dir", "inner.txt"),
    ] {
        let data = raw.epsv(server.addr).await;
        raw.expect(command, 150).await;
        let names = String::from_utf8(read_all(data).await).unwrap();
        assert_eq!(raw.reply().await.0, 226, "{command}");
        assert!(
            names.lines().any(|l| l.ends_with(expected)),
            "{command}: {names:?}"
        );
    }
    assert_session_goes_on(&mut raw).await;
}

/// `EPRT |1|a.b.c.d|port|` or `EPRT |2|::1|port|` for a socket address.
fn eprt_argument(addr: SocketAddr) -> String {
    match addr {
        SocketAddr::V4(v4) => format!("EPRT |1|{}|{}|", v4.ip(), v4.port()),
        SocketAddr::V6(v6) => format!("EPRT |2|{}|{}|", v6.ip(), v6.port()),
    }
}

/// EPRT to a fresh listener on `ip`, then the data connection the server opens to it.
async fn eprt_connection(raw: &mut RawSession, ip: &str) -> tokio::net::TcpStream {
    let listener = TcpListener::bind((ip, 0)).await.unwrap();
    raw.expect(eprt_argument(listener.local_addr().unwrap()), 200)
        .await;
    listener.accept().await.unwrap().0
}

fn active_mode(config: &mut ferry::config::Config) {
    config.active_mode = true;
}

#[tokio::test]
async fn eprt_to_the_clients_own_address_lists_and_transfers() {
    let server = TestServer::start_with(active_mode, &common::default_users()).await;
    std::fs::create_dir_all(server.home("alice")).unwrap();
    let mut raw = server.raw_login("alice").await;
    let content = pattern(300_000);

    let mut data = eprt_connection(&mut raw, "127.0.0.1").await;
    raw.expect("STOR round.bin", 150).await;
    data.write_all(&content).await.unwrap();
    drop(data);
    assert_eq!(raw.reply().await.0, 226);

    let data = eprt_connection(&mut raw, "127.0.0.1").await;
    raw.expect("LIST", 150).await;
    let listing = String::from_utf8(read_all(data).await).unwrap();
    assert_eq!(raw.reply().await.0, 226);
    assert!(listing.contains("round.bin"), "{listing}");

    let data = eprt_connection(&mut raw, "127.0.0.1").await;
    raw.expect("RETR round.bin", 150).await;
    assert!(read_all(data).await == content);
    assert_eq!(raw.reply().await.0, 226);

    let feat = raw.expect("FEAT", 211).await;
    assert!(feat.contains("\r\n EPRT\r\n"), "{feat}");
}

/// True when a connection is waiting on `listener` (checked without blocking).
fn has_pending_connection(listener: &std::net::TcpListener) -> bool {
    listener.set_nonblocking(true).unwrap();
    listener.accept().is_ok()
}

#[tokio::test]
async fn eprt_elsewhere_or_to_a_privileged_port_is_refused_before_connecting() {
    let server = TestServer::start_with(active_mode, &common::default_users()).await;
    let mut raw = server.raw_login("alice").await;
    // Another host (a bounce target), listening: it must see no connection attempt.
    let elsewhere = std::net::TcpListener::bind("127.0.0.2:0").unwrap();
    raw.expect(eprt_argument(elsewhere.local_addr().unwrap()), 504)
        .await;
    assert!(!has_pending_connection(&elsewhere), "EPRT connected");
    raw.expect("EPRT |1|10.0.0.1|2000|", 504).await;
    // The client's own address, but a privileged port (RFC 2577).
    raw.expect("EPRT |1|127.0.0.1|25|", 504).await;
    // An address family other than IPv4 and IPv6; then malformed arguments.
    raw.expect("EPRT |3|127.0.0.1|2000|", 522).await;
    for bad in ["EPRT 127.0.0.1", "EPRT |1|127.0.0.1|", "EPRT |1|::1|2000|"] {
        raw.expect(bad, 501).await;
    }
    assert_session_goes_on(&mut raw).await;
}

#[tokio::test]
async fn eprt_is_refused_when_active_mode_is_off() {
    let server = TestServer::start_with(|c| c.active_mode = false, &common::default_users()).await;
    let mut raw = server.raw_login("alice").await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    raw.send(eprt_argument(listener.local_addr().unwrap()))
        .await;
    let (code, text) = raw.reply().await;
    assert_eq!(code / 100, 5, "EPRT with active mode off: {text}");
    assert!(!has_pending_connection(&listener), "EPRT connected");
    assert_session_goes_on(&mut raw).await;
}

#[tokio::test]
async fn eprt_works_over_ipv6() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("skipped: this machine has no IPv6 loopback");
        return;
    }
    let server = TestServer::start_with(
        |c| {
            c.bind = "[::1]:0".parse().unwrap();
            c.active_mode = true;
        },
        &common::default_users(),
    )
    .await;
    std::fs::create_dir_all(server.home("alice")).unwrap();
    std::fs::write(server.home("alice").join("v6.txt"), b"over ipv6").unwrap();
    let mut raw = server.raw_login("alice").await;
    let data = eprt_connection(&mut raw, "::1").await;
    raw.expect("RETR v6.txt", 150).await;
    assert_eq!(read_all(data).await, b"over ipv6");
    assert_eq!(raw.reply().await.0, 226);
    raw.expect("EPRT |2|::1|25|", 504).await;
    assert_session_goes_on(&mut raw).await;
}

/// A name longer than the filesystem allows (NAME_MAX, 255 bytes) is a name not allowed (553),
/// not a local error (451), and the session goes on.
#[tokio::test]
async fn a_file_name_longer_than_the_filesystem_allows_gets_553() {
    let server = TestServer::start().await;
    let mut raw = server.raw_login("alice").await;
    let long = "n".repeat(256);
    raw.expect(format!("MKD {long}"), 553).await;
    raw.expect(format!("SIZE {long}"), 553).await;
    assert_session_goes_on(&mut raw).await;
}
