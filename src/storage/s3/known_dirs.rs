//! Directories a session has recently seen exist, so that a run of uploads into one directory
//! asks S3 about it once, not once per file.
//!
//! A directory is only a key prefix: asking whether it exists is a request (a HeadObject of its
//! marker, or a listing). A session that uploads 500 files into `reports/` would ask 500
//! times. Positive answers are kept for [`FRESH_FOR`]; the session forgets a directory it
//! removes or renames itself. Another session's RMD can go unseen for at most that long, and
//! costs nothing worse than an upload recreating the prefix (on object storage a key needs no
//! directory to exist).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a directory seen to exist counts as existing.
const FRESH_FOR: Duration = Duration::from_secs(5);
/// Directories remembered at most per session (bounded memory whatever the client does).
const MAX_REMEMBERED: usize = 256;

#[derive(Debug, Default)]
pub struct KnownDirs(Mutex<HashMap<String, Instant>>);

impl KnownDirs {
    /// Whether `prefix` was seen to exist within [`FRESH_FOR`].
    pub fn contains(&self, prefix: &str) -> bool {
        self.with(|seen| {
            seen.get(prefix)
                .is_some_and(|when| when.elapsed() < FRESH_FOR)
        })
    }

    pub fn remember(&self, prefix: &str) {
        self.with(|seen| {
            if seen.len() >= MAX_REMEMBERED {
                seen.retain(|_, when| when.elapsed() < FRESH_FOR);
                if seen.len() >= MAX_REMEMBERED {
                    seen.clear();
                }
            }
            seen.insert(prefix.to_owned(), Instant::now());
        })
    }

    /// Forgets `prefix` and every directory under it (RMD, a directory renamed away).
    pub fn forget(&self, prefix: &str) {
        self.with(|seen| seen.retain(|known, _| !known.starts_with(prefix)))
    }

    fn with<T>(&self, work: impl FnOnce(&mut HashMap<String, Instant>) -> T) -> T {
        let mut seen = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        work(&mut seen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembered_directories_are_known_until_forgotten_with_their_subdirectories() {
        let known = KnownDirs::default();
        known.remember("h/a/");
        known.remember("h/a/b/");
        known.remember("h/c/");
        assert!(known.contains("h/a/b/"));
        known.forget("h/a/");
        assert!(!known.contains("h/a/") && !known.contains("h/a/b/"));
        assert!(known.contains("h/c/"));
    }

    #[test]
    fn memory_stays_bounded() {
        let known = KnownDirs::default();
        for index in 0..10 * MAX_REMEMBERED {
            known.remember(&format!("d{index}/"));
        }
        assert!(known.0.lock().unwrap().len() <= MAX_REMEMBERED);
    }
}
