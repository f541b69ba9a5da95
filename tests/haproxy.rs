//! A real HAProxy in front of Ferry: `mode tcp`, `send-proxy-v2` to the control port and, port
//! for port, to the passive range, as the README's "Behind a load balancer" section sets it up.
//! Logins, uploads, downloads and listings go through it byte for byte, over FTP and FTPS, and
//! the audit records name the real client, not HAProxy.
//!
//! HAProxy must be installed (`apt-get install haproxy`, or `scripts/ci-haproxy.sh`): without
//! it the test fails and says so.

mod common;
mod ftps_support;
mod proxy_support;

use common::audit_capture::AuditCapture;
use common::{PASSWORD, TestServer, connect_from, download, pattern};
use std::io::Cursor;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use suppaftp::tokio::{ImplAsyncFtpStream, TokioTlsStream};
use tempfile::TempDir;

/// Where HAProxy listens (control port and passive range), and the address it connects to
/// Ferry from: the one address in `proxy_from`.
const BALANCER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
/// Where Ferry listens: another address, so that its passive ports and HAProxy's can be the
/// same numbers, as on two hosts.
const FERRY: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 5));
/// The client, on an address of its own so that it cannot be mistaken for HAProxy.
const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
/// Passive ports forwarded one for one.
const PASSIVE_PORTS: u16 = 20;

/// A running `haproxy -db`, stopped when dropped.
struct Haproxy {
    child: Child,
    /// The control port's frontend.
    control: SocketAddr,
    log: PathBuf,
    _dir: TempDir,
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn haproxy_binary() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|dir| dir.join("haproxy"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "haproxy is not installed: tests/haproxy.rs runs a real HAProxy in front of \
                 Ferry; install it with `apt-get install haproxy` (scripts/ci-haproxy.sh does)"
            )
        })
}

/// A free port on every address in `ips`.
fn free_port(ips: &[IpAddr]) -> u16 {
    *free_ports(ips, 1, 27000).start()
}

/// `count` consecutive ports, from `start` up, that are free on every address in `ips` (below
/// Linux's ephemeral ports, so that no outgoing connection takes one meanwhile).
fn free_ports(ips: &[IpAddr], count: u16, start: u16) -> RangeInclusive<u16> {
    let free = |port: u16| {
        ips.iter()
            .all(|ip| std::net::TcpListener::bind((*ip, port)).is_ok())
    };
    (start..start + 3000)
        .step_by(usize::from(count))
        .map(|first| first..=first + count - 1)
        .find(|range| range.clone().all(free))
        .expect("a free range of ports")
}

/// Starts HAProxy forwarding `control` to Ferry's control port and each port of `passive` to
/// the same port on Ferry, all with a PROXY v2 header. Returns once it listens.
async fn start_haproxy(ferry_control: SocketAddr, passive: RangeInclusive<u16>) -> Haproxy {
    let binary = haproxy_binary();
    let dir = tempfile::tempdir().expect("temp dir");
    let control = SocketAddr::new(BALANCER, free_port(&[BALANCER]));
    let config = format!(
        "global\n\
         \x20   maxconn 256\n\
         defaults\n\
         \x20   mode tcp\n\
         \x20   timeout connect 5s\n\
         \x20   timeout client 60s\n\
         \x20   timeout server 60s\n\
         frontend ftp_control\n\
         \x20   bind {control}\n\
         \x20   default_backend ferry_control\n\
         backend ferry_control\n\
         \x20   server ferry {ferry_control} send-proxy-v2 source {BALANCER}\n\
         frontend ftp_passive\n\
         \x20   bind {BALANCER}:{}-{}\n\
         \x20   default_backend ferry_passive\n\
         backend ferry_passive\n\
         \x20   server ferry {FERRY} send-proxy-v2 source {BALANCER}\n",
        passive.start(),
        passive.end(),
    );
    let config_file = dir.path().join("haproxy.cfg");
    std::fs::write(&config_file, config).expect("write haproxy.cfg");
    let log = dir.path().join("haproxy.log");
    let log_file = std::fs::File::create(&log).expect("log file");
    let child = Command::new(&binary)
        .arg("-db")
        .arg("-f")
        .arg(&config_file)
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().expect("log file"))
        .stderr(log_file)
        .spawn()
        .unwrap_or_else(|error| panic!("could not run {}: {error}", binary.display()));
    let mut haproxy = Haproxy {
        child,
        control,
        log,
        _dir: dir,
    };
    // HAProxy binds every port before it serves any: it listens once the last one does.
    let last = SocketAddr::new(BALANCER, *passive.end());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(last).await.is_err() {
        if let Ok(Some(status)) = haproxy.child.try_wait() {
            panic!("haproxy exited ({status}): {}", haproxy.log_text());
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "haproxy did not listen within 20 s: {}",
            haproxy.log_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    haproxy
}

impl Haproxy {
    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// suppaftp connected through HAProxy from [`CLIENT`], data connections too, in `mode`.
async fn through<T>(haproxy: &Haproxy, mode: suppaftp::Mode) -> ImplAsyncFtpStream<T>
where
    T: TokioTlsStream + Send,
{
    let stream = connect_from(haproxy.control, CLIENT).await;
    let mut ftp = ImplAsyncFtpStream::<T>::connect_with_stream(stream)
        .await
        .unwrap_or_else(|error| panic!("greeting through haproxy: {error}: {}", haproxy.log_text()))
        .passive_stream_builder(|data_port| {
            Box::pin(async move { Ok(connect_from(data_port, CLIENT).await) })
        });
    ftp.set_mode(mode);
    ftp
}

/// Uploads, lists, downloads `name` (about 1 MiB) and quits: all byte-identical.
async fn transfer_and_quit<T>(mut ftp: ImplAsyncFtpStream<T>, name: &str)
where
    T: TokioTlsStream + Send,
{
    ftp.transfer_type(suppaftp::types::FileType::Binary)
        .await
        .expect("TYPE I");
    let content = pattern(1024 * 1024 + 7);
    ftp.put_file(name, &mut Cursor::new(content.clone()))
        .await
        .expect("STOR through haproxy");
    let listing = ftp.list(None).await.expect("LIST through haproxy");
    assert!(
        listing
            .iter()
            .any(|line| line.ends_with(name) && line.contains(&content.len().to_string())),
        "{listing:?}"
    );
    assert!(download(&mut ftp, name).await == content, "RETR {name}");
    ftp.quit().await.expect("QUIT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ftp_and_ftps_through_haproxy_with_send_proxy_v2() {
    let passive = free_ports(&[BALANCER, FERRY], PASSIVE_PORTS, 26000);
    let files = ftps_support::TlsFiles::new();
    let capture = AuditCapture::default();
    let server = TestServer::start_logging_to(
        |config| {
            config.bind = SocketAddr::new(FERRY, 0);
            config.passive_ports = passive.clone();
            config.passive_host = Some(BALANCER.to_string());
            config.proxy_from = vec![ipnet::IpNet::from(BALANCER)];
            files.required(config);
            config.tls.mode = ferry::tls::TlsMode::Optional;
        },
        &common::default_users(),
        capture.logger(),
    )
    .await;
    let haproxy = start_haproxy(server.addr, passive).await;

    // Plain FTP, PASV (the reply names passive_host, HAProxy) and EPSV (HAProxy's port).
    for (mode, name) in [
        (suppaftp::Mode::Passive, "pasv.bin"),
        (suppaftp::Mode::ExtendedPassive, "epsv.bin"),
    ] {
        let mut ftp = through::<suppaftp::tokio::AsyncNoTlsStream>(&haproxy, mode).await;
        ftp.login("alice", PASSWORD)
            .await
            .expect("login through haproxy");
        transfer_and_quit(ftp, name).await;
    }

    // FTPS: AUTH TLS after HAProxy's header, and TLS on each data connection after its header.
    let ftp =
        through::<suppaftp::tokio::AsyncRustlsStream>(&haproxy, suppaftp::Mode::ExtendedPassive)
            .await;
    let connector = suppaftp::tokio::AsyncRustlsConnector::from(tokio_rustls::TlsConnector::from(
        ftps_support::trusting(&files),
    ));
    let mut ftp = ftp
        .into_secure(connector, ftps_support::SERVER_NAME)
        .await
        .expect("AUTH TLS through haproxy");
    ftp.login("alice", PASSWORD).await.expect("login over TLS");
    transfer_and_quit(ftp, "tls.bin").await;

    for op in ["login", "upload", "download"] {
        let records = capture.of(op);
        assert_eq!(records.len(), 3, "{op}: {records:?}");
        for record in records {
            assert_eq!(record["client_ip"], CLIENT.to_string(), "{op}: {record:?}");
        }
    }
    assert!(
        std::fs::read(server.home("alice").join("tls.bin")).expect("stored")
            == pattern(1024 * 1024 + 7)
    );
}
