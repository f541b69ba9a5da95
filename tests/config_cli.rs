//! `ferry serve --check-config` as a user runs it: exit status, stdout and stderr.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A working directory with a root (`data/`) and a users file (`users.toml`), and no
/// `config/ferry.toml`, so only what a test passes configures the server.
struct Workdir {
    dir: tempfile::TempDir,
}

impl Workdir {
    fn new() -> Workdir {
        let dir = tempfile::tempdir().expect("create temp dir");
        fs::create_dir(dir.path().join("data")).expect("create root");
        fs::write(dir.path().join("users.toml"), "").expect("create users file");
        Workdir { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Runs `ferry serve <args>` in the working directory with only `env` as its environment.
    fn serve(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_ferry"))
            .arg("serve")
            .args(args)
            .env_clear()
            .envs(env.iter().copied())
            .current_dir(self.path())
            .output()
            .expect("run ferry")
    }
}

fn shipped_config_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config/ferry.toml")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn check_config_with_shipped_file_reports_it_and_exits_zero() {
    let workdir = Workdir::new();
    let shipped = shipped_config_file();
    let output = workdir.serve(
        &[
            "--check-config",
            "--config",
            shipped.to_str().expect("utf-8 path"),
            "--users",
            "users.toml",
        ],
        &[],
    );
    assert!(output.status.success(), "stderr: {}", stderr(&output));
    assert_eq!(
        stdout(&output),
        format!("configuration OK ({})\n", shipped.display())
    );
}

#[test]
fn check_config_without_any_file_uses_environment() {
    let workdir = Workdir::new();
    let output = workdir.serve(
        &["--check-config"],
        &[("FERRY_USERS", "users.toml"), ("FERRY_PASSWORD", "x")],
    );
    assert!(output.status.success(), "stderr: {}", stderr(&output));
    assert_eq!(
        stdout(&output),
        "configuration OK (no config file; defaults, environment, flags)\n"
    );
}

#[test]
fn invalid_value_is_reported_on_stderr_with_exit_status_two() {
    let workdir = Workdir::new();
    let output = workdir.serve(
        &["--check-config", "--users", "users.toml"],
        &[("FERRY_PASSIVE_PORTS", "70000-2")],
    );
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(stdout(&output), "");
    assert_eq!(
        stderr(&output),
        "ferry: environment variable FERRY_PASSIVE_PORTS: key `passive_ports`: \
         \"70000-2\" is not a port range LO-HI (ports 1-65535, LO <= HI)\n"
    );
}

#[test]
fn missing_users_file_fails_the_check() {
    let workdir = Workdir::new();
    let output = workdir.serve(&["--check-config"], &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output)
            .starts_with("ferry: users file `config/users.toml` (default) cannot be opened: "),
        "stderr: {}",
        stderr(&output)
    );
}
