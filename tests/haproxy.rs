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
mod support;

use common::audit_capture::AuditCapture;
use common::{PASSWORD, TestServer, connect_from, download, pattern};
use std::io::Cursor;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use suppaftp::tokio::{ImplAsyncFtpStream, TokioTlsStream};
use support::haproxy::{Backend, Haproxy, free_ports};

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
    let backend = Backend {
        control: server.addr,
        passive,
        admin: None,
    };
    let haproxy = Haproxy::start(BALANCER, &[backend]).await;

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
