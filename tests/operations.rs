//! The admin listener against a running server: `/metrics` counts what clients do, `/health`
//! says the process is up, `/ready` says whether it can serve, `ferry health` probes them.

mod common;
mod support;

use common::{PASSWORD, TestServer, default_users, download, pattern};
use ferry::observe::health_check::{self, ProbeError, Response};
use std::collections::HashMap;
use std::io::Cursor;

async fn start_with_admin() -> TestServer {
    TestServer::start_with(
        |config| config.admin_bind = Some("127.0.0.1:0".parse().expect("loopback address")),
        &default_users(),
    )
    .await
}

fn admin_url(server: &TestServer, path: &str) -> String {
    let admin = server.admin_addr.expect("admin listener is on");
    format!("http://{admin}{path}")
}

/// GETs `path` from the admin listener with the probe `ferry health` uses.
async fn admin_get(server: &TestServer, path: &str) -> Response {
    let url = admin_url(server, path);
    tokio::task::spawn_blocking(move || health_check::get(&url))
        .await
        .expect("probe task")
        .expect("admin listener answers")
}

/// The samples of a metrics page: `name{labels}` to value.
async fn scrape(server: &TestServer) -> HashMap<String, f64> {
    let page = admin_get(server, "/metrics").await;
    assert_eq!(page.status, 200, "{}", page.body);
    page.body
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

fn value(samples: &HashMap<String, f64>, series: &str) -> f64 {
    *samples
        .get(series)
        .unwrap_or_else(|| panic!("{series} missing from /metrics"))
}

fn json(response: &Response) -> serde_json::Value {
    serde_json::from_str(&response.body)
        .unwrap_or_else(|error| panic!("{error}: body {:?}", response.body))
}

#[tokio::test]
async fn logins_transfers_refusals_and_errors_show_up_in_metrics() {
    let server = start_with_admin().await;
    let before = scrape(&server).await;
    for series in [
        "ferry_sessions_active",
        "ferry_logins_total{result=\"succeeded\"}",
        "ferry_logins_total{result=\"failed\"}",
        "ferry_files_total{op=\"upload\"}",
        "ferry_bytes_total{op=\"download\"}",
        "ferry_refused_operations_total{op=\"upload\"}",
        "ferry_storage_errors_total{op=\"rm\"}",
    ] {
        assert_eq!(value(&before, series), 0.0, "{series} before any client");
    }

    let mut alice = server.login("alice").await;
    let data = pattern(10_000);
    alice
        .put_file("report.bin", &mut Cursor::new(data.clone()))
        .await
        .expect("upload");
    assert!(download(&mut alice, "report.bin").await == data);
    alice.size("report.bin").await.expect("SIZE");
    alice.rm("missing.txt").await.expect_err("no such file");

    let mut guesser = server.raw().await;
    guesser.expect("USER alice", 331).await;
    guesser.expect("PASS not-the-password", 530).await;

    let mut reader = server.login("reader").await;
    reader
        .put_file("nope.txt", &mut Cursor::new(b"x".to_vec()))
        .await
        .expect_err("reader may not upload");

    let after = scrape(&server).await;
    for (series, expected) in [
        // alice, the guesser and reader are connected while the page is rendered.
        ("ferry_sessions_active", 3.0),
        ("ferry_logins_total{result=\"succeeded\"}", 2.0),
        ("ferry_logins_total{result=\"failed\"}", 1.0),
        ("ferry_files_total{op=\"upload\"}", 1.0),
        ("ferry_bytes_total{op=\"upload\"}", 10_000.0),
        ("ferry_files_total{op=\"download\"}", 1.0),
        ("ferry_bytes_total{op=\"download\"}", 10_000.0),
        ("ferry_files_total{op=\"size\"}", 1.0),
        ("ferry_storage_errors_total{op=\"rm\"}", 1.0),
        ("ferry_files_total{op=\"rm\"}", 0.0),
        ("ferry_refused_operations_total{op=\"upload\"}", 1.0),
    ] {
        assert_eq!(value(&after, series), expected, "{series}");
    }
    // libunftp's own counters are on the same page (process-wide: other tests add to them).
    assert!(value(&after, "ftp_backend_write_files") >= 1.0);
    assert!(value(&after, "ftp_command_total{command=\"stor\"}") >= 1.0);
    // Labels are the first word of the event, lowercased (a message with fields included).
    assert!(
        value(
            &after,
            "ftp_reply_total{event=\"writtendata\",event_type=\"ctrl-chan-msg\",range=\"2xx\"}"
        ) >= 1.0
    );
}

#[tokio::test]
async fn sessions_over_the_limit_are_counted_as_refused_connections() {
    let server = TestServer::start_with(
        |config| {
            config.admin_bind = Some("127.0.0.1:0".parse().expect("loopback address"));
            config.max_sessions = 1;
        },
        &default_users(),
    )
    .await;
    let _first = server.raw().await;
    let second = server.raw().await;
    assert_eq!(second.greeting.0, 421);
    let samples = scrape(&server).await;
    assert_eq!(
        value(
            &samples,
            "ferry_connections_refused_total{reason=\"max_sessions\"}"
        ),
        1.0
    );
    assert_eq!(value(&samples, "ferry_sessions_active"), 1.0);
}

#[tokio::test]
async fn ready_turns_503_while_the_root_is_not_a_writable_directory() {
    let server = start_with_admin().await;
    let ready = admin_get(&server, "/ready").await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert_eq!(json(&ready)["status"], "ready");
    assert_eq!(json(&ready)["checks"]["root"], "ok");

    // Tests run as root, which permission bits do not stop: put a file where the root was.
    let moved = server.root.with_extension("moved");
    std::fs::rename(&server.root, &moved).expect("move root away");
    std::fs::write(&server.root, b"not a directory").expect("file in its place");
    let not_ready = admin_get(&server, "/ready").await;
    assert_eq!(not_ready.status, 503, "{}", not_ready.body);
    let body = json(&not_ready);
    assert_eq!(body["status"], "not ready");
    let reason = body["checks"]["root"].as_str().expect("root reason");
    assert!(reason.contains("is not writable"), "{reason}");
    assert_eq!(body["checks"]["listener"], "ok");
    // The process is still up: a restart would not bring the root back.
    assert_eq!(admin_get(&server, "/health").await.status, 200);

    std::fs::remove_file(&server.root).expect("remove the file");
    std::fs::rename(&moved, &server.root).expect("move root back");
    assert_eq!(admin_get(&server, "/ready").await.status, 200);
    assert!(
        common::names_on_disk(&server.root).is_empty(),
        "readiness probes leave no file in the root"
    );
}

#[tokio::test]
async fn ready_also_turns_503_when_the_root_is_removed() {
    let server = start_with_admin().await;
    std::fs::remove_dir(&server.root).expect("remove empty root");
    let not_ready = admin_get(&server, "/ready").await;
    assert_eq!(not_ready.status, 503, "{}", not_ready.body);
    let reason = json(&not_ready)["checks"]["root"].to_string();
    assert!(reason.contains("No such file or directory"), "{reason}");
}

#[tokio::test]
async fn health_probe_passes_on_200_and_reports_a_503_with_its_reason() {
    let server = start_with_admin().await;
    let health_url = admin_url(&server, "/health");
    let healthy = tokio::task::spawn_blocking(move || health_check::check(&health_url))
        .await
        .expect("probe task")
        .expect("healthy");
    assert_eq!(json(&healthy)["status"], "ok");

    std::fs::remove_dir(&server.root).expect("remove empty root");
    let ready_url = admin_url(&server, "/ready");
    let error = tokio::task::spawn_blocking(move || health_check::check(&ready_url))
        .await
        .expect("probe task")
        .expect_err("not ready");
    match error {
        ProbeError::Unhealthy { status, body, .. } => {
            assert_eq!(status, 503);
            assert!(body.contains("is not writable"), "{body}");
        }
        other => panic!("expected Unhealthy, got {other}"),
    }
    assert_eq!(admin_get(&server, "/nothing-here").await.status, 404);
}

#[tokio::test]
async fn admin_listener_is_off_unless_configured() {
    let server = TestServer::start().await;
    assert_eq!(server.admin_addr, None);
    // And the FTP side is unaffected.
    let mut ftp = server.connect().await;
    ftp.login("alice", PASSWORD).await.expect("login");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_connections_are_capped_and_silent_ones_are_closed() {
    use ferry::observe::admin_listener::{MAX_ADMIN_CONNECTIONS, READ_IDLE_TIMEOUT};
    use std::time::{Duration, Instant};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = start_with_admin().await;
    let admin = server.admin_addr.expect("admin listener is on");
    // Twice the cap, each sending half a request header and then nothing.
    let mut stalled = Vec::new();
    for _ in 0..2 * MAX_ADMIN_CONNECTIONS {
        let mut connection = tokio::net::TcpStream::connect(admin).await.unwrap();
        connection
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: ferry\r\n")
            .await
            .unwrap();
        stalled.push(connection);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let held = support::sockets::sockets_on(
        &(admin.port()..=admin.port()),
        0,
        support::sockets::Held::Any,
    );
    // The listening socket plus at most the cap of accepted connections.
    assert!(
        held <= MAX_ADMIN_CONNECTIONS + 1,
        "{held} admin sockets held for {} half-sent requests",
        stalled.len()
    );
    // Every stalled connection is closed by the server: the first ones after the idle
    // timeout, the queued ones one timeout later once they get a slot.
    let deadline = Instant::now() + 2 * READ_IDLE_TIMEOUT + Duration::from_secs(5);
    for connection in &mut stalled {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut byte = [0u8; 512];
        let closed = loop {
            match tokio::time::timeout(left, connection.read(&mut byte)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break true,
                Ok(Ok(_)) => continue, // an error response before the close
                Err(_) => break false,
            }
        };
        assert!(closed, "a silent admin connection was kept open");
    }
    drop(stalled);
    assert_eq!(admin_get(&server, "/health").await.status, 200);
}

/// With `shutdown_drain`, the signal first turns `/ready` to 503 (a load balancer stops sending
/// sessions) while the listener still takes them; the graceful shutdown follows the drain.
#[tokio::test]
async fn after_the_signal_ready_fails_while_new_sessions_are_still_taken_for_the_drain() {
    let drain = std::time::Duration::from_secs(2);
    let mut server = TestServer::start_with(
        |config| {
            config.admin_bind = Some("127.0.0.1:0".parse().expect("loopback address"));
            config.shutdown_drain = drain;
        },
        &default_users(),
    )
    .await;
    assert_eq!(admin_get(&server, "/ready").await.status, 200);
    let signalled = std::time::Instant::now();
    server.begin_stop();
    loop {
        let ready = admin_get(&server, "/ready").await;
        if ready.status == 503 {
            assert!(ready.body.contains("\"listener\""), "{}", ready.body);
            break;
        }
        assert!(
            signalled.elapsed() < drain,
            "/ready still 200 during the drain"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let mut ftp = server.login("alice").await;
    ftp.noop()
        .await
        .expect("a session opened while draining works");
    assert!(
        signalled.elapsed() < drain,
        "the session opened within the drain"
    );
    server
        .wait()
        .await
        .expect("the server stops after the drain");
    assert!(
        signalled.elapsed() >= drain,
        "the listener stayed open for the drain"
    );
}
