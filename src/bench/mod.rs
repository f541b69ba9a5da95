//! The load generator behind `ferry-bench`: each scenario drives any FTP server with raw
//! commands, counts bytes and errors, and becomes one JSON line ([`Report`]).
//!
//! A scenario with an error or a wrong byte count is invalid: its report carries no figure,
//! so a broken run can never pass for a fast one. Standalone: it uses nothing else of Ferry's.

pub mod client;
mod discard;
pub mod floor;
pub mod probe;
pub mod reaper;
mod scenarios;

pub use scenarios::pattern;

use client::Connector;
use probe::ProcessTree;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Bytes in a MB, as throughput is reported (MB/s, decimal like `dd` and the literature).
const BYTES_PER_MB: f64 = 1e6;
/// Bytes in a GiB, the unit of server CPU cost (CPU seconds per GiB moved).
const BYTES_PER_GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// Longest wait after a scenario for a forking server's session processes to be reaped, so
/// their CPU time is counted (see `probe::ProcessTree::settle`).
const SETTLE_LIMIT: Duration = Duration::from_secs(5);

/// Why one operation of a scenario failed.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    #[error("{command}: unexpected reply {reply:?}")]
    UnexpectedReply { command: String, reply: String },
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("{what}: expected {expected}, got {got}")]
    WrongSize {
        what: String,
        expected: u64,
        got: u64,
    },
    #[error("bad server URL {url:?}: {problem}")]
    Url { url: String, problem: &'static str },
}

/// `ferry-bench`: measures an FTP server; prints one JSON line per run.
#[derive(Debug, clap::Parser)]
#[command(
    name = "ferry-bench",
    version,
    about = "Measures an FTP server (Ferry or any other) over loopback; prints one JSON line"
)]
pub struct BenchArgs {
    /// The server and the account to use (percent-encode special characters)
    #[arg(long, default_value = "ftp://demo:ferry-demo@127.0.0.1:2121/")]
    pub url: String,
    /// Process id of the server: its CPU time and memory (PSS, forked children included)
    /// are read from /proc
    #[arg(long, value_name = "PID")]
    pub server_pid: Option<u32>,
    /// Name of the server in the report
    #[arg(long, default_value = "server")]
    pub label: String,
    /// Seconds any single wait (connect, reply, read, write) may take
    #[arg(long, default_value_t = 60)]
    pub io_timeout: u64,
    /// Seconds the whole scenario may take
    #[arg(long, default_value_t = 900)]
    pub time_limit: u64,
    #[command(subcommand)]
    pub scenario: Scenario,
}

/// The scenarios. Paths are relative to the account's home; sizes take KiB/MiB/GiB suffixes.
///
/// With `--accounts M`, the URL's user name is a prefix: session (or login) `i` logs in as
/// `{prefix}{i % M}`, all with the URL's password. Without it, every session is the URL's
/// user, which a server that remembers verified logins (Ferry does) answers without hashing.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Scenario {
    /// Raw loopback TCP transfer through the same send and receive code: the ceiling
    Raw {
        #[arg(long, default_value = "1GiB", value_parser = parse_size)]
        size: u64,
    },
    /// One session downloads PATH, which must be SIZE bytes
    Retr {
        #[arg(long, default_value = "big.bin")]
        path: String,
        #[arg(long, default_value = "1GiB", value_parser = parse_size)]
        size: u64,
    },
    /// One session uploads SIZE bytes to PATH, then checks SIZE
    Stor {
        #[arg(long, default_value = "up/big.bin")]
        path: String,
        #[arg(long, default_value = "1GiB", value_parser = parse_size)]
        size: u64,
    },
    /// SESSIONS sessions at once each connect, log in and download PATH (SIZE bytes)
    RetrMany {
        #[arg(long, default_value_t = 500)]
        sessions: usize,
        /// Spread the sessions over this many accounts (USER0, USER1...)
        #[arg(long, value_name = "M", value_parser = clap::value_parser!(u32).range(1..))]
        accounts: Option<u32>,
        #[arg(long, default_value = "medium.bin")]
        path: String,
        #[arg(long, default_value = "10MiB", value_parser = parse_size)]
        size: u64,
    },
    /// SESSIONS sessions at once each connect, log in and upload SIZE bytes into DIR
    StorMany {
        #[arg(long, default_value_t = 500)]
        sessions: usize,
        /// Spread the sessions over this many accounts (USER0, USER1...)
        #[arg(long, value_name = "M", value_parser = clap::value_parser!(u32).range(1..))]
        accounts: Option<u32>,
        #[arg(long, default_value = "up")]
        dir: String,
        #[arg(long, default_value = "10MiB", value_parser = parse_size)]
        size: u64,
    },
    /// One session uploads FILES files of SIZE into DIR, then downloads and checks each
    SmallFiles {
        #[arg(long, default_value_t = 500)]
        files: usize,
        #[arg(long, default_value = "4KiB", value_parser = parse_size)]
        size: u64,
        #[arg(long, default_value = "small")]
        dir: String,
    },
    /// LIST PATH (which holds ENTRIES entries) REPEAT times; reports the median
    List {
        #[arg(long, default_value = "list")]
        path: String,
        #[arg(long, default_value_t = 10_000)]
        entries: u64,
        #[arg(long, default_value_t = 5)]
        repeat: usize,
    },
    /// WORKERS workers connect, log in and quit until COUNT logins or SECONDS have passed
    Login {
        #[arg(long, default_value_t = 32)]
        workers: usize,
        #[arg(long, default_value_t = 5_000)]
        count: u64,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// WORKERS workers connect, log in and quit, once as each of USER0 .. USER{ACCOUNTS-1}:
    /// no login repeats an account, so a cache of verified logins never answers one
    LoginsCold {
        #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(1..))]
        accounts: u32,
        #[arg(long, default_value_t = 32)]
        workers: usize,
    },
    /// Holds SESSIONS logged-in sessions; reports the server's memory growth per session
    Idle {
        #[arg(long, default_value_t = 1_000)]
        sessions: usize,
    },
    /// Not a scenario: runs a server (`reap -- vsftpd conf`) as a child of this process, which
    /// adopts and reaps what the server orphans; give this process's id as --server-pid
    Reap {
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Not a scenario: the least an async FTP server does for small files (one task per
    /// session, no checks, no logging), serving ROOT on BIND (loopback) until killed
    Floor {
        #[arg(long, default_value = "127.0.0.1:2624")]
        bind: std::net::SocketAddr,
        #[arg(long)]
        root: std::path::PathBuf,
        /// Write uploads as Ferry does (blocking pool, unnamed file linked in) instead of in place
        #[arg(long)]
        atomic_uploads: bool,
    },
}

/// One scenario's result: the JSON line `ferry-bench` prints.
#[derive(Debug, serde::Serialize)]
pub struct Report {
    pub scenario: &'static str,
    pub label: String,
    /// No errors and every byte accounted for; only then is there a `figure`.
    pub valid: bool,
    /// The headline number in `unit`.
    pub figure: Option<f64>,
    pub unit: &'static str,
    pub higher_is_better: bool,
    pub seconds: f64,
    pub bytes: u64,
    pub expected_bytes: u64,
    pub operations: u64,
    pub errors: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_cpu_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_cpu_s_per_gib: Option<f64>,
    /// Server CPU milliseconds per login, for the login scenarios: what one password check
    /// (or a cache's answer instead) costs the server, connect to QUIT.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_cpu_ms_per_login: Option<f64>,
    /// This load generator's own CPU time: on a small machine it shares the cores with the
    /// server, so it is part of the picture.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_cpu_s: Option<f64>,
    /// Parts timed on their own (small-files: `stor` then `retr`), when the run is valid.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub phases: Vec<Phase>,
}

/// What a scenario counted: bytes against what they should have been, operations, errors.
#[derive(Debug, Default)]
pub struct Tally {
    pub bytes: u64,
    pub expected_bytes: u64,
    pub operations: u64,
    pub errors: u64,
    pub first_error: Option<String>,
}

impl Tally {
    /// Counts a failure, keeping the first message for the report.
    pub fn fail(&mut self, error: BenchError) {
        self.errors += 1;
        self.first_error.get_or_insert_with(|| error.to_string());
    }

    /// Counts a transfer of `got` bytes that should have been `expected`.
    pub fn transfer(&mut self, got: u64, expected: u64) {
        self.bytes += got;
        self.expected_bytes += expected;
        self.operations += 1;
    }

    pub fn merge(&mut self, other: Tally) {
        self.bytes += other.bytes;
        self.expected_bytes += other.expected_bytes;
        self.operations += other.operations;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    pub fn is_valid(&self) -> bool {
        self.errors == 0 && self.bytes == self.expected_bytes
    }
}

/// What a scenario returns: its tally, how long it took, and its figure if it is valid.
pub struct Measured {
    pub tally: Tally,
    pub seconds: f64,
    pub figure: f64,
    /// Parts of the scenario timed on their own (small-files: its uploads, its downloads).
    pub phases: Vec<Phase>,
}

/// One timed part of a scenario: its rate and what it cost the server.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Phase {
    pub name: &'static str,
    pub files_per_s: f64,
    /// Server CPU microseconds per file in this phase (absent without --server-pid).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_cpu_us_per_file: Option<f64>,
    /// The load generator's own CPU microseconds per file in this phase.
    pub client_cpu_us_per_file: f64,
}

impl Scenario {
    /// Whether the scenario drives a single session, one command at a time.
    pub fn is_one_session(&self) -> bool {
        matches!(
            self,
            Scenario::Retr { .. }
                | Scenario::Stor { .. }
                | Scenario::SmallFiles { .. }
                | Scenario::List { .. }
        )
    }
}

/// The headline figure of a scenario, and which direction is better.
fn unit_of(scenario: &Scenario) -> (&'static str, bool) {
    match scenario {
        Scenario::Raw { .. }
        | Scenario::Retr { .. }
        | Scenario::Stor { .. }
        | Scenario::RetrMany { .. }
        | Scenario::StorMany { .. } => ("MB/s", true),
        Scenario::SmallFiles { .. } => ("files/s", true),
        Scenario::List { .. } => ("ms", false),
        Scenario::Login { .. } => ("sessions/s", true),
        Scenario::LoginsCold { .. } => ("logins/s", true),
        Scenario::Idle { .. } => ("KiB/session", false),
        Scenario::Reap { .. } | Scenario::Floor { .. } => ("", false),
    }
}

fn name_of(scenario: &Scenario) -> &'static str {
    match scenario {
        Scenario::Raw { .. } => "raw",
        Scenario::Retr { .. } => "retr",
        Scenario::Stor { .. } => "stor",
        Scenario::RetrMany { .. } => "retr-many",
        Scenario::StorMany { .. } => "stor-many",
        Scenario::SmallFiles { .. } => "small-files",
        Scenario::List { .. } => "list",
        Scenario::Login { .. } => "login",
        Scenario::LoginsCold { .. } => "logins-cold",
        Scenario::Idle { .. } => "idle",
        Scenario::Reap { .. } => "reap",
        Scenario::Floor { .. } => "floor",
    }
}

/// MB/s for `bytes` moved in `seconds`.
pub fn megabytes_per_second(bytes: u64, seconds: f64) -> f64 {
    bytes as f64 / BYTES_PER_MB / seconds.max(f64::MIN_POSITIVE)
}

/// Runs the scenario `args` names within its time limit and reports it.
pub async fn run(args: &BenchArgs) -> Report {
    let (unit, higher_is_better) = unit_of(&args.scenario);
    let server = args.server_pid.map(|root| ProcessTree { root });
    let client = ProcessTree {
        root: std::process::id(),
    };
    let client_cpu_before = client.cpu_seconds().ok();
    let size_before = server.and_then(|tree| tree.size().ok());
    let cpu_before = server.and_then(|tree| tree.cpu_seconds().ok());
    let started = Instant::now();
    let limit = Duration::from_secs(args.time_limit);
    let outcome = match connector_for(args) {
        Ok(connector) => {
            let work = scenarios::run(&args.scenario, Arc::new(connector), server);
            match tokio::time::timeout(limit, work).await {
                Ok(measured) => measured,
                Err(_) => Err(BenchError::Timeout("the scenario's time limit")),
            }
        }
        Err(error) => Err(error),
    };
    if let (Some(tree), Some(size)) = (server, size_before) {
        let _ = tree.settle(size, SETTLE_LIMIT).await;
    }
    let cpu_after = server.and_then(|tree| tree.cpu_seconds().ok());
    let client_cpu_s = client_cpu_before
        .zip(client.cpu_seconds().ok())
        .map(|(before, after)| round(after - before));
    let measured = outcome.unwrap_or_else(|error| {
        let mut tally = Tally::default();
        tally.fail(error);
        Measured {
            tally,
            seconds: started.elapsed().as_secs_f64(),
            figure: 0.0,
            phases: Vec::new(),
        }
    });
    let server_cpu_s = cpu_before
        .zip(cpu_after)
        .map(|(before, after)| after - before);
    let moved = measured.tally.bytes;
    let logins = measured.tally.operations;
    let valid = measured.tally.is_valid();
    Report {
        scenario: name_of(&args.scenario),
        label: args.label.clone(),
        valid,
        figure: valid.then_some(round(measured.figure)),
        unit,
        higher_is_better,
        seconds: round(measured.seconds),
        bytes: moved,
        expected_bytes: measured.tally.expected_bytes,
        operations: measured.tally.operations,
        errors: measured.tally.errors,
        first_error: measured.tally.first_error,
        server_cpu_s: server_cpu_s.map(round),
        server_cpu_s_per_gib: server_cpu_s
            .filter(|_| moved > 0)
            .map(|cpu| round(cpu / (moved as f64 / BYTES_PER_GIB))),
        server_cpu_ms_per_login: server_cpu_s
            .filter(|_| {
                logins > 0
                    && matches!(
                        args.scenario,
                        Scenario::Login { .. } | Scenario::LoginsCold { .. }
                    )
            })
            .map(|cpu| round(cpu * 1000.0 / logins as f64)),
        client_cpu_s,
        phases: if valid { measured.phases } else { Vec::new() },
    }
}

/// The user name session or login `index` logs in as: `prefix` itself, or with `accounts`,
/// `{prefix}{index % accounts}`.
pub fn account_name(prefix: &str, accounts: Option<u32>, index: usize) -> String {
    match accounts {
        Some(accounts) => format!("{prefix}{}", index % accounts.max(1) as usize),
        None => prefix.to_owned(),
    }
}

/// Three decimals are more than any of these measurements can resolve.
fn round(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

fn connector_for(args: &BenchArgs) -> Result<Connector, BenchError> {
    let (addr, user, password) = parse_url(&args.url)?;
    Ok(Connector::new(
        addr,
        user,
        password,
        Duration::from_secs(args.io_timeout),
    ))
}

/// Splits `ftp://user:password@host:port/` (port 21 when absent); user and password are
/// percent-decoded.
pub fn parse_url(url: &str) -> Result<(SocketAddr, String, String), BenchError> {
    let bad = |problem| BenchError::Url {
        url: url.to_owned(),
        problem,
    };
    let rest = url
        .strip_prefix("ftp://")
        .ok_or_else(|| bad("must start with ftp://"))?;
    let authority = rest.split('/').next().unwrap_or(rest);
    let (credentials, host) = authority
        .rsplit_once('@')
        .ok_or_else(|| bad("needs user:password@"))?;
    let (user, password) = credentials
        .split_once(':')
        .ok_or_else(|| bad("needs user:password@"))?;
    let host = if host.contains(':') && !host.ends_with(']') {
        host.to_owned()
    } else {
        format!("{host}:21")
    };
    let addr = host
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| bad("host does not resolve"))?;
    let user = percent_decode(user).ok_or_else(|| bad("bad percent-encoding"))?;
    let password = percent_decode(password).ok_or_else(|| bad("bad percent-encoding"))?;
    Ok((addr, user, password))
}

fn percent_decode(text: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(text.len());
    let mut input = text.bytes();
    while let Some(byte) = input.next() {
        if byte == b'%' {
            let hex = [input.next()?, input.next()?];
            let hex = std::str::from_utf8(&hex).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
        } else {
            bytes.push(byte);
        }
    }
    String::from_utf8(bytes).ok()
}

/// Parses `1GiB`, `10MiB`, `4KiB`, `4096`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (number, multiplier) = [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)]
        .iter()
        .find_map(|(suffix, multiplier)| text.strip_suffix(suffix).map(|n| (n, *multiplier)))
        .unwrap_or((text, 1));
    number
        .trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(multiplier))
        .ok_or_else(|| format!("not a size: {text:?} (e.g. 4096, 4KiB, 10MiB, 1GiB)"))
}

/// Runs `future` within `limit`, naming `what` when it does not finish.
pub async fn bounded<T>(
    limit: Duration,
    what: &'static str,
    future: impl Future<Output = std::io::Result<T>>,
) -> Result<T, BenchError> {
    match tokio::time::timeout(limit, future).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(BenchError::Timeout(what)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_binary_suffixes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("4KiB"), Ok(4096));
        assert_eq!(parse_size("10MiB"), Ok(10 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert!(parse_size("1GB").is_err());
    }

    #[test]
    fn url_gives_address_and_decoded_credentials() {
        let (addr, user, password) =
            parse_url("ftp://bench:p%40ss%3Aword@127.0.0.1:2121/").expect("parses");
        assert_eq!(addr, "127.0.0.1:2121".parse().expect("address"));
        assert_eq!(user, "bench");
        assert_eq!(password, "p@ss:word");
        assert!(parse_url("http://a:b@127.0.0.1/").is_err());
        assert!(parse_url("ftp://127.0.0.1/").is_err());
    }

    #[test]
    fn sessions_spread_over_accounts_round_robin() {
        assert_eq!(account_name("bench", None, 7), "bench");
        assert_eq!(account_name("bench", Some(3), 0), "bench0");
        assert_eq!(account_name("bench", Some(3), 7), "bench1");
        assert_eq!(account_name("bench", Some(1000), 999), "bench999");
    }

    #[test]
    fn accounts_take_a_positive_count() {
        use clap::Parser;
        let parse = |argv: &[&str]| BenchArgs::try_parse_from(argv).map(|args| args.scenario);
        assert!(matches!(
            parse(&["ferry-bench", "retr-many", "--accounts", "100"]),
            Ok(Scenario::RetrMany {
                accounts: Some(100),
                ..
            })
        ));
        assert!(matches!(
            parse(&["ferry-bench", "stor-many"]),
            Ok(Scenario::StorMany { accounts: None, .. })
        ));
        assert!(matches!(
            parse(&[
                "ferry-bench",
                "logins-cold",
                "--accounts",
                "10",
                "--workers",
                "2"
            ]),
            Ok(Scenario::LoginsCold {
                accounts: 10,
                workers: 2
            })
        ));
        assert!(parse(&["ferry-bench", "logins-cold", "--accounts", "0"]).is_err());
    }

    #[test]
    fn a_tally_with_an_error_or_a_missing_byte_is_invalid() {
        let mut tally = Tally::default();
        tally.transfer(10, 10);
        assert!(tally.is_valid());
        tally.transfer(9, 10);
        assert!(!tally.is_valid());
        let mut failed = Tally::default();
        failed.fail(BenchError::Timeout("reply"));
        assert!(!failed.is_valid());
    }
}
