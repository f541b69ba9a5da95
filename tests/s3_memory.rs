//! Object storage memory: a 1 GiB upload to S3 holds at most the parts in flight. Alone in its
//! test binary, so that the process's resident memory is this upload's and nothing else's.

mod common;
#[path = "common/s3.rs"]
mod s3;

use common::{default_users, pattern, resident_bytes};
use std::time::Duration;
use tokio::io::AsyncWriteExt;

const MIB: usize = 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_gib_upload_keeps_memory_within_parts_in_flight() {
    let f = s3::Fixture::start_with(&default_users(), |_| {}).await;
    let (server, client, bucket) = (&f.server, &f.s3, &f.bucket);
    let part_size = 5 * MIB;
    let concurrency = 2;
    let mut raw = server.raw_login("alice").await;
    // A small upload first, so that what every upload sets up once (TLS-less HTTP client
    // pools, the SDK's caches) is in the baseline.
    let mut data_connection = raw.epsv(server.addr).await;
    raw.expect("STOR warm-up.bin", 150).await;
    data_connection
        .write_all(&pattern(6 * MIB))
        .await
        .expect("send");
    drop(data_connection);
    assert_eq!(raw.reply().await.0, 226);
    let before = resident_bytes();
    let mut data_connection = raw.epsv(server.addr).await;
    raw.send("STOR gib.bin").await;
    assert_eq!(raw.reply().await.0, 150);
    let chunk = pattern(MIB);
    let mut peak = before;
    for _ in 0..1024 {
        data_connection.write_all(&chunk).await.expect("send");
        peak = peak.max(resident_bytes());
    }
    drop(data_connection);
    let (code, text) = tokio::time::timeout(Duration::from_secs(600), raw.reply())
        .await
        .expect("reply within 10 minutes");
    assert_eq!(code, 226, "{text}");
    let growth = peak.saturating_sub(before);
    let budget = part_size * concurrency + 32 * MIB;
    assert!(
        growth < budget as u64,
        "RSS grew by {} MiB, budget {} MiB",
        growth / MIB as u64,
        budget / MIB
    );
    let head = client
        .head_object()
        .bucket(bucket)
        .key("site/alice/gib.bin")
        .send()
        .await
        .expect("the object");
    assert_eq!(head.content_length(), Some(1024 * MIB as i64));
}
