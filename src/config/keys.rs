//! The configuration keys: each one's TOML name, environment variable and flag, in one table.

use super::ServeArgs;

/// A configuration key. Its name is the TOML key; the environment variable and the flag are
/// derived from it (`passive_ports`: `FERRY_PASSIVE_PORTS`, `--passive-ports`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Key {
    Bind,
    Root,
    Users,
    PassivePorts,
    PassiveHost,
    Greeting,
    IdleTimeout,
    MaxSessions,
    MaxSessionsPerIp,
    FailedLoginMaxAttempts,
    FailedLoginBan,
    LogFormat,
    LogLevel,
    ActiveMode,
    Anonymous,
    AnonymousHome,
    ShutdownGrace,
    MaxConcurrentLogins,
    AdminBind,
    Tls,
    TlsData,
    TlsRequiredFor,
    TlsCertFile,
    TlsKeyFile,
    TlsMinVersion,
    TlsClientAuth,
    TlsClientCaFile,
    TlsImplicitBind,
    LoginTimeout,
    DataTimeout,
    MaxTransfers,
    HostNames,
    S3Endpoint,
    S3Region,
    S3PathStyle,
    S3PartSize,
    S3UploadConcurrency,
    S3CredentialsFile,
    InstanceId,
}

impl Key {
    pub(super) const ALL: [Key; 39] = [
        Key::Bind,
        Key::Root,
        Key::Users,
        Key::PassivePorts,
        Key::PassiveHost,
        Key::Greeting,
        Key::IdleTimeout,
        Key::MaxSessions,
        Key::MaxSessionsPerIp,
        Key::FailedLoginMaxAttempts,
        Key::FailedLoginBan,
        Key::LogFormat,
        Key::LogLevel,
        Key::ActiveMode,
        Key::Anonymous,
        Key::AnonymousHome,
        Key::ShutdownGrace,
        Key::MaxConcurrentLogins,
        Key::AdminBind,
        Key::Tls,
        Key::TlsData,
        Key::TlsRequiredFor,
        Key::TlsCertFile,
        Key::TlsKeyFile,
        Key::TlsMinVersion,
        Key::TlsClientAuth,
        Key::TlsClientCaFile,
        Key::TlsImplicitBind,
        Key::LoginTimeout,
        Key::DataTimeout,
        Key::MaxTransfers,
        Key::HostNames,
        Key::S3Endpoint,
        Key::S3Region,
        Key::S3PathStyle,
        Key::S3PartSize,
        Key::S3UploadConcurrency,
        Key::S3CredentialsFile,
        Key::InstanceId,
    ];

    pub(super) fn name(self) -> &'static str {
        match self {
            Key::Bind => "bind",
            Key::Root => "root",
            Key::Users => "users",
            Key::PassivePorts => "passive_ports",
            Key::PassiveHost => "passive_host",
            Key::Greeting => "greeting",
            Key::IdleTimeout => "idle_timeout",
            Key::MaxSessions => "max_sessions",
            Key::MaxSessionsPerIp => "max_sessions_per_ip",
            Key::FailedLoginMaxAttempts => "failed_login_max_attempts",
            Key::FailedLoginBan => "failed_login_ban",
            Key::LogFormat => "log_format",
            Key::LogLevel => "log_level",
            Key::ActiveMode => "active_mode",
            Key::Anonymous => "anonymous",
            Key::AnonymousHome => "anonymous_home",
            Key::ShutdownGrace => "shutdown_grace",
            Key::MaxConcurrentLogins => "max_concurrent_logins",
            Key::AdminBind => "admin_bind",
            Key::Tls => "tls",
            Key::TlsData => "tls_data",
            Key::TlsRequiredFor => "tls_required_for",
            Key::TlsCertFile => "tls_cert",
            Key::TlsKeyFile => "tls_key",
            Key::TlsMinVersion => "tls_min_version",
            Key::TlsClientAuth => "tls_client_auth",
            Key::TlsClientCaFile => "tls_client_ca",
            Key::TlsImplicitBind => "tls_implicit_bind",
            Key::LoginTimeout => "login_timeout",
            Key::DataTimeout => "data_timeout",
            Key::MaxTransfers => "max_transfers",
            Key::HostNames => "host_names",
            Key::S3Endpoint => "s3_endpoint",
            Key::S3Region => "s3_region",
            Key::S3PathStyle => "s3_path_style",
            Key::S3PartSize => "s3_part_size",
            Key::S3UploadConcurrency => "s3_upload_concurrency",
            Key::S3CredentialsFile => "s3_credentials_file",
            Key::InstanceId => "instance_id",
        }
    }

    pub(super) fn from_name(name: &str) -> Option<Key> {
        Key::ALL.into_iter().find(|key| key.name() == name)
    }

    pub(super) fn env_var(self) -> String {
        format!("FERRY_{}", self.name().to_ascii_uppercase())
    }

    pub(super) fn flag(self) -> String {
        format!("--{}", self.name().replace('_', "-"))
    }
}

/// The flags of `ferry serve` that set a key, in [`Key::ALL`] order.
pub(super) fn flag_values(args: &ServeArgs) -> [(Key, Option<&str>); Key::ALL.len()] {
    [
        (Key::Bind, args.bind.as_deref()),
        (Key::Root, args.root.as_deref()),
        (Key::Users, args.users.as_deref()),
        (Key::PassivePorts, args.passive_ports.as_deref()),
        (Key::PassiveHost, args.passive_host.as_deref()),
        (Key::Greeting, args.greeting.as_deref()),
        (Key::IdleTimeout, args.idle_timeout.as_deref()),
        (Key::MaxSessions, args.max_sessions.as_deref()),
        (Key::MaxSessionsPerIp, args.max_sessions_per_ip.as_deref()),
        (
            Key::FailedLoginMaxAttempts,
            args.failed_login_max_attempts.as_deref(),
        ),
        (Key::FailedLoginBan, args.failed_login_ban.as_deref()),
        (Key::LogFormat, args.log_format.as_deref()),
        (Key::LogLevel, args.log_level.as_deref()),
        (Key::ActiveMode, args.active_mode.as_deref()),
        (Key::Anonymous, args.anonymous.as_deref()),
        (Key::AnonymousHome, args.anonymous_home.as_deref()),
        (Key::ShutdownGrace, args.shutdown_grace.as_deref()),
        (
            Key::MaxConcurrentLogins,
            args.max_concurrent_logins.as_deref(),
        ),
        (Key::AdminBind, args.admin_bind.as_deref()),
        (Key::Tls, args.tls.as_deref()),
        (Key::TlsData, args.tls_data.as_deref()),
        (Key::TlsRequiredFor, args.tls_required_for.as_deref()),
        (Key::TlsCertFile, args.tls_cert.as_deref()),
        (Key::TlsKeyFile, args.tls_key.as_deref()),
        (Key::TlsMinVersion, args.tls_min_version.as_deref()),
        (Key::TlsClientAuth, args.tls_client_auth.as_deref()),
        (Key::TlsClientCaFile, args.tls_client_ca.as_deref()),
        (Key::TlsImplicitBind, args.tls_implicit_bind.as_deref()),
        (Key::LoginTimeout, args.login_timeout.as_deref()),
        (Key::DataTimeout, args.data_timeout.as_deref()),
        (Key::MaxTransfers, args.max_transfers.as_deref()),
        (Key::HostNames, args.host_names.as_deref()),
        (Key::S3Endpoint, args.s3_endpoint.as_deref()),
        (Key::S3Region, args.s3_region.as_deref()),
        (Key::S3PathStyle, args.s3_path_style.as_deref()),
        (Key::S3PartSize, args.s3_part_size.as_deref()),
        (
            Key::S3UploadConcurrency,
            args.s3_upload_concurrency.as_deref(),
        ),
        (Key::S3CredentialsFile, args.s3_credentials_file.as_deref()),
        (Key::InstanceId, args.instance_id.as_deref()),
    ]
}
