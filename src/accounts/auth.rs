//! Ferry's authenticator: verifies logins against the users file and yields the session's user.

use crate::accounts::login_guard::{FailureVerdict, LoginGuard};
use crate::accounts::password::{PasswordVerifier, verify_password};
use crate::accounts::users::{Permissions, UsersError, UsersFile, validate_home};
use crate::config::Config;
use crate::observe::audit::AuditLog;
use crate::observe::record::{AuditRecord, Op, Outcome};
use crate::reload::{FileVersion, ReloadCounters};
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

/// How often the reloader checks the users file for changes (see
/// [`crate::reload::FILE_POLL_INTERVAL`]).
pub const USERS_FILE_POLL_INTERVAL: Duration = crate::reload::FILE_POLL_INTERVAL;

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
///
/// libunftp keeps this value for the whole session, so it is a snapshot of the account at login.
/// What the user may do *now* is [`FerryUser::standing`], which looks at the users file as last
/// reloaded: a session opened before the account was disabled, removed or made read-only must
/// not keep rights it no longer has.
#[derive(Clone)]
pub struct FerryUser {
    pub name: String,
    /// Absolute path of the home directory (beneath the server root).
    pub home: PathBuf,
    /// The permissions at login; see [`FerryUser::standing`] for the current ones.
    pub permissions: Permissions,
    pub anonymous: bool,
    /// The accounts this user logged in from; None for anonymous sessions, whose rights come
    /// from the configuration (not reloaded) rather than the users file.
    directory: Option<Arc<UserDirectory>>,
}

/// Why an open session's account no longer lets it work. The session is closed with 421 when
/// the users file is reloaded; until then every file operation is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Revoked {
    #[error("account removed")]
    Removed,
    #[error("account disabled")]
    Disabled,
    /// The name now has another home: the session's is no longer this account's.
    #[error("account home changed")]
    HomeChanged,
    #[error("client network no longer allowed")]
    NetworkNotAllowed,
}

impl FerryUser {
    /// A user whose rights are fixed for the whole session, not looked up in the users file
    /// (anonymous sessions, whose rights come from the configuration).
    pub fn with_fixed_rights(name: &str, home: PathBuf, permissions: Permissions) -> FerryUser {
        FerryUser {
            name: name.to_string(),
            home,
            permissions,
            anonymous: false,
            directory: None,
        }
    }

    /// What this user, connected from `client_ip`, may do now: the permissions of the account
    /// in the users file as last reloaded, or why the account no longer admits the session.
    /// Cheap (a read lock, an `Arc` clone and a map lookup): asked before every operation.
    pub fn standing(&self, client_ip: IpAddr) -> Result<Permissions, Revoked> {
        let Some(directory) = &self.directory else {
            return Ok(self.permissions);
        };
        let users = directory.users();
        let record = users.get(&self.name).ok_or(Revoked::Removed)?;
        if !record.enabled {
            return Err(Revoked::Disabled);
        }
        if directory.root().join(&record.home) != self.home {
            return Err(Revoked::HomeChanged);
        }
        if !record.allows_ip(client_ip) {
            return Err(Revoked::NetworkNotAllowed);
        }
        Ok(record.permissions)
    }
}

impl fmt::Debug for FerryUser {
    // By hand: the directory would print every account of the users file.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FerryUser")
            .field("name", &self.name)
            .field("home", &self.home)
            .field("permissions", &self.permissions)
            .field("anonymous", &self.anonymous)
            .finish_non_exhaustive()
    }
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
/// started with. Established sessions look their account up again before every operation
/// ([`FerryUser::standing`]), so a reload that changes permissions applies to their next
/// command, and the server closes those whose account it removed or disabled.
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
    /// Homes are directories to create at login; not when they are key prefixes in a bucket,
    /// which exist as soon as a key is written under them.
    homes_on_disk: bool,
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
            homes_on_disk: config.bucket.is_none(),
            audit,
            logger,
        }
    }

    /// Creates a home directory on disk at login, so that a missing one refuses the login with
    /// a clear reason rather than failing every command after it.
    async fn ensure_home(&self, home: &Path) -> Result<(), LoginRefusal> {
        if self.homes_on_disk {
            create_home(home).await
        } else {
            Ok(())
        }
    }

    /// Decides one login. Every path through here that looks at a password spends exactly
    /// one argon2 verification, so the reply time does not tell a guesser which check failed;
    /// the one exception is a successful login repeated within minutes with the same password
    /// (`crate::accounts::verified_logins`), which only someone who knows the password can trigger.
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
            return self.ensure_home(home).await;
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
        self.ensure_home(&self.directory.root().join(&record.home))
            .await
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
            // The authenticator does not see the session; HOST is in the records that follow.
            host: None,
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
                anonymous: true,
                ..FerryUser::with_fixed_rights(
                    ANONYMOUS_SESSION_NAME,
                    home.to_path_buf(),
                    Permissions::READ_ONLY,
                )
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
                directory: Some(Arc::clone(&self.directory)),
            }),
            Some(_) => Err(UserDetailError::Generic("account disabled".into())),
            None => Err(UserDetailError::UserNotFound {
                username: name.clone(),
            }),
        }
    }
}

#[cfg(test)]
mod tests;
