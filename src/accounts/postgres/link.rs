//! This instance's link to the accounts database: the current connection (shared by the
//! follower, which reads accounts, and the login guard, which counts failures), whether the
//! database is reachable, and the cached view of the bans.

use super::bans::{self, BanCache, SharedFailure};
use super::error::DatabaseError;
use crate::config::{LoginFailurePolicy, UsersDatabase};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use tokio_postgres::Client;

/// The reply text of a login refused while the database is unreachable (with code 421).
pub const UNAVAILABLE_REPLY: &str = "Accounts unavailable, try again later";

#[derive(Debug)]
pub struct DatabaseLink {
    database: UsersDatabase,
    /// The connection while it works; None from the moment it is found broken until the
    /// follower has reconnected and reloaded the accounts.
    client: Mutex<Option<Arc<Client>>>,
    /// The bans in force across instances.
    bans: BanCache,
    logger: slog::Logger,
}

impl DatabaseLink {
    pub fn new(database: UsersDatabase, logger: slog::Logger) -> Arc<DatabaseLink> {
        Arc::new(DatabaseLink {
            database,
            client: Mutex::new(None),
            bans: BanCache::default(),
            logger,
        })
    }

    pub fn database(&self) -> &UsersDatabase {
        &self.database
    }

    pub fn logger(&self) -> &slog::Logger {
        &self.logger
    }

    pub fn bans(&self) -> &BanCache {
        &self.bans
    }

    /// Whether the accounts are current: connected, and reloaded since connecting.
    pub fn is_available(&self) -> bool {
        self.lock().is_some()
    }

    /// The connection, or [`DatabaseError::NotConnected`] while there is none.
    pub fn client(&self) -> Result<Arc<Client>, DatabaseError> {
        self.lock()
            .clone()
            .ok_or_else(|| DatabaseError::NotConnected {
                database: self.database.to_string(),
            })
    }

    /// The follower connected and reloaded the accounts: logins may go on.
    pub fn connected(&self, client: Arc<Client>) {
        *self.lock() = Some(client);
    }

    /// The connection broke (or could not be made). Says so once per outage, however many
    /// times the follower then fails to reconnect; returns whether this began an outage.
    pub fn lost(&self, error: &DatabaseError) -> bool {
        let began = self.lock().take().is_some();
        if began {
            slog::error!(self.logger, "accounts database unreachable: new logins get 421 until it is back; open sessions go on";
                "database" => %self.database, "error" => %error);
        }
        began
    }

    /// Counts a failed login from `ip` across instances.
    pub async fn record_failure(
        &self,
        ip: IpAddr,
        policy: &LoginFailurePolicy,
    ) -> Result<SharedFailure, DatabaseError> {
        let client = self.client()?;
        bans::record_failure(&client, &self.database, &self.bans, ip, policy).await
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Arc<Client>>> {
        self.client.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
