//! Ferry's authenticator: verifies logins against the users file and yields the session's user.

use crate::audit::{AuditLog, AuditRecord, Op, Outcome};
use crate::config::Config;
use crate::login_guard::{FailureVerdict, LoginGuard};
use crate::password::{PasswordVerifier, verify_password};
use crate::reload::{FileVersion, ReloadCounters};
use crate::users::{Permissions, UsersError, UsersFile, validate_home};
use async_trait::async_trait;
use std::fmt;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};
use unftp_core::auth::{
    AuthenticationError, Authenticator, ChannelEncryptionState, Credentials, Principal,
    UserDetailError, UserDetailProvider,
};

/// How often the reloader checks the users file for changes. Polling rather than inotify,
/// because inotify misses Kubernetes ConfigMap updates (a symlink swap of the parent
/// directory) and edits made from outside a Docker bind mount; one `stat` a second is free.
pub const USERS_FILE_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// User names that mean anonymous login when it is enabled. Compared ignoring ASCII case, as
/// FTP clients send `anonymous`, `Anonymous` or `FTP` (vsftpd accepts all of them too).
pub const ANONYMOUS_USER_NAMES: [&str; 2] = ["anonymous", "ftp"];

/// The name every anonymous session carries, whichever alias the client used.
pub const ANONYMOUS_SESSION_NAME: &str = "anonymous";

fn is_anonymous_name(name: &str) -> bool {
    ANONYMOUS_USER_NAMES
        .iter()
        .any(|alias| alias.eq_ignore_ascii_case(name))
}

/// The logged-in user of a session, as libunftp hands it to the storage backend.
#[derive(Debug, Clone)]
pub struct FerryUser {
    pub name: String,
    /// Absolute path of the home directory (beneath the server root).
    pub home: PathBuf,
    pub permissions: Permissions,
    pub anonymous: bool,
}

impl fmt::Display for FerryUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl unftp_core::auth::UserDetail for FerryUser {
    fn home(&self) -> Option<&Path> {
        Some(&self.home)
    }
}

/// The accounts of the users file, reloadable while the server runs.
///
/// A reload swaps in a whole new [`UsersFile`]; a login in progress keeps the snapshot it
/// started with, and established sessions hold their own [`FerryUser`], so no session is
/// dropped or changed by a reload.
#[derive(Debug)]
pub struct UserDirectory {
    users_file: PathBuf,
    /// The server root, absolute; every home is beneath it.
    root: PathBuf,
    /// Absolute home of anonymous sessions; None when anonymous login is off.
    anonymous_home: Option<PathBuf>,
    /// The current accounts. `std` lock: held only to clone or replace the `Arc`.
    users: RwLock<Arc<UsersFile>>,
    /// The file version last read (successfully or not), so that the poller reloads once per
    /// change and a broken file is reported once rather than every second.
    last_seen_version: Mutex<Option<FileVersion>>,
    /// Reloads since `load`, successful and failed; lets callers await one instead of sleeping.
    reloads: ReloadCounters,
    logger: slog::Logger,
}

impl UserDirectory {
    /// Loads `users_file`. `root` is the server root; `anonymous` is the anonymous home
    /// relative to it, or None when anonymous login is off. Homes are absolute from here on.
    pub fn load(
        users_file: &Path,
        root: &Path,
        anonymous: Option<PathBuf>,
        logger: slog::Logger,
    ) -> Result<Arc<UserDirectory>, UsersError> {
        let root = std::path::absolute(root).map_err(|source| UsersError::Read {
            path: root.to_path_buf(),
            source,
        })?;
        let anonymous_home = anonymous
            .map(|home| {
                let home = home
                    .to_str()
                    .ok_or_else(|| UsersError::InvalidAnonymousHome {
                        problem: format!("must be valid UTF-8, got {home:?}"),
                    })?;
                validate_home(home)
                    .map(|home| root.join(home))
                    .map_err(|problem| UsersError::InvalidAnonymousHome { problem })
            })
            .transpose()?;
        let version = FileVersion::of(users_file);
        let users = UsersFile::load(users_file)?;
        let directory = UserDirectory {
            users_file: users_file.to_path_buf(),
            root,
            anonymous_home,
            users: RwLock::new(Arc::new(users)),
            last_seen_version: Mutex::new(version),
            reloads: ReloadCounters::default(),
            logger,
        };
        directory.warn_about_shadowed_accounts();
        slog::info!(directory.logger, "users file loaded";
            "file" => %directory.users_file.display(), "users" => directory.users().len());
        Ok(Arc::new(directory))
    }

    /// Re-reads the users file. On error the previous users stay in force, a warning says
    /// why, and the error is returned.
    pub fn reload(&self) -> Result<(), UsersError> {
        // Record the version before reading: if the file changes during the read, the next
        // poll sees a different version and reads it again.
        *self
            .last_seen_version
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = FileVersion::of(&self.users_file);
        match UsersFile::load(&self.users_file) {
            Ok(users) => {
                let count = users.len();
                *self.users.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(users);
                self.warn_about_shadowed_accounts();
                self.reloads.record_success();
                slog::info!(self.logger, "users file reloaded";
                    "file" => %self.users_file.display(), "users" => count);
                Ok(())
            }
            Err(error) => {
                self.reloads.record_failure();
                slog::warn!(self.logger, "users file not reloaded; keeping the previous users";
                    "file" => %self.users_file.display(), "error" => %error);
                Err(error)
            }
        }
    }

    /// Reloads on SIGHUP, and whenever the file's modification time, size or inode changes
    /// (checked every [`USERS_FILE_POLL_INTERVAL`]). Must be called inside a tokio runtime.
    /// The SIGHUP handler is installed before this returns. The task ends once the directory
    /// is dropped.
    pub fn spawn_reloader(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        crate::reload::spawn_reloader(
            self,
            "the users file",
            USERS_FILE_POLL_INTERVAL,
            &self.logger,
            UserDirectory::file_changed,
            |directory| {
                // Errors are logged by `reload`; the old users stay in force.
                let _ = directory.reload();
            },
        )
    }

    fn file_changed(&self) -> bool {
        let current = FileVersion::of(&self.users_file);
        *self
            .last_seen_version
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            != current
    }

    /// The current accounts (a snapshot: later reloads do not change it).
    pub fn users(&self) -> Arc<UsersFile> {
        Arc::clone(&self.users.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Names of enabled users whose password is `password`. Blocking: one argon2 hash per
    /// enabled user. Used at startup to refuse the published demo password on public binds.
    pub fn users_with_password(&self, password: &str) -> Vec<String> {
        self.users()
            .users()
            .filter(|user| user.enabled && verify_password(&user.password_hash, password))
            .map(|user| user.name.clone())
            .collect()
    }

    /// Successful reloads since `load`.
    pub fn generation(&self) -> u64 {
        self.reloads.generation()
    }

    /// Waits until at least `generation` successful reloads have happened.
    pub async fn wait_for_generation(&self, generation: u64) {
        self.reloads.wait_for_generation(generation).await
    }

    /// Reloads that failed (the previous users were kept).
    pub fn failed_reloads(&self) -> u64 {
        self.reloads.failed_reloads()
    }

    /// Waits until at least `failures` reloads have failed.
    pub async fn wait_for_failed_reloads(&self, failures: u64) {
        self.reloads.wait_for_failed_reloads(failures).await
    }

    pub fn users_file(&self) -> &Path {
        &self.users_file
    }

    /// The absolute server root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The absolute anonymous home, when anonymous login is on.
    pub fn anonymous_home(&self) -> Option<&Path> {
        self.anonymous_home.as_deref()
    }

    fn warn_about_shadowed_accounts(&self) {
        if self.anonymous_home.is_none() {
            return;
        }
        for user in self.users().users() {
            if is_anonymous_name(&user.name) {
                slog::warn!(self.logger, "account is unreachable: with anonymous login on, this name logs in anonymously";
                    "user" => &user.name, "file" => %self.users_file.display());
            }
        }
    }
}

/// Why a login was refused. The client sees 530 for every one of them; the audit log and the
/// operator see which.
#[derive(Debug, thiserror::Error)]
enum LoginRefusal {
    #[error("ip banned after {failures} failures")]
    IpBanned { failures: u32 },
    #[error("unknown user")]
    UnknownUser,
    #[error("wrong password")]
    WrongPassword,
    #[error("account disabled")]
    AccountDisabled,
    #[error("network not allowed")]
    NetworkNotAllowed,
    #[error("tls required")]
    TlsRequired,
    #[error("could not create home directory {}: {source}", home.display())]
    HomeUnavailable { home: PathBuf, source: io::Error },
}

impl LoginRefusal {
    /// Whether this refusal counts toward the failed-login policy: anything that could be
    /// password guessing does; a ban in force or a server-side problem does not.
    fn counts_as_failure(&self) -> bool {
        // A right password over plaintext for a `require_tls` account is a client setting, not
        // guessing.
        !matches!(
            self,
            LoginRefusal::IpBanned { .. }
                | LoginRefusal::HomeUnavailable { .. }
                | LoginRefusal::TlsRequired
        )
    }

    fn into_authentication_error(self) -> AuthenticationError {
        match self {
            LoginRefusal::UnknownUser => AuthenticationError::BadUser,
            LoginRefusal::WrongPassword => AuthenticationError::BadPassword,
            LoginRefusal::NetworkNotAllowed => AuthenticationError::IpDisallowed,
            LoginRefusal::HomeUnavailable { source, .. } => {
                AuthenticationError::with_source("home directory unavailable", source)
            }
            refusal @ (LoginRefusal::IpBanned { .. }
            | LoginRefusal::AccountDisabled
            | LoginRefusal::TlsRequired) => AuthenticationError::new(refusal.to_string()),
        }
    }
}

/// Checks logins against the [`UserDirectory`] and turns principals into [`FerryUser`]s.
/// Register the same `Arc` as libunftp's authenticator and user-detail provider.
#[derive(Debug)]
pub struct FerryAuthenticator {
    directory: Arc<UserDirectory>,
    /// Runs password hashes off the async runtime, at most `max_concurrent_logins` at once.
    verifier: PasswordVerifier,
    /// The failed-login policy; None when `login_failures` is off. Shared with the accept
    /// loop, which turns banned addresses away at connect.
    login_guard: Option<Arc<LoginGuard>>,
    /// `config.anonymous`, and the directory was given an anonymous home.
    anonymous_allowed: bool,
    audit: AuditLog,
    logger: slog::Logger,
}

impl FerryAuthenticator {
    /// The failed-login policy and its bans, when `login_failures` is on.
    pub fn login_guard(&self) -> Option<Arc<LoginGuard>> {
        self.login_guard.clone()
    }

    /// The users this authenticator checks against (reload state included).
    pub fn directory(&self) -> &Arc<UserDirectory> {
        &self.directory
    }

    /// Anonymous login needs both `config.anonymous` and an anonymous home given to
    /// [`UserDirectory::load`]; if they disagree it stays off (and a warning says so).
    pub fn new(
        directory: Arc<UserDirectory>,
        config: &Config,
        audit: AuditLog,
        logger: slog::Logger,
    ) -> FerryAuthenticator {
        let anonymous_allowed = config.anonymous && directory.anonymous_home().is_some();
        if config.anonymous && !anonymous_allowed {
            slog::warn!(
                logger,
                "anonymous login is enabled in the configuration but the user directory has no anonymous home; anonymous login stays off"
            );
        }
        FerryAuthenticator {
            directory,
            verifier: PasswordVerifier::new(config.max_concurrent_logins),
            login_guard: config
                .login_failures
                .clone()
                .map(|policy| Arc::new(LoginGuard::new(policy))),
            anonymous_allowed,
            audit,
            logger,
        }
    }

    /// Decides one login. Every path through here that looks at a password spends exactly
    /// one argon2 verification, so the reply time does not tell a guesser which check failed;
    /// the one exception is a successful login repeated within minutes with the same password
    /// (`crate::verified_logins`), which only someone who knows the password can trigger.
    async fn check_login(
        &self,
        username: &str,
        password: &str,
        client_ip: IpAddr,
        channel: ChannelEncryptionState,
    ) -> Result<(), LoginRefusal> {
        if let Some(guard) = &self.login_guard
            && guard.is_banned(client_ip, Instant::now())
        {
            // No hash: a banned IP must not be able to make the server work for it.
            return Err(LoginRefusal::IpBanned {
                failures: guard.policy().max_attempts,
            });
        }
        if self.anonymous_allowed
            && is_anonymous_name(username)
            && let Some(home) = self.directory.anonymous_home()
        {
            // Any password: by convention clients send an e-mail address, which is not kept.
            return create_home(home).await;
        }
        let generation = self.directory.generation();
        let users = self.directory.users();
        let record = users.get(username);
        // A repeat of a recent successful login may skip the hash, but only where the right
        // password logs in: a disabled account or a refused network always pays the full
        // hash, so a quick refusal can never reveal that a guessed password was right.
        let password_matches = match record {
            Some(record) if record.enabled && record.allows_ip(client_ip) => {
                self.verifier
                    .verify_or_recall(&record.password_hash, password, generation)
                    .await
            }
            _ => {
                self.verifier
                    .verify(record.map(|r| r.password_hash.as_str()), password)
                    .await
            }
        };
        let Some(record) = record else {
            return Err(LoginRefusal::UnknownUser);
        };
        if !password_matches {
            return Err(LoginRefusal::WrongPassword);
        }
        if !record.enabled {
            return Err(LoginRefusal::AccountDisabled);
        }
        if !record.allows_ip(client_ip) {
            return Err(LoginRefusal::NetworkNotAllowed);
        }
        if record.require_tls && channel != ChannelEncryptionState::Tls {
            return Err(LoginRefusal::TlsRequired);
        }
        create_home(&self.directory.root().join(&record.home)).await
    }

    /// Counts a failed login toward the policy; returns how the audit reason should end when
    /// this failure started a ban.
    fn count_failure(&self, username: &str, client_ip: IpAddr) -> Option<String> {
        let guard = self.login_guard.as_ref()?;
        match guard.record_failure(client_ip, Instant::now()) {
            FailureVerdict::BanStarted { failures, ban } => {
                slog::warn!(self.logger, "client IP banned after repeated failed logins";
                    "client_ip" => %client_ip, "user" => username,
                    "failures" => failures, "ban_secs" => ban.as_secs());
                Some(format!(
                    "ip now banned for {}s after {failures} failures",
                    ban.as_secs()
                ))
            }
            FailureVerdict::Counted { .. } => None,
            FailureVerdict::NotTracked => {
                slog::warn!(self.logger, "failed-login table full; this client IP is not tracked";
                    "client_ip" => %client_ip);
                None
            }
        }
    }
}

async fn create_home(home: &Path) -> Result<(), LoginRefusal> {
    tokio::fs::create_dir_all(home)
        .await
        .map_err(|source| LoginRefusal::HomeUnavailable {
            home: home.to_path_buf(),
            source,
        })
}

#[async_trait]
impl Authenticator for FerryAuthenticator {
    async fn authenticate(
        &self,
        username: &str,
        creds: &Credentials,
    ) -> Result<Principal, AuthenticationError> {
        let started = Instant::now();
        // A dual-stack socket shows IPv4 clients as ::ffff:a.b.c.d; bans and audit use a.b.c.d.
        let client_ip = creds.source_ip.to_canonical();
        // No password (a client certificate alone) is checked as an empty one: it fails
        // after the same hashing work as any wrong password.
        let password = creds.password.as_deref().unwrap_or("");
        let decision = self
            .check_login(
                username,
                password,
                client_ip,
                creds.command_channel_security,
            )
            .await;
        let outcome = match &decision {
            Ok(()) => Outcome::Ok,
            Err(refusal @ LoginRefusal::HomeUnavailable { .. }) => {
                slog::error!(self.logger, "login refused: {refusal}"; "user" => username);
                Outcome::Failed(refusal.to_string())
            }
            Err(refusal) if refusal.counts_as_failure() => {
                let reason = match self.count_failure(username, client_ip) {
                    Some(ban) => format!("{refusal}; {ban}"),
                    None => refusal.to_string(),
                };
                Outcome::Denied(reason)
            }
            Err(refusal) => Outcome::Denied(refusal.to_string()),
        };
        self.audit.record(AuditRecord {
            op: Op::Login,
            user: username,
            client_ip,
            path: "",
            bytes: None,
            duration: started.elapsed(),
            outcome,
        });
        decision
            .map(|()| Principal {
                username: username.to_string(),
            })
            .map_err(LoginRefusal::into_authentication_error)
    }

    fn name(&self) -> &str {
        "ferry"
    }
}

#[async_trait]
impl UserDetailProvider for FerryAuthenticator {
    type User = FerryUser;

    async fn provide_user_detail(
        &self,
        principal: &Principal,
    ) -> Result<FerryUser, UserDetailError> {
        let name = &principal.username;
        if self.anonymous_allowed
            && is_anonymous_name(name)
            && let Some(home) = self.directory.anonymous_home()
        {
            return Ok(FerryUser {
                name: ANONYMOUS_SESSION_NAME.to_string(),
                home: home.to_path_buf(),
                permissions: Permissions::READ_ONLY,
                anonymous: true,
            });
        }
        // Looked up again because libunftp passes only the name. A reload between the two
        // steps can remove or disable the user; then the login fails rather than using
        // stale rights.
        let users = self.directory.users();
        match users.get(name) {
            Some(record) if record.enabled => Ok(FerryUser {
                name: record.name.clone(),
                home: self.directory.root().join(&record.home),
                permissions: record.permissions,
                anonymous: false,
            }),
            Some(_) => Err(UserDetailError::Generic("account disabled".into())),
            None => Err(UserDetailError::UserNotFound {
                username: name.clone(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LoginFailurePolicy;
    use crate::logging::LogFormat;
    use crate::password::hash_password;
    use crate::users::UserRecord;
    use std::collections::HashMap;
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
            max_concurrent_logins: options.max_concurrent_logins,
            admin_bind: None,
            tls: Default::default(),
            login_timeout: Duration::from_secs(30),
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
            let result =
                UserDirectory::load(&users_file, dir.path(), Some(bad.into()), logger.clone());
            assert!(
                matches!(result, Err(UsersError::InvalidAnonymousHome { .. })),
                "{bad}"
            );
        }
    }
}
