//! `ferry health [URL]`: one HTTP GET against the admin listener, healthy on 200.
//!
//! Container health checks run a command inside the image, and a slim image has no curl; this
//! is the few lines of HTTP that a probe needs. It speaks HTTP/1.0 over a plain `TcpStream`
//! (the server then closes the connection after one response, so the body runs to EOF and no
//! chunked decoding is needed), which is all the admin listener serves.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// What `ferry health` asks when given no URL: the admin listener on its customary port.
pub const DEFAULT_URL: &str = "http://127.0.0.1:9090/health";

/// Connect, send and receive each get this long: well inside Docker's default HEALTHCHECK
/// timeout (30 s) and the image's 5 s, so a hung server shows as unhealthy, not as a hung probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// The admin listener's answers are a few hundred bytes (`/metrics`: tens of KiB); a response
/// larger than this is not one of them.
const MAX_RESPONSE_BYTES: u64 = 4 * 1024 * 1024;

/// Port of an `http://` URL that names none (RFC 9110).
const DEFAULT_HTTP_PORT: u16 = 80;

/// The arguments of `ferry health`.
#[derive(Debug, Clone, clap::Args)]
pub struct HealthArgs {
    /// URL to GET; the exit status is 0 when it answers 200 OK, 1 otherwise
    #[arg(value_name = "URL", default_value = DEFAULT_URL)]
    pub url: String,
}

/// Why a probe failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("{url:?} is not a URL of the form http://HOST:PORT/PATH")]
    BadUrl { url: String },
    #[error("could not resolve {authority}: {source}")]
    Resolve {
        authority: String,
        source: io::Error,
    },
    #[error("could not connect to {authority}: {source}")]
    Connect {
        authority: String,
        source: io::Error,
    },
    #[error("{authority}: {source}")]
    Exchange {
        authority: String,
        source: io::Error,
    },
    #[error("{authority} did not answer with an HTTP response")]
    NotHttp { authority: String },
    #[error("{url} answered {status}: {body}")]
    Unhealthy {
        url: String,
        status: u16,
        body: String,
    },
}

/// A response: its status code and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: String,
}

/// GETs `url` and requires 200 OK; the body is what the server said (JSON from `/health`).
pub fn check(url: &str) -> Result<Response, ProbeError> {
    let response = get(url)?;
    if response.status != 200 {
        return Err(ProbeError::Unhealthy {
            url: url.to_owned(),
            status: response.status,
            body: response.body.trim_end().to_owned(),
        });
    }
    Ok(response)
}

/// GETs `url` (`http://HOST[:PORT][/PATH]`), whatever the status.
pub fn get(url: &str) -> Result<Response, ProbeError> {
    let (authority, path) = split_url(url).ok_or_else(|| ProbeError::BadUrl {
        url: url.to_owned(),
    })?;
    let exchange_error = |source| ProbeError::Exchange {
        authority: authority.to_owned(),
        source,
    };
    let mut stream = connect(authority)?;
    stream
        .set_read_timeout(Some(PROBE_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(PROBE_TIMEOUT)))
        .map_err(exchange_error)?;
    let request =
        format!("GET {path} HTTP/1.0\r\nHost: {authority}\r\nUser-Agent: ferry-health\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .map_err(exchange_error)?;
    let mut raw = Vec::new();
    stream
        .take(MAX_RESPONSE_BYTES)
        .read_to_end(&mut raw)
        .map_err(exchange_error)?;
    parse_response(&raw).ok_or_else(|| ProbeError::NotHttp {
        authority: authority.to_owned(),
    })
}

/// `(authority, path)` of an `http://` URL; None for anything else, including paths that would
/// not fit on a request line.
fn split_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("http://")?;
    let (authority, path) = match rest.find('/') {
        Some(slash) => rest.split_at(slash),
        None => (rest, "/"),
    };
    let clean = |text: &str| !text.chars().any(|c| c.is_whitespace() || c.is_control());
    (!authority.is_empty() && !authority.contains('@') && clean(authority) && clean(path))
        .then_some((authority, path))
}

/// Connects to the first address of `authority` (`HOST[:PORT]`) that accepts.
fn connect(authority: &str) -> Result<TcpStream, ProbeError> {
    let target = if has_port(authority) {
        authority.to_owned()
    } else {
        format!("{authority}:{DEFAULT_HTTP_PORT}")
    };
    let addrs: Vec<SocketAddr> = target
        .to_socket_addrs()
        .map_err(|source| ProbeError::Resolve {
            authority: authority.to_owned(),
            source,
        })?
        .collect();
    let mut last_error = io::Error::new(io::ErrorKind::NotFound, "no address");
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, PROBE_TIMEOUT) {
            Ok(stream) => return Ok(stream),
            Err(error) => last_error = error,
        }
    }
    Err(ProbeError::Connect {
        authority: authority.to_owned(),
        source: last_error,
    })
}

/// Whether `authority` ends in `:PORT` (`[::1]` alone does not).
fn has_port(authority: &str) -> bool {
    authority.rsplit_once(':').is_some_and(|(host, port)| {
        !port.is_empty()
            && port.bytes().all(|b| b.is_ascii_digit())
            && (!host.starts_with('[') || host.ends_with(']'))
    })
}

/// The status and body of a close-delimited HTTP/1.x response.
fn parse_response(raw: &[u8]) -> Option<Response> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status_line = head.lines().next()?;
    let mut words = status_line.split_whitespace();
    if !words.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let status = words.next()?.parse().ok()?;
    Some(Response {
        status,
        body: body.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_authority_and_path() {
        assert_eq!(
            split_url("http://127.0.0.1:9090/health"),
            Some(("127.0.0.1:9090", "/health"))
        );
        assert_eq!(split_url("http://[::1]:9090"), Some(("[::1]:9090", "/")));
        assert_eq!(
            split_url("http://localhost/ready?x=1"),
            Some(("localhost", "/ready?x=1"))
        );
        for bad in [
            "https://127.0.0.1/health",
            "127.0.0.1:9090/health",
            "http://",
            "http:///health",
            "http://user@host/",
            "http://host/a b",
            "http://host/a\r\nX: y",
        ] {
            assert_eq!(split_url(bad), None, "{bad:?} accepted");
        }
    }

    #[test]
    fn port_defaults_to_80_only_when_absent() {
        for with_port in ["127.0.0.1:9090", "[::1]:9090", "localhost:1"] {
            assert!(has_port(with_port), "{with_port}");
        }
        for without in ["127.0.0.1", "[::1]", "localhost", "host:"] {
            assert!(!has_port(without), "{without}");
        }
    }

    #[test]
    fn responses_give_status_and_body() {
        assert_eq!(
            parse_response(b"HTTP/1.0 503 Service Unavailable\r\nA: b\r\n\r\n{\"status\":\"x\"}"),
            Some(Response {
                status: 503,
                body: "{\"status\":\"x\"}".to_owned()
            })
        );
        assert_eq!(parse_response(b"SSH-2.0-OpenSSH\r\n"), None);
        assert_eq!(parse_response(b"HTTP/1.1 abc\r\n\r\n"), None);
    }

    #[test]
    fn closed_port_is_a_connect_error() {
        // Bind then drop: the port is free and nothing listens on it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("ephemeral port")
            .port();
        let error = check(&format!("http://127.0.0.1:{port}/health")).expect_err("refused");
        assert!(matches!(error, ProbeError::Connect { .. }), "{error}");
    }
}
