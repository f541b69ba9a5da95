//! A real S3-compatible server for the object-storage tests: moto's server (`moto[server]`
//! from PyPI, installed by `.ci/run`), started once per test binary on a free loopback port,
//! and an S3 client to look at what Ferry left in the bucket.

#![allow(dead_code)] // each test binary that includes this uses a part of it

use crate::common::{TestServer, TestUser};
use aws_sdk_s3::Client;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Any key works with moto; Ferry reads these from a credentials file, like a mounted secret.
pub const ACCESS_KEY: &str = "ferry-test-access";
pub const SECRET_KEY: &str = "ferry-test-secret-never-logged";

/// The moto server every test of this binary shares (each test in its own bucket).
pub fn moto() -> &'static str {
    static ENDPOINT: OnceLock<String> = OnceLock::new();
    ENDPOINT.get_or_init(|| {
        let (endpoint, child) = start_moto();
        // Kept for the life of the process; moto dies with it (see `start_moto`).
        std::mem::forget(child);
        endpoint
    })
}

/// Starts a moto server of its own (for a test that stops it); killed when dropped.
pub struct OwnMoto {
    pub endpoint: String,
    child: Child,
}

impl OwnMoto {
    pub fn start() -> OwnMoto {
        let (endpoint, child) = start_moto();
        OwnMoto { endpoint, child }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OwnMoto {
    fn drop(&mut self) {
        self.kill();
    }
}

fn start_moto() -> (String, Child) {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port();
    // `python3 -m moto.server` rather than the `moto_server` script: pip may put scripts in a
    // directory that is not on PATH (~/.local/bin).
    let mut command = Command::new("python3");
    command
        .args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: prctl is async-signal-safe; it only asks the kernel to kill moto when the thread
    // that forked it (the spawning thread, parked for the process's life below) goes away.
    unsafe {
        use std::os::unix::process::CommandExt;
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    // Forked from a thread that never ends, so PR_SET_PDEATHSIG fires only when the process ends.
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(command.spawn());
        loop {
            std::thread::park();
        }
    });
    let child = receiver
        .recv()
        .expect("spawning thread answers")
        .unwrap_or_else(|error| {
            panic!(
                "moto_server could not be started ({error}): the object-storage tests need \
                 moto's S3 server: pip install 'moto[server]==5.2.5' (.ci/run installs it)"
            )
        });
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let started = Instant::now();
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "moto_server did not listen on {addr} within 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    (format!("http://{addr}"), child)
}

/// An S3 client of moto at `endpoint`, to inspect and prepare buckets.
pub fn client(endpoint: &str) -> Client {
    let credentials =
        aws_sdk_s3::config::Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "test");
    let config = aws_sdk_s3::config::Builder::new()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .credentials_provider(credentials)
        .build();
    Client::from_conf(config)
}

/// A fresh bucket of its own for one test.
pub async fn new_bucket(client: &Client) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let bucket = format!(
        "ferry-test-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    client
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("create bucket");
    bucket
}

/// An AWS shared credentials file with the test keys, as a mounted secret would be.
pub fn credentials_file(dir: &std::path::Path) -> PathBuf {
    let path = dir.join("s3-credentials");
    std::fs::write(
        &path,
        format!(
            "[default]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n"
        ),
    )
    .expect("write credentials file");
    path
}

/// Points `config` at `s3://bucket/prefix` on `endpoint` with 5 MiB parts (S3's smallest), so
/// that multipart uploads start at a few MiB.
pub fn use_bucket(
    config: &mut ferry::config::Config,
    endpoint: &str,
    bucket: &str,
    prefix: &str,
    credentials: PathBuf,
) {
    config.bucket = Some(ferry::config::BucketRoot {
        bucket: bucket.to_owned(),
        prefix: prefix.to_owned(),
    });
    config.s3.endpoint = Some(endpoint.to_owned());
    config.s3.part_size = 5 * 1024 * 1024;
    config.s3.upload_concurrency = 2;
    config.s3.credentials_file = Some(credentials);
    config.instance_id = format!("test-{bucket}");
}

/// Every key in the bucket, sorted.
pub async fn keys(client: &Client, bucket: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut token = None;
    loop {
        let page = client
            .list_objects_v2()
            .bucket(bucket)
            .set_continuation_token(token.take())
            .send()
            .await
            .expect("list objects");
        keys.extend(
            page.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_owned)),
        );
        match page.next_continuation_token() {
            Some(next) => token = Some(next.to_owned()),
            None => break,
        }
    }
    keys.sort();
    keys
}

/// The object's bytes, or None when there is none.
pub async fn object(client: &Client, bucket: &str, key: &str) -> Option<Vec<u8>> {
    let object = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .ok()?;
    Some(object.body.collect().await.expect("read object").to_vec())
}

pub async fn put(client: &Client, bucket: &str, key: &str, data: Vec<u8>) {
    client
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(data.into())
        .send()
        .await
        .expect("put object");
}

/// Multipart uploads still open in the bucket.
pub async fn open_uploads(client: &Client, bucket: &str) -> Vec<String> {
    let listed = client
        .list_multipart_uploads()
        .bucket(bucket)
        .send()
        .await
        .expect("list multipart uploads");
    listed
        .uploads()
        .iter()
        .filter_map(|upload| upload.key().map(str::to_owned))
        .collect()
}

/// Waits (bounded) until the bucket has no open multipart upload; returns those left.
pub async fn uploads_after_settling(client: &Client, bucket: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let open = open_uploads(client, bucket).await;
        if open.is_empty() || Instant::now() > deadline {
            return open;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A server on a fresh bucket under the prefix `site`, and an S3 client of the same moto.
pub struct Fixture {
    pub server: TestServer,
    pub s3: aws_sdk_s3::Client,
    pub bucket: String,
    _credentials: tempfile::TempDir,
}

impl Fixture {
    pub async fn start_with(
        users: &[TestUser],
        configure: impl FnOnce(&mut ferry::config::Config),
    ) -> Fixture {
        let endpoint = moto();
        let client = client(endpoint);
        let bucket = new_bucket(&client).await;
        let credentials = tempfile::tempdir().expect("temp dir");
        let file = credentials_file(credentials.path());
        let server = TestServer::start_with(
            |config| {
                use_bucket(config, endpoint, &bucket, "site", file);
                configure(config);
            },
            users,
        )
        .await;
        Fixture {
            server,
            s3: client,
            bucket,
            _credentials: credentials,
        }
    }

    pub async fn object(&self, key: &str) -> Option<Vec<u8>> {
        object(&self.s3, &self.bucket, key).await
    }

    pub async fn keys(&self) -> Vec<String> {
        keys(&self.s3, &self.bucket).await
    }
}
