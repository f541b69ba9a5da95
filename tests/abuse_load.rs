//! Load-shaped abuse against the real binary, measuring the server process's own memory:
//! endless command lines, and a connection flood from one address.

mod common;
mod support;

use common::{PASSWORD, RawSession, pattern};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use support::process::{FerryProcess, prepared_dir};
use support::transfers::{retrieve, store};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::watch;

/// These tests measure memory and throughput: run them one at a time, not side by side.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const FLOODING_CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const OTHER_CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// "A few MiB": growth allowed over the idle server. Each session costs libunftp and Ferry a
/// few tens of KiB; what must not happen is growth with the bytes clients send or the number
/// of connections they try.
const MAX_GROWTH_KIB: u64 = 8 * 1024;

/// Logs in, lists, and leaves: touches the allocations every session makes, so they count in
/// the idle size rather than as growth.
async fn warm_up(server: SocketAddr) {
    let mut raw = RawSession::connect(server).await;
    raw.expect("USER alice", 331).await;
    raw.expect(format!("PASS {PASSWORD}"), 230).await;
    raw.expect("QUIT", 221).await;
}

const LINE_CLIENTS: usize = 20;
/// What each client tries to send without a newline; the server cuts it off after 4 KiB.
const LINE_ATTEMPT_BYTES: u64 = 1 << 30;
const LINE_CHUNK: usize = 64 * 1024;

/// One client sending `LINE_ATTEMPT_BYTES` without a newline until the server closes the
/// connection: the bytes it got to send, and what the server replied.
async fn send_endless_line(server: SocketAddr) -> (u64, String) {
    let stream = TcpStream::connect(server).await.expect("connect");
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let mut greeting = String::new();
    read.read_line(&mut greeting).await.expect("greeting");
    let replies = tokio::spawn(async move {
        let mut reply = String::new();
        let _ = read.read_line(&mut reply).await;
        reply
    });
    let chunk = vec![b'A'; LINE_CHUNK];
    let mut sent = 0u64;
    while sent < LINE_ATTEMPT_BYTES {
        match tokio::time::timeout(Duration::from_secs(10), write.write_all(&chunk)).await {
            Ok(Ok(())) => sent += LINE_CHUNK as u64,
            // Reset or broken pipe: the server has closed the connection. A timeout: it has
            // stopped reading; either way this client stops.
            Ok(Err(_)) | Err(_) => break,
        }
    }
    let reply = tokio::time::timeout(Duration::from_secs(10), replies)
        .await
        .map(|joined| joined.unwrap_or_default())
        .unwrap_or_default();
    (sent, reply)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_clients_sending_a_gibibyte_without_a_newline_leave_server_memory_flat() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let dir = prepared_dir();
    let ferry = FerryProcess::start(dir.path(), &[]).await;
    warm_up(ferry.addr).await;
    let idle = ferry.rss_kib();
    let peak = ferry.watch_peak_rss();
    let started = Instant::now();
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..LINE_CLIENTS {
        clients.spawn(send_endless_line(ferry.addr));
    }
    let results = tokio::time::timeout(Duration::from_secs(60), clients.join_all())
        .await
        .expect("every client is cut off within 60 s");
    let peak = peak.stop();
    let most_sent = results.iter().map(|(sent, _)| *sent).max().unwrap_or(0);
    eprintln!(
        "endless lines: {LINE_CLIENTS} clients cut off in {:?}; most any client sent {} KiB; \
         server RSS idle {idle} KiB, peak {peak} KiB (+{} KiB), after {} KiB",
        started.elapsed(),
        most_sent / 1024,
        peak.saturating_sub(idle),
        ferry.rss_kib()
    );
    for (sent, reply) in &results {
        assert!(
            reply.starts_with("500 Command line too long"),
            "reply {reply:?} after {sent} bytes"
        );
        assert!(*sent < 64 * 1024 * 1024, "cut off only after {sent} bytes");
    }
    assert!(
        peak.saturating_sub(idle) < MAX_GROWTH_KIB,
        "server RSS grew from {idle} KiB to {peak} KiB"
    );
}

/// Uploads and downloads a 1 MiB file in a loop from `source` until `stop`, checking every
/// byte; publishes the rounds completed. Returns the rounds, or the first failure.
async fn keep_transferring(
    server: SocketAddr,
    source: IpAddr,
    stop: Arc<AtomicBool>,
    rounds: watch::Sender<u32>,
) -> Result<u32, String> {
    let mut raw = RawSession::connect_from(server, source).await;
    raw.expect("USER alice", 331).await;
    raw.expect(format!("PASS {PASSWORD}"), 230).await;
    raw.expect("TYPE I", 200).await;
    let name = format!("moving-{source}.bin");
    let mut round = 0u32;
    while !stop.load(Ordering::Relaxed) {
        let mut content = pattern(1024 * 1024);
        content[..4].copy_from_slice(&round.to_be_bytes());
        let stored = store(&mut raw, server, &name, &content).await;
        if stored != 226 {
            return Err(format!("round {round}: STOR got {stored}"));
        }
        let (back, code) = retrieve(&mut raw, server, &name).await;
        if code != 226 || back != content {
            return Err(format!(
                "round {round}: RETR got {code}, {} bytes",
                back.len()
            ));
        }
        round += 1;
        rounds.send_replace(round);
    }
    Ok(round)
}

const FLOOD_ATTEMPTS: usize = 5000;
/// Connections the flood keeps in flight at once (under the listen backlog of 1024, so that
/// what is measured is Ferry, not SYN retransmission).
const FLOOD_IN_FLIGHT: usize = 200;

/// What a flood connection saw.
#[derive(Debug, Default)]
struct FloodTally {
    greeted: usize,
    refused: usize,
    failed: usize,
}

/// `FLOOD_ATTEMPTS` connections from 127.0.0.1, each reading the first reply and leaving.
async fn flood(server: SocketAddr) -> FloodTally {
    let permits = Arc::new(tokio::sync::Semaphore::new(FLOOD_IN_FLIGHT));
    let mut attempts = tokio::task::JoinSet::new();
    for _ in 0..FLOOD_ATTEMPTS {
        let permit = permits
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore open");
        attempts.spawn(async move {
            let _permit = permit;
            let first_line = tokio::time::timeout(Duration::from_secs(10), async {
                let stream = TcpStream::connect(server).await.ok()?;
                let mut line = String::new();
                BufReader::new(stream).read_line(&mut line).await.ok()?;
                Some(line)
            })
            .await;
            first_line.ok().flatten().unwrap_or_default()
        });
    }
    let mut tally = FloodTally::default();
    for line in attempts.join_all().await {
        match line.get(..4) {
            Some("220 ") => tally.greeted += 1,
            Some("421 ") => tally.refused += 1,
            _ => tally.failed += 1,
        }
    }
    tally
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_5000_connections_from_one_ip_leaves_sessions_transferring() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let dir = prepared_dir();
    let limits = ["--max-sessions", "200", "--max-sessions-per-ip", "20"];
    let ferry = FerryProcess::start(dir.path(), &limits).await;
    let stop = Arc::new(AtomicBool::new(false));
    let mut movers = Vec::new();
    let mut progress = Vec::new();
    for source in [FLOODING_CLIENT, OTHER_CLIENT] {
        let (rounds, watching) = watch::channel(0u32);
        movers.push(tokio::spawn(keep_transferring(
            ferry.addr,
            source,
            stop.clone(),
            rounds,
        )));
        progress.push(watching);
    }
    for watching in &mut progress {
        tokio::time::timeout(Duration::from_secs(30), watching.wait_for(|r| *r >= 1))
            .await
            .expect("a first round trip before the flood")
            .expect("mover alive");
    }
    let idle = ferry.rss_kib();
    let before: Vec<u32> = progress.iter().map(|w| *w.borrow()).collect();

    let peak = ferry.watch_peak_rss();
    let started = Instant::now();
    let tally = tokio::time::timeout(Duration::from_secs(90), flood(ferry.addr))
        .await
        .expect("the flood ends within 90 s");
    let flood_time = started.elapsed();
    let during: Vec<u32> = progress
        .iter()
        .zip(&before)
        .map(|(w, b)| *w.borrow() - b)
        .collect();
    stop.store(true, Ordering::Relaxed);
    let peak = peak.stop();
    for mover in movers {
        let rounds = mover.await.expect("mover does not panic");
        assert!(rounds.is_ok(), "a transfer failed: {rounds:?}");
    }
    let mut fresh = RawSession::connect_from(ferry.addr, OTHER_CLIENT).await;
    fresh.expect("USER alice", 331).await;
    fresh.expect(format!("PASS {PASSWORD}"), 230).await;

    eprintln!(
        "connection flood: {FLOOD_ATTEMPTS} attempts in {flood_time:?}: {tally:?}; round trips \
         (1 MiB up + down) during the flood per session: {during:?}; server RSS idle {idle} \
         KiB, peak {peak} KiB (+{} KiB)",
        peak.saturating_sub(idle)
    );
    assert_eq!(tally.greeted + tally.refused + tally.failed, FLOOD_ATTEMPTS);
    assert!(tally.refused > 0, "the per-IP limit never applied");
    assert!(
        tally.failed <= FLOOD_ATTEMPTS / 100,
        "{} connections neither greeted nor refused",
        tally.failed
    );
    assert!(
        during.iter().all(|rounds| *rounds >= 1),
        "a session stalled during the flood: {during:?}"
    );
    assert!(
        peak.saturating_sub(idle) < MAX_GROWTH_KIB,
        "server RSS grew from {idle} KiB to {peak} KiB"
    );
}
