//! Memory per listing is bounded: listings of a large directory that clients do not read hold
//! one page each, not the whole directory. Alone in its test binary, so that the process's
//! resident memory it reads is the server's and this test's.

mod common;

use common::{TestServer, read_all, resident_bytes};
use std::time::Duration;

const ENTRIES: usize = 30_000;
const UNREAD_LISTINGS: usize = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unread_listings_of_a_large_directory_hold_one_page_each() {
    let started = std::time::Instant::now();
    let server = TestServer::start().await;
    let big = server.home("alice").join("big");
    std::fs::create_dir_all(&big).unwrap();
    for i in 0..ENTRIES {
        std::fs::File::create(big.join(format!("{i:06}-{}.dat", "n".repeat(90)))).unwrap();
    }
    eprintln!("created in {:?}", started.elapsed());
    // One full listing first, so that caches and allocator pools are warm for the baseline.
    let mut warm = server.raw_login("alice").await;
    let data = warm.epsv(server.addr).await;
    warm.expect("MLSD big", 150).await;
    assert_eq!(
        read_all(data).await.iter().filter(|b| **b == b'\n').count(),
        ENTRIES
    );
    assert_eq!(warm.reply().await.0, 226);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let baseline = resident_bytes();

    let mut unread = Vec::new();
    for _ in 0..UNREAD_LISTINGS {
        let mut session = server.raw_login("alice").await;
        let data = session.epsv(server.addr).await;
        session.expect("MLSD big", 150).await;
        unread.push((session, data));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let grown = resident_bytes().saturating_sub(baseline);
    eprintln!("{UNREAD_LISTINGS} unread listings: +{} KiB", grown >> 10);
    // A whole MLSD of this directory is about 5 MiB of text (and as much again of entries while
    // it is formatted), which the kernel's socket buffers take only part of; one page is about
    // 170 KiB of text.
    assert!(
        grown < 15 << 20,
        "{UNREAD_LISTINGS} unread listings grew the process by {} MiB",
        grown >> 20
    );
    for (mut session, data) in unread {
        assert_eq!(
            read_all(data).await.iter().filter(|b| **b == b'\n').count(),
            ENTRIES
        );
        assert_eq!(session.reply().await.0, 226);
    }
}
