//! At `log_level = "debug"` the server logs the conversation: each command line as the client
//! sent it (PASS's argument masked) and each reply, as structured records carrying the session
//! id. At the default level it logs none of it.

mod common;

use common::audit_capture::AuditCapture;
use common::{PASSWORD, TestServer};

/// The conversation records, in order: ("command", line) or ("reply", code).
fn conversation(capture: &AuditCapture) -> Vec<(String, String)> {
    capture
        .everything()
        .into_iter()
        .filter_map(|record| match record.get("msg").map(String::as_str) {
            Some("FTP command") => Some(("command".to_owned(), record["command"].clone())),
            Some("FTP reply") => Some(("reply".to_owned(), record["code"].clone())),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn debug_log_shows_each_command_and_reply_in_order_with_the_password_masked() {
    let capture = AuditCapture::default();
    let server = TestServer::start_logging_to(
        |config| config.log_level = slog::Level::Debug,
        &common::default_users(),
        capture.logger(),
    )
    .await;
    let mut raw = server.raw().await;
    raw.expect("USER alice", 331).await;
    raw.expect(format!("PASS {PASSWORD}"), 230).await;
    raw.expect("PWD", 257).await;

    let expected: Vec<(String, String)> = [
        ("reply", "220"),
        ("command", "USER alice"),
        ("reply", "331"),
        ("command", "PASS ****"),
        ("reply", "230"),
        ("command", "PWD"),
        ("reply", "257"),
    ]
    .iter()
    .map(|(kind, what)| (kind.to_string(), what.to_string()))
    .collect();
    assert_eq!(conversation(&capture), expected);

    let records = capture.everything();
    let conversation_records: Vec<_> = records
        .iter()
        .filter(|r| matches!(r["msg"].as_str(), "FTP command" | "FTP reply"))
        .collect();
    let session = conversation_records[0]
        .get("session")
        .expect("records carry the session id");
    assert!(
        conversation_records
            .iter()
            .all(|r| r.get("session") == Some(session) && r["level"] == "DEBG"),
        "{conversation_records:?}"
    );
    let reply_230 = conversation_records
        .iter()
        .find(|r| r.get("code").map(String::as_str) == Some("230"))
        .expect("the 230");
    assert!(reply_230["reply"].starts_with("230 "), "{reply_230:?}");
    for record in &records {
        assert!(
            record.values().all(|value| !value.contains(PASSWORD)),
            "the password leaked into {record:?}"
        );
    }
}

#[tokio::test]
async fn default_log_level_does_not_log_the_conversation() {
    let capture = AuditCapture::default();
    let server =
        TestServer::start_logging_to(|_| {}, &common::default_users(), capture.logger()).await;
    let mut raw = server.raw_login("alice").await;
    raw.expect("PWD", 257).await;
    assert_eq!(conversation(&capture), Vec::new());
}
