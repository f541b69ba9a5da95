//! `config/ferry.service`: systemd accepts it, it starts `ferry serve` with valid flags, and it
//! keeps the hardening the README promises.

use clap::Parser;
use ferry::cli::{Cli, Command};
use std::process::Command as Process;

const UNIT: &str = include_str!("../config/ferry.service");
const INSTALLED_BINARY: &str = "/usr/local/bin/ferry";

/// The value of `key=` in the unit (the first one).
fn directive(key: &str) -> Option<&'static str> {
    UNIT.lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
}

#[test]
fn systemd_analyze_verify_accepts_the_unit_without_warnings() {
    // `verify` checks that ExecStart exists: point it at the binary under test.
    let dir = tempfile::tempdir().expect("temp dir");
    let unit = dir.path().join("ferry.service");
    std::fs::write(
        &unit,
        UNIT.replace(INSTALLED_BINARY, env!("CARGO_BIN_EXE_ferry")),
    )
    .expect("write unit");
    let output = Process::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .expect("systemd-analyze runs (.ci/run installs the systemd package)");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(stderr, "", "warnings from systemd-analyze verify");
}

#[test]
fn exec_start_is_a_valid_serve_command() {
    let exec_start = directive("ExecStart").expect("ExecStart");
    let argv: Vec<&str> = exec_start.split_whitespace().collect();
    assert_eq!(argv[0], INSTALLED_BINARY);
    let cli = Cli::try_parse_from(argv).expect("flags parse");
    assert!(matches!(cli.command, Command::Serve(_)));
}

#[test]
fn unit_keeps_its_hardening() {
    for (key, value) in [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ReadWritePaths", "/srv/ferry"),
        ("PrivateTmp", "yes"),
        ("ProtectHome", "yes"),
        ("CapabilityBoundingSet", "CAP_NET_BIND_SERVICE"),
        ("AmbientCapabilities", "CAP_NET_BIND_SERVICE"),
        ("User", "ferry"),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
    ] {
        assert_eq!(directive(key), Some(value), "{key}");
    }
    // Longer than Ferry's shutdown grace, so transfers finish before SIGKILL.
    let stop_timeout: u64 = directive("TimeoutStopSec")
        .and_then(|value| value.strip_suffix('s')?.parse().ok())
        .expect("TimeoutStopSec in seconds");
    assert!(stop_timeout > ferry::config::Config::default().shutdown_grace.as_secs());
}
