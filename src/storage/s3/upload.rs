//! One upload to the bucket, visible only once committed.
//!
//! Bytes gather in a buffer of one part. A file that ends within the first part is one
//! PutObject at commit; a larger one becomes a multipart upload whose parts go out while the
//! client is still sending (at most `s3_upload_concurrency` parts in memory), completed at
//! commit. Anything else (an error, ABOR, a dropped session, shutdown) aborts the multipart
//! upload: S3 then holds neither a new object nor the parts. A process killed midway leaves
//! the upload recorded in the journal (`super::journal`), which the next start sweeps.

use super::bucket::{Bucket, S3Failure};
use super::journal;
use crate::storage::store::{Replace, StoreError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::Bytes;
use std::sync::Arc;
use tokio::task::JoinSet;

/// S3's smallest part: every part but the last must be at least this large.
const MIN_PART: u64 = 5 * 1024 * 1024;
/// Largest piece of an old object copied as one part (S3 allows 5 GiB; a piece can grow by
/// up to one more, see [`ObjectUpload::copy_from`]).
const MAX_COPIED_PART: u64 = 2 * 1024 * 1024 * 1024;

/// A multipart upload under way.
struct Multipart {
    upload_id: String,
    /// The journal object recording it, removed once it is completed or aborted.
    journal_key: String,
    done: Vec<CompletedPart>,
    in_flight: JoinSet<Result<CompletedPart, S3Failure>>,
    next_part: i32,
}

impl Multipart {
    fn take_part_number(&mut self) -> i32 {
        let number = self.next_part;
        self.next_part += 1;
        number
    }
}

pub struct ObjectUpload {
    bucket: Arc<Bucket>,
    key: String,
    replace: Replace,
    buffer: Vec<u8>,
    multipart: Option<Multipart>,
}

impl ObjectUpload {
    pub fn new(bucket: Arc<Bucket>, key: String, replace: Replace) -> Self {
        ObjectUpload {
            bucket,
            key,
            replace,
            buffer: Vec::new(),
            multipart: None,
        }
    }

    /// Room left in the part being filled: callers read at most this much before [`Self::push`].
    pub fn room(&self) -> usize {
        self.bucket
            .part_size
            .saturating_sub(self.buffer.len())
            .max(1)
    }

    /// The buffer to fill directly (avoids a copy); call [`Self::push`] after filling it.
    pub fn buffer(&mut self) -> &mut Vec<u8> {
        if self.buffer.capacity() == 0 {
            self.buffer.reserve_exact(self.bucket.part_size);
        }
        &mut self.buffer
    }

    /// Sends the buffer as a part once it holds a whole one.
    pub async fn push(&mut self) -> Result<(), StoreError> {
        if self.buffer.len() >= self.bucket.part_size {
            self.send_buffer().await?;
        }
        Ok(())
    }

    /// Appends `bytes` (a piece of an old object streamed through), sending whole parts.
    pub async fn write(&mut self, mut bytes: &[u8]) -> Result<(), StoreError> {
        while !bytes.is_empty() {
            let take = self.room().min(bytes.len());
            self.buffer().extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            self.push().await?;
        }
        Ok(())
    }

    /// Starts the new object with the first `len` bytes of `source` (APPE, REST+STOR). At
    /// least 5 MiB is copied inside S3 (UploadPartCopy, nothing passes through Ferry);
    /// less cannot be a part of its own, so it is streamed through.
    pub async fn copy_from(&mut self, source: &str, len: u64) -> Result<(), StoreError> {
        if len < MIN_PART {
            return self.stream_from(source, len).await;
        }
        let piece = (self.bucket.part_size as u64).clamp(MIN_PART, MAX_COPIED_PART);
        let pieces = len / piece;
        for index in 0..pieces {
            let start = index * piece;
            // The last piece takes the remainder, so that no piece is under 5 MiB.
            let end = if index + 1 == pieces {
                len
            } else {
                start + piece
            };
            let (bucket, key) = (self.bucket.clone(), self.key.clone());
            let multipart = self.multipart().await?;
            let part_number = multipart.take_part_number();
            let request = bucket
                .client
                .upload_part_copy()
                .bucket(&bucket.name)
                .key(key)
                .upload_id(&multipart.upload_id)
                .part_number(part_number)
                .copy_source(bucket.copy_source(source))
                .copy_source_range(format!("bytes={start}-{}", end - 1));
            let copied = bucket.call("UploadPartCopy", request.send()).await?;
            let e_tag = copied.copy_part_result.and_then(|result| result.e_tag);
            let part = CompletedPart::builder()
                .set_e_tag(e_tag)
                .part_number(part_number);
            multipart.done.push(part.build());
        }
        Ok(())
    }

    /// Streams the first `len` bytes of `source` into the upload.
    async fn stream_from(&mut self, source: &str, len: u64) -> Result<(), StoreError> {
        if len == 0 {
            return Ok(());
        }
        let request = self
            .bucket
            .client
            .get_object()
            .bucket(&self.bucket.name)
            .key(source)
            .range(format!("bytes=0-{}", len - 1));
        let mut body = self.bucket.call("GetObject", request.send()).await?.body;
        let mut copied = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk =
                chunk.map_err(|error| StoreError::Backend(format!("GetObject: {error}")))?;
            let take = chunk.len().min((len - copied) as usize);
            self.write(&chunk[..take]).await?;
            copied += take as u64;
        }
        if copied < len {
            // The old object shrank meanwhile: committing would lose bytes the client meant to keep.
            return Err(StoreError::Backend(format!(
                "GetObject: the object changed while it was read ({copied} of {len} bytes)"
            )));
        }
        Ok(())
    }

    /// Makes the object visible: one PutObject, or the last part and CompleteMultipartUpload.
    pub async fn commit(mut self) -> Result<(), StoreError> {
        let Some(mut multipart) = self.multipart.take() else {
            let body = ByteStream::from(std::mem::take(&mut self.buffer));
            let mut request = self
                .bucket
                .client
                .put_object()
                .bucket(&self.bucket.name)
                .key(&self.key)
                .body(body);
            if self.replace == Replace::Never {
                request = request.if_none_match("*");
            }
            self.bucket.call("PutObject", request.send()).await?;
            return Ok(());
        };
        let result = async {
            if !self.buffer.is_empty()
                || multipart.done.is_empty() && multipart.in_flight.is_empty()
            {
                let part = std::mem::take(&mut self.buffer);
                let number = multipart.take_part_number();
                multipart.in_flight.spawn(upload_part(
                    self.bucket.clone(),
                    self.key.clone(),
                    multipart.upload_id.clone(),
                    number,
                    Bytes::from(part),
                ));
            }
            while let Some(part) = multipart.in_flight.join_next().await {
                multipart.done.push(joined(part)?);
            }
            multipart.done.sort_by_key(|part| part.part_number());
            let parts = CompletedMultipartUpload::builder()
                .set_parts(Some(std::mem::take(&mut multipart.done)))
                .build();
            let mut request = self
                .bucket
                .client
                .complete_multipart_upload()
                .bucket(&self.bucket.name)
                .key(&self.key)
                .upload_id(&multipart.upload_id)
                .multipart_upload(parts);
            if self.replace == Replace::Never {
                request = request.if_none_match("*");
            }
            self.bucket
                .call("CompleteMultipartUpload", request.send())
                .await?;
            Ok(())
        }
        .await;
        match result {
            Ok(()) => {
                journal::forget(&self.bucket, &multipart.journal_key).await;
                Ok(())
            }
            Err(error) => {
                abort(self.bucket.clone(), self.key.clone(), multipart).await;
                Err(error)
            }
        }
    }

    /// Gives the upload up now (rather than from `Drop`, which can only spawn the abort).
    pub async fn abort(mut self) {
        if let Some(multipart) = self.multipart.take() {
            abort(self.bucket.clone(), self.key.clone(), multipart).await;
        }
    }

    /// The multipart upload, created (with its journal entry) on the first part.
    async fn multipart(&mut self) -> Result<&mut Multipart, StoreError> {
        let multipart = match self.multipart.take() {
            Some(multipart) => multipart,
            None => self.create_multipart().await?,
        };
        Ok(self.multipart.insert(multipart))
    }

    async fn create_multipart(&self) -> Result<Multipart, StoreError> {
        let request = self
            .bucket
            .client
            .create_multipart_upload()
            .bucket(&self.bucket.name)
            .key(&self.key);
        let created = self
            .bucket
            .call("CreateMultipartUpload", request.send())
            .await?;
        let upload_id = created.upload_id.ok_or_else(|| {
            StoreError::Backend("CreateMultipartUpload: no upload id in the answer".into())
        })?;
        let journal_key = match journal::record(&self.bucket, &self.key, &upload_id).await {
            Ok(journal_key) => journal_key,
            Err(error) => {
                // Unrecorded, a crash could leave it for good: give it up at once.
                let _ = self.bucket.abort_upload(&self.key, &upload_id).await;
                return Err(error.into());
            }
        };
        Ok(Multipart {
            upload_id,
            journal_key,
            done: Vec::new(),
            in_flight: JoinSet::new(),
            next_part: 1,
        })
    }

    /// Sends the full buffer as the next part; waits while as many parts as
    /// `s3_upload_concurrency` allows (the one being filled included) are in memory.
    async fn send_buffer(&mut self) -> Result<(), StoreError> {
        let part = Bytes::from(std::mem::take(&mut self.buffer));
        let (bucket, key) = (self.bucket.clone(), self.key.clone());
        let limit = self.bucket.upload_concurrency.saturating_sub(1).max(1);
        let multipart = self.multipart().await?;
        let (number, upload_id) = (multipart.take_part_number(), multipart.upload_id.clone());
        multipart
            .in_flight
            .spawn(upload_part(bucket, key, upload_id, number, part));
        while multipart.in_flight.len() >= limit {
            if let Some(part) = multipart.in_flight.join_next().await {
                multipart.done.push(joined(part)?);
            }
        }
        Ok(())
    }
}

impl Drop for ObjectUpload {
    /// Dropped before commit (ABOR, a closed session): the parts already sent are aborted in
    /// the background; a process that exits first leaves the journal entry for the next start.
    fn drop(&mut self) {
        if let Some(multipart) = self.multipart.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(abort(self.bucket.clone(), self.key.clone(), multipart));
        }
    }
}

async fn upload_part(
    bucket: Arc<Bucket>,
    key: String,
    upload_id: String,
    number: i32,
    part: Bytes,
) -> Result<CompletedPart, S3Failure> {
    let request = bucket
        .client
        .upload_part()
        .bucket(&bucket.name)
        .key(key)
        .upload_id(upload_id)
        .part_number(number)
        .body(ByteStream::from(part));
    let uploaded = bucket.call("UploadPart", request.send()).await?;
    Ok(CompletedPart::builder()
        .set_e_tag(uploaded.e_tag)
        .part_number(number)
        .build())
}

fn joined(
    part: Result<Result<CompletedPart, S3Failure>, tokio::task::JoinError>,
) -> Result<CompletedPart, StoreError> {
    match part {
        Ok(part) => Ok(part?),
        Err(join_error) => Err(StoreError::Backend(format!("UploadPart: {join_error}"))),
    }
}

/// Stops the parts still in flight, aborts the multipart upload, and forgets its journal entry
/// once S3 confirmed (or the upload was already gone).
async fn abort(bucket: Arc<Bucket>, key: String, mut multipart: Multipart) {
    multipart.in_flight.shutdown().await;
    match bucket.abort_upload(&key, &multipart.upload_id).await {
        Ok(()) => journal::forget(&bucket, &multipart.journal_key).await,
        Err(failure) => {
            slog::warn!(bucket.logger, "could not abort an unfinished upload; the next sweep retries";
                "key" => &key, "error" => failure.to_string());
        }
    }
}
