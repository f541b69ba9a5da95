//! The client's errors: what the server refused (reply code and text), what broke (control
//! connection, data connection, TLS), and what the user got wrong.

use std::io;
use std::path::PathBuf;
use suppaftp::FtpError;
use suppaftp::types::Response;

/// Reply code a server sends when it is about to close the control connection (RFC 959).
const REPLY_SERVICE_CLOSING: u32 = 421;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server refused a command: its reply, e.g. `550 No such file or directory`.
    #[error("{code} {text}")]
    Reply { code: u32, text: String },
    /// The control connection is gone (closed, reset, timed out or desynchronised); the
    /// session must be reopened.
    #[error("connection lost: {0}")]
    ConnectionLost(String),
    #[error("could not connect to {addr}: {source}")]
    Connect { addr: String, source: io::Error },
    #[error("TLS: {0}")]
    Tls(String),
    #[error("data connection: {0}")]
    Data(io::Error),
    #[error("{}: {source}", path.display())]
    Local { path: PathBuf, source: io::Error },
    /// A reply that does not say what RFC 959 says it should.
    #[error("unexpected reply from the server: {0}")]
    Protocol(String),
    #[error("transfer incomplete: {received} of {expected} bytes")]
    Incomplete { received: u64, expected: u64 },
    /// Ctrl-C during a transfer.
    #[error("interrupted")]
    Interrupted,
    /// A command the client cannot run as given (bad arguments, nothing to resume...).
    #[error("{0}")]
    Usage(String),
}

impl ClientError {
    pub fn local(path: impl Into<PathBuf>, source: io::Error) -> Self {
        ClientError::Local {
            path: path.into(),
            source,
        }
    }

    /// True when the session can no longer be used and has to be reopened.
    pub fn ends_session(&self) -> bool {
        matches!(
            self,
            ClientError::ConnectionLost(_) | ClientError::Interrupted | ClientError::Tls(_)
        )
    }

    /// The reply code, when the server refused.
    pub fn reply_code(&self) -> Option<u32> {
        match self {
            ClientError::Reply { code, .. } => Some(*code),
            _ => None,
        }
    }
}

impl From<FtpError> for ClientError {
    fn from(error: FtpError) -> Self {
        match error {
            FtpError::UnexpectedResponse(response) => {
                let (code, text) = reply_parts(&response);
                if code == REPLY_SERVICE_CLOSING {
                    ClientError::ConnectionLost(format!("{code} {text}"))
                } else {
                    ClientError::Reply { code, text }
                }
            }
            // rustls reports a failed handshake (an untrusted certificate...) as an I/O error.
            FtpError::ConnectionError(source)
                if source
                    .get_ref()
                    .is_some_and(|inner| inner.is::<suppaftp::rustls::Error>()) =>
            {
                ClientError::Tls(source.to_string())
            }
            // Any other I/O error on the control connection leaves it in an unknown state.
            FtpError::ConnectionError(source) => ClientError::ConnectionLost(source.to_string()),
            // suppaftp reports a control connection closed by the server as a short reply.
            FtpError::BadResponse => {
                ClientError::ConnectionLost("the server closed the connection".into())
            }
            FtpError::SecureError(message) => ClientError::Tls(message),
            other => ClientError::Protocol(other.to_string()),
        }
    }
}

/// The code and text of a reply, read from its own first line: suppaftp maps codes it does not
/// know to a placeholder, and multi-line replies repeat the code on every line.
pub fn reply_parts(response: &Response) -> (u32, String) {
    let body = String::from_utf8_lossy(&response.body);
    let code = body
        .get(..3)
        .and_then(|digits| digits.parse().ok())
        .unwrap_or_else(|| response.status.code());
    let text = reply_text(&body);
    (code, text)
}

/// The human part of a reply: every line without its `NNN-`/`NNN ` prefix, joined by spaces.
pub fn reply_text(body: &str) -> String {
    body.lines()
        .map(|line| {
            let line = line.trim_end();
            let prefixed = line.len() >= 4
                && line.as_bytes()[..3].iter().all(u8::is_ascii_digit)
                && matches!(line.as_bytes()[3], b' ' | b'-');
            if prefixed { &line[4..] } else { line }.trim()
        })
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use suppaftp::Status;

    fn response(body: &str) -> FtpError {
        FtpError::UnexpectedResponse(Response::new(Status::from(0), body.as_bytes().to_vec()))
    }

    #[test]
    fn a_refusal_keeps_the_servers_code_and_text() {
        let error = ClientError::from(response("550 No such file or directory\r\n"));
        assert_eq!(error.to_string(), "550 No such file or directory");
        assert_eq!(error.reply_code(), Some(550));
        assert!(!error.ends_session());
    }

    #[test]
    fn a_multi_line_refusal_reads_as_one_line() {
        let error = ClientError::from(response("530-Login incorrect.\r\n530 Bye.\r\n"));
        assert_eq!(error.to_string(), "530 Login incorrect. Bye.");
    }

    #[test]
    fn a_failed_tls_handshake_is_a_tls_error() {
        let certificate = suppaftp::rustls::Error::InvalidCertificate(
            suppaftp::rustls::CertificateError::UnknownIssuer,
        );
        let io = io::Error::new(io::ErrorKind::InvalidData, certificate);
        let error = ClientError::from(FtpError::ConnectionError(io));
        assert!(matches!(error, ClientError::Tls(_)), "{error:?}");
        assert!(error.to_string().contains("certificate"), "{error}");
    }

    #[test]
    fn reply_421_and_a_closed_socket_end_the_session() {
        assert!(ClientError::from(response("421 Idle timeout\r\n")).ends_session());
        assert!(ClientError::from(FtpError::BadResponse).ends_session());
        let reset = io::Error::from(io::ErrorKind::ConnectionReset);
        assert!(ClientError::from(FtpError::ConnectionError(reset)).ends_session());
    }
}
