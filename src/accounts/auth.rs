//! Ferry's authenticator: verifies logins against the accounts and yields the session's user.

pub use crate::accounts::directory::{
    ANONYMOUS_USER_NAMES, USERS_FILE_POLL_INTERVAL, UserDirectory, is_anonymous_name,
};
use crate::accounts::limits::Limits;
use crate::accounts::login_guard::{FailureVerdict, LoginGuard};
use crate::accounts::password::PasswordVerifier;
use crate::accounts::postgres::link::UNAVAILABLE_REPLY;
use crate::accounts::users::Permissions;
use crate::config::Config;
use crate::observe::audit::AuditLog;
use crate::observe::record::{AuditRecord, Op, Outcome};
use async_trait::async_trait;
use std::fmt;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use unftp_core::auth::{
    AuthenticationError, Authenticator, ChannelEncryptionState, Credentials, Principal,
    UserDetailError, UserDetailProvider,
};

/// The name every anonymous session carries, whichever alias the client used.
pub const ANONYMOUS_SESSION_NAME: &str = "anonymous";

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

impl FerryUser {
    /// This user's quotas and bandwidth now: the account's as last reloaded, over `defaults`
    /// (anonymous sessions, and an account just removed, get the defaults).
    pub fn limits(&self, defaults: &Limits) -> Limits {
        let Some(directory) = &self.directory else {
            return *defaults;
        };
        directory
            .users()
            .get(&self.name)
            .map_or(*defaults, |record| record.limits.over(defaults))
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
    /// The accounts database is unreachable: the client gets 421 and may come back.
    #[error("accounts unavailable")]
    AccountsUnavailable,
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
                | LoginRefusal::AccountsUnavailable
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
            // libunftp answers 421 and closes (vendor patch auth-unavailable).
            LoginRefusal::AccountsUnavailable => AuthenticationError::with_source(
                "accounts unavailable",
                libunftp::auth::ServiceUnavailable(UNAVAILABLE_REPLY.to_owned()),
            ),
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
        let login_guard = config.login_failures.clone().map(|policy| {
            Arc::new(match directory.database_link() {
                Some(link) => LoginGuard::shared(policy, link.clone(), logger.clone()),
                None => LoginGuard::new(policy),
            })
        });
        FerryAuthenticator {
            directory,
            verifier: PasswordVerifier::new(config.max_concurrent_logins),
            login_guard,
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
        if !self.directory.is_available() {
            // The accounts may have changed unseen: decide nothing, hash nothing.
            return Err(LoginRefusal::AccountsUnavailable);
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
    async fn count_failure(&self, username: &str, client_ip: IpAddr) -> Option<String> {
        let guard = self.login_guard.as_ref()?;
        match guard.record(client_ip, Instant::now()).await {
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
            Err(refusal @ LoginRefusal::AccountsUnavailable) => {
                Outcome::Failed(refusal.to_string())
            }
            Err(refusal @ LoginRefusal::HomeUnavailable { .. }) => {
                slog::error!(self.logger, "login refused: {refusal}"; "user" => username);
                Outcome::Failed(refusal.to_string())
            }
            Err(refusal) if refusal.counts_as_failure() => {
                let reason = match self.count_failure(username, client_ip).await {
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
