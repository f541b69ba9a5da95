//! `ferry client` against Ferry in-process: the seed's vocabulary in `-c` mode and through
//! stdin, exit statuses, JSON output, passwords, and connection handling (PASV fallback, active
//! mode, a dropped connection).

mod client_support;
mod common;

use client_support::{Faults, Fixture, Outcome, Proxy, run, run_commands};
use common::{PASSWORD, TestServer};
use serde_json::{Value, json};
use std::fs;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// The seed's commands and the rest of the vocabulary, one per line.
const VOCABULARY: &[&str] = &[
    "upload hello.txt",
    "size hello.txt",
    "ls",
    "connme",
    "mkdir docs",
    "cd docs",
    "pwd",
    "cd ..",
    "mv hello.txt docs/moved.txt",
    "download docs/moved.txt back.txt",
    "rm docs/moved.txt",
    "rmdir docs",
    "lpwd",
    "lls",
    "help",
    "byebye",
    "pwd",
];

fn assert_vocabulary_ran(fixture: &Fixture, outcome: &Outcome) {
    let out = &outcome.stdout;
    assert!(
        out.contains("uploaded hello.txt -> hello.txt (6 bytes"),
        "{out}"
    );
    assert!(out.contains("hello.txt: 6 bytes"), "{out}");
    assert!(
        out.lines()
            .any(|line| line.starts_with("-") && line.ends_with(" hello.txt")),
        "ls shows the file: {out}"
    );
    assert!(out.contains("connme: round trip "), "{out}");
    assert!(
        out.lines().any(|line| line == "/docs"),
        "pwd in docs: {out}"
    );
    assert!(out.contains("renamed hello.txt -> docs/moved.txt"), "{out}");
    assert!(out.contains("removed docs/moved.txt"), "{out}");
    assert!(out.contains("removed directory docs"), "{out}");
    assert!(out.contains("upload [-c] [-r] SRC [DEST]"), "help: {out}");
    let local_dir = fixture.local.path().canonicalize().expect("canonical");
    assert!(
        out.lines().any(|line| line == local_dir.to_string_lossy()),
        "lpwd: {out}"
    );
    assert!(
        out.lines().any(|line| line.ends_with("  back.txt")),
        "lls: {out}"
    );
    // byebye ends the session: the pwd after it (which would print "/") never runs.
    assert!(!out.lines().any(|line| line == "/"), "{out}");
    assert_eq!(
        fs::read(fixture.local("back.txt")).expect("downloaded"),
        b"hello\n"
    );
    assert!(common::names_on_disk(&fixture.home()).is_empty());
}

#[tokio::test]
async fn the_vocabulary_runs_as_c_arguments() {
    let fixture = Fixture::start().await;
    fs::write(fixture.local("hello.txt"), "hello\n").expect("write");
    let outcome = run_commands(fixture.client(), VOCABULARY).await.success();
    assert_vocabulary_ran(&fixture, &outcome);
}

#[tokio::test]
async fn the_vocabulary_runs_from_stdin_as_in_the_interactive_shell() {
    let fixture = Fixture::start().await;
    fs::write(fixture.local("hello.txt"), "hello\n").expect("write");
    let script = VOCABULARY.join("\n") + "\n";
    let outcome = run(&mut fixture.client(), &script).await.success();
    assert_vocabulary_ran(&fixture, &outcome);
}

#[tokio::test]
async fn the_seeds_uppercase_upload_and_download_take_absolute_paths() {
    let fixture = Fixture::start().await;
    fs::create_dir_all(fixture.home().join("to")).expect("remote dir");
    let source = fixture.local("from.bin");
    let data = common::pattern(70_000);
    fs::write(&source, &data).expect("write");
    let copy = fixture.local("copy.bin");
    let script = format!(
        "UPLOAD {} /to/file\nDOWNLOAD /to/file {}\nSIZE /to/file\nBYEBYE\n",
        source.display(),
        copy.display()
    );
    let outcome = run(&mut fixture.client(), &script).await.success();
    assert!(fs::read(fixture.home().join("to/file")).expect("uploaded") == data);
    assert!(fs::read(&copy).expect("downloaded") == data);
    assert!(
        outcome.stdout.contains("/to/file: 70000 bytes"),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn a_failing_command_stops_the_script_with_status_1_and_the_servers_reply() {
    let fixture = Fixture::start().await;
    let outcome = run_commands(fixture.client(), &["rm missing.txt", "mkdir after"]).await;
    assert_eq!(outcome.code, Some(1), "{outcome:?}");
    let error = outcome.stderr.lines().next().unwrap_or_default().to_owned();
    assert!(
        error.starts_with("ferry client: rm missing.txt: 550 "),
        "{error}"
    );
    assert!(!fixture.home().join("after").exists(), "the script went on");

    let from_stdin = run(&mut fixture.client(), "size missing.txt\nmkdir after\n").await;
    assert_eq!(from_stdin.code, Some(1), "{from_stdin:?}");
    assert!(!fixture.home().join("after").exists(), "the script went on");
}

#[tokio::test]
async fn a_dash_before_a_command_lets_the_script_continue_past_its_failure() {
    let fixture = Fixture::start().await;
    let outcome = run(&mut fixture.client(), "-rm missing.txt\nmkdir after\n").await;
    let outcome = outcome.success();
    assert!(
        outcome.stderr.contains("rm missing.txt: 550"),
        "{outcome:?}"
    );
    assert!(fixture.home().join("after").is_dir());
}

#[tokio::test]
async fn refusals_and_mistakes_give_status_1_with_one_clear_line() {
    let server = TestServer::start().await;
    let fixture = Fixture::with_server(server);
    fs::write(fixture.local("x.txt"), "x").expect("write");
    let reader = fixture.client_at(fixture.server.addr, "reader", "/");
    let denied = run_commands(reader, &["upload x.txt"]).await;
    assert_eq!(denied.code, Some(1), "{denied:?}");
    assert!(denied.stderr.contains("upload x.txt: 550 "), "{denied:?}");

    for (line, expected) in [
        ("frobnicate", "unknown command `frobnicate`"),
        ("rm", "usage: rm PATH"),
        ("rm \"unbalanced", "unbalanced quotes"),
        ("upload nowhere.txt", "nowhere.txt: No such file"),
    ] {
        let outcome = run_commands(fixture.client(), &[line]).await;
        assert_eq!(outcome.code, Some(1), "{line}: {outcome:?}");
        assert_eq!(outcome.stderr.lines().count(), 1, "{line}: {outcome:?}");
        assert!(outcome.stderr.contains(expected), "{line}: {outcome:?}");
    }
}

#[tokio::test]
async fn a_wrong_password_exits_3_and_a_bad_url_exits_2() {
    let fixture = Fixture::start().await;
    let mut command = fixture.client();
    command
        .env("FERRY_PASSWORD", "not the password")
        .arg("-c")
        .arg("pwd");
    let outcome = run(&mut command, "").await;
    assert_eq!(outcome.code, Some(3), "{outcome:?}");
    assert!(outcome.stderr.contains("530"), "{outcome:?}");

    let mut command = client_support::client_command("sftp://host/", fixture.local.path());
    let outcome = run(&mut command, "").await;
    assert_eq!(outcome.code, Some(2), "{outcome:?}");
    assert!(outcome.stderr.contains("ftp:// or ftps://"), "{outcome:?}");
}

#[tokio::test]
async fn the_password_can_come_from_stdin_or_the_url() {
    let fixture = Fixture::start().await;
    let mut command = fixture.client();
    command.env_remove("FERRY_PASSWORD").arg("--password-stdin");
    let outcome = run(&mut command, &format!("{PASSWORD}\npwd\n"))
        .await
        .success();
    assert_eq!(outcome.stdout.trim(), "/");

    let encoded = PASSWORD.replace(' ', "%20");
    let url = format!("ftp://alice:{encoded}@{}/", fixture.server.addr);
    let mut command = client_support::client_command(&url, fixture.local.path());
    command.env_remove("FERRY_PASSWORD").arg("-c").arg("pwd");
    let outcome = run(&mut command, "").await.success();
    assert_eq!(outcome.stdout.trim(), "/");
    assert!(
        outcome.stderr.contains("warning: a password in the URL"),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn json_output_describes_listings_and_sizes() {
    let fixture = Fixture::start().await;
    fs::write(fixture.home().join("a.bin"), [7u8; 1234]).expect("write");
    fs::create_dir(fixture.home().join("sub")).expect("mkdir");
    let mut command = fixture.client();
    command.arg("--json");
    let outcome = run_commands(
        command,
        &["ls", "size a.bin", "ls a.bin", "pwd", "mkdir quiet"],
    )
    .await
    .success();
    let values: Vec<Value> = outcome
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is JSON"))
        .collect();
    assert_eq!(
        values.len(),
        4,
        "confirmations stay off stdout: {outcome:?}"
    );
    let listing = values[0].as_array().expect("ls gives an array");
    let file = listing
        .iter()
        .find(|entry| entry["name"] == "a.bin")
        .expect("a.bin listed");
    assert_eq!(file["type"], "file");
    assert_eq!(file["size"], 1234);
    assert!(
        file["modified"]
            .as_str()
            .is_some_and(|time| time.ends_with('Z'))
    );
    let dir = listing
        .iter()
        .find(|entry| entry["name"] == "sub")
        .expect("sub listed");
    assert_eq!(dir["type"], "dir");
    assert_eq!(values[1], json!({"path": "a.bin", "size": 1234}));
    assert_eq!(values[2][0]["size"], 1234, "ls of one file: {}", values[2]);
    assert_eq!(values[3], json!({"path": "/"}));
    assert!(outcome.stderr.contains("created quiet"));
}

#[tokio::test]
async fn quoted_names_with_spaces_round_trip() {
    let fixture = Fixture::start().await;
    fs::write(fixture.local("my file.txt"), "spaced").expect("write");
    let commands = [
        r#"upload "my file.txt" 'remote name.txt'"#,
        r#"download "remote name.txt" back\ here.txt"#,
    ];
    run_commands(fixture.client(), &commands).await.success();
    assert_eq!(
        fs::read(fixture.home().join("remote name.txt")).expect("up"),
        b"spaced"
    );
    assert_eq!(
        fs::read(fixture.local("back here.txt")).expect("down"),
        b"spaced"
    );
}

#[tokio::test]
async fn lcd_changes_where_local_names_are_resolved() {
    let fixture = Fixture::start().await;
    fs::create_dir(fixture.local("sub")).expect("mkdir");
    fs::write(fixture.local("sub/inner.txt"), "inner").expect("write");
    let outcome = run_commands(fixture.client(), &["lcd sub", "lpwd", "upload inner.txt"])
        .await
        .success();
    assert!(
        outcome.stdout.lines().any(|line| line.ends_with("/sub")),
        "{outcome:?}"
    );
    assert_eq!(
        fs::read(fixture.home().join("inner.txt")).expect("up"),
        b"inner"
    );
}

#[tokio::test]
async fn the_url_directory_is_where_the_session_starts() {
    let fixture = Fixture::start().await;
    fs::create_dir(fixture.home().join("start here")).expect("mkdir");
    let command = fixture.client_at(fixture.server.addr, "alice", "/start%20here/");
    let outcome = run_commands(command, &["pwd"]).await.success();
    assert_eq!(outcome.stdout.trim(), "/start here");
}

#[tokio::test]
async fn active_mode_lists_and_transfers() {
    let server =
        TestServer::start_with(|config| config.active_mode = true, &common::default_users()).await;
    let fixture = Fixture::with_server(server);
    let mut command = fixture.client();
    command.arg("--active");
    assert_list_and_round_trip(&fixture, command).await;
}

/// Uploads, lists and downloads a small file with `command`.
async fn assert_list_and_round_trip(fixture: &Fixture, command: tokio::process::Command) {
    fs::write(fixture.local("a.txt"), "small").expect("write");
    let outcome = run_commands(command, &["upload a.txt", "ls", "download a.txt b.txt"])
        .await
        .success();
    assert!(outcome.stdout.contains(" a.txt"), "{outcome:?}");
    assert_eq!(fs::read(fixture.local("b.txt")).expect("down"), b"small");
}

#[tokio::test]
async fn a_refused_epsv_falls_back_to_pasv() {
    let fixture = Fixture::start().await;
    let faults = Faults {
        refuse_epsv: true,
        ..Faults::default()
    };
    let proxy = Proxy::start(fixture.server.addr, faults).await;
    let command = fixture.client_at(proxy.addr, "alice", "/");
    assert_list_and_round_trip(&fixture, command).await;
}

#[tokio::test]
async fn a_dropped_connection_is_reported_and_reconnect_resumes_in_the_same_directory() {
    let fixture = Fixture::start().await;
    fs::create_dir(fixture.home().join("work")).expect("mkdir");
    let proxy = Proxy::start(fixture.server.addr, Faults::default()).await;
    let mut command = fixture.client_at(proxy.addr, "alice", "/");
    command.stdin(std::process::Stdio::piped());
    let mut child = command.spawn().expect("start client");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    stdin.write_all(b"cd work\npwd\n").await.expect("send");
    let mut line = String::new();
    stdout.read_line(&mut line).await.expect("pwd answer");
    assert_eq!(line.trim(), "/work");

    proxy.drop_control_connections().await;
    stdin
        .write_all(b"-connme\nreconnect\npwd\n")
        .await
        .expect("send");
    drop(stdin);
    let mut rest = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut stdout, &mut rest)
        .await
        .expect("read the rest");
    let outcome = client_support::finish(child).await.success();
    assert!(
        outcome.stderr.contains("connme: connection lost"),
        "{outcome:?}"
    );
    assert!(rest.contains("connected to alice@"), "{rest}");
    assert!(rest.lines().any(|line| line == "/work"), "{rest}");
}
