//! What a load balancer speaking the PROXY protocol does, done by the test itself: headers
//! (v1 text, v2 binary) before the control connection and before each passive data
//! connection, and suppaftp clients whose connections carry them.
#![allow(dead_code)]

use crate::common::connect_from;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use suppaftp::tokio::{ImplAsyncFtpStream, TokioTlsStream};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Which header a connection starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

/// The address the test's "load balancer" connects from: inside `proxy_from` (127.0.0.1/32).
pub const BALANCER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

/// A header saying that `client` connected to `server`.
pub fn header(version: Version, client: SocketAddr, server: SocketAddr) -> Vec<u8> {
    match version {
        Version::V1 => {
            let family = if client.is_ipv4() { "TCP4" } else { "TCP6" };
            format!(
                "PROXY {family} {} {} {} {}\r\n",
                client.ip(),
                server.ip(),
                client.port(),
                server.port()
            )
            .into_bytes()
        }
        Version::V2 => {
            let mut header = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
            header.push(0x21); // version 2, PROXY
            let addresses = match (client, server) {
                (SocketAddr::V4(client), SocketAddr::V4(server)) => {
                    header.push(0x11); // TCP over IPv4
                    [client.ip().octets(), server.ip().octets()].concat()
                }
                (SocketAddr::V6(client), SocketAddr::V6(server)) => {
                    header.push(0x21); // TCP over IPv6
                    [client.ip().octets(), server.ip().octets()].concat()
                }
                _ => panic!("client and server of one family"),
            };
            let length = u16::try_from(addresses.len() + 4).expect("short");
            header.extend(length.to_be_bytes());
            header.extend(addresses);
            header.extend(client.port().to_be_bytes());
            header.extend(server.port().to_be_bytes());
            header
        }
    }
}

/// The v2 header of a load balancer's health check (LOCAL).
pub fn v2_local() -> Vec<u8> {
    let mut header = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    header.extend([0x20, 0x00, 0, 0]);
    header
}

/// A connection to `server` from the balancer that has sent `header`.
pub async fn balanced(server: SocketAddr, header: &[u8]) -> TcpStream {
    let mut stream = connect_from(server, BALANCER).await;
    stream.write_all(header).await.expect("send PROXY header");
    stream
}

/// What suppaftp's passive stream builder returns.
type DataConnection = Pin<Box<dyn Future<Output = suppaftp::FtpResult<TcpStream>> + Send + Sync>>;

/// suppaftp (EPSV) on a control connection through the test's balancer for `client`,
/// whose passive data connections also come through it with a header naming `data_client`
/// (`client` itself, unless the test wants them refused). Not logged in.
pub async fn ftp_for<T>(
    server: SocketAddr,
    version: Version,
    client: SocketAddr,
    data_client: IpAddr,
) -> ImplAsyncFtpStream<T>
where
    T: TokioTlsStream + Send,
{
    let stream = balanced(server, &header(version, client, server)).await;
    let mut ftp = ImplAsyncFtpStream::<T>::connect_with_stream(stream)
        .await
        .expect("greeting through the balancer")
        .passive_stream_builder(move |data_port| -> DataConnection {
            Box::pin(async move {
                let data_client = SocketAddr::new(data_client, client.port());
                Ok(balanced(data_port, &header(version, data_client, data_port)).await)
            })
        });
    ftp.set_mode(suppaftp::Mode::ExtendedPassive);
    ftp
}

/// Whether the server closed `stream` without sending a byte (no greeting, no data).
pub async fn closed_without_a_word(stream: &mut TcpStream) -> bool {
    use tokio::io::AsyncReadExt;
    let mut received = Vec::new();
    // A reset (the server closed with our bytes unread) is as closed as a FIN; what arrived
    // before it stays in `received`.
    let _closed = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        stream.read_to_end(&mut received),
    )
    .await
    .expect("the server closes the connection within 20 s");
    received.is_empty()
}
