//! Server configuration: one validated struct, layered defaults < file < env < flags.

use crate::logging::LogFormat;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

/// Blocks an IP after repeated failed logins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginFailurePolicy {
    /// Failed logins from one IP before it is refused.
    pub max_attempts: u32,
    /// How long the IP stays refused (and the window in which failures are counted).
    pub ban: Duration,
}

/// The validated configuration of `ferry serve`. Every field has a TOML key, a `FERRY_<KEY>`
/// environment variable and a `--key` flag (see the README's configuration reference).
#[derive(Debug, Clone)]
pub struct Config {
    /// Control connection address (`bind`).
    pub bind: SocketAddr,
    /// Directory holding every user's home (`root`).
    pub root: PathBuf,
    /// The users file (`users`).
    pub users_file: PathBuf,
    /// Passive data ports (`passive_ports`, "LO-HI").
    pub passive_ports: RangeInclusive<u16>,
    /// Address announced in PASV replies when behind NAT or in Docker (`passive_host`).
    pub passive_host: Option<String>,
    /// First line a client sees (`greeting`).
    pub greeting: String,
    /// Idle timeout of a logged-in session (`idle_timeout`, seconds).
    pub idle_timeout: Duration,
    /// Sessions in total (`max_sessions`); the next connection gets 421.
    pub max_sessions: usize,
    /// Sessions per client IP (`max_sessions_per_ip`).
    pub max_sessions_per_ip: usize,
    /// Failed-login policy (`failed_login_max_attempts`, `failed_login_ban`); None when off.
    pub login_failures: Option<LoginFailurePolicy>,
    /// `log_format`: human or json.
    pub log_format: LogFormat,
    /// `log_level`: error, warn, info, debug, trace.
    pub log_level: slog::Level,
    /// Allow active mode (PORT), restricted to the client's own address (`active_mode`).
    pub active_mode: bool,
    /// Allow anonymous, read-only login (`anonymous`).
    pub anonymous: bool,
    /// Home of the anonymous user, relative to root (`anonymous_home`).
    pub anonymous_home: PathBuf,
    /// How long running transfers may finish after SIGINT/SIGTERM (`shutdown_grace`, seconds).
    pub shutdown_grace: Duration,
    /// Password hashes computed at once (`max_concurrent_logins`).
    pub max_concurrent_logins: usize,
    /// The file this configuration was read from, if any.
    pub source_file: Option<PathBuf>,
}
