//! What each account's home holds (bytes and files), kept so that quotas are checked without
//! walking the home: measured once (the first time a quota needs it, or by `ferry user
//! rescan`), then moved by Ferry's own operations.
//!
//! Where it is kept follows the accounts: with PostgreSQL, in `ferry_usage` rows (shared by
//! every instance); with a users file, one small file per account in the usage directory,
//! each change a read-modify-write under an exclusive lock so that the server and `ferry user
//! rescan` never lose each other's updates. Uploads still in progress are not stored: each
//! process counts them ([`InFlight`]) so that two sessions of one account cannot both spend
//! the last of its quota.

use crate::accounts::postgres::connection::query;
use crate::accounts::postgres::error::DatabaseError;
use crate::accounts::postgres::link::DatabaseLink;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// The bytes and files in a home.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub bytes: u64,
    pub files: u64,
}

/// A change to a home's usage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UsageChange {
    pub bytes: i64,
    pub files: i64,
}

impl Usage {
    fn changed(self, change: UsageChange) -> Usage {
        Usage {
            bytes: self.bytes.saturating_add_signed(change.bytes),
            files: self.files.saturating_add_signed(change.files),
        }
    }
}

/// Why the stored usage could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error("usage file {}: {source}", path.display())]
    File { path: PathBuf, source: io::Error },
    #[error("usage file {}: {problem}", path.display())]
    Corrupt { path: PathBuf, problem: String },
    #[error(transparent)]
    Database(#[from] DatabaseError),
}

/// Where usage is stored.
#[derive(Debug)]
enum Backend {
    Files(PathBuf),
    Database(Arc<DatabaseLink>),
}

/// The stored usage of every account, and the uploads in progress in this process.
#[derive(Debug)]
pub struct UsageLedger {
    backend: Backend,
    in_flight: Mutex<HashMap<String, Arc<InFlight>>>,
}

/// Bytes that uploads of one account in this process have received but not yet committed.
#[derive(Debug, Default)]
pub struct InFlight(AtomicU64);

impl InFlight {
    pub fn bytes(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }

    /// Adds `bytes` if the total then stays within `limit`; false (nothing added) otherwise.
    pub fn try_add(&self, bytes: u64, limit: u64) -> bool {
        self.0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
                now.checked_add(bytes).filter(|total| *total <= limit)
            })
            .is_ok()
    }

    pub fn release(&self, bytes: u64) {
        let _ = self
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
                Some(now.saturating_sub(bytes))
            });
    }
}

impl UsageLedger {
    /// Usage in one file per account under `directory` (created when first written).
    pub fn in_directory(directory: PathBuf) -> UsageLedger {
        UsageLedger::new(Backend::Files(directory))
    }

    /// Usage in the accounts database.
    pub fn in_database(link: Arc<DatabaseLink>) -> UsageLedger {
        UsageLedger::new(Backend::Database(link))
    }

    fn new(backend: Backend) -> UsageLedger {
        UsageLedger {
            backend,
            in_flight: Mutex::new(HashMap::new()),
        }
    }

    /// Where usage is kept, for messages.
    pub fn location(&self) -> String {
        match &self.backend {
            Backend::Files(directory) => directory.display().to_string(),
            Backend::Database(link) => link.database().to_string(),
        }
    }

    /// The uploads in progress of `user` in this process.
    pub fn in_flight(&self, user: &str) -> Arc<InFlight> {
        let mut map = self
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        map.entry(user.to_string()).or_default().clone()
    }

    /// The stored usage of `user`; None when it was never measured.
    pub async fn stored(&self, user: &str) -> Result<Option<Usage>, UsageError> {
        match &self.backend {
            Backend::Files(directory) => {
                let path = usage_file(directory, user);
                blocking(move || update_file(&path, false, |usage| usage)).await
            }
            Backend::Database(link) => {
                let client = link.client()?;
                let row = query(
                    link.database(),
                    "read the usage",
                    client.query_opt(
                        "SELECT bytes, files FROM ferry_usage WHERE name = $1",
                        &[&user],
                    ),
                )
                .await?;
                Ok(row.map(|row| Usage {
                    bytes: row.get::<_, i64>(0).max(0) as u64,
                    files: row.get::<_, i64>(1).max(0) as u64,
                }))
            }
        }
    }

    /// Stores a measured usage, replacing what was stored.
    pub async fn record(&self, user: &str, usage: Usage) -> Result<(), UsageError> {
        match &self.backend {
            Backend::Files(directory) => {
                let path = usage_file(directory, user);
                blocking(move || update_file(&path, true, |_| Some(usage)).map(drop)).await
            }
            Backend::Database(link) => {
                let client = link.client()?;
                let (bytes, files) = (clamp(usage.bytes), clamp(usage.files));
                query(
                    link.database(),
                    "store the usage",
                    client.execute(
                        "INSERT INTO ferry_usage (name, bytes, files) VALUES ($1, $2, $3) \
                         ON CONFLICT (name) DO UPDATE SET bytes = $2, files = $3, \
                         measured_at = now()",
                        &[&user, &bytes, &files],
                    ),
                )
                .await?;
                Ok(())
            }
        }
    }

    /// Applies `change` to the stored usage of `user`; nothing when it was never measured
    /// (it will be, whole, when a quota first needs it).
    pub async fn apply(&self, user: &str, change: UsageChange) -> Result<(), UsageError> {
        if change == UsageChange::default() {
            return Ok(());
        }
        match &self.backend {
            Backend::Files(directory) => {
                let path = usage_file(directory, user);
                blocking(move || {
                    update_file(&path, false, |usage| usage.map(|u| u.changed(change))).map(drop)
                })
                .await
            }
            Backend::Database(link) => {
                let client = link.client()?;
                query(
                    link.database(),
                    "update the usage",
                    client.execute(
                        "UPDATE ferry_usage SET bytes = greatest(bytes + $2, 0), \
                         files = greatest(files + $3, 0) WHERE name = $1",
                        &[&user, &change.bytes, &change.files],
                    ),
                )
                .await?;
                Ok(())
            }
        }
    }
}

fn clamp(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, UsageError> + Send + 'static,
) -> Result<T, UsageError> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|join_error| {
            Err(UsageError::File {
                path: PathBuf::new(),
                source: io::Error::other(join_error),
            })
        })
}

/// The usage file of `user` in `directory`: the name with every byte other than ASCII
/// letters, digits, `-`, `_` and `@` (and a leading `.`) written as `%XX`, so that any valid
/// user name is one plain file name.
fn usage_file(directory: &Path, user: &str) -> PathBuf {
    let mut name = String::with_capacity(user.len() + 6);
    for (index, byte) in user.bytes().enumerate() {
        let plain = byte.is_ascii_alphanumeric()
            || matches!(byte, b'-' | b'_' | b'@')
            || (byte == b'.' && index > 0);
        if plain {
            name.push(byte as char);
        } else {
            name.push_str(&format!("%{byte:02X}"));
        }
    }
    name.push_str(".usage");
    directory.join(name)
}

/// Reads the usage in `path` under an exclusive lock, lets `change` decide the new value, and
/// writes it back (when `change` gives one and `create` or the file exists); returns the value
/// read. The file is tiny and rewritten in place: a torn write shows as a corrupt file, which
/// a rescan rewrites.
fn update_file(
    path: &Path,
    create: bool,
    change: impl FnOnce(Option<Usage>) -> Option<Usage>,
) -> Result<Option<Usage>, UsageError> {
    let failed = |source: io::Error| UsageError::File {
        path: path.to_path_buf(),
        source,
    };
    if create && let Some(directory) = path.parent() {
        std::fs::create_dir_all(directory).map_err(failed)?;
    }
    let opened = OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .truncate(false)
        .open(path);
    let mut file = match opened {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(failed(error)),
    };
    lock_exclusive(&file).map_err(failed)?;
    let mut text = String::new();
    file.read_to_string(&mut text).map_err(failed)?;
    let current = if text.trim().is_empty() {
        None
    } else {
        Some(parse_usage(&text).ok_or_else(|| UsageError::Corrupt {
            path: path.to_path_buf(),
            problem: format!("expected `BYTES FILES`, found {:?}", text.trim()),
        })?)
    };
    if let Some(new) = change(current)
        && Some(new) != current
    {
        let line = format!("{} {}\n", new.bytes, new.files);
        file.rewind().map_err(failed)?;
        file.set_len(0).map_err(failed)?;
        file.write_all(line.as_bytes()).map_err(failed)?;
    }
    Ok(current)
}

fn parse_usage(text: &str) -> Option<Usage> {
    let mut numbers = text.split_whitespace().map(str::parse::<u64>);
    let bytes = numbers.next()?.ok()?;
    let files = numbers.next()?.ok()?;
    Some(Usage { bytes, files })
}

/// flock(2): held until the file is closed.
fn lock_exclusive(file: &File) -> io::Result<()> {
    loop {
        // SAFETY: a valid descriptor; flock only takes a lock on it.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
            return Ok(());
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn file_usage_is_absent_until_recorded_then_moves_with_changes() {
        let directory = tempfile::tempdir().expect("temp dir");
        let ledger = UsageLedger::in_directory(directory.path().join("usage"));
        assert_eq!(ledger.stored("bob").await.expect("read"), None);
        // A change before the first measurement is dropped: the measurement will count it.
        ledger
            .apply("bob", UsageChange { bytes: 5, files: 1 })
            .await
            .expect("apply");
        assert_eq!(ledger.stored("bob").await.expect("read"), None);
        ledger
            .record(
                "bob",
                Usage {
                    bytes: 100,
                    files: 3,
                },
            )
            .await
            .expect("record");
        ledger
            .apply(
                "bob",
                UsageChange {
                    bytes: -40,
                    files: -1,
                },
            )
            .await
            .expect("apply");
        assert_eq!(
            ledger.stored("bob").await.expect("read"),
            Some(Usage {
                bytes: 60,
                files: 2
            })
        );
        ledger
            .apply(
                "bob",
                UsageChange {
                    bytes: -100,
                    files: -5,
                },
            )
            .await
            .expect("apply");
        assert_eq!(
            ledger.stored("bob").await.expect("read"),
            Some(Usage::default())
        );
    }

    #[test]
    fn any_user_name_is_one_plain_file_name() {
        let directory = Path::new("/u");
        assert_eq!(usage_file(directory, "bob"), Path::new("/u/bob.usage"));
        assert_eq!(
            usage_file(directory, "../x/é"),
            Path::new("/u/%2E.%2Fx%2F%C3%A9.usage")
        );
        assert_eq!(usage_file(directory, "a.b"), Path::new("/u/a.b.usage"));
    }

    #[test]
    fn in_flight_bytes_stay_within_their_limit() {
        let in_flight = InFlight::default();
        assert!(in_flight.try_add(60, 100));
        assert!(!in_flight.try_add(50, 100));
        in_flight.release(60);
        assert!(in_flight.try_add(100, 100));
        assert_eq!(in_flight.bytes(), 100);
    }
}
