//! The server-wide side of the operator limits: each account's default quotas and bandwidth
//! (an account may set its own), the server's total bandwidth, and where usage is kept.

use std::path::{Path, PathBuf};

/// The usage directory's name in the root (or, with a bucket root, in the working directory)
/// when `usage_dir` is not set. Clients cannot name it (`storage::paths`).
pub const DEFAULT_USAGE_DIR_NAME: &str = ".ferry-usage";

/// Quotas and bandwidth of one account, with 0 as no limit: the defaults here, or an account's
/// own merged over them (`accounts::limits`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    pub quota_bytes: u64,
    pub quota_files: u64,
    /// Bytes per second, shared by the account's sessions.
    pub upload_rate: u64,
    pub download_rate: u64,
}

impl Limits {
    /// Whether either quota applies.
    pub fn has_quota(&self) -> bool {
        self.quota_bytes > 0 || self.quota_files > 0
    }
}

/// The `quota_*`, `*_rate`, `usage_dir` and `usage_metrics` keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OperatorLimits {
    /// What an account that sets no limit of its own gets (`quota_bytes`, `quota_files`,
    /// `user_upload_rate`, `user_download_rate`).
    pub user_defaults: Limits,
    /// Bytes per second for all uploads of the server together (`server_upload_rate`).
    pub server_upload_rate: u64,
    /// Bytes per second for all downloads of the server together (`server_download_rate`).
    pub server_download_rate: u64,
    /// Where usage is kept for accounts in a users file (`usage_dir`); None: `ROOT/.ferry-usage`
    /// on disk, `.ferry-usage` in the working directory with a bucket root.
    pub usage_dir: Option<PathBuf>,
    /// Export each account's usage on /metrics (`usage_metrics`): one series per account.
    pub usage_metrics: bool,
}

impl OperatorLimits {
    /// The usage directory: `usage_dir`, else [`DEFAULT_USAGE_DIR_NAME`] in `root` (None: a
    /// bucket root, so in the working directory).
    pub fn usage_dir(&self, root: Option<&Path>) -> PathBuf {
        match (&self.usage_dir, root) {
            (Some(dir), _) => dir.clone(),
            (None, Some(root)) => root.join(DEFAULT_USAGE_DIR_NAME),
            (None, None) => PathBuf::from(DEFAULT_USAGE_DIR_NAME),
        }
    }
}
