//! Events when files arrive: a webhook receiver written here (axum on loopback) and command
//! hooks, against a running server; the spool looked at on disk; kill -9 with the real binary.

mod common;
#[path = "common/s3.rs"]
mod s3;
mod support;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use common::audit_capture::AuditCapture;
use common::{PASSWORD, TestServer, default_users, pattern};
use ferry::config::{EventKind, HookSettings, HookTarget};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::Cursor;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::process::{FerryProcess, prepared_dir};
use tokio::net::TcpListener;

const SECRET: &str = "shared secret for the test";
/// Longest wait for anything asynchronous (a retry is at most 16 s away in these tests).
const DEADLINE: Duration = Duration::from_secs(60);

/// One request the receiver took.
#[derive(Debug, Clone)]
struct Delivered {
    uri: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl Delivered {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("the body is JSON")
    }
}

/// A webhook receiver on loopback: records every POST and answers 200.
struct Receiver {
    delivered: Arc<Mutex<Vec<Delivered>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn record(
    State(delivered): State<Arc<Mutex<Vec<Delivered>>>>,
    uri: Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    let headers = headers
        .iter()
        .map(|(name, value)| {
            let value = value.to_str().unwrap_or_default().to_owned();
            (name.as_str().to_owned(), value)
        })
        .collect();
    delivered.lock().expect("lock").push(Delivered {
        uri: uri.to_string(),
        headers,
        body: body.to_vec(),
    });
    StatusCode::OK
}

impl Receiver {
    /// Serves on `addr` (a port no one listens on until now).
    async fn start_on(addr: SocketAddr) -> Receiver {
        let listener = poll(|| async { TcpListener::bind(addr).await.ok() }).await;
        let delivered = Arc::new(Mutex::new(Vec::new()));
        let app = axum::Router::new()
            .fallback(axum::routing::post(record))
            .with_state(delivered.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { delivered, task }
    }

    fn delivered(&self) -> Vec<Delivered> {
        self.delivered.lock().expect("lock").clone()
    }
}

/// A loopback address nothing listens on (yet): connections to it are refused.
fn unused_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address")
}

/// Polls `check` until it gives a value, for at most [`DEADLINE`].
async fn poll<T, F, Fut>(mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met within {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The events waiting for `hook` in the spool at `spool`.
fn waiting(spool: &Path, hook: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(spool.join(hook)) else {
        return Vec::new();
    };
    entries.map(|entry| entry.expect("entry").path()).collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

fn hook(name: &str, target: HookTarget) -> HookSettings {
    HookSettings {
        name: name.to_owned(),
        target,
        secret_file: None,
        secret: None,
        ca_file: None,
        events: Vec::new(),
        paths: Vec::new(),
        timeout: Duration::from_secs(10),
    }
}

fn webhook_url(addr: SocketAddr, path: &str) -> url::Url {
    format!("http://{addr}{path}").parse().expect("URL")
}

#[tokio::test]
async fn a_receiver_that_is_down_then_up_gets_every_event_once_signed() {
    let receiver_addr = unused_addr();
    let secret_dir = tempfile::tempdir().expect("temp dir");
    let secret_file = secret_dir.path().join("secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).expect("write secret");
    let capture = AuditCapture::default();
    let server = TestServer::start_logging_to(
        |config| {
            config.events.webhook = Some(webhook_url(receiver_addr, "/ferry"));
            config.events.webhook_secret = Some(secret_for(&secret_file));
            config.instance_id = "events-test".into();
        },
        &default_users(),
        capture.logger(),
    )
    .await;
    let spool = server.root.join(".ferry-events");

    let mut ftp = server.login("alice").await;
    let small = b"id,name\n1,caf\xc3\xa9\n".to_vec();
    let large = pattern(3 * 1024 * 1024 + 5);
    ftp.mkdir("in").await.expect("MKD");
    ftp.put_file("in/a b é.csv", &mut Cursor::new(small.clone()))
        .await
        .expect("STOR with a space and UTF-8");
    ftp.put_file("in/large.bin", &mut Cursor::new(large.clone()))
        .await
        .expect("STOR large");
    ftp.append_file("in/large.bin", &mut Cursor::new(b"tail".to_vec()))
        .await
        .expect("APPE");
    ftp.rename("in/large.bin", "in/renamed.bin")
        .await
        .expect("RNFR/RNTO");
    ftp.rm("in/renamed.bin").await.expect("DELE");
    ftp.mkdir("tmp").await.expect("MKD");
    ftp.rmdir("tmp").await.expect("RMD");
    // The spool is Ferry's: no client may name it.
    let refused = ftp
        .put_file("/.ferry-events", &mut Cursor::new(b"x".to_vec()))
        .await;
    assert!(refused.is_err(), "the spool's name is reserved");
    const EVENTS: usize = 8;

    // Every event is in the spool before its reply; none reached the receiver, which is down.
    assert_eq!(waiting(&spool, "webhook").len(), EVENTS);
    poll(|| async {
        let failed = capture
            .everything()
            .iter()
            .filter(|r| r.get("msg").map(String::as_str) == Some("event delivery failed; retrying"))
            .count();
        (failed > 0).then_some(())
    })
    .await;

    let receiver = Receiver::start_on(receiver_addr).await;
    let delivered = poll(|| async {
        let delivered = receiver.delivered();
        (delivered.len() >= EVENTS && waiting(&spool, "webhook").is_empty()).then_some(delivered)
    })
    .await;
    assert_eq!(delivered.len(), EVENTS, "each event exactly once");

    let mut by_path: HashMap<(String, String), Value> = HashMap::new();
    let mut ids = std::collections::HashSet::new();
    for request in &delivered {
        assert_eq!(request.uri, "/ferry");
        assert_eq!(request.headers["content-type"], "application/json");
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("key");
        mac.update(&request.body);
        let expected: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        assert_eq!(
            request.headers["x-ferry-signature"],
            format!("sha256={expected}")
        );
        let json = request.json();
        assert_eq!(request.headers["x-ferry-event-id"], json["id"]);
        assert!(ids.insert(json["id"].as_str().expect("id").to_owned()));
        assert_eq!(json["user"], "alice");
        assert_eq!(json["remote_addr"], "127.0.0.1");
        assert_eq!(json["instance_id"], "events-test");
        assert!(json["time"].as_str().expect("time").ends_with('Z'));
        let key = (
            json["event"].as_str().expect("event").to_owned(),
            json["path"].as_str().expect("path").to_owned(),
        );
        // Two uploads of in/large.bin (STOR, then APPE): keep the larger.
        let keep = by_path
            .get(&key)
            .is_none_or(|seen| seen["size"].as_u64() < json["size"].as_u64());
        if keep {
            by_path.insert(key, json);
        }
    }
    let get = |event: &str, path: &str| {
        by_path
            .get(&(event.to_owned(), path.to_owned()))
            .unwrap_or_else(|| panic!("no {event} event for {path}: {by_path:?}"))
            .clone()
    };
    let csv = get("upload", "/in/a b é.csv");
    assert_eq!(csv["size"], small.len());
    assert_eq!(csv["sha256"], sha256_hex(&small));
    let mut appended = large.clone();
    appended.extend_from_slice(b"tail");
    let after_append = get("upload", "/in/large.bin");
    assert_eq!(after_append["size"], appended.len());
    assert_eq!(
        after_append["sha256"],
        sha256_hex(&appended),
        "APPE reports the whole file"
    );
    let renamed = get("rename", "/in/renamed.bin");
    assert_eq!(renamed["from"], "/in/large.bin");
    assert!(renamed.get("size").is_none() && renamed.get("sha256").is_none());
    get("delete", "/in/renamed.bin");
    get("mkdir", "/in");
    get("mkdir", "/tmp");
    get("rmdir", "/tmp");
    server.stop().await.expect("stops");
}

fn secret_for(file: &Path) -> ferry::config::HookSecret {
    // Through the configuration, as `ferry serve` reads it.
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(dir.path().join("root")).expect("root");
    std::fs::write(dir.path().join("users.toml"), "").expect("users");
    let text = format!(
        "root = {:?}\nusers = {:?}\nevent_webhook = \"http://127.0.0.1:9/\"\n\
         event_webhook_secret_file = {file:?}\n",
        dir.path().join("root"),
        dir.path().join("users.toml")
    );
    let config_file = dir.path().join("ferry.toml");
    std::fs::write(&config_file, text).expect("config");
    let args = ferry::config::ServeArgs {
        config: Some(config_file),
        ..Default::default()
    };
    let config = ferry::config::Config::load(&args, &|_| None).expect("loads");
    config.events.webhook_secret.expect("secret read")
}

#[tokio::test]
async fn a_command_hook_gets_paths_with_spaces_and_utf8_intact() {
    let out = tempfile::tempdir().expect("temp dir");
    let out_dir = out.path().to_str().expect("utf-8").to_owned();
    // The hook runs the program directly; this program happens to be sh, which writes what
    // it was given byte for byte: its argument, two variables, and its standard input.
    let script = format!(
        "printf '%s' \"$1\" > '{out_dir}'/\"$FERRY_EVENT_ID\".arg && \
         printf '%s|%s|%s' \"$FERRY_PATH\" \"$FERRY_SIZE\" \"$FERRY_SHA256\" > '{out_dir}'/\"$FERRY_EVENT_ID\".env && \
         cat > '{out_dir}'/\"$FERRY_EVENT_ID\".json"
    );
    let server = TestServer::start_with(
        |config| {
            let mut command = hook(
                "script",
                HookTarget::Command(vec![
                    "/bin/sh".into(),
                    "-c".into(),
                    script,
                    "sh".into(),
                    "{path}".into(),
                ]),
            );
            command.events = vec![EventKind::Upload];
            config.events.tables = vec![command];
        },
        &default_users(),
    )
    .await;
    let mut ftp = server.login("alice").await;
    let data = pattern(70_000);
    ftp.mkdir("dir")
        .await
        .expect("MKD (not an upload: filtered out)");
    ftp.put_file("dir/é ü file.txt", &mut Cursor::new(data.clone()))
        .await
        .expect("STOR");
    let spool = server.root.join(".ferry-events");
    let json_file = poll(|| async {
        let done = waiting(&spool, "script").is_empty();
        let files: Vec<PathBuf> = std::fs::read_dir(out.path())
            .expect("list")
            .map(|entry| entry.expect("entry").path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
            .collect();
        (done && files.len() == 1).then(|| files[0].clone())
    })
    .await;
    let id = json_file
        .file_stem()
        .expect("stem")
        .to_str()
        .expect("utf-8");
    let arg = std::fs::read(out.path().join(format!("{id}.arg"))).expect("arg");
    assert_eq!(String::from_utf8(arg).expect("UTF-8"), "/dir/é ü file.txt");
    let env = std::fs::read(out.path().join(format!("{id}.env"))).expect("env");
    assert_eq!(
        String::from_utf8(env).expect("UTF-8"),
        format!("/dir/é ü file.txt|{}|{}", data.len(), sha256_hex(&data))
    );
    let stdin: Value =
        serde_json::from_slice(&std::fs::read(&json_file).expect("stdin")).expect("JSON on stdin");
    assert_eq!(stdin["id"], id);
    assert_eq!(stdin["path"], "/dir/é ü file.txt");
    assert_eq!(stdin["event"], "upload");
    // Only the upload was for this hook: the spool never held the mkdir.
    assert_eq!(std::fs::read_dir(out.path()).expect("list").count(), 3);
    server.stop().await.expect("stops");
}

#[tokio::test]
async fn hooks_hear_only_the_events_and_paths_they_filter_for() {
    let receiver_addr = unused_addr();
    let receiver = Receiver::start_on(receiver_addr).await;
    let server = TestServer::start_with(
        |config| {
            let mut csv = hook(
                "csv",
                HookTarget::Webhook(webhook_url(receiver_addr, "/csv")),
            );
            csv.events = vec![EventKind::Upload];
            csv.paths = vec!["*.csv".into()];
            let mut dirs = hook(
                "dirs",
                HookTarget::Webhook(webhook_url(receiver_addr, "/dirs")),
            );
            dirs.events = vec![EventKind::Mkdir, EventKind::Rmdir];
            dirs.paths = vec!["incoming/**".into()];
            config.events.tables = vec![csv, dirs];
        },
        &default_users(),
    )
    .await;
    let mut ftp = server.login("alice").await;
    ftp.mkdir("incoming").await.expect("MKD");
    ftp.mkdir("incoming/sub").await.expect("MKD");
    ftp.mkdir("other").await.expect("MKD");
    for name in [
        "a.csv",
        "b.txt",
        "incoming/c.csv",
        "incoming/sub/d.csv.part",
    ] {
        ftp.put_file(name, &mut Cursor::new(b"x".to_vec()))
            .await
            .expect("STOR");
    }
    ftp.rm("a.csv").await.expect("DELE");
    ftp.rmdir("other").await.expect("RMD");
    let spool = server.root.join(".ferry-events");
    let delivered = poll(|| async {
        let delivered = receiver.delivered();
        let done = waiting(&spool, "csv").is_empty() && waiting(&spool, "dirs").is_empty();
        (done && delivered.len() >= 3).then_some(delivered)
    })
    .await;
    let mut seen: Vec<(String, String, String)> = delivered
        .iter()
        .map(|request| {
            let json = request.json();
            (
                request.uri.clone(),
                json["event"].as_str().expect("event").to_owned(),
                json["path"].as_str().expect("path").to_owned(),
            )
        })
        .collect();
    seen.sort();
    let expected = [
        ("/csv", "upload", "/a.csv"),
        ("/csv", "upload", "/incoming/c.csv"),
        ("/dirs", "mkdir", "/incoming/sub"),
    ]
    .map(|(uri, event, path)| (uri.to_owned(), event.to_owned(), path.to_owned()));
    assert_eq!(seen, expected);
    server.stop().await.expect("stops");
}

#[tokio::test]
async fn a_full_spool_drops_the_event_with_an_error_but_the_upload_succeeds() {
    let capture = AuditCapture::default();
    let server = TestServer::start_logging_to(
        |config| {
            // Nobody listens: the first event stays in the spool and fills it.
            config.events.webhook = Some(webhook_url(unused_addr(), "/"));
            config.events.spool_max_events = 1;
            config.admin_bind = Some("127.0.0.1:0".parse().expect("address"));
        },
        &default_users(),
        capture.logger(),
    )
    .await;
    let mut ftp = server.login("alice").await;
    ftp.put_file("first.bin", &mut Cursor::new(b"1".to_vec()))
        .await
        .expect("STOR: queued");
    ftp.put_file("second.bin", &mut Cursor::new(b"2".to_vec()))
        .await
        .expect("STOR succeeds although its event is dropped");
    assert_eq!(
        std::fs::read(server.home("alice").join("second.bin")).expect("stored"),
        b"2"
    );
    let spool = server.root.join(".ferry-events");
    assert_eq!(waiting(&spool, "webhook").len(), 1);
    let dropped: Vec<_> = capture
        .everything()
        .into_iter()
        .filter(|r| r.get("msg").map(String::as_str) == Some("event dropped"))
        .collect();
    assert_eq!(dropped.len(), 1, "{dropped:?}");
    assert_eq!(dropped[0]["level"], "ERRO");
    assert_eq!(dropped[0]["path"], "/second.bin");
    assert!(
        dropped[0]["error"].contains(&spool.display().to_string()),
        "{dropped:?}"
    );
    let admin = server.admin_addr.expect("admin listener");
    let url = format!("http://{admin}/metrics");
    let page = tokio::task::spawn_blocking(move || ferry::observe::health_check::get(&url))
        .await
        .expect("task")
        .expect("metrics");
    let sample = |series: &str| {
        page.body
            .lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .map(str::to_owned)
    };
    assert_eq!(
        sample("ferry_events_dropped_total{hook=\"webhook\"}").as_deref(),
        Some("1")
    );
    assert_eq!(
        sample("ferry_events_queued_total{hook=\"webhook\"}").as_deref(),
        Some("1")
    );
    assert_eq!(
        sample("ferry_event_spool_depth{hook=\"webhook\"}").as_deref(),
        Some("1")
    );
    server.stop().await.expect("stops");
}

#[tokio::test]
async fn the_spool_survives_kill_9_and_the_next_start_delivers_with_the_same_id() {
    let dir = prepared_dir();
    let receiver_addr = unused_addr();
    let url = format!("http://{receiver_addr}/hook");
    let mut ferry = FerryProcess::start(dir.path(), &["--event-webhook", &url]).await;
    let mut ftp = suppaftp::tokio::AsyncFtpStream::connect(ferry.addr)
        .await
        .expect("connect");
    ftp.set_mode(suppaftp::Mode::ExtendedPassive);
    ftp.login("alice", PASSWORD).await.expect("login");
    ftp.transfer_type(suppaftp::types::FileType::Binary)
        .await
        .expect("TYPE I");
    let data = pattern(100_000);
    ftp.put_file("crash.bin", &mut Cursor::new(data.clone()))
        .await
        .expect("226: the event is in the spool");
    let spool = dir.path().join("root/.ferry-events");
    let spooled = waiting(&spool, "webhook");
    assert_eq!(spooled.len(), 1);
    let spooled: Value =
        serde_json::from_slice(&std::fs::read(&spooled[0]).expect("read")).expect("JSON");
    ferry.kill9();
    drop(ftp);

    let receiver = Receiver::start_on(receiver_addr).await;
    let _restarted = FerryProcess::start(dir.path(), &["--event-webhook", &url]).await;
    let delivered = poll(|| async {
        let delivered = receiver.delivered();
        (!delivered.is_empty() && waiting(&spool, "webhook").is_empty()).then_some(delivered)
    })
    .await;
    assert_eq!(delivered.len(), 1);
    let json = delivered[0].json();
    assert_eq!(json["id"], spooled["id"], "the same event, the same id");
    assert_eq!(json["path"], "/crash.bin");
    assert_eq!(json["sha256"], sha256_hex(&data));
    assert_eq!(json["size"], data.len());
}

#[tokio::test]
async fn an_upload_to_a_bucket_is_published_with_its_sha256() {
    let receiver_addr = unused_addr();
    let receiver = Receiver::start_on(receiver_addr).await;
    let spool = tempfile::tempdir().expect("temp dir");
    let spool_dir = spool.path().join("spool");
    let configured_spool = spool_dir.clone();
    let users = default_users();
    let fixture = s3::Fixture::start_with(&users, move |config| {
        config.events.webhook = Some(webhook_url(receiver_addr, "/s3"));
        config.events.spool = Some(configured_spool);
    })
    .await;
    let mut ftp = fixture.server.login("alice").await;
    // Larger than one part (5 MiB in the fixture): the multipart path.
    let data = pattern(6 * 1024 * 1024 + 7);
    ftp.put_file("big é.bin", &mut Cursor::new(data.clone()))
        .await
        .expect("STOR to the bucket");
    let delivered = poll(|| async {
        let delivered = receiver.delivered();
        (!delivered.is_empty() && waiting(&spool_dir, "webhook").is_empty()).then_some(delivered)
    })
    .await;
    assert_eq!(delivered.len(), 1);
    let json = delivered[0].json();
    assert_eq!(json["event"], "upload");
    assert_eq!(json["path"], "/big é.bin");
    assert_eq!(json["size"], data.len());
    assert_eq!(json["sha256"], sha256_hex(&data));
    assert_eq!(
        fixture.object("site/alice/big é.bin").await.as_deref(),
        Some(&data[..])
    );
    fixture.server.stop().await.expect("stops");
}

/// An HTTPS receiver on loopback with a certificate from a private CA: answers each POST with
/// 200 and records its body. Minimal HTTP/1.1 by hand (one request per connection).
async fn https_receiver(
    ca: &rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
) -> (SocketAddr, Arc<Mutex<Vec<Vec<u8>>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params.subject_alt_names = vec![rcgen::SanType::IpAddress("127.0.0.1".parse().unwrap())];
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, ca).expect("server certificate");
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .expect("TLS config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let recorded = bodies.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let recorded = recorded.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(socket).await else {
                    return; // a client that does not trust the certificate
                };
                let mut request = Vec::new();
                let mut chunk = [0u8; 4096];
                let body_start = loop {
                    let Ok(read) = tls.read(&mut chunk).await else {
                        return;
                    };
                    if read == 0 {
                        return;
                    }
                    request.extend_from_slice(&chunk[..read]);
                    if let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") {
                        break end + 4;
                    }
                };
                let head = String::from_utf8_lossy(&request[..body_start]).to_ascii_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|line| line.strip_prefix("content-length:"))
                    .and_then(|value| value.trim().parse().ok())
                    .unwrap_or(0);
                while request.len() < body_start + length {
                    let Ok(read) = tls.read(&mut chunk).await else {
                        return;
                    };
                    if read == 0 {
                        return;
                    }
                    request.extend_from_slice(&chunk[..read]);
                }
                recorded
                    .lock()
                    .expect("lock")
                    .push(request[body_start..body_start + length].to_vec());
                let _ = tls
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (addr, bodies)
}

#[tokio::test]
async fn an_https_webhook_trusts_its_ca_file_and_nothing_else() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Ferry events test CA");
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().unwrap())
        .expect("CA");
    let (addr, bodies) = https_receiver(&ca).await;
    let ca_dir = tempfile::tempdir().expect("temp dir");
    let ca_file = ca_dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).expect("write CA");
    let url: url::Url = format!("https://{addr}/hook").parse().expect("URL");
    let capture = AuditCapture::default();
    let server = TestServer::start_logging_to(
        |config| {
            let mut private = hook("private", HookTarget::Webhook(url.clone()));
            private.ca_file = Some(ca_file.clone());
            // The same receiver checked against the system's roots, which do not hold the CA.
            let system = hook("system", HookTarget::Webhook(url.clone()));
            config.events.tables = vec![private, system];
        },
        &default_users(),
        capture.logger(),
    )
    .await;
    let spool = server.root.join(".ferry-events");
    let mut ftp = server.login("alice").await;
    let data = b"over TLS".to_vec();
    ftp.put_file("secure.txt", &mut Cursor::new(data.clone()))
        .await
        .expect("STOR");
    let body = poll(|| async { bodies.lock().expect("lock").first().cloned() }).await;
    let json: Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(json["path"], "/secure.txt");
    assert_eq!(json["sha256"], sha256_hex(&data));
    poll(|| async { waiting(&spool, "private").is_empty().then_some(()) }).await;
    // The hook on the system's roots refuses the private CA: its attempt fails, is logged,
    // and the event stays in its queue for the next attempt.
    poll(|| async {
        let failed = capture.everything().iter().any(|record| {
            record.get("msg").map(String::as_str) == Some("event delivery failed; retrying")
                && record.get("hook").map(String::as_str) == Some("system")
        });
        failed.then_some(())
    })
    .await;
    assert_eq!(waiting(&spool, "system").len(), 1);
    assert_eq!(
        bodies.lock().expect("lock").len(),
        1,
        "only the trusting hook got through"
    );
    server.stop().await.expect("stops");
}
