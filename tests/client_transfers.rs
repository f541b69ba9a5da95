//! `ferry client` transfers against Ferry in-process: byte-identical round trips, directory
//! trees, resuming both ways, and interrupted downloads (a cut data connection, Ctrl-C) that
//! never leave a truncated file under the destination's name.

mod client_support;
mod common;

use client_support::{Faults, Fixture, Proxy, run_commands, snapshot};
use common::pattern;
use std::fs;
use tokio::process::Command;

/// Size of the file the interruption tests download: several times the cut point.
const BIG: usize = 4 * 1024 * 1024 + 3;

/// Where the proxy cuts a download.
const CUT_AT: u64 = 1024 * 1024;

/// A server holding `big.bin` ([`BIG`] bytes of `data`), behind a proxy that cuts downloads
/// after [`CUT_AT`] bytes (and, with `stall`, then goes silent instead of closing).
async fn cutting_proxy(fixture: &Fixture, data: &[u8], stall: bool) -> (Proxy, Command) {
    fs::write(fixture.home().join("big.bin"), data).expect("write");
    let faults = Faults {
        cut_downloads_after: Some(CUT_AT),
        stall_after_cut: stall,
        ..Faults::default()
    };
    let proxy = Proxy::start(fixture.server.addr, faults).await;
    let command = fixture.client_at(proxy.addr, "alice", "/");
    (proxy, command)
}

/// Names in the client's working directory that a download might have left behind.
fn leftovers(fixture: &Fixture) -> Vec<String> {
    common::names_on_disk(fixture.local.path())
}

#[tokio::test]
async fn a_binary_file_round_trips_byte_identical() {
    let fixture = Fixture::start().await;
    let data = pattern(3 * 1024 * 1024 + 7);
    fs::write(fixture.local("data.bin"), &data).expect("write");
    fs::write(fixture.local("empty.bin"), b"").expect("write");
    let commands = [
        "upload data.bin",
        "download data.bin copy.bin",
        "upload empty.bin",
        "download empty.bin empty-copy.bin",
    ];
    run_commands(fixture.client(), &commands).await.success();
    assert!(fs::read(fixture.home().join("data.bin")).expect("on server") == data);
    assert!(fs::read(fixture.local("copy.bin")).expect("downloaded") == data);
    assert_eq!(
        fs::read(fixture.local("empty-copy.bin")).expect("empty"),
        b""
    );
}

#[tokio::test]
async fn recursive_upload_and_download_copy_a_whole_tree() {
    let fixture = Fixture::start().await;
    let tree = fixture.local("tree");
    fs::create_dir_all(tree.join("sub/deeper")).expect("mkdir");
    fs::create_dir_all(tree.join("empty")).expect("mkdir");
    fs::write(tree.join("top.bin"), pattern(200_000)).expect("write");
    fs::write(tree.join("sub/a file.txt"), "spaced").expect("write");
    fs::write(tree.join("sub/deeper/c.txt"), "deep").expect("write");

    let outcome = run_commands(
        fixture.client(),
        &["upload -r tree", "download -r tree copy"],
    )
    .await
    .success();
    assert!(outcome.stdout.contains("uploaded 3 files"), "{outcome:?}");
    assert!(outcome.stdout.contains("downloaded 3 files"), "{outcome:?}");
    assert_eq!(snapshot(&fixture.home().join("tree")), snapshot(&tree));
    assert_eq!(snapshot(&fixture.local("copy")), snapshot(&tree));
}

#[tokio::test]
async fn a_download_into_an_existing_directory_keeps_its_name() {
    let fixture = Fixture::start().await;
    fs::write(fixture.home().join("report.txt"), "r").expect("write");
    fs::create_dir(fixture.local("inbox")).expect("mkdir");
    run_commands(fixture.client(), &["download report.txt inbox"])
        .await
        .success();
    assert_eq!(
        fs::read(fixture.local("inbox/report.txt")).expect("down"),
        b"r"
    );
}

#[tokio::test]
async fn an_interrupted_download_leaves_nothing_under_the_destination_name() {
    let fixture = Fixture::start().await;
    let (_proxy, command) = cutting_proxy(&fixture, &pattern(BIG), false).await;
    let outcome = run_commands(command, &["download big.bin"]).await;
    assert_eq!(outcome.code, Some(1), "{outcome:?}");
    assert!(
        outcome.stderr.contains("426") || outcome.stderr.contains("incomplete"),
        "the error says the transfer broke: {outcome:?}"
    );
    assert!(leftovers(&fixture).is_empty(), "{:?}", leftovers(&fixture));
}

#[tokio::test]
async fn download_continue_resumes_an_interrupted_download_from_where_it_stopped() {
    let fixture = Fixture::start().await;
    let data = pattern(BIG);
    let (_proxy, command) = cutting_proxy(&fixture, &data, false).await;
    let outcome = run_commands(command, &["download --continue big.bin"]).await;
    assert_eq!(outcome.code, Some(1), "{outcome:?}");
    let partial = fs::read(fixture.local("big.bin")).expect("--continue keeps the partial file");
    assert!(
        partial == data[..CUT_AT as usize],
        "the partial file is the first bytes"
    );

    // Blank the partial file: if the resumed download started from 0 the blanks would go.
    fs::write(fixture.local("big.bin"), vec![0u8; partial.len()]).expect("blank");
    let outcome = run_commands(fixture.client(), &["download -c big.bin"])
        .await
        .success();
    assert!(
        outcome
            .stdout
            .contains(&format!("resumed at byte {CUT_AT}")),
        "{outcome:?}"
    );
    let resumed = fs::read(fixture.local("big.bin")).expect("resumed file");
    assert_eq!(resumed.len(), BIG);
    assert!(resumed[..CUT_AT as usize].iter().all(|&byte| byte == 0));
    assert!(resumed[CUT_AT as usize..] == data[CUT_AT as usize..]);

    let again = run_commands(fixture.client(), &["download -c big.bin"])
        .await
        .success();
    assert!(again.stdout.contains("already complete"), "{again:?}");
}

#[tokio::test]
async fn ctrl_c_cancels_a_download_and_removes_its_partial_file() {
    let fixture = Fixture::start().await;
    let (proxy, mut command) = cutting_proxy(&fixture, &pattern(BIG), true).await;
    command.arg("-c").arg("download big.bin");
    let child = command.spawn().expect("start client");
    // The client is now mid-transfer, waiting for bytes that will not come.
    proxy.cut.notified().await;
    let pid = child.id().expect("client pid");
    // SAFETY: sends SIGINT to the child this test started and has not yet reaped.
    let sent = unsafe { libc::kill(pid as libc::pid_t, libc::SIGINT) };
    assert_eq!(sent, 0, "SIGINT delivered");
    let outcome = client_support::finish(child).await;
    assert_eq!(outcome.code, Some(130), "{outcome:?}");
    assert!(outcome.stderr.contains("interrupted"), "{outcome:?}");
    assert!(leftovers(&fixture).is_empty(), "{:?}", leftovers(&fixture));
}

#[tokio::test]
async fn upload_continue_sends_only_what_the_server_is_missing() {
    let fixture = Fixture::start().await;
    let data = pattern(BIG);
    fs::write(fixture.local("big.bin"), &data).expect("write");
    // What an interrupted upload left on the server, blanked as above.
    fs::write(fixture.home().join("big.bin"), vec![0u8; CUT_AT as usize]).expect("write");
    let outcome = run_commands(fixture.client(), &["upload --continue big.bin"])
        .await
        .success();
    assert!(
        outcome
            .stdout
            .contains(&format!("resumed at byte {CUT_AT}")),
        "{outcome:?}"
    );
    let on_server = fs::read(fixture.home().join("big.bin")).expect("on server");
    assert_eq!(on_server.len(), BIG);
    assert!(on_server[..CUT_AT as usize].iter().all(|&byte| byte == 0));
    assert!(on_server[CUT_AT as usize..] == data[CUT_AT as usize..]);
}
