//! Several Ferry instances behind one address: a real HAProxy (send-proxy-v2, health checks on
//! `/ready`) in front of two `ferry serve` processes that share their files (an S3 bucket on
//! moto's server) and their accounts and bans (PostgreSQL), as `docker/compose.scale.yaml`
//! runs them. The balancer
//! is 127.0.0.1, the instances 127.0.0.11 and 127.0.0.12, the clients 127.0.0.2 and up.

mod common;
#[path = "common/postgres.rs"]
mod postgres;
#[path = "common/s3.rs"]
mod s3;
mod support;

use common::{PASSWORD, connect_from};
use std::io::Cursor;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};
use suppaftp::tokio::{AsyncFtpStream, AsyncNoTlsStream, ImplAsyncFtpStream};
use support::haproxy::{Backend, Haproxy, free_port, free_ports};
use support::process::FerryProcess;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BALANCER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
const INSTANCES: [IpAddr; 2] = [
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 11)),
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 12)),
];
const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
const MIB: usize = 1024 * 1024;

/// One instance: its process and what it was started with, to start it again.
struct Instance {
    process: FerryProcess,
    args: Vec<String>,
}

/// The whole deployment of one test: bucket, accounts, two instances, the balancer.
struct Deployment {
    dir: tempfile::TempDir,
    s3: aws_sdk_s3::Client,
    bucket: String,
    instances: Vec<Instance>,
    haproxy: Haproxy,
    /// The accounts every instance shares.
    accounts: postgres::TestDatabase,
    /// One deployment at a time: each takes a handful of fixed ports (found free, then bound
    /// by other processes), and two at once would pick the same ones.
    _alone: tokio::sync::MutexGuard<'static, ()>,
}

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

impl Deployment {
    async fn start() -> Deployment {
        let alone = ONE_AT_A_TIME.lock().await;
        let dir = tempfile::tempdir().expect("temp dir");
        let endpoint = s3::moto();
        let client = s3::client(endpoint);
        let bucket = s3::new_bucket(&client).await;
        let credentials = s3::credentials_file(dir.path());
        let accounts = postgres::TestDatabase::with_schema().await;
        accounts.add_user("alice", common::ALL, "").await;
        let password_file = dir.path().join("pg-password");
        std::fs::write(&password_file, accounts.password()).expect("password file");
        let mut instances = Vec::new();
        let mut backends = Vec::new();
        for (index, ip) in INSTANCES.into_iter().enumerate() {
            let passive = free_ports(&[BALANCER, ip], 20, 25000 + 200 * index as u16);
            let admin = SocketAddr::new(ip, free_port(&[ip]));
            let args: Vec<String> = [
                "--bind",
                &format!("{ip}:0"),
                "--root",
                &format!("s3://{bucket}/site"),
                "--s3-endpoint",
                endpoint,
                "--s3-part-size",
                "5",
                "--s3-credentials-file",
                &credentials.to_string_lossy(),
                "--users",
                &accounts.url(),
                "--users-password-file",
                &password_file.to_string_lossy(),
                "--failed-login-max-attempts",
                "3",
                "--max-sessions-per-ip",
                "60",
                "--passive-ports",
                &format!("{}-{}", passive.start(), passive.end()),
                "--passive-host",
                &BALANCER.to_string(),
                "--proxy-from",
                &format!("{BALANCER}/32"),
                "--admin-bind",
                &admin.to_string(),
                "--instance-id",
                &format!("ferry-{index}"),
            ]
            .iter()
            .map(|arg| arg.to_string())
            .collect();
            let process = FerryProcess::start_with(dir.path(), &args).await;
            backends.push(Backend {
                control: process.addr,
                passive,
                admin: Some(admin),
            });
            instances.push(Instance { process, args });
        }
        let haproxy = Haproxy::start(BALANCER, &backends).await;
        Deployment {
            dir,
            s3: client,
            bucket,
            instances,
            haproxy,
            accounts,
            _alone: alone,
        }
    }

    /// A session through the balancer from `client`, data connections too.
    async fn connect(&self, client: IpAddr) -> AsyncFtpStream {
        let stream = connect_from(self.haproxy.control, client).await;
        let mut ftp = ImplAsyncFtpStream::<AsyncNoTlsStream>::connect_with_stream(stream)
            .await
            .unwrap_or_else(|error| {
                panic!(
                    "greeting through haproxy: {error}: {}",
                    self.haproxy.log_text()
                )
            })
            .passive_stream_builder(move |data_port| {
                Box::pin(async move { Ok(connect_from(data_port, client).await) })
            });
        ftp.set_mode(suppaftp::Mode::ExtendedPassive);
        ftp
    }

    async fn login(&self, client: IpAddr, user: &str) -> AsyncFtpStream {
        let mut ftp = self.connect(client).await;
        ftp.login(user, PASSWORD)
            .await
            .expect("login through the balancer");
        ftp.transfer_type(suppaftp::types::FileType::Binary)
            .await
            .expect("TYPE I");
        ftp
    }

    /// How many uploads instance `index` has logged.
    fn uploads_on(&self, index: usize) -> usize {
        self.instances[index]
            .process
            .log_lines()
            .iter()
            .filter(|line| line.contains("\"op\":\"upload\"") && line.contains("\"result\":\"ok\""))
            .count()
    }
}

/// One session through the balancer: uploads a file of its own, downloads it, checks it.
async fn round_trip(deployment: &Deployment, index: usize) -> (String, Vec<u8>) {
    let mut ftp = deployment.login(CLIENT, "alice").await;
    let name = format!("file-{index:02}.bin");
    let content = ferry::bench::pattern(64 * 1024 + index, index as u32);
    ftp.put_file(&name, &mut Cursor::new(content.clone()))
        .await
        .expect("upload through the balancer");
    let back = common::download(&mut ftp, &name).await;
    assert!(back == content, "{name} came back different");
    ftp.quit().await.expect("QUIT");
    (name, content)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_sessions_round_trip_through_the_balancer_and_both_instances_serve() {
    let deployment = Deployment::start().await;
    let deployment = &deployment;
    // Ten at a time: bounded, and well within each instance's per-IP limit.
    let mut uploaded = Vec::new();
    for chunk in 0..5 {
        let results = futures_util::future::join_all((0..10).map(|offset| {
            let index = chunk * 10 + offset;
            round_trip(deployment, index)
        }))
        .await;
        uploaded.extend(results);
    }
    for (name, content) in &uploaded {
        let key = format!("site/alice/{name}");
        assert_eq!(
            s3::object(&deployment.s3, &deployment.bucket, &key)
                .await
                .as_ref(),
            Some(content),
            "{key}"
        );
    }
    let (first, second) = (deployment.uploads_on(0), deployment.uploads_on(1));
    assert_eq!(first + second, 50);
    assert!(
        first > 0 && second > 0,
        "both instances served: {first} and {second}"
    );
}

/// What an upload through the balancer came to when one instance was killed under it.
#[derive(Debug, PartialEq)]
enum UploadEnd {
    /// 226: the new version is in place.
    Committed,
    /// Anything else: the session's instance died.
    Lost,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_an_instance_mid_upload_leaves_whole_objects_and_the_other_instance_serves_on() {
    let mut deployment = Deployment::start().await;
    let key = |index: usize| format!("site/alice/doc-{index}.bin");
    let old = |index: usize| ferry::bench::pattern(1000 + index, 7);
    let new = |index: usize| ferry::bench::pattern(12 * MIB + index, index as u32);
    for index in 0..10 {
        s3::put(&deployment.s3, &deployment.bucket, &key(index), old(index)).await;
    }
    // Ten uploads at once (round robin: five on each instance). Each sends half, waits until
    // the instance is killed, then sends the rest: every one is a multipart upload in flight.
    let half_sent = std::sync::Arc::new(tokio::sync::Barrier::new(11));
    let (killed, _) = tokio::sync::broadcast::channel::<()>(1);
    let mut uploads = Vec::new();
    for index in 0..10 {
        let (control, half_sent, mut killed) = (
            deployment.haproxy.control,
            half_sent.clone(),
            killed.subscribe(),
        );
        let content = new(index);
        uploads.push(tokio::spawn(async move {
            let mut raw = common::RawSession::connect_from(control, CLIENT).await;
            raw.expect("USER alice", 331).await;
            raw.expect(format!("PASS {PASSWORD}"), 230).await;
            raw.expect("TYPE I", 200).await;
            let mut data = raw.epsv(control).await;
            raw.expect(format!("STOR doc-{index}.bin"), 150).await;
            let half = content.len() / 2;
            let sent = data.write_all(&content[..half]).await;
            half_sent.wait().await;
            sent.expect("first half sent");
            let _ = killed.recv().await;
            data.write_all(&content[half..]).await.expect("second half");
            data.shutdown().await.expect("end of upload");
            drop(data);
            match raw.reply_within(Duration::from_secs(60)).await {
                Some(226) => UploadEnd::Committed,
                _ => UploadEnd::Lost,
            }
        }));
    }
    half_sent.wait().await;
    // Every upload has a part on S3 before the kill.
    let deadline = Instant::now() + Duration::from_secs(30);
    while s3::open_uploads(&deployment.s3, &deployment.bucket)
        .await
        .len()
        < 10
    {
        assert!(Instant::now() < deadline, "ten multipart uploads under way");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    deployment.instances[0].process.kill9();
    let killed_at = Instant::now();
    let _ = killed.send(());
    let mut ends = Vec::new();
    for upload in uploads {
        ends.push(upload.await.unwrap_or(UploadEnd::Lost));
    }
    let committed = ends
        .iter()
        .filter(|end| **end == UploadEnd::Committed)
        .count();
    assert!(
        (1..10).contains(&committed),
        "the surviving instance's sessions finish, the killed one's do not: {ends:?}"
    );
    for (index, end) in ends.iter().enumerate() {
        let object = s3::object(&deployment.s3, &deployment.bucket, &key(index))
            .await
            .expect("the object is still there");
        match end {
            UploadEnd::Committed => assert!(object == new(index), "doc-{index}: the new version"),
            UploadEnd::Lost => assert!(object == old(index), "doc-{index}: the old version, whole"),
        }
    }
    // New sessions go to the surviving instance as soon as the balancer's check notices.
    loop {
        let attempt = tokio::time::timeout(Duration::from_secs(2), async {
            let stream = connect_from(deployment.haproxy.control, CLIENT).await;
            let mut raw = common::RawSession::over(stream).await;
            raw.send("USER alice").await;
            raw.reply().await.0 == 331
        })
        .await;
        if let Ok(true) = attempt {
            break;
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(10),
            "no new session within the health-check interval"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for _ in 0..4 {
        let mut ftp = deployment.login(CLIENT, "alice").await;
        ftp.noop().await.expect("NOOP on the surviving instance");
    }
    // The killed instance left its multipart uploads; started again, it aborts them.
    let left = s3::open_uploads(&deployment.s3, &deployment.bucket).await;
    assert_eq!(
        left.len(),
        10 - committed,
        "the killed instance's uploads: {left:?}"
    );
    let args = deployment.instances[0].args.clone();
    deployment.instances[0].process = FerryProcess::start_with(deployment.dir.path(), &args).await;
    assert!(
        s3::open_uploads(&deployment.s3, &deployment.bucket)
            .await
            .is_empty(),
        "swept when the instance started again"
    );
}

#[tokio::test]
async fn an_instance_refuses_connections_from_the_balancer_without_a_proxy_header() {
    let deployment = Deployment::start().await;
    // Straight to an instance from the balancer's address (trusted), but no header.
    let mut stream = connect_from(deployment.instances[0].process.addr, BALANCER).await;
    let mut first = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(15), stream.read(&mut first))
        .await
        .expect("the instance decides within its header timeout");
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "closed without a greeting, got {:?}",
        read.map(|len| String::from_utf8_lossy(&first[..len]).into_owned())
    );
}

/// The reply to `USER name` / `PASS password` from `client` through the balancer.
async fn login_code(deployment: &Deployment, client: IpAddr, user: &str, password: &str) -> u32 {
    let stream = connect_from(deployment.haproxy.control, client).await;
    let mut raw = common::RawSession::over(stream).await;
    if raw.greeting.0 != 220 {
        return raw.greeting.0;
    }
    raw.send(format!("USER {user}")).await;
    if raw.reply().await.0 != 331 {
        return 0;
    }
    raw.send(format!("PASS {password}")).await;
    raw.reply().await.0
}

/// Until `check` holds for both instances (two logins in a row go to both, round robin),
/// at most 2 s after `since`.
async fn within_two_seconds(since: Instant, what: &str, mut check: impl AsyncFnMut() -> bool) {
    loop {
        if check().await && check().await {
            return;
        }
        assert!(
            since.elapsed() < Duration::from_secs(2),
            "{what} within 2 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_added_or_removed_anywhere_is_in_force_on_every_instance_within_two_seconds() {
    let deployment = Deployment::start().await;
    assert_eq!(
        login_code(&deployment, CLIENT, "carol", "carol's password").await,
        530
    );
    let added = Instant::now();
    deployment
        .accounts
        .ferry_user(&["add", "carol", "--password-stdin"], "carol's password\n")
        .await;
    within_two_seconds(added, "carol logs in through either instance", async || {
        login_code(&deployment, CLIENT, "carol", "carol's password").await == 230
    })
    .await;
    let removed = Instant::now();
    deployment
        .accounts
        .ferry_user(&["remove", "carol"], "")
        .await;
    within_two_seconds(removed, "carol is refused by either instance", async || {
        login_code(&deployment, CLIENT, "carol", "carol's password").await == 530
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bans_and_limits_follow_the_real_client_address_across_instances() {
    let deployment = Deployment::start().await;
    let guesser = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));
    // Three wrong passwords, spread over both instances by the balancer: one shared ban.
    for _ in 0..3 {
        assert_eq!(
            login_code(&deployment, guesser, "alice", "wrong").await,
            530
        );
    }
    let banned = Instant::now();
    within_two_seconds(
        banned,
        "the guesser is banned on both instances",
        async || login_code(&deployment, guesser, "alice", PASSWORD).await == 421,
    )
    .await;
    // Everyone else, also behind the same balancer address, is unaffected.
    for _ in 0..2 {
        assert_eq!(
            login_code(&deployment, CLIENT, "alice", PASSWORD).await,
            230
        );
    }
}
