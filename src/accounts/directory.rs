//! The loaded accounts, kept current while the server runs: from the users file (polled, and
//! on SIGHUP) or from PostgreSQL (followed by notification). Whichever the source, a reload
//! swaps in a whole new set of records and counts a generation; the authenticator, the
//! revocation of open sessions and the per-command permission checks above it are the same.

use crate::accounts::password::verify_password;
use crate::accounts::postgres::connection::connect;
use crate::accounts::postgres::follower::{self, Live};
use crate::accounts::postgres::link::DatabaseLink;
use crate::accounts::postgres::records::load_users;
use crate::accounts::postgres::schema::migrate;
use crate::accounts::users::{UsersError, UsersFile, validate_home};
use crate::config::UsersDatabase;
use crate::reload::{FileVersion, ReloadCounters};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

/// How often the reloader checks the users file for changes (see
/// [`crate::reload::FILE_POLL_INTERVAL`]).
pub const USERS_FILE_POLL_INTERVAL: Duration = crate::reload::FILE_POLL_INTERVAL;

/// User names that mean anonymous login when it is enabled. Compared ignoring ASCII case, as
/// FTP clients send `anonymous`, `Anonymous` or `FTP` (vsftpd accepts all of them too).
pub const ANONYMOUS_USER_NAMES: [&str; 2] = ["anonymous", "ftp"];

/// Whether `name` is one of [`ANONYMOUS_USER_NAMES`].
pub fn is_anonymous_name(name: &str) -> bool {
    ANONYMOUS_USER_NAMES
        .iter()
        .any(|alias| alias.eq_ignore_ascii_case(name))
}

/// Where the accounts come from.
#[derive(Debug)]
enum Source {
    File {
        path: PathBuf,
        /// The file version last read (successfully or not), so that the poller reloads once
        /// per change and a broken file is reported once rather than every second.
        last_seen_version: Mutex<Option<FileVersion>>,
    },
    Database {
        link: Arc<DatabaseLink>,
        /// The connection `open_database` made, handed to the follower when it starts.
        first_connection: Mutex<Option<Live>>,
        /// The follower, stopped when the directory is dropped (it holds a connection).
        follower: Mutex<Option<tokio::task::AbortHandle>>,
        /// How long failed logins count (expired rows are deleted on full reloads).
        failure_window: Duration,
    },
}

/// The accounts, reloadable while the server runs.
///
/// A reload swaps in a whole new [`UsersFile`]; a login in progress keeps the snapshot it
/// started with. Established sessions look their account up again before every operation
/// ([`crate::accounts::auth::FerryUser::standing`]), so a reload that changes permissions
/// applies to their next command, and the server closes those whose account it removed or
/// disabled.
#[derive(Debug)]
pub struct UserDirectory {
    source: Source,
    /// The server root, absolute; every home is beneath it.
    root: PathBuf,
    /// Absolute home of anonymous sessions; None when anonymous login is off.
    anonymous_home: Option<PathBuf>,
    /// The current accounts. `std` lock: held only to clone or replace the `Arc`.
    users: RwLock<Arc<UsersFile>>,
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
        let version = FileVersion::of(users_file);
        let users = UsersFile::load(users_file)?;
        let source = Source::File {
            path: users_file.to_path_buf(),
            last_seen_version: Mutex::new(version),
        };
        let directory = Self::new(source, users, root, anonymous, logger)?;
        slog::info!(directory.logger, "users file loaded";
            "file" => %users_file.display(), "users" => directory.users().len());
        Ok(Arc::new(directory))
    }

    /// Connects to the accounts database, creates or migrates its schema, and loads the
    /// accounts; [`UserDirectory::spawn_reloader`] then follows changes. `failure_window` is
    /// how long failed logins count (`failed_login_ban`). An unreachable database is an error
    /// here: an instance that never saw the accounts has none to serve.
    pub async fn open_database(
        database: &UsersDatabase,
        failure_window: Duration,
        root: &Path,
        anonymous: Option<PathBuf>,
        logger: slog::Logger,
    ) -> Result<Arc<UserDirectory>, UsersError> {
        let mut connection = connect(database).await?;
        let migrated = migrate(&mut connection.client, database).await?;
        if migrated > 0 {
            slog::info!(logger, "accounts schema migrated"; "database" => %database, "migrations" => migrated);
        }
        let (users, invalid) = load_users(&connection.client, database).await?;
        for row in invalid {
            slog::warn!(logger, "account left out: its row is invalid; its logins are refused";
                "database" => %database, "user" => row.user, "problem" => row.problem);
        }
        let link = DatabaseLink::new(database.clone(), logger.clone());
        let live = Live::from(connection);
        link.connected(live.client.clone());
        let source = Source::Database {
            link,
            first_connection: Mutex::new(Some(live)),
            follower: Mutex::new(None),
            failure_window,
        };
        let directory = Self::new(source, users, root, anonymous, logger)?;
        slog::info!(directory.logger, "accounts loaded from the database";
            "database" => %database, "users" => directory.users().len());
        Ok(Arc::new(directory))
    }

    fn new(
        source: Source,
        users: UsersFile,
        root: &Path,
        anonymous: Option<PathBuf>,
        logger: slog::Logger,
    ) -> Result<UserDirectory, UsersError> {
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
        let directory = UserDirectory {
            source,
            root,
            anonymous_home,
            users: RwLock::new(Arc::new(users)),
            reloads: ReloadCounters::default(),
            logger,
        };
        directory.warn_about_shadowed_accounts();
        Ok(directory)
    }

    /// Re-reads the users file. On error the previous users stay in force, a warning says
    /// why, and the error is returned. Accounts in a database are followed by the reloader
    /// instead; for them this does nothing.
    pub fn reload(&self) -> Result<(), UsersError> {
        let Source::File {
            path,
            last_seen_version,
        } = &self.source
        else {
            return Ok(());
        };
        // Record the version before reading: if the file changes during the read, the next
        // poll sees a different version and reads it again.
        *last_seen_version
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = FileVersion::of(path);
        match UsersFile::load(path) {
            Ok(users) => {
                let count = users.len();
                self.install(users);
                slog::info!(self.logger, "users file reloaded";
                    "file" => %path.display(), "users" => count);
                Ok(())
            }
            Err(error) => {
                self.reloads.record_failure();
                slog::warn!(self.logger, "users file not reloaded; keeping the previous users";
                    "file" => %path.display(), "error" => %error);
                Err(error)
            }
        }
    }

    /// Puts `users` in force and counts a generation.
    fn install(&self, users: UsersFile) {
        *self.users.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(users);
        self.warn_about_shadowed_accounts();
        self.reloads.record_success();
    }

    /// Follows the source while the directory lives. A users file is reloaded on SIGHUP and
    /// whenever its modification time, size or inode changes (checked every
    /// [`USERS_FILE_POLL_INTERVAL`]); the SIGHUP handler is installed before this returns.
    /// A database is followed by notification (see [`follower`]). Must be called inside a
    /// tokio runtime.
    pub fn spawn_reloader(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        match &self.source {
            Source::File { .. } => crate::reload::spawn_reloader(
                self,
                "the users file",
                USERS_FILE_POLL_INTERVAL,
                &self.logger,
                UserDirectory::file_changed,
                |directory| {
                    // Errors are logged by `reload`; the old users stay in force.
                    let _ = directory.reload();
                },
            ),
            Source::Database {
                link,
                first_connection,
                follower,
                failure_window,
            } => {
                let first = first_connection
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .take();
                let directory = Arc::downgrade(self);
                let install = Box::new(move |users: UsersFile| match directory.upgrade() {
                    Some(directory) => {
                        // The periodic full reload mostly finds nothing new: a new generation
                        // only for a change, so that the verified-login cache and the
                        // revocation pass (both keyed to generations) are not reset for nothing.
                        if *directory.users() != users {
                            let count = users.len();
                            directory.install(users);
                            slog::info!(directory.logger, "accounts reloaded from the database"; "users" => count);
                        }
                        true
                    }
                    None => false,
                });
                let task = follower::spawn(link.clone(), first, *failure_window, install);
                *follower.lock().unwrap_or_else(PoisonError::into_inner) =
                    Some(task.abort_handle());
                task
            }
        }
    }

    fn file_changed(&self) -> bool {
        match &self.source {
            Source::File {
                path,
                last_seen_version,
            } => {
                *last_seen_version
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    != FileVersion::of(path)
            }
            Source::Database { .. } => false,
        }
    }

    /// The current accounts (a snapshot: later reloads do not change it).
    pub fn users(&self) -> Arc<UsersFile> {
        Arc::clone(&self.users.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Whether the accounts can be trusted for a new login: always for a users file; for a
    /// database, while it is reachable (open sessions go on regardless).
    pub fn is_available(&self) -> bool {
        match &self.source {
            Source::File { .. } => true,
            Source::Database { link, .. } => link.is_available(),
        }
    }

    /// The database link, when the accounts are in PostgreSQL (failed logins are counted
    /// there too).
    pub fn database_link(&self) -> Option<&Arc<DatabaseLink>> {
        match &self.source {
            Source::File { .. } => None,
            Source::Database { link, .. } => Some(link),
        }
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

    /// The users file or the database, for log lines.
    pub fn source_name(&self) -> String {
        match &self.source {
            Source::File { path, .. } => path.display().to_string(),
            Source::Database { link, .. } => link.database().to_string(),
        }
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
                    "user" => &user.name, "source" => self.source_name());
            }
        }
    }
}

impl Drop for UserDirectory {
    fn drop(&mut self) {
        if let Source::Database { follower, .. } = &self.source
            && let Some(task) = follower
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take()
        {
            task.abort();
        }
    }
}
