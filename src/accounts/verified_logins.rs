//! Recently verified logins, so that a client logging in again with the password it just used
//! does not pay for a second argon2id hash.
//!
//! Why this is sound:
//! - Only successes are remembered. A wrong password never matches an entry, so it always
//!   costs a full argon2id verification: guessing gets no cheaper, online or offline.
//! - An entry is a keyed BLAKE2b tag of (users-file generation, stored PHC hash, password)
//!   under a random key made at start and never written anywhere. The plaintext is not kept;
//!   a tag says nothing about the password without the key. A changed password changes the
//!   PHC string, and any reload of the users file changes the generation, so no entry survives
//!   a change of the accounts it was made for.
//! - The caller only consults it for a login that would succeed if the password is right (an
//!   enabled account, an allowed network); see `auth::FerryAuthenticator::check_login`.
//!   Otherwise a fast refusal would tell a guesser that the password was right.
//! - A hit is no faster for a guesser than a success, and a success is what they would learn.
//!
//! What it costs: someone who can read the server's memory can test guesses against the tags
//! of the last [`VERIFIED_LOGIN_TTL`] at BLAKE2 speed rather than argon2 speed. Such an attacker
//! also sees every password in plaintext as logins arrive, so this adds little; entries
//! expire after [`VERIFIED_LOGIN_TTL`] to keep the window short.

use argon2::password_hash::rand_core::{OsRng, RngCore};
use blake2::Blake2bMac;
use blake2::digest::consts::U32;
use blake2::digest::{KeyInit, Mac};
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How long a successful verification is remembered. Long enough for a sync tool's burst of
/// parallel sessions and for clients that reconnect per transfer; short enough that a
/// memory snapshot holds only recent logins.
pub const VERIFIED_LOGIN_TTL: Duration = Duration::from_secs(10 * 60);

/// Most entries kept (about 100 bytes each with the map's overhead, so ~1 MiB). When full,
/// expired entries are dropped; if none are, new successes are not remembered.
pub const MAX_VERIFIED_LOGINS: usize = 10_000;

/// A keyed BLAKE2b-256 tag of one (generation, hash, password) triple.
type Tag = [u8; 32];

/// The set of recently verified (hash, password) pairs; see the module docs.
pub struct VerifiedLogins {
    key: [u8; 32],
    /// When each tag was verified.
    entries: Mutex<HashMap<Tag, Instant>>,
}

impl std::fmt::Debug for VerifiedLogins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("VerifiedLogins").finish_non_exhaustive()
    }
}

impl Default for VerifiedLogins {
    fn default() -> Self {
        let mut key = [0u8; 32];
        OsRng.fill_bytes(&mut key);
        VerifiedLogins {
            key,
            entries: Mutex::new(HashMap::new()),
        }
    }
}

impl VerifiedLogins {
    /// Whether `password` was verified against `phc` within the TTL, under users-file
    /// `generation`.
    pub fn contains(&self, generation: u64, phc: &str, password: &str, now: Instant) -> bool {
        let tag = self.tag(generation, phc, password);
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries
            .get(&tag)
            .is_some_and(|verified| now.saturating_duration_since(*verified) < VERIFIED_LOGIN_TTL)
    }

    /// Remembers that `password` matched `phc` under users-file `generation`.
    pub fn insert(&self, generation: u64, phc: &str, password: &str, now: Instant) {
        let tag = self.tag(generation, phc, password);
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= MAX_VERIFIED_LOGINS {
            entries.retain(|_, verified| {
                now.saturating_duration_since(*verified) < VERIFIED_LOGIN_TTL
            });
        }
        if entries.len() < MAX_VERIFIED_LOGINS || entries.contains_key(&tag) {
            entries.insert(tag, now);
        }
    }

    fn tag(&self, generation: u64, phc: &str, password: &str) -> Tag {
        // The key is 32 bytes, within BLAKE2b's 64-byte limit, so this cannot fail.
        let Ok(mut mac) = <Blake2bMac<U32> as KeyInit>::new_from_slice(&self.key) else {
            return [0; 32];
        };
        // Lengths first, so that no two different triples feed the same bytes.
        mac.update(&generation.to_le_bytes());
        mac.update(&(phc.len() as u64).to_le_bytes());
        mac.update(phc.as_bytes());
        mac.update(password.as_bytes());
        mac.finalize().into_bytes().into()
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PHC: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$aGFzaA";

    #[test]
    fn only_the_same_password_hash_and_generation_match() {
        let logins = VerifiedLogins::default();
        let now = Instant::now();
        logins.insert(1, PHC, "right", now);
        assert!(logins.contains(1, PHC, "right", now));
        assert!(!logins.contains(1, PHC, "wrong", now));
        assert!(!logins.contains(1, "$argon2id$other", "right", now));
        assert!(!logins.contains(2, PHC, "right", now), "a reload forgets");
    }

    #[test]
    fn entries_expire_after_the_ttl() {
        let logins = VerifiedLogins::default();
        let then = Instant::now();
        logins.insert(0, PHC, "pw", then);
        assert!(logins.contains(0, PHC, "pw", then + VERIFIED_LOGIN_TTL / 2));
        assert!(!logins.contains(0, PHC, "pw", then + VERIFIED_LOGIN_TTL));
    }

    #[test]
    fn two_processes_tag_the_same_login_differently() {
        let (a, b) = (VerifiedLogins::default(), VerifiedLogins::default());
        assert_ne!(a.tag(0, PHC, "pw"), b.tag(0, PHC, "pw"));
    }

    #[test]
    fn a_full_table_drops_expired_entries_and_never_grows_past_its_bound() {
        let logins = VerifiedLogins::default();
        let then = Instant::now();
        for i in 0..MAX_VERIFIED_LOGINS {
            logins.insert(0, PHC, &i.to_string(), then);
        }
        logins.insert(0, PHC, "one more", then);
        assert_eq!(logins.len(), MAX_VERIFIED_LOGINS);
        assert!(!logins.contains(0, PHC, "one more", then));
        let later = then + VERIFIED_LOGIN_TTL;
        logins.insert(0, PHC, "after expiry", later);
        assert_eq!(logins.len(), 1);
        assert!(logins.contains(0, PHC, "after expiry", later));
    }
}
