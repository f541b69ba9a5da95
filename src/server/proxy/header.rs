//! Reading one PROXY protocol header (HAProxy's v1 text or v2 binary) off a connection.
//!
//! The header is read a byte at a time up to where it ends, so the bytes after it (an FTP
//! command, a TLS ClientHello, an upload) stay in the socket for whoever reads next: nothing is
//! buffered here. The framing (where a header ends, how long it may be) is Ferry's; the bytes
//! framed are checked and decoded by the `ppp` crate.

use ppp::{v1, v2};
use std::net::SocketAddr;
use tokio::io::{AsyncRead, AsyncReadExt};

/// The longest v1 header, CRLF included (the specification's own bound: "PROXY UNKNOWN" with
/// two full-length IPv6 addresses and ports).
const V1_MAX_LEN: usize = 107;
const V1_PREFIX: &[u8] = b"PROXY ";
/// The v2 signature, then version and command, family and protocol, and the length of what
/// follows (addresses and TLVs), big-endian.
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
const V2_FIXED_LEN: usize = 16;
/// The most a v2 header may carry after its fixed part: the addresses (at most 216 bytes, for
/// UNIX sockets) and TLVs. What a TCP load balancer adds (HAProxy's SNI, ALPN and unique-id
/// TLVs, AWS's VPC endpoint id, Azure's link id) fits several times over; the protocol's own
/// bound, 65,535 bytes, is more than anyone should be allowed to make Ferry read.
const V2_MAX_PAYLOAD: usize = 2048;

/// What a valid header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    /// The connection was made for this client (v1 TCP4/TCP6, v2 PROXY over TCP).
    Client(SocketAddr),
    /// The proxy speaks for itself: a health check (v2 LOCAL, v1 UNKNOWN). No client to serve.
    Local,
}

/// Why a connection did not start with a valid header.
#[derive(Debug, thiserror::Error)]
pub enum HeaderError {
    /// What a load balancer's TCP health check looks like: connect, then close.
    #[error("the connection closed without sending anything")]
    NothingSent,
    #[error("the connection closed before a PROXY header was complete")]
    Closed,
    #[error("could not read the PROXY header: {0}")]
    Io(std::io::Error),
    #[error("the connection does not start with a PROXY header")]
    Missing,
    #[error("PROXY v1 header longer than {V1_MAX_LEN} bytes")]
    V1TooLong,
    #[error(
        "PROXY v2 header announces {0} bytes of addresses and TLVs, more than {V2_MAX_PAYLOAD}"
    )]
    V2TooLong(usize),
    #[error("malformed PROXY v1 header: {0}")]
    V1(String),
    #[error("malformed PROXY v2 header: {0}")]
    V2(#[from] v2::ParseError),
    #[error("PROXY v2 header for {0}, not a TCP connection over IPv4 or IPv6")]
    NotTcp(&'static str),
}

impl From<std::io::Error> for HeaderError {
    fn from(error: std::io::Error) -> Self {
        match error.kind() {
            std::io::ErrorKind::UnexpectedEof => HeaderError::Closed,
            _ => HeaderError::Io(error),
        }
    }
}

/// Whether `bytes`, the first bytes a connection sent (however few), could be the start of a
/// PROXY header of either version.
pub fn opens_like_header(bytes: &[u8]) -> bool {
    let agrees_with = |start: &[u8]| {
        let common = bytes.len().min(start.len());
        common > 0 && bytes[..common] == start[..common]
    };
    agrees_with(V1_PREFIX) || agrees_with(&V2_SIGNATURE)
}

/// Reads one header off `stream`, and not a byte more. No time limit: the caller sets one.
pub async fn read_header(stream: &mut (impl AsyncRead + Unpin)) -> Result<Header, HeaderError> {
    let first = match stream.read_u8().await {
        Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => {
            return Err(HeaderError::NothingSent);
        }
        read => read?,
    };
    match first {
        b'P' => read_v1(stream).await,
        b'\r' => read_v2(stream).await,
        _ => Err(HeaderError::Missing),
    }
}

/// The rest of a v1 header, whose `P` has been read: up to and including the first LF.
async fn read_v1(stream: &mut (impl AsyncRead + Unpin)) -> Result<Header, HeaderError> {
    let mut header = Vec::with_capacity(V1_MAX_LEN);
    header.push(b'P');
    loop {
        if header.len() == V1_MAX_LEN {
            return Err(HeaderError::V1TooLong);
        }
        let byte = stream.read_u8().await?;
        header.push(byte);
        if !opens_like_header(&header) {
            return Err(HeaderError::Missing);
        }
        if byte == b'\n' {
            break;
        }
    }
    let text = std::str::from_utf8(&header).map_err(|error| HeaderError::V1(error.to_string()))?;
    let parsed = v1::Header::try_from(text).map_err(|error| HeaderError::V1(error.to_string()))?;
    // ppp reads up to the first CR and the character after it; the header read here ends at
    // the first LF. Anything between the two would be a header with a stray CR.
    if parsed.header.len() != header.len() {
        return Err(HeaderError::V1(
            "stray CR before the end of the line".to_owned(),
        ));
    }
    Ok(match parsed.addresses {
        v1::Addresses::Tcp4(ip) => {
            Header::Client(SocketAddr::new(ip.source_address.into(), ip.source_port))
        }
        v1::Addresses::Tcp6(ip) => {
            Header::Client(SocketAddr::new(ip.source_address.into(), ip.source_port))
        }
        v1::Addresses::Unknown => Header::Local,
    })
}

/// The rest of a v2 header, whose first CR has been read: the fixed part, then as many bytes as
/// it announces.
async fn read_v2(stream: &mut (impl AsyncRead + Unpin)) -> Result<Header, HeaderError> {
    let mut header = vec![0; V2_FIXED_LEN];
    header[0] = b'\r';
    for index in 1..V2_FIXED_LEN {
        header[index] = stream.read_u8().await?;
        if index < V2_SIGNATURE.len() && header[index] != V2_SIGNATURE[index] {
            return Err(HeaderError::Missing);
        }
    }
    let payload = usize::from(u16::from_be_bytes([header[14], header[15]]));
    if payload > V2_MAX_PAYLOAD {
        return Err(HeaderError::V2TooLong(payload));
    }
    header.resize(V2_FIXED_LEN + payload, 0);
    stream.read_exact(&mut header[V2_FIXED_LEN..]).await?;
    let parsed = v2::Header::try_from(header.as_slice())?;
    if parsed.command == v2::Command::Local {
        return Ok(Header::Local);
    }
    if parsed.protocol != v2::Protocol::Stream {
        return Err(HeaderError::NotTcp("a datagram or unspecified protocol"));
    }
    match parsed.addresses {
        v2::Addresses::IPv4(ip) => Ok(Header::Client(SocketAddr::new(
            ip.source_address.into(),
            ip.source_port,
        ))),
        v2::Addresses::IPv6(ip) => Ok(Header::Client(SocketAddr::new(
            ip.source_address.into(),
            ip.source_port,
        ))),
        v2::Addresses::Unix(_) => Err(HeaderError::NotTcp("UNIX sockets")),
        v2::Addresses::Unspecified => Err(HeaderError::NotTcp("an unspecified address family")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads a header from `bytes` and returns it with what was left unread.
    async fn read(bytes: &[u8]) -> (Result<Header, HeaderError>, Vec<u8>) {
        let mut stream = bytes;
        let header = read_header(&mut stream).await;
        (header, stream.to_vec())
    }

    /// A v2 header: PROXY (or LOCAL) over TCP, IPv4 or IPv6, with `tlvs` after the addresses.
    fn v2(command: u8, family: u8, addresses: &[u8], tlvs: &[u8]) -> Vec<u8> {
        let mut header = V2_SIGNATURE.to_vec();
        header.push(0x20 | command);
        header.push(family);
        let length = u16::try_from(addresses.len() + tlvs.len()).expect("short");
        header.extend(length.to_be_bytes());
        header.extend(addresses);
        header.extend(tlvs);
        header
    }

    const V4_ADDRESSES: [u8; 12] = [203, 0, 113, 7, 10, 0, 0, 1, 0xC3, 0x50, 0, 21];

    fn client(text: &str) -> Header {
        Header::Client(text.parse().expect("socket address"))
    }

    #[tokio::test]
    async fn v1_tcp4_names_the_client_and_leaves_the_next_bytes_unread() {
        let (header, rest) =
            read(b"PROXY TCP4 203.0.113.7 10.0.0.1 50000 21\r\nUSER alice\r\n").await;
        assert_eq!(header.expect("valid"), client("203.0.113.7:50000"));
        assert_eq!(rest, b"USER alice\r\n");
    }

    #[tokio::test]
    async fn v1_tcp6_and_the_longest_header_parse() {
        let (header, _) = read(b"PROXY TCP6 2001:db8::7 2001:db8::1 50000 21\r\n").await;
        assert_eq!(header.expect("valid"), client("[2001:db8::7]:50000"));
        let addresses = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff \
                         ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
        let (header, _) = read(format!("PROXY TCP6 {addresses}").as_bytes()).await;
        assert!(matches!(header, Ok(Header::Client(_))), "{header:?}");
        let longest = format!("PROXY UNKNOWN {addresses}");
        assert_eq!(longest.len(), V1_MAX_LEN);
        let (header, _) = read(longest.as_bytes()).await;
        assert_eq!(header.expect("valid"), Header::Local);
    }

    #[tokio::test]
    async fn v1_unknown_is_the_proxy_speaking_for_itself() {
        let (header, rest) = read(b"PROXY UNKNOWN\r\n220?").await;
        assert_eq!(header.expect("valid"), Header::Local);
        assert_eq!(rest, b"220?");
    }

    #[tokio::test]
    async fn v1_that_is_malformed_or_too_long_is_refused_without_reading_past_its_bound() {
        for bad in [
            &b"PROXY TCP4 203.0.113.7 10.0.0.1 50000\r\n"[..],
            b"PROXY TCP4 203.0.113.999 10.0.0.1 50000 21\r\n",
            b"PROXY TCP4 203.0.113.7 10.0.0.1 050000 21\r\n",
            b"PROXY TCP5 203.0.113.7 10.0.0.1 50000 21\r\n",
            b"PROXY TCP4 203.0.113.7 10.0.0.1 50000 21\n",
            b"PROXY TCP4 203.0.113.7\r10.0.0.1 50000 21\r\n",
            b"PROXY TCP6 203.0.113.7 10.0.0.1 50000 21\r\n",
        ] {
            let (header, _) = read(bad).await;
            assert!(
                matches!(header, Err(HeaderError::V1(_))),
                "{:?}: {header:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let endless = [b'P', b'R', b'O', b'X', b'Y', b' '].repeat(100);
        let (header, rest) = read(&endless).await;
        assert!(matches!(header, Err(HeaderError::V1TooLong)), "{header:?}");
        assert_eq!(rest.len(), endless.len() - V1_MAX_LEN);
    }

    #[tokio::test]
    async fn an_ftp_command_or_a_tls_hello_is_no_header() {
        for bad in [
            &b"USER alice\r\n"[..],
            b"PASS x\r\n",
            b"\x16\x03\x01\x02\x00",
        ] {
            let (header, _) = read(bad).await;
            assert!(matches!(header, Err(HeaderError::Missing)), "{header:?}");
        }
        let (header, _) = read(b"").await;
        assert!(
            matches!(header, Err(HeaderError::NothingSent)),
            "{header:?}"
        );
        let (header, _) = read(b"\r\n").await;
        assert!(matches!(header, Err(HeaderError::Closed)), "{header:?}");
        let (header, _) = read(b"PROXY TCP4 203.0.113.7").await;
        assert!(matches!(header, Err(HeaderError::Closed)), "{header:?}");
    }

    #[tokio::test]
    async fn v2_proxy_over_tcp_names_the_client_tlvs_included() {
        let noop_tlv = [0x04, 0, 2, 0, 0];
        let mut bytes = v2(1, 0x11, &V4_ADDRESSES, &noop_tlv);
        bytes.extend(b"USER alice\r\n");
        let (header, rest) = read(&bytes).await;
        assert_eq!(header.expect("valid"), client("203.0.113.7:50000"));
        assert_eq!(rest, b"USER alice\r\n");

        let mut v6 = Vec::new();
        v6.extend(
            "2001:db8::7"
                .parse::<std::net::Ipv6Addr>()
                .expect("v6")
                .octets(),
        );
        v6.extend(
            "2001:db8::1"
                .parse::<std::net::Ipv6Addr>()
                .expect("v6")
                .octets(),
        );
        v6.extend([0xC3, 0x50, 0, 21]);
        let (header, _) = read(&v2(1, 0x21, &v6, &[])).await;
        assert_eq!(header.expect("valid"), client("[2001:db8::7]:50000"));
    }

    #[tokio::test]
    async fn v2_local_is_the_proxy_speaking_for_itself() {
        let (header, rest) = read(&v2(0, 0x00, &[], &[])).await;
        assert_eq!(header.expect("valid"), Header::Local);
        assert!(rest.is_empty());
    }

    #[tokio::test]
    async fn v2_that_is_not_tcp_or_malformed_or_too_long_is_refused() {
        for (bytes, what) in [
            (v2(1, 0x12, &V4_ADDRESSES, &[]), "UDP"),
            (v2(1, 0x00, &[], &[]), "UNSPEC"),
            (v2(1, 0x31, &[0; 216], &[]), "UNIX"),
        ] {
            let (header, _) = read(&bytes).await;
            assert!(
                matches!(header, Err(HeaderError::NotTcp(_))),
                "{what}: {header:?}"
            );
        }
        let mut wrong_version = v2(1, 0x11, &V4_ADDRESSES, &[]);
        wrong_version[12] = 0x11;
        let (header, _) = read(&wrong_version).await;
        assert!(matches!(header, Err(HeaderError::V2(_))), "{header:?}");
        let (header, _) = read(&v2(1, 0x11, &V4_ADDRESSES[..8], &[])).await;
        assert!(matches!(header, Err(HeaderError::V2(_))), "{header:?}");

        let mut too_long = v2(1, 0x11, &V4_ADDRESSES, &[]);
        too_long[14..16].copy_from_slice(&u16::MAX.to_be_bytes());
        too_long.extend([0; 64]);
        let (header, rest) = read(&too_long).await;
        assert!(
            matches!(header, Err(HeaderError::V2TooLong(65535))),
            "{header:?}"
        );
        assert_eq!(
            rest.len(),
            too_long.len() - V2_FIXED_LEN,
            "nothing read past the fixed part"
        );

        let mut not_signature = v2(1, 0x11, &V4_ADDRESSES, &[]);
        not_signature[8] = b'X';
        let (header, _) = read(&not_signature).await;
        assert!(matches!(header, Err(HeaderError::Missing)), "{header:?}");
        let (header, _) = read(&v2(1, 0x11, &V4_ADDRESSES, &[])[..20]).await;
        assert!(matches!(header, Err(HeaderError::Closed)), "{header:?}");
    }

    #[test]
    fn the_first_bytes_of_either_version_look_like_a_header() {
        assert!(opens_like_header(b"PROXY TCP4 1.2.3.4"));
        assert!(opens_like_header(b"PRO"));
        assert!(opens_like_header(&V2_SIGNATURE[..5]));
        assert!(opens_like_header(&v2(1, 0x11, &V4_ADDRESSES, &[])));
        assert!(!opens_like_header(b""));
        assert!(!opens_like_header(b"USER alice\r\n"));
        assert!(!opens_like_header(b"\x16\x03\x01"));
        assert!(!opens_like_header(b"PROXYTCP4"));
    }
}
