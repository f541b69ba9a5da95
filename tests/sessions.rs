//! Many sessions at once, session limits, graceful shutdown and users-file reload.

mod common;

use common::{TestServer, TestUser, download, pattern};
use std::io::Cursor;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_sessions_round_trip_distinct_files() {
    let server =
        TestServer::start_with(|c| c.max_sessions_per_ip = 100, &common::default_users()).await;
    let mut sessions = tokio::task::JoinSet::new();
    for i in 0..50usize {
        let addr = server.addr;
        sessions.spawn(async move {
            let mut ftp = suppaftp::tokio::AsyncFtpStream::connect(addr)
                .await
                .expect("connect");
            ftp.set_mode(suppaftp::Mode::ExtendedPassive);
            ftp.login("alice", common::PASSWORD).await.expect("login");
            ftp.transfer_type(suppaftp::types::FileType::Binary)
                .await
                .unwrap();
            let name = format!("session-{i}.bin");
            let mut content = pattern(64 * 1024 + i);
            content[0] = i as u8;
            ftp.put_file(&name, &mut Cursor::new(content.clone()))
                .await
                .expect("upload");
            let back = download(&mut ftp, &name).await;
            assert!(back == content, "session {i} got different bytes back");
            ftp.quit().await.unwrap();
            (name, content)
        });
    }
    let results = tokio::time::timeout(Duration::from_secs(120), sessions.join_all())
        .await
        .expect("50 sessions finish");
    for (name, content) in results {
        assert!(
            std::fs::read(server.home("alice").join(&name)).unwrap() == content,
            "{name} on disk"
        );
    }
}

#[tokio::test]
async fn connections_past_the_session_limit_get_421() {
    let server = TestServer::start_with(|c| c.max_sessions = 2, &common::default_users()).await;
    let mut first = server.raw_login("alice").await;
    let _second = server.raw().await;
    let mut third = server.raw().await;
    assert_eq!(third.greeting.0, 421, "{:?}", third.greeting);
    assert!(third.is_closed().await);
    // Existing sessions are unaffected, and a freed place is reused.
    first.expect("NOOP", 200).await;
    first.expect("QUIT", 221).await;
    assert!(first.is_closed().await);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let fresh = server.raw().await;
        if fresh.greeting.0 == 220 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the freed place was never reused"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn connections_past_the_per_ip_limit_get_421() {
    let server =
        TestServer::start_with(|c| c.max_sessions_per_ip = 1, &common::default_users()).await;
    let mut first = server.raw_login("alice").await;
    let second = server.raw().await;
    assert_eq!(second.greeting.0, 421);
    assert!(
        second.greeting.1.contains("your address"),
        "{:?}",
        second.greeting
    );
    first.expect("NOOP", 200).await;
}

#[tokio::test]
async fn graceful_shutdown_lets_a_running_upload_finish() {
    let mut server = TestServer::start().await;
    let content = pattern(4 * 1024 * 1024);
    let mut idle = server.raw_login("reader").await;
    let mut uploader = server.raw_login("alice").await;
    let mut data = uploader.epsv(server.addr).await;
    uploader.expect("STOR during-shutdown.bin", 150).await;
    data.write_all(&content[..1024 * 1024]).await.unwrap();

    server.begin_stop();
    // The idle session is told and closed at once.
    let (code, _) = idle.reply().await;
    assert_eq!(code, 421);
    // New connections are no longer accepted.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(server.addr).await.is_ok() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "server still accepting after shutdown"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The running upload completes and is stored whole.
    data.write_all(&content[1024 * 1024..]).await.unwrap();
    data.shutdown().await.unwrap();
    drop(data);
    assert_eq!(uploader.reply().await.0, 226);
    server.wait().await.expect("clean exit after the transfer");
    assert!(std::fs::read(server.home("alice").join("during-shutdown.bin")).unwrap() == content);
}

#[tokio::test]
async fn users_file_reload_adds_users_without_dropping_sessions() {
    let server = TestServer::start().await;
    let mut existing = server.raw_login("alice").await;
    let mut users = common::default_users();
    users.push(TestUser {
        name: "newcomer",
        permissions: common::ALL,
        extra: "",
    });
    common::write_users_file(&server.users_file, &users);

    tokio::time::timeout(Duration::from_secs(15), server.users.wait_for_generation(1))
        .await
        .expect("the users file is reloaded");
    let mut ftp = server.connect().await;
    ftp.login("newcomer", common::PASSWORD)
        .await
        .expect("the new user logs in");
    existing.expect("NOOP", 200).await;
}

#[tokio::test]
async fn broken_users_file_keeps_the_old_users() {
    let server = TestServer::start().await;
    std::fs::write(&server.users_file, "this is [not toml").unwrap();
    tokio::time::timeout(
        Duration::from_secs(15),
        server.users.wait_for_failed_reloads(1),
    )
    .await
    .expect("the broken file is noticed");
    let mut ftp = server.connect().await;
    ftp.login("alice", common::PASSWORD)
        .await
        .expect("old users stay loaded");
}

/// Connects to the passive port of an `EPSV` reply with a small receive buffer, so that the
/// server's last bytes wait in its own send queue until the client reads.
async fn connect_with_small_receive_buffer(
    server: std::net::SocketAddr,
    reply: &str,
) -> tokio::net::TcpStream {
    let port: u16 = reply
        .split("|||")
        .nth(1)
        .and_then(|rest| rest.split('|').next())
        .and_then(|port| port.parse().ok())
        .expect("EPSV reply with a port");
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket
        .connect(&std::net::SocketAddr::new(server.ip(), port).into())
        .unwrap();
    socket.set_nonblocking(true).unwrap();
    tokio::net::TcpStream::from_std(socket.into()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_waits_until_a_download_has_reached_the_client() {
    use tokio::io::AsyncReadExt;
    /// More than the server's send buffer grows to (4 MiB), so the transfer is still running
    /// when shutdown begins.
    const SIZE: usize = 16 << 20;
    /// Left unread while the client pauses: more than its receive buffer holds, so some of it
    /// is still in the server's send queue, unacknowledged.
    const LEFT: usize = 64 * 1024;
    let mut server = TestServer::start().await;
    let content = pattern(SIZE);
    std::fs::create_dir_all(server.home("alice")).unwrap();
    std::fs::write(server.home("alice").join("slow.bin"), &content).unwrap();
    let mut downloader = server.raw_login("alice").await;
    let reply = downloader.expect("EPSV", 229).await;
    let mut data = connect_with_small_receive_buffer(server.addr, &reply).await;
    downloader.expect("RETR slow.bin", 150).await;
    // Bytes flowing: the transfer has begun, so shutdown lets it finish.
    let mut received = vec![0u8; SIZE - LEFT];
    data.read_exact(&mut received[..LEFT]).await.unwrap();
    server.begin_stop();

    let client = async move {
        data.read_exact(&mut received[LEFT..]).await.unwrap();
        // The server has written its last byte by now; the client pauses before taking it.
        let paused_at = tokio::time::Instant::now();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        data.read_to_end(&mut received).await.unwrap();
        let code = downloader.reply().await.0;
        (received, code, paused_at)
    };
    let stopping = async {
        server.wait().await.expect("clean exit");
        tokio::time::Instant::now()
    };
    let ((received, code, paused_at), stopped_at) = tokio::join!(client, stopping);
    assert!(received == content, "the download arrived whole");
    assert_eq!(code, 226);
    assert!(
        stopped_at >= paused_at + Duration::from_millis(1500),
        "the server finished shutting down {:?} into the client's pause, its last bytes unread",
        stopped_at - paused_at
    );
}
