//! Failed logins counted across instances: one row per client address in
//! `ferry_login_failures`, with the same window and ban as the in-memory guard
//! ([`crate::accounts::login_guard`]), computed by the database's clock so that instances
//! whose clocks differ still agree. Each instance keeps a cached view of the bans in force,
//! filled by a full read at (re)connect and kept current by `NOTIFY ferry_bans`, so that the
//! check at connect is a map lookup.

use super::connection::query;
use super::error::DatabaseError;
use crate::config::{LoginFailurePolicy, UsersDatabase};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio_postgres::Client;

/// Counts one failure of `$1`: a new window when the last one is over (its ban ended, or its
/// `$3` seconds passed without a ban), a ban of `$3` seconds when the count reaches `$2`.
/// Every SET expression sees the row as it was, so `expired` is the old window's.
const RECORD_FAILURE: &str = "
INSERT INTO ferry_login_failures AS f (ip, window_started, failures, banned_until)
VALUES ($1, now(), 1, CASE WHEN 1 >= $2::int4 THEN now() + make_interval(secs => $3::float8) END)
ON CONFLICT (ip) DO UPDATE SET
    window_started = CASE WHEN (CASE WHEN f.banned_until IS NOT NULL THEN now() >= f.banned_until
            ELSE now() >= f.window_started + make_interval(secs => $3::float8) END)
        THEN now() ELSE f.window_started END,
    failures = CASE WHEN (CASE WHEN f.banned_until IS NOT NULL THEN now() >= f.banned_until
            ELSE now() >= f.window_started + make_interval(secs => $3::float8) END)
        THEN 1 ELSE f.failures + 1 END,
    banned_until = CASE
        WHEN (CASE WHEN f.banned_until IS NOT NULL THEN now() >= f.banned_until
            ELSE now() >= f.window_started + make_interval(secs => $3::float8) END)
        THEN (CASE WHEN 1 >= $2::int4 THEN now() + make_interval(secs => $3::float8) END)
        WHEN f.banned_until IS NULL AND f.failures + 1 >= $2::int4
        THEN now() + make_interval(secs => $3::float8)
        ELSE f.banned_until END
RETURNING failures, extract(epoch FROM banned_until - now())::float8 AS ban_left";

/// What a failure recorded in the database did to its address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharedFailure {
    /// Failures in the current window, counted by every instance.
    pub failures: u32,
    /// Whether this failure started the ban (the one that reached `max_attempts`).
    pub ban_started: bool,
}

/// Counts a failed login from `ip` in the database; a ban it starts is also in `cache` at
/// once (the other instances learn of it by NOTIFY).
pub async fn record_failure(
    client: &Client,
    database: &UsersDatabase,
    cache: &BanCache,
    ip: IpAddr,
    policy: &LoginFailurePolicy,
) -> Result<SharedFailure, DatabaseError> {
    let max_attempts = i32::try_from(policy.max_attempts).unwrap_or(i32::MAX);
    let ban_secs = policy.ban.as_secs_f64();
    let row = query(
        database,
        "count a failed login",
        client.query_one(RECORD_FAILURE, &[&ip.to_string(), &max_attempts, &ban_secs]),
    )
    .await?;
    let unreadable = |source| DatabaseError::Query {
        database: database.to_string(),
        what: "count a failed login",
        source,
    };
    let failures: i32 = row.try_get("failures").map_err(unreadable)?;
    let ban_left: Option<f64> = row.try_get("ban_left").map_err(unreadable)?;
    let failures = u32::try_from(failures).unwrap_or(0);
    if let Some(left) = ban_left {
        cache.ban(ip, seconds(left), Instant::now());
    }
    Ok(SharedFailure {
        failures,
        ban_started: ban_left.is_some() && failures == policy.max_attempts,
    })
}

/// The bans in force, with the time each has left; forgets windows that are over.
pub async fn load_bans(
    client: &Client,
    database: &UsersDatabase,
    policy_ban: Duration,
) -> Result<Vec<(IpAddr, Duration)>, DatabaseError> {
    query(
        database,
        "forget expired login failures",
        client.execute(
            "DELETE FROM ferry_login_failures WHERE coalesce(banned_until, \
             window_started + make_interval(secs => $1::float8)) <= now()",
            &[&policy_ban.as_secs_f64()],
        ),
    )
    .await?;
    let rows = query(
        database,
        "read the bans",
        client.query(
            "SELECT ip, extract(epoch FROM banned_until - now())::float8 AS ban_left \
             FROM ferry_login_failures WHERE banned_until > now()",
            &[],
        ),
    )
    .await?;
    Ok(rows
        .iter()
        .filter_map(|row| {
            let ip: String = row.try_get("ip").ok()?;
            let left: f64 = row.try_get("ban_left").ok()?;
            Some((ip.parse().ok()?, seconds(left)))
        })
        .collect())
}

/// A ban's time left as the database reported it; nonsense (negative, NaN) counts as none.
fn seconds(left: f64) -> Duration {
    Duration::try_from_secs_f64(left).unwrap_or(Duration::ZERO)
}

/// This instance's view of the bans in force across all instances.
#[derive(Debug, Default)]
pub struct BanCache {
    /// Banned address (canonical) and when its ban ends on this machine's clock.
    until: Mutex<HashMap<IpAddr, Instant>>,
}

impl BanCache {
    pub fn is_banned(&self, ip: IpAddr, now: Instant) -> bool {
        self.lock()
            .get(&ip.to_canonical())
            .is_some_and(|until| now < *until)
    }

    /// Records a ban of `ip` with `left` to run.
    pub fn ban(&self, ip: IpAddr, left: Duration, now: Instant) {
        let Some(until) = now.checked_add(left) else {
            return;
        };
        let mut bans = self.lock();
        bans.retain(|_, until| now < *until);
        let entry = bans.entry(ip.to_canonical()).or_insert(until);
        *entry = (*entry).max(until);
    }

    /// Replaces the view with `bans` (a full read from the database).
    pub fn replace(&self, bans: Vec<(IpAddr, Duration)>, now: Instant) {
        let fresh: HashMap<IpAddr, Instant> = bans
            .into_iter()
            .filter_map(|(ip, left)| Some((ip.to_canonical(), now.checked_add(left)?)))
            .collect();
        *self.lock() = fresh;
    }

    /// Applies a `ferry_bans` notification, `IP SECONDS_LEFT`; ignores a malformed one.
    pub fn apply_notification(&self, payload: &str, now: Instant) {
        let parsed = payload.split_once(' ').and_then(|(ip, left)| {
            let ip: IpAddr = ip.parse().ok()?;
            let left: f64 = left.trim().parse().ok()?;
            Some((ip, seconds(left)))
        });
        if let Some((ip, left)) = parsed {
            self.ban(ip, left, now);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Instant>> {
        // Only map updates happen under the lock; a panic cannot leave one half done.
        self.until.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_ban_until_the_time_left_and_bad_ones_are_ignored() {
        let cache = BanCache::default();
        let now = Instant::now();
        cache.apply_notification("192.0.2.1 30.5", now);
        cache.apply_notification("not-an-ip 30", now);
        cache.apply_notification("192.0.2.2 NaN", now);
        assert!(cache.is_banned("192.0.2.1".parse().expect("ip"), now));
        assert!(cache.is_banned("::ffff:192.0.2.1".parse().expect("ip"), now));
        assert!(!cache.is_banned(
            "192.0.2.1".parse().expect("ip"),
            now + Duration::from_secs(31)
        ));
        assert!(!cache.is_banned("192.0.2.2".parse().expect("ip"), now));
        cache.replace(Vec::new(), now);
        assert!(!cache.is_banned("192.0.2.1".parse().expect("ip"), now));
    }
}
