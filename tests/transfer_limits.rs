//! `max_transfers` bounds the blocking threads transfers can take: past it a transfer is
//! refused at once (450), so one user's stalled transfers cannot starve everyone's logins and
//! listings; `data_timeout` then frees the stalled ones. Alone in its test binary so that the
//! thread count it reads is the server's and its own.

mod common;

use common::{TestServer, default_users};
use std::ops::RangeInclusive;
use std::time::{Duration, Instant};

/// Passive ports of its own, below Linux's ephemeral range.
const PORTS: RangeInclusive<u16> = 30700..=30750;

fn descriptors_of_this_process() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("read /proc/self/fd")
        .count()
}

fn threads_of_this_process() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("Threads:"))
        .and_then(|count| count.trim().parse().ok())
        .expect("Threads: line")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_transfers_past_max_transfers_are_refused_and_logins_and_listings_go_on() {
    const MAX_TRANSFERS: usize = 4;
    let server = TestServer::start_with(
        |c| {
            c.passive_ports = PORTS;
            c.max_transfers = MAX_TRANSFERS;
            c.data_timeout = Duration::from_secs(3);
        },
        &default_users(),
    )
    .await;
    std::fs::create_dir_all(server.home("alice")).unwrap();
    std::fs::create_dir_all(server.home("reader")).unwrap();
    std::fs::write(server.home("reader").join("doc.txt"), b"for the others").unwrap();
    let threads_before = threads_of_this_process();
    let descriptors_before = descriptors_of_this_process();

    // One user fills every transfer slot with uploads that send nothing.
    let mut stalled = Vec::new();
    for i in 0..MAX_TRANSFERS {
        let mut session = server.raw_login("alice").await;
        let data = session.epsv(server.addr).await;
        session.expect(format!("STOR stalled{i}.bin"), 150).await;
        stalled.push((session, data));
    }
    // Further transfers are refused at once instead of taking more threads.
    let mut refused = Vec::new();
    for i in 0..8 {
        let mut session = server.raw_login("alice").await;
        let data = session.epsv(server.addr).await;
        session.expect(format!("STOR more{i}.bin"), 150).await;
        assert_eq!(
            session.reply_within(Duration::from_secs(5)).await,
            Some(450),
            "a transfer past max_transfers"
        );
        refused.push((session, data));
    }
    let grown = threads_of_this_process().saturating_sub(threads_before);
    assert!(
        grown <= MAX_TRANSFERS + 4,
        "{grown} more threads for {MAX_TRANSFERS} running and 8 refused transfers"
    );
    // Both ends are in this process: 4 descriptors per session (control and data, client and
    // server), and a running upload adds its file, a duplicate of its socket and a pipe.
    let sessions = MAX_TRANSFERS + 8;
    let opened = descriptors_of_this_process().saturating_sub(descriptors_before);
    assert!(
        opened <= 4 * sessions + 4 * MAX_TRANSFERS + 10,
        "{opened} more descriptors for {sessions} sessions and {MAX_TRANSFERS} running transfers"
    );

    // Everyone else still logs in and lists at once.
    let started = Instant::now();
    let mut other = server.raw_login("reader").await;
    let listing = other.epsv(server.addr).await;
    other.expect("NLST", 150).await;
    assert_eq!(common::read_all(listing).await, b"doc.txt\r\n");
    assert_eq!(other.reply().await.0, 226);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    // The stalled ones end at the data timeout, and their slots serve others.
    for (session, _) in &mut stalled {
        assert_eq!(
            session.reply_within(Duration::from_secs(10)).await,
            Some(426)
        );
    }
    let data = other.epsv(server.addr).await;
    other.expect("RETR doc.txt", 150).await;
    assert_eq!(common::read_all(data).await, b"for the others");
    assert_eq!(other.reply().await.0, 226);
}
