//! Uploads are all or nothing: a broken or aborted upload never shows under the final name.

mod common;

use common::{TestServer, names_on_disk, pattern, read_all};
use std::path::Path;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

const ORIGINAL: &[u8] = b"version one, complete";

/// Puts the previous version of `name` in alice's home.
fn previous_version(server: &TestServer, name: &str) {
    std::fs::create_dir_all(server.home("alice")).unwrap();
    std::fs::write(server.home("alice").join(name), ORIGINAL).unwrap();
}

fn temporaries_in(dir: &Path) -> Vec<String> {
    names_on_disk(dir)
        .into_iter()
        .filter(|n| n.starts_with(".ferry-upload-"))
        .collect()
}

/// The files of uploads in progress in `dir`: named temporaries, and the unnamed files
/// (`O_TMPFILE`, for uploads to a new name) that this process, the in-process server, holds
/// open there; /proc shows those as `DIR/#INODE (deleted)`.
fn uploads_in_progress(dir: &Path) -> Vec<String> {
    let unnamed_prefix = format!("{}/#", dir.canonicalize().unwrap().display());
    let unnamed = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .map(|target| target.to_string_lossy().into_owned())
        .filter(|target| target.starts_with(&unnamed_prefix) && target.ends_with(" (deleted)"));
    temporaries_in(dir).into_iter().chain(unnamed).collect()
}

/// Waits (bounded) until the server has removed every temporary in `dir` and closed every
/// unnamed upload file there.
async fn until_no_temporaries(dir: &Path) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !uploads_in_progress(dir).is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "temporaries left: {:?}",
            uploads_in_progress(dir)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn upload_reset_midway_leaves_previous_version_intact() {
    let server = TestServer::start().await;
    previous_version(&server, "doc.bin");
    let mut raw = server.raw_login("alice").await;
    let mut data = raw.epsv(server.addr).await;
    raw.expect("STOR doc.bin", 150).await;
    data.write_all(&pattern(3 * 1024 * 1024)).await.unwrap();
    // SO_LINGER 0: close() sends RST, as a crashed network path would.
    data.set_zero_linger().unwrap();
    drop(data);
    let (code, text) = raw.reply().await;
    assert!(
        code == 426 || code == 451,
        "reply after a reset upload: {text}"
    );
    assert_eq!(
        std::fs::read(server.home("alice").join("doc.bin")).unwrap(),
        ORIGINAL
    );
    until_no_temporaries(&server.home("alice")).await;
    raw.expect("NOOP", 200).await;
}

#[tokio::test]
async fn upload_whose_client_vanished_leaves_previous_version_intact() {
    let server = TestServer::start().await;
    previous_version(&server, "doc.bin");
    let mut raw = server.raw_login("alice").await;
    let mut data = raw.epsv(server.addr).await;
    raw.expect("STOR doc.bin", 150).await;
    data.write_all(&pattern(1024 * 1024)).await.unwrap();
    // The client process dies: its control connection closes, then its data connection
    // closes cleanly, which on its own would look like the end of the file.
    // On loopback the control connection's FIN reaches the server before the data FIN.
    drop(raw);
    data.shutdown().await.unwrap();
    drop(data);
    until_no_temporaries(&server.home("alice")).await;
    assert_eq!(
        std::fs::read(server.home("alice").join("doc.bin")).unwrap(),
        ORIGINAL
    );
}

#[tokio::test]
async fn abor_during_upload_leaves_previous_version_intact() {
    let server = TestServer::start().await;
    previous_version(&server, "doc.bin");
    let mut raw = server.raw_login("alice").await;
    let mut data = raw.epsv(server.addr).await;
    raw.expect("STOR doc.bin", 150).await;
    data.write_all(&pattern(512 * 1024)).await.unwrap();
    data.flush().await.unwrap();
    // RFC 959: 426 for the aborted transfer, then 226 for the ABOR.
    raw.expect("ABOR", 426).await;
    assert_eq!(raw.reply().await.0, 226);
    // The server drops the transfer and its data connection; the client closes its end too.
    drop(data);
    raw.expect("NOOP", 200).await;
    until_no_temporaries(&server.home("alice")).await;
    assert_eq!(
        std::fs::read(server.home("alice").join("doc.bin")).unwrap(),
        ORIGINAL
    );
}

#[tokio::test]
async fn upload_in_progress_is_invisible_until_complete() {
    let server = TestServer::start().await;
    let home = server.home("alice");
    std::fs::create_dir_all(&home).unwrap();
    let mut uploader = server.raw_login("alice").await;
    let mut data = uploader.epsv(server.addr).await;
    uploader.expect("STOR incoming.bin", 150).await;
    let content = pattern(2 * 1024 * 1024);
    data.write_all(&content[..1024 * 1024]).await.unwrap();
    data.flush().await.unwrap();

    // Wait until the upload's file exists (a new name: an unnamed file), then look through
    // the client's eyes.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while uploads_in_progress(&home).is_empty() {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut watcher = server.raw_login("alice").await;
    for command in ["LIST -a", "NLST", "MLSD"] {
        let listing_socket = watcher.epsv(server.addr).await;
        watcher.expect(command, 150).await;
        let listing = String::from_utf8(read_all(listing_socket).await).unwrap();
        assert_eq!(watcher.reply().await.0, 226);
        assert!(
            !listing.contains(".ferry-upload-"),
            "{command} shows a temporary: {listing}"
        );
        assert!(
            !listing.contains("incoming.bin"),
            "{command} shows an unfinished upload: {listing}"
        );
    }
    watcher.expect("SIZE incoming.bin", 550).await;

    data.write_all(&content[1024 * 1024..]).await.unwrap();
    data.shutdown().await.unwrap();
    drop(data);
    assert_eq!(uploader.reply().await.0, 226);
    assert!(std::fs::read(home.join("incoming.bin")).unwrap() == content);
    until_no_temporaries(&home).await;
}

#[tokio::test]
async fn failed_first_upload_leaves_no_file_at_all() {
    let server = TestServer::start().await;
    std::fs::create_dir_all(server.home("alice")).unwrap();
    let mut raw = server.raw_login("alice").await;
    let mut data = raw.epsv(server.addr).await;
    raw.expect("STOR never.bin", 150).await;
    data.write_all(&pattern(100_000)).await.unwrap();
    data.set_zero_linger().unwrap();
    drop(data);
    let (code, _) = raw.reply().await;
    assert!(code == 426 || code == 451);
    until_no_temporaries(&server.home("alice")).await;
    assert!(!server.home("alice").join("never.bin").exists());
}

#[tokio::test]
async fn temporaries_left_by_a_crash_are_removed_at_start() {
    // Start once to learn the layout, then plant leftovers and start again on the same root.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let nested = root.join("alice/deep/er");
    std::fs::create_dir_all(&nested).unwrap();
    std::fs::write(root.join("alice/.ferry-upload-4242-0"), b"partial").unwrap();
    std::fs::write(nested.join(".ferry-upload-4242-1"), b"partial").unwrap();
    std::fs::write(nested.join("keep.txt"), b"keep").unwrap();
    let server = TestServer::start_with(|c| c.root = root.clone(), &common::default_users()).await;
    assert!(temporaries_in(&root.join("alice")).is_empty());
    assert_eq!(names_on_disk(&nested), ["keep.txt"]);
    drop(server);
}
