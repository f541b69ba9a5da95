//! The object store: every user's home is a key prefix in an S3-compatible bucket.
//!
//! Home `H` is the prefix `PREFIX/H/`; a directory is a common prefix, and MKD writes a
//! zero-byte `dir/` marker so that an empty directory exists. Uploads are multipart uploads
//! completed only when the upload commits ([`upload`]); APPE and REST+STOR build the new
//! object from the old one's first bytes (copied inside S3) and the new data, so the old object
//! stays whole until then. [`bucket`] holds the client and what S3's errors mean, [`pages`]
//! the paged listings, [`journal`] the record of unfinished uploads a restart sweeps.
//!
//! What differs from disk: no symlinks, no permission bits or settable times (SITE CHMOD and
//! MFMT are refused), and a directory rename copies every key (refused past
//! [`RENAME_MAX_KEYS`]).

mod bucket;
mod journal;
mod known_dirs;
mod pages;
mod upload;

pub use bucket::{Bucket, BucketError};
pub use journal::{SWEEP_EVERY, sweep_at_start, sweep_stale};

use super::checksum::{Checksum, Digest, HashAlgorithm};
use super::paths::{PathError, UPLOAD_TEMP_PREFIX, UserPath};
use super::store::{CommitGate, Entry, EntryKind, HomeUsage, Listing, Replace, Store, StoreError};
use crate::transfer::{Incoming, Outgoing};
use async_trait::async_trait;
use bucket::S3Failure;
use known_dirs::KnownDirs;
use pages::{FILE_MODE, ObjectPages, directory};
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncRead, AsyncWrite};
use upload::ObjectUpload;

/// A directory rename copies and deletes each of its keys; past this many it is refused with
/// 550 before anything changes (a rename is expected to be quick, and it is not atomic here).
pub const RENAME_MAX_KEYS: usize = 1000;
/// S3's longest key.
const MAX_KEY_BYTES: usize = 1024;
/// CopyObject's limit; larger objects are copied part by part.
const MAX_SINGLE_COPY: u64 = 5 * 1024 * 1024 * 1024;

/// A session's view of the bucket. Holds no home until the user has logged in.
#[derive(Debug)]
pub struct S3Store {
    bucket: Arc<Bucket>,
    /// The home's key prefix (`PREFIX/H/`), once logged in.
    home: Option<String>,
    data_timeout: Duration,
    /// Directories this session saw exist lately: uploads into one ask about it once.
    known_dirs: KnownDirs,
}

impl S3Store {
    pub fn new(bucket: Arc<Bucket>, data_timeout: Duration) -> Self {
        S3Store {
            bucket,
            home: None,
            data_timeout,
            known_dirs: KnownDirs::default(),
        }
    }

    fn home(&self) -> Result<&str, StoreError> {
        self.home.as_deref().ok_or(StoreError::NoHome)
    }

    /// The object key of a file.
    fn key(&self, path: &UserPath) -> Result<String, StoreError> {
        let key = format!("{}{}", self.home()?, path.relative().to_string_lossy());
        if key.len() > MAX_KEY_BYTES {
            return Err(StoreError::BadName(PathError::TooLong));
        }
        Ok(key)
    }

    /// The key prefix of a directory, ending in `/` (the home's may be empty: a whole bucket).
    fn dir_prefix(&self, path: &UserPath) -> Result<String, StoreError> {
        if path.is_home() {
            return Ok(self.home()?.to_owned());
        }
        Ok(format!("{}/", self.key(path)?))
    }

    async fn head(&self, key: &str) -> Result<Entry, S3Failure> {
        let request = self
            .bucket
            .client
            .head_object()
            .bucket(&self.bucket.name)
            .key(key);
        let object = self.bucket.call("HeadObject", request.send()).await?;
        Ok(Entry {
            kind: EntryKind::File,
            len: object.content_length().unwrap_or(0).max(0) as u64,
            modified: object
                .last_modified()
                .and_then(|t| SystemTime::try_from(*t).ok()),
            mode: FILE_MODE,
        })
    }

    /// The directory at `path`, if any key lies under it (its marker included).
    async fn directory(&self, path: &UserPath) -> Result<Option<Entry>, StoreError> {
        if path.is_home() {
            return Ok(Some(directory(None)));
        }
        let prefix = self.dir_prefix(path)?;
        if self.known_dirs.contains(&prefix) {
            return Ok(Some(directory(None)));
        }
        let found = self.look_up_directory(&prefix).await?;
        if found.is_some() {
            self.known_dirs.remember(&prefix);
        }
        Ok(found)
    }

    async fn look_up_directory(&self, prefix: &str) -> Result<Option<Entry>, StoreError> {
        // A directory made with MKD has a marker: one HeadObject, which costs the same
        // whatever the bucket holds (a listing can cost more on some services).
        match self.head(prefix).await {
            Ok(marker) => return Ok(Some(directory(marker.modified))),
            Err(failure) if failure.is_not_found() => {}
            Err(failure) => return Err(failure.into()),
        }
        // Without a marker, a directory exists while any key lies under it.
        let keys = self.keys_under(prefix, 1).await?;
        Ok(keys.first().map(|_| directory(None)))
    }

    /// Up to `max` keys under `prefix` (no delimiter: nested ones too), with their times.
    async fn keys_under(
        &self,
        prefix: &str,
        max: i32,
    ) -> Result<Vec<(String, Option<SystemTime>)>, StoreError> {
        let request = self
            .bucket
            .client
            .list_objects_v2()
            .bucket(&self.bucket.name)
            .prefix(prefix)
            .max_keys(max);
        let page = self.bucket.call("ListObjectsV2", request.send()).await?;
        Ok(page
            .contents()
            .iter()
            .filter_map(|object| {
                let modified = object
                    .last_modified()
                    .and_then(|t| SystemTime::try_from(*t).ok());
                Some((object.key()?.to_owned(), modified))
            })
            .collect())
    }

    /// Every key under a directory being renamed, with its size; refused past
    /// [`RENAME_MAX_KEYS`].
    async fn all_keys_under(&self, prefix: &str) -> Result<Vec<(String, u64)>, StoreError> {
        let mut keys = Vec::new();
        self.each_key_under(prefix, |key, len| {
            keys.push((key, len));
            if keys.len() > RENAME_MAX_KEYS {
                return Err(StoreError::Unsupported(format!(
                    "Directory too large to rename on object storage (over {RENAME_MAX_KEYS} files)"
                )));
            }
            Ok(())
        })
        .await
        .map(|()| keys)
    }

    /// Hands `visit` every key under `prefix` with its size, a ListObjectsV2 page at a time.
    async fn each_key_under(
        &self,
        prefix: &str,
        mut visit: impl FnMut(String, u64) -> Result<(), StoreError> + Send,
    ) -> Result<(), StoreError> {
        let mut token = None;
        loop {
            let request = self
                .bucket
                .client
                .list_objects_v2()
                .bucket(&self.bucket.name)
                .prefix(prefix)
                .set_continuation_token(token.take());
            let page = self.bucket.call("ListObjectsV2", request.send()).await?;
            for object in page.contents() {
                if let Some(key) = object.key() {
                    visit(key.to_owned(), object.size().unwrap_or(0).max(0) as u64)?;
                }
            }
            match page.next_continuation_token() {
                Some(next) if page.is_truncated() == Some(true) => token = Some(next.to_owned()),
                _ => return Ok(()),
            }
        }
    }

    /// A file or directory at `path`, as on disk: a file wins over a prefix of the same name.
    async fn find(&self, path: &UserPath) -> Result<Entry, StoreError> {
        if path.is_home() {
            return Ok(directory(None));
        }
        match self.head(&self.key(path)?).await {
            Ok(entry) => Ok(entry),
            Err(failure) if failure.is_not_found() => {
                self.directory(path).await?.ok_or(StoreError::NotFound)
            }
            Err(failure) => Err(failure.into()),
        }
    }

    /// Where a new file or directory named `path` may go: its parent is a directory. (A key
    /// and a prefix of one name can coexist in S3; a file named like a directory is not
    /// refused, which saves a listing per upload.)
    async fn check_new_name(&self, path: &UserPath) -> Result<(), StoreError> {
        let (parent, _) = path.split_parent().ok_or(StoreError::NotAFile)?;
        if self.directory(&parent).await?.is_none() {
            return Err(match self.find(&parent).await {
                Ok(_) => StoreError::NotADirectory,
                Err(error) => error,
            });
        }
        Ok(())
    }

    /// The length of the file at `path`; None when there is none.
    async fn existing_len(&self, key: &str) -> Result<Option<u64>, StoreError> {
        match self.head(key).await {
            Ok(entry) => Ok(Some(entry.len)),
            Err(failure) if failure.is_not_found() => Ok(None),
            Err(failure) => Err(failure.into()),
        }
    }

    /// Reads the client's upload into `upload` and commits it if it ended cleanly and `gate`
    /// agrees; aborts it otherwise. Returns the bytes received.
    async fn receive<R>(
        &self,
        input: &mut R,
        mut upload: ObjectUpload,
        gate: Arc<dyn CommitGate>,
    ) -> Result<u64, StoreError>
    where
        R: AsyncRead + Unpin + Send + ?Sized,
    {
        let mut incoming = Incoming::new(input, self.data_timeout);
        loop {
            let room = upload.room();
            let buffer = upload.buffer();
            let limit = buffer.len() + room;
            let ended = match incoming.fill(buffer, limit).await {
                Ok(ended) => ended,
                Err(error) => {
                    upload.abort().await;
                    return Err(error.into());
                }
            };
            if let Err(error) = upload.push().await {
                upload.abort().await;
                return Err(error);
            }
            if ended {
                break;
            }
        }
        if let Err(refused) = gate.may_commit() {
            upload.abort().await;
            return Err(refused);
        }
        upload.commit().await?;
        Ok(incoming.received())
    }

    /// A new object at `to` with the first `len` bytes of `from` plus what the client sends.
    async fn rewrite<R>(
        &self,
        key: String,
        keep: u64,
        input: &mut R,
        gate: Arc<dyn CommitGate>,
    ) -> Result<u64, StoreError>
    where
        R: AsyncRead + Unpin + Send + ?Sized,
    {
        let mut upload = ObjectUpload::new(self.bucket.clone(), key.clone(), Replace::Allowed);
        if let Err(error) = upload.copy_from(&key, keep).await {
            upload.abort().await;
            return Err(error);
        }
        self.receive(input, upload, gate).await
    }

    /// Copies one object inside the bucket (CopyObject, or part by part past 5 GiB).
    async fn copy_object(&self, from: &str, to: &str, len: u64) -> Result<(), StoreError> {
        if len > MAX_SINGLE_COPY {
            let mut upload =
                ObjectUpload::new(self.bucket.clone(), to.to_owned(), Replace::Allowed);
            if let Err(error) = upload.copy_from(from, len).await {
                upload.abort().await;
                return Err(error);
            }
            return upload.commit().await;
        }
        let request = self
            .bucket
            .client
            .copy_object()
            .bucket(&self.bucket.name)
            .key(to)
            .copy_source(self.bucket.copy_source(from));
        self.bucket.call("CopyObject", request.send()).await?;
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let request = self
            .bucket
            .client
            .delete_object()
            .bucket(&self.bucket.name)
            .key(key);
        self.bucket.call("DeleteObject", request.send()).await?;
        Ok(())
    }
}

#[async_trait]
impl Store for S3Store {
    /// `home` is the account's home under the virtual root `/` the accounts see in bucket
    /// mode. Nothing is created: a prefix needs no marker to hold keys.
    fn enter(&mut self, home: &Path) -> io::Result<()> {
        let relative = home.strip_prefix("/").unwrap_or(home);
        let relative = relative
            .to_str()
            .ok_or_else(|| io::Error::other("home is not valid UTF-8"))?;
        self.home = Some(self.bucket.home_prefix(relative));
        Ok(())
    }

    async fn entry(&self, path: &UserPath) -> Result<Entry, StoreError> {
        self.find(path).await
    }

    async fn list(&self, path: &UserPath) -> Result<Vec<(String, Entry)>, StoreError> {
        let mut entries = Vec::new();
        if let Listing::Dir(mut pages) = self.listing(path).await? {
            while let Some(page) = pages.next_page().await? {
                entries.extend(page);
            }
            return Ok(entries);
        }
        Err(StoreError::NotADirectory)
    }

    async fn listing(&self, path: &UserPath) -> Result<Listing, StoreError> {
        let entry = self.find(path).await?;
        if entry.kind == EntryKind::Dir {
            let pages = ObjectPages::new(self.bucket.clone(), self.dir_prefix(path)?);
            return Ok(Listing::Dir(Box::new(pages)));
        }
        Ok(Listing::File(path.file_name(), entry))
    }

    async fn read_into<W>(
        &self,
        path: &UserPath,
        offset: u64,
        out: &mut W,
    ) -> Result<u64, StoreError>
    where
        W: AsyncWrite + Unpin + Send + Sync + ?Sized,
    {
        let key = self.key(path)?;
        let mut request = self
            .bucket
            .client
            .get_object()
            .bucket(&self.bucket.name)
            .key(&key);
        if offset > 0 {
            request = request.range(format!("bytes={offset}-"));
        }
        let mut body = match self.bucket.call("GetObject", request.send()).await {
            Ok(object) => object.body,
            Err(failure) if failure.is_invalid_range() => {
                // Past the end, or exactly at it (S3 has no empty range to answer that with).
                let len = self.head(&key).await?.len;
                if offset == len {
                    return Ok(0);
                }
                return Err(StoreError::InvalidRestOffset {
                    offset,
                    len: Some(len),
                });
            }
            Err(failure) if failure.is_not_found() => {
                return Err(match self.directory(path).await? {
                    Some(_) => StoreError::NotAFile,
                    None => StoreError::NotFound,
                });
            }
            Err(failure) => return Err(failure.into()),
        };
        let mut outgoing = Outgoing::new(out, self.data_timeout);
        while let Some(chunk) = body.next().await {
            let chunk =
                chunk.map_err(|error| StoreError::Backend(format!("GetObject: {error}")))?;
            outgoing.send(&chunk).await?;
        }
        Ok(outgoing.finish().await?)
    }

    async fn write_atomically<R>(
        &self,
        path: &UserPath,
        input: &mut R,
        gate: Arc<dyn CommitGate>,
        replace: Replace,
    ) -> Result<u64, StoreError>
    where
        R: AsyncRead + Unpin + Send + ?Sized,
    {
        self.check_new_name(path).await?;
        let upload = ObjectUpload::new(self.bucket.clone(), self.key(path)?, replace);
        self.receive(input, upload, gate).await
    }

    async fn write_in_place<R>(
        &self,
        path: &UserPath,
        offset: u64,
        input: &mut R,
        gate: Arc<dyn CommitGate>,
    ) -> Result<u64, StoreError>
    where
        R: AsyncRead + Unpin + Send + ?Sized,
    {
        let key = self.key(path)?;
        let lock = self.bucket.rewrite_lock(&key);
        let _one_at_a_time = lock.lock().await;
        match self.existing_len(&key).await? {
            Some(len) if offset <= len => self.rewrite(key, offset, input, gate).await,
            len => Err(StoreError::InvalidRestOffset { offset, len }),
        }
    }

    async fn checksum(
        &self,
        path: &UserPath,
        algorithm: HashAlgorithm,
    ) -> Result<Checksum, StoreError> {
        let key = self.key(path)?;
        let request = self
            .bucket
            .client
            .get_object()
            .bucket(&self.bucket.name)
            .key(&key);
        let mut body = match self.bucket.call("GetObject", request.send()).await {
            Ok(object) => object.body,
            Err(failure) if failure.is_not_found() && self.directory(path).await?.is_some() => {
                return Err(StoreError::NotAFile);
            }
            Err(failure) => return Err(failure.into()),
        };
        let mut digest = Digest::new(algorithm);
        while let Some(chunk) = body.next().await {
            let chunk =
                chunk.map_err(|error| StoreError::Backend(format!("GetObject: {error}")))?;
            digest.update(&chunk);
        }
        Ok(digest.finish())
    }

    async fn set_modified(&self, _path: &UserPath, _time: SystemTime) -> Result<(), StoreError> {
        Err(StoreError::Unsupported(
            "Object storage keeps the time of the upload; it cannot be set".into(),
        ))
    }

    async fn set_permissions(&self, _path: &UserPath, _mode: u32) -> Result<(), StoreError> {
        Err(StoreError::Unsupported(
            "Object storage has no permission bits".into(),
        ))
    }

    async fn append<R>(
        &self,
        path: &UserPath,
        input: &mut R,
        gate: Arc<dyn CommitGate>,
    ) -> Result<u64, StoreError>
    where
        R: AsyncRead + Unpin + Send + ?Sized,
    {
        let key = self.key(path)?;
        let lock = self.bucket.rewrite_lock(&key);
        let _one_at_a_time = lock.lock().await;
        let keep = match self.existing_len(&key).await? {
            Some(len) => len,
            None => {
                self.check_new_name(path).await?;
                0
            }
        };
        self.rewrite(key, keep, input, gate).await
    }

    /// Every object under the home but directory markers (`dir/`) and Ferry's own records.
    async fn measure(&self) -> Result<HomeUsage, StoreError> {
        let home = self.home()?.to_owned();
        let mut usage = HomeUsage::default();
        self.each_key_under(&home, |key, len| {
            let inside = &key[home.len()..];
            let ferrys_own = inside
                .split('/')
                .any(|part| part.starts_with(UPLOAD_TEMP_PREFIX));
            if !inside.is_empty() && !inside.ends_with('/') && !ferrys_own {
                usage.files += 1;
                usage.bytes += len;
            }
            Ok(())
        })
        .await
        .map(|()| usage)
    }

    async fn remove_file(&self, path: &UserPath) -> Result<(), StoreError> {
        let key = self.key(path)?;
        match self.head(&key).await {
            Ok(_) => self.delete(&key).await,
            Err(failure) if failure.is_not_found() => Err(match self.directory(path).await? {
                Some(_) => StoreError::NotAFile,
                None => StoreError::NotFound,
            }),
            Err(failure) => Err(failure.into()),
        }
    }

    async fn create_dir(&self, path: &UserPath) -> Result<(), StoreError> {
        let key = self.key(path)?;
        if path.is_home() || self.existing_len(&key).await?.is_some() {
            return Err(StoreError::AlreadyExists);
        }
        self.check_new_name(path).await?;
        if self.directory(path).await?.is_some() {
            return Err(StoreError::AlreadyExists);
        }
        let request = self
            .bucket
            .client
            .put_object()
            .bucket(&self.bucket.name)
            .key(format!("{key}/"))
            .if_none_match("*");
        self.bucket.call("PutObject", request.send()).await?;
        self.known_dirs.remember(&format!("{key}/"));
        Ok(())
    }

    async fn remove_dir(&self, path: &UserPath) -> Result<(), StoreError> {
        if path.is_home() {
            return Err(StoreError::Denied(
                "the home directory cannot be removed".into(),
            ));
        }
        let prefix = self.dir_prefix(path)?;
        let keys = self.keys_under(&prefix, 2).await?;
        match keys.as_slice() {
            [] => Err(match self.existing_len(&self.key(path)?).await? {
                Some(_) => StoreError::NotADirectory,
                None => StoreError::NotFound,
            }),
            [(marker, _)] if *marker == prefix => {
                self.known_dirs.forget(&prefix);
                self.delete(&prefix).await
            }
            _ => Err(StoreError::DirectoryNotEmpty),
        }
    }

    async fn rename(&self, from: &UserPath, to: &UserPath) -> Result<(), StoreError> {
        if from.is_home() || to.is_home() {
            return Err(StoreError::Denied(
                "the home directory cannot be renamed".into(),
            ));
        }
        let source = self.find(from).await?;
        let (from_key, to_key) = (self.key(from)?, self.key(to)?);
        if from_key == to_key {
            return Ok(());
        }
        self.check_new_name(to).await?;
        // Onto a directory: refused, as rename(2) refuses a file over a directory, and two
        // trees are never merged.
        if self.directory(to).await?.is_some() {
            return Err(StoreError::AlreadyExists);
        }
        if source.kind == EntryKind::File {
            self.copy_object(&from_key, &to_key, source.len).await?;
            return self.delete(&from_key).await;
        }
        let (from_prefix, to_prefix) = (self.dir_prefix(from)?, self.dir_prefix(to)?);
        if to_prefix.starts_with(&from_prefix) {
            return Err(StoreError::Denied(
                "a directory cannot move into itself".into(),
            ));
        }
        if self.existing_len(&to_key).await?.is_some() {
            return Err(StoreError::AlreadyExists);
        }
        let keys = self.all_keys_under(&from_prefix).await?;
        // Every copy first, then every delete: a failure midway leaves both trees, never none.
        for (key, len) in &keys {
            let rest = &key[from_prefix.len()..];
            self.copy_object(key, &format!("{to_prefix}{rest}"), *len)
                .await?;
        }
        self.known_dirs.forget(&from_prefix);
        for (key, _) in &keys {
            self.delete(key).await?;
        }
        Ok(())
    }
}
