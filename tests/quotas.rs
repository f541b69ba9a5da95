//! Quotas and bandwidth limits on the local store with accounts in a users file: uploads past a
//! quota are refused with 552 and leave nothing behind, usage is measured once and moved by
//! Ferry's own operations, `ferry user rescan` corrects it, AVBL/ALLO/SITE QUOTA report it, and
//! one account's sessions share one bandwidth bucket.

mod common;

use common::{ALL, RawSession, TestServer, TestUser, names_on_disk, pattern, read_all};
use std::ffi::OsStr;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

const MIB: u64 = 1024 * 1024;

fn user(name: &'static str, extra: &'static str) -> TestUser {
    TestUser {
        name,
        permissions: ALL,
        extra,
    }
}

async fn quota_server(extra: &'static str) -> TestServer {
    TestServer::start_with(|_| {}, &[user("alice", extra)]).await
}

/// Uploads `data` as `name` over a fresh data connection; the final reply's code and text.
async fn upload(
    raw: &mut RawSession,
    server: &TestServer,
    name: &str,
    data: &[u8],
) -> (u32, String) {
    let mut channel = raw.epsv(server.addr).await;
    raw.expect(format!("STOR {name}"), 150).await;
    // The server may stop reading midway (a quota): a write error then is expected.
    let _ = channel.write_all(data).await;
    let _ = channel.shutdown().await;
    drop(channel);
    raw.reply().await
}

fn stored_usage(server: &TestServer, user: &str) -> String {
    std::fs::read_to_string(
        server
            .root
            .join(".ferry-usage")
            .join(format!("{user}.usage")),
    )
    .unwrap_or_default()
}

#[tokio::test]
async fn an_upload_crossing_the_byte_quota_midway_gets_552_and_leaves_the_old_version_whole() {
    let server = quota_server("quota_bytes = \"1M\"").await;
    let home = server.home("alice");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(home.join("doc.bin"), b"version one").unwrap();
    let mut raw = server.raw_login("alice").await;

    let (code, text) = upload(&mut raw, &server, "doc.bin", &pattern(3 * MIB as usize)).await;
    assert_eq!(code, 552, "{text}");
    assert!(text.contains("Quota exceeded"), "{text}");
    assert_eq!(std::fs::read(home.join("doc.bin")).unwrap(), b"version one");
    assert_eq!(names_on_disk(&home), vec!["doc.bin".to_string()]);
    // Nothing of the refused upload counts: the home still holds 11 bytes in one file.
    assert_eq!(stored_usage(&server, "alice").trim(), "11 1");

    // The session goes on, and an upload that fits lands and counts.
    let fits = pattern(700_000);
    let (code, text) = upload(&mut raw, &server, "doc.bin", &fits).await;
    assert_eq!(code, 226, "{text}");
    assert_eq!(std::fs::read(home.join("doc.bin")).unwrap(), fits);
    assert_eq!(stored_usage(&server, "alice").trim(), "700000 1");
    // A second file of 700 KB does not fit beside it.
    let (code, _) = upload(&mut raw, &server, "second.bin", &fits).await;
    assert_eq!(code, 552);
    assert!(!home.join("second.bin").exists());
}

#[tokio::test]
async fn the_file_quota_refuses_a_new_file_but_not_a_replacement_and_delete_frees_one() {
    let server = quota_server("quota_files = 2").await;
    let mut raw = server.raw_login("alice").await;
    for name in ["a.txt", "b.txt"] {
        assert_eq!(upload(&mut raw, &server, name, b"x").await.0, 226);
    }
    let (code, text) = upload(&mut raw, &server, "c.txt", b"x").await;
    assert_eq!(code, 552, "{text}");
    assert!(text.contains("2 of 2 files"), "{text}");
    assert_eq!(upload(&mut raw, &server, "a.txt", b"new").await.0, 226);
    raw.expect("DELE b.txt", 250).await;
    assert_eq!(upload(&mut raw, &server, "c.txt", b"x").await.0, 226);
    assert_eq!(stored_usage(&server, "alice").trim(), "4 2");
}

#[tokio::test]
async fn appends_count_what_they_add() {
    let server = quota_server("quota_bytes = 1000").await;
    let mut raw = server.raw_login("alice").await;
    assert_eq!(
        upload(&mut raw, &server, "log.txt", &[b'a'; 600]).await.0,
        226
    );
    let mut channel = raw.epsv(server.addr).await;
    raw.expect("APPE log.txt", 150).await;
    let _ = channel.write_all(&[b'b'; 600]).await;
    drop(channel);
    assert_eq!(raw.reply().await.0, 552);
    assert_eq!(
        std::fs::read(server.home("alice").join("log.txt")).unwrap(),
        vec![b'a'; 600]
    );
    let mut channel = raw.epsv(server.addr).await;
    raw.expect("APPE log.txt", 150).await;
    channel.write_all(&[b'b'; 400]).await.unwrap();
    drop(channel);
    assert_eq!(raw.reply().await.0, 226);
    assert_eq!(stored_usage(&server, "alice").trim(), "1000 1");
}

#[tokio::test]
async fn avbl_allo_and_site_quota_report_what_is_left() {
    let server = quota_server("quota_bytes = \"1M\"\nquota_files = 10").await;
    let mut raw = server.raw_login("alice").await;
    assert!(raw.expect("FEAT", 211).await.contains("AVBL"));
    assert_eq!(
        upload(&mut raw, &server, "a.bin", &pattern(300_000))
            .await
            .0,
        226
    );
    let left = MIB - 300_000;
    assert_eq!(raw.expect("AVBL", 213).await.trim(), format!("213 {left}"));
    raw.expect(format!("ALLO {}", left + 1), 552).await;
    raw.expect(format!("ALLO {left}"), 200).await;
    raw.expect("ALLO lots", 501).await;
    let quota = raw.expect("SITE QUOTA", 200).await;
    assert!(quota.contains("Bytes used: 300000"), "{quota}");
    assert!(quota.contains("Files used: 1 of 10"), "{quota}");
}

#[tokio::test]
async fn without_a_quota_avbl_reports_free_disk_space_and_allo_is_ignored() {
    let server = TestServer::start().await;
    let mut raw = server.raw_login("alice").await;
    let text = raw.expect("AVBL", 213).await;
    let bytes: u64 = text
        .trim()
        .trim_start_matches("213 ")
        .parse()
        .expect("a number");
    assert!(bytes > 0);
    raw.expect("ALLO 1000", 202).await;
    // No usage is kept for an account without a quota.
    assert_eq!(stored_usage(&server, "alice"), "");
}

#[tokio::test]
async fn usage_is_measured_once_and_rescan_corrects_changes_behind_ferrys_back() {
    let server = quota_server("quota_bytes = 10000").await;
    let home = server.home("alice");
    std::fs::create_dir_all(home.join("sub")).unwrap();
    std::fs::write(home.join("one"), [0u8; 1000]).unwrap();
    std::fs::write(home.join("sub/two"), [0u8; 2000]).unwrap();
    let mut raw = server.raw_login("alice").await;
    // The first quota check walks the home.
    assert_eq!(raw.expect("AVBL", 213).await.trim(), "213 7000");
    assert_eq!(stored_usage(&server, "alice").trim(), "3000 2");
    // A file added behind Ferry's back is not seen: the home is not walked again...
    std::fs::write(home.join("sub/three"), [0u8; 4000]).unwrap();
    assert_eq!(raw.expect("AVBL", 213).await.trim(), "213 7000");
    // ...until `ferry user rescan`, which the running server then reads.
    let root = server.root.as_os_str();
    let users = server.users_file.as_os_str();
    let stdout = common::ferry_rescan(
        "alice",
        &[OsStr::new("--root"), root, OsStr::new("--users"), users],
        server.root.parent().unwrap(),
    );
    assert!(stdout.contains("alice: 3 files, 7000 bytes"), "{stdout}");
    assert_eq!(raw.expect("AVBL", 213).await.trim(), "213 3000");
}

#[tokio::test]
async fn the_usage_directory_is_neither_listed_nor_reachable_from_a_home_at_the_root() {
    let server = TestServer::start_with(
        |_| {},
        &[TestUser {
            name: "admin",
            permissions: ALL,
            extra: "quota_bytes = \"1G\"",
        }],
    )
    .await;
    // Point admin's home at the root itself.
    let text = std::fs::read_to_string(&server.users_file).unwrap();
    std::fs::write(
        &server.users_file,
        text.replace("home = \"admin\"", "home = \".\""),
    )
    .unwrap();
    server.users.reload().expect("reload");
    let mut raw = server.raw_login("admin").await;
    assert_eq!(upload(&mut raw, &server, "f", b"data").await.0, 226);
    assert!(server.root.join(".ferry-usage").is_dir());
    let channel = raw.epsv(server.addr).await;
    raw.expect("NLST -a", 150).await;
    let listing = String::from_utf8(read_all(channel).await).unwrap();
    raw.reply().await;
    assert!(!listing.contains(".ferry-usage"), "{listing}");
    raw.expect("CWD .ferry-usage", 553).await;
    raw.expect("DELE .ferry-usage/admin.usage", 553).await;
}

/// Downloads `name` in a new session of `user`; returns the bytes.
async fn download(server: &TestServer, user: &str, name: &str) -> Vec<u8> {
    let mut raw = server.raw_login(user).await;
    let channel = raw.epsv(server.addr).await;
    raw.expect(format!("RETR {name}"), 150).await;
    let bytes = read_all(channel).await;
    assert_eq!(raw.reply().await.0, 226);
    bytes
}

/// The shortest time `bytes` can take at `rate` bytes a second, less the bucket's burst.
fn at_least(bytes: u64, rate: u64) -> Duration {
    Duration::from_secs_f64(bytes as f64 / rate as f64 - 0.15)
}

#[tokio::test]
async fn two_sessions_of_one_account_share_its_download_bucket() {
    let rate = 2 * MIB;
    let server = quota_server("download_rate = \"2M\"").await;
    let file = pattern(2 * MIB as usize);
    std::fs::create_dir_all(server.home("alice")).unwrap();
    std::fs::write(server.home("alice").join("f.bin"), &file).unwrap();
    let started = Instant::now();
    let (first, second) = tokio::join!(
        download(&server, "alice", "f.bin"),
        download(&server, "alice", "f.bin")
    );
    let both = started.elapsed();
    assert_eq!(first, file);
    assert_eq!(second, file);
    // 4 MiB through one 2 MiB/s bucket: at least ~2 s, whatever the machine (a slow machine
    // only takes longer). Each alone would need only half.
    assert!(both >= at_least(4 * MIB, rate), "4 MiB took {both:?}");
}

#[tokio::test]
async fn upload_rate_limits_the_account_and_a_changed_limit_applies_to_the_next_transfer() {
    let server = quota_server("").await;
    let mut raw = server.raw_login("alice").await;
    let data = pattern(MIB as usize);
    assert_eq!(upload(&mut raw, &server, "free.bin", &data).await.0, 226);
    // The account gets a limit: the next upload is held to it.
    let generation = server.users.generation();
    let text = std::fs::read_to_string(&server.users_file).unwrap();
    std::fs::write(&server.users_file, format!("{text}upload_rate = \"1M\"\n")).unwrap();
    tokio::time::timeout(
        Duration::from_secs(5),
        server.users.wait_for_generation(generation + 1),
    )
    .await
    .expect("users file reloaded within the poll interval");
    let started = Instant::now();
    assert_eq!(upload(&mut raw, &server, "limited.bin", &data).await.0, 226);
    let took = started.elapsed();
    assert!(took >= at_least(MIB, MIB), "1 MiB at 1 MiB/s took {took:?}");
    assert_eq!(
        std::fs::read(server.home("alice").join("limited.bin")).unwrap(),
        data
    );
}

#[tokio::test]
async fn a_server_wide_download_rate_holds_every_account_together() {
    let server = TestServer::start_with(
        |config| config.limits.server_download_rate = 2 * MIB,
        &[user("alice", ""), user("bob", "")],
    )
    .await;
    let file = pattern(2 * MIB as usize);
    for name in ["alice", "bob"] {
        std::fs::create_dir_all(server.home(name)).unwrap();
        std::fs::write(server.home(name).join("f.bin"), &file).unwrap();
    }
    let started = Instant::now();
    let (a, b) = tokio::join!(
        download(&server, "alice", "f.bin"),
        download(&server, "bob", "f.bin")
    );
    let both = started.elapsed();
    assert_eq!((a == file, b == file), (true, true));
    assert!(both >= at_least(4 * MIB, 2 * MIB), "4 MiB took {both:?}");
}

#[test]
fn ferry_user_edit_sets_and_clears_limits_in_the_users_file() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.toml");
    common::write_users_file(&users, &[user("alice", "")]);
    let ferry = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(args)
            .arg("--users")
            .arg(&users)
            .output()
            .expect("run ferry user edit");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned()
                + &String::from_utf8_lossy(&output.stderr),
        )
    };
    let (ok, out) = ferry(&[
        "user",
        "edit",
        "alice",
        "--quota-bytes",
        "10G",
        "--quota-files",
        "100000",
        "--upload-rate",
        "5M",
    ]);
    assert!(ok, "{out}");
    let text = std::fs::read_to_string(&users).unwrap();
    assert!(
        text.contains(&format!("quota_bytes = {}", 10u64 << 30)),
        "{text}"
    );
    assert!(text.contains("quota_files = 100000"), "{text}");
    assert!(
        text.contains(&format!("upload_rate = {}", 5u64 << 20)),
        "{text}"
    );
    let (ok, out) = ferry(&["user", "edit", "alice", "--quota-bytes", "default"]);
    assert!(ok, "{out}");
    assert!(
        !std::fs::read_to_string(&users)
            .unwrap()
            .contains("quota_bytes =")
    );
    let (ok, out) = ferry(&["user", "edit", "alice", "--quota-files", "lots"]);
    assert!(!ok);
    assert!(out.contains("--quota-files"), "{out}");
}

#[tokio::test]
async fn usage_metrics_export_each_accounts_usage_only_when_asked() {
    for asked in [false, true] {
        let server = TestServer::start_with(
            |config| {
                config.admin_bind = Some("127.0.0.1:0".parse().unwrap());
                config.limits.usage_metrics = asked;
            },
            &[user("alice", "quota_bytes = \"1M\"")],
        )
        .await;
        let mut raw = server.raw_login("alice").await;
        assert_eq!(
            upload(&mut raw, &server, "a.bin", &pattern(1234)).await.0,
            226
        );
        let url = format!("http://{}/metrics", server.admin_addr.unwrap());
        let page = tokio::task::spawn_blocking(move || ferry::observe::health_check::get(&url))
            .await
            .unwrap()
            .expect("metrics page")
            .body;
        let series = "ferry_user_usage_bytes{user=\"alice\"} 1234";
        assert_eq!(page.contains(series), asked, "{page}");
        assert!(
            page.contains("ferry_usage_update_failures_total 0"),
            "{page}"
        );
    }
}
