//! The server a client session talks to, parsed from `ftp://[user@]host[:port][/dir]` or
//! `ftps://...` (explicit TLS: AUTH TLS on the ordinary port).

use percent_encoding::percent_decode_str;
use std::fmt;

/// The FTP control port (RFC 959); explicit FTPS uses the same port.
pub const FTP_PORT: u16 = 21;

/// Who logs in when the URL names nobody (RFC 1738 section 3.2.1).
pub const ANONYMOUS_USER: &str = "anonymous";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `ftps://`: AUTH TLS before logging in, and TLS on every data connection.
    pub secure: bool,
    pub user: String,
    /// A password written into the URL; it works, but shows up in shell history and `ps`.
    pub password: Option<String>,
    /// Host name or IP address, without the brackets of an IPv6 literal: what TLS checks the
    /// certificate against.
    pub host: String,
    pub port: u16,
    /// The directory to change to after logging in: relative to the login directory, or
    /// absolute when the URL path starts with `%2F` (RFC 1738).
    pub dir: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TargetError {
    #[error("{url}: not a URL ({source}); expected ftp://[user@]host[:port][/dir]")]
    Syntax {
        url: String,
        source: url::ParseError,
    },
    #[error("{0}: unsupported scheme; use ftp:// or ftps:// (explicit TLS)")]
    Scheme(String),
    #[error("{0}: no host")]
    NoHost(String),
    #[error("{0}: a URL for ferry client has no query (?) or fragment (#)")]
    Extra(String),
    #[error("{0}: the user name or password is not valid UTF-8 after percent-decoding")]
    Encoding(String),
}

impl Target {
    pub fn parse(text: &str) -> Result<Target, TargetError> {
        let url = url::Url::parse(text).map_err(|source| TargetError::Syntax {
            url: text.to_owned(),
            source,
        })?;
        let secure = match url.scheme() {
            "ftp" => false,
            "ftps" => true,
            _ => return Err(TargetError::Scheme(text.to_owned())),
        };
        if url.query().is_some() || url.fragment().is_some() {
            return Err(TargetError::Extra(text.to_owned()));
        }
        let host = match url.host() {
            Some(url::Host::Domain(name)) if !name.is_empty() => name.to_owned(),
            Some(url::Host::Ipv4(address)) => address.to_string(),
            Some(url::Host::Ipv6(address)) => address.to_string(),
            _ => return Err(TargetError::NoHost(text.to_owned())),
        };
        let decode = |part: &str| {
            percent_decode_str(part)
                .decode_utf8()
                .map(|decoded| decoded.into_owned())
                .map_err(|_| TargetError::Encoding(text.to_owned()))
        };
        let user = match url.username() {
            "" => ANONYMOUS_USER.to_owned(),
            name => decode(name)?,
        };
        let password = url.password().map(decode).transpose()?;
        let path = decode(url.path())?;
        // The first slash separates the path from the host; what follows is relative.
        let dir = path.strip_prefix('/').unwrap_or(&path);
        let dir = match dir.trim_end_matches('/') {
            "" if dir.starts_with('/') => Some("/".to_owned()),
            "" => None,
            trimmed => Some(trimmed.to_owned()),
        };
        Ok(Target {
            secure,
            user,
            password,
            host,
            port: url.port().unwrap_or(FTP_PORT),
            dir,
        })
    }

    pub fn is_anonymous(&self) -> bool {
        self.user == ANONYMOUS_USER
    }
}

/// `user@host:port`, never the password.
impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "{}@[{}]:{}", self.user, self.host, self.port)
        } else {
            write!(f, "{}@{}:{}", self.user, self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_url_gives_every_part() {
        let target = Target::parse("ftp://alice@127.0.0.1:2121/reports/2024/").expect("parses");
        assert_eq!(
            target,
            Target {
                secure: false,
                user: "alice".into(),
                password: None,
                host: "127.0.0.1".into(),
                port: 2121,
                dir: Some("reports/2024".into()),
            }
        );
        assert_eq!(target.to_string(), "alice@127.0.0.1:2121");
    }

    #[test]
    fn defaults_are_port_21_anonymous_and_the_login_directory() {
        let target = Target::parse("ftp://files.example.org").expect("parses");
        assert_eq!(target.port, FTP_PORT);
        assert!(target.is_anonymous());
        assert_eq!(target.dir, None);
        assert!(!target.secure);
    }

    #[test]
    fn ftps_is_explicit_tls_on_port_21() {
        let target = Target::parse("ftps://bob@nas.local/").expect("parses");
        assert!(target.secure);
        assert_eq!(target.port, FTP_PORT);
        assert_eq!(target.host, "nas.local");
        assert_eq!(target.dir, None);
    }

    #[test]
    fn ipv6_hosts_lose_their_brackets_for_tls_but_keep_them_for_display() {
        let target = Target::parse("ftps://carol@[::1]:990/").expect("parses");
        assert_eq!(target.host, "::1");
        assert_eq!(target.to_string(), "carol@[::1]:990");
    }

    #[test]
    fn percent_escapes_are_decoded_in_user_password_and_path() {
        let target =
            Target::parse("ftp://dave%40corp:p%3Ass@host/my%20files/%2Fx").expect("parses");
        assert_eq!(target.user, "dave@corp");
        assert_eq!(target.password.as_deref(), Some("p:ss"));
        assert_eq!(target.dir.as_deref(), Some("my files//x"));
    }

    #[test]
    fn an_encoded_leading_slash_makes_the_directory_absolute() {
        let target = Target::parse("ftp://host/%2Fvar/ftp").expect("parses");
        assert_eq!(target.dir.as_deref(), Some("/var/ftp"));
        let root = Target::parse("ftp://host/%2F").expect("parses");
        assert_eq!(root.dir.as_deref(), Some("/"));
    }

    #[test]
    fn other_schemes_queries_and_garbage_are_refused() {
        assert!(matches!(
            Target::parse("sftp://host/"),
            Err(TargetError::Scheme(_))
        ));
        assert!(matches!(
            Target::parse("ftp://host/?x=1"),
            Err(TargetError::Extra(_))
        ));
        assert!(matches!(
            Target::parse("127.0.0.1:21"),
            Err(TargetError::Syntax { .. }) | Err(TargetError::Scheme(_))
        ));
        assert!(matches!(
            Target::parse("ftps:///dir"),
            Err(TargetError::NoHost(_))
        ));
        assert!(matches!(
            Target::parse("ftp://"),
            Err(TargetError::Syntax { .. })
        ));
    }
}
