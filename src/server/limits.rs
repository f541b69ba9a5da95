//! Session limits: at most N sessions in total and M per client IP; the rest get 421.

pub use crate::observe::record::LimitReached;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Counts live sessions; a [`SessionPermit`] is held for the life of each one.
#[derive(Debug)]
pub struct SessionLimiter {
    max_total: usize,
    max_per_ip: usize,
    live: Mutex<LiveSessions>,
}

#[derive(Debug, Default)]
struct LiveSessions {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

impl SessionLimiter {
    pub fn new(max_total: usize, max_per_ip: usize) -> Arc<Self> {
        Arc::new(SessionLimiter {
            max_total,
            max_per_ip,
            live: Mutex::new(LiveSessions::default()),
        })
    }

    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Result<SessionPermit, LimitReached> {
        let ip = ip.to_canonical();
        let mut live = self
            .live
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if live.total >= self.max_total {
            return Err(LimitReached::Total);
        }
        let from_ip = live.per_ip.entry(ip).or_insert(0);
        if *from_ip >= self.max_per_ip {
            return Err(LimitReached::PerIp);
        }
        *from_ip += 1;
        live.total += 1;
        Ok(SessionPermit {
            limiter: self.clone(),
            ip,
        })
    }

    pub fn live_sessions(&self) -> usize {
        self.live.lock().map(|live| live.total).unwrap_or(0)
    }
}

/// Releases its session's place when dropped.
#[derive(Debug)]
pub struct SessionPermit {
    limiter: Arc<SessionLimiter>,
    ip: IpAddr,
}

impl Drop for SessionPermit {
    fn drop(&mut self) {
        let mut live = self
            .limiter
            .live
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        live.total -= 1;
        if let Some(from_ip) = live.per_ip.get_mut(&self.ip) {
            *from_ip -= 1;
            if *from_ip == 0 {
                live.per_ip.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_apply_in_total_and_per_ip_and_permits_release_their_place() {
        let limiter = SessionLimiter::new(3, 2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let first = limiter.try_acquire(a).unwrap();
        let _second = limiter.try_acquire(a).unwrap();
        assert_eq!(limiter.try_acquire(a).unwrap_err(), LimitReached::PerIp);
        let _third = limiter.try_acquire(b).unwrap();
        assert_eq!(limiter.try_acquire(b).unwrap_err(), LimitReached::Total);
        drop(first);
        let _reused = limiter.try_acquire(a).expect("a released place is reused");
        assert_eq!(limiter.live_sessions(), 3);
    }

    #[test]
    fn v4_mapped_addresses_count_as_their_ipv4_address() {
        let limiter = SessionLimiter::new(10, 1);
        let _v4 = limiter.try_acquire("127.0.0.1".parse().unwrap()).unwrap();
        assert!(
            limiter
                .try_acquire("::ffff:127.0.0.1".parse().unwrap())
                .is_err()
        );
    }
}
