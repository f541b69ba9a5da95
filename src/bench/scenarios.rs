//! The scenarios: what each does to the server, what it checks, and which figure it yields.

use super::client::{self, Connector, Session};
use super::discard::Discard;
use super::probe::{ProcessTree, own_cpu_seconds};
use super::{
    BenchError, Measured, Phase, Scenario, Tally, account_name, bounded, megabytes_per_second,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// Bytes of the block that uploads repeat. Not zeros, so no layer can take a shortcut.
const SEND_BLOCK: usize = 1 << 20;

/// How long idle sessions sit before the server's memory is read, so that whatever the
/// server does once per session after login has happened.
const IDLE_SETTLE: Duration = Duration::from_secs(2);

pub async fn run(
    scenario: &Scenario,
    connector: Arc<Connector>,
    server: Option<ProcessTree>,
) -> Result<Measured, BenchError> {
    match scenario {
        Scenario::Raw { size } => raw_ceiling(*size, connector.io_timeout).await,
        Scenario::Retr { path, size } => retr(connector, path, *size).await,
        Scenario::Stor { path, size } => stor(connector, path, *size).await,
        Scenario::RetrMany {
            sessions,
            accounts,
            path,
            size,
        } => {
            let path = path.clone();
            many(*sessions, *size, move |index| {
                let user = account_name(&connector.user, *accounts, index);
                download_in_new_session(connector.clone(), user, path.clone())
            })
            .await
        }
        Scenario::StorMany {
            sessions,
            accounts,
            dir,
            size,
        } => {
            let (dir, size) = (dir.clone(), *size);
            let block: Arc<[u8]> = pattern(SEND_BLOCK, 1).into();
            many(*sessions, size, move |index| {
                let user = account_name(&connector.user, *accounts, index);
                let path = format!("{dir}/many-{index}.bin");
                upload_in_new_session(connector.clone(), user, path, size, block.clone())
            })
            .await
        }
        Scenario::SmallFiles { files, size, dir } => {
            small_files(connector, *files, *size as usize, dir, server).await
        }
        Scenario::List {
            path,
            entries,
            repeat,
        } => list(connector, path, *entries, *repeat).await,
        Scenario::Login {
            workers,
            count,
            seconds,
        } => login_rate(connector, *workers, *count, Duration::from_secs(*seconds)).await,
        Scenario::LoginsCold { accounts, workers } => {
            cold_logins(connector, *accounts, *workers).await
        }
        Scenario::Idle { sessions } => idle(connector, *sessions, server).await,
        Scenario::Reap { .. } | Scenario::Floor { .. } => Err(BenchError::Protocol(
            "reap and floor run a server; they are not scenarios".to_owned(),
        )),
    }
}

/// Deterministic bytes, different for each `seed` and not periodic at any power of two.
pub fn pattern(len: usize, seed: u32) -> Vec<u8> {
    let mut state = 0x2545_f491_u32 ^ seed.wrapping_mul(0x9e37_79b9);
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect()
}

fn throughput(tally: Tally, started: Instant) -> Measured {
    let seconds = started.elapsed().as_secs_f64();
    Measured {
        figure: megabytes_per_second(tally.bytes, seconds),
        tally,
        seconds,
        phases: Vec::new(),
    }
}

/// A raw loopback TCP transfer between two tasks of this process, through the same send and
/// receive functions the FTP scenarios use: what the machine can move at best.
async fn raw_ceiling(size: u64, io_timeout: Duration) -> Result<Measured, BenchError> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let block = pattern(SEND_BLOCK, 0);
    let sender = tokio::spawn(async move {
        let (mut stream, _) = bounded(io_timeout, "accept", listener.accept()).await?;
        client::send_repeated(&mut stream, size, &block, io_timeout).await
    });
    let discard = Discard::new()?;
    let started = Instant::now();
    let stream = bounded(io_timeout, "connect", TcpStream::connect(addr)).await?;
    let received = discard.receive_all(&stream, io_timeout).await?;
    let mut tally = Tally::default();
    tally.transfer(received, size);
    let measured = throughput(tally, started);
    sender
        .await
        .map_err(|error| BenchError::Protocol(format!("sender task: {error}")))??;
    Ok(measured)
}

/// One session downloads one file; only the transfer (EPSV to 226) is timed.
async fn retr(connector: Arc<Connector>, path: &str, size: u64) -> Result<Measured, BenchError> {
    let mut session = Session::open_logged_in(connector).await?;
    let discard = Discard::new()?;
    let started = Instant::now();
    let received = session.retr(path, &discard).await?;
    let mut tally = Tally::default();
    tally.transfer(received, size);
    let measured = throughput(tally, started);
    session.quit().await?;
    Ok(measured)
}

/// One session uploads one file; only the transfer (EPSV to 226) is timed, then SIZE must
/// report every byte.
async fn stor(connector: Arc<Connector>, path: &str, size: u64) -> Result<Measured, BenchError> {
    let mut session = Session::open_logged_in(connector).await?;
    let block = pattern(SEND_BLOCK, 1);
    let started = Instant::now();
    let sent = session.stor(path, size, &block).await?;
    let mut tally = Tally::default();
    tally.transfer(sent, size);
    let measured = throughput(tally, started);
    check_stored_size(&mut session, path, size).await?;
    session.quit().await?;
    Ok(measured)
}

/// `sessions` tasks at once, each running `session(index)` and expecting `size` bytes moved;
/// aggregate throughput over the wall time from the first connect to the last QUIT.
async fn many<F, Fut>(sessions: usize, size: u64, session: F) -> Result<Measured, BenchError>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<u64, BenchError>> + Send + 'static,
{
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for index in 0..sessions {
        tasks.spawn(session(index));
    }
    let mut tally = Tally::default();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(moved)) => tally.transfer(moved, size),
            Ok(Err(error)) => {
                tally.expected_bytes += size;
                tally.fail(error);
            }
            Err(error) => {
                tally.expected_bytes += size;
                tally.fail(BenchError::Protocol(format!("session task: {error}")));
            }
        }
    }
    Ok(throughput(tally, started))
}

async fn download_in_new_session(
    connector: Arc<Connector>,
    user: String,
    path: String,
) -> Result<u64, BenchError> {
    let mut session = Session::open_logged_in_as(connector, &user).await?;
    let received = session.retr(&path, &Discard::new()?).await?;
    session.quit().await?;
    Ok(received)
}

async fn upload_in_new_session(
    connector: Arc<Connector>,
    user: String,
    path: String,
    size: u64,
    block: Arc<[u8]>,
) -> Result<u64, BenchError> {
    let mut session = Session::open_logged_in_as(connector, &user).await?;
    let sent = session.stor(&path, size, &block).await?;
    check_stored_size(&mut session, &path, size).await?;
    session.quit().await?;
    Ok(sent)
}

/// After an upload: the server must report every byte (SIZE).
async fn check_stored_size(session: &mut Session, path: &str, size: u64) -> Result<(), BenchError> {
    let stored = session.size(path).await?;
    if stored == size {
        Ok(())
    } else {
        Err(BenchError::WrongSize {
            what: format!("bytes in {path} after STOR (SIZE)"),
            expected: size,
            got: stored,
        })
    }
}

/// One session uploads `files` files, then downloads each and compares its content; the
/// figure is transfers (uploads plus downloads) per second. The uploads and the downloads are
/// also timed apart (`phases`), each with the server's CPU per file.
async fn small_files(
    connector: Arc<Connector>,
    files: usize,
    size: usize,
    dir: &str,
    server: Option<ProcessTree>,
) -> Result<Measured, BenchError> {
    let mut session = Session::open_logged_in(connector).await?;
    let contents: Vec<Vec<u8>> = (0..files).map(|i| pattern(size, i as u32 + 2)).collect();
    let mut tally = Tally::default();
    let cpu = || server.and_then(|tree| tree.cpu_seconds().ok());
    let per_file = |seconds: f64| (seconds * 1e6 / files.max(1) as f64).round();
    // The clock stops before the server's CPU is read (a walk of /proc).
    let phase = |name, elapsed: Duration, before: Readings, after: Readings| Phase {
        name,
        files_per_s: files as f64 / elapsed.as_secs_f64(),
        server_cpu_us_per_file: before
            .server
            .zip(after.server)
            .map(|(b, a)| per_file(a - b)),
        client_cpu_us_per_file: per_file(after.client - before.client),
    };
    let read = || Readings {
        server: cpu(),
        client: own_cpu_seconds(),
    };
    let (before, started) = (read(), Instant::now());
    for (index, content) in contents.iter().enumerate() {
        let path = format!("{dir}/small-{index}.bin");
        let sent = session.stor(&path, size as u64, content).await?;
        tally.transfer(sent, size as u64);
    }
    let elapsed = started.elapsed();
    let stor = phase("stor", elapsed, before, read());
    let (before, retr_started) = (read(), Instant::now());
    for (index, content) in contents.iter().enumerate() {
        let path = format!("{dir}/small-{index}.bin");
        let received = session.retr_to_vec(&path).await?;
        tally.transfer(received.len() as u64, size as u64);
        if received != *content {
            tally.fail(BenchError::Protocol(format!("{path}: content differs")));
        }
    }
    let elapsed = retr_started.elapsed();
    let retr = phase("retr", elapsed, before, read());
    let seconds = started.elapsed().as_secs_f64();
    session.quit().await?;
    Ok(Measured {
        figure: tally.operations as f64 / seconds,
        tally,
        seconds,
        phases: vec![stor, retr],
    })
}

/// CPU seconds so far: the server's (with --server-pid) and the load generator's own.
#[derive(Clone, Copy)]
struct Readings {
    server: Option<f64>,
    client: f64,
}

/// LIST `path` `repeat` times; each must show `entries` lines. The figure is the median
/// time of one LIST (EPSV to 226) in milliseconds.
async fn list(
    connector: Arc<Connector>,
    path: &str,
    entries: u64,
    repeat: usize,
) -> Result<Measured, BenchError> {
    let mut session = Session::open_logged_in(connector).await?;
    let mut tally = Tally::default();
    let mut times = Vec::with_capacity(repeat);
    let started = Instant::now();
    for _ in 0..repeat.max(1) {
        let listed = Instant::now();
        let listing = session.list(path).await?;
        times.push(listed.elapsed().as_secs_f64() * 1000.0);
        let lines = listing
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .count() as u64;
        tally.transfer(listing.len() as u64, listing.len() as u64);
        if lines != entries {
            tally.fail(BenchError::WrongSize {
                what: format!("entries in LIST {path}"),
                expected: entries,
                got: lines,
            });
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    session.quit().await?;
    times.sort_by(f64::total_cmp);
    Ok(Measured {
        figure: times[times.len() / 2],
        tally,
        seconds,
        phases: Vec::new(),
    })
}

/// `workers` loops of connect, USER, PASS, QUIT, until `count` logins or `limit` has passed.
async fn login_rate(
    connector: Arc<Connector>,
    workers: usize,
    count: u64,
    limit: Duration,
) -> Result<Measured, BenchError> {
    let started = Instant::now();
    let claimed = Arc::new(AtomicU64::new(0));
    let mut tasks = JoinSet::new();
    for _ in 0..workers {
        let (connector, claimed) = (connector.clone(), claimed.clone());
        tasks.spawn(async move {
            let mut tally = Tally::default();
            while started.elapsed() < limit && claimed.fetch_add(1, Ordering::Relaxed) < count {
                match login_once(connector.clone()).await {
                    Ok(()) => tally.transfer(0, 0),
                    Err(error) => tally.fail(error),
                }
            }
            tally
        });
    }
    Ok(operations_per_second(tasks, started).await)
}

/// `workers` loops of connect, USER, PASS, QUIT, each as the next of `accounts` accounts
/// that has not logged in yet, until every account has once. The figure is logins a second.
async fn cold_logins(
    connector: Arc<Connector>,
    accounts: u32,
    workers: usize,
) -> Result<Measured, BenchError> {
    let started = Instant::now();
    let next_account = Arc::new(AtomicU64::new(0));
    let mut tasks = JoinSet::new();
    for _ in 0..workers.max(1) {
        let (connector, next_account) = (connector.clone(), next_account.clone());
        tasks.spawn(async move {
            let mut tally = Tally::default();
            loop {
                let index = next_account.fetch_add(1, Ordering::Relaxed);
                if index >= u64::from(accounts) {
                    break tally;
                }
                let user = format!("{}{index}", connector.user);
                match login_once_as(connector.clone(), &user).await {
                    Ok(()) => tally.transfer(0, 0),
                    Err(error) => tally.fail(error),
                }
            }
        });
    }
    Ok(operations_per_second(tasks, started).await)
}

/// Joins the workers' tallies; the figure is their operations a second since `started`.
async fn operations_per_second(mut tasks: JoinSet<Tally>, started: Instant) -> Measured {
    let mut tally = Tally::default();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(worker) => tally.merge(worker),
            Err(error) => tally.fail(BenchError::Protocol(format!("worker task: {error}"))),
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    Measured {
        figure: tally.operations as f64 / seconds,
        tally,
        seconds,
        phases: Vec::new(),
    }
}

async fn login_once(connector: Arc<Connector>) -> Result<(), BenchError> {
    let user = connector.user.clone();
    login_once_as(connector, &user).await
}

async fn login_once_as(connector: Arc<Connector>, user: &str) -> Result<(), BenchError> {
    let mut session = Session::open(connector).await?;
    session.login_as(user).await?;
    session.quit().await
}

/// Opens `sessions` logged-in sessions and holds them while the server's memory is read;
/// the figure is the growth over a server that has served one login, per session, in KiB.
async fn idle(
    connector: Arc<Connector>,
    sessions: usize,
    server: Option<ProcessTree>,
) -> Result<Measured, BenchError> {
    let server =
        server.ok_or_else(|| BenchError::Protocol("idle needs --server-pid".to_owned()))?;
    // One login first, so one-time costs (caches, allocator arenas) are in the baseline.
    login_once(connector.clone()).await?;
    tokio::time::sleep(IDLE_SETTLE).await;
    let before = server.pss_kib()?;
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for _ in 0..sessions {
        tasks.spawn(Session::open_logged_in(connector.clone()));
    }
    let mut held = Vec::with_capacity(sessions);
    let mut tally = Tally::default();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(session)) => {
                held.push(session);
                tally.transfer(0, 0);
            }
            Ok(Err(error)) => tally.fail(error),
            Err(error) => tally.fail(BenchError::Protocol(format!("session task: {error}"))),
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    tokio::time::sleep(IDLE_SETTLE).await;
    let after = server.pss_kib()?;
    drop(held);
    Ok(Measured {
        figure: after.saturating_sub(before) as f64 / sessions.max(1) as f64,
        tally,
        seconds,
        phases: Vec::new(),
    })
}
