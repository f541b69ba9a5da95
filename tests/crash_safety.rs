//! kill -9 in the middle of concurrent uploads: every file is whole (old or new version), and
//! the temporaries the crash left behind are invisible, then removed by the next start. (An
//! upload to a new name writes an unnamed file, which the crash takes with it.)

mod common;
mod support;

use common::{PASSWORD, RawSession, names_on_disk, pattern};
use std::path::Path;
use std::sync::LazyLock;
use std::time::Duration;
use support::process::{FerryProcess, prepared_dir};
use support::transfers::retrieve;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const UPLOADS: usize = 20;
/// Every fourth upload replaces nothing: a new name, which must be absent or whole afterwards.
const NEW_NAME_EVERY: usize = 4;
const OLD_LEN: usize = 1024 * 1024;
const NEW_LEN: usize = 3 * 1024 * 1024;

/// Where each upload is when the server is killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// All data sent and 226 received before the kill: must be the new version.
    Confirmed,
    /// All data sent and the data connection closed, reply not awaited: the kill races the
    /// rename, so either version is correct.
    Racing,
    /// Half the data sent: must still be the old version (or absent).
    Midway,
}

fn stage(upload: usize) -> Stage {
    match upload % 3 {
        0 => Stage::Confirmed,
        1 => Stage::Racing,
        _ => Stage::Midway,
    }
}

fn name(upload: usize) -> String {
    format!("file-{upload:02}.bin")
}

/// The content versions before each upload marks them as its own (generated once: the
/// pattern costs about 50 ns a byte in a debug build).
static OLD_BASE: LazyLock<Vec<u8>> = LazyLock::new(|| pattern(OLD_LEN));
static NEW_BASE: LazyLock<Vec<u8>> = LazyLock::new(|| pattern(NEW_LEN));

/// Distinct content per upload and version, so that a mix-up shows.
fn content(upload: usize, new: bool) -> Vec<u8> {
    let mut bytes = if new {
        NEW_BASE.clone()
    } else {
        OLD_BASE.clone()
    };
    bytes[0] = upload as u8;
    bytes[1] = u8::from(new);
    bytes
}

fn has_old_version(upload: usize) -> bool {
    !upload.is_multiple_of(NEW_NAME_EVERY)
}

/// Logs in, starts STOR, sends half the new content; returns the control and data connections.
async fn start_upload(server: std::net::SocketAddr, upload: usize) -> (RawSession, TcpStream) {
    let mut raw = RawSession::connect(server).await;
    raw.expect("USER alice", 331).await;
    raw.expect(format!("PASS {PASSWORD}"), 230).await;
    raw.expect("TYPE I", 200).await;
    let mut data = raw.epsv(server).await;
    raw.expect(format!("STOR {}", name(upload)), 150).await;
    let new = content(upload, true);
    data.write_all(&new[..NEW_LEN / 2])
        .await
        .expect("send half");
    (raw, data)
}

/// Upload temporaries in `dir` (they are created beside their target).
fn temporaries_in(dir: &Path) -> Vec<String> {
    names_on_disk(dir)
        .into_iter()
        .filter(|name| name.starts_with(ferry::storage::paths::UPLOAD_TEMP_PREFIX))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_20_uploads_leaves_every_file_whole_and_the_restart_cleans_up() {
    let dir = prepared_dir();
    let home = dir.path().join("root/alice");
    std::fs::create_dir_all(&home).unwrap();
    for upload in (0..UPLOADS).filter(|u| has_old_version(*u)) {
        std::fs::write(home.join(name(upload)), content(upload, false)).unwrap();
    }
    let mut ferry = FerryProcess::start(dir.path(), &[]).await;

    let mut sessions = tokio::task::JoinSet::new();
    for upload in 0..UPLOADS {
        let server = ferry.addr;
        sessions.spawn(async move {
            let (raw, data) = start_upload(server, upload).await;
            (upload, raw, data)
        });
    }
    let mut in_flight = Vec::new();
    for (upload, mut raw, mut data) in sessions.join_all().await {
        match stage(upload) {
            Stage::Confirmed | Stage::Racing => {
                let new = content(upload, true);
                data.write_all(&new[NEW_LEN / 2..])
                    .await
                    .expect("send rest");
                data.shutdown().await.expect("close data connection");
                drop(data);
                if stage(upload) == Stage::Confirmed {
                    assert_eq!(raw.reply().await.0, 226, "upload {upload}");
                }
                in_flight.push((raw, None));
            }
            Stage::Midway => in_flight.push((raw, Some(data))),
        }
    }
    ferry.kill9();
    drop(in_flight);

    let left_behind = temporaries_in(&home);
    // Uploads that replace a file write a named temporary; to a new name, an unnamed file.
    let midway_replacing = (0..UPLOADS)
        .filter(|u| stage(*u) == Stage::Midway && has_old_version(*u))
        .count();
    assert!(
        left_behind.len() >= midway_replacing,
        "the crash should strand the midway replacing uploads' temporaries, found {left_behind:?}"
    );
    for upload in 0..UPLOADS {
        let on_disk = std::fs::read(home.join(name(upload))).ok();
        let old = has_old_version(upload).then(|| content(upload, false));
        let new = Some(content(upload, true));
        let allowed = match stage(upload) {
            Stage::Confirmed => vec![new],
            Stage::Racing => vec![old, new],
            Stage::Midway => vec![old],
        };
        assert!(
            allowed.contains(&on_disk),
            "upload {upload} ({:?}): {} bytes on disk",
            stage(upload),
            on_disk.map_or(0, |bytes| bytes.len())
        );
    }

    let mut restarted = FerryProcess::start(dir.path(), &[]).await;
    let cleanup = restarted
        .wait_for_log(Duration::from_secs(10), |line| {
            line.contains("removed upload temporaries left by an earlier run")
        })
        .await;
    assert!(
        cleanup.contains(&format!("\"count\":{}", left_behind.len())),
        "{cleanup}"
    );
    assert_eq!(temporaries_in(&home), Vec::<String>::new());
    let mut raw = RawSession::connect(restarted.addr).await;
    raw.expect("USER alice", 331).await;
    raw.expect(format!("PASS {PASSWORD}"), 230).await;
    raw.expect("TYPE I", 200).await;
    let (listing, code) = retrieve_listing(&mut raw, restarted.addr).await;
    assert_eq!(code, 226);
    let mut expected: Vec<String> = names_on_disk(&home);
    expected.sort();
    assert_eq!(
        listing, expected,
        "the listing shows exactly the files on disk"
    );
    for upload in (0..UPLOADS).step_by(5) {
        if let Ok(on_disk) = std::fs::read(home.join(name(upload))) {
            let (served, code) = retrieve(&mut raw, restarted.addr, &name(upload)).await;
            assert_eq!(code, 226);
            assert!(served == on_disk, "upload {upload} served differently");
        }
    }
}

/// NLST of the home, sorted.
async fn retrieve_listing(
    raw: &mut RawSession,
    server: std::net::SocketAddr,
) -> (Vec<String>, u32) {
    let data = raw.epsv(server).await;
    raw.expect("NLST", 150).await;
    let text = String::from_utf8(common::read_all(data).await).expect("UTF-8 listing");
    let mut names: Vec<String> = text.lines().map(str::to_owned).collect();
    names.sort();
    (names, raw.reply().await.0)
}
