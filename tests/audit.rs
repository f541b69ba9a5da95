//! Every client operation leaves one structured audit record with who, what, where and how.

mod common;

use common::audit_capture::{AuditCapture, Fields};
use common::{TestServer, download, pattern};
use std::io::Cursor;
use std::time::Duration;

fn field<'a>(record: &'a Fields, key: &str) -> &'a str {
    record
        .get(key)
        .map(String::as_str)
        .unwrap_or_else(|| panic!("record lacks `{key}`: {record:?}"))
}

/// Waits (bounded) for `count` records of `op`: the logout record is written after QUIT.
async fn records_of(capture: &AuditCapture, op: &str, count: usize) -> Vec<Fields> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let found = capture.of(op);
        if found.len() >= count || tokio::time::Instant::now() >= deadline {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn each_seed_operation_is_audited_once_with_user_ip_path_bytes_and_result() {
    let capture = AuditCapture::default();
    let server =
        TestServer::start_logging_to(|_| {}, &common::default_users(), capture.logger()).await;
    let mut ftp = server.login("alice").await;
    let data = pattern(10_000);
    ftp.mkdir("docs").await.unwrap();
    ftp.put_file("docs/a.bin", &mut Cursor::new(data.clone()))
        .await
        .unwrap();
    assert_eq!(download(&mut ftp, "docs/a.bin").await.len(), data.len());
    ftp.list(Some("docs")).await.unwrap();
    assert_eq!(ftp.size("docs/a.bin").await.unwrap(), data.len());
    ftp.rename("docs/a.bin", "docs/b.bin").await.unwrap();
    ftp.rm("docs/b.bin").await.unwrap();
    ftp.rmdir("docs").await.unwrap();
    ftp.quit().await.unwrap();

    let login = records_of(&capture, "login", 1).await;
    assert_eq!(login.len(), 1);
    assert_eq!(field(&login[0], "user"), "alice");
    assert_eq!(field(&login[0], "client_ip"), "127.0.0.1");
    assert_eq!(field(&login[0], "result"), "ok");

    let upload = capture.of("upload");
    assert_eq!(upload.len(), 1, "{upload:?}");
    assert_eq!(field(&upload[0], "path"), "/docs/a.bin");
    assert_eq!(field(&upload[0], "bytes"), "10000");
    assert_eq!(field(&upload[0], "result"), "ok");
    assert!(field(&upload[0], "duration_ms").parse::<u64>().is_ok());

    let download = capture.of("download");
    assert_eq!(download.len(), 1);
    assert_eq!(field(&download[0], "bytes"), "10000");
    assert_eq!(field(&download[0], "user"), "alice");

    assert_eq!(field(&capture.of("ls")[0], "path"), "/docs");
    assert!(
        capture
            .of("size")
            .iter()
            .any(|r| field(r, "path") == "/docs/a.bin" && field(r, "bytes") == "10000")
    );
    assert_eq!(field(&capture.of("mkdir")[0], "path"), "/docs");
    assert_eq!(
        field(&capture.of("rename")[0], "path"),
        "/docs/a.bin -> /docs/b.bin"
    );
    assert_eq!(field(&capture.of("rm")[0], "path"), "/docs/b.bin");
    assert_eq!(field(&capture.of("rmdir")[0], "path"), "/docs");
    let logout = records_of(&capture, "logout", 1).await;
    assert_eq!(logout.len(), 1, "one logout after QUIT");
    assert_eq!(field(&logout[0], "user"), "alice");
}

#[tokio::test]
async fn refusals_and_failures_are_audited_with_a_reason() {
    let capture = AuditCapture::default();
    let server =
        TestServer::start_logging_to(|_| {}, &common::default_users(), capture.logger()).await;
    let mut raw = server.raw().await;
    raw.expect("USER alice", 331).await;
    raw.expect("PASS wrong", 530).await;
    let mut reader = server.login("reader").await;
    assert!(reader.rm("nothing.txt").await.is_err());
    assert!(reader.mkdir("d").await.is_err());

    let failed_login = records_of(&capture, "login", 2).await;
    assert!(
        failed_login
            .iter()
            .any(|r| field(r, "user") == "alice" && field(r, "result") == "denied"),
        "{failed_login:?}"
    );
    let rm = capture.of("rm");
    assert_eq!(rm.len(), 1);
    assert_eq!(field(&rm[0], "result"), "denied");
    assert_eq!(field(&rm[0], "user"), "reader");
    assert!(field(&rm[0], "reason").contains("may not rm"), "{rm:?}");
    assert_eq!(field(&capture.of("mkdir")[0], "result"), "denied");
}

#[tokio::test]
async fn an_aborted_upload_is_audited_as_failed() {
    let capture = AuditCapture::default();
    let server =
        TestServer::start_logging_to(|_| {}, &common::default_users(), capture.logger()).await;
    let mut raw = server.raw_login("alice").await;
    let mut data = raw.epsv(server.addr).await;
    raw.expect("STOR cut.bin", 150).await;
    tokio::io::AsyncWriteExt::write_all(&mut data, &pattern(100_000))
        .await
        .unwrap();
    // RFC 959: 426 for the aborted transfer, then 226 for the ABOR.
    raw.expect("ABOR", 426).await;
    assert_eq!(raw.reply().await.0, 226);
    drop(data);
    let upload = records_of(&capture, "upload", 1).await;
    assert_eq!(upload.len(), 1, "{upload:?}");
    assert_eq!(field(&upload[0], "result"), "failed");
    assert_eq!(field(&upload[0], "path"), "/cut.bin");
}
