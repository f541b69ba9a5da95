//! Logins, permissions and confinement: nothing outside the user's home, nothing not allowed.

mod common;

use common::{TestServer, TestUser, read_all};
use tokio::io::AsyncWriteExt;

#[tokio::test]
async fn wrong_password_and_unknown_user_both_get_530() {
    let server = TestServer::start().await;
    let mut raw = server.raw().await;
    raw.expect("USER alice", 331).await;
    raw.expect("PASS wrong", 530).await;
    raw.expect("USER nobody", 331).await;
    raw.expect(format!("PASS {}", common::PASSWORD), 530).await;
    // Nothing is allowed before login.
    raw.expect("PWD", 530).await;
    raw.expect("USER alice", 331).await;
    raw.expect(format!("PASS {}", common::PASSWORD), 230).await;
}

/// A user allowed everything except `missing`, for one refusal test each.
fn user_without(missing: &'static str) -> Vec<TestUser> {
    let permissions: &'static [&'static str] = Box::leak(
        common::ALL
            .iter()
            .copied()
            .filter(|p| *p != missing)
            .collect::<Vec<_>>()
            .into_boxed_slice(),
    );
    vec![TestUser {
        name: "limited",
        permissions,
        extra: "",
    }]
}

/// Starts a server whose user `limited` lacks `missing`, with a file and a directory in place.
async fn server_without(missing: &'static str) -> (TestServer, common::RawSession) {
    let server = TestServer::start_with(|_| {}, &user_without(missing)).await;
    let home = server.home("limited");
    std::fs::create_dir_all(home.join("dir")).unwrap();
    std::fs::write(home.join("file.txt"), b"original").unwrap();
    let raw = server.raw_login("limited").await;
    (server, raw)
}

#[tokio::test]
async fn each_missing_permission_is_refused_with_550_and_nothing_changes() {
    let (server, mut raw) = server_without("delete").await;
    raw.expect("DELE file.txt", 550).await;
    assert!(server.home("limited").join("file.txt").exists());

    let (server, mut raw) = server_without("mkdir").await;
    raw.expect("MKD new", 550).await;
    assert!(!server.home("limited").join("new").exists());

    let (server, mut raw) = server_without("rmdir").await;
    raw.expect("RMD dir", 550).await;
    assert!(server.home("limited").join("dir").exists());

    let (server, mut raw) = server_without("rename").await;
    raw.send("RNFR file.txt").await;
    let (code, _) = raw.reply().await;
    if code == 350 {
        raw.expect("RNTO moved.txt", 550).await;
    } else {
        assert_eq!(code, 550);
    }
    assert!(server.home("limited").join("file.txt").exists());

    let (_server, mut raw) = server_without("list").await;
    let data = raw.epsv(_server.addr).await;
    raw.send("LIST").await;
    let (code, _) = raw.reply().await;
    if code == 150 {
        let listing = read_all(data).await;
        assert!(listing.is_empty(), "no listing for a user without `list`");
        assert_eq!(raw.reply().await.0 / 100, 5);
    } else {
        assert_eq!(code / 100, 5);
    }

    let (_server, mut raw) = server_without("download").await;
    let data = raw.epsv(_server.addr).await;
    raw.expect("RETR file.txt", 150).await;
    assert!(read_all(data).await.is_empty());
    assert_eq!(raw.reply().await.0, 550);
}

#[tokio::test]
async fn upload_without_permission_is_refused_and_leaves_no_file() {
    let (server, mut raw) = server_without("upload").await;
    let mut data = raw.epsv(server.addr).await;
    raw.expect("STOR new.txt", 150).await;
    let _ = data.write_all(b"should not land").await;
    drop(data);
    assert_eq!(raw.reply().await.0, 550);
    assert!(!server.home("limited").join("new.txt").exists());
}

#[tokio::test]
async fn overwrite_without_permission_is_refused_but_new_files_are_allowed() {
    let (server, mut raw) = server_without("overwrite").await;
    let home = server.home("limited");
    let mut data = raw.epsv(server.addr).await;
    raw.expect("STOR file.txt", 150).await;
    let _ = data.write_all(b"replacement").await;
    drop(data);
    assert_eq!(raw.reply().await.0, 550);
    assert_eq!(std::fs::read(home.join("file.txt")).unwrap(), b"original");

    let mut data = raw.epsv(server.addr).await;
    raw.expect("STOR brand-new.txt", 150).await;
    data.write_all(b"fresh").await.unwrap();
    drop(data);
    assert_eq!(raw.reply().await.0, 226);
    assert_eq!(std::fs::read(home.join("brand-new.txt")).unwrap(), b"fresh");
}

#[tokio::test]
async fn read_only_user_can_list_and_download_only() {
    let server = TestServer::start().await;
    std::fs::create_dir_all(server.home("reader")).unwrap();
    std::fs::write(server.home("reader").join("doc.txt"), b"readable").unwrap();
    let mut ftp = server.login("reader").await;
    assert_eq!(common::download(&mut ftp, "doc.txt").await, b"readable");
    assert!(
        ftp.put_file("x.txt", &mut std::io::Cursor::new(b"x".to_vec()))
            .await
            .is_err()
    );
    assert!(ftp.rm("doc.txt").await.is_err());
    assert!(ftp.mkdir("d").await.is_err());
    assert!(server.home("reader").join("doc.txt").exists());
    assert!(!server.home("reader").join("x.txt").exists());
}

#[tokio::test]
async fn parent_and_absolute_paths_stay_inside_the_home() {
    let server = TestServer::start().await;
    // A file beside the homes that must stay unreachable.
    std::fs::write(server.root.join("secret.txt"), b"root secret").unwrap();
    std::fs::create_dir_all(server.home("reader")).unwrap();
    std::fs::write(server.home("reader").join("theirs.txt"), b"other user").unwrap();
    let mut raw = server.raw_login("alice").await;
    for path in [
        "../secret.txt",
        "/../secret.txt",
        "../../../../etc/passwd",
        "/etc/passwd",
        "../reader/theirs.txt",
    ] {
        let _data = raw.epsv(server.addr).await;
        // Refused before any 150: nothing is sent.
        raw.expect(format!("RETR {path}"), 550).await;
    }
    raw.expect("CWD ../..", 250).await;
    let pwd = raw.expect("PWD", 257).await;
    assert!(pwd.contains("\"/\""), "CWD .. stops at the home: {pwd}");
    // An upload aimed above the home lands inside it.
    let mut data = raw.epsv(server.addr).await;
    raw.expect("STOR ../../escaped.txt", 150).await;
    data.write_all(b"inside").await.unwrap();
    drop(data);
    assert_eq!(raw.reply().await.0, 226);
    assert!(!server.root.join("escaped.txt").exists());
    assert!(!server.root.parent().unwrap().join("escaped.txt").exists());
    assert_eq!(
        std::fs::read(server.home("alice").join("escaped.txt")).unwrap(),
        b"inside"
    );
}

#[tokio::test]
async fn symlinks_out_of_the_home_cannot_be_read_or_written_through() {
    let server = TestServer::start().await;
    let home = server.home("alice");
    let outside = server.root.parent().unwrap().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("target.txt"), b"outside secret").unwrap();
    std::fs::create_dir_all(&home).unwrap();
    std::os::unix::fs::symlink("/etc", home.join("etc-link")).unwrap();
    std::os::unix::fs::symlink(&outside, home.join("out-dir")).unwrap();
    std::os::unix::fs::symlink(outside.join("target.txt"), home.join("out-file")).unwrap();
    std::os::unix::fs::symlink("../../outside", home.join("relative-out")).unwrap();
    let mut raw = server.raw_login("alice").await;

    for path in [
        "etc-link/passwd",
        "out-file",
        "out-dir/target.txt",
        "relative-out/target.txt",
    ] {
        let data = raw.epsv(server.addr).await;
        raw.expect(format!("RETR {path}"), 150).await;
        assert!(read_all(data).await.is_empty(), "RETR {path} leaked data");
        assert_eq!(raw.reply().await.0, 550, "RETR {path}");
    }
    for path in [
        "out-dir/written.txt",
        "etc-link/ferry-test",
        "relative-out/written.txt",
    ] {
        let mut data = raw.epsv(server.addr).await;
        raw.expect(format!("STOR {path}"), 150).await;
        let _ = data.write_all(b"through a link").await;
        drop(data);
        assert_eq!(raw.reply().await.0 / 100, 5, "STOR {path} must be refused");
    }
    assert!(!outside.join("written.txt").exists());
    assert!(!std::path::Path::new("/etc/ferry-test").exists());
    assert_eq!(
        std::fs::read(outside.join("target.txt")).unwrap(),
        b"outside secret"
    );
    raw.expect("CWD out-dir", 550).await;
    raw.expect("CWD etc-link", 550).await;
    raw.expect("SIZE out-file", 550).await;
    raw.expect("DELE out-file", 250).await; // removes the link itself, never its target
    assert!(outside.join("target.txt").exists());
}

#[tokio::test]
async fn symlinks_inside_the_home_work() {
    let server = TestServer::start().await;
    let home = server.home("alice");
    std::fs::create_dir_all(home.join("real")).unwrap();
    std::fs::write(home.join("real/data.txt"), b"linked").unwrap();
    std::os::unix::fs::symlink("real", home.join("alias")).unwrap();
    let mut ftp = server.login("alice").await;
    assert_eq!(
        common::download(&mut ftp, "alias/data.txt").await,
        b"linked"
    );
}

#[tokio::test]
async fn upload_temporaries_cannot_be_named_by_clients() {
    let server = TestServer::start().await;
    let mut raw = server.raw_login("alice").await;
    raw.expect("SIZE .ferry-upload-1-1", 553).await;
    raw.expect("DELE .ferry-upload-1-1", 553).await;
}

#[tokio::test]
async fn symlinks_leading_outside_the_home_or_nowhere_are_left_out_of_listings() {
    let server = TestServer::start().await;
    let home = server.home("alice");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(home.join("real.txt"), b"12345").unwrap();
    std::os::unix::fs::symlink("real.txt", home.join("alias")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", home.join("out-file")).unwrap();
    std::os::unix::fs::symlink("/etc", home.join("etc-link")).unwrap();
    std::os::unix::fs::symlink("missing", home.join("dangling")).unwrap();
    let mut raw = server.raw_login("alice").await;
    let mut listings = Vec::new();
    for command in ["LIST", "NLST", "MLSD"] {
        let data = raw.epsv(server.addr).await;
        raw.expect(command, 150).await;
        let text = String::from_utf8(read_all(data).await).unwrap();
        assert_eq!(raw.reply().await.0, 226, "{command}");
        listings.push((command, text));
    }
    for (command, text) in &listings {
        for hidden in ["out-file", "etc-link", "dangling"] {
            assert!(!text.contains(hidden), "{command} lists {hidden}:\n{text}");
        }
        assert!(text.contains("real.txt"), "{command}:\n{text}");
        assert!(text.contains("alias"), "{command}:\n{text}");
    }
    // The link inside the home is listed as what it leads to.
    let mlsd = &listings[2].1;
    let alias = mlsd
        .lines()
        .find(|line| line.ends_with(" alias"))
        .expect("alias in MLSD");
    assert!(
        alias.to_ascii_lowercase().contains("type=file;") && alias.contains("size=5;"),
        "{alias}"
    );
}
