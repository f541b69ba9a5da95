//! The operator limits as the storage backend applies them: quotas (an upload that would pass
//! one is refused or stopped with 552, usage moves with every upload and delete) and bandwidth
//! (token buckets per account, shared by its sessions, and for the whole server).
//!
//! One [`Limits`] per server, shared by every session. An account's limits are read from its
//! record at the start of each transfer, so a change in the users file or the database is in
//! force for the next transfer (the accounts reload within a second).

use super::store::{HomeUsage, Store, StoreError};
use crate::accounts::auth::FerryUser;
use crate::accounts::limits::human_bytes;
use crate::accounts::usage::{InFlight, Usage, UsageChange, UsageLedger};
use crate::config::{self, OperatorLimits};
use crate::observe::metrics::UsageMetrics;
use crate::transfer::pace::{BudgetExceeded, ByteBudget, Pace, TokenBucket};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// The server's limits and the state they keep.
#[derive(Debug)]
pub struct Limits {
    settings: OperatorLimits,
    ledger: Arc<UsageLedger>,
    server_upload: Arc<TokenBucket>,
    server_download: Arc<TokenBucket>,
    /// Each account's buckets, created at its first transfer.
    accounts: Mutex<HashMap<String, AccountBuckets>>,
    metrics: UsageMetrics,
    logger: slog::Logger,
}

#[derive(Debug, Clone)]
struct AccountBuckets {
    upload: Arc<TokenBucket>,
    download: Arc<TokenBucket>,
}

/// How an upload changes the file it writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadKind {
    /// STOR: the file is replaced (or created).
    Replace,
    /// APPE: the bytes are added at the end.
    Append,
    /// REST n + STOR: written from byte n of the existing file.
    Resume(u64),
}

/// The quota side of one upload: what it may still write, and how it changes usage.
pub struct UploadQuota {
    budget: Option<Arc<UploadBudget>>,
    kind: UploadKind,
    /// The length of the file before the upload; None when it is new.
    previous_len: Option<u64>,
}

/// A home's usage with the account's quotas, for AVBL and SITE QUOTA.
#[derive(Debug, Clone, Copy)]
pub struct QuotaStatus {
    pub limits: config::Limits,
    /// Measured (or stored) usage plus this process's uploads in progress.
    pub usage: Usage,
}

impl QuotaStatus {
    /// Bytes the quota leaves; None without a byte quota.
    pub fn bytes_left(&self) -> Option<u64> {
        (self.limits.quota_bytes > 0)
            .then(|| self.limits.quota_bytes.saturating_sub(self.usage.bytes))
    }
}

impl Limits {
    pub fn new(
        settings: OperatorLimits,
        ledger: Arc<UsageLedger>,
        metrics: UsageMetrics,
        logger: slog::Logger,
    ) -> Self {
        Limits {
            server_upload: Arc::new(TokenBucket::new(settings.server_upload_rate)),
            server_download: Arc::new(TokenBucket::new(settings.server_download_rate)),
            settings,
            ledger,
            accounts: Mutex::new(HashMap::new()),
            metrics,
            logger,
        }
    }

    /// The account's limits now (its record as last reloaded, over the server's defaults).
    pub fn of(&self, user: &FerryUser) -> config::Limits {
        user.limits(&self.settings.user_defaults)
    }

    /// Whether usage is kept for `limits`' account: it has a quota, or usage is exported.
    fn tracks_usage(&self, limits: &config::Limits) -> bool {
        limits.has_quota() || self.settings.usage_metrics
    }

    fn buckets(&self, user: &FerryUser, limits: &config::Limits) -> AccountBuckets {
        let mut accounts = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
        let buckets = accounts
            .entry(user.name.clone())
            .or_insert_with(|| AccountBuckets {
                upload: Arc::new(TokenBucket::new(limits.upload_rate)),
                download: Arc::new(TokenBucket::new(limits.download_rate)),
            });
        buckets.upload.set_rate(limits.upload_rate);
        buckets.download.set_rate(limits.download_rate);
        buckets.clone()
    }

    /// The bandwidth limits of a download by `user`.
    pub fn download_pace(&self, user: &FerryUser) -> Pace {
        let limits = self.of(user);
        if limits.download_rate == 0 && self.settings.server_download_rate == 0 {
            return Pace::default();
        }
        let account = self.buckets(user, &limits).download;
        Pace::new(vec![account, self.server_download.clone()], None)
    }

    /// The bandwidth limits and the quota budget of an upload by `user`.
    pub fn upload_pace(&self, user: &FerryUser, quota: Option<&UploadQuota>) -> Pace {
        let limits = self.of(user);
        let budget = quota
            .and_then(|quota| quota.budget.clone())
            .map(|budget| budget as Arc<dyn ByteBudget>);
        if limits.upload_rate == 0 && self.settings.server_upload_rate == 0 {
            return Pace::new(Vec::new(), budget);
        }
        let account = self.buckets(user, &limits).upload;
        Pace::new(vec![account, self.server_upload.clone()], budget)
    }

    /// The account's usage, measuring the home first if it never was.
    async fn usage<S: Store>(&self, user: &FerryUser, store: &S) -> Result<Usage, StoreError> {
        let stored = self.ledger.stored(&user.name).await.map_err(unavailable)?;
        let usage = match stored {
            Some(usage) => usage,
            None => self.rescan(user, store).await?,
        };
        self.export(user, usage);
        Ok(usage)
    }

    /// Measures the home and stores the result (`ferry user rescan`, and a first use).
    pub async fn rescan<S: Store>(&self, user: &FerryUser, store: &S) -> Result<Usage, StoreError> {
        let HomeUsage { bytes, files } = store.measure().await?;
        let usage = Usage { bytes, files };
        self.ledger
            .record(&user.name, usage)
            .await
            .map_err(unavailable)?;
        Ok(usage)
    }

    /// The quota state of `user`'s home. An account whose usage is not kept has its home
    /// measured afresh (and nothing stored, as nothing would keep it current).
    pub async fn status<S: Store>(
        &self,
        user: &FerryUser,
        store: &S,
    ) -> Result<QuotaStatus, StoreError> {
        let limits = self.of(user);
        let mut usage = if self.tracks_usage(&limits) {
            self.usage(user, store).await?
        } else {
            let HomeUsage { bytes, files } = store.measure().await?;
            Usage { bytes, files }
        };
        usage.bytes += self.ledger.in_flight(&user.name).bytes();
        Ok(QuotaStatus { limits, usage })
    }

    /// What the byte quota leaves `user`; None, without looking at the home, when the account
    /// has no byte quota.
    pub async fn bytes_left<S: Store>(
        &self,
        user: &FerryUser,
        store: &S,
    ) -> Result<Option<u64>, StoreError> {
        if self.of(user).quota_bytes == 0 {
            return Ok(None);
        }
        Ok(self.status(user, store).await?.bytes_left())
    }

    /// Checks an upload against `user`'s quotas before it starts; None when no usage is kept
    /// for the account. `previous_len` is the file's length now (None: it does not exist).
    /// Refuses with 552 a new file past the file quota, and any upload when the byte quota is
    /// spent (unless it replaces bytes it frees).
    pub async fn before_upload<S: Store>(
        &self,
        user: &FerryUser,
        store: &S,
        kind: UploadKind,
        previous_len: Option<u64>,
    ) -> Result<Option<UploadQuota>, StoreError> {
        let limits = self.of(user);
        if !self.tracks_usage(&limits) {
            return Ok(None);
        }
        let usage = self.usage(user, store).await?;
        if previous_len.is_none() && limits.quota_files > 0 && usage.files >= limits.quota_files {
            return Err(StoreError::QuotaExceeded(format!(
                "Quota exceeded: {} of {} files used",
                usage.files, limits.quota_files
            )));
        }
        // Bytes the upload writes over without growing the file: a replaced file frees its
        // length, a resumed one what lies past the offset.
        let credit = match kind {
            UploadKind::Replace => previous_len.unwrap_or(0),
            UploadKind::Append => 0,
            UploadKind::Resume(offset) => previous_len.unwrap_or(0).saturating_sub(offset),
        };
        let budget = (limits.quota_bytes > 0).then(|| {
            Arc::new(UploadBudget {
                in_flight: self.ledger.in_flight(&user.name),
                room: limits.quota_bytes.saturating_sub(usage.bytes),
                quota: limits.quota_bytes,
                credit,
                received: AtomicU64::new(0),
                charged: AtomicU64::new(0),
            })
        });
        if let Some(budget) = &budget
            && budget.room == 0
            && credit == 0
        {
            return Err(budget.exceeded());
        }
        Ok(Some(UploadQuota {
            budget,
            kind,
            previous_len,
        }))
    }

    /// Records a committed upload of `received` bytes in the account's usage.
    pub async fn after_upload(&self, user: &FerryUser, quota: UploadQuota, received: u64) {
        let previous = quota.previous_len.unwrap_or(0);
        let new_len = match quota.kind {
            UploadKind::Replace => received,
            UploadKind::Append => previous + received,
            UploadKind::Resume(offset) => previous.max(offset + received),
        };
        let change = UsageChange {
            bytes: new_len as i64 - previous as i64,
            files: i64::from(quota.previous_len.is_none()),
        };
        self.apply(user, change).await;
    }

    /// Whether deleting a file of `user` changes usage that is kept (so its length is needed).
    pub fn tracks(&self, user: &FerryUser) -> bool {
        self.tracks_usage(&self.of(user))
    }

    /// Records a deleted file of `len` bytes.
    pub async fn after_delete(&self, user: &FerryUser, len: u64) {
        let change = UsageChange {
            bytes: -(len as i64),
            files: -1,
        };
        self.apply(user, change).await;
    }

    async fn apply(&self, user: &FerryUser, change: UsageChange) {
        // The file operation already happened; a failure here leaves usage behind until the
        // next rescan, which the log says.
        if let Err(error) = self.ledger.apply(&user.name, change).await {
            self.metrics.update_failed();
            slog::warn!(self.logger, "could not update the usage; `ferry user rescan` corrects it";
                "user" => &user.name, "error" => %error);
            return;
        }
        if self.settings.usage_metrics
            && let Ok(Some(usage)) = self.ledger.stored(&user.name).await
        {
            self.export(user, usage);
        }
    }

    fn export(&self, user: &FerryUser, usage: Usage) {
        if self.settings.usage_metrics {
            let limits = self.of(user);
            self.metrics
                .set(&user.name, usage.bytes, usage.files, limits.quota_bytes);
        }
    }
}

fn unavailable(error: crate::accounts::usage::UsageError) -> StoreError {
    StoreError::QuotaUnavailable(error.to_string())
}

impl UploadQuota {
    fn budget(&self) -> Option<&Arc<UploadBudget>> {
        self.budget.as_ref()
    }
}

/// What one upload may still write under its account's byte quota. Bytes past its credit
/// (what the file held and the upload overwrites) count as in flight for the account until
/// the upload ends, so concurrent uploads share what is left.
struct UploadBudget {
    in_flight: Arc<InFlight>,
    /// The quota left when the upload started.
    room: u64,
    quota: u64,
    credit: u64,
    received: AtomicU64,
    /// Bytes added to `in_flight` by this upload.
    charged: AtomicU64,
}

impl UploadBudget {
    fn exceeded(&self) -> StoreError {
        StoreError::QuotaExceeded(self.exceeded_text())
    }

    fn exceeded_text(&self) -> String {
        format!(
            "Quota exceeded: the upload does not fit in the {} left of {}",
            human_bytes(self.room),
            human_bytes(self.quota)
        )
    }
}

impl ByteBudget for UploadBudget {
    fn charge(&self, bytes: u64) -> Result<(), BudgetExceeded> {
        let received = self.received.fetch_add(bytes, Ordering::AcqRel) + bytes;
        let beyond_credit = received.saturating_sub(self.credit);
        let charged = self.charged.load(Ordering::Acquire);
        if beyond_credit <= charged {
            return Ok(());
        }
        if self.in_flight.try_add(beyond_credit - charged, self.room) {
            self.charged.store(beyond_credit, Ordering::Release);
            Ok(())
        } else {
            Err(BudgetExceeded(self.exceeded_text()))
        }
    }
}

impl Drop for UploadBudget {
    fn drop(&mut self) {
        self.in_flight.release(*self.charged.get_mut());
    }
}

impl std::fmt::Debug for UploadQuota {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UploadQuota")
            .field("kind", &self.kind)
            .field("previous_len", &self.previous_len)
            .field("budget", &self.budget().map(|b| b.room))
            .finish()
    }
}
