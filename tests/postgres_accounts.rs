//! Accounts in PostgreSQL (`users = "postgres://…"`), against a real server: the schema made
//! once by instances starting together, `ferry user` changes in force on running servers
//! within 2 s, the same records and checks as the users file, bans shared between instances,
//! and an unreachable database refusing new logins (421) while open sessions go on.
//!
//! Needs PostgreSQL: `bash scripts/ci-postgres.sh` starts it and creates the test role.

mod common;
#[path = "common/postgres.rs"]
mod postgres;

use common::audit_capture::AuditCapture;
use common::{ALL, PASSWORD, RawSession, TestServer};
use ferry::accounts::users::UsersFile;
use postgres::TestDatabase;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// How soon a change made anywhere must be in force on every instance.
const PROPAGATION: Duration = Duration::from_secs(2);

/// Waits, at most [`PROPAGATION`] from now, until the accounts `server` has loaded satisfy
/// `done` (`what` names the change in the failure message).
async fn until_accounts(server: &TestServer, what: &str, done: impl Fn(&UsersFile) -> bool) {
    let deadline = tokio::time::Instant::now() + PROPAGATION;
    loop {
        // The generation first: a reload between the two reads is then seen by `done`.
        let generation = server.users.generation();
        if done(&server.users.users()) {
            return;
        }
        tokio::time::timeout_at(deadline, server.users.wait_for_generation(generation + 1))
            .await
            .unwrap_or_else(|_| panic!("{what} reaches the server within 2 s"));
    }
}

/// The reply code to logging in as `user` with `password` on a fresh connection.
async fn login_code(server: &TestServer, user: &str, password: &str) -> u32 {
    let mut raw = server.raw().await;
    raw.expect(format!("USER {user}"), 331).await;
    raw.send(format!("PASS {password}")).await;
    raw.reply().await.0
}

/// `/ready` of the server's admin listener: status and body.
async fn ready(server: &TestServer) -> (u16, String) {
    let url = format!(
        "http://{}/ready",
        server.admin_addr.expect("admin listener")
    );
    let response = tokio::task::spawn_blocking(move || ferry::observe::health_check::get(&url))
        .await
        .expect("probe task")
        .expect("admin listener answers");
    (response.status, response.body)
}

/// Reads until the server's unsolicited 421 (within [`PROPAGATION`]), then expects the
/// connection closed.
async fn closed_with_421(raw: &mut RawSession) {
    let code = raw.reply_within(PROPAGATION).await;
    assert_eq!(code, Some(421), "the session is closed within 2 s");
    assert!(raw.is_closed().await, "the session stays open after 421");
}

#[tokio::test]
async fn two_servers_starting_at_once_create_the_schema_once() {
    let db = TestDatabase::create().await;
    let (first, second) = tokio::join!(db.start_server(|_| {}), db.start_server(|_| {}));
    let versions = db
        .client
        .query("SELECT version FROM ferry_schema_version", &[])
        .await
        .expect("version table");
    let versions: Vec<i32> = versions.iter().map(|row| row.get(0)).collect();
    assert_eq!(versions, vec![1, 2], "each migration, recorded once");
    db.add_user("alice", ALL, "").await;
    for server in [&first, &second] {
        until_accounts(server, "a new account", |users| {
            users.get("alice").is_some()
        })
        .await;
        assert_eq!(login_code(server, "alice", PASSWORD).await, 230);
    }
}

#[tokio::test]
async fn ferry_user_add_passwd_remove_reach_a_running_server_within_two_seconds() {
    let db = TestDatabase::with_schema().await;
    let server = db.start_server(|_| {}).await;
    assert_eq!(login_code(&server, "bob", PASSWORD).await, 530);

    let said = db
        .ferry_user(
            &["add", "bob", "--password-stdin"],
            &format!("{PASSWORD}\n"),
        )
        .await;
    assert!(said.contains("added user `bob`"), "{said}");
    until_accounts(&server, "`ferry user add`", |users| {
        users.get("bob").is_some()
    })
    .await;
    let mut bob = server.raw_login("bob").await;
    assert!(
        server.home("bob").is_dir(),
        "the home is created at first login"
    );

    let old_hash = server
        .users
        .users()
        .get("bob")
        .map(|bob| bob.password_hash.clone());
    db.ferry_user(&["passwd", "bob", "--password-stdin"], "new password\n")
        .await;
    until_accounts(&server, "`ferry user passwd`", |users| {
        users.get("bob").map(|bob| bob.password_hash.clone()) != old_hash
    })
    .await;
    assert_eq!(login_code(&server, "bob", PASSWORD).await, 530);
    assert_eq!(login_code(&server, "bob", "new password").await, 230);
    bob.expect("NOOP", 200).await;

    let listed = db.ferry_user(&["list"], "").await;
    assert!(
        listed.lines().any(|line| line.starts_with("bob ")),
        "{listed}"
    );
    assert!(!listed.contains("argon2"), "{listed}");

    db.ferry_user(&["remove", "bob"], "").await;
    closed_with_421(&mut bob).await;
    assert_eq!(login_code(&server, "bob", "new password").await, 530);
}

#[tokio::test]
async fn disabling_an_account_by_sql_closes_its_sessions_on_every_server() {
    let db = TestDatabase::with_schema().await;
    db.add_user("alice", ALL, "").await;
    db.add_user("reader", &["list", "download"], "").await;
    let (first, second) = tokio::join!(db.start_server(|_| {}), db.start_server(|_| {}));
    let mut on_first = first.raw_login("alice").await;
    let mut on_second = second.raw_login("alice").await;
    let mut reader = first.raw_login("reader").await;

    db.sql("UPDATE ferry_users SET enabled = false WHERE name = 'alice'")
        .await;
    closed_with_421(&mut on_first).await;
    closed_with_421(&mut on_second).await;
    assert_eq!(login_code(&second, "alice", PASSWORD).await, 530);
    reader.expect("NOOP", 200).await;
}

#[tokio::test]
async fn permissions_homes_networks_and_tls_apply_as_with_the_users_file() {
    let db = TestDatabase::with_schema().await;
    let server = db.start_server(|_| {}).await;
    db.add_user("reader", &["read-only"], "home = 'shared/reader'")
        .await;
    db.add_user("elsewhere", ALL, "allowed_networks = '{10.0.0.0/8}'")
        .await;
    db.add_user("secure", ALL, "require_tls = true").await;
    db.add_user("escaper", ALL, "home = '../outside'").await;
    until_accounts(&server, "new accounts", |users| {
        users.get("secure").is_some()
    })
    .await;

    let mut reader = server.raw_login("reader").await;
    assert!(server.root.join("shared/reader").is_dir());
    std::fs::write(server.root.join("shared/reader/file.txt"), b"hello").expect("file");
    reader.expect("SIZE file.txt", 213).await;
    let mut data = reader.epsv(server.addr).await;
    reader.send("STOR new.txt").await;
    assert_eq!(reader.reply().await.0, 150);
    let _ = data.shutdown().await;
    drop(data);
    let (code, text) = reader.reply().await;
    assert_eq!(code, 550, "read-only refuses uploads: {text}");

    for user in ["elsewhere", "secure", "escaper"] {
        assert_eq!(login_code(&server, user, PASSWORD).await, 530, "{user}");
    }

    db.sql("UPDATE ferry_users SET permissions = '{list,download,upload}' WHERE name = 'reader'")
        .await;
    until_accounts(&server, "new permissions", |users| {
        users
            .get("reader")
            .is_some_and(|reader| reader.permissions.upload)
    })
    .await;
    let mut data = reader.epsv(server.addr).await;
    reader.send("STOR new.txt").await;
    assert_eq!(
        reader.reply().await.0,
        150,
        "more permissions apply at once"
    );
    data.write_all(b"uploaded").await.expect("upload");
    drop(data);
    assert_eq!(reader.reply().await.0, 226);
}

#[tokio::test]
async fn failed_logins_on_two_servers_add_up_to_one_ban() {
    let db = TestDatabase::with_schema().await;
    db.add_user("alice", ALL, "").await;
    let policy = |config: &mut ferry::config::Config| {
        config.login_failures = Some(ferry::config::LoginFailurePolicy {
            max_attempts: 5,
            ban: Duration::from_secs(60),
        })
    };
    let (a, b) = tokio::join!(db.start_server(policy), db.start_server(policy));
    for (server, failures) in [(&a, 3), (&b, 2)] {
        for _ in 0..failures {
            assert_eq!(login_code(server, "alice", "wrong").await, 530);
        }
    }
    let row = db
        .client
        .query_one(
            "SELECT failures, banned_until IS NOT NULL FROM ferry_login_failures WHERE ip = '127.0.0.1'",
            &[],
        )
        .await
        .expect("a row for the address");
    assert_eq!((row.get::<_, i32>(0), row.get::<_, bool>(1)), (5, true));

    for server in [&a, &b] {
        let deadline = tokio::time::Instant::now() + PROPAGATION;
        loop {
            let raw = server.raw().await;
            if raw.greeting.0 == 421 {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the ban reaches every server within 2 s: {:?}",
                raw.greeting
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let other = RawSession::connect_from(server.addr, "127.0.0.2".parse().expect("ip")).await;
        assert_eq!(other.greeting.0, 220, "other addresses are not banned");
    }
}

#[tokio::test]
async fn unreachable_database_refuses_logins_with_421_keeps_sessions_and_recovers() {
    let db = TestDatabase::with_schema().await;
    db.add_user("alice", ALL, "").await;
    let capture = AuditCapture::default();
    let server = TestServer::start_logging_to(
        |config| {
            db.configure(config);
            config.admin_bind = Some("127.0.0.1:0".parse().expect("address"));
        },
        &[],
        capture.logger(),
    )
    .await;
    assert_eq!(ready(&server).await.0, 200);
    let mut alice = server.login("alice").await;
    alice
        .put_file("before.txt", &mut &b"written before"[..])
        .await
        .expect("upload");

    db.make_unreachable().await;
    let deadline = tokio::time::Instant::now() + PROPAGATION;
    let mut code = 0;
    while tokio::time::Instant::now() < deadline {
        code = login_code(&server, "alice", PASSWORD).await;
        if code == 421 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        code, 421,
        "new logins get 421 while the database is unreachable"
    );
    assert_eq!(login_code(&server, "alice", PASSWORD).await, 421);
    let (status, body) = ready(&server).await;
    assert_eq!(status, 503, "not ready while logins get 421: {body}");
    assert!(body.contains("accounts database"), "{body}");

    let names = alice
        .nlst(None)
        .await
        .expect("the open session still lists");
    assert!(
        names.iter().any(|name| name.contains("before.txt")),
        "{names:?}"
    );
    assert_eq!(
        common::download(&mut alice, "before.txt").await,
        b"written before"
    );
    alice
        .put_file("during.txt", &mut &b"written during"[..])
        .await
        .expect("the open session still uploads");

    db.make_reachable().await;
    // Nothing to await: Ferry retries on its own (every 2 s at most) and says nothing until
    // a login works.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while login_code(&server, "alice", PASSWORD).await != 230 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "logins work again within 10 s of the database coming back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    assert_eq!(ready(&server).await.0, 200);
    let outage_lines = capture
        .everything()
        .into_iter()
        .filter(|record| {
            record
                .get("msg")
                .is_some_and(|msg| msg.starts_with("accounts database unreachable"))
        })
        .count();
    assert_eq!(
        outage_lines, 1,
        "one log line for the outage, not one per login"
    );
}

/// `ferry serve --check-config` connects to the accounts database: a reachable one passes, a
/// wrong port fails with the reason, without starting anything.
#[tokio::test]
async fn check_config_connects_to_the_accounts_database() {
    let db = TestDatabase::with_schema().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let check = |users: String| {
        let dir = dir.path().to_owned();
        let password = db.password();
        async move {
            tokio::task::spawn_blocking(move || {
                std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
                    .current_dir(&dir)
                    .env_clear()
                    .env("PGPASSWORD", password)
                    .args(["serve", "--check-config", "--root", "."])
                    .args(["--users", &users])
                    .output()
                    .expect("run ferry serve --check-config")
            })
            .await
            .expect("join")
        }
    };
    let fine = check(db.url()).await;
    assert!(
        fine.status.success(),
        "{}",
        String::from_utf8_lossy(&fine.stderr)
    );
    let unreachable = db.url().replace(":5432/", ":1/");
    let refused = check(unreachable).await;
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("could not connect"), "{said}");
}

/// Uploads `size` bytes as `name`; the final reply code.
async fn upload_code(raw: &mut RawSession, server: &TestServer, name: &str, size: usize) -> u32 {
    let mut data = raw.epsv(server.addr).await;
    raw.expect(format!("STOR {name}"), 150).await;
    let _ = data.write_all(&common::pattern(size)).await;
    drop(data);
    raw.reply().await.0
}

async fn usage_row(db: &TestDatabase, name: &str) -> Option<(i64, i64)> {
    db.client
        .query_opt(
            "SELECT bytes, files FROM ferry_usage WHERE name = $1",
            &[&name],
        )
        .await
        .expect("read ferry_usage")
        .map(|row| (row.get(0), row.get(1)))
}

#[tokio::test]
async fn quotas_are_account_columns_and_usage_is_a_row_that_rescan_corrects() {
    let db = TestDatabase::create().await;
    let server = db.start_server(|_| {}).await;
    db.ferry_user(
        &[
            "add",
            "alice",
            "--password-stdin",
            "--quota-bytes",
            "1M",
            "--quota-files",
            "5",
        ],
        &format!("{PASSWORD}\n"),
    )
    .await;
    let row = db
        .client
        .query_one(
            "SELECT quota_bytes, quota_files, upload_rate FROM ferry_users WHERE name = 'alice'",
            &[],
        )
        .await
        .expect("alice's row");
    let columns: (Option<i64>, Option<i64>, Option<i64>) = (row.get(0), row.get(1), row.get(2));
    assert_eq!(columns, (Some(1 << 20), Some(5), None));
    until_accounts(&server, "alice's account", |users| {
        users.get("alice").is_some()
    })
    .await;

    let mut raw = server.raw_login("alice").await;
    assert_eq!(upload_code(&mut raw, &server, "a.bin", 300_000).await, 226);
    assert_eq!(usage_row(&db, "alice").await, Some((300_000, 1)));
    assert_eq!(upload_code(&mut raw, &server, "b.bin", 900_000).await, 552);
    assert_eq!(usage_row(&db, "alice").await, Some((300_000, 1)));
    assert!(!server.home("alice").join("b.bin").exists());

    // A raised quota is in force for the next upload within 2 s.
    db.ferry_user(&["edit", "alice", "--quota-bytes", "2M"], "")
        .await;
    until_accounts(&server, "the new quota", |users| {
        users
            .get("alice")
            .is_some_and(|alice| alice.limits.quota_bytes == Some(2 << 20))
    })
    .await;
    assert_eq!(upload_code(&mut raw, &server, "b.bin", 900_000).await, 226);
    assert_eq!(usage_row(&db, "alice").await, Some((1_200_000, 2)));

    // Usage someone changed behind Ferry's back is measured again by `ferry user rescan`.
    db.sql("UPDATE ferry_usage SET bytes = 5, files = 0 WHERE name = 'alice'")
        .await;
    let root = server.root.to_str().expect("utf-8 root").to_owned();
    let out = db
        .ferry_user(&["rescan", "alice", "--root", &root], "")
        .await;
    assert!(out.contains("alice: 2 files, 1200000 bytes"), "{out}");
    assert_eq!(usage_row(&db, "alice").await, Some((1_200_000, 2)));
}

/// Events do not depend on where accounts live: an upload by a database account is published
/// with its user, path and SHA-256 (a command hook writes the event it got on stdin).
#[tokio::test]
async fn an_upload_by_a_database_account_is_published_to_the_event_hooks() {
    use sha2::{Digest, Sha256};
    let db = TestDatabase::with_schema().await;
    db.add_user("alice", ALL, "").await;
    let out = tempfile::tempdir().expect("temp dir");
    let script = format!(
        "cat > '{}'/\"$FERRY_EVENT_ID\".json",
        out.path().to_str().expect("utf-8")
    );
    let server = db
        .start_server(|config| {
            config.events.tables = vec![ferry::config::HookSettings {
                name: "stdin".into(),
                target: ferry::config::HookTarget::Command(vec![
                    "/bin/sh".into(),
                    "-c".into(),
                    script,
                ]),
                secret_file: None,
                secret: None,
                ca_file: None,
                events: vec![ferry::config::EventKind::Upload],
                paths: Vec::new(),
                timeout: Duration::from_secs(10),
            }];
        })
        .await;
    until_accounts(&server, "alice", |users| users.get("alice").is_some()).await;
    let mut ftp = server.login("alice").await;
    let data = common::pattern(10_000);
    ftp.put_file("from-db.bin", &mut std::io::Cursor::new(data.clone()))
        .await
        .expect("STOR");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let event = loop {
        let files: Vec<_> = std::fs::read_dir(out.path())
            .expect("list")
            .map(|entry| entry.expect("entry").path())
            .collect();
        if let [file] = &files[..]
            && let Ok(json) =
                serde_json::from_slice::<serde_json::Value>(&std::fs::read(file).expect("read"))
        {
            break json;
        }
        assert!(tokio::time::Instant::now() < deadline, "no event delivered");
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert_eq!(event["user"], "alice");
    assert_eq!(event["path"], "/from-db.bin");
    assert_eq!(event["size"], data.len());
    let sha256: String = Sha256::digest(&data)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    assert_eq!(event["sha256"], sha256);
}
