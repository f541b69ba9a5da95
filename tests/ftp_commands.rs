//! RFC 959 and extension commands: navigation, directories, rename, append, restart, features,
//! machine listings, modification times, passive modes and IPv6.

mod common;

use common::{TestServer, download, pattern, read_all};
use std::io::Cursor;

#[tokio::test]
async fn pwd_cwd_and_cdup_navigate_inside_the_home() {
    let server = TestServer::start().await;
    let mut ftp = server.login("alice").await;
    assert_eq!(ftp.pwd().await.unwrap(), "/");
    ftp.mkdir("a").await.unwrap();
    ftp.cwd("a").await.unwrap();
    ftp.mkdir("b").await.unwrap();
    ftp.cwd("b").await.unwrap();
    assert_eq!(ftp.pwd().await.unwrap(), "/a/b");
    ftp.put_file("deep.txt", &mut Cursor::new(b"deep".to_vec()))
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(server.home("alice").join("a/b/deep.txt")).unwrap(),
        b"deep"
    );
    ftp.cdup().await.unwrap();
    assert_eq!(ftp.pwd().await.unwrap(), "/a");
    ftp.cwd("/").await.unwrap();
    ftp.cdup().await.unwrap();
    assert_eq!(
        ftp.pwd().await.unwrap(),
        "/",
        "CDUP at the top stays at the top"
    );
    assert!(
        ftp.cwd("missing").await.is_err(),
        "CWD into a missing directory fails"
    );
}

#[tokio::test]
async fn cwd_into_a_file_is_refused() {
    let server = TestServer::start().await;
    let mut raw = server.raw_login("alice").await;
    std::fs::write(server.home("alice").join("plain.txt"), b"x").unwrap();
    raw.expect("CWD plain.txt", 550).await;
}

#[tokio::test]
async fn mkd_and_rmd_create_and_remove_directories() {
    let server = TestServer::start().await;
    let mut raw = server.raw_login("alice").await;
    let text = raw.expect("MKD newdir", 257).await;
    assert!(text.contains("newdir"), "{text}");
    assert!(server.home("alice").join("newdir").is_dir());
    std::fs::write(server.home("alice").join("newdir/f"), b"x").unwrap();
    raw.expect("RMD newdir", 550).await; // not empty
    std::fs::remove_file(server.home("alice").join("newdir/f")).unwrap();
    raw.expect("RMD newdir", 250).await;
    assert!(!server.home("alice").join("newdir").exists());
    raw.expect("RMD /", 550).await; // the home itself
}

#[tokio::test]
async fn rnfr_rnto_renames_files_and_directories() {
    let server = TestServer::start().await;
    let home = server.home("alice");
    let mut ftp = server.login("alice").await;
    ftp.put_file("old.txt", &mut Cursor::new(b"content".to_vec()))
        .await
        .unwrap();
    ftp.mkdir("dir").await.unwrap();
    ftp.rename("old.txt", "dir/new.txt")
        .await
        .expect("RNFR/RNTO");
    assert!(!home.join("old.txt").exists());
    assert_eq!(std::fs::read(home.join("dir/new.txt")).unwrap(), b"content");
    ftp.rename("dir", "renamed-dir")
        .await
        .expect("rename a directory");
    assert!(home.join("renamed-dir/new.txt").exists());
    assert!(ftp.rename("nothing-here", "x").await.is_err());
}

#[tokio::test]
async fn appe_appends_to_an_existing_file_and_creates_a_missing_one() {
    let server = TestServer::start().await;
    let home = server.home("alice");
    let mut ftp = server.login("alice").await;
    ftp.put_file("log.txt", &mut Cursor::new(b"first\n".to_vec()))
        .await
        .unwrap();
    ftp.append_file("log.txt", &mut Cursor::new(b"second\n".to_vec()))
        .await
        .expect("APPE");
    assert_eq!(
        std::fs::read(home.join("log.txt")).unwrap(),
        b"first\nsecond\n"
    );
    ftp.append_file("fresh.txt", &mut Cursor::new(b"new".to_vec()))
        .await
        .expect("APPE new file");
    assert_eq!(std::fs::read(home.join("fresh.txt")).unwrap(), b"new");
}

#[tokio::test]
async fn rest_then_retr_resumes_a_download() {
    let server = TestServer::start().await;
    let data = pattern(300_000);
    std::fs::create_dir_all(server.home("alice")).unwrap();
    std::fs::write(server.home("alice").join("big.bin"), &data).unwrap();
    let mut ftp = server.login("alice").await;
    ftp.resume_transfer(123_456).await.expect("REST");
    let tail = download(&mut ftp, "big.bin").await;
    assert!(
        tail == data[123_456..],
        "resumed download returns the rest of the file"
    );
    // The offset applies to one transfer only.
    let whole = download(&mut ftp, "big.bin").await;
    assert!(whole == data);
}

#[tokio::test]
async fn rest_then_stor_resumes_an_upload_in_place() {
    let server = TestServer::start().await;
    let data = pattern(200_000);
    let mut ftp = server.login("alice").await;
    ftp.put_file("partial.bin", &mut Cursor::new(data[..50_000].to_vec()))
        .await
        .unwrap();
    ftp.resume_transfer(50_000).await.expect("REST");
    ftp.put_file("partial.bin", &mut Cursor::new(data[50_000..].to_vec()))
        .await
        .expect("STOR after REST");
    let on_disk = std::fs::read(server.home("alice").join("partial.bin")).unwrap();
    assert!(on_disk == data, "resumed upload completes the file");
}

#[tokio::test]
async fn feat_advertises_the_extensions_ferry_serves() {
    let server = TestServer::start().await;
    let mut raw = server.raw_login("alice").await;
    let text = raw.expect("FEAT", 211).await;
    for feature in [
        "SIZE",
        "MDTM",
        "REST STREAM",
        "MLST",
        "MLSD",
        "EPSV",
        "UTF8",
    ] {
        assert!(
            text.contains(&format!(" {feature}")),
            "FEAT lacks {feature}: {text}"
        );
    }
    raw.expect("OPTS UTF8 ON", 200).await;
}

#[tokio::test]
async fn mlst_and_mdtm_describe_a_file() {
    let server = TestServer::start().await;
    let mut ftp = server.login("alice").await;
    ftp.put_file("facts.txt", &mut Cursor::new(b"12345678".to_vec()))
        .await
        .unwrap();
    let facts = ftp.mlst(Some("facts.txt")).await.expect("MLST");
    assert!(
        facts.contains("type=file") && facts.contains("size=8"),
        "{facts}"
    );
    let modified = ftp.mdtm("facts.txt").await.expect("MDTM");
    let on_disk: chrono::DateTime<chrono::Utc> =
        std::fs::metadata(server.home("alice").join("facts.txt"))
            .unwrap()
            .modified()
            .unwrap()
            .into();
    assert!(
        (on_disk.naive_utc() - modified).num_seconds().abs() <= 1,
        "MDTM {modified} vs disk {on_disk}"
    );
}

#[tokio::test]
async fn list_with_ls_flags_lists_the_directory() {
    let server = TestServer::start().await;
    std::fs::create_dir_all(server.home("alice")).unwrap();
    std::fs::write(server.home("alice").join("x.txt"), b"x").unwrap();
    let mut raw = server.raw_login("alice").await;
    for command in ["LIST -a", "LIST -la", "LIST -l"] {
        let data = raw.epsv(server.addr).await;
        raw.expect(command, 150).await;
        let listing = String::from_utf8(read_all(data).await).unwrap();
        assert_eq!(raw.reply().await.0, 226);
        assert!(
            listing
                .lines()
                .any(|l| l.starts_with('-') && l.ends_with(" x.txt")),
            "{command}: {listing:?}"
        );
    }
}

#[tokio::test]
async fn pasv_transfers_work_over_ipv4() {
    let server = TestServer::start().await;
    let mut ftp = server.login("alice").await;
    ftp.set_mode(suppaftp::Mode::Passive);
    let data = pattern(70_000);
    ftp.put_file("pasv.bin", &mut Cursor::new(data.clone()))
        .await
        .expect("STOR over PASV");
    assert!(download(&mut ftp, "pasv.bin").await == data);
}

#[tokio::test]
async fn epsv_transfers_work_over_ipv6() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("skipped: this machine has no IPv6 loopback");
        return;
    }
    let server = TestServer::start_with(
        |c| c.bind = "[::1]:0".parse().unwrap(),
        &common::default_users(),
    )
    .await;
    assert!(server.addr.is_ipv6());
    let mut ftp = server.login("alice").await;
    let data = pattern(100_000);
    ftp.put_file("v6.bin", &mut Cursor::new(data.clone()))
        .await
        .expect("STOR over IPv6");
    assert!(download(&mut ftp, "v6.bin").await == data);
    // PASV cannot carry an IPv6 address: a clear refusal, and the session goes on.
    let mut raw = server.raw_login("alice").await;
    raw.expect("PASV", 504).await;
    raw.expect("NOOP", 200).await;
}

#[tokio::test]
async fn dual_stack_listener_serves_ipv4_clients_with_pasv() {
    if std::net::TcpListener::bind("[::]:0").is_err() {
        eprintln!("skipped: this machine has no IPv6");
        return;
    }
    let server = TestServer::start_with(
        |c| c.bind = "[::]:0".parse().unwrap(),
        &common::default_users(),
    )
    .await;
    let v4 = std::net::SocketAddr::new("127.0.0.1".parse().unwrap(), server.addr.port());
    let mut ftp = suppaftp::tokio::AsyncFtpStream::connect(v4).await.unwrap();
    ftp.login("alice", common::PASSWORD).await.unwrap();
    ftp.set_mode(suppaftp::Mode::Passive);
    ftp.put_file("dual.txt", &mut Cursor::new(b"dual".to_vec()))
        .await
        .expect("PASV upload on [::]");
    assert_eq!(
        std::fs::read(server.home("alice").join("dual.txt")).unwrap(),
        b"dual"
    );
}

#[tokio::test]
async fn utf8_file_names_round_trip() {
    let server = TestServer::start().await;
    let mut ftp = server.login("alice").await;
    let name = "résumé — 数据 file.txt";
    ftp.put_file(name, &mut Cursor::new(b"utf8".to_vec()))
        .await
        .unwrap();
    assert!(server.home("alice").join(name).exists());
    assert!(ftp.nlst(None).await.unwrap().contains(&name.to_owned()));
    assert_eq!(download(&mut ftp, name).await, b"utf8");
}

/// A REST offset belongs to the next transfer command alone: when that command fails, the
/// download after it starts at byte 0 again (upstream libunftp carried the offset over, and
/// the client got a file without its head under a 226).
#[tokio::test]
async fn a_rest_offset_is_used_up_by_a_failed_transfer() {
    let server = TestServer::start().await;
    let home = server.home("alice");
    std::fs::create_dir_all(&home).unwrap();
    let content = pattern(10_000);
    std::fs::write(home.join("whole.bin"), &content).unwrap();

    let mut raw = server.raw_login("alice").await;
    raw.expect("TYPE I", 200).await;
    for failing in ["RETR missing.bin", "STOR no-such-dir/x.bin"] {
        raw.expect("REST 4000", 350).await;
        let _data = raw.epsv(server.addr).await;
        raw.send(failing).await;
        let mut reply = raw.reply().await;
        if reply.0 == 150 {
            reply = raw.reply().await;
        }
        assert!(reply.0 >= 400, "{failing}: {reply:?}");

        let data = raw.epsv(server.addr).await;
        raw.expect("RETR whole.bin", 150).await;
        let received = common::read_all(data).await;
        assert_eq!(raw.reply().await.0, 226);
        assert_eq!(
            received.len(),
            content.len(),
            "after a failed {failing}, RETR started at byte {}",
            content.len() - received.len()
        );
        assert!(received == content, "after a failed {failing}");
    }
}
