//! Reloading from files while the server runs: on SIGHUP, and when a watched file changes.
//!
//! Polling rather than inotify, because inotify misses Kubernetes ConfigMap updates (a symlink
//! swap of the parent directory) and edits made from outside a Docker bind mount; one `stat` a
//! second per file is free.

use std::path::Path;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};
use tokio::sync::watch;

/// How often a watched file is examined. Polling rather than inotify, because inotify misses
/// Kubernetes ConfigMap updates (a symlink swap of the parent directory) and edits made from
/// outside a Docker bind mount; one `stat` a second is free.
pub const FILE_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// What identifies one version of a file on disk. An atomic save or a ConfigMap update changes
/// the inode; an in-place edit changes the modification time or size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileVersion {
    modified: Option<SystemTime>,
    len: u64,
    device: u64,
    inode: u64,
}

impl FileVersion {
    /// The version of the file at `path` now; None when it cannot be examined (e.g. missing).
    pub fn of(path: &Path) -> Option<FileVersion> {
        // `metadata` follows symlinks, so a swapped `..data` link shows up as a new inode.
        let meta = std::fs::metadata(path).ok()?;
        #[cfg(unix)]
        let (device, inode) = {
            use std::os::unix::fs::MetadataExt;
            (meta.dev(), meta.ino())
        };
        #[cfg(not(unix))]
        let (device, inode) = (0, 0);
        Some(FileVersion {
            modified: meta.modified().ok(),
            len: meta.len(),
            device,
            inode,
        })
    }
}

/// Counts reloads that succeeded and failed, so that callers (tests) can await one instead of
/// sleeping.
#[derive(Debug)]
pub struct ReloadCounters {
    succeeded: watch::Sender<u64>,
    failed: watch::Sender<u64>,
}

impl Default for ReloadCounters {
    fn default() -> Self {
        ReloadCounters {
            succeeded: watch::Sender::new(0),
            failed: watch::Sender::new(0),
        }
    }
}

impl ReloadCounters {
    pub fn record_success(&self) {
        self.succeeded.send_modify(|count| *count += 1);
    }

    pub fn record_failure(&self) {
        self.failed.send_modify(|count| *count += 1);
    }

    /// Successful reloads so far.
    pub fn generation(&self) -> u64 {
        *self.succeeded.borrow()
    }

    /// Reloads that failed (the previous state was kept).
    pub fn failed_reloads(&self) -> u64 {
        *self.failed.borrow()
    }

    /// Waits until at least `generation` reloads have succeeded.
    pub async fn wait_for_generation(&self, generation: u64) {
        // The sender lives in `self`, so the channel cannot close while we wait.
        let _ = self
            .succeeded
            .subscribe()
            .wait_for(|count| *count >= generation)
            .await;
    }

    /// Waits until at least `failures` reloads have failed.
    pub async fn wait_for_failed_reloads(&self, failures: u64) {
        let _ = self
            .failed
            .subscribe()
            .wait_for(|count| *count >= failures)
            .await;
    }
}

/// Runs `reload` on SIGHUP and whenever `changed` says the files changed (asked every
/// `interval`). `what` names the files in the warning given when SIGHUP cannot be subscribed to
/// ("the users file"). Must be called inside a tokio runtime; the SIGHUP handler is installed
/// before this returns. The task ends once `target` is dropped.
pub fn spawn_reloader<T, Changed, Reload>(
    target: &Arc<T>,
    what: &'static str,
    interval: Duration,
    logger: &slog::Logger,
    changed: Changed,
    reload: Reload,
) -> tokio::task::JoinHandle<()>
where
    T: Send + Sync + 'static,
    Changed: Fn(&T) -> bool + Send + 'static,
    Reload: Fn(&T) + Send + 'static,
{
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(hangups) => Some(hangups),
        Err(error) => {
            slog::warn!(logger, "cannot listen for SIGHUP; {what} is still reloaded when it changes";
                "error" => %error);
            None
        }
    };
    let target: Weak<T> = Arc::downgrade(target);
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let hangup = tokio::select! {
                _ = ticks.tick() => false,
                Some(()) = next_hangup(&mut hangups) => true,
            };
            let Some(target) = target.upgrade() else {
                return;
            };
            if hangup || changed(&target) {
                reload(&target);
            }
        }
    })
}

/// The next SIGHUP, or never when SIGHUP could not be subscribed to.
async fn next_hangup(hangups: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
    match hangups {
        Some(hangups) => hangups.recv().await,
        None => std::future::pending().await,
    }
}
