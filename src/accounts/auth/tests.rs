//! Tests of logins: passwords, refusals, bans, anonymous access and TLS requirements.

use super::*;
use crate::accounts::password::hash_password;
use crate::accounts::users::UserRecord;
use crate::accounts::users::{UsersError, UsersFile};
use crate::config::LoginFailurePolicy;
use crate::observe::logging::LogFormat;
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;
use unftp_core::auth::ChannelEncryptionState;

/// Every log record (audit or not) as key → value strings, message under "msg".
type CapturedLog = Arc<Mutex<Vec<HashMap<String, String>>>>;

struct CaptureDrain(CapturedLog);

struct FieldCollector(HashMap<String, String>);

impl slog::Serializer for FieldCollector {
    fn emit_arguments(&mut self, key: slog::Key, value: &fmt::Arguments<'_>) -> slog::Result {
        self.0.insert(key.to_string(), value.to_string());
        Ok(())
    }
}

impl slog::Drain for CaptureDrain {
    type Ok = ();
    type Err = slog::Never;
    fn log(
        &self,
        record: &slog::Record<'_>,
        values: &slog::OwnedKVList,
    ) -> Result<(), slog::Never> {
        use slog::KV;
        let mut fields = FieldCollector(HashMap::new());
        let _ = record.kv().serialize(record, &mut fields);
        let _ = values.serialize(record, &mut fields);
        fields.0.insert("msg".into(), record.msg().to_string());
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(fields.0);
        Ok(())
    }
}

const LOCALHOST: &str = "127.0.0.1";
const ELSEWHERE: &str = "192.0.2.10";

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    users_file: PathBuf,
    directory: Arc<UserDirectory>,
    authenticator: FerryAuthenticator,
    log: CapturedLog,
}

struct Options {
    anonymous: bool,
    login_failures: Option<LoginFailurePolicy>,
    max_concurrent_logins: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            anonymous: false,
            login_failures: None,
            max_concurrent_logins: 4,
        }
    }
}

fn user(name: &str, password: &str) -> UserRecord {
    UserRecord {
        name: name.into(),
        password_hash: hash_password(password).expect("hash"),
        home: PathBuf::from("homes").join(name),
        permissions: Permissions::ALL,
        enabled: true,
        allowed_networks: Vec::new(),
        require_tls: false,
        limits: Default::default(),
    }
}

fn write_users(path: &Path, users: Vec<UserRecord>) {
    let mut file = UsersFile::new();
    for user in users {
        file.insert(user);
    }
    file.save(path).expect("save users");
}

fn config(root: &Path, users_file: &Path, options: &Options) -> Config {
    Config {
        bind: "127.0.0.1:0".parse().expect("addr"),
        root: root.to_path_buf(),
        users_file: users_file.to_path_buf(),
        users_database: None,
        users_password_file: None,
        limits: Default::default(),
        passive_ports: 50_000..=50_010,
        passive_host: None,
        greeting: "test".into(),
        idle_timeout: Duration::from_secs(60),
        max_sessions: 10,
        max_sessions_per_ip: 10,
        login_failures: options.login_failures.clone(),
        log_format: LogFormat::Human,
        log_level: slog::Level::Info,
        active_mode: false,
        anonymous: options.anonymous,
        anonymous_home: PathBuf::from("pub"),
        shutdown_grace: Duration::from_secs(1),
        shutdown_drain: Duration::ZERO,
        max_concurrent_logins: options.max_concurrent_logins,
        admin_bind: None,
        tls: Default::default(),
        login_timeout: Duration::from_secs(30),
        data_timeout: Duration::from_secs(300),
        max_transfers: 10,
        host_names: Vec::new(),
        proxy_from: Vec::new(),
        bucket: None,
        s3: Default::default(),
        instance_id: "test".into(),
        events: Default::default(),
        source_file: None,
    }
}

fn fixture(users: Vec<UserRecord>, options: Options) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root");
    let users_file = dir.path().join("users.toml");
    write_users(&users_file, users);
    let log = CapturedLog::default();
    let logger = slog::Logger::root(CaptureDrain(Arc::clone(&log)), slog::o!());
    let config = config(&root, &users_file, &options);
    let anonymous = options.anonymous.then(|| config.anonymous_home.clone());
    let directory =
        UserDirectory::load(&users_file, &root, anonymous, logger.clone()).expect("load");
    let authenticator = FerryAuthenticator::new(
        Arc::clone(&directory),
        &config,
        AuditLog::new(&logger),
        logger,
    );
    Fixture {
        _dir: dir,
        root,
        users_file,
        directory,
        authenticator,
        log,
    }
}

fn creds(password: &str, ip: &str) -> Credentials {
    Credentials {
        password: Some(password.to_string()),
        certificate_chain: None,
        source_ip: ip.parse().expect("ip"),
        command_channel_security: ChannelEncryptionState::Plaintext,
    }
}

impl Fixture {
    async fn login(
        &self,
        name: &str,
        password: &str,
        ip: &str,
    ) -> Result<FerryUser, AuthenticationError> {
        let principal = self
            .authenticator
            .authenticate(name, &creds(password, ip))
            .await?;
        self.authenticator
            .provide_user_detail(&principal)
            .await
            .map_err(|e| AuthenticationError::new(e.to_string()))
    }

    fn audit_records(&self) -> Vec<HashMap<String, String>> {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|record| record.get("audit").map(String::as_str) == Some("true"))
            .cloned()
            .collect()
    }

    fn last_audit(&self) -> HashMap<String, String> {
        self.audit_records().pop().expect("an audit record")
    }
}

fn field<'a>(record: &'a HashMap<String, String>, key: &str) -> &'a str {
    record.get(key).map(String::as_str).unwrap_or_default()
}

#[tokio::test]
async fn right_password_logs_in_with_absolute_home_that_now_exists() {
    let f = fixture(vec![user("bob", "pw")], Options::default());
    let bob = f.login("bob", "pw", LOCALHOST).await.expect("login");
    assert_eq!(bob.name, "bob");
    assert!(bob.home.is_absolute());
    assert_eq!(
        bob.home,
        std::path::absolute(f.root.join("homes/bob")).expect("abs")
    );
    assert!(bob.home.is_dir(), "home created at login");
    assert_eq!(bob.permissions, Permissions::ALL);
    assert!(!bob.anonymous);
    let audit = f.last_audit();
    assert_eq!(field(&audit, "op"), "login");
    assert_eq!(field(&audit, "user"), "bob");
    assert_eq!(field(&audit, "client_ip"), LOCALHOST);
    assert_eq!(field(&audit, "path"), "");
    assert_eq!(field(&audit, "result"), "ok");
}

#[tokio::test]
async fn wrong_password_and_unknown_user_are_refused_and_audited() {
    let f = fixture(vec![user("bob", "pw")], Options::default());
    let error = f
        .login("bob", "nope", LOCALHOST)
        .await
        .expect_err("wrong password");
    assert!(
        matches!(error, AuthenticationError::BadPassword),
        "{error:?}"
    );
    assert_eq!(field(&f.last_audit(), "result"), "denied");
    assert_eq!(field(&f.last_audit(), "reason"), "wrong password");
    let error = f
        .login("carol", "pw", LOCALHOST)
        .await
        .expect_err("unknown user");
    assert!(matches!(error, AuthenticationError::BadUser), "{error:?}");
    assert_eq!(field(&f.last_audit(), "reason"), "unknown user");
    assert_eq!(f.audit_records().len(), 2, "one audit record per attempt");
}

/// Same cost without a timing assertion (which flakes on a loaded machine): each attempt
/// computes exactly one argon2 hash, and the dummy hash has the live parameters.
#[tokio::test]
async fn unknown_user_costs_one_hash_like_a_wrong_password() {
    let f = fixture(vec![user("bob", "pw")], Options::default());
    let hashes = || f.authenticator.verifier.hashes_computed();
    let before = hashes();
    let wrong = f
        .authenticator
        .authenticate("bob", &creds("nope", LOCALHOST))
        .await;
    assert!(wrong.is_err());
    assert_eq!(hashes(), before + 1, "a wrong password costs one hash");
    let unknown = f
        .authenticator
        .authenticate("nobody", &creds("nope", LOCALHOST))
        .await;
    assert!(unknown.is_err());
    assert_eq!(hashes(), before + 2, "an unknown user costs one hash too");
}

#[tokio::test]
async fn disabled_account_is_refused_even_with_the_right_password() {
    let mut bob = user("bob", "pw");
    bob.enabled = false;
    let f = fixture(vec![bob], Options::default());
    assert!(f.login("bob", "pw", LOCALHOST).await.is_err());
    assert_eq!(field(&f.last_audit(), "reason"), "account disabled");
    let bob = Principal {
        username: "bob".into(),
    };
    assert!(f.authenticator.provide_user_detail(&bob).await.is_err());
}

#[tokio::test]
async fn allowed_networks_restrict_where_a_user_may_log_in_from() {
    let mut bob = user("bob", "pw");
    bob.allowed_networks = vec!["127.0.0.0/8".parse().expect("net")];
    let f = fixture(vec![bob], Options::default());
    f.login("bob", "pw", LOCALHOST)
        .await
        .expect("from loopback");
    f.login("bob", "pw", "::ffff:127.0.0.1")
        .await
        .expect("IPv4-mapped loopback");
    let error = f
        .login("bob", "pw", ELSEWHERE)
        .await
        .expect_err("from elsewhere");
    assert!(
        matches!(error, AuthenticationError::IpDisallowed),
        "{error:?}"
    );
    assert_eq!(field(&f.last_audit(), "reason"), "network not allowed");
}

#[tokio::test]
async fn only_logins_that_would_succeed_skip_the_hash_when_repeated() {
    let mut bob = user("bob", "pw");
    bob.allowed_networks = vec!["127.0.0.0/8".parse().expect("net")];
    let f = fixture(vec![bob], Options::default());
    let hashes = || f.authenticator.verifier.hashes_computed();
    f.login("bob", "pw", LOCALHOST).await.expect("first login");
    f.login("bob", "pw", LOCALHOST).await.expect("repeat login");
    assert_eq!(hashes(), 1, "the repeat is recalled");
    // The right password from a refused network pays the full hash: a quick refusal
    // would tell a guesser the password was right.
    f.login("bob", "pw", ELSEWHERE).await.expect_err("refused");
    assert_eq!(hashes(), 2);
    f.login("bob", "wrong", LOCALHOST).await.expect_err("wrong");
    assert_eq!(hashes(), 3);
}

#[tokio::test]
async fn anonymous_off_means_anonymous_is_an_unknown_user() {
    let f = fixture(vec![user("bob", "pw")], Options::default());
    for name in ["anonymous", "ftp"] {
        let error = f
            .login(name, "me@example.com", LOCALHOST)
            .await
            .expect_err("refused");
        assert!(matches!(error, AuthenticationError::BadUser), "{error:?}");
    }
}

#[tokio::test]
async fn anonymous_on_logs_in_read_only_with_any_password() {
    let options = Options {
        anonymous: true,
        ..Options::default()
    };
    let f = fixture(vec![user("bob", "pw")], options);
    for name in ["anonymous", "ftp", "FTP", "Anonymous"] {
        let user = f
            .login(name, "whatever@example.com", ELSEWHERE)
            .await
            .expect("anonymous");
        assert!(user.anonymous);
        assert_eq!(user.name, ANONYMOUS_SESSION_NAME);
        assert_eq!(user.permissions, Permissions::READ_ONLY);
        assert_eq!(
            user.home,
            std::path::absolute(f.root.join("pub")).expect("abs")
        );
        assert!(user.home.is_dir());
    }
    assert_eq!(field(&f.last_audit(), "result"), "ok");
    f.login("bob", "pw", LOCALHOST)
        .await
        .expect("named users still work");
}

#[tokio::test]
async fn ip_is_banned_after_max_failures_and_other_ips_are_unaffected() {
    let options = Options {
        login_failures: Some(LoginFailurePolicy {
            max_attempts: 3,
            ban: Duration::from_secs(600),
        }),
        ..Options::default()
    };
    let f = fixture(vec![user("bob", "pw")], options);
    for _ in 0..2 {
        assert!(f.login("bob", "guess", ELSEWHERE).await.is_err());
        assert_eq!(field(&f.last_audit(), "reason"), "wrong password");
    }
    assert!(f.login("nobody", "guess", ELSEWHERE).await.is_err());
    assert_eq!(
        field(&f.last_audit(), "reason"),
        "unknown user; ip now banned for 600s after 3 failures"
    );

    // Banned: refused even with the right password, and without spending a hash.
    let peak_before = f.authenticator.verifier.peak_concurrent_hashes();
    let started = Instant::now();
    assert!(f.login("bob", "pw", ELSEWHERE).await.is_err());
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(
        field(&f.last_audit(), "reason"),
        "ip banned after 3 failures"
    );
    assert_eq!(
        f.authenticator.verifier.peak_concurrent_hashes(),
        peak_before
    );

    f.login("bob", "pw", LOCALHOST)
        .await
        .expect("another IP logs in");
}

#[tokio::test]
async fn passwords_never_reach_the_logs() {
    let options = Options {
        anonymous: true,
        login_failures: Some(LoginFailurePolicy {
            max_attempts: 1,
            ban: Duration::from_secs(60),
        }),
        ..Options::default()
    };
    let f = fixture(vec![user("bob", "Pa55-right")], options);
    let _ = f.login("bob", "Pa55-right", LOCALHOST).await;
    let _ = f.login("bob", "Pa55-wrong", ELSEWHERE).await;
    let _ = f
        .login("anonymous", "Pa55-anon@example.com", LOCALHOST)
        .await;
    let log = f.log.lock().unwrap_or_else(PoisonError::into_inner);
    assert!(!log.is_empty());
    for record in log.iter() {
        for value in record.values() {
            assert!(!value.contains("Pa55"), "password in log record {record:?}");
        }
    }
}

#[tokio::test]
async fn reload_picks_up_a_changed_file_without_touching_sessions() {
    let f = fixture(vec![user("bob", "old")], Options::default());
    let session = f.login("bob", "old", LOCALHOST).await.expect("login");
    let _reloader = f.directory.spawn_reloader();
    write_users(&f.users_file, vec![user("bob", "new"), user("carol", "pw")]);
    tokio::time::timeout(Duration::from_secs(20), f.directory.wait_for_generation(1))
        .await
        .expect("the poller reloads the changed file");
    assert!(f.login("bob", "old", LOCALHOST).await.is_err());
    f.login("bob", "new", LOCALHOST)
        .await
        .expect("new password");
    f.login("carol", "pw", LOCALHOST).await.expect("new user");
    assert_eq!(session.name, "bob", "existing session keeps its user");
}

#[tokio::test]
async fn broken_new_file_keeps_the_old_users() {
    let f = fixture(vec![user("bob", "pw")], Options::default());
    std::fs::write(&f.users_file, "[users.bob]\nhome = \"/etc\"\n").expect("write");
    let error = f.directory.reload().expect_err("broken file");
    assert!(error.to_string().contains("users.toml"), "{error}");
    assert_eq!(f.directory.failed_reloads(), 1);
    assert_eq!(f.directory.generation(), 0);
    f.login("bob", "pw", LOCALHOST)
        .await
        .expect("old users still in force");
    let warned = f
        .log
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .any(|r| {
            field(r, "msg").contains("not reloaded")
                && field(r, "error").contains("user `bob`: field `password`: missing")
        });
    assert!(warned, "the warning says why");
}

#[tokio::test]
async fn reloader_survives_a_broken_file_and_loads_the_fixed_one() {
    let f = fixture(vec![user("bob", "pw")], Options::default());
    let _reloader = f.directory.spawn_reloader();
    std::fs::write(&f.users_file, "this is not toml [").expect("write");
    tokio::time::timeout(
        Duration::from_secs(20),
        f.directory.wait_for_failed_reloads(1),
    )
    .await
    .expect("the poller notices the broken file");
    f.login("bob", "pw", LOCALHOST)
        .await
        .expect("old users still in force");
    write_users(&f.users_file, vec![user("carol", "pw")]);
    tokio::time::timeout(Duration::from_secs(20), f.directory.wait_for_generation(1))
        .await
        .expect("the poller loads the fixed file");
    f.login("carol", "pw", LOCALHOST).await.expect("new user");
}

#[tokio::test]
async fn sighup_reloads_even_an_unchanged_file() {
    let f = fixture(vec![user("bob", "pw")], Options::default());
    // The handler is installed before spawn_reloader returns, so the signal cannot
    // arrive unhandled (which would terminate the test process).
    let _reloader = f.directory.spawn_reloader();
    // SAFETY: kill(2) with our own pid and a signal that now has a handler.
    let sent = unsafe { libc::kill(libc::getpid(), libc::SIGHUP) };
    assert_eq!(sent, 0);
    tokio::time::timeout(Duration::from_secs(20), f.directory.wait_for_generation(1))
        .await
        .expect("SIGHUP reloads");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn login_flood_never_runs_more_hashes_than_max_concurrent_logins() {
    let options = Options {
        max_concurrent_logins: 2,
        ..Options::default()
    };
    let f = Arc::new(fixture(vec![user("bob", "pw")], options));
    let attempts: Vec<_> = (0..10)
        .map(|n| {
            let f = Arc::clone(&f);
            tokio::spawn(async move {
                let password = if n % 2 == 0 { "pw" } else { "wrong" };
                f.authenticator
                    .authenticate("bob", &creds(password, LOCALHOST))
                    .await
                    .is_ok()
            })
        })
        .collect();
    let mut successes = 0;
    for attempt in attempts {
        successes += usize::from(attempt.await.expect("join"));
    }
    assert_eq!(successes, 5);
    let peak = f.authenticator.verifier.peak_concurrent_hashes();
    assert!((1..=2).contains(&peak), "peak {peak}");
}

#[tokio::test]
async fn require_tls_user_is_refused_over_plaintext_without_counting_a_failure() {
    let options = Options {
        login_failures: Some(LoginFailurePolicy {
            max_attempts: 1,
            ban: Duration::from_secs(600),
        }),
        ..Options::default()
    };
    let mut secure = user("sec", "pw");
    secure.require_tls = true;
    let f = fixture(vec![secure], options);
    for _ in 0..2 {
        let error = f
            .login("sec", "pw", LOCALHOST)
            .await
            .expect_err("plaintext refused");
        assert!(error.to_string().contains("tls required"), "{error}");
        assert_eq!(field(&f.last_audit(), "reason"), "tls required");
    }
    let over_tls = Credentials {
        command_channel_security: ChannelEncryptionState::Tls,
        ..creds("pw", LOCALHOST)
    };
    let principal = f
        .authenticator
        .authenticate("sec", &over_tls)
        .await
        .expect("over TLS, and not banned by the refusals before");
    assert_eq!(principal.username, "sec");
}

#[test]
fn users_with_password_finds_enabled_users_with_that_password() {
    let mut disabled = user("old-demo", "ferry-demo");
    disabled.enabled = false;
    let f = fixture(
        vec![user("demo", "ferry-demo"), user("bob", "pw"), disabled],
        Options::default(),
    );
    assert_eq!(
        f.directory.users_with_password("ferry-demo"),
        vec!["demo".to_string()]
    );
    assert!(f.directory.users_with_password("unused").is_empty());
}

#[test]
fn anonymous_home_must_be_relative_without_dot_dot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let users_file = dir.path().join("users.toml");
    write_users(&users_file, Vec::new());
    let logger = slog::Logger::root(slog::Discard, slog::o!());
    for bad in ["/srv/pub", "../pub"] {
        let result = UserDirectory::load(&users_file, dir.path(), Some(bad.into()), logger.clone());
        assert!(
            matches!(result, Err(UsersError::InvalidAnonymousHome { .. })),
            "{bad}"
        );
    }
}

/// A session's standing follows the users file: the permissions as reloaded, or why the
/// account no longer admits it.
#[tokio::test]
async fn standing_follows_the_users_file_as_reloaded() {
    let f = fixture(vec![user("bob", "pw")], Options::default());
    let session = f.login("bob", "pw", LOCALHOST).await.expect("login");
    let here: IpAddr = LOCALHOST.parse().expect("ip");
    assert_eq!(session.standing(here), Ok(Permissions::ALL));

    let reload_with = |record: UserRecord| {
        write_users(&f.users_file, vec![record]);
        f.directory.reload().expect("reload");
    };
    reload_with(UserRecord {
        permissions: Permissions::READ_ONLY,
        ..user("bob", "pw")
    });
    assert_eq!(session.standing(here), Ok(Permissions::READ_ONLY));
    reload_with(UserRecord {
        enabled: false,
        ..user("bob", "pw")
    });
    assert_eq!(session.standing(here), Err(Revoked::Disabled));
    reload_with(UserRecord {
        home: PathBuf::from("elsewhere"),
        ..user("bob", "pw")
    });
    assert_eq!(session.standing(here), Err(Revoked::HomeChanged));
    reload_with(UserRecord {
        allowed_networks: vec!["192.0.2.0/24".parse().expect("net")],
        ..user("bob", "pw")
    });
    assert_eq!(session.standing(here), Err(Revoked::NetworkNotAllowed));
    reload_with(user("carol", "pw"));
    assert_eq!(session.standing(here), Err(Revoked::Removed));
}
