//! Object storage: Ferry serving homes from a real S3-compatible server (moto), driven by
//! suppaftp and raw FTP, checked by looking into the bucket with an S3 client.

mod common;
#[path = "common/s3.rs"]
mod s3;

use common::{ALL, TestServer, TestUser, download, pattern};
use std::io::Cursor;
use std::time::Duration;
use suppaftp::Status;
use tokio::io::AsyncWriteExt;

const MIB: usize = 1024 * 1024;

/// `alice` may do everything; `carol` may upload but not overwrite.
fn users() -> Vec<TestUser> {
    vec![
        TestUser {
            name: "alice",
            permissions: ALL,
            extra: "",
        },
        TestUser {
            name: "carol",
            permissions: &["list", "download", "upload", "mkdir"],
            extra: "",
        },
    ]
}

#[tokio::test]
async fn the_seed_operations_round_trip_through_the_bucket() {
    let f = s3::Fixture::start_with(&users(), |_| {}).await;
    let mut ftp = f.server.login("alice").await;
    ftp.noop().await.expect("connme: NOOP");
    for (name, len) in [
        ("empty.bin", 0),
        ("small.txt", 1000),
        ("über file ✓.bin", 6 * MIB + 3),
    ] {
        let data = pattern(len);
        ftp.put_file(name, &mut Cursor::new(data.clone()))
            .await
            .expect("upload");
        assert_eq!(
            f.object(&format!("site/alice/{name}")).await.as_deref(),
            Some(&data[..]),
            "object of {name}"
        );
        assert_eq!(download(&mut ftp, name).await, data, "download of {name}");
        assert_eq!(ftp.size(name).await.expect("SIZE"), len);
        ftp.mdtm(name).await.expect("MDTM");
    }
    let names = ftp.nlst(None).await.expect("NLST");
    let mut names: Vec<&str> = names.iter().map(|n| n.trim_start_matches("./")).collect();
    names.sort();
    assert_eq!(names, ["empty.bin", "small.txt", "über file ✓.bin"]);
    let listing = ftp.list(None).await.expect("LIST");
    assert!(
        listing
            .iter()
            .any(|line| line.contains(&format!("{}", 6 * MIB + 3))
                && line.ends_with("über file ✓.bin")),
        "{listing:?}"
    );
    let mlsd = ftp.mlsd(None).await.expect("MLSD");
    assert!(
        mlsd.iter()
            .any(|line| line.contains("type=file") && line.contains("size=1000")),
        "{mlsd:?}"
    );
    ftp.rm("small.txt").await.expect("DELE");
    assert_eq!(f.object("site/alice/small.txt").await, None);
    let missing = ftp
        .rm("small.txt")
        .await
        .expect_err("DELE of a missing file");
    assert_eq!(code_of(&missing), Status::FileUnavailable.code());
    ftp.quit().await.expect("byebye: QUIT");
    assert_eq!(
        f.keys().await,
        ["site/alice/empty.bin", "site/alice/über file ✓.bin"]
    );
}

#[tokio::test]
async fn directories_are_prefixes_with_markers() {
    let f = s3::Fixture::start_with(&users(), |_| {}).await;
    let mut ftp = f.server.login("alice").await;
    ftp.mkdir("reports 2026").await.expect("MKD");
    assert!(
        f.keys()
            .await
            .contains(&"site/alice/reports 2026/".to_owned())
    );
    let again = ftp.mkdir("reports 2026").await.expect_err("MKD twice");
    assert_eq!(code_of(&again), 550);
    ftp.cwd("reports 2026")
        .await
        .expect("CWD into an empty directory");
    assert_eq!(ftp.pwd().await.expect("PWD"), "/reports 2026");
    ftp.put_file("q3.csv", &mut Cursor::new(b"a,b\n".to_vec()))
        .await
        .expect("upload");
    ftp.cdup().await.expect("CDUP");
    let not_empty = ftp
        .rmdir("reports 2026")
        .await
        .expect_err("RMD of a non-empty directory");
    assert_eq!(code_of(&not_empty), 550);
    assert!(
        ftp.cwd("nowhere").await.is_err(),
        "CWD into a missing directory"
    );
    let listing = ftp.list(None).await.expect("LIST");
    assert!(
        listing
            .iter()
            .any(|l| l.starts_with('d') && l.ends_with("reports 2026")),
        "{listing:?}"
    );
    // Rename a directory: every key moves.
    ftp.rename("reports 2026", "archive")
        .await
        .expect("RNFR/RNTO of a directory");
    assert_eq!(
        f.keys().await,
        ["site/alice/archive/", "site/alice/archive/q3.csv"]
    );
    ftp.rm("archive/q3.csv").await.expect("DELE");
    ftp.rmdir("archive")
        .await
        .expect("RMD of the now empty directory");
    assert!(f.keys().await.is_empty());
    // An upload into a directory that does not exist fails, as on disk.
    let error = ftp
        .put_file("missing/file", &mut Cursor::new(b"x".to_vec()))
        .await
        .expect_err("upload into a missing directory");
    assert_eq!(code_of(&error), 550);
}

#[tokio::test]
async fn files_rename_by_copy_and_delete() {
    let f = s3::Fixture::start_with(&users(), |_| {}).await;
    let mut ftp = f.server.login("alice").await;
    let data = pattern(7 * MIB);
    ftp.put_file("draft.bin", &mut Cursor::new(data.clone()))
        .await
        .expect("upload");
    ftp.rename("draft.bin", "final name.bin")
        .await
        .expect("rename");
    assert_eq!(f.object("site/alice/draft.bin").await, None);
    assert_eq!(f.object("site/alice/final name.bin").await, Some(data));
    let missing = ftp
        .rename("draft.bin", "other")
        .await
        .expect_err("rename of a missing file");
    assert_eq!(code_of(&missing), 550);
}

#[tokio::test]
async fn restart_offsets_work_both_ways() {
    let f = s3::Fixture::start_with(&users(), |_| {}).await;
    let data = pattern(3 * MIB + 11);
    let mut raw = f.server.raw_login("alice").await;
    // First half, as a broken upload would have left it... then REST + STOR of the rest.
    s3::put(
        &f.s3,
        &f.bucket,
        "site/alice/resume.bin",
        data[..MIB].to_vec(),
    )
    .await;
    raw.expect(format!("REST {MIB}"), 350).await;
    let mut data_connection = raw.epsv(f.server.addr).await;
    raw.send("STOR resume.bin").await;
    assert_eq!(raw.reply().await.0, 150);
    data_connection
        .write_all(&data[MIB..])
        .await
        .expect("send the rest");
    drop(data_connection);
    assert_eq!(raw.reply().await.0, 226);
    assert_eq!(f.object("site/alice/resume.bin").await, Some(data.clone()));

    // REST + RETR: the tail from the offset.
    raw.expect("REST 1000", 350).await;
    let data_connection = raw.epsv(f.server.addr).await;
    raw.send("RETR resume.bin").await;
    assert_eq!(raw.reply().await.0, 150);
    assert_eq!(common::read_all(data_connection).await, &data[1000..]);
    assert_eq!(raw.reply().await.0, 226);

    // An offset past the end is refused and changes nothing.
    raw.expect(format!("REST {}", data.len() + 1), 350).await;
    let mut data_connection = raw.epsv(f.server.addr).await;
    raw.send("STOR resume.bin").await;
    let mut reply = raw.reply().await;
    if reply.0 == 150 {
        // The data connection is accepted before the object is looked at, as on disk.
        let _ = data_connection.write_all(b"x").await;
        let _ = data_connection.shutdown().await;
        reply = raw.reply().await;
    }
    assert_eq!(reply.0, 554, "{reply:?}");
    assert_eq!(f.object("site/alice/resume.bin").await, Some(data));
}

#[tokio::test]
async fn appe_appends_small_and_large_objects() {
    let f = s3::Fixture::start_with(&users(), |_| {}).await;
    let mut ftp = f.server.login("alice").await;
    // Missing: APPE creates it. Small: streamed through. At least 5 MiB: copied inside S3.
    let mut expected = Vec::new();
    for piece in [pattern(1000), pattern(6 * MIB + 5), pattern(777)] {
        ftp.append_file("log.bin", &mut Cursor::new(piece.clone()))
            .await
            .expect("APPE");
        expected.extend_from_slice(&piece);
        assert_eq!(
            f.object("site/alice/log.bin").await.map(|o| o.len()),
            Some(expected.len())
        );
    }
    assert_eq!(f.object("site/alice/log.bin").await, Some(expected));
    assert!(
        s3::uploads_after_settling(&f.s3, &f.bucket)
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn a_directory_of_over_a_thousand_keys_lists_completely() {
    let f = s3::Fixture::start_with(&users(), |_| {}).await;
    let count = 1_005;
    for index in 0..count {
        s3::put(
            &f.s3,
            &f.bucket,
            &format!("site/alice/many/f{index:04}"),
            vec![b'x'; index % 7],
        )
        .await;
    }
    let mut ftp = f.server.login("alice").await;
    let names = ftp.nlst(Some("many")).await.expect("NLST");
    assert_eq!(names.len(), count, "NLST names every key");
    let listing = ftp.list(Some("many")).await.expect("LIST");
    assert_eq!(listing.len(), count);
    assert!(listing.iter().any(|line| line.ends_with("f1004")));
    drop(ftp);
    // Renaming it would copy over a thousand keys one by one: refused before anything changes.
    let mut raw = f.server.raw_login("alice").await;
    raw.expect("RNFR many", 350).await;
    let refusal = raw.expect("RNTO renamed", 550).await;
    assert!(refusal.contains("too large to rename"), "{refusal}");
    let keys = f.keys().await;
    assert_eq!(keys.len(), count);
    assert!(keys.iter().all(|key| key.starts_with("site/alice/many/")));
}

/// An upload of several parts that does not end cleanly, in the way `end` ends it.
async fn broken_upload_leaves_nothing(end: &str) {
    let f = s3::Fixture::start_with(&users(), |_| {}).await;
    let old = pattern(1000);
    s3::put(&f.s3, &f.bucket, "site/alice/big.bin", old.clone()).await;
    let mut raw = f.server.raw_login("alice").await;
    let mut data_connection = raw.epsv(f.server.addr).await;
    raw.send("STOR big.bin").await;
    assert_eq!(raw.reply().await.0, 150);
    // Three parts' worth: at least two are sent to S3 before the upload ends.
    data_connection
        .write_all(&pattern(12 * MIB))
        .await
        .expect("send");
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The old version stays whole while the new one is on its way.
    assert_eq!(f.object("site/alice/big.bin").await, Some(old.clone()));
    match end {
        "reset" => {
            let socket = socket2::SockRef::from(&data_connection);
            socket
                .set_linger(Some(Duration::ZERO))
                .expect("SO_LINGER 0");
            drop(data_connection);
            let code = raw.reply().await.0;
            assert!(
                code == 426 || code == 451,
                "reply to a reset upload: {code}"
            );
        }
        "abor" => {
            raw.send("ABOR").await;
            let first = raw.reply().await.0;
            assert!(first == 426 || first == 226, "{first}");
            drop(data_connection);
        }
        "control closed" => {
            drop(raw);
            tokio::time::sleep(Duration::from_millis(300)).await;
            drop(data_connection);
        }
        other => unreachable!("{other}"),
    }
    assert_eq!(
        s3::uploads_after_settling(&f.s3, &f.bucket).await,
        Vec::<String>::new(),
        "no multipart upload left behind ({end})"
    );
    assert_eq!(
        f.object("site/alice/big.bin").await,
        Some(old),
        "old version intact ({end})"
    );
    let journal: Vec<String> = f
        .keys()
        .await
        .into_iter()
        .filter(|k| k.contains(".ferry-upload-"))
        .collect();
    assert!(journal.is_empty(), "journal entries left: {journal:?}");
}

#[tokio::test]
async fn a_reset_upload_leaves_no_object_and_no_multipart_upload() {
    broken_upload_leaves_nothing("reset").await;
}

#[tokio::test]
async fn an_aborted_upload_leaves_no_object_and_no_multipart_upload() {
    broken_upload_leaves_nothing("abor").await;
}

#[tokio::test]
async fn an_upload_whose_control_connection_closed_is_not_committed() {
    broken_upload_leaves_nothing("control closed").await;
}

#[tokio::test]
async fn overwrite_protection_holds_under_a_race() {
    let f = s3::Fixture::start_with(&users(), |_| {}).await;
    let mut ftp = f.server.login("carol").await;
    ftp.put_file("mine.txt", &mut Cursor::new(b"first".to_vec()))
        .await
        .expect("create");
    let refused = ftp
        .put_file("mine.txt", &mut Cursor::new(b"second".to_vec()))
        .await
        .expect_err("carol may not overwrite");
    assert_eq!(code_of(&refused), 550);
    assert_eq!(
        f.object("site/carol/mine.txt").await.as_deref(),
        Some(&b"first"[..])
    );

    // Someone else creates the name while carol's upload is on its way: the conditional
    // write refuses carol's commit instead of replacing theirs.
    let mut raw = f.server.raw_login("carol").await;
    let mut data_connection = raw.epsv(f.server.addr).await;
    raw.send("STOR race.txt").await;
    assert_eq!(raw.reply().await.0, 150);
    data_connection.write_all(b"carol's").await.expect("send");
    s3::put(&f.s3, &f.bucket, "site/carol/race.txt", b"theirs".to_vec()).await;
    drop(data_connection);
    assert_eq!(raw.reply().await.0, 550);
    assert_eq!(
        f.object("site/carol/race.txt").await.as_deref(),
        Some(&b"theirs"[..])
    );
}

#[tokio::test]
async fn hash_mfmt_and_chmod_answer_clearly() {
    let f = s3::Fixture::start_with(&users(), |_| {}).await;
    let mut raw = f.server.raw_login("alice").await;
    s3::put(&f.s3, &f.bucket, "site/alice/h.txt", b"hello".to_vec()).await;
    let hash = raw.expect("HASH h.txt", 213).await;
    assert!(
        hash.contains("2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"),
        "{hash}"
    );
    let mfmt = raw.expect("MFMT 20200101000000 h.txt", 550).await;
    assert!(mfmt.contains("Object storage"), "{mfmt}");
    let chmod = raw.expect("SITE CHMOD 600 h.txt", 550).await;
    assert!(chmod.contains("permission bits"), "{chmod}");
}

#[tokio::test]
async fn an_unreachable_service_gives_451_and_the_session_survives() {
    let mut moto = s3::OwnMoto::start();
    let client = s3::client(&moto.endpoint);
    let bucket = s3::new_bucket(&client).await;
    let credentials = tempfile::tempdir().expect("temp dir");
    let file = s3::credentials_file(credentials.path());
    let endpoint = moto.endpoint.clone();
    let server = TestServer::start_with(
        |config| s3::use_bucket(config, &endpoint, &bucket, "", file),
        &users(),
    )
    .await;
    let mut raw = server.raw_login("alice").await;
    moto.kill();
    let started = std::time::Instant::now();
    raw.send("SIZE anything").await;
    let (code, text) = raw.reply().await;
    assert_eq!(code, 451, "{text}");
    assert!(text.contains("Storage service unavailable"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(60));
    raw.expect("NOOP", 200).await;
    raw.expect("PWD", 257).await;
}

#[tokio::test]
async fn wrong_credentials_and_an_unreachable_endpoint_stop_the_start_with_the_key_to_fix() {
    let client = s3::client(s3::moto());
    let bucket = s3::new_bucket(&client).await;
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("users.toml"), "").expect("users file");
    let bad_credentials = dir.path().join("bad");
    std::fs::write(&bad_credentials, "not a credentials file").expect("write");
    let mut config = ferry::config::Config {
        bind: "127.0.0.1:0".parse().expect("address"),
        users_file: dir.path().join("users.toml"),
        ..Default::default()
    };
    s3::use_bucket(&mut config, s3::moto(), &bucket, "", bad_credentials);
    let logger = slog::Logger::root(slog::Discard, slog::o!());
    let error = ferry::server::check_services(&config, &logger)
        .await
        .expect_err("bad credentials file");
    assert!(
        error.to_string().starts_with("s3_credentials_file"),
        "{error}"
    );

    config.s3.endpoint = Some("http://127.0.0.1:9".to_owned());
    config.s3.credentials_file = Some(s3::credentials_file(dir.path()));
    let error = ferry::server::check_services(&config, &logger)
        .await
        .expect_err("unreachable");
    let message = error.to_string();
    assert!(message.starts_with("s3_endpoint: "), "{message}");
    assert!(message.contains("Connection refused"), "{message}");
    assert!(
        !message.contains(s3::SECRET_KEY),
        "the secret is never shown"
    );

    config.s3.endpoint = Some(s3::moto().to_owned());
    config.bucket = Some(ferry::config::BucketRoot {
        bucket: "no-such-bucket-here".into(),
        prefix: String::new(),
    });
    let error = ferry::server::check_services(&config, &logger)
        .await
        .expect_err("missing bucket");
    assert!(
        error
            .to_string()
            .starts_with("root: s3://no-such-bucket-here is not writable"),
        "{error}"
    );
    assert!(error.to_string().contains("NoSuchBucket"), "{error}");
}

#[tokio::test]
async fn a_restart_sweeps_the_uploads_a_killed_instance_left() {
    let client = s3::client(s3::moto());
    let bucket = s3::new_bucket(&client).await;
    let instance = format!("test-{bucket}");
    // What a process killed mid-upload leaves: an open multipart upload and its journal entry.
    let upload = client
        .create_multipart_upload()
        .bucket(&bucket)
        .key("site/alice/half.bin")
        .send()
        .await
        .expect("create multipart upload");
    let upload_id = upload.upload_id().expect("upload id");
    let entry = serde_json::json!({ "key": "site/alice/half.bin", "upload_id": upload_id });
    s3::put(
        &client,
        &bucket,
        &format!("site/.ferry-upload-journal/{instance}/1-1-0"),
        entry.to_string().into_bytes(),
    )
    .await;
    assert_eq!(s3::open_uploads(&client, &bucket).await.len(), 1);
    let credentials = tempfile::tempdir().expect("temp dir");
    let file = s3::credentials_file(credentials.path());
    let _server = TestServer::start_with(
        |config| s3::use_bucket(config, s3::moto(), &bucket, "site", file),
        &users(),
    )
    .await;
    assert!(
        s3::open_uploads(&client, &bucket).await.is_empty(),
        "swept at start"
    );
    assert!(
        s3::keys(&client, &bucket).await.is_empty(),
        "journal entry removed"
    );
}

#[tokio::test]
async fn ready_writes_a_probe_and_metrics_count_s3_requests() {
    let f = s3::Fixture::start_with(&users(), |config| {
        config.admin_bind = Some("127.0.0.1:0".parse().expect("address"));
    })
    .await;
    let admin = f.server.admin_addr.expect("admin listener");
    let (status, body) = http_get(admin, "/ready").await;
    assert_eq!(status, 200, "{body}");
    let mut ftp = f.server.login("alice").await;
    ftp.put_file("m.txt", &mut Cursor::new(b"m".to_vec()))
        .await
        .expect("upload");
    let (_, metrics) = http_get(admin, "/metrics").await;
    assert!(
        metrics.lines().any(|line| line
            .starts_with("ferry_s3_requests_total{operation=\"PutObject\",outcome=\"ok\"}")),
        "{metrics}"
    );
    assert!(
        metrics.contains("ferry_s3_request_seconds_bucket{operation=\"ListObjectsV2\""),
        "{metrics}"
    );
    assert!(!metrics.contains(s3::SECRET_KEY));
    assert!(
        f.keys().await.iter().all(|key| !key.contains("ready")),
        "probe deleted"
    );
}

/// The reply code of a refused command.
fn code_of(error: &suppaftp::FtpError) -> u32 {
    match error {
        suppaftp::FtpError::UnexpectedResponse(response) => response.status.code(),
        other => panic!("not a refusal: {other:?}"),
    }
}

async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u32, String) {
    use tokio::io::AsyncReadExt;
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect admin");
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .expect("request");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .await
        .expect("response");
    let status = response[9..12].parse().expect("status code");
    (status, response)
}

/// Answers the first `throttled` requests with S3's `503 SlowDown` and passes every later
/// connection through to `upstream` unchanged: throttling injected in front of a real server.
async fn throttling_proxy(
    upstream: std::net::SocketAddr,
    throttled: usize,
) -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind proxy");
    let addr = listener.local_addr().expect("proxy address");
    let answered = std::sync::Arc::new(AtomicUsize::new(0));
    let count = answered.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            if count.fetch_add(1, Ordering::SeqCst) < throttled {
                tokio::spawn(async move {
                    let mut head = [0u8; 4096];
                    let _ =
                        tokio::time::timeout(Duration::from_secs(2), client.read(&mut head)).await;
                    let body = "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";
                    let response = format!(
                        "HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = client.write_all(response.as_bytes()).await;
                });
                continue;
            }
            tokio::spawn(async move {
                if let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                }
            });
        }
    });
    (addr, answered)
}

#[tokio::test]
async fn throttling_is_retried_with_backoff() {
    let endpoint = s3::moto();
    let client = s3::client(endpoint);
    let bucket = s3::new_bucket(&client).await;
    let upstream: std::net::SocketAddr = endpoint
        .trim_start_matches("http://")
        .parse()
        .expect("moto address");
    let (proxy, answered) = throttling_proxy(upstream, 2).await;
    let credentials = tempfile::tempdir().expect("temp dir");
    let file = s3::credentials_file(credentials.path());
    // The start-up probe meets the two SlowDowns and succeeds on its third attempt.
    let server = TestServer::start_with(
        |config| s3::use_bucket(config, &format!("http://{proxy}"), &bucket, "", file),
        &users(),
    )
    .await;
    assert!(answered.load(std::sync::atomic::Ordering::SeqCst) > 2);
    let mut ftp = server.login("alice").await;
    ftp.put_file("t.bin", &mut Cursor::new(pattern(1000)))
        .await
        .expect("upload after throttling");
    assert_eq!(download(&mut ftp, "t.bin").await, pattern(1000));
}

#[tokio::test]
async fn a_quota_holds_on_the_bucket_and_a_refused_upload_leaves_nothing() {
    let usage = tempfile::tempdir().expect("temp dir");
    let usage_dir = usage.path().to_path_buf();
    let quota_users = [TestUser {
        name: "alice",
        permissions: ALL,
        extra: "quota_bytes = \"8M\"\nquota_files = 3",
    }];
    let f = s3::Fixture::start_with(&quota_users, move |config| {
        config.limits.usage_dir = Some(usage_dir);
    })
    .await;
    // Objects already in the home are measured once, by listing it, at the first check.
    let old = pattern(1000);
    s3::put(&f.s3, &f.bucket, "site/alice/big.bin", old.clone()).await;
    s3::put(
        &f.s3,
        &f.bucket,
        "site/alice/dir/other.bin",
        pattern(3 * MIB),
    )
    .await;
    let mut raw = f.server.raw_login("alice").await;
    let used = 1000 + 3 * MIB as u64;
    let left = 8 * MIB as u64 - used;
    assert_eq!(raw.expect("AVBL", 213).await.trim(), format!("213 {left}"));

    // 12 MiB replacing big.bin crosses the quota midway, after parts went to S3.
    let mut data_connection = raw.epsv(f.server.addr).await;
    raw.expect("STOR big.bin", 150).await;
    let _ = data_connection.write_all(&pattern(12 * MIB)).await;
    drop(data_connection);
    let (code, text) = raw.reply().await;
    assert_eq!(code, 552, "{text}");
    assert_eq!(
        s3::uploads_after_settling(&f.s3, &f.bucket).await,
        Vec::<String>::new(),
        "no multipart upload left behind"
    );
    assert_eq!(f.object("site/alice/big.bin").await, Some(old));
    assert_eq!(raw.expect("AVBL", 213).await.trim(), format!("213 {left}"));

    // One that fits lands and counts; a fourth file is past quota_files.
    let small = pattern(MIB);
    let mut data_connection = raw.epsv(f.server.addr).await;
    raw.expect("STOR new.bin", 150).await;
    data_connection.write_all(&small).await.expect("send");
    drop(data_connection);
    assert_eq!(raw.reply().await.0, 226);
    assert_eq!(f.object("site/alice/new.bin").await, Some(small));
    let left = left - MIB as u64;
    assert_eq!(raw.expect("AVBL", 213).await.trim(), format!("213 {left}"));
    let mut data_connection = raw.epsv(f.server.addr).await;
    raw.expect("STOR fourth.bin", 150).await;
    let _ = data_connection.write_all(b"x").await;
    drop(data_connection);
    let (code, text) = raw.reply().await;
    assert_eq!(code, 552, "{text}");
    assert!(text.contains("3 of 3 files"), "{text}");
    assert_eq!(f.object("site/alice/fourth.bin").await, None);
    raw.expect("DELE dir/other.bin", 250).await;
    let left = left + 3 * MIB as u64;
    assert_eq!(raw.expect("AVBL", 213).await.trim(), format!("213 {left}"));

    // An object written behind Ferry's back counts after `ferry user rescan`, which lists the
    // home in the bucket with the same settings as `ferry serve`.
    s3::put(&f.s3, &f.bucket, "site/alice/behind.bin", pattern(1000)).await;
    assert_eq!(raw.expect("AVBL", 213).await.trim(), format!("213 {left}"));
    let credentials = tempfile::tempdir().expect("temp dir");
    let args: Vec<std::ffi::OsString> = vec![
        "--root".into(),
        format!("s3://{}/site", f.bucket).into(),
        "--s3-endpoint".into(),
        s3::moto().into(),
        "--s3-credentials-file".into(),
        s3::credentials_file(credentials.path()).into(),
        "--users".into(),
        f.server.users_file.clone().into(),
        "--usage-dir".into(),
        usage.path().into(),
    ];
    let stdout = common::ferry_rescan("alice", &args, credentials.path());
    assert!(stdout.contains("alice: 3 files"), "{stdout}");
    let left = left - 1000;
    assert_eq!(raw.expect("AVBL", 213).await.trim(), format!("213 {left}"));
}

#[tokio::test]
async fn bandwidth_limits_hold_on_the_bucket_too() {
    let rate = MIB as u64;
    let limited = [TestUser {
        name: "alice",
        permissions: ALL,
        extra: "download_rate = \"1M\"\nupload_rate = \"1M\"",
    }];
    let f = s3::Fixture::start_with(&limited, |_| {}).await;
    let file = pattern(2 * MIB);
    let mut raw = f.server.raw_login("alice").await;
    let started = std::time::Instant::now();
    let mut data_connection = raw.epsv(f.server.addr).await;
    raw.expect("STOR f.bin", 150).await;
    data_connection.write_all(&file).await.expect("send");
    drop(data_connection);
    assert_eq!(raw.reply().await.0, 226);
    let up = started.elapsed();
    let started = std::time::Instant::now();
    let data_connection = raw.epsv(f.server.addr).await;
    raw.expect("RETR f.bin", 150).await;
    assert_eq!(common::read_all(data_connection).await, file);
    assert_eq!(raw.reply().await.0, 226);
    let down = started.elapsed();
    // 2 MiB at 1 MiB/s, less the bucket's 0.1 s burst: a slow machine only takes longer.
    let least = Duration::from_secs_f64(2.0 * MIB as f64 / rate as f64 - 0.15);
    assert!(up >= least, "upload took {up:?}");
    assert!(down >= least, "download took {down:?}");
}
