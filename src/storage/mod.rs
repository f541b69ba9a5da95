//! The storage backend: permissions, audit and upload atomicity over a [`Store`].
//!
//! libunftp calls [`FerryStorage`] for every filesystem operation of a session. Each call
//! resolves the client path ([`paths`]), checks the user's permission, runs the operation on
//! the store, writes one audit record, and maps errors to FTP replies (`errors`).
//!
//! It uses `accounts` (the logged-in user and their permissions), `observe` (audit records),
//! `transfer` (the data path), `events` (each change that succeeded is published before its
//! reply, when a hook is configured) and `config`. What it needs of the session it serves (the
//! client's address, whether the control connection is still open, the transfer count) it
//! declares as [`SessionContext`], which the server implements: storage never imports
//! `server`. A new store (S3) is a second [`Store`] in this folder.

mod cached;
pub mod checksum;
mod context;
mod errors;
pub mod limits;
mod listing;
mod listing_stream;
mod local;
mod locked_writes;
pub mod paths;
mod readiness;
pub mod s3;
mod serve_listing;
mod session_store;
mod store;

pub use context::{SessionContext, TransferGuard};
pub use errors::to_reply;
pub use local::{LocalStore, remove_stale_temporaries};
pub use readiness::check_root_writable;
pub use session_store::SessionStore;
pub use store::{
    CommitGate, Entry, EntryKind, EntryPages, HomeUsage, Listing, Replace, Store, StoreError,
};

use crate::accounts::auth::FerryUser;
use crate::accounts::users::Permissions;
use crate::config::EventKind;
use crate::events::{Events, NewEvent};
use crate::observe::audit::AuditLog;
use crate::observe::record::{AuditRecord, Op, Outcome};
use crate::storage::checksum::{Checksum, HashAlgorithm};
use crate::storage::paths::{UserPath, resolve_user_path};
use crate::transfer;
use crate::transfer::pace::paced;
use async_trait::async_trait;
use limits::{Limits, QuotaStatus, UploadKind};
use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use unftp_core::storage::{self as ftp, FEATURE_RESTART, Fileinfo, StorageBackend};

/// Longest wait at shutdown for a client to acknowledge a finished download's last bytes; the
/// shutdown grace period bounds it too.
const DELIVERY_WAIT_AT_SHUTDOWN: Duration = Duration::from_secs(30);

/// One session's storage backend (libunftp builds one per connection).
#[derive(Debug)]
pub struct FerryStorage<S: Store = SessionStore> {
    store: S,
    session: Arc<dyn SessionContext>,
    audit: AuditLog,
    /// Quotas and bandwidth, shared by every session of the server.
    limits: Arc<Limits>,
    /// Where uploads, deletions, renames and directories made or removed are published, when
    /// any event hook is configured; None: nothing is hashed or published.
    events: Option<Events>,
}

impl<S: Store> FerryStorage<S> {
    pub fn new(
        store: S,
        session: Arc<dyn SessionContext>,
        audit: AuditLog,
        limits: Arc<Limits>,
    ) -> Self {
        FerryStorage {
            store,
            session,
            audit,
            limits,
            events: None,
        }
    }

    /// AVBL and SITE QUOTA: the home's usage and the account's quotas (measuring the home
    /// if it never was). Needs no permission beyond an account that still admits the session.
    pub async fn quota_status(&self, user: &FerryUser) -> Result<QuotaStatus, StoreError> {
        self.permissions_now(user)?;
        self.limits.status(user, &self.store).await
    }

    /// AVBL: what the byte quota leaves, else the free space where the home lives; None when
    /// neither is known (a bucket without a quota).
    pub async fn available(&self, user: &FerryUser) -> Result<Option<u64>, StoreError> {
        self.permissions_now(user)?;
        match self.limits.bytes_left(user, &self.store).await? {
            Some(left) => Ok(Some(left)),
            None => Ok(self.store.available_space().await),
        }
    }

    /// ALLO n: refused with 552 when `bytes` exceed what the byte quota leaves; otherwise what
    /// it leaves (None without a byte quota).
    pub async fn allocate(&self, user: &FerryUser, bytes: u64) -> Result<Option<u64>, StoreError> {
        self.permissions_now(user)?;
        match self.limits.bytes_left(user, &self.store).await? {
            Some(left) if bytes > left => Err(StoreError::QuotaExceeded(format!(
                "Quota exceeded: {bytes} bytes asked, {left} left"
            ))),
            left => Ok(left),
        }
    }

    /// Publishes the session's successful changes to `events` (see [`Self::publish`]).
    pub fn with_events(mut self, events: Option<Events>) -> Self {
        self.events = events;
        self
    }

    /// Publishes a change that succeeded, durably, before the operation's reply is sent.
    async fn publish(
        &self,
        user: &FerryUser,
        kind: EventKind,
        path: &UserPath,
        from: Option<&UserPath>,
    ) {
        if let Some(events) = &self.events {
            events
                .publish(NewEvent {
                    kind,
                    user: user.name.clone(),
                    path: path.to_string(),
                    from: from.map(UserPath::to_string),
                    size: None,
                    sha256: None,
                    remote_addr: self.session.client_ip(),
                })
                .await;
        }
    }

    /// Publishes an upload with the file's size and SHA-256: `digest` when the upload's bytes
    /// were hashed as they passed (a whole new file); otherwise (APPE, REST+STOR, which add to
    /// a file) the committed file is read back, since the receiver wants the whole file's.
    async fn publish_upload(
        &self,
        events: &Events,
        user: &FerryUser,
        path: &UserPath,
        digest: Option<transfer::digest::UploadDigest>,
    ) {
        let (size, sha256) = match digest {
            Some(digest) => (Some(digest.len), Some(digest.sha256_hex())),
            None => match self.store.checksum(path, HashAlgorithm::Sha256).await {
                Ok(sum) => (Some(sum.len), Some(sum.hex)),
                // Replaced or removed meanwhile: the event still says the upload happened.
                Err(_) => (None, None),
            },
        };
        events
            .publish(NewEvent {
                kind: EventKind::Upload,
                user: user.name.clone(),
                path: path.to_string(),
                from: None,
                size,
                sha256,
                remote_addr: self.session.client_ip(),
            })
            .await;
    }

    /// What `user` may do now: the account as the users file was last reloaded, not the
    /// snapshot libunftp took at login, so that a disabled, removed or restricted account
    /// stops at its session's next command.
    fn permissions_now(&self, user: &FerryUser) -> Result<Permissions, StoreError> {
        user.standing(self.session.client_ip())
            .map_err(|revoked| StoreError::Denied(revoked.to_string()))
    }

    /// Resolves the client path and checks one permission; refusals are audited here.
    fn authorize(
        &self,
        user: &FerryUser,
        op: Op,
        path: &Path,
        allowed: fn(&Permissions) -> bool,
    ) -> ftp::Result<UserPath> {
        self.check(user, op, path, allowed)
            .map_err(errors::to_ftp_error)
    }

    /// [`Self::authorize`] for the commands Ferry answers itself, which reply from a
    /// [`StoreError`] (`to_reply`).
    fn check(
        &self,
        user: &FerryUser,
        op: Op,
        path: &Path,
        allowed: fn(&Permissions) -> bool,
    ) -> Result<UserPath, StoreError> {
        let refusal = match (resolve_user_path(path), self.permissions_now(user)) {
            (Err(error), _) => StoreError::BadName(error),
            (Ok(_), Err(revoked)) => revoked,
            (Ok(resolved), Ok(permissions)) if allowed(&permissions) => return Ok(resolved),
            (Ok(_), Ok(_)) => StoreError::Denied(format!("user may not {}", op.as_str())),
        };
        let shown = path.display().to_string();
        self.record(
            user,
            op,
            &shown,
            None,
            Instant::now(),
            outcome_of::<()>(&Err(&refusal)),
        );
        Err(refusal)
    }

    /// Writes the audit record of a finished operation.
    fn record(
        &self,
        user: &FerryUser,
        op: Op,
        path: &str,
        bytes: Option<u64>,
        started: Instant,
        outcome: Outcome,
    ) {
        let host = self.session.host();
        self.audit.record(AuditRecord {
            op,
            user: &user.name,
            client_ip: self.session.client_ip(),
            host: host.as_deref(),
            path,
            bytes,
            duration: started.elapsed(),
            outcome,
        });
    }

    /// Audits `result` and converts it for libunftp.
    fn finish<T>(
        &self,
        user: &FerryUser,
        op: Op,
        path: &UserPath,
        started: Instant,
        result: Result<T, StoreError>,
        bytes: impl Fn(&T) -> Option<u64>,
    ) -> ftp::Result<T> {
        self.audit_result(user, op, path, started, &result, bytes);
        result.map_err(errors::to_ftp_error)
    }

    /// Writes the audit record of `result`.
    fn audit_result<T>(
        &self,
        user: &FerryUser,
        op: Op,
        path: &UserPath,
        started: Instant,
        result: &Result<T, StoreError>,
        bytes: impl Fn(&T) -> Option<u64>,
    ) {
        let outcome = outcome_of(&result.as_ref().map(|_| ()));
        let counted = result.as_ref().ok().and_then(&bytes);
        self.record(user, op, &path.to_string(), counted, started, outcome);
    }

    /// HASH and its older forms (XSHA256, XMD5, XCRC...): the digest of a file. Reading a
    /// file whole is a download in all but name, so it is one: the `download` permission, a
    /// transfer slot (`max_transfers`), and a `download` audit record with the bytes read.
    pub async fn checksum(
        &self,
        user: &FerryUser,
        path: &Path,
        algorithm: HashAlgorithm,
    ) -> Result<Checksum, StoreError> {
        let started = Instant::now();
        let path = self.check(user, Op::Download, path, |p| p.download)?;
        let result = async {
            let _transfer = self.session.clone().begin_transfer()?;
            self.store.checksum(&path, algorithm).await
        }
        .await;
        self.audit_result(user, Op::Download, &path, started, &result, |sum| {
            Some(sum.len)
        });
        result
    }

    /// MFMT: sets a file's modification time. It changes an existing file, so it takes what
    /// replacing the file would: `upload` and `overwrite`.
    pub async fn set_modified(
        &self,
        user: &FerryUser,
        path: &Path,
        time: SystemTime,
    ) -> Result<(), StoreError> {
        let started = Instant::now();
        let path = self.check(user, Op::Mfmt, path, |p| p.upload && p.overwrite)?;
        let result = self.store.set_modified(&path, time).await;
        self.audit_result(user, Op::Mfmt, &path, started, &result, |_| None);
        result
    }

    /// SITE CHMOD: sets permission bits (never setuid, setgid or sticky). Like MFMT it changes
    /// an existing file, so it takes `upload` and `overwrite`.
    pub async fn set_permissions(
        &self,
        user: &FerryUser,
        path: &Path,
        mode: u32,
    ) -> Result<(), StoreError> {
        let started = Instant::now();
        let path = self.check(user, Op::Chmod, path, |p| p.upload && p.overwrite)?;
        let result = self.store.set_permissions(&path, mode & 0o777).await;
        self.audit_result(user, Op::Chmod, &path, started, &result, |_| None);
        result
    }

    /// The upload path: permissions, the quota, then the store writes the bytes (under the
    /// account's bandwidth limits and what its quota leaves) and commits them only while the
    /// client is still connected; last, the usage moves by what the upload added.
    async fn upload<R>(
        &self,
        user: &FerryUser,
        path: &UserPath,
        input: &mut R,
        start_pos: u64,
    ) -> Result<u64, StoreError>
    where
        R: tokio::io::AsyncRead + Send + Unpin,
    {
        // APPE needs `upload` only, like a write in vsftpd and ProFTPD: appending adds to a
        // file and never replaces what is there, so `overwrite` is not asked, and its size
        // lookup is part of the append, not a listing (`list`).
        let kind = match (libunftp::storage::upload_is_append(), start_pos) {
            (true, _) => UploadKind::Append,
            (false, 0) => UploadKind::Replace,
            // REST+STOR resumes into the existing file: on disk the documented exception to
            // atomic replacement (the partial file is what the client resumes).
            (false, offset) => UploadKind::Resume(offset),
        };
        let replace = match kind {
            UploadKind::Replace => self.check_overwrite(user, path).await?,
            _ => Replace::Allowed,
        };
        let quota = if self.limits.tracks(user) {
            let previous_len = self.length_of(path).await?;
            self.limits
                .before_upload(user, &self.store, kind, previous_len)
                .await?
        } else {
            None
        };
        let _transfer = self.session.clone().begin_transfer()?;
        let gate = Arc::new(ControlConnectionGate(self.session.clone()));
        let pace = self.limits.upload_pace(user, quota.as_ref());
        let received = paced(pace, async {
            match kind {
                UploadKind::Append => self.store.append(path, input, gate).await,
                UploadKind::Replace => {
                    self.store
                        .write_atomically(path, input, gate, replace)
                        .await
                }
                UploadKind::Resume(offset) => {
                    self.store.write_in_place(path, offset, input, gate).await
                }
            }
        })
        .await?;
        if let Some(quota) = quota {
            self.limits.after_upload(user, quota, received).await;
        }
        Ok(received)
    }

    /// The length of the file at `path`; None when there is none.
    async fn length_of(&self, path: &UserPath) -> Result<Option<u64>, StoreError> {
        match self.store.entry(path).await {
            Ok(entry) if entry.kind != EntryKind::Dir => Ok(Some(entry.len)),
            Ok(_) | Err(StoreError::NotFound) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Uploads replace a file only if the user may overwrite it: refused here when the file
    /// is already there, and [`Replace::Never`] for the store, which checks again as it
    /// commits (another session may create the file meanwhile).
    async fn check_overwrite(
        &self,
        user: &FerryUser,
        path: &UserPath,
    ) -> Result<Replace, StoreError> {
        if self.permissions_now(user)?.overwrite {
            return Ok(Replace::Allowed);
        }
        match self.store.entry(path).await {
            Err(StoreError::NotFound) => Ok(Replace::Never),
            Ok(_) => Err(StoreError::Denied("user may not overwrite".into())),
            Err(error) => Err(error),
        }
    }
}

/// How an operation's result reads in the audit log.
fn outcome_of<T>(result: &Result<T, &StoreError>) -> Outcome {
    match result {
        Ok(_) => Outcome::Ok,
        Err(StoreError::Denied(reason)) => Outcome::Denied(reason.clone()),
        Err(error) => Outcome::Failed(error.to_string()),
    }
}

/// Audits a transfer whose future was dropped before it finished: libunftp drops it on ABOR.
struct AuditIfAbandoned<'a, S: Store> {
    storage: &'a FerryStorage<S>,
    user: &'a FerryUser,
    op: Op,
    path: &'a UserPath,
    started: Instant,
    armed: bool,
}

impl<'a, S: Store> AuditIfAbandoned<'a, S> {
    fn new(
        storage: &'a FerryStorage<S>,
        user: &'a FerryUser,
        op: Op,
        path: &'a UserPath,
        started: Instant,
    ) -> Self {
        AuditIfAbandoned {
            storage,
            user,
            op,
            path,
            started,
            armed: true,
        }
    }

    fn disarm(mut self) {
        self.armed = false;
    }
}

impl<S: Store> Drop for AuditIfAbandoned<'_, S> {
    fn drop(&mut self) {
        if self.armed {
            let outcome = Outcome::Failed("transfer aborted".into());
            self.storage.record(
                self.user,
                self.op,
                &self.path.to_string(),
                None,
                self.started,
                outcome,
            );
        }
    }
}

/// Commits an upload only while the client is still connected (see [`SessionContext::control_closed`]).
struct ControlConnectionGate(Arc<dyn SessionContext>);

impl CommitGate for ControlConnectionGate {
    fn may_commit(&self) -> Result<(), StoreError> {
        if self.0.control_closed() {
            Err(StoreError::Interrupted(
                "control connection closed before the upload completed".into(),
            ))
        } else {
            Ok(())
        }
    }
}

/// What libunftp shows of an entry (LIST, MLSD, MLST, SIZE, MDTM).
#[derive(Debug, Clone)]
pub struct FileMeta(Entry);

impl ftp::Metadata for FileMeta {
    fn len(&self) -> u64 {
        self.0.len
    }
    fn is_dir(&self) -> bool {
        self.0.kind == EntryKind::Dir
    }
    fn is_file(&self) -> bool {
        self.0.kind == EntryKind::File
    }
    fn is_symlink(&self) -> bool {
        self.0.kind == EntryKind::Symlink
    }
    fn modified(&self) -> ftp::Result<SystemTime> {
        self.0
            .modified
            .ok_or_else(|| ftp::ErrorKind::LocalError.into())
    }
    fn gid(&self) -> u32 {
        0
    }
    fn uid(&self) -> u32 {
        0
    }
    fn permissions(&self) -> ftp::Permissions {
        ftp::Permissions(self.0.mode)
    }
}

#[async_trait]
impl<S: Store> StorageBackend<FerryUser> for FerryStorage<S> {
    type Metadata = FileMeta;

    fn enter(&mut self, user: &FerryUser) -> std::io::Result<()> {
        self.store.enter(&user.home)?;
        self.session.set_user(user);
        Ok(())
    }

    fn name(&self) -> &str {
        "ferry"
    }

    fn supported_features(&self) -> u32 {
        FEATURE_RESTART
    }

    /// Serves SIZE (and MDTM, MLST, RNFR, which libunftp asks the same way). Not APPE: the
    /// `appe-append` patch makes APPE an append in `put`, which needs no size lookup.
    async fn metadata<P: AsRef<Path> + Send + Debug>(
        &self,
        user: &FerryUser,
        path: P,
    ) -> ftp::Result<FileMeta> {
        let started = Instant::now();
        let path = self.authorize(user, Op::Size, path.as_ref(), |p| p.list)?;
        let result = self.store.entry(&path).await.map(FileMeta);
        self.finish(user, Op::Size, &path, started, result, |meta| {
            Some(meta.0.len)
        })
    }

    async fn list<P: AsRef<Path> + Send + Debug>(
        &self,
        user: &FerryUser,
        path: P,
    ) -> ftp::Result<Vec<Fileinfo<PathBuf, FileMeta>>> {
        let started = Instant::now();
        let path = self.authorize(user, Op::Ls, path.as_ref(), |p| p.list)?;
        let result = self.store.list(&path).await.map(|entries| {
            entries
                .into_iter()
                .map(|(name, entry)| Fileinfo {
                    path: PathBuf::from(name),
                    metadata: FileMeta(entry),
                })
                .collect::<Vec<_>>()
        });
        self.finish(user, Op::Ls, &path, started, result, |_| None)
    }

    /// Every listing (see `serve_listing`): LIST, NLST, MLSD, MLST, and STAT with a path.
    async fn list_fmt<P>(&self, user: &FerryUser, path: P) -> ftp::Result<std::io::Cursor<Vec<u8>>>
    where
        P: AsRef<Path> + Send + Debug,
    {
        self.serve_listing(user, path.as_ref()).await
    }

    /// NLST as libunftp's own trait method (Ferry's libunftp sends NLST through `list_fmt`).
    async fn nlst<P>(&self, user: &FerryUser, path: P) -> std::io::Result<std::io::Cursor<Vec<u8>>>
    where
        P: AsRef<Path> + Send + Debug,
    {
        self.serve_names(user, path.as_ref())
            .await
            .map_err(std::io::Error::other)
    }

    async fn get_into<'a, P, W: ?Sized>(
        &self,
        user: &FerryUser,
        path: P,
        start_pos: u64,
        output: &'a mut W,
    ) -> ftp::Result<u64>
    where
        W: tokio::io::AsyncWrite + Unpin + Sync + Send,
        P: AsRef<Path> + Send + Debug,
    {
        let started = Instant::now();
        let path = self.authorize(user, Op::Download, path.as_ref(), |p| p.download)?;
        let abandoned = AuditIfAbandoned::new(self, user, Op::Download, &path, started);
        let result = match self.session.clone().begin_transfer() {
            Ok(_transfer) => {
                let pace = self.limits.download_pace(user);
                let sent = paced(pace, self.store.read_into(&path, start_pos, output)).await;
                if sent.is_ok() && self.session.shutting_down() {
                    // Kernel buffers do not outlive the process (a container's network goes
                    // with it): the download is done when the client has acknowledged it.
                    transfer::await_delivery(DELIVERY_WAIT_AT_SHUTDOWN)
                        .await
                        .map_err(StoreError::from)
                        .and(sent)
                } else {
                    sent
                }
            }
            Err(refused) => Err(refused),
        };
        abandoned.disarm();
        self.finish(user, Op::Download, &path, started, result, |sent| {
            Some(*sent)
        })
    }

    /// Not used: downloads go through `get_into`, and SITE MD5 (the only other caller) is not
    /// offered by this backend.
    async fn get<P: AsRef<Path> + Send + Debug>(
        &self,
        _user: &FerryUser,
        _path: P,
        _start_pos: u64,
    ) -> ftp::Result<Box<dyn tokio::io::AsyncRead + Send + Sync + Unpin>> {
        Err(ftp::ErrorKind::CommandNotImplemented.into())
    }

    async fn put<
        P: AsRef<Path> + Send + Debug,
        R: tokio::io::AsyncRead + Send + Sync + Unpin + 'static,
    >(
        &self,
        user: &FerryUser,
        mut input: R,
        path: P,
        start_pos: u64,
    ) -> ftp::Result<u64> {
        let started = Instant::now();
        let path = self.authorize(user, Op::Upload, path.as_ref(), |p| p.upload)?;
        let abandoned = AuditIfAbandoned::new(self, user, Op::Upload, &path, started);
        let append = libunftp::storage::upload_is_append();
        let upload = self.upload(user, &path, &mut input, start_pos);
        // An event reports the new file's SHA-256, hashed on the way when the upload is the
        // whole file.
        let (result, digest) = match &self.events {
            Some(_) if !append && start_pos == 0 => {
                transfer::digest::sha256_of_upload(upload).await
            }
            _ => (upload.await, None),
        };
        abandoned.disarm();
        if let (Some(events), Ok(_)) = (&self.events, &result) {
            self.publish_upload(events, user, &path, digest).await;
        }
        self.finish(user, Op::Upload, &path, started, result, |received| {
            Some(*received)
        })
    }

    async fn del<P: AsRef<Path> + Send + Debug>(
        &self,
        user: &FerryUser,
        path: P,
    ) -> ftp::Result<()> {
        let started = Instant::now();
        let path = self.authorize(user, Op::Rm, path.as_ref(), |p| p.delete)?;
        let result = async {
            if !self.limits.tracks(user) {
                return self.store.remove_file(&path).await;
            }
            let len = self.length_of(&path).await?;
            self.store.remove_file(&path).await?;
            self.limits.after_delete(user, len.unwrap_or(0)).await;
            Ok(())
        }
        .await;
        if result.is_ok() {
            self.publish(user, EventKind::Delete, &path, None).await;
        }
        self.finish(user, Op::Rm, &path, started, result, |_| None)
    }

    async fn mkd<P: AsRef<Path> + Send + Debug>(
        &self,
        user: &FerryUser,
        path: P,
    ) -> ftp::Result<()> {
        let started = Instant::now();
        let path = self.authorize(user, Op::Mkdir, path.as_ref(), |p| p.mkdir)?;
        let result = self.store.create_dir(&path).await;
        if result.is_ok() {
            self.publish(user, EventKind::Mkdir, &path, None).await;
        }
        self.finish(user, Op::Mkdir, &path, started, result, |_| None)
    }

    async fn rename<P: AsRef<Path> + Send + Debug>(
        &self,
        user: &FerryUser,
        from: P,
        to: P,
    ) -> ftp::Result<()> {
        let started = Instant::now();
        let from = self.authorize(user, Op::Rename, from.as_ref(), |p| p.rename)?;
        let to = self.authorize(user, Op::Rename, to.as_ref(), |p| p.rename)?;
        let result = async {
            self.check_overwrite(user, &to).await?;
            self.store.rename(&from, &to).await
        }
        .await;
        if result.is_ok() {
            self.publish(user, EventKind::Rename, &to, Some(&from))
                .await;
        }
        let shown = UserPathPair(&from, &to).to_string();
        let outcome = outcome_of(&result.as_ref().map(|_| ()));
        self.record(user, Op::Rename, &shown, None, started, outcome);
        result.map_err(errors::to_ftp_error)
    }

    async fn rmd<P: AsRef<Path> + Send + Debug>(
        &self,
        user: &FerryUser,
        path: P,
    ) -> ftp::Result<()> {
        let started = Instant::now();
        let path = self.authorize(user, Op::Rmdir, path.as_ref(), |p| p.rmdir)?;
        let result = self.store.remove_dir(&path).await;
        if result.is_ok() {
            self.publish(user, EventKind::Rmdir, &path, None).await;
        }
        self.finish(user, Op::Rmdir, &path, started, result, |_| None)
    }

    /// One stat: the target must be a directory inside the home. Needs no permission, only
    /// an account that still admits the session.
    async fn cwd<P: AsRef<Path> + Send + Debug>(
        &self,
        user: &FerryUser,
        path: P,
    ) -> ftp::Result<()> {
        self.permissions_now(user).map_err(errors::to_ftp_error)?;
        let path =
            resolve_user_path(path.as_ref()).map_err(|error| errors::to_ftp_error(error.into()))?;
        match self.store.entry(&path).await {
            Ok(entry) if entry.kind == EntryKind::Dir => Ok(()),
            Ok(_) => Err(errors::to_ftp_error(StoreError::NotADirectory)),
            Err(error) => Err(errors::to_ftp_error(error)),
        }
    }
}

/// `from -> to`, as written in rename audit records.
struct UserPathPair<'a>(&'a UserPath, &'a UserPath);

impl std::fmt::Display for UserPathPair<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} -> {}", self.0, self.1)
    }
}
