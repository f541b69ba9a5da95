//! Tests of `ferry user` against a users file.

use super::*;
use crate::accounts::password::verify_password;
use clap::Parser;
use std::path::Path;

#[derive(Debug, Parser)]
struct UserCli {
    #[command(subcommand)]
    command: UserCommand,
}

fn parse(args: &[&str]) -> UserCommand {
    UserCli::try_parse_from(std::iter::once("ferry-user").chain(args.iter().copied()))
        .expect("valid arguments")
        .command
}

/// Runs `args` with `stdin` as standard input; returns the result and what was printed.
fn run_with(args: &[&str], stdin: &str) -> (Result<(), UsersError>, String) {
    let mut out = Vec::new();
    let result = execute(parse(args), &mut stdin.as_bytes(), &mut out);
    (result, String::from_utf8(out).expect("utf-8 output"))
}

struct Scratch {
    _dir: tempfile::TempDir,
    users: String,
}

fn scratch() -> Scratch {
    let dir = tempfile::tempdir().expect("tempdir");
    let users = dir.path().join("users.toml").display().to_string();
    Scratch { _dir: dir, users }
}

#[test]
fn command_line_definition_is_consistent() {
    use clap::CommandFactory;
    UserCli::command().debug_assert();
}

#[test]
fn add_creates_the_file_with_a_hashed_password_and_defaults() {
    let s = scratch();
    let (result, output) = run_with(
        &["add", "bob", "--users", &s.users, "--password-stdin"],
        "s3cret pw\n",
    );
    result.expect("add");
    assert!(output.contains("added user `bob`"), "{output}");
    let text = std::fs::read_to_string(&s.users).expect("read");
    assert!(!text.contains("s3cret"), "no plaintext password on disk");
    let users = UsersFile::load(Path::new(&s.users)).expect("load");
    let bob = users.get("bob").expect("bob");
    assert!(verify_password(&bob.password_hash, "s3cret pw"));
    assert_eq!(bob.home, PathBuf::from("bob"));
    assert_eq!(bob.permissions, Permissions::ALL);
    assert!(bob.enabled);
}

#[test]
fn add_read_only_with_home_keeps_existing_users() {
    let s = scratch();
    run_with(
        &["add", "amy", "--users", &s.users, "--password-stdin"],
        "a\n",
    )
    .0
    .expect("add amy");
    run_with(
        &[
            "add",
            "bob",
            "--users",
            &s.users,
            "--home",
            "shared/bob",
            "--read-only",
            "--password-stdin",
        ],
        "b\r\n",
    )
    .0
    .expect("add bob");
    let users = UsersFile::load(Path::new(&s.users)).expect("load");
    assert!(users.get("amy").is_some());
    let bob = users.get("bob").expect("bob");
    assert_eq!(bob.permissions, Permissions::READ_ONLY);
    assert_eq!(bob.home, PathBuf::from("shared/bob"));
    assert!(verify_password(&bob.password_hash, "b"), "CRLF is stripped");
}

#[test]
fn add_refuses_existing_user_bad_home_and_empty_password() {
    let s = scratch();
    run_with(
        &["add", "bob", "--users", &s.users, "--password-stdin"],
        "pw\n",
    )
    .0
    .expect("add");
    let (result, _) = run_with(
        &["add", "bob", "--users", &s.users, "--password-stdin"],
        "x\n",
    );
    assert!(
        matches!(result, Err(UsersError::UserExists { .. })),
        "{result:?}"
    );
    let (result, _) = run_with(
        &[
            "add",
            "eve",
            "--users",
            &s.users,
            "--home",
            "../etc",
            "--password-stdin",
        ],
        "x\n",
    );
    let message = result.expect_err("dot-dot home").to_string();
    assert!(
        message.contains("user `eve`: field `home`: must not contain `..`"),
        "{message}"
    );
    let (result, _) = run_with(
        &["add", "eve", "--users", &s.users, "--password-stdin"],
        "\n",
    );
    assert!(
        matches!(result, Err(UsersError::EmptyPassword)),
        "{result:?}"
    );
    let (result, _) = run_with(&["add", "eve", "--users", &s.users, "--password-stdin"], "");
    assert!(
        matches!(result, Err(UsersError::EmptyPassword)),
        "{result:?}"
    );
    let (result, _) = run_with(
        &["add", "bad name", "--users", &s.users, "--password-stdin"],
        "x\n",
    );
    assert!(
        matches!(result, Err(UsersError::InvalidUserName { .. })),
        "{result:?}"
    );
    let users = UsersFile::load(Path::new(&s.users)).expect("load");
    assert_eq!(users.len(), 1, "failed commands change nothing");
}

#[test]
fn passwd_changes_only_the_password() {
    let s = scratch();
    run_with(
        &[
            "add",
            "bob",
            "--users",
            &s.users,
            "--read-only",
            "--password-stdin",
        ],
        "old\n",
    )
    .0
    .expect("add");
    run_with(
        &["passwd", "bob", "--users", &s.users, "--password-stdin"],
        "new\n",
    )
    .0
    .expect("passwd");
    let users = UsersFile::load(Path::new(&s.users)).expect("load");
    let bob = users.get("bob").expect("bob");
    assert!(verify_password(&bob.password_hash, "new"));
    assert!(!verify_password(&bob.password_hash, "old"));
    assert_eq!(bob.permissions, Permissions::READ_ONLY);
    let (result, _) = run_with(
        &["passwd", "nobody", "--users", &s.users, "--password-stdin"],
        "x\n",
    );
    assert!(
        matches!(result, Err(UsersError::NoSuchUser { .. })),
        "{result:?}"
    );
}

#[test]
fn remove_deletes_one_user() {
    let s = scratch();
    for name in ["amy", "bob"] {
        run_with(
            &["add", name, "--users", &s.users, "--password-stdin"],
            "pw\n",
        )
        .0
        .expect("add");
    }
    run_with(&["remove", "amy", "--users", &s.users], "")
        .0
        .expect("remove");
    let users = UsersFile::load(Path::new(&s.users)).expect("load");
    assert!(users.get("amy").is_none() && users.get("bob").is_some());
    let (result, _) = run_with(&["remove", "amy", "--users", &s.users], "");
    assert!(
        matches!(result, Err(UsersError::NoSuchUser { .. })),
        "{result:?}"
    );
}

#[test]
fn list_shows_accounts_but_never_hashes() {
    let s = scratch();
    run_with(
        &[
            "add",
            "bob",
            "--users",
            &s.users,
            "--read-only",
            "--password-stdin",
        ],
        "pw\n",
    )
    .0
    .expect("add");
    let (result, output) = run_with(&["list", "--users", &s.users], "");
    result.expect("list");
    let lines: Vec<_> = output.lines().collect();
    assert_eq!(lines.len(), 2, "{output}");
    assert!(lines[0].starts_with("NAME"), "{output}");
    assert!(lines[1].starts_with("bob"), "{output}");
    assert!(
        lines[1].contains("read-only") && lines[1].contains("yes"),
        "{output}"
    );
    assert!(!output.contains("argon2"), "{output}");
}

#[test]
fn add_with_require_tls_sets_it_in_the_file_and_list_shows_it() {
    let s = scratch();
    for (name, extra) in [("tina", Some("--require-tls")), ("pat", None)] {
        let mut args = vec!["add", name, "--users", &s.users, "--password-stdin"];
        args.extend(extra);
        run_with(&args, "pw\n").0.expect("add");
    }
    let file = UsersFile::load(Path::new(&s.users)).expect("load");
    assert!(file.get("tina").expect("tina").require_tls);
    assert!(!file.get("pat").expect("pat").require_tls);
    let (result, output) = run_with(&["list", "--users", &s.users], "");
    result.expect("list");
    let row = |name: &str| {
        output
            .lines()
            .find(|line| line.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} in {output}"))
            .to_string()
    };
    assert!(
        output.lines().next().is_some_and(|h| h.contains("TLS")),
        "{output}"
    );
    assert!(row("tina").contains("required"), "{output}");
    assert!(row("pat").contains("optional"), "{output}");
}

#[test]
fn users_flag_defaults_to_the_shipped_file() {
    // FERRY_USERS would override the default; tests do not set it.
    if std::env::var_os("FERRY_USERS").is_some() {
        return;
    }
    match parse(&["list"]) {
        UserCommand::List { users } => {
            assert_eq!(users.location, DEFAULT_USERS_FILE)
        }
        other => panic!("parsed as {other:?}"),
    }
}

#[test]
fn a_database_url_with_a_password_is_refused_without_echoing_it() {
    let (result, _) = run_with(
        &["list", "--users", "postgres://ferry:hunter2@db/accounts"],
        "",
    );
    let message = result.expect_err("a password in the URL").to_string();
    assert!(message.contains("holds a password"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
}
