//! The data path and what sessions cost: an abandoned zero-copy download stops, an idle
//! session holds no descriptor but its control socket, and downloads served from the page
//! cache or with sendfile(2) arrive whole.

mod common;

use common::{TestServer, pattern};
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// Reads until the server closes (or resets) the connection, within 20 s.
async fn read_until_closed(mut data: TcpStream) -> usize {
    let mut total = 0;
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        match tokio::time::timeout(Duration::from_secs(20), data.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return total,
            Ok(Ok(read)) => total += read,
            Err(_) => panic!("the data connection stayed open after ABOR"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abor_during_a_download_closes_the_data_connection_and_the_session_goes_on() {
    let server = TestServer::start().await;
    let home = server.home("alice");
    std::fs::create_dir_all(&home).unwrap();
    let content = pattern(64 << 20);
    std::fs::write(home.join("big.bin"), &content).unwrap();
    std::fs::write(home.join("small.txt"), b"still here").unwrap();

    let mut raw = server.raw_login("alice").await;
    let mut data = raw.epsv(server.addr).await;
    raw.expect("RETR big.bin", 150).await;
    let mut first = vec![0u8; 64 * 1024];
    data.read_exact(&mut first).await.unwrap();
    assert_eq!(first, content[..first.len()]);
    // RFC 959: 426 for the aborted transfer, then 226 for the ABOR.
    raw.expect("ABOR", 426).await;
    assert_eq!(raw.reply().await.0, 226);
    // Only what was already in flight arrives (socket buffers, a few MiB), then the end.
    let rest = read_until_closed(data).await;
    assert!(first.len() + rest < content.len(), "{rest} more bytes");

    raw.expect("NOOP", 200).await;
    let data = raw.epsv(server.addr).await;
    raw.expect("RETR small.txt", 150).await;
    assert_eq!(common::read_all(data).await, b"still here");
    assert_eq!(raw.reply().await.0, 226);
}

/// Inodes of the server-side sockets of connections to `port` (from /proc/self/net/tcp).
fn server_socket_inodes(port: u16) -> Vec<String> {
    let table = std::fs::read_to_string("/proc/self/net/tcp").unwrap();
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local_port = fields.get(1)?.rsplit(':').next()?;
            let established = fields.get(3)? == &"01";
            (u16::from_str_radix(local_port, 16).ok()? == port && established)
                .then(|| fields.get(9).map(|inode| inode.to_string()))?
        })
        .collect()
}

/// How many of this process's descriptors point at each target (`socket:[N]`, a path).
fn descriptor_targets() -> HashMap<String, usize> {
    let mut targets = HashMap::new();
    for entry in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        if let Ok(target) = std::fs::read_link(entry.path()) {
            *targets
                .entry(target.to_string_lossy().into_owned())
                .or_default() += 1;
        }
    }
    targets
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_session_holds_its_control_socket_once_and_shares_its_home_handle() {
    let server = TestServer::start().await;
    let mut sessions = Vec::new();
    for _ in 0..20 {
        sessions.push(server.raw_login("alice").await);
    }
    let inodes = server_socket_inodes(server.addr.port());
    assert_eq!(
        inodes.len(),
        20,
        "one server-side control socket per session"
    );
    let targets = descriptor_targets();
    for inode in &inodes {
        let held = targets.get(&format!("socket:[{inode}]")).copied();
        assert_eq!(
            held,
            Some(1),
            "control socket {inode} is held once, not duplicated"
        );
    }
    let home = std::fs::canonicalize(server.home("alice")).unwrap();
    let home_handles = targets.get(&home.to_string_lossy().into_owned()).copied();
    assert_eq!(
        home_handles,
        Some(1),
        "20 sessions share one handle on {home:?}"
    );
    assert!(Path::new(&home).is_dir());
}

/// Downloads of up to 64 KiB are read from the page cache on the async worker
/// (`src/storage/cached.rs`), larger ones go out with sendfile(2): both sides of the limit,
/// whole and resumed from an offset (REST), arrive byte-identical.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloads_on_both_sides_of_the_cache_path_limit_arrive_whole_and_resumed() {
    const LIMIT: usize = 64 * 1024;
    let server = TestServer::start().await;
    let home = server.home("alice");
    std::fs::create_dir_all(&home).unwrap();
    let sizes = [0, 1, 4096, LIMIT - 1, LIMIT, LIMIT + 1, 3 * LIMIT];
    for size in sizes {
        std::fs::write(home.join(format!("f{size}.bin")), pattern(size)).unwrap();
    }
    let mut raw = server.raw_login("alice").await;
    raw.expect("TYPE I", 200).await;
    for size in sizes {
        let content = pattern(size);
        for offset in [0, size / 2, size] {
            if offset > 0 {
                raw.expect(&format!("REST {offset}"), 350).await;
            }
            let data = raw.epsv(server.addr).await;
            raw.expect(&format!("RETR f{size}.bin"), 150).await;
            let received = common::read_all(data).await;
            assert_eq!(raw.reply().await.0, 226, "size {size} offset {offset}");
            assert!(
                received == content[offset..],
                "size {size} offset {offset}: received {} bytes that are not the file's last {}",
                received.len(),
                size - offset
            );
        }
    }
}
