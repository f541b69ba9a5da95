//! Tests of the configuration layers, keys and their error messages.

use super::keys::flag_values;
use super::*;
use clap::{CommandFactory, Parser};
use std::collections::HashMap;
use tempfile::TempDir;

/// A temporary directory with an existing root (`data/`) and users file (`users.toml`).
struct Fixture {
    dir: TempDir,
    root: PathBuf,
    users_file: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("create temp dir");
        let root = dir.path().join("data");
        fs::create_dir(&root).expect("create root");
        let users_file = dir.path().join("users.toml");
        fs::write(&users_file, "").expect("create users file");
        Fixture {
            dir,
            root,
            users_file,
        }
    }

    /// Writes a config file into the fixture and returns its path.
    fn config_file(&self, contents: &str) -> PathBuf {
        let path = self.dir.path().join("ferry.toml");
        fs::write(&path, contents).expect("write config file");
        path
    }

    /// A config file pointing at the fixture's root and users file, plus `extra` lines.
    fn config_file_with(&self, extra: &str) -> PathBuf {
        self.config_file(&format!(
            "root = {:?}\nusers = {:?}\n{extra}",
            self.root, self.users_file
        ))
    }

    /// Flags pointing at the fixture's root and users file, plus `extra`.
    fn flags<'a>(&'a self, extra: &[&'a str]) -> Vec<&'a str> {
        let mut flags = vec![
            "--root",
            self.root.to_str().expect("utf-8 temp path"),
            "--users",
            self.users_file.to_str().expect("utf-8 temp path"),
        ];
        flags.extend_from_slice(extra);
        flags
    }

    /// Where the unnamed config file would be: absent unless a test creates it.
    fn default_config_file(&self) -> PathBuf {
        self.dir.path().join("config/ferry.toml")
    }

    /// Loads `--config file` alone, with no environment.
    fn load_file(&self, file: &Path) -> Result<Config, ConfigError> {
        self.load(&["--config", file.to_str().expect("utf-8 temp path")], &[])
    }

    fn load(&self, flags: &[&str], env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        Config::load_with_default_file(
            &serve_args(flags),
            &|name| env.get(name).cloned(),
            &self.default_config_file(),
        )
    }
}

/// The flags of `ferry serve` alone, parsed by clap as under `ferry serve`.
#[derive(Debug, clap::Parser)]
struct ServeCommand {
    #[command(flatten)]
    args: ServeArgs,
}

fn serve_args(flags: &[&str]) -> ServeArgs {
    let argv = ["ferry-serve"].iter().chain(flags);
    ServeCommand::try_parse_from(argv)
        .expect("valid flags")
        .args
}

fn error_message(result: Result<Config, ConfigError>) -> String {
    match result {
        Ok(config) => panic!("expected an error, got {config:?}"),
        Err(error) => error.to_string(),
    }
}

#[test]
fn defaults_are_the_documented_values() {
    let config = Config::default();
    assert_eq!(config.bind, "127.0.0.1:2121".parse().expect("address"));
    assert_eq!(config.root, Path::new("./data"));
    assert_eq!(config.users_file, Path::new("config/users.toml"));
    assert_eq!(config.passive_ports, 61000..=65535);
    assert_eq!(config.passive_host, None);
    assert_eq!(config.greeting, "Ferry FTP server ready");
    assert_eq!(config.idle_timeout, Duration::from_secs(600));
    assert_eq!(config.max_sessions, 1000);
    assert_eq!(config.max_sessions_per_ip, 50);
    assert_eq!(
        config.login_failures,
        Some(LoginFailurePolicy {
            max_attempts: 5,
            ban: Duration::from_secs(300)
        })
    );
    assert_eq!(config.log_format, LogFormat::Human);
    assert_eq!(config.log_level, slog::Level::Info);
    assert!(config.active_mode);
    assert!(!config.anonymous);
    assert_eq!(config.anonymous_home, Path::new("anonymous"));
    assert_eq!(config.shutdown_grace, Duration::from_secs(30));
    assert!(config.max_concurrent_logins >= 2);
    assert_eq!(config.admin_bind, None);
    assert_eq!(config.login_timeout, Duration::from_secs(30));
    assert_eq!(config.data_timeout, Duration::from_secs(300));
    assert_eq!(config.max_transfers, 512);
    assert!(config.proxy_from.is_empty(), "no load balancer trusted");
    assert_eq!(config.source_file, None);
}

#[test]
fn missing_default_config_file_means_defaults() {
    let fixture = Fixture::new();
    let config = fixture.load(&fixture.flags(&[]), &[]).expect("loads");
    assert_eq!(
        config,
        Config {
            root: fixture.root.clone(),
            users_file: fixture.users_file.clone(),
            ..Config::default()
        }
    );
}

#[test]
fn default_config_file_is_read_when_present() {
    let fixture = Fixture::new();
    let default_file = fixture.default_config_file();
    fs::create_dir(default_file.parent().expect("has parent")).expect("mkdir");
    fs::write(&default_file, "max_sessions = 7\n").expect("write");
    let config = fixture.load(&fixture.flags(&[]), &[]).expect("loads");
    assert_eq!(config.max_sessions, 7);
    assert_eq!(config.source_file, Some(default_file));
}

#[test]
fn file_overrides_defaults() {
    let fixture = Fixture::new();
    let file = fixture.config_file_with(
        "bind = \"0.0.0.0:21\"\n\
         passive_ports = \"50000-50100\"\n\
         passive_host = \"ftp.example.com\"\n\
         greeting = \"hello\"\n\
         idle_timeout = 60\n\
         max_sessions = 10\n\
         max_sessions_per_ip = 2\n\
         failed_login_max_attempts = 3\n\
         failed_login_ban = 60\n\
         log_format = \"json\"\n\
         log_level = \"debug\"\n\
         active_mode = true\n\
         anonymous = true\n\
         anonymous_home = \"pub\"\n\
         shutdown_grace = 0\n\
         max_concurrent_logins = 3\n\
         admin_bind = \"127.0.0.1:9090\"\n\
         login_timeout = 12\n\
         data_timeout = 45\n\
         max_transfers = 64\n\
         host_names = [\"ftp.example.com\"]\n\
         proxy_from = [\"10.0.0.0/24\"]\n\
         s3_endpoint = \"http://127.0.0.1:9000\"\n\
         s3_region = \"eu-west-3\"\n\
         s3_path_style = false\n\
         s3_part_size = 8\n\
         s3_upload_concurrency = 2\n\
         s3_credentials_file = \"/run/secrets/s3\"\n\
         instance_id = \"ferry-a\"\n\
         shutdown_drain = 7\n\
         quota_bytes = \"10G\"\n\
         quota_files = 100000\n\
         user_upload_rate = \"5M\"\n\
         user_download_rate = \"64KiB\"\n\
         server_upload_rate = 1000\n\
         server_download_rate = \"1g\"\n\
         usage_dir = \"/var/lib/ferry/usage\"\n\
         usage_metrics = true\n",
    );
    let config = fixture.load_file(&file).expect("loads");
    assert_eq!(
        config,
        Config {
            bind: "0.0.0.0:21".parse().expect("address"),
            root: fixture.root.clone(),
            users_file: fixture.users_file.clone(),
            users_database: None,
            users_password_file: None,
            passive_ports: 50000..=50100,
            passive_host: Some("ftp.example.com".to_owned()),
            greeting: "hello".to_owned(),
            idle_timeout: Duration::from_secs(60),
            max_sessions: 10,
            max_sessions_per_ip: 2,
            login_failures: Some(LoginFailurePolicy {
                max_attempts: 3,
                ban: Duration::from_secs(60)
            }),
            log_format: LogFormat::Json,
            log_level: slog::Level::Debug,
            active_mode: true,
            anonymous: true,
            anonymous_home: PathBuf::from("pub"),
            shutdown_grace: Duration::ZERO,
            shutdown_drain: Duration::from_secs(7),
            max_concurrent_logins: 3,
            admin_bind: Some("127.0.0.1:9090".parse().expect("address")),
            tls: TlsSettings::default(),
            login_timeout: Duration::from_secs(12),
            data_timeout: Duration::from_secs(45),
            max_transfers: 64,
            host_names: vec!["ftp.example.com".to_owned()],
            proxy_from: vec!["10.0.0.0/24".parse().expect("network")],
            bucket: None,
            s3: crate::config::S3Settings {
                endpoint: Some("http://127.0.0.1:9000".to_owned()),
                region: "eu-west-3".to_owned(),
                path_style: Some(false),
                part_size: 8 * 1024 * 1024,
                upload_concurrency: 2,
                credentials_file: Some(PathBuf::from("/run/secrets/s3")),
            },
            instance_id: "ferry-a".to_owned(),
            limits: crate::config::OperatorLimits {
                user_defaults: crate::config::Limits {
                    quota_bytes: 10 << 30,
                    quota_files: 100_000,
                    upload_rate: 5 << 20,
                    download_rate: 64 << 10,
                },
                server_upload_rate: 1000,
                server_download_rate: 1 << 30,
                usage_dir: Some(PathBuf::from("/var/lib/ferry/usage")),
                usage_metrics: true,
            },
            events: Default::default(),
            source_file: Some(file),
        }
    );
}

#[test]
fn a_size_with_an_unknown_unit_names_the_key_and_the_units() {
    let fixture = Fixture::new();
    let file = fixture.config_file_with("quota_bytes = \"10Q\"\n");
    let error = fixture.load_file(&file).expect_err("refused").to_string();
    assert!(error.contains("quota_bytes"), "{error}");
    assert!(error.contains("K, M, G or T"), "{error}");
    let error = fixture
        .load(&fixture.flags(&["--server-upload-rate", "5X"]), &[])
        .expect_err("refused")
        .to_string();
    assert!(error.contains("server_upload_rate"), "{error}");
}

#[test]
fn env_overrides_file() {
    let fixture = Fixture::new();
    let file = fixture.config_file_with("max_sessions = 10\nlog_level = \"debug\"\n");
    let config = fixture
        .load(
            &["--config", file.to_str().expect("utf-8")],
            &[("FERRY_MAX_SESSIONS", "20")],
        )
        .expect("loads");
    assert_eq!(config.max_sessions, 20);
    assert_eq!(config.log_level, slog::Level::Debug);
}

#[test]
fn flag_overrides_env() {
    let fixture = Fixture::new();
    let file = fixture.config_file_with("max_sessions = 10\n");
    let config = fixture
        .load(
            &fixture.flags(&[
                "--config",
                file.to_str().expect("utf-8"),
                "--max-sessions",
                "30",
            ]),
            &[("FERRY_MAX_SESSIONS", "20"), ("FERRY_IDLE_TIMEOUT", "5")],
        )
        .expect("loads");
    assert_eq!(config.max_sessions, 30);
    assert_eq!(config.idle_timeout, Duration::from_secs(5));
}

#[test]
fn config_file_can_be_named_by_env() {
    let fixture = Fixture::new();
    let file = fixture.config_file_with("max_sessions = 10\n");
    let config = fixture
        .load(&[], &[("FERRY_CONFIG", file.to_str().expect("utf-8"))])
        .expect("loads");
    assert_eq!(config.max_sessions, 10);
    assert_eq!(config.source_file, Some(file));
}

#[test]
fn env_alone_configures_everything() {
    let fixture = Fixture::new();
    let root = fixture.root.to_str().expect("utf-8");
    let users = fixture.users_file.to_str().expect("utf-8");
    let config = fixture
        .load(
            &[],
            &[
                ("FERRY_ROOT", root),
                ("FERRY_USERS", users),
                ("FERRY_BIND", "[::]:2121"),
                ("FERRY_PASSIVE_HOST", "203.0.113.7"),
                ("FERRY_ACTIVE_MODE", "yes"),
                ("FERRY_ANONYMOUS", "1"),
                ("FERRY_LOG_FORMAT", "json"),
            ],
        )
        .expect("loads");
    assert_eq!(config.root, fixture.root);
    assert_eq!(config.users_file, fixture.users_file);
    assert_eq!(config.bind, "[::]:2121".parse().expect("address"));
    assert_eq!(config.passive_host.as_deref(), Some("203.0.113.7"));
    assert!(config.active_mode);
    assert!(config.anonymous);
    assert_eq!(config.log_format, LogFormat::Json);
    assert_eq!(config.source_file, None);
}

#[test]
fn env_booleans_accept_true_false_yes_no_one_zero() {
    let fixture = Fixture::new();
    for (text, expected) in [
        ("true", true),
        ("TRUE", true),
        ("yes", true),
        ("1", true),
        ("false", false),
        ("no", false),
        ("0", false),
    ] {
        let config = fixture
            .load(&fixture.flags(&[]), &[("FERRY_ANONYMOUS", text)])
            .expect("loads");
        assert_eq!(config.anonymous, expected, "FERRY_ANONYMOUS={text}");
    }
    assert_eq!(
        error_message(fixture.load(&fixture.flags(&[]), &[("FERRY_ANONYMOUS", "maybe")])),
        "environment variable FERRY_ANONYMOUS: key `anonymous`: \
         \"maybe\" is not a boolean (true/false, yes/no, 1/0)"
    );
}

#[test]
fn boolean_flag_alone_means_true_and_takes_an_explicit_value() {
    let fixture = Fixture::new();
    let config = fixture
        .load(&fixture.flags(&["--active-mode"]), &[])
        .expect("loads");
    assert!(config.active_mode);
    let config = fixture
        .load(
            &fixture.flags(&["--anonymous=false", "--active-mode", "no"]),
            &[("FERRY_ANONYMOUS", "true"), ("FERRY_ACTIVE_MODE", "true")],
        )
        .expect("loads");
    assert!(!config.anonymous);
    assert!(!config.active_mode);
}

#[test]
fn unknown_ferry_env_vars_are_ignored() {
    let fixture = Fixture::new();
    let config = fixture
        .load(
            &fixture.flags(&[]),
            &[("FERRY_FOO", "bar"), ("FERRY_PASSWORD", "secret")],
        )
        .expect("loads");
    assert_eq!(config.max_sessions, DEFAULT_MAX_SESSIONS);
}

#[test]
fn empty_env_var_counts_as_unset() {
    let fixture = Fixture::new();
    let config = fixture
        .load(
            &fixture.flags(&[]),
            &[("FERRY_PASSIVE_HOST", ""), ("FERRY_MAX_SESSIONS", "")],
        )
        .expect("loads");
    assert_eq!(config.passive_host, None);
    assert_eq!(config.max_sessions, DEFAULT_MAX_SESSIONS);
}

#[test]
fn unknown_key_in_file_names_file_line_and_key() {
    let fixture = Fixture::new();
    let file = fixture.config_file("bind = \"127.0.0.1:2121\"\n\nmax_session = 5\n");
    let message = error_message(fixture.load_file(&file));
    assert!(
        message.starts_with(&format!(
            "{}:3: unknown key `max_session` (known keys: bind, root, users,",
            file.display()
        )),
        "{message}"
    );
}

#[test]
fn bad_port_range_in_file_names_file_and_key() {
    let fixture = Fixture::new();
    let file = fixture.config_file_with("passive_ports = \"70000-2\"\n");
    assert_eq!(
        error_message(fixture.load_file(&file)),
        format!(
            "{}:3: key `passive_ports`: \"70000-2\" is not a port range LO-HI \
             (ports 1-65535, LO <= HI)",
            file.display()
        )
    );
}

#[test]
fn bad_port_range_in_env_names_variable_and_key() {
    let fixture = Fixture::new();
    assert_eq!(
        error_message(fixture.load(&fixture.flags(&[]), &[("FERRY_PASSIVE_PORTS", "abc")])),
        "environment variable FERRY_PASSIVE_PORTS: key `passive_ports`: \
         \"abc\" is not a port range LO-HI (ports 1-65535, LO <= HI)"
    );
}

#[test]
fn bad_port_range_in_flag_names_flag_and_key() {
    let fixture = Fixture::new();
    assert_eq!(
        error_message(fixture.load(&fixture.flags(&["--passive-ports", "50000"]), &[])),
        "flag --passive-ports: key `passive_ports`: \
         \"50000\" is not a port range LO-HI (ports 1-65535, LO <= HI)"
    );
}

#[test]
fn port_range_rejects_low_above_high_zero_and_out_of_range() {
    for bad in ["50100-50000", "0-100", "1-65536", "-", "1-2-3", ""] {
        assert!(parse_port_range(bad).is_err(), "{bad:?} accepted");
    }
    assert_eq!(parse_port_range("50000-50000"), Ok(50000..=50000));
    assert_eq!(parse_port_range(" 1 - 65535 "), Ok(1..=65535));
}

#[test]
fn not_a_number_in_env_names_variable_and_key() {
    let fixture = Fixture::new();
    assert_eq!(
        error_message(fixture.load(&fixture.flags(&[]), &[("FERRY_MAX_SESSIONS", "abc")])),
        "environment variable FERRY_MAX_SESSIONS: key `max_sessions`: \"abc\" is not a whole number"
    );
}

#[test]
fn wrong_toml_type_names_what_was_found() {
    let fixture = Fixture::new();
    let file = fixture.config_file_with("max_sessions = true\n");
    assert_eq!(
        error_message(fixture.load_file(&file)),
        format!(
            "{}:3: key `max_sessions`: expected a whole number, found true",
            file.display()
        )
    );
    let file = fixture.config_file_with("bind = 2121\n");
    assert_eq!(
        error_message(fixture.load_file(&file)),
        format!(
            "{}:3: key `bind`: expected a string, found the number 2121",
            file.display()
        )
    );
}

#[test]
fn limits_must_be_at_least_one() {
    let fixture = Fixture::new();
    for flag in [
        "--max-sessions",
        "--max-sessions-per-ip",
        "--max-concurrent-logins",
        "--idle-timeout",
        "--failed-login-ban",
        "--login-timeout",
    ] {
        let message = error_message(fixture.load(&fixture.flags(&[flag, "0"]), &[]));
        assert!(
            message.starts_with(&format!("flag {flag}: key `")),
            "{message}"
        );
        assert!(message.contains("must be at least 1"), "{message}");
    }
}

#[test]
fn negative_and_huge_numbers_are_rejected() {
    let fixture = Fixture::new();
    let file = fixture.config_file_with("max_sessions = -1\n");
    assert!(
        error_message(fixture.load_file(&file))
            .ends_with("key `max_sessions`: -1 is not a whole number")
    );
    assert!(
        error_message(fixture.load(
            &fixture.flags(&["--failed-login-max-attempts", "4294967296"]),
            &[]
        ))
        .ends_with("key `failed_login_max_attempts`: 4294967296 is too large")
    );
}

#[test]
fn zero_failed_login_attempts_turns_the_policy_off() {
    let fixture = Fixture::new();
    let file = fixture.config_file_with("failed_login_max_attempts = 0\n");
    let config = fixture.load_file(&file).expect("loads");
    assert_eq!(config.login_failures, None);
}

#[test]
fn ipv6_bind_addresses_parse() {
    let fixture = Fixture::new();
    for address in ["[::1]:2121", "[::]:2121"] {
        let config = fixture
            .load(&fixture.flags(&["--bind", address]), &[])
            .expect("loads");
        assert_eq!(config.bind, address.parse().expect("address"));
    }
    assert_eq!(
        error_message(fixture.load(&fixture.flags(&["--bind", "localhost:21"]), &[])),
        "flag --bind: key `bind`: \"localhost:21\" is not an address ADDR:PORT \
         (e.g. 127.0.0.1:2121 or [::]:2121)"
    );
}

#[test]
fn missing_root_names_where_it_was_set() {
    let fixture = Fixture::new();
    let missing = fixture.dir.path().join("nowhere");
    let message = error_message(fixture.load(
        &["--users", fixture.users_file.to_str().expect("utf-8")],
        &[("FERRY_ROOT", missing.to_str().expect("utf-8"))],
    ));
    assert_eq!(
        message,
        format!(
            "root `{}` (environment variable FERRY_ROOT) does not exist",
            missing.display()
        )
    );
    // The default root, ./data, ships with the repository (tests run from its top), so
    // here the default must simply apply.
    let config = fixture
        .load(
            &["--users", fixture.users_file.to_str().expect("utf-8")],
            &[],
        )
        .expect("default root exists");
    assert_eq!(config.root, std::path::PathBuf::from("./data"));
}

#[test]
fn root_that_is_a_file_is_rejected() {
    let fixture = Fixture::new();
    let users = fixture.users_file.to_str().expect("utf-8");
    let message = error_message(fixture.load(&["--root", users, "--users", users], &[]));
    assert_eq!(
        message,
        format!("root `{users}` (flag --root) is not a directory")
    );
}

#[test]
fn missing_users_file_names_where_it_was_set() {
    let fixture = Fixture::new();
    let missing = fixture.dir.path().join("nobody.toml");
    let file = fixture.config_file(&format!(
        "root = {:?}\nusers = {:?}\n",
        fixture.root, missing
    ));
    let message = error_message(fixture.load_file(&file));
    assert!(
        message.starts_with(&format!(
            "users file `{}` ({}:2) cannot be opened: ",
            missing.display(),
            file.display()
        )),
        "{message}"
    );
}

#[test]
fn users_may_name_a_postgres_database_whose_password_comes_from_a_file_or_pgpassword() {
    let fixture = Fixture::new();
    let root = fixture.root.to_str().expect("utf-8");
    let url = "postgres://ferry@db.example.com/accounts?sslmode=verify-full";
    let config = fixture
        .load(
            &["--root", root],
            &[("FERRY_USERS", url), ("PGPASSWORD", "from-env")],
        )
        .expect("a database needs no users file");
    let database = config.users_database.expect("the database");
    assert_eq!(
        database.to_string(),
        "postgres://ferry@db.example.com:5432/accounts"
    );
    assert_eq!(
        database.password.as_ref().map(|p| p.expose()),
        Some("from-env")
    );

    let secret = fixture.dir.path().join("db-password");
    fs::write(&secret, "from-file\n").expect("write");
    let secret = secret.to_str().expect("utf-8");
    let config = fixture
        .load(
            &[
                "--root",
                root,
                "--users",
                url,
                "--users-password-file",
                secret,
            ],
            &[("PGPASSWORD", "from-env")],
        )
        .expect("loads");
    let database = config.users_database.expect("the database");
    assert_eq!(
        database.password.as_ref().map(|p| p.expose()),
        Some("from-file")
    );

    let missing = fixture.dir.path().join("absent");
    let message = error_message(fixture.load(
        &["--root", root, "--users", url],
        &[(
            "FERRY_USERS_PASSWORD_FILE",
            missing.to_str().expect("utf-8"),
        )],
    ));
    assert!(
        message.starts_with(
            "environment variable FERRY_USERS_PASSWORD_FILE: key `users_password_file`: could not read"
        ),
        "{message}"
    );
    let message = error_message(fixture.load(
        &[
            "--root",
            root,
            "--users",
            "postgres://ferry:hunter2@db/accounts",
        ],
        &[],
    ));
    assert!(
        message.starts_with("flag --users: key `users`: the URL holds a password"),
        "{message}"
    );
    assert!(!message.contains("hunter2"), "{message}");
}

#[test]
fn users_file_that_is_a_directory_is_rejected() {
    let fixture = Fixture::new();
    let root = fixture.root.to_str().expect("utf-8");
    let message = error_message(fixture.load(&["--root", root, "--users", root], &[]));
    assert_eq!(
        message,
        format!("users file `{root}` (flag --users) is not a regular file")
    );
}

#[test]
fn named_config_file_that_does_not_exist_is_an_error() {
    let fixture = Fixture::new();
    let missing = fixture.dir.path().join("missing.toml");
    let missing = missing.to_str().expect("utf-8");
    assert_eq!(
        error_message(fixture.load(&fixture.flags(&["--config", missing]), &[])),
        format!("config file {missing} (named by flag --config) does not exist")
    );
    assert_eq!(
        error_message(fixture.load(&fixture.flags(&[]), &[("FERRY_CONFIG", missing)])),
        format!(
            "config file {missing} (named by environment variable FERRY_CONFIG) does not exist"
        )
    );
}

#[test]
fn toml_syntax_error_names_file_and_line() {
    let fixture = Fixture::new();
    let file = fixture.config_file("bind = \"127.0.0.1:2121\"\nmax_sessions = [1,\n");
    let message = error_message(fixture.load_file(&file));
    assert!(
        message.starts_with(&format!("{}:2: ", file.display())),
        "{message}"
    );
}

#[test]
fn duplicate_key_in_file_is_an_error() {
    let fixture = Fixture::new();
    let file = fixture.config_file("max_sessions = 1\nmax_sessions = 2\n");
    let message = error_message(fixture.load_file(&file));
    assert_eq!(message, format!("{}:2: duplicate key", file.display()));
}

#[test]
fn passive_host_takes_ipv4_or_dns_name_only() {
    for good in [
        "203.0.113.7",
        "ftp.example.com",
        "localhost",
        "my-host.example.",
    ] {
        assert_eq!(parse_passive_host(good.to_owned()).as_deref(), Ok(good));
    }
    for bad in [
        "::1",
        "2001:db8::1",
        "999.1.1.1",
        "-bad.example",
        "a b",
        "",
        "ftp_x.com",
    ] {
        assert!(
            parse_passive_host(bad.to_owned()).is_err(),
            "{bad:?} accepted"
        );
    }
}

#[test]
fn host_names_are_a_list_in_the_file_and_comma_separated_in_env_and_flags() {
    let fixture = Fixture::new();
    let file = fixture.config_file_with("host_names = [\"FTP.Example.com.\", \"[2001:DB8::1]\"]\n");
    let config = fixture.load_file(&file).expect("valid");
    assert_eq!(config.host_names, ["ftp.example.com", "2001:db8::1"]);
    let config = fixture
        .load(
            &fixture.flags(&[]),
            &[("FERRY_HOST_NAMES", "a.example, b.example,")],
        )
        .expect("valid");
    assert_eq!(config.host_names, ["a.example", "b.example"]);
    let config = fixture
        .load(&fixture.flags(&["--host-names", "c.example"]), &[])
        .expect("valid");
    assert_eq!(config.host_names, ["c.example"]);
    assert!(
        Config::default().host_names.is_empty(),
        "any name by default"
    );

    let file = fixture.config_file_with("host_names = [\"ok.example\", \"not a name\"]\n");
    assert_eq!(
        error_message(fixture.load_file(&file)),
        format!(
            "{}:3: key `host_names`: \"not a name\" is neither a DNS name nor an IP address",
            file.display()
        )
    );
    let file = fixture.config_file_with("host_names = [1]\n");
    assert_eq!(
        error_message(fixture.load_file(&file)),
        format!(
            "{}:3: key `host_names`: expected host names (strings), found the number 1",
            file.display()
        )
    );
    let file = fixture.config_file_with("bind = [\"127.0.0.1:21\"]\n");
    assert_eq!(
        error_message(fixture.load_file(&file)),
        format!(
            "{}:3: key `bind`: expected a string, found an array",
            file.display()
        )
    );
}

#[test]
fn proxy_from_is_a_list_of_networks_in_the_file_and_comma_separated_in_env_and_flags() {
    let fixture = Fixture::new();
    let networks = |texts: &[&str]| -> Vec<ipnet::IpNet> {
        texts
            .iter()
            .map(|text| text.parse().expect("network"))
            .collect()
    };
    let file = fixture.config_file_with("proxy_from = [\"10.0.0.0/8\", \"192.0.2.10\"]\n");
    let config = fixture.load_file(&file).expect("valid");
    assert_eq!(
        config.proxy_from,
        networks(&["10.0.0.0/8", "192.0.2.10/32"])
    );
    let config = fixture
        .load(
            &fixture.flags(&[]),
            &[("FERRY_PROXY_FROM", "127.0.0.1/32, fd00::/8,")],
        )
        .expect("valid");
    assert_eq!(config.proxy_from, networks(&["127.0.0.1/32", "fd00::/8"]));
    let config = fixture
        .load(
            &fixture.flags(&["--proxy-from", "::1"]),
            &[("FERRY_PROXY_FROM", "127.0.0.1/32")],
        )
        .expect("valid");
    assert_eq!(config.proxy_from, networks(&["::1/128"]));
    let config = fixture
        .load(&fixture.flags(&[]), &[("FERRY_PROXY_FROM", " , ")])
        .expect("valid");
    assert!(config.proxy_from.is_empty(), "empty means off");

    let file = fixture.config_file_with("proxy_from = [\"10.0.0.0/33\"]\n");
    assert_eq!(
        error_message(fixture.load_file(&file)),
        format!(
            "{}:3: key `proxy_from`: \"10.0.0.0/33\" is not a network in CIDR notation \
             (e.g. \"10.0.0.0/8\" or \"::1/128\")",
            file.display()
        )
    );
    assert_eq!(
        error_message(fixture.load(&fixture.flags(&["--proxy-from", "lb.example"]), &[])),
        "flag --proxy-from: key `proxy_from`: \"lb.example\" is not a network in CIDR \
         notation (e.g. \"10.0.0.0/8\" or \"::1/128\")"
    );
    let file = fixture.config_file_with("proxy_from = 10\n");
    assert_eq!(
        error_message(fixture.load_file(&file)),
        format!(
            "{}:3: key `proxy_from`: expected a list of networks, found the number 10",
            file.display()
        )
    );
}

#[test]
fn greeting_must_be_one_line() {
    assert!(parse_greeting("hello\r\n230 fake".to_owned()).is_err());
    assert!(parse_greeting("Welcome to Ferry".to_owned()).is_ok());
}

#[test]
fn anonymous_home_must_be_beneath_root() {
    for bad in ["/srv/ftp", "../other", "pub/../..", ".", ""] {
        assert!(
            parse_anonymous_home(bad.to_owned()).is_err(),
            "{bad:?} accepted"
        );
    }
    for good in ["anonymous", "./pub", "pub/files"] {
        assert!(
            parse_anonymous_home(good.to_owned()).is_ok(),
            "{good:?} refused"
        );
    }
}

#[test]
fn log_format_and_level_take_the_documented_names() {
    for (name, level) in [
        ("error", slog::Level::Error),
        ("warn", slog::Level::Warning),
        ("info", slog::Level::Info),
        ("debug", slog::Level::Debug),
        ("trace", slog::Level::Trace),
    ] {
        assert_eq!(parse_log_level(name), Ok(level));
    }
    assert!(parse_log_level("verbose").is_err());
    assert_eq!(parse_log_format("json"), Ok(LogFormat::Json));
    assert!(parse_log_format("xml").is_err());
}

/// Writes a fresh self-signed certificate and key into `dir`; returns their paths as text.
fn write_test_certificate(dir: &Path, name: &str) -> (String, String) {
    let generated =
        crate::tls::cert::generate_self_signed(&["localhost".to_owned()], 1).expect("generate");
    let cert = dir.join(format!("{name}-cert.pem"));
    let key = dir.join(format!("{name}-key.pem"));
    fs::write(&cert, generated.cert_pem).expect("write cert");
    fs::write(&key, generated.key_pem).expect("write key");
    let text = |path: PathBuf| path.to_str().expect("utf-8").to_owned();
    (text(cert), text(key))
}

#[test]
fn tls_keys_come_from_file_env_and_flags() {
    use crate::tls::{ClientAuth, TlsMode, TlsRequiredFor, TlsVersion};
    let fixture = Fixture::new();
    let (cert, key) = write_test_certificate(fixture.dir.path(), "server");
    let file = fixture.config_file_with(&format!(
        "tls = \"required\"\ntls_cert = {cert:?}\ntls_key = {key:?}\n\
         tls_required_for = \"accounts\"\ntls_client_auth = \"request\"\n\
         tls_client_ca = {cert:?}\n"
    ));
    let config = fixture
        .load(
            &[
                "--config",
                file.to_str().expect("utf-8"),
                "--tls-data",
                "optional",
            ],
            &[
                ("FERRY_TLS_MIN_VERSION", "1.3"),
                ("FERRY_TLS_IMPLICIT_BIND", "127.0.0.1:9990"),
            ],
        )
        .expect("loads");
    assert_eq!(
        config.tls,
        TlsSettings {
            mode: TlsMode::Required,
            data_mode: Some(TlsMode::Optional),
            required_for: TlsRequiredFor::Accounts,
            cert_file: Some(PathBuf::from(&cert)),
            key_file: Some(PathBuf::from(&key)),
            min_version: TlsVersion::V1_3,
            client_auth: ClientAuth::Request,
            client_ca_file: Some(PathBuf::from(&cert)),
            implicit_bind: Some("127.0.0.1:9990".parse().expect("address")),
        }
    );
    let config = fixture
        .load(
            &fixture.flags(&["--tls", "optional", "--tls-cert", &cert, "--tls-key", &key]),
            &[],
        )
        .expect("loads");
    assert_eq!(config.tls.effective_data_mode(), TlsMode::Optional);
}

#[test]
fn tls_errors_name_the_key_and_where_it_was_set() {
    let fixture = Fixture::new();
    let (cert, key) = write_test_certificate(fixture.dir.path(), "server");
    let (_, other_key) = write_test_certificate(fixture.dir.path(), "other");
    let missing = fixture.dir.path().join("missing.pem");
    let missing = missing.to_str().expect("utf-8");
    let users = fixture.users_file.to_str().expect("utf-8");
    let cases: Vec<(Vec<&str>, String)> = vec![
        (
            vec!["--tls", "maybe"],
            "flag --tls: key `tls`: \"maybe\" is not a TLS mode (off, optional, required)"
                .to_owned(),
        ),
        (
            vec!["--tls", "required", "--tls-key", &key],
            "flag --tls: key `tls`: needs `tls_cert` to be set".to_owned(),
        ),
        (
            vec!["--tls", "required", "--tls-cert", missing, "--tls-key", &key],
            format!("flag --tls-cert: key `tls_cert`: could not read {missing}: "),
        ),
        (
            vec!["--tls", "required", "--tls-cert", users, "--tls-key", &key],
            format!("flag --tls-cert: key `tls_cert`: {users} holds no certificate"),
        ),
        (
            vec!["--tls", "required", "--tls-cert", &cert, "--tls-key", &other_key],
            "flag --tls-key: key `tls_key`: the certificate and key do not make a usable pair"
                .to_owned(),
        ),
        (
            vec!["--tls", "optional", "--tls-cert", &cert, "--tls-key", &key, "--tls-client-auth", "require"],
            "flag --tls-client-auth: key `tls_client_auth`: needs `tls_client_ca` to be set"
                .to_owned(),
        ),
        (
            vec!["--tls-data", "required"],
            "flag --tls-data: key `tls_data`: needs tls = optional or required".to_owned(),
        ),
        (
            vec!["--tls-implicit-bind", "127.0.0.1:9990"],
            "flag --tls-implicit-bind: key `tls_implicit_bind`: needs tls = optional or required"
                .to_owned(),
        ),
        (
            vec!["--tls", "optional", "--tls-cert", &cert, "--tls-key", &key, "--tls-implicit-bind", "990"],
            "flag --tls-implicit-bind: key `tls_implicit_bind`: \"990\" is not an address".to_owned(),
        ),
        (
            vec!["--tls-min-version", "1.1"],
            "flag --tls-min-version: key `tls_min_version`: \"1.1\" is not a TLS version (1.2, 1.3)"
                .to_owned(),
        ),
    ];
    for (flags, expected) in cases {
        let message = error_message(fixture.load(&fixture.flags(&flags), &[]));
        assert!(message.starts_with(&expected), "{flags:?}: {message}");
    }
}

#[test]
fn example_ftps_config_loads() {
    use crate::tls::TlsMode;
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/ferry-ftps.toml");
    let fixture = Fixture::new();
    let (cert, key) = write_test_certificate(fixture.dir.path(), "server");
    // The example names config/tls/{cert,key}.pem, which `ferry cert self-signed` makes;
    // the test points at its own pair instead.
    let config = fixture
        .load(
            &fixture.flags(&[
                "--config",
                example.to_str().expect("utf-8"),
                "--tls-cert",
                &cert,
                "--tls-key",
                &key,
            ]),
            &[],
        )
        .expect("config/ferry-ftps.toml loads");
    assert_eq!(config.tls.mode, TlsMode::Required);
    assert_eq!(config.tls.effective_data_mode(), TlsMode::Required);
    let text = fs::read_to_string(&example).expect("read example");
    assert!(text.contains("\ntls_cert = \"config/tls/cert.pem\"\n"));
    assert!(text.contains("\ntls_key = \"config/tls/key.pem\"\n"));
}

#[test]
fn admin_listener_is_set_by_env_or_flag_and_checked_like_bind() {
    let fixture = Fixture::new();
    let config = fixture
        .load(&fixture.flags(&[]), &[("FERRY_ADMIN_BIND", "0.0.0.0:9090")])
        .expect("loads");
    assert_eq!(
        config.admin_bind,
        Some("0.0.0.0:9090".parse().expect("address"))
    );
    let config = fixture
        .load(
            &fixture.flags(&["--admin-bind", "[::1]:9191"]),
            &[("FERRY_ADMIN_BIND", "0.0.0.0:9090")],
        )
        .expect("loads");
    assert_eq!(
        config.admin_bind,
        Some("[::1]:9191".parse().expect("address"))
    );
    assert_eq!(
        error_message(fixture.load(&fixture.flags(&["--admin-bind", "9090"]), &[])),
        "flag --admin-bind: key `admin_bind`: \"9090\" is not an address ADDR:PORT \
         (e.g. 127.0.0.1:2121 or [::]:2121)"
    );
}

#[test]
fn every_key_has_an_env_var_and_a_flag() {
    let serve = ServeCommand::command();
    for key in Key::ALL {
        let flag = key.flag();
        assert!(
            serve
                .get_arguments()
                .any(|arg| arg.get_long().map(|long| format!("--{long}")) == Some(flag.clone())),
            "no flag {flag} for key `{}`",
            key.name()
        );
        let env_var = key.env_var();
        let assignments = env_layer(&|name| (name == env_var).then(|| "x".to_owned()));
        assert_eq!(
            assignments.iter().map(|a| a.key).collect::<Vec<_>>(),
            [key],
            "{env_var} not read"
        );
    }
    let flag_keys: Vec<Key> = flag_values(&ServeArgs::default())
        .into_iter()
        .map(|(key, _)| key)
        .collect();
    assert_eq!(flag_keys, Key::ALL);
}

#[test]
fn file_text_is_checked_without_looking_at_root_or_users_file() {
    let file = Path::new("ferry.toml");
    let config = Config::from_file_text(file, "root = \"/nonexistent\"\nlogin_timeout = 5\n")
        .expect("values are valid; the missing root is not looked at");
    assert_eq!(config.root, Path::new("/nonexistent"));
    assert_eq!(config.login_timeout, Duration::from_secs(5));
    assert_eq!(config.source_file.as_deref(), Some(file));
    let message = Config::from_file_text(file, "login_timeout = 0\n")
        .map(|_| ())
        .expect_err("zero is refused");
    assert_eq!(
        message.to_string(),
        "ferry.toml:1: key `login_timeout`: must be at least 1 seconds, not 0"
    );
}

#[test]
fn shipped_config_file_loads_and_lists_every_key() {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/ferry.toml");
    let fixture = Fixture::new();
    let config = fixture
        .load(
            &fixture.flags(&["--config", shipped.to_str().expect("utf-8")]),
            &[],
        )
        .expect("config/ferry.toml loads");
    assert_eq!(config.bind, "127.0.0.1:2121".parse().expect("address"));
    assert_eq!(config.passive_ports, 30000..=30099);
    let text = fs::read_to_string(&shipped).expect("read config/ferry.toml");
    for key in Key::ALL {
        let listed = text.lines().any(|line| {
            let line = line.trim_start_matches("# ");
            line.starts_with(&format!("{} = ", key.name()))
        });
        assert!(listed, "config/ferry.toml does not list `{}`", key.name());
    }
    assert!(text.contains("\nroot = \"data\"\n"));
    assert!(text.contains("\nusers = \"config/users.toml\"\n"));
}

#[test]
fn a_bucket_root_needs_no_directory_and_bad_s3_values_name_their_key() {
    let fixture = Fixture::new();
    let users = fixture.users_file.to_str().expect("utf-8 temp path");
    let flags = ["--root", "s3://ferry-data/site-a/", "--users", users];
    let config = fixture.load(&flags, &[]).expect("loads");
    assert_eq!(
        config.bucket,
        Some(crate::config::BucketRoot {
            bucket: "ferry-data".into(),
            prefix: "site-a".into()
        })
    );
    assert_eq!(config.s3, crate::config::S3Settings::default());

    let message = error_message(fixture.load(&flags, &[("FERRY_S3_PART_SIZE", "2")]));
    assert_eq!(
        message,
        "environment variable FERRY_S3_PART_SIZE: key `s3_part_size`: must be between 5 and \
         5120 MiB (S3's part limits), got 2"
    );
    let bad_bucket = ["--root", "s3://Bad_Bucket", "--users", users];
    let message = error_message(fixture.load(&bad_bucket, &[]));
    assert!(
        message.starts_with("flag --root: key `root`: expected s3://BUCKET[/PREFIX]"),
        "{message}"
    );
    let message = error_message(fixture.load(&flags, &[("FERRY_S3_ENDPOINT", "localhost:9000")]));
    assert!(message.contains("key `s3_endpoint`"), "{message}");
    let message = error_message(fixture.load(&flags, &[("FERRY_INSTANCE_ID", "a/b")]));
    assert!(message.contains("key `instance_id`"), "{message}");
}

#[test]
fn event_keys_and_hook_tables_load() {
    use crate::config::{EventKind, HookTarget};
    let fixture = Fixture::new();
    let secret = fixture.dir.path().join("hook-secret");
    fs::write(&secret, "s3cret\n").expect("write secret");
    let file = fixture.config_file_with(&format!(
        "event_webhook = \"https://hooks.example.com/ferry\"\n\
         event_webhook_secret_file = {secret:?}\n\
         event_spool = \"/var/spool/ferry\"\n\
         event_spool_max_events = 10\n\
         [[event_hooks]]\n\
         name = \"csv\"\n\
         webhook = \"http://127.0.0.1:8080/in\"\n\
         secret_file = {secret:?}\n\
         events = [\"upload\", \"rename\"]\n\
         paths = [\"*.csv\", \"incoming/**\"]\n\
         timeout = 5\n\
         [[event_hooks]]\n\
         command = [\"/usr/local/bin/process\", \"{{path}}\"]\n"
    ));
    let config = fixture.load_file(&file).expect("loads");
    let events = &config.events;
    assert_eq!(events.spool.as_deref(), Some(Path::new("/var/spool/ferry")));
    assert_eq!(events.spool_max_events, 10);
    let hooks = events.hooks();
    let names: Vec<&str> = hooks.iter().map(|hook| hook.name.as_str()).collect();
    assert_eq!(names, ["webhook", "csv", "hook1"]);
    assert_eq!(
        hooks[0].secret.as_ref().map(|s| s.expose().to_vec()),
        Some(b"s3cret".to_vec())
    );
    assert_eq!(hooks[1].events, [EventKind::Upload, EventKind::Rename]);
    assert_eq!(hooks[1].paths, ["*.csv", "incoming/**"]);
    assert_eq!(hooks[1].timeout, Duration::from_secs(5));
    assert!(hooks[1].secret.is_some());
    assert_eq!(
        hooks[2].target,
        HookTarget::Command(vec!["/usr/local/bin/process".into(), "{path}".into()])
    );
    assert!(hooks[2].events.is_empty() && hooks[2].paths.is_empty());
    assert!(
        !format!("{config:?}").contains("s3cret"),
        "secrets stay out of Debug"
    );
}

#[test]
fn bad_event_settings_name_the_table_and_field() {
    let fixture = Fixture::new();
    let cases = [
        (
            "[[event_hooks]]\nwebhook = \"http://h/\"\n[[event_hooks]]\ncommand = [\"x\"]\npaths = [\"a[\"]\n",
            "key `event_hooks`: event_hooks[1].paths: \"a[\": unclosed character class",
        ),
        (
            "[[event_hooks]]\nwebhook = \"http://h/\"\nevents = [\"uplod\"]\n",
            "key `event_hooks`: event_hooks[0].events: \"uplod\" is not an event (one of upload, delete, rename, mkdir, rmdir)",
        ),
        (
            "[[event_hooks]]\nwebhook = \"ftp://h/\"\n",
            "key `event_hooks`: event_hooks[0].webhook: \"ftp://h/\" is not an http:// or https:// URL with a host",
        ),
        (
            "[[event_hooks]]\nname = \"a\"\nwebhook = \"http://h/\"\ncommand = [\"x\"]\n",
            "key `event_hooks`: event_hooks[0].webhook: give either webhook = \"URL\" or command = [...]",
        ),
        (
            "[[event_hooks]]\ncommand = [\"x\"]\nsecret_file = \"/s\"\n",
            "key `event_hooks`: event_hooks[0].secret_file: only a webhook has one",
        ),
        (
            "[[event_hooks]]\ncommand = [\"x\"]\n[[event_hooks]]\nname = \"hook0\"\ncommand = [\"y\"]\n",
            "key `event_hooks`: event_hooks[1].name: \"hook0\" names another hook too; each needs its own",
        ),
        (
            "[[event_hooks]]\nwebhook = \"http://h/\"\nretries = 3\n",
            "key `event_hooks`: event_hooks[0]: unknown field `retries`",
        ),
        (
            "[[event_hooks]]\nwebhook = \"http://h/\"\nsecret_file = \"/nonexistent/secret\"\n",
            "key `event_hooks`: event_hooks[0].secret_file: could not read /nonexistent/secret",
        ),
        (
            "event_webhook_secret_file = \"/nonexistent/secret\"\n",
            "key `event_webhook_secret_file`: set event_webhook too",
        ),
    ];
    for (text, expected) in cases {
        let file = fixture.config_file_with(text);
        let message = error_message(fixture.load_file(&file));
        assert!(message.contains(expected), "{text}\n{message}");
    }
    let message =
        error_message(fixture.load(&fixture.flags(&[]), &[("FERRY_EVENT_WEBHOOK", "not a url")]));
    assert!(
        message.starts_with("environment variable FERRY_EVENT_WEBHOOK: key `event_webhook`:"),
        "{message}"
    );
    let message =
        error_message(fixture.load(&fixture.flags(&["--event-spool-max-events", "0"]), &[]));
    assert_eq!(
        message,
        "flag --event-spool-max-events: key `event_spool_max_events`: must be at least 1, not 0"
    );
}
