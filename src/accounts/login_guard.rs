//! Failed-login policy: counts failed logins per client IP and bans an IP that fails too often.
//! In memory for one instance; with accounts in PostgreSQL, in the database for all of them
//! ([`crate::accounts::postgres::bans`]).

use crate::accounts::postgres::link::DatabaseLink;
use crate::config::LoginFailurePolicy;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Most client IPs tracked at once. Each entry is a few dozen bytes, so the table stays under
/// ~10 MiB however many addresses an attacker uses; expired entries are evicted to make room.
pub const MAX_TRACKED_IPS: usize = 100_000;

/// Fallback ban length when the configured one overflows `Instant` (about a century).
const LONGEST_REPRESENTABLE_BAN: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

/// What a failed login did to its IP's standing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureVerdict {
    /// Counted; the IP may keep trying. `failures` so far in the current window.
    Counted { failures: u32 },
    /// This failure reached the limit: the IP is now refused for `ban`.
    BanStarted { failures: u32, ban: Duration },
    /// The table is full of live entries, so this IP is not tracked (see [`MAX_TRACKED_IPS`]).
    NotTracked,
}

/// The failures of one IP within the current window.
#[derive(Debug, Clone, Copy)]
struct FailureWindow {
    /// When the first failure of this window happened; the window lasts `policy.ban`.
    started: Instant,
    failures: u32,
    /// Set when `failures` reached `max_attempts`: refused until then.
    banned_until: Option<Instant>,
}

impl FailureWindow {
    /// Whether this entry no longer affects anything at `now` and can be forgotten.
    fn expired(&self, now: Instant, window: Duration) -> bool {
        match self.banned_until {
            Some(until) => now >= until,
            None => now.duration_since(self.started) >= window,
        }
    }
}

/// Per-IP failed-login counter and ban list.
///
/// Failures are counted in a fixed window of `ban` length starting at an IP's first failure;
/// reaching `max_attempts` bans the IP for `ban`. A successful login does not reset the count:
/// otherwise an attacker holding one valid account could interleave its logins to keep
/// guessing other accounts' passwords forever.
#[derive(Debug)]
pub struct LoginGuard {
    policy: LoginFailurePolicy,
    /// Keyed by the canonical IP, so `::ffff:a.b.c.d` and `a.b.c.d` are one client. With a
    /// shared database, only failures it could not record are counted here.
    windows: Mutex<HashMap<IpAddr, FailureWindow>>,
    /// The database that counts failures and holds bans for every instance; None: this
    /// instance alone.
    shared: Option<Arc<DatabaseLink>>,
    logger: Option<slog::Logger>,
}

impl LoginGuard {
    pub fn new(policy: LoginFailurePolicy) -> Self {
        LoginGuard {
            policy,
            windows: Mutex::new(HashMap::new()),
            shared: None,
            logger: None,
        }
    }

    /// A guard whose failures and bans are rows in the accounts database, shared by every
    /// instance using it.
    pub fn shared(
        policy: LoginFailurePolicy,
        link: Arc<DatabaseLink>,
        logger: slog::Logger,
    ) -> Self {
        LoginGuard {
            shared: Some(link),
            logger: Some(logger),
            ..LoginGuard::new(policy)
        }
    }

    pub fn policy(&self) -> &LoginFailurePolicy {
        &self.policy
    }

    /// Whether `ip` is banned at `now` (on any instance, with a shared database: as this
    /// instance last heard, which is within moments of the ban).
    pub fn is_banned(&self, ip: IpAddr, now: Instant) -> bool {
        if let Some(link) = &self.shared
            && link.bans().is_banned(ip, now)
        {
            return true;
        }
        let windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        windows
            .get(&ip.to_canonical())
            .and_then(|window| window.banned_until)
            .is_some_and(|until| now < until)
    }

    /// Counts a failed login from `ip`: in the shared database when there is one, else (or
    /// when the database cannot be reached) here.
    pub async fn record(&self, ip: IpAddr, now: Instant) -> FailureVerdict {
        let Some(link) = &self.shared else {
            return self.record_failure(ip, now);
        };
        match link.record_failure(ip.to_canonical(), &self.policy).await {
            Ok(shared) if shared.ban_started => FailureVerdict::BanStarted {
                failures: shared.failures,
                ban: self.policy.ban,
            },
            Ok(shared) => FailureVerdict::Counted {
                failures: shared.failures,
            },
            Err(error) => {
                if let Some(logger) = &self.logger {
                    slog::warn!(logger, "could not count a failed login in the database; counted on this instance only";
                        "client_ip" => %ip, "error" => %error);
                }
                self.record_failure(ip, now)
            }
        }
    }

    /// Counts a failed login from `ip` at `now` on this instance.
    pub fn record_failure(&self, ip: IpAddr, now: Instant) -> FailureVerdict {
        let ip = ip.to_canonical();
        let window_length = self.policy.ban;
        // The lock only guards map updates (no I/O, no await), and a panic elsewhere cannot
        // leave a window half-updated, so a poisoned lock is safe to keep using.
        let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        if !windows.contains_key(&ip) && windows.len() >= MAX_TRACKED_IPS {
            windows.retain(|_, window| !window.expired(now, window_length));
            if windows.len() >= MAX_TRACKED_IPS {
                // Evicting a live entry could lift a ban; leaving one IP untracked cannot.
                return FailureVerdict::NotTracked;
            }
        }
        let fresh = FailureWindow {
            started: now,
            failures: 0,
            banned_until: None,
        };
        let window = windows.entry(ip).or_insert(fresh);
        if window.expired(now, window_length) {
            *window = fresh;
        }
        window.failures = window.failures.saturating_add(1);
        if window.banned_until.is_none() && window.failures >= self.policy.max_attempts {
            // A ban too long to represent as an Instant lasts as long as we can represent.
            let until = now
                .checked_add(self.policy.ban)
                .or_else(|| now.checked_add(LONGEST_REPRESENTABLE_BAN))
                .unwrap_or(now);
            window.banned_until = Some(until);
            FailureVerdict::BanStarted {
                failures: window.failures,
                ban: self.policy.ban,
            }
        } else {
            FailureVerdict::Counted {
                failures: window.failures,
            }
        }
    }

    /// How many IPs are tracked (for tests and metrics).
    pub fn tracked_ips(&self) -> usize {
        self.windows
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(max_attempts: u32, ban_secs: u64) -> LoginGuard {
        LoginGuard::new(LoginFailurePolicy {
            max_attempts,
            ban: Duration::from_secs(ban_secs),
        })
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    #[test]
    fn ip_is_banned_after_max_attempts_and_released_after_the_ban() {
        let guard = guard(3, 60);
        let start = Instant::now();
        assert_eq!(
            guard.record_failure(ip("192.0.2.1"), start),
            FailureVerdict::Counted { failures: 1 }
        );
        assert_eq!(
            guard.record_failure(ip("192.0.2.1"), start),
            FailureVerdict::Counted { failures: 2 }
        );
        assert!(!guard.is_banned(ip("192.0.2.1"), start));
        assert_eq!(
            guard.record_failure(ip("192.0.2.1"), start),
            FailureVerdict::BanStarted {
                failures: 3,
                ban: Duration::from_secs(60)
            }
        );
        assert!(guard.is_banned(ip("192.0.2.1"), start + Duration::from_secs(59)));
        assert!(
            !guard.is_banned(ip("192.0.2.2"), start),
            "other IPs unaffected"
        );
        assert!(!guard.is_banned(ip("192.0.2.1"), start + Duration::from_secs(60)));
        assert_eq!(
            guard.record_failure(ip("192.0.2.1"), start + Duration::from_secs(60)),
            FailureVerdict::Counted { failures: 1 },
            "a new window starts once the ban is over"
        );
    }

    #[test]
    fn failures_older_than_the_window_are_forgotten() {
        let guard = guard(2, 10);
        let start = Instant::now();
        guard.record_failure(ip("192.0.2.1"), start);
        assert_eq!(
            guard.record_failure(ip("192.0.2.1"), start + Duration::from_secs(11)),
            FailureVerdict::Counted { failures: 1 }
        );
    }

    #[test]
    fn ipv4_mapped_ipv6_counts_as_the_same_client() {
        let guard = guard(2, 10);
        let now = Instant::now();
        guard.record_failure(ip("192.0.2.1"), now);
        guard.record_failure(ip("::ffff:192.0.2.1"), now);
        assert!(guard.is_banned(ip("192.0.2.1"), now));
    }

    #[test]
    fn table_is_bounded_and_evicts_expired_entries_first() {
        let guard = guard(5, 10);
        let start = Instant::now();
        for n in 0..MAX_TRACKED_IPS as u32 {
            guard.record_failure(IpAddr::from(n.to_be_bytes()), start);
        }
        assert_eq!(guard.tracked_ips(), MAX_TRACKED_IPS);
        assert_eq!(
            guard.record_failure(ip("2001:db8::1"), start),
            FailureVerdict::NotTracked,
            "live entries are never evicted"
        );
        let later = start + Duration::from_secs(11);
        assert_eq!(
            guard.record_failure(ip("2001:db8::1"), later),
            FailureVerdict::Counted { failures: 1 }
        );
        assert_eq!(guard.tracked_ips(), 1);
    }
}
