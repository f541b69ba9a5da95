//! Server configuration: one validated struct, layered defaults < file < env < flags.
//!
//! This file holds the struct, its defaults and the layering; [`keys`] the table of keys (each
//! one's TOML name, `FERRY_*` variable and flag), [`layers`] how each layer is read, [`values`]
//! the value parsers, [`flags`] the `ferry serve` flags. It uses `tls` (to check the `tls*`
//! settings load) and `observe` (the log format); `accounts`, `storage` and `server` use it.

mod events;
mod flags;
mod keys;
mod layers;
mod limits;
mod object_store;
mod users_database;
mod values;

use crate::observe::logging::LogFormat;
use crate::tls::TlsSettings;
pub use events::{
    DEFAULT_EVENT_SPOOL_NAME, EventKind, EventSettings, HookSecret, HookSettings, HookTarget,
    SIMPLE_WEBHOOK_NAME,
};
pub use flags::ServeArgs;
use ipnet::IpNet;
use keys::Key;
use layers::{Assignment, RawValue, env_layer, file_layer, flag_layer, read_config_file};
pub use limits::{DEFAULT_USAGE_DIR_NAME, Limits, OperatorLimits};
pub use object_store::{BucketRoot, S3Settings};
use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::num::NonZeroUsize;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;
pub use users_database::{DatabasePassword, DatabaseTls, PASSWORD_ENV_VAR, UsersDatabase};
use values::*;
pub use values::{normalize_host_name, parse_byte_size, parse_network};

/// Loopback only, so a fresh install is unreachable from the network until someone says
/// otherwise; 2121 because ports below 1024 need privileges.
const DEFAULT_BIND: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 2121));
const DEFAULT_ROOT: &str = "./data";
const DEFAULT_USERS_FILE: &str = "config/users.toml";
/// Read when neither `--config` nor `FERRY_CONFIG` names a file; if it is absent, Ferry runs on
/// defaults, environment and flags alone (containers).
const DEFAULT_CONFIG_FILE: &str = "config/ferry.toml";
const CONFIG_FILE_ENV_VAR: &str = "FERRY_CONFIG";
/// Above Linux's ephemeral range (`net.ipv4.ip_local_port_range`, 32768-60999 by default), so
/// that an outgoing connection (to S3, a database, a webhook) never holds a passive port a
/// client was told to connect to; and inside IANA's dynamic range (RFC 6335, 49152-65535), where
/// no registered service listens. 4,536 ports: more than `max_sessions` sessions need at once.
const DEFAULT_PASSIVE_PORTS: RangeInclusive<u16> = 61000..=65535;
const DEFAULT_GREETING: &str = "Ferry FTP server ready";
/// ProFTPD's `TimeoutIdle` default.
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(600);
/// A session can hold three file descriptors (control socket, data socket, open file), so this
/// fits the common `ulimit -n` of 4096 for services.
const DEFAULT_MAX_SESSIONS: usize = 1000;
/// Enough for a NATed office or a parallel mirror client; keeps one host from taking every slot.
const DEFAULT_MAX_SESSIONS_PER_IP: usize = 50;
/// fail2ban's default `maxretry`.
const DEFAULT_FAILED_LOGIN_MAX_ATTEMPTS: u32 = 5;
/// Long enough to make password guessing slow, short enough for a user who mistyped to retry.
const DEFAULT_FAILED_LOGIN_BAN: Duration = Duration::from_secs(300);
const DEFAULT_ANONYMOUS_HOME: &str = "anonymous";
/// Kubernetes' default `terminationGracePeriodSeconds`, after which the process is killed anyway.
const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// A real client logs in within one round trip and one argon2 hash (well under a second); 30 s
/// leaves room for a person typing at an interactive `ftp` prompt while bounding how long a
/// connection that never logs in holds a session slot (ProFTPD's `TimeoutLogin` is 300 s).
const DEFAULT_LOGIN_TIMEOUT: Duration = Duration::from_secs(30);
/// vsftpd's `data_connection_timeout`: long enough for a client busy elsewhere, short enough that
/// a stalled transfer gives back its port, thread and descriptors.
const DEFAULT_DATA_TIMEOUT: Duration = Duration::from_secs(300);
/// Each running transfer holds one blocking thread; the runtime gets this many plus a reserve
/// (`server::BLOCKING_THREADS_RESERVE`) so listings and file operations always have threads.
/// 512 is tokio's own default for the whole blocking pool.
const DEFAULT_MAX_TRANSFERS: usize = 512;

/// The host name: unique among instances on different machines (containers, pods).
fn default_instance_id() -> String {
    rustix::system::uname()
        .nodename()
        .to_str()
        .ok()
        .and_then(|name| parse_instance_id(name.to_owned()).ok())
        .unwrap_or_else(|| "ferry".to_owned())
}

/// Password hashing is CPU-bound and each argon2id hash holds its memory cost while it runs:
/// two per CPU keeps every core busy without letting a login flood queue unbounded work.
fn default_max_concurrent_logins() -> usize {
    std::thread::available_parallelism().map_or(1, NonZeroUsize::get) * 2
}

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
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Control connection address (`bind`).
    pub bind: SocketAddr,
    /// Directory holding every user's home (`root`), when files live on disk.
    pub root: PathBuf,
    /// The bucket holding every user's home, when `root` is `s3://BUCKET[/PREFIX]`; `root`
    /// (the directory) is then unused.
    pub bucket: Option<BucketRoot>,
    /// How to reach the bucket (the `s3_*` keys).
    pub s3: S3Settings,
    /// This instance's name among several sharing a bucket (`instance_id`): the key its
    /// unfinished uploads are recorded under, so that it sweeps them when it starts again.
    pub instance_id: String,
    /// The users file (`users`), when the accounts are in a file.
    pub users_file: PathBuf,
    /// The accounts database, when `users` is `postgres://…`; `users_file` is then unused.
    pub users_database: Option<UsersDatabase>,
    /// The file holding the database password (`users_password_file`); read into
    /// `users_database` as the configuration loads.
    pub users_password_file: Option<PathBuf>,
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
    /// Allow active mode (PORT, EPRT), restricted to the client's own address and ports from
    /// 1024 (`active_mode`). On by default, as in vsftpd, ProFTPD and Pure-FTPd: Windows'
    /// `ftp.exe` and many embedded devices (scanners, cameras, PLCs) speak only PORT.
    pub active_mode: bool,
    /// Allow anonymous, read-only login (`anonymous`).
    pub anonymous: bool,
    /// Home of the anonymous user, relative to root (`anonymous_home`).
    pub anonymous_home: PathBuf,
    /// How long running transfers may finish after SIGINT/SIGTERM (`shutdown_grace`, seconds).
    pub shutdown_grace: Duration,
    /// Before that: how long `/ready` answers 503 while new sessions are still accepted, so a
    /// load balancer polling it stops sending sessions before the listener closes
    /// (`shutdown_drain`, seconds; 0: close at once).
    pub shutdown_drain: Duration,
    /// Password hashes computed at once (`max_concurrent_logins`).
    pub max_concurrent_logins: usize,
    /// Address of the admin HTTP listener (`/metrics`, `/health`, `/ready`); None when off
    /// (`admin_bind`).
    pub admin_bind: Option<SocketAddr>,
    /// FTPS: the `tls*` keys.
    pub tls: TlsSettings,
    /// How long a connection may take to log in before it is closed with 421 (`login_timeout`,
    /// seconds); separate from `idle_timeout`, which applies once logged in.
    pub login_timeout: Duration,
    /// How long a running transfer may move no byte before it ends with 426 (`data_timeout`,
    /// seconds).
    pub data_timeout: Duration,
    /// Transfers running at once in the whole server (`max_transfers`); the next one gets 450.
    pub max_transfers: usize,
    /// Host names HOST (RFC 7151) accepts, in lower case without a trailing dot (`host_names`);
    /// empty accepts any. A list in the file, comma-separated in the environment and the flag.
    pub host_names: Vec<String>,
    /// The load balancers whose connections, control and passive data alike, must start with a
    /// PROXY protocol header (v1 or v2) naming the client (`proxy_from`); empty: none, every
    /// connection is its client's own. A list in the file, comma-separated in the environment
    /// and the flag.
    pub proxy_from: Vec<IpNet>,
    /// Quotas, bandwidth limits and where usage is kept (`quota_*`, `*_rate`, `usage_*`).
    pub limits: OperatorLimits,
    /// Events when files arrive: `event_webhook`, `event_webhook_secret_file`, `event_spool`,
    /// `event_spool_max_events` and the `[[event_hooks]]` tables (file only).
    pub events: EventSettings,
    /// The file this configuration was read from, if any.
    pub source_file: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: DEFAULT_BIND,
            root: PathBuf::from(DEFAULT_ROOT),
            bucket: None,
            s3: S3Settings::default(),
            instance_id: default_instance_id(),
            users_file: PathBuf::from(DEFAULT_USERS_FILE),
            users_database: None,
            users_password_file: None,
            passive_ports: DEFAULT_PASSIVE_PORTS,
            passive_host: None,
            greeting: DEFAULT_GREETING.to_owned(),
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_sessions: DEFAULT_MAX_SESSIONS,
            max_sessions_per_ip: DEFAULT_MAX_SESSIONS_PER_IP,
            login_failures: Some(LoginFailurePolicy {
                max_attempts: DEFAULT_FAILED_LOGIN_MAX_ATTEMPTS,
                ban: DEFAULT_FAILED_LOGIN_BAN,
            }),
            log_format: LogFormat::Human,
            log_level: slog::Level::Info,
            active_mode: true,
            anonymous: false,
            anonymous_home: PathBuf::from(DEFAULT_ANONYMOUS_HOME),
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            shutdown_drain: Duration::ZERO,
            max_concurrent_logins: default_max_concurrent_logins(),
            admin_bind: None,
            tls: TlsSettings::default(),
            login_timeout: DEFAULT_LOGIN_TIMEOUT,
            data_timeout: DEFAULT_DATA_TIMEOUT,
            max_transfers: DEFAULT_MAX_TRANSFERS,
            host_names: Vec::new(),
            proxy_from: Vec::new(),
            limits: OperatorLimits::default(),
            events: EventSettings::default(),
            source_file: None,
        }
    }
}

impl Config {
    /// Builds the configuration from defaults, the config file, `FERRY_*` environment variables
    /// (looked up through `env`) and `args`, each overriding the one before; then checks that
    /// root is a directory and the users file can be opened.
    ///
    /// The config file is `--config`, else `FERRY_CONFIG`, else `config/ferry.toml` if that
    /// exists. Environment variables that are empty count as unset, and `FERRY_*` variables
    /// that name no key are ignored (`FERRY_PASSWORD` belongs to the client).
    pub fn load(
        args: &ServeArgs,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        Config::load_with_default_file(args, env, Path::new(DEFAULT_CONFIG_FILE))
    }

    /// [`Config::load`] with the unnamed config file's location as a parameter, so tests do not
    /// depend on the working directory.
    fn load_with_default_file(
        args: &ServeArgs,
        env: &dyn Fn(&str) -> Option<String>,
        default_config_file: &Path,
    ) -> Result<Config, ConfigError> {
        let mut settings = Settings::default();
        let config_file = read_config_file(args, env, default_config_file)?;
        if let Some((path, text)) = &config_file {
            settings.apply_file(path, text)?;
        }
        for assignment in env_layer(env).into_iter().chain(flag_layer(args)) {
            settings.apply(assignment)?;
        }
        settings.finish(config_file.map(|(path, _)| path), env)
    }

    /// Applies config-file text over the defaults and checks every value, but looks at no file
    /// (root and the users file are not checked): the config-file parser alone, for the fuzz
    /// target (`fuzz/`). `path` is used only in error messages.
    pub fn from_file_text(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let mut settings = Settings::default();
        settings.apply_file(path, text)?;
        Ok(settings.combine(Some(path.to_owned())).0)
    }
}

/// Why the configuration could not be loaded. Each message names where the offending value came
/// from (file and line, environment variable or flag), the key, and what is wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {} (named by {named_by}) does not exist", .path.display())]
    ConfigFileMissing { path: PathBuf, named_by: Origin },
    #[error("could not read config file {}: {error}", .path.display())]
    ConfigFileUnreadable { path: PathBuf, error: io::Error },
    #[error("{}: {message}", file_position(.path, *.line))]
    ConfigFileSyntax {
        path: PathBuf,
        /// None when the TOML parser could not say where.
        line: Option<usize>,
        message: String,
    },
    #[error("{}:{line}: unknown key `{key}` (known keys: {})", .path.display(), known_keys())]
    UnknownKey {
        path: PathBuf,
        line: usize,
        key: String,
    },
    #[error("{origin}: key `{key}`: {problem}")]
    InvalidValue {
        origin: Origin,
        key: &'static str,
        problem: String,
    },
    #[error("root `{}` ({origin}) does not exist", .path.display())]
    RootMissing { path: PathBuf, origin: Origin },
    #[error("root `{}` ({origin}) is not a directory", .path.display())]
    RootNotADirectory { path: PathBuf, origin: Origin },
    #[error("root `{}` ({origin}) cannot be inspected: {error}", .path.display())]
    RootInaccessible {
        path: PathBuf,
        origin: Origin,
        error: io::Error,
    },
    #[error("users file `{}` ({origin}) cannot be opened: {error}", .path.display())]
    UsersFileUnreadable {
        path: PathBuf,
        origin: Origin,
        error: io::Error,
    },
    #[error("users file `{}` ({origin}) is not a regular file", .path.display())]
    UsersFileNotAFile { path: PathBuf, origin: Origin },
}

fn file_position(path: &Path, line: Option<usize>) -> String {
    match line {
        Some(line) => format!("{}:{line}", path.display()),
        None => path.display().to_string(),
    }
}

fn known_keys() -> String {
    let mut keys = Key::ALL.map(Key::name).to_vec();
    keys.push(events::EVENT_HOOKS_KEY);
    keys.join(", ")
}

/// Where a configuration value came from, so that an error can point at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Ferry's built-in default.
    Default,
    /// A line of the config file.
    File { path: PathBuf, line: usize },
    /// An environment variable, by name (`FERRY_BIND`).
    Env(String),
    /// A command-line flag, by name (`--bind`).
    Flag(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("default"),
            Origin::File { path, line } => write!(f, "{}:{line}", path.display()),
            Origin::Env(name) => write!(f, "environment variable {name}"),
            Origin::Flag(flag) => write!(f, "flag {flag}"),
        }
    }
}

/// The configuration being assembled, layer after layer.
struct Settings {
    config: Config,
    // Two keys make `Config::login_failures`; they are combined once every layer is applied.
    failed_login_max_attempts: u32,
    failed_login_ban: Duration,
    // Where root and the users file came from, for the messages of the checks in `finish`.
    root_origin: Origin,
    users_file_origin: Origin,
    // Where each key was last set, for checks that span keys (the TLS files).
    origins: BTreeMap<&'static str, Origin>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            config: Config::default(),
            failed_login_max_attempts: DEFAULT_FAILED_LOGIN_MAX_ATTEMPTS,
            failed_login_ban: DEFAULT_FAILED_LOGIN_BAN,
            root_origin: Origin::Default,
            users_file_origin: Origin::Default,
            origins: BTreeMap::new(),
        }
    }
}

impl Settings {
    /// Applies the config file: its keys, and the `[[event_hooks]]` tables only it can hold.
    fn apply_file(&mut self, path: &Path, text: &str) -> Result<(), ConfigError> {
        let (assignments, event_hooks) = file_layer(path, text)?;
        for assignment in assignments {
            self.apply(assignment)?;
        }
        if let Some((value, origin)) = event_hooks {
            let key = events::EVENT_HOOKS_KEY;
            self.config.events.tables =
                events::parse_hook_tables(value).map_err(|problem| ConfigError::InvalidValue {
                    origin: origin.clone(),
                    key,
                    problem,
                })?;
            self.origins.insert(key, origin);
        }
        Ok(())
    }

    fn apply(&mut self, assignment: Assignment) -> Result<(), ConfigError> {
        let Assignment { key, value, origin } = assignment;
        match self.set(key, value, &origin) {
            Ok(()) => {
                self.origins.insert(key.name(), origin);
                Ok(())
            }
            Err(problem) => Err(ConfigError::InvalidValue {
                origin,
                key: key.name(),
                problem,
            }),
        }
    }

    /// Checks `value` against `key` and stores it; the error is the problem with the value.
    fn set(&mut self, key: Key, value: RawValue, origin: &Origin) -> Result<(), String> {
        let config = &mut self.config;
        match key {
            Key::Bind => config.bind = parse_bind(&text(value)?)?,
            Key::Root => {
                let value = text(value)?;
                match BucketRoot::parse(&value) {
                    Some(bucket) => config.bucket = Some(bucket?),
                    None => {
                        config.root = parse_path(value)?;
                        config.bucket = None;
                    }
                }
                self.root_origin = origin.clone();
            }
            Key::Users => {
                let value = text(value)?;
                match UsersDatabase::parse(&value) {
                    Some(database) => config.users_database = Some(database?),
                    None => {
                        config.users_file = parse_path(value)?;
                        config.users_database = None;
                    }
                }
                self.users_file_origin = origin.clone();
            }
            Key::UsersPasswordFile => config.users_password_file = Some(parse_path(text(value)?)?),
            Key::PassivePorts => config.passive_ports = parse_port_range(&text(value)?)?,
            Key::PassiveHost => config.passive_host = Some(parse_passive_host(text(value)?)?),
            Key::Greeting => config.greeting = parse_greeting(text(value)?)?,
            Key::IdleTimeout => config.idle_timeout = seconds(value, 1)?,
            Key::MaxSessions => config.max_sessions = count(value, 1)?,
            Key::MaxSessionsPerIp => config.max_sessions_per_ip = count(value, 1)?,
            Key::FailedLoginMaxAttempts => {
                let attempts = whole_number(value)?;
                self.failed_login_max_attempts =
                    u32::try_from(attempts).map_err(|_| too_large(attempts))?;
            }
            Key::FailedLoginBan => {
                self.failed_login_ban = seconds(value, 1).map_err(|problem| {
                    format!(
                        "{problem} (to turn the policy off, set failed_login_max_attempts to 0)"
                    )
                })?
            }
            Key::LogFormat => config.log_format = parse_log_format(&text(value)?)?,
            Key::LogLevel => config.log_level = parse_log_level(&text(value)?)?,
            Key::ActiveMode => config.active_mode = boolean(value)?,
            Key::Anonymous => config.anonymous = boolean(value)?,
            Key::AnonymousHome => config.anonymous_home = parse_anonymous_home(text(value)?)?,
            Key::ShutdownGrace => config.shutdown_grace = seconds(value, 0)?,
            Key::MaxConcurrentLogins => config.max_concurrent_logins = count(value, 1)?,
            Key::AdminBind => config.admin_bind = Some(parse_bind(&text(value)?)?),
            Key::Tls => config.tls.mode = text(value)?.parse()?,
            Key::TlsData => config.tls.data_mode = Some(text(value)?.parse()?),
            Key::TlsRequiredFor => config.tls.required_for = text(value)?.parse()?,
            Key::TlsCertFile => config.tls.cert_file = Some(parse_path(text(value)?)?),
            Key::TlsKeyFile => config.tls.key_file = Some(parse_path(text(value)?)?),
            Key::TlsMinVersion => config.tls.min_version = text(value)?.parse()?,
            Key::TlsClientAuth => config.tls.client_auth = text(value)?.parse()?,
            Key::TlsClientCaFile => config.tls.client_ca_file = Some(parse_path(text(value)?)?),
            Key::TlsImplicitBind => config.tls.implicit_bind = Some(parse_bind(&text(value)?)?),
            Key::LoginTimeout => config.login_timeout = seconds(value, 1)?,
            Key::DataTimeout => config.data_timeout = seconds(value, 1)?,
            Key::MaxTransfers => config.max_transfers = count(value, 1)?,
            Key::HostNames => config.host_names = parse_host_names(value)?,
            Key::ProxyFrom => config.proxy_from = parse_networks(value)?,
            Key::S3Endpoint => {
                config.s3.endpoint = Some(object_store::parse_endpoint(text(value)?)?)
            }
            Key::S3Region => config.s3.region = object_store::parse_region(text(value)?)?,
            Key::S3PathStyle => config.s3.path_style = Some(boolean(value)?),
            Key::S3PartSize => {
                config.s3.part_size = object_store::part_size_bytes(whole_number(value)?)?
            }
            Key::S3UploadConcurrency => config.s3.upload_concurrency = count(value, 1)?,
            Key::S3CredentialsFile => config.s3.credentials_file = Some(parse_path(text(value)?)?),
            Key::InstanceId => config.instance_id = parse_instance_id(text(value)?)?,
            Key::ShutdownDrain => config.shutdown_drain = seconds(value, 0)?,
            Key::QuotaBytes => config.limits.user_defaults.quota_bytes = byte_size(value)?,
            Key::QuotaFiles => config.limits.user_defaults.quota_files = byte_size(value)?,
            Key::UserUploadRate => config.limits.user_defaults.upload_rate = byte_size(value)?,
            Key::UserDownloadRate => config.limits.user_defaults.download_rate = byte_size(value)?,
            Key::ServerUploadRate => config.limits.server_upload_rate = byte_size(value)?,
            Key::ServerDownloadRate => config.limits.server_download_rate = byte_size(value)?,
            Key::UsageDir => config.limits.usage_dir = Some(parse_path(text(value)?)?),
            Key::UsageMetrics => config.limits.usage_metrics = boolean(value)?,
            Key::EventWebhook => {
                config.events.webhook = Some(events::parse_webhook_url(&text(value)?)?)
            }
            Key::EventWebhookSecretFile => {
                config.events.webhook_secret_file = Some(parse_path(text(value)?)?)
            }
            Key::EventSpool => config.events.spool = Some(parse_path(text(value)?)?),
            Key::EventSpoolMaxEvents => config.events.spool_max_events = count(value, 1)?,
        }
        Ok(())
    }

    /// Combines what the layers set and checks what only the filesystem can tell.
    fn finish(
        self,
        source_file: Option<PathBuf>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let origins = self.origins.clone();
        let (mut config, root_origin, users_file_origin) = self.combine(source_file);
        if config.bucket.is_none() {
            check_root(&config.root, root_origin)?;
        }
        match config.users_database.take() {
            Some(database) => {
                let password_file = config.users_password_file.as_deref();
                let database = database
                    .with_password(password_file, env)
                    .map_err(|error| {
                        let key = Key::UsersPasswordFile.name();
                        ConfigError::InvalidValue {
                            origin: origins.get(key).cloned().unwrap_or(Origin::Default),
                            key,
                            problem: format!(
                                "could not read {}: {error}",
                                password_file.unwrap_or(Path::new("")).display()
                            ),
                        }
                    })?;
                config.users_database = Some(database);
            }
            None => check_users_file(&config.users_file, users_file_origin)?,
        }
        if config.events.webhook_secret_file.is_some() && config.events.webhook.is_none() {
            let key = Key::EventWebhookSecretFile.name();
            return Err(ConfigError::InvalidValue {
                origin: origins.get(key).cloned().unwrap_or(Origin::Default),
                key,
                problem: "set event_webhook too: the secret signs its requests".to_owned(),
            });
        }
        config
            .events
            .read_secrets()
            .map_err(|(key, problem)| ConfigError::InvalidValue {
                origin: origins.get(key).cloned().unwrap_or(Origin::Default),
                key,
                problem,
            })?;
        // TLS settings are checked last: they read the certificate files.
        config
            .tls
            .check()
            .map_err(|(key, problem)| ConfigError::InvalidValue {
                origin: origins.get(key).cloned().unwrap_or(Origin::Default),
                key,
                problem,
            })?;
        Ok(config)
    }

    /// Combines what the layers set; also returns where root and the users file came from.
    fn combine(self, source_file: Option<PathBuf>) -> (Config, Origin, Origin) {
        let mut config = self.config;
        config.login_failures =
            (self.failed_login_max_attempts > 0).then_some(LoginFailurePolicy {
                max_attempts: self.failed_login_max_attempts,
                ban: self.failed_login_ban,
            });
        config.source_file = source_file;
        (config, self.root_origin, self.users_file_origin)
    }
}

fn check_root(root: &Path, origin: Origin) -> Result<(), ConfigError> {
    let path = root.to_owned();
    match fs::metadata(root) {
        Ok(metadata) if metadata.is_dir() => Ok(()),
        Ok(_) => Err(ConfigError::RootNotADirectory { path, origin }),
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            Err(ConfigError::RootMissing { path, origin })
        }
        Err(error) => Err(ConfigError::RootInaccessible {
            path,
            origin,
            error,
        }),
    }
}

/// Only checks that the users file opens; reading its accounts is the users module's job.
fn check_users_file(users_file: &Path, origin: Origin) -> Result<(), ConfigError> {
    let path = users_file.to_owned();
    let opened = fs::File::open(users_file).and_then(|file| file.metadata());
    match opened {
        // Opening a directory succeeds on Unix; reading it would not.
        Ok(metadata) if metadata.is_file() => Ok(()),
        Ok(_) => Err(ConfigError::UsersFileNotAFile { path, origin }),
        Err(error) => Err(ConfigError::UsersFileUnreadable {
            path,
            origin,
            error,
        }),
    }
}

// Value checks. Each returns the problem with the value as the error, phrased to follow
// "<origin>: key `<key>`: ".

#[cfg(test)]
mod tests;
