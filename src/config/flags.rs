//! The flags of `ferry serve`: one per configuration key, kept as text until
//! [`super::Config::load`] checks them with the file's and the environment's values.

use std::path::PathBuf;

/// The flags of `ferry serve`: `--config`, `--check-config`, and one flag per configuration key.
///
/// Values stay text here: `Config::load` checks them, the same way as values from the file and
/// the environment, so a bad value reads the same wherever it came from. A boolean flag alone
/// means true (`--anonymous`); `--anonymous=false` (or `--anonymous false`) turns off what the
/// file or environment turned on. Booleans accept true/false, yes/no, 1/0.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServeArgs {
    /// Config file [env: FERRY_CONFIG] [default: config/ferry.toml, skipped if it does not exist]
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Check the configuration (including root and the users file), print its source, and exit
    #[arg(long)]
    pub check_config: bool,

    /// Control connection address [default: 127.0.0.1:2121]
    #[arg(long, value_name = "ADDR:PORT")]
    pub bind: Option<String>,
    /// Directory holding every user's home, or an S3 bucket: s3://BUCKET[/PREFIX] [default:
    /// ./data]
    #[arg(long, value_name = "DIR|s3://BUCKET[/PREFIX]")]
    pub root: Option<String>,
    /// The users file, or accounts in PostgreSQL: postgres://USER@HOST[:PORT]/DB[?sslmode=…]
    /// [default: config/users.toml]
    #[arg(long, value_name = "FILE|postgres://…")]
    pub users: Option<String>,
    /// Passive data ports [default: 61000-65535, above Linux's ephemeral ports]
    #[arg(long, value_name = "LO-HI")]
    pub passive_ports: Option<String>,
    /// IPv4 address or DNS name announced in PASV replies, for NAT or Docker [default: the
    /// control connection's local address]
    #[arg(long, value_name = "HOST")]
    pub passive_host: Option<String>,
    /// First line a client sees [default: "Ferry FTP server ready"]
    #[arg(long, value_name = "TEXT")]
    pub greeting: Option<String>,
    /// Seconds a logged-in session may stay idle [default: 600]
    #[arg(long, value_name = "SECONDS")]
    pub idle_timeout: Option<String>,
    /// Sessions in total; further connections get 421 [default: 1000]
    #[arg(long, value_name = "N")]
    pub max_sessions: Option<String>,
    /// Sessions per client IP [default: 50]
    #[arg(long, value_name = "N")]
    pub max_sessions_per_ip: Option<String>,
    /// Failed logins from one IP before it is banned; 0 turns the ban off [default: 5]
    #[arg(long, value_name = "N")]
    pub failed_login_max_attempts: Option<String>,
    /// Seconds an IP stays banned, and the window in which failures count [default: 300]
    #[arg(long, value_name = "SECONDS")]
    pub failed_login_ban: Option<String>,
    /// Log format: human or json [default: human]
    #[arg(long, value_name = "FORMAT")]
    pub log_format: Option<String>,
    /// Log level: error, warn, info, debug or trace [default: info]
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// Allow active mode (PORT), to the client's own address only [default: false]
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub active_mode: Option<String>,
    /// Allow anonymous, read-only login [default: false]
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub anonymous: Option<String>,
    /// Home of the anonymous user, relative to root [default: anonymous]
    #[arg(long, value_name = "DIR")]
    pub anonymous_home: Option<String>,
    /// Seconds running transfers may take to finish after SIGINT/SIGTERM [default: 30]
    #[arg(long, value_name = "SECONDS")]
    pub shutdown_grace: Option<String>,
    /// Password hashes computed at once [default: 2 x number of CPUs]
    #[arg(long, value_name = "N")]
    pub max_concurrent_logins: Option<String>,
    /// Admin HTTP listener for /metrics, /health and /ready [default: off]
    #[arg(long, value_name = "ADDR:PORT")]
    pub admin_bind: Option<String>,
    /// FTPS on the control channel: off, optional or required [default: off]
    #[arg(long, value_name = "MODE")]
    pub tls: Option<String>,
    /// FTPS on the data channel (PROT P): optional or required [default: as --tls]
    #[arg(long, value_name = "MODE")]
    pub tls_data: Option<String>,
    /// Whom "required" applies to: all, or accounts (anonymous may stay plaintext) [default: all]
    #[arg(long, value_name = "WHO")]
    pub tls_required_for: Option<String>,
    /// TLS certificate chain, PEM, leaf first
    #[arg(long, value_name = "FILE")]
    pub tls_cert: Option<String>,
    /// TLS private key, PEM
    #[arg(long, value_name = "FILE")]
    pub tls_key: Option<String>,
    /// Oldest TLS version accepted: 1.2 or 1.3 [default: 1.2]
    #[arg(long, value_name = "VERSION")]
    pub tls_min_version: Option<String>,
    /// Client certificates: off, request or require [default: off]
    #[arg(long, value_name = "MODE")]
    pub tls_client_auth: Option<String>,
    /// CA certificates (PEM) that client certificates must chain to
    #[arg(long, value_name = "FILE")]
    pub tls_client_ca: Option<String>,
    /// Second listener for implicit FTPS (TLS from the first byte), e.g. 0.0.0.0:990 [default: off]
    #[arg(long, value_name = "ADDR:PORT")]
    pub tls_implicit_bind: Option<String>,
    /// Seconds a connection may take to log in before it is closed with 421 [default: 30]
    #[arg(long, value_name = "SECONDS")]
    pub login_timeout: Option<String>,
    /// Seconds a transfer may move no byte before it ends with 426 [default: 300]
    #[arg(long, value_name = "SECONDS")]
    pub data_timeout: Option<String>,
    /// Transfers running at once in the whole server; the next one gets 450 [default: 512]
    #[arg(long, value_name = "N")]
    pub max_transfers: Option<String>,
    /// Host names HOST (RFC 7151) accepts, comma-separated; others get 504 [default: any]
    #[arg(long, value_name = "NAMES")]
    pub host_names: Option<String>,
    /// Load balancers (CIDR networks, comma-separated) whose connections start with a PROXY
    /// protocol header naming the client [default: none]
    #[arg(long, value_name = "NETWORKS")]
    pub proxy_from: Option<String>,
    /// S3-compatible service URL, for `--root s3://…` [default: AWS for the region]
    #[arg(long, value_name = "URL")]
    pub s3_endpoint: Option<String>,
    /// S3 region [default: us-east-1]
    #[arg(long, value_name = "REGION")]
    pub s3_region: Option<String>,
    /// Bucket name in the URL path rather than the host name [default: on when --s3-endpoint is
    /// set]
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub s3_path_style: Option<String>,
    /// Multipart upload part size in MiB, 5-5120 [default: 16]
    #[arg(long, value_name = "MIB")]
    pub s3_part_size: Option<String>,
    /// Parts of one upload sent at once [default: 4]
    #[arg(long, value_name = "N")]
    pub s3_upload_concurrency: Option<String>,
    /// AWS shared credentials file ([default] aws_access_key_id, aws_secret_access_key)
    /// [default: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, then the
    /// standard chain]
    #[arg(long, value_name = "FILE")]
    pub s3_credentials_file: Option<String>,
    /// This instance's name among several sharing a bucket: its unfinished uploads are swept
    /// when it starts again [default: the host name]
    #[arg(long, value_name = "NAME")]
    pub instance_id: Option<String>,
    /// Seconds after SIGTERM during which /ready answers 503 while new sessions are still
    /// accepted, so a load balancer stops sending them before the listener closes [default: 0]
    #[arg(long, value_name = "SECONDS")]
    pub shutdown_drain: Option<String>,
    /// File holding the PostgreSQL password, when `users` is a postgres:// URL [default:
    /// PGPASSWORD]
    #[arg(long, value_name = "FILE")]
    pub users_password_file: Option<String>,
    /// Most bytes an account's home may hold, unless the account sets its own (`10G`)
    /// [default: 0, no limit]
    #[arg(long, value_name = "SIZE")]
    pub quota_bytes: Option<String>,
    /// Most files an account's home may hold, unless the account sets its own [default: 0, no
    /// limit]
    #[arg(long, value_name = "COUNT")]
    pub quota_files: Option<String>,
    /// Bytes per second for all uploads of one account, unless it sets its own (`10M`)
    /// [default: 0, no limit]
    #[arg(long, value_name = "RATE")]
    pub user_upload_rate: Option<String>,
    /// Bytes per second for all downloads of one account, unless it sets its own [default: 0,
    /// no limit]
    #[arg(long, value_name = "RATE")]
    pub user_download_rate: Option<String>,
    /// Bytes per second for all uploads of the server together [default: 0, no limit]
    #[arg(long, value_name = "RATE")]
    pub server_upload_rate: Option<String>,
    /// Bytes per second for all downloads of the server together [default: 0, no limit]
    #[arg(long, value_name = "RATE")]
    pub server_download_rate: Option<String>,
    /// Where usage (bytes and files per home) is kept for accounts in a users file [default:
    /// ROOT/.ferry-usage; with a bucket root, .ferry-usage]
    #[arg(long, value_name = "DIR")]
    pub usage_dir: Option<String>,
    /// Export each account's usage and quota on /metrics (one series per account)
    /// [default: false]
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub usage_metrics: Option<String>,
    /// Send every upload, delete, rename, mkdir and rmdir as a JSON POST to this URL [default:
    /// off]
    #[arg(long, value_name = "URL")]
    pub event_webhook: Option<String>,
    /// File holding the webhook's HMAC-SHA256 secret (X-Ferry-Signature) [default: unsigned]
    #[arg(long, value_name = "FILE")]
    pub event_webhook_secret_file: Option<String>,
    /// Directory where events wait until delivered [default: ROOT/.ferry-events, or
    /// ./ferry-events with a bucket root]
    #[arg(long, value_name = "DIR")]
    pub event_spool: Option<String>,
    /// Events waiting in the spool before new ones are dropped [default: 100000]
    #[arg(long, value_name = "N")]
    pub event_spool_max_events: Option<String>,
}
