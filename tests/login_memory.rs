//! Memory taken by failed logins is bounded and does not grow with their number: each argon2id
//! hash needs 19 MiB, at most `max_concurrent_logins` run at once, and those buffers are reused
//! rather than left behind in the allocator (400 wrong passwords used to take the server from
//! 11 MB to 400 MB of RSS, for good).
//!
//! The only test in this file, so the process's RSS is the server's and this test's alone.

mod common;

use common::TestServer;
use std::time::Duration;

/// Argon2id memory per hash (Ferry's parameters, `m = 19456` KiB).
const HASH_MEMORY: u64 = 19_456 * 1024;

/// Hashes allowed at once in this test (`max_concurrent_logins`).
const CONCURRENT_HASHES: usize = 4;

/// Room for everything else that grows under load: session state, tokio's threads and their
/// stacks, allocator slack.
const MARGIN: u64 = 24 * 1024 * 1024;

fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status");
    kib * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rss_after_400_failed_logins_stays_within_the_hashing_bound() {
    const CLIENTS: usize = 16;
    const ATTEMPTS_EACH: usize = 25;
    let server = TestServer::start_with(
        |config| {
            config.login_failures = None; // no bans: every attempt costs a hash
            config.max_concurrent_logins = CONCURRENT_HASHES;
            config.max_sessions_per_ip = CLIENTS + 1;
        },
        &common::default_users(),
    )
    .await;
    // One good login first, so that what any login needs once (the hashing path, the session
    // machinery) is in the baseline.
    let mut raw = server.raw_login("alice").await;
    raw.expect("QUIT", 221).await;
    let baseline = resident_bytes();

    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let addr = server.addr;
            tokio::spawn(async move {
                let mut raw = common::RawSession::connect(addr).await;
                for _ in 0..ATTEMPTS_EACH {
                    raw.expect("USER alice", 331).await;
                    raw.expect("PASS wrong password", 530).await;
                }
            })
        })
        .collect();
    let flood = async {
        for client in clients {
            client.await.expect("client");
        }
    };
    tokio::time::timeout(Duration::from_secs(240), flood)
        .await
        .expect("400 failed logins within 240 s");

    let after = resident_bytes();
    let bound = baseline + CONCURRENT_HASHES as u64 * HASH_MEMORY + MARGIN;
    let mib = |bytes: u64| bytes / (1024 * 1024);
    eprintln!(
        "RSS {} MiB before, {} MiB after {} failed logins (bound {} MiB)",
        mib(baseline),
        mib(after),
        CLIENTS * ATTEMPTS_EACH,
        mib(bound)
    );
    assert!(
        after <= bound,
        "RSS {} MiB after {} failed logins, from {} MiB; bound {} MiB",
        mib(after),
        CLIENTS * ATTEMPTS_EACH,
        mib(baseline),
        mib(bound)
    );
}
