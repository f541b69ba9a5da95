//! The store a session works on, as `root` chose it: the local filesystem or a bucket.
//!
//! [`Store`] has generic methods, so it cannot be a trait object; this enum forwards each call
//! to the store inside, and the server stays one type whichever `root` is.

use super::checksum::{Checksum, HashAlgorithm};
use super::local::LocalStore;
use super::paths::UserPath;
use super::s3::S3Store;
use super::store::{CommitGate, Entry, HomeUsage, Listing, Replace, Store, StoreError};
use async_trait::async_trait;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;
use tokio::io::{AsyncRead, AsyncWrite};

#[derive(Debug)]
pub enum SessionStore {
    Local(LocalStore),
    Bucket(S3Store),
}

/// Runs `$call` on whichever store `$self` holds, bound as `$store`.
macro_rules! forward {
    ($self:ident, $store:ident => $call:expr) => {
        match $self {
            SessionStore::Local($store) => $call,
            SessionStore::Bucket($store) => $call,
        }
    };
}

#[async_trait]
impl Store for SessionStore {
    fn enter(&mut self, home: &Path) -> io::Result<()> {
        forward!(self, store => store.enter(home))
    }

    async fn entry(&self, path: &UserPath) -> Result<Entry, StoreError> {
        forward!(self, store => store.entry(path).await)
    }

    async fn list(&self, path: &UserPath) -> Result<Vec<(String, Entry)>, StoreError> {
        forward!(self, store => store.list(path).await)
    }

    async fn listing(&self, path: &UserPath) -> Result<Listing, StoreError> {
        forward!(self, store => store.listing(path).await)
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
        forward!(self, store => store.read_into(path, offset, out).await)
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
        forward!(self, store => store.write_atomically(path, input, gate, replace).await)
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
        forward!(self, store => store.write_in_place(path, offset, input, gate).await)
    }

    async fn checksum(
        &self,
        path: &UserPath,
        algorithm: HashAlgorithm,
    ) -> Result<Checksum, StoreError> {
        forward!(self, store => store.checksum(path, algorithm).await)
    }

    async fn set_modified(&self, path: &UserPath, time: SystemTime) -> Result<(), StoreError> {
        forward!(self, store => store.set_modified(path, time).await)
    }

    async fn set_permissions(&self, path: &UserPath, mode: u32) -> Result<(), StoreError> {
        forward!(self, store => store.set_permissions(path, mode).await)
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
        forward!(self, store => store.append(path, input, gate).await)
    }

    async fn measure(&self) -> Result<HomeUsage, StoreError> {
        forward!(self, store => store.measure().await)
    }

    async fn available_space(&self) -> Option<u64> {
        forward!(self, store => store.available_space().await)
    }

    async fn remove_file(&self, path: &UserPath) -> Result<(), StoreError> {
        forward!(self, store => store.remove_file(path).await)
    }

    async fn create_dir(&self, path: &UserPath) -> Result<(), StoreError> {
        forward!(self, store => store.create_dir(path).await)
    }

    async fn remove_dir(&self, path: &UserPath) -> Result<(), StoreError> {
        forward!(self, store => store.remove_dir(path).await)
    }

    async fn rename(&self, from: &UserPath, to: &UserPath) -> Result<(), StoreError> {
        forward!(self, store => store.rename(from, to).await)
    }
}
