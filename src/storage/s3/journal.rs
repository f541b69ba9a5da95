//! The record of unfinished multipart uploads, so that no crash leaves one behind for good.
//!
//! Before the first part of an upload is sent, Ferry writes a small object under
//! `PREFIX/.ferry-upload-journal/INSTANCE/` naming the key and upload id, and deletes it once
//! the upload is completed or aborted. An upload whose process died (kill -9, a lost node) is
//! still listed there: the instance sweeps its own entries when it starts (none of them can be
//! running then), and every instance periodically sweeps entries of any instance older than
//! a day. Clients never see the journal: its name carries the upload-temporary prefix.

use super::bucket::{Bucket, S3Failure};
use aws_sdk_s3::primitives::ByteStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

/// An entry this old belongs to an upload no client is still sending (uploads that slow end
/// with `data_timeout` long before).
pub const STALE_AFTER: Duration = Duration::from_secs(24 * 60 * 60);
/// How often each instance sweeps stale entries.
pub const SWEEP_EVERY: Duration = Duration::from_secs(60 * 60);

static ENTRY_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Records the upload; returns the journal entry's key.
pub async fn record(bucket: &Bucket, key: &str, upload_id: &str) -> Result<String, S3Failure> {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|since| since.as_nanos())
        .unwrap_or_default();
    let entry = format!(
        "{}{}/{nanos}-{}-{}",
        bucket.journal_prefix(),
        bucket.instance_id,
        std::process::id(),
        ENTRY_COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let body = serde_json::json!({ "key": key, "upload_id": upload_id }).to_string();
    let request = bucket
        .client
        .put_object()
        .bucket(&bucket.name)
        .key(&entry)
        .body(ByteStream::from(body.into_bytes()));
    bucket.call("PutObject", request.send()).await?;
    Ok(entry)
}

/// Removes a journal entry (its upload is completed or aborted). A failure is logged and left
/// to the sweep, which finds the upload gone.
pub async fn forget(bucket: &Bucket, entry: &str) {
    let request = bucket
        .client
        .delete_object()
        .bucket(&bucket.name)
        .key(entry);
    if let Err(failure) = bucket.call("DeleteObject", request.send()).await {
        slog::warn!(bucket.logger, "could not remove an upload journal entry";
            "entry" => entry, "error" => failure.to_string());
    }
}

/// At start: aborts every upload this instance recorded (a previous run's, since this one has
/// not begun any) and those of any instance older than [`STALE_AFTER`]. Returns how many.
pub async fn sweep_at_start(bucket: &Bucket) -> Result<usize, S3Failure> {
    let own = format!("{}{}/", bucket.journal_prefix(), bucket.instance_id);
    let mine = sweep(bucket, &own, Duration::ZERO).await?;
    Ok(mine + sweep_stale(bucket).await?)
}

/// Aborts recorded uploads of any instance older than [`STALE_AFTER`].
pub async fn sweep_stale(bucket: &Bucket) -> Result<usize, S3Failure> {
    sweep(bucket, &bucket.journal_prefix(), STALE_AFTER).await
}

async fn sweep(bucket: &Bucket, prefix: &str, older_than: Duration) -> Result<usize, S3Failure> {
    let now = SystemTime::now();
    let mut swept = 0;
    let mut token = None;
    loop {
        let request = bucket
            .client
            .list_objects_v2()
            .bucket(&bucket.name)
            .prefix(prefix)
            .set_continuation_token(token.take());
        let page = bucket.call("ListObjectsV2", request.send()).await?;
        for object in page.contents() {
            let (Some(entry), Some(modified)) = (object.key(), object.last_modified()) else {
                continue;
            };
            let age = SystemTime::try_from(*modified)
                .ok()
                .and_then(|modified| now.duration_since(modified).ok())
                .unwrap_or_default();
            if age >= older_than && abort_recorded(bucket, entry).await? {
                swept += 1;
            }
        }
        match page.next_continuation_token() {
            Some(next) if page.is_truncated() == Some(true) => token = Some(next.to_owned()),
            _ => return Ok(swept),
        }
    }
}

/// Aborts the upload a journal entry names and removes the entry; false when the entry was
/// unreadable or already gone.
async fn abort_recorded(bucket: &Bucket, entry: &str) -> Result<bool, S3Failure> {
    let request = bucket.client.get_object().bucket(&bucket.name).key(entry);
    let body = match bucket.call("GetObject", request.send()).await {
        Ok(object) => object
            .body
            .collect()
            .await
            .map(|data| data.to_vec())
            .unwrap_or_default(),
        Err(failure) if failure.is_not_found() => return Ok(false),
        Err(failure) => return Err(failure),
    };
    let recorded: Option<(String, String)> = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|value| {
            Some((
                value.get("key")?.as_str()?.to_owned(),
                value.get("upload_id")?.as_str()?.to_owned(),
            ))
        });
    if let Some((key, upload_id)) = &recorded {
        bucket.abort_upload(key, upload_id).await?;
    }
    let request = bucket
        .client
        .delete_object()
        .bucket(&bucket.name)
        .key(entry);
    bucket.call("DeleteObject", request.send()).await?;
    Ok(recorded.is_some())
}
