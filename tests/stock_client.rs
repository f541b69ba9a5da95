//! A stock client, curl, against Ferry: upload, list, download, delete.

mod common;

use common::{PASSWORD, TestServer, pattern};
use std::process::Command;

fn curl(args: &[&str]) -> std::process::Output {
    Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "60"])
        .args(args)
        .output()
        .expect("curl is installed (.ci/run installs it: apt-get install curl)")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_uploads_lists_downloads_and_deletes() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source.bin");
    let content = pattern(3 * 1024 * 1024 + 11);
    std::fs::write(&source, &content).unwrap();
    let base = format!(
        "ftp://alice:{}@{}/",
        PASSWORD.replace(' ', "%20"),
        server.addr
    );

    let upload = tokio::task::spawn_blocking({
        let (source, url) = (source.clone(), format!("{base}curl.bin"));
        move || curl(&["-T", source.to_str().unwrap(), &url])
    })
    .await
    .unwrap();
    assert!(
        upload.status.success(),
        "curl upload: {}",
        String::from_utf8_lossy(&upload.stderr)
    );
    assert!(std::fs::read(server.home("alice").join("curl.bin")).unwrap() == content);

    let listing = tokio::task::spawn_blocking({
        let url = base.clone();
        move || curl(&[&url])
    })
    .await
    .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout).into_owned();
    assert!(
        listing
            .lines()
            .any(|l| l.ends_with(" curl.bin") && l.contains(&content.len().to_string())),
        "{listing}"
    );

    let target = dir.path().join("downloaded.bin");
    let download = tokio::task::spawn_blocking({
        let (target, url) = (target.clone(), format!("{base}curl.bin"));
        move || curl(&["-o", target.to_str().unwrap(), &url])
    })
    .await
    .unwrap();
    assert!(
        download.status.success(),
        "curl download: {}",
        String::from_utf8_lossy(&download.stderr)
    );
    assert!(std::fs::read(&target).unwrap() == content);

    let delete = tokio::task::spawn_blocking({
        let url = base.clone();
        move || curl(&["-Q", "DELE curl.bin", &url])
    })
    .await
    .unwrap();
    assert!(
        delete.status.success(),
        "curl DELE: {}",
        String::from_utf8_lossy(&delete.stderr)
    );
    assert!(!server.home("alice").join("curl.bin").exists());

    let refused = tokio::task::spawn_blocking({
        let url = format!("ftp://alice:wrong@{}/", server.addr);
        move || curl(&[&url])
    })
    .await
    .unwrap();
    assert_eq!(
        refused.status.code(),
        Some(67),
        "curl reports a login failure (exit 67)"
    );
}
