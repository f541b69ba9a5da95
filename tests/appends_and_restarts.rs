//! APPE and REST write into the live file: an append adds to the file whatever the user may
//! list, appends to one file never overwrite each other, a broken append leaves the file as it
//! was, and a restart offset past the end of the file is refused (554) with nothing written.

mod common;

use common::{RawSession, TestServer, TestUser, read_all};
use std::path::Path;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const ORIGINAL: &[u8] = b"hello";

/// `appender` may upload, overwrite and download but not list (the account); `adder`
/// may only upload.
fn users() -> Vec<TestUser> {
    vec![
        TestUser {
            name: "alice",
            permissions: common::ALL,
            extra: "",
        },
        TestUser {
            name: "appender",
            permissions: &["upload", "overwrite", "download"],
            extra: "",
        },
        TestUser {
            name: "adder",
            permissions: &["upload"],
            extra: "",
        },
        TestUser {
            name: "reader",
            permissions: &["list", "download"],
            extra: "",
        },
    ]
}

async fn server_with_file(user: &str, name: &str, content: &[u8]) -> TestServer {
    let server = TestServer::start_with(|_| {}, &users()).await;
    std::fs::create_dir_all(server.home(user)).unwrap();
    std::fs::write(server.home(user).join(name), content).unwrap();
    server
}

/// Sends `command` and returns its final reply, skipping a 150 if the server sends one first.
async fn final_reply(raw: &mut RawSession, command: &str) -> (u32, String) {
    raw.send(command).await;
    let mut reply = raw.reply().await;
    if reply.0 == 150 {
        reply = raw.reply().await;
    }
    reply
}

/// APPEs `content` to `name` over a fresh data connection; returns the final reply code.
async fn append(raw: &mut RawSession, server: &TestServer, name: &str, content: &[u8]) -> u32 {
    let mut data = raw.epsv(server.addr).await;
    raw.expect(format!("APPE {name}"), 150).await;
    data.write_all(content).await.unwrap();
    data.shutdown().await.unwrap();
    drop(data);
    raw.reply().await.0
}

/// Polls (bounded) until `check` holds for the file's content.
async fn until_file(path: &Path, what: &str, check: impl Fn(&[u8]) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let content = std::fs::read(path).unwrap_or_default();
        if check(&content) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: the file is {} bytes",
            content.len()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn appe_by_a_user_without_list_appends_instead_of_replacing() {
    let original = common::pattern(1000);
    let server = server_with_file("appender", "log.bin", &original).await;
    let mut raw = server.raw_login("appender").await;
    assert_eq!(append(&mut raw, &server, "log.bin", b"tail").await, 226);
    let on_disk = std::fs::read(server.home("appender").join("log.bin")).unwrap();
    assert_eq!(on_disk.len(), 1004, "APPE replaced the file");
    assert!(on_disk[..1000] == original[..] && &on_disk[1000..] == b"tail");
}

/// APPE is a write (`upload`), as in vsftpd and ProFTPD; it never replaces what is there, so it
/// needs no `overwrite`. Without `upload` it is refused.
#[tokio::test]
async fn appe_needs_upload_but_not_overwrite() {
    let server = server_with_file("adder", "log.txt", ORIGINAL).await;
    let mut raw = server.raw_login("adder").await;
    assert_eq!(append(&mut raw, &server, "log.txt", b" world").await, 226);
    assert_eq!(
        std::fs::read(server.home("adder").join("log.txt")).unwrap(),
        b"hello world"
    );
    // Replacing it is still an overwrite.
    let _data = raw.epsv(server.addr).await;
    assert_eq!(final_reply(&mut raw, "STOR log.txt").await.0, 550);

    std::fs::create_dir_all(server.home("reader")).unwrap();
    std::fs::write(server.home("reader").join("log.txt"), ORIGINAL).unwrap();
    let mut reader = server.raw_login("reader").await;
    let _data = reader.epsv(server.addr).await;
    assert_eq!(final_reply(&mut reader, "APPE log.txt").await.0, 550);
    assert_eq!(
        std::fs::read(server.home("reader").join("log.txt")).unwrap(),
        ORIGINAL
    );
}

/// Two sessions append 100,000 bytes each at the same time: both land, whole, one after the
/// other (in either order).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_to_one_file_both_land_whole() {
    const BLOCK: usize = 100_000;
    let server = server_with_file("alice", "shared.log", ORIGINAL).await;
    let blocks = [
        ferry::bench::pattern(BLOCK, 1),
        ferry::bench::pattern(BLOCK, 2),
    ];
    let mut sessions = Vec::new();
    for _ in &blocks {
        let mut raw = server.raw_login("alice").await;
        let data = raw.epsv(server.addr).await;
        raw.expect("APPE shared.log", 150).await;
        sessions.push((raw, data));
    }
    // Half of each before either ends, so that both appends are under way at once.
    for ((_, data), block) in sessions.iter_mut().zip(&blocks) {
        data.write_all(&block[..BLOCK / 2]).await.unwrap();
    }
    let finishing = sessions
        .into_iter()
        .zip(blocks.clone())
        .map(|((mut raw, mut data), block)| {
            tokio::spawn(async move {
                data.write_all(&block[BLOCK / 2..]).await.unwrap();
                data.shutdown().await.unwrap();
                drop(data);
                raw.reply().await.0
            })
        })
        .collect::<Vec<_>>();
    for finished in finishing {
        assert_eq!(finished.await.unwrap(), 226);
    }
    let on_disk = std::fs::read(server.home("alice").join("shared.log")).unwrap();
    assert_eq!(
        on_disk.len(),
        ORIGINAL.len() + 2 * BLOCK,
        "an append was lost"
    );
    let expected = |first: &[u8], second: &[u8]| [ORIGINAL, first, second].concat();
    assert!(
        on_disk == expected(&blocks[0], &blocks[1]) || on_disk == expected(&blocks[1], &blocks[0]),
        "the two appends interleaved"
    );
}

/// Starts an APPE of 512 KiB to alice's `name` and waits until the file shows it (`grown`).
async fn append_under_way(
    raw: &mut RawSession,
    server: &TestServer,
    name: &str,
    grown: impl Fn(&[u8]) -> bool,
) -> TcpStream {
    let mut data = raw.epsv(server.addr).await;
    raw.expect(format!("APPE {name}"), 150).await;
    data.write_all(&common::pattern(512 * 1024)).await.unwrap();
    until_file(&server.home("alice").join(name), "append under way", grown).await;
    data
}

/// The three ways an upload breaks (tests/atomic_uploads.rs checks them for STOR): after each,
/// the file has exactly its bytes from before the APPE, although the append had reached it.
#[tokio::test]
async fn a_broken_append_leaves_the_file_as_it_was() {
    let server = server_with_file("alice", "doc.bin", ORIGINAL).await;
    let path = server.home("alice").join("doc.bin");
    let grown = |content: &[u8]| content.len() > ORIGINAL.len();
    let as_before = |content: &[u8]| content == ORIGINAL;

    // Reset midway: SO_LINGER 0 makes close() send RST, as a crashed network path would.
    let mut raw = server.raw_login("alice").await;
    let data = append_under_way(&mut raw, &server, "doc.bin", grown).await;
    data.set_zero_linger().unwrap();
    drop(data);
    let (code, text) = raw.reply().await;
    assert!(
        code == 426 || code == 451,
        "reply after a reset append: {text}"
    );
    until_file(&path, "after a reset append", as_before).await;
    raw.expect("NOOP", 200).await;

    // ABOR.
    let data = append_under_way(&mut raw, &server, "doc.bin", grown).await;
    raw.send("ABOR").await;
    let mut reply = raw.reply().await;
    if reply.0 == 426 {
        reply = raw.reply().await; // RFC 959: 426 for the transfer, then 226 for ABOR
    }
    assert_eq!(reply.0, 226, "{reply:?}");
    drop(data);
    until_file(&path, "after ABOR", as_before).await;
    raw.expect("NOOP", 200).await;

    // The client vanishes: its control connection closes, then its data connection closes
    // cleanly, which on its own would look like the end of the data.
    let mut data = append_under_way(&mut raw, &server, "doc.bin", grown).await;
    drop(raw);
    data.shutdown().await.unwrap();
    drop(data);
    until_file(&path, "after the client vanished", as_before).await;

    // And an APPE that creates its file and breaks leaves no file.
    let mut raw = server.raw_login("alice").await;
    let data = append_under_way(&mut raw, &server, "new.bin", |content| !content.is_empty()).await;
    let new = server.home("alice").join("new.bin");
    data.set_zero_linger().unwrap();
    drop(data);
    assert!(raw.reply().await.0 >= 400);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while new.exists() {
        assert!(tokio::time::Instant::now() < deadline, "new.bin is left");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `REST 1099511627776` then STOR made a 1 TiB sparse file. An offset past the end of the
/// file, or any offset on a missing file, is refused with 554 and nothing is written.
#[tokio::test]
async fn stor_after_a_rest_past_the_end_is_refused_with_554() {
    let server = server_with_file("alice", "small.bin", ORIGINAL).await;
    let home = server.home("alice");
    let mut raw = server.raw_login("alice").await;
    for (offset, name) in [
        (1_099_511_627_776u64, "small.bin"),
        (ORIGINAL.len() as u64 + 1, "small.bin"),
        (5, "missing.bin"),
    ] {
        raw.expect(format!("REST {offset}"), 350).await;
        let mut data = raw.epsv(server.addr).await;
        raw.send(format!("STOR {name}")).await;
        let mut reply = raw.reply().await;
        if reply.0 == 150 {
            // The server may accept the data connection before it looks at the file.
            let _ = data.write_all(b"x").await;
            let _ = data.shutdown().await;
            reply = raw.reply().await;
        }
        drop(data);
        assert_eq!(reply.0, 554, "REST {offset} + STOR {name}: {reply:?}");
    }
    let meta = std::fs::metadata(home.join("small.bin")).unwrap();
    assert_eq!(meta.len(), ORIGINAL.len() as u64, "the file grew");
    assert_eq!(std::fs::read(home.join("small.bin")).unwrap(), ORIGINAL);
    assert!(!home.join("missing.bin").exists());

    // At the end of the file is a valid restart: the upload continues the file.
    raw.expect(format!("REST {}", ORIGINAL.len()), 350).await;
    let mut data = raw.epsv(server.addr).await;
    raw.expect("STOR small.bin", 150).await;
    data.write_all(b" world").await.unwrap();
    data.shutdown().await.unwrap();
    drop(data);
    assert_eq!(raw.reply().await.0, 226);
    assert_eq!(
        std::fs::read(home.join("small.bin")).unwrap(),
        b"hello world"
    );
}

/// RETR after a REST past the end is 554 too (as ProFTPD answers), for files served from the
/// page cache and with sendfile alike; at exactly the end it sends nothing and succeeds.
#[tokio::test]
async fn retr_after_a_rest_past_the_end_is_refused_with_554() {
    let server = TestServer::start_with(|_| {}, &users()).await;
    let home = server.home("alice");
    std::fs::create_dir_all(&home).unwrap();
    let sizes = [10usize, 200_000];
    for size in sizes {
        std::fs::write(home.join(format!("f{size}.bin")), common::pattern(size)).unwrap();
    }
    let mut raw = server.raw_login("alice").await;
    for size in sizes {
        raw.expect(format!("REST {}", size + 1), 350).await;
        let data = raw.epsv(server.addr).await;
        let reply = final_reply(&mut raw, &format!("RETR f{size}.bin")).await;
        assert_eq!(
            reply.0,
            554,
            "RETR {size}-byte file from {}: {reply:?}",
            size + 1
        );
        drop(data);

        raw.expect(format!("REST {size}"), 350).await;
        let data = raw.epsv(server.addr).await;
        raw.expect(format!("RETR f{size}.bin"), 150).await;
        assert!(read_all(data).await.is_empty());
        assert_eq!(raw.reply().await.0, 226);
    }
}
