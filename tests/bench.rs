//! ferry-bench against an in-process Ferry on tiny sizes: every scenario runs, every byte is
//! counted, and a run with a wrong byte count or an error is reported invalid. Performance
//! itself is never asserted here; `bench/compare.sh` measures it.

mod common;

use clap::Parser;
use common::{ALL, PASSWORD, TestServer, TestUser};
use ferry::bench::{BenchArgs, Report};

const KIB: usize = 1024;

/// Runs `ferry-bench --url <alice on server> <scenario...>` and returns its report.
async fn bench(server: &TestServer, scenario: &[&str]) -> Report {
    bench_as(server, "alice", scenario).await
}

/// Runs `ferry-bench --url <user on server> <scenario...>`; with `--accounts`, `user` is the
/// prefix of the account names.
async fn bench_as(server: &TestServer, user: &str, scenario: &[&str]) -> Report {
    let url = format!(
        "ftp://{user}:{}@{}/",
        PASSWORD.replace(' ', "%20"),
        server.addr
    );
    let pid = std::process::id().to_string();
    let mut argv = vec![
        "ferry-bench",
        "--url",
        &url,
        "--server-pid",
        &pid,
        "--io-timeout",
        "20",
        "--time-limit",
        "60",
    ];
    argv.extend_from_slice(scenario);
    let args = BenchArgs::try_parse_from(argv).expect("arguments parse");
    ferry::bench::run(&args).await
}

fn assert_valid(report: &Report) {
    assert!(report.valid, "{report:?}");
    assert_eq!(report.errors, 0, "{report:?}");
    assert_eq!(report.bytes, report.expected_bytes, "{report:?}");
    assert!(
        // Idle sessions on this scale may fit in memory the server already has: 0 KiB is valid.
        report.figure.is_some_and(|figure| figure >= 0.0),
        "{report:?}"
    );
}

/// Alice's home with the files the scenarios read: `big.bin`, `medium.bin`, `list/`.
async fn server_with_bench_files() -> TestServer {
    let server = TestServer::start().await;
    let home = server.home("alice");
    for dir in ["up", "small", "list"] {
        std::fs::create_dir_all(home.join(dir)).expect("create dir");
    }
    std::fs::write(home.join("big.bin"), common::pattern(300 * KIB)).expect("big");
    std::fs::write(home.join("medium.bin"), common::pattern(40 * KIB)).expect("medium");
    for i in 0..25 {
        std::fs::write(home.join(format!("list/f{i}")), b"").expect("list entry");
    }
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_runs_on_tiny_sizes_and_counts_every_byte() {
    let server = server_with_bench_files().await;

    let retr = bench(&server, &["retr", "--size", "300KiB"]).await;
    assert_valid(&retr);
    assert_eq!(retr.bytes, 300 * KIB as u64);
    assert!(retr.server_cpu_s_per_gib.is_some(), "{retr:?}");

    let stor = bench(&server, &["stor", "--size", "500KiB"]).await;
    assert_valid(&stor);
    let stored = std::fs::metadata(server.home("alice").join("up/big.bin")).expect("stored");
    assert_eq!(stored.len(), 500 * KIB as u64);

    let retr_many = bench(
        &server,
        &["retr-many", "--sessions", "6", "--size", "40KiB"],
    )
    .await;
    assert_valid(&retr_many);
    assert_eq!(retr_many.operations, 6);
    assert_eq!(retr_many.bytes, 6 * 40 * KIB as u64);

    let stor_many = bench(
        &server,
        &["stor-many", "--sessions", "6", "--size", "33KiB"],
    )
    .await;
    assert_valid(&stor_many);
    assert_eq!(stor_many.bytes, 6 * 33 * KIB as u64);

    let small = bench(&server, &["small-files", "--files", "7", "--size", "4KiB"]).await;
    assert_valid(&small);
    assert_eq!(small.operations, 14, "7 uploads and 7 downloads");
    let phases: Vec<&str> = small.phases.iter().map(|phase| phase.name).collect();
    assert_eq!(
        phases,
        ["stor", "retr"],
        "uploads and downloads timed apart"
    );
    assert!(small.phases.iter().all(|phase| phase.files_per_s > 0.0));

    let list = bench(&server, &["list", "--entries", "25", "--repeat", "3"]).await;
    assert_valid(&list);
    assert_eq!(list.operations, 3);

    let login = bench(&server, &["login", "--workers", "3", "--count", "8"]).await;
    assert_valid(&login);
    assert_eq!(login.operations, 8);

    let idle = bench(&server, &["idle", "--sessions", "5"]).await;
    assert_valid(&idle);
    assert_eq!(idle.operations, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_byte_count_makes_the_run_invalid() {
    let server = server_with_bench_files().await;
    let report = bench(&server, &["retr", "--size", "301KiB"]).await;
    assert!(!report.valid);
    assert_eq!(report.figure, None);
    assert_eq!(report.bytes, 300 * KIB as u64);

    let listing = bench(&server, &["list", "--entries", "26", "--repeat", "1"]).await;
    assert!(!listing.valid);
    assert!(
        listing
            .first_error
            .is_some_and(|error| error.contains("26"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_error_makes_the_run_invalid() {
    let server = server_with_bench_files().await;
    let report = bench(&server, &["retr", "--path", "missing.bin", "--size", "1"]).await;
    assert!(!report.valid);
    assert_eq!(report.figure, None);
    let error = report.first_error.expect("an error");
    assert!(error.contains("550"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_loopback_ceiling_moves_every_byte() {
    let args = BenchArgs::try_parse_from(["ferry-bench", "raw", "--size", "3MiB"]).expect("args");
    let report = ferry::bench::run(&args).await;
    assert_valid(&report);
    assert_eq!(report.bytes, 3 << 20);
}

#[test]
fn the_report_is_one_json_line() {
    let args = BenchArgs::try_parse_from(["ferry-bench", "raw", "--size", "64KiB"]).expect("args");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let report = runtime.block_on(ferry::bench::run(&args));
    let line = serde_json::to_string(&report).expect("json");
    assert!(!line.contains('\n'));
    let value: serde_json::Value = serde_json::from_str(&line).expect("parses");
    assert_eq!(value["scenario"], "raw");
    assert_eq!(value["valid"], true);
    assert_eq!(value["unit"], "MB/s");
}

/// `ferry-bench reap -- ...` as a child process.
fn reaper(command: &[&str]) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_ferry-bench"))
        .arg("reap")
        .arg("--")
        .args(command)
        .spawn()
        .expect("ferry-bench reap starts")
}

/// Waits up to 10 s for `child` to exit.
fn exit_code(mut child: std::process::Child) -> Option<i32> {
    for _ in 0..200 {
        if let Some(status) = child.try_wait().expect("wait") {
            return status.code();
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = child.kill();
    panic!("ferry-bench reap did not exit");
}

#[test]
fn reap_passes_the_server_exit_status_on_and_forwards_sigterm() {
    assert_eq!(exit_code(reaper(&["sh", "-c", "exit 3"])), Some(3));
    let child = reaper(&["sleep", "30"]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    // SAFETY: signalling a child process this test started and has not reaped.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(
        exit_code(child),
        Some(1),
        "the server was stopped by the signal"
    );
}

#[test]
fn reap_adopts_what_the_server_orphans() {
    // The subshell starts `sleep` and exits at once: `sleep` is orphaned while sh runs on.
    let child = reaper(&["sh", "-c", "(sleep 5 &); sleep 3"]);
    let reaper_pid = child.id().to_string();
    let adopted = (0..40).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(50));
        std::fs::read_dir("/proc").unwrap().flatten().any(|entry| {
            let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            let fields: Vec<&str> = stat.split_whitespace().collect();
            fields.get(1) == Some(&"(sleep)") && fields.get(3) == Some(&reaper_pid.as_str())
        })
    });
    // SAFETY: as above.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let _ = exit_code(child);
    assert!(adopted, "the orphaned sleep was not adopted by the reaper");
}

/// Ten accounts `cold0` .. `cold9` for the scenarios that spread logins over accounts.
const COLD_ACCOUNTS: [&str; 10] = [
    "cold0", "cold1", "cold2", "cold3", "cold4", "cold5", "cold6", "cold7", "cold8", "cold9",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_logins_log_in_as_each_account_once_and_count_every_login() {
    let users: Vec<TestUser> = COLD_ACCOUNTS
        .iter()
        .map(|name| TestUser {
            name,
            permissions: ALL,
            extra: "",
        })
        .collect();
    let server = TestServer::start_with(|_| {}, &users).await;
    for name in COLD_ACCOUNTS {
        std::fs::create_dir_all(server.home(name).join("up")).expect("home");
        std::fs::write(
            server.home(name).join("medium.bin"),
            common::pattern(8 * KIB),
        )
        .expect("medium");
    }

    let cold = bench_as(
        &server,
        "cold",
        &["logins-cold", "--accounts", "10", "--workers", "3"],
    )
    .await;
    assert_valid(&cold);
    assert_eq!(cold.scenario, "logins-cold");
    assert_eq!(cold.unit, "logins/s");
    assert_eq!(cold.operations, 10, "each account logged in once");
    assert!(cold.server_cpu_ms_per_login.is_some(), "{cold:?}");

    // Sessions spread over three accounts: each uploads into its own account's home.
    let stor_many = bench_as(
        &server,
        "cold",
        &[
            "stor-many",
            "--sessions",
            "6",
            "--accounts",
            "3",
            "--size",
            "8KiB",
        ],
    )
    .await;
    assert_valid(&stor_many);
    for (index, name) in COLD_ACCOUNTS.iter().enumerate() {
        let uploads = std::fs::read_dir(server.home(name).join("up"))
            .expect("up")
            .count();
        let expected = if index < 3 { 2 } else { 0 };
        assert_eq!(uploads, expected, "uploads in {name}'s home");
    }

    let retr_many = bench_as(
        &server,
        "cold",
        &[
            "retr-many",
            "--sessions",
            "6",
            "--accounts",
            "3",
            "--path",
            "medium.bin",
            "--size",
            "8KiB",
        ],
    )
    .await;
    assert_valid(&retr_many);
    assert_eq!(retr_many.operations, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_login_to_a_missing_account_makes_the_run_invalid() {
    let server = server_with_bench_files().await;
    // alice0 .. alice2 do not exist.
    let report = bench(
        &server,
        &["logins-cold", "--accounts", "3", "--workers", "2"],
    )
    .await;
    assert!(!report.valid);
    assert_eq!(report.figure, None);
    assert_eq!(report.errors, 3);
}
