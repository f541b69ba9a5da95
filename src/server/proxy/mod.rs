//! The PROXY protocol (HAProxy's, v1 and v2) on control and passive data connections, for
//! Ferry instances behind a TCP load balancer (`proxy_from`).
//!
//! Only the load balancers in `proxy_from` are believed. A connection from one of them must
//! start with a PROXY header, and the client it names is the client for everything the peer
//! address is otherwise used for: session limits, failed-login bans, allowed networks, audit
//! records, the PORT/EPRT checks and libunftp's same-client check on passive data connections
//! (which get their own header from the balancer). One without a valid header is closed without
//! a greeting. A connection from anywhere else is its own client, as when `proxy_from` is empty;
//! one that nevertheless starts with a PROXY header (a client trying to choose its address) is
//! closed too. A v2 LOCAL (or v1 UNKNOWN) header, or a connection from the balancer that closes
//! without sending a byte, is the balancer's health check: closed quietly.

mod header;

use async_trait::async_trait;
use header::{Header, HeaderError, opens_like_header, read_header};
use ipnet::IpNet;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpStream;

/// How long a load balancer in `proxy_from` has to send its header. It sends it as soon as it
/// has connected, in the first segment, so this bounds only a connection that never does.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a control connection from outside `proxy_from` is watched for a PROXY header before
/// it is served (only while `proxy_from` is set). A sender writes its header the moment it
/// has connected, so the bytes arrive with the handshake's last ACK; an FTP client sends nothing
/// before the greeting, and an implicit-FTPS client's ClientHello ends the wait at once.
const UNTRUSTED_HEADER_WAIT: Duration = Duration::from_millis(100);

/// The load balancers whose PROXY headers are believed (`proxy_from`); empty: none.
#[derive(Debug, Clone, Default)]
pub struct ProxyTrust {
    networks: Vec<IpNet>,
}

/// Who is at the other end of an admitted control connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intake {
    /// A client to serve: the connection's peer, or the one a trusted header names.
    Client(SocketAddr),
    /// A load balancer's health check (a v2 LOCAL or v1 UNKNOWN header, or a connection closed
    /// without a byte, as HAProxy's plain `check` does): close without a word.
    HealthCheck,
}

/// Why a control connection is closed before its greeting.
#[derive(Debug, thiserror::Error)]
pub enum ProxyRefusal {
    #[error("PROXY header from an address not in proxy_from")]
    Untrusted,
    #[error("no valid PROXY header from a load balancer in proxy_from: {0}")]
    Header(#[from] HeaderError),
    #[error(
        "no PROXY header within {}s from a load balancer in proxy_from",
        HEADER_TIMEOUT.as_secs()
    )]
    TimedOut,
}

impl ProxyTrust {
    pub fn new(networks: Vec<IpNet>) -> Self {
        ProxyTrust { networks }
    }

    fn trusts(&self, peer: SocketAddr) -> bool {
        let ip = peer.ip().to_canonical();
        self.networks.iter().any(|network| network.contains(&ip))
    }

    /// Finds the client of a control connection just accepted from `peer`, reading the PROXY
    /// header when `peer` is a trusted load balancer (see the module docs).
    pub async fn control_client(
        &self,
        stream: &mut TcpStream,
        peer: SocketAddr,
    ) -> Result<Intake, ProxyRefusal> {
        if self.networks.is_empty() {
            return Ok(Intake::Client(peer));
        }
        if self.trusts(peer) {
            return match tokio::time::timeout(HEADER_TIMEOUT, read_header(stream)).await {
                Ok(Ok(Header::Client(client))) => Ok(Intake::Client(client)),
                Ok(Ok(Header::Local)) | Ok(Err(HeaderError::NothingSent)) => {
                    Ok(Intake::HealthCheck)
                }
                Ok(Err(error)) => Err(ProxyRefusal::Header(error)),
                Err(_) => Err(ProxyRefusal::TimedOut),
            };
        }
        let mut first = [0; 16];
        match tokio::time::timeout(UNTRUSTED_HEADER_WAIT, stream.peek(&mut first)).await {
            Ok(Ok(read)) if opens_like_header(&first[..read]) => Err(ProxyRefusal::Untrusted),
            _ => Ok(Intake::Client(peer)),
        }
    }
}

/// libunftp asks this for each passive data connection (patch `proxy-peer`): one from a
/// trusted load balancer must carry a header naming a client, which libunftp then requires to
/// be the control connection's; any other is its own client, as when `proxy_from` is empty.
#[async_trait]
impl libunftp::options::DataPeerResolver for ProxyTrust {
    async fn resolve(&self, stream: &mut TcpStream, peer: SocketAddr) -> io::Result<SocketAddr> {
        if !self.trusts(peer) {
            return Ok(peer);
        }
        match tokio::time::timeout(HEADER_TIMEOUT, read_header(stream)).await {
            Ok(Ok(Header::Client(client))) => Ok(client),
            Ok(Ok(Header::Local)) => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "PROXY header names no client (LOCAL or UNKNOWN) on a data connection",
            )),
            Ok(Err(error)) => Err(io::Error::new(io::ErrorKind::InvalidData, error)),
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                ProxyRefusal::TimedOut.to_string(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libunftp::options::DataPeerResolver;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    /// A connection to a listener on `server_ip`, from a socket bound to `client_ip`; returns
    /// the server's end with its peer address, and the client's end.
    async fn connection(client_ip: &str) -> (TcpStream, SocketAddr, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind(format!("{client_ip}:0").parse().expect("address"))
            .expect("bind client");
        let client = socket
            .connect(listener.local_addr().expect("address"))
            .await
            .expect("connect");
        let (server, peer) = listener.accept().await.expect("accept");
        (server, peer, client)
    }

    /// A connection from `client_ip` that has sent `bytes`: see [`connection`].
    async fn sent(client_ip: &str, bytes: &[u8]) -> (TcpStream, SocketAddr, TcpStream) {
        let (server, peer, mut client) = connection(client_ip).await;
        client.write_all(bytes).await.expect("write");
        (server, peer, client)
    }

    fn trusting(network: &str) -> ProxyTrust {
        ProxyTrust::new(vec![network.parse().expect("network")])
    }

    const HEADER: &[u8] = b"PROXY TCP4 203.0.113.7 127.0.0.1 50000 21\r\n";

    fn remote() -> SocketAddr {
        "203.0.113.7:50000".parse().expect("address")
    }

    #[tokio::test]
    async fn without_proxy_from_the_peer_is_the_client_whatever_it_sends() {
        let (mut server, peer, _client) = sent("127.0.0.1", HEADER).await;
        let intake = ProxyTrust::default()
            .control_client(&mut server, peer)
            .await;
        assert_eq!(intake.expect("served"), Intake::Client(peer));
    }

    #[tokio::test]
    async fn a_trusted_balancer_names_the_client_or_checks_health() {
        let trust = trusting("127.0.0.1/32");
        let (mut server, peer, _client) = sent("127.0.0.1", HEADER).await;
        let intake = trust.control_client(&mut server, peer).await;
        assert_eq!(intake.expect("served"), Intake::Client(remote()));

        let (mut server, peer, _client) = sent("127.0.0.1", b"PROXY UNKNOWN\r\n").await;
        let intake = trust.control_client(&mut server, peer).await;
        assert_eq!(intake.expect("health check"), Intake::HealthCheck);
        let (mut server, peer, client) = connection("127.0.0.1").await;
        drop(client);
        let intake = trust.control_client(&mut server, peer).await;
        assert_eq!(intake.expect("TCP health check"), Intake::HealthCheck);
    }

    #[tokio::test]
    async fn a_header_from_outside_proxy_from_is_refused_and_a_plain_client_served() {
        let trust = trusting("127.0.0.1/32");
        let (mut server, peer, _client) = sent("127.0.0.3", HEADER).await;
        let intake = trust.control_client(&mut server, peer).await;
        assert!(matches!(intake, Err(ProxyRefusal::Untrusted)), "{intake:?}");

        let (mut server, peer, _client) = connection("127.0.0.3").await;
        let intake = trust.control_client(&mut server, peer).await;
        assert_eq!(intake.expect("served"), Intake::Client(peer));
    }

    #[tokio::test]
    async fn data_connections_from_a_balancer_need_a_header_naming_a_client() {
        let trust = trusting("127.0.0.0/30");
        let (mut server, peer, _client) = sent("127.0.0.2", HEADER).await;
        assert_eq!(
            trust.resolve(&mut server, peer).await.expect("resolved"),
            remote()
        );
        for not_a_client in [&b"PROXY UNKNOWN\r\n"[..], b"RETR x\r\n"] {
            let (mut server, peer, _client) = sent("127.0.0.2", not_a_client).await;
            assert!(trust.resolve(&mut server, peer).await.is_err());
        }
        let (mut server, peer, _client) = connection("127.0.0.5").await;
        assert_eq!(
            trust.resolve(&mut server, peer).await.expect("direct"),
            peer
        );
    }
}
