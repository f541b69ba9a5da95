//! Keeps this instance's accounts and bans in step with the database: `LISTEN` for changes
//! (a trigger on `ferry_users` notifies on every change, one on `ferry_login_failures` on every
//! ban), a full reload every [`FULL_RELOAD_EVERY`] in case a notification was lost, and after a
//! broken connection, reconnects with backoff and a full reload before logins resume.

use super::bans::load_bans;
use super::connection::{Connection, connect, query};
use super::error::DatabaseError;
use super::link::DatabaseLink;
use super::records::{InvalidRow, load_users};
use super::schema::{BANS_CHANNEL, USERS_CHANNEL};
use crate::accounts::users::UsersFile;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_postgres::Client;

/// The fallback for a lost notification, and the health check of an idle connection: every
/// 30 s a full reload (one query of all accounts, one of the bans).
pub const FULL_RELOAD_EVERY: Duration = Duration::from_secs(30);
/// The first wait before reconnecting; doubled after each failure up to [`LONGEST_RETRY`].
const FIRST_RETRY: Duration = Duration::from_millis(200);
/// The longest wait between reconnects: logins resume at most this long after the database
/// is back.
const LONGEST_RETRY: Duration = Duration::from_secs(2);

/// Takes a freshly loaded set of accounts; returns false when nobody needs them any more
/// (the directory is gone), which ends the follower.
pub type Install = Box<dyn FnMut(UsersFile) -> bool + Send>;

/// Follows the database until `install` says the accounts are no longer wanted. `first` is a
/// connection already made (at start, and already the link's), used before any new one. `failure_window` is how long
/// a failed login counts (older rows are deleted on each full reload).
pub fn spawn(
    link: Arc<DatabaseLink>,
    first: Option<Live>,
    failure_window: Duration,
    install: Install,
) -> tokio::task::JoinHandle<()> {
    let mut follower = Follower {
        link,
        failure_window,
        install,
        last_invalid: Vec::new(),
        outage: false,
    };
    tokio::spawn(async move { follower.run(first).await })
}

struct Follower {
    link: Arc<DatabaseLink>,
    failure_window: Duration,
    install: Install,
    /// The rows left out at the last reload, so each broken row is reported once.
    last_invalid: Vec<InvalidRow>,
    /// Set while the database is unreachable, so that its return is logged once.
    outage: bool,
}

/// A connection as the follower and the link share it.
#[derive(Debug)]
pub struct Live {
    pub client: Arc<Client>,
    pub notifications: tokio::sync::mpsc::UnboundedReceiver<tokio_postgres::Notification>,
}

impl From<Connection> for Live {
    fn from(connection: Connection) -> Self {
        Live {
            client: Arc::new(connection.client),
            notifications: connection.notifications,
        }
    }
}

/// Why following one connection ended.
enum Ended {
    /// The directory is gone: stop.
    Unwanted,
    /// The connection broke: reconnect.
    Lost(DatabaseError),
}

impl Follower {
    async fn run(&mut self, first: Option<Live>) {
        let mut next = first;
        let mut retry = FIRST_RETRY;
        loop {
            let connection = match next.take() {
                Some(connection) => connection,
                None => match connect(self.link.database()).await {
                    Ok(connection) => Live::from(connection),
                    Err(error) => {
                        self.outage |= self.link.lost(&error);
                        tokio::time::sleep(retry).await;
                        retry = (retry * 2).min(LONGEST_RETRY);
                        continue;
                    }
                },
            };
            retry = FIRST_RETRY;
            match self.follow(connection).await {
                Ended::Unwanted => return,
                Ended::Lost(error) => self.outage |= self.link.lost(&error),
            }
        }
    }

    /// Listens on `connection`, reloads everything, then applies changes as they come.
    async fn follow(&mut self, connection: Live) -> Ended {
        let Live {
            client,
            mut notifications,
        } = connection;
        let link = self.link.clone();
        let database = link.database();
        let listen = format!("LISTEN {USERS_CHANNEL}; LISTEN {BANS_CHANNEL}");
        if let Err(error) = query(
            database,
            "listen for changes",
            client.batch_execute(&listen),
        )
        .await
        {
            return Ended::Lost(error);
        }
        if let Err(ended) = self.reload_everything(&client).await {
            return ended;
        }
        self.link.connected(client.clone());
        if std::mem::take(&mut self.outage) {
            slog::info!(self.link_logger(), "accounts database reachable again; logins resume";
                "database" => %database);
        }
        let start = tokio::time::Instant::now() + FULL_RELOAD_EVERY;
        let mut full_reloads = tokio::time::interval_at(start, FULL_RELOAD_EVERY);
        loop {
            let reload = tokio::select! {
                notification = notifications.recv() => {
                    let Some(notification) = notification else {
                        return Ended::Lost(DatabaseError::ConnectionClosed {
                            database: database.to_string(),
                        });
                    };
                    // Apply every notification already here, then reload the accounts once.
                    let mut users_changed = false;
                    let mut next = Some(notification);
                    while let Some(notification) = next {
                        if notification.channel() == BANS_CHANNEL {
                            self.link.bans().apply_notification(notification.payload(), Instant::now());
                        } else {
                            users_changed = true;
                        }
                        next = notifications.try_recv().ok();
                    }
                    if users_changed {
                        self.reload_users(&client).await
                    } else {
                        Ok(())
                    }
                }
                _ = full_reloads.tick() => self.reload_everything(&client).await,
            };
            if let Err(ended) = reload {
                return ended;
            }
        }
    }

    async fn reload_everything(&mut self, client: &Client) -> Result<(), Ended> {
        let bans = load_bans(client, self.link.database(), self.failure_window)
            .await
            .map_err(Ended::Lost)?;
        self.link.bans().replace(bans, Instant::now());
        self.reload_users(client).await
    }

    async fn reload_users(&mut self, client: &Client) -> Result<(), Ended> {
        let (users, invalid) = load_users(client, self.link.database())
            .await
            .map_err(Ended::Lost)?;
        if invalid != self.last_invalid {
            for row in &invalid {
                slog::warn!(self.link_logger(), "account left out: its row is invalid; its logins are refused";
                    "database" => %self.link.database(), "user" => &row.user, "problem" => &row.problem);
            }
            self.last_invalid = invalid;
        }
        if (self.install)(users) {
            Ok(())
        } else {
            Err(Ended::Unwanted)
        }
    }

    fn link_logger(&self) -> &slog::Logger {
        self.link.logger()
    }
}
