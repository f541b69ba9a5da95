//! Accounts in PostgreSQL: `users = "postgres://USER@HOST[:PORT]/DB[?sslmode=…]"` and the
//! database password (`users_password_file`, else `PGPASSWORD`).

use std::fmt;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// PostgreSQL's own port.
const DEFAULT_PORT: u16 = 5432;
/// libpq's variable for the password; read when `users_password_file` is not set.
pub const PASSWORD_ENV_VAR: &str = "PGPASSWORD";

/// How the connection to the database is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseTls {
    /// Plaintext (`sslmode=disable`); the default for a loopback host only.
    Disable,
    /// TLS, the server's certificate verified against the system's roots (or `sslrootcert`)
    /// and its name against the host (`sslmode=require` or `verify-full`; Ferry never accepts
    /// an unverified certificate, which libpq's `require` would). The default for any host but
    /// loopback.
    VerifyFull,
}

/// The database password: never printed, not even by `{:?}`.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabasePassword(String);

impl DatabasePassword {
    pub fn new(password: String) -> Self {
        DatabasePassword(password)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for DatabasePassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Where the accounts are when `users` is a `postgres://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsersDatabase {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub dbname: String,
    pub tls: DatabaseTls,
    /// `sslrootcert=FILE`: PEM certificates to trust instead of the system's roots (a private
    /// CA).
    pub root_cert: Option<PathBuf>,
    /// From `users_password_file` or `PGPASSWORD`; None: the server asks for none (trust,
    /// peer or certificate authentication).
    pub password: Option<DatabasePassword>,
}

impl UsersDatabase {
    /// Parses `postgres://USER@HOST[:PORT]/DB[?sslmode=disable|require|verify-full
    /// &sslrootcert=FILE]`; None when `text` is not a `postgres://` (or `postgresql://`) URL.
    pub fn parse(text: &str) -> Option<Result<UsersDatabase, String>> {
        let lower = text.get(..13).unwrap_or(text).to_ascii_lowercase();
        if !lower.starts_with("postgres://") && !lower.starts_with("postgresql://") {
            return None;
        }
        Some(Self::parse_url(text))
    }

    fn parse_url(text: &str) -> Result<UsersDatabase, String> {
        let expected =
            "expected postgres://USER@HOST[:PORT]/DB[?sslmode=disable|require|verify-full]";
        let url = url::Url::parse(text).map_err(|error| format!("{expected}: {error}"))?;
        if url.password().is_some() {
            return Err(format!(
                "the URL holds a password, which would show in logs, `ps` and the config file; \
                 give it in {PASSWORD_ENV_VAR} or the file named by users_password_file"
            ));
        }
        let decode = |part: &str| {
            percent_encoding::percent_decode_str(part)
                .decode_utf8()
                .map(|decoded| decoded.into_owned())
                .map_err(|_| format!("{expected}: {part:?} is not UTF-8"))
        };
        let user = decode(url.username())?;
        if user.is_empty() {
            return Err(format!("{expected}: the user name is missing"));
        }
        let host = match url.host() {
            Some(url::Host::Domain(name)) => name.to_owned(),
            Some(url::Host::Ipv4(address)) => address.to_string(),
            Some(url::Host::Ipv6(address)) => address.to_string(),
            None => return Err(format!("{expected}: the host is missing")),
        };
        let dbname = decode(url.path().trim_start_matches('/'))?;
        if dbname.is_empty() || dbname.contains('/') {
            return Err(format!("{expected}: name one database after the host"));
        }
        let mut tls = None;
        let mut root_cert = None;
        for (name, value) in url.query_pairs() {
            match name.as_ref() {
                "sslmode" => {
                    tls = Some(match value.as_ref() {
                        "disable" => DatabaseTls::Disable,
                        "require" | "verify-full" => DatabaseTls::VerifyFull,
                        other => {
                            return Err(format!(
                                "sslmode {other:?} is not supported: use disable, require or \
                                 verify-full (Ferry always verifies the server's certificate)"
                            ));
                        }
                    })
                }
                "sslrootcert" if !value.is_empty() => {
                    root_cert = Some(PathBuf::from(value.as_ref()))
                }
                other => {
                    return Err(format!(
                        "unknown URL parameter {other:?}; known: sslmode, sslrootcert"
                    ));
                }
            }
        }
        let loopback =
            host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
        let tls = tls.unwrap_or(if loopback {
            DatabaseTls::Disable
        } else {
            DatabaseTls::VerifyFull
        });
        Ok(UsersDatabase {
            host,
            port: url.port().unwrap_or(DEFAULT_PORT),
            user,
            dbname,
            tls,
            root_cert,
            password: None,
        })
    }

    /// Sets the password from `password_file` when given, else from `PGPASSWORD` (looked up
    /// through `env`). One trailing line break of the file is not part of the password.
    pub fn with_password(
        mut self,
        password_file: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<UsersDatabase, io::Error> {
        self.password = match password_file {
            Some(path) => {
                let text = std::fs::read_to_string(path)?;
                let line = text.strip_suffix('\n').unwrap_or(&text);
                Some(DatabasePassword(
                    line.strip_suffix('\r').unwrap_or(line).to_owned(),
                ))
            }
            None => env(PASSWORD_ENV_VAR)
                .filter(|password| !password.is_empty())
                .map(DatabasePassword),
        };
        Ok(self)
    }
}

impl fmt::Display for UsersDatabase {
    /// The URL without password, for logs and messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = match self.host.parse::<IpAddr>() {
            Ok(IpAddr::V6(address)) => format!("[{address}]"),
            _ => self.host.clone(),
        };
        write!(
            f,
            "postgres://{}@{host}:{}/{}",
            self.user, self.port, self.dbname
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<UsersDatabase, String> {
        UsersDatabase::parse(text).expect("a postgres URL")
    }

    #[test]
    fn urls_parse_with_defaults_by_host() {
        let local = parse("postgres://ferry@127.0.0.1/accounts").expect("valid");
        assert_eq!(
            (
                local.host.as_str(),
                local.port,
                local.user.as_str(),
                local.dbname.as_str()
            ),
            ("127.0.0.1", 5432, "ferry", "accounts")
        );
        assert_eq!(
            local.tls,
            DatabaseTls::Disable,
            "loopback defaults to plaintext"
        );
        let remote = parse("postgresql://ferry@db.example.com:6432/accounts").expect("valid");
        assert_eq!(remote.port, 6432);
        assert_eq!(
            remote.tls,
            DatabaseTls::VerifyFull,
            "others default to verified TLS"
        );
        let required =
            parse("postgres://ferry@localhost/a?sslmode=require&sslrootcert=/etc/ca.pem")
                .expect("valid");
        assert_eq!(required.tls, DatabaseTls::VerifyFull);
        assert_eq!(required.root_cert, Some(PathBuf::from("/etc/ca.pem")));
        assert_eq!(required.to_string(), "postgres://ferry@localhost:5432/a");
        assert!(UsersDatabase::parse("config/users.toml").is_none());
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        for (url, problem) in [
            ("postgres://ferry:secret@db/a", "holds a password"),
            ("postgres://db/a", "user name is missing"),
            ("postgres://ferry@db/", "name one database"),
            (
                "postgres://ferry@db/a?sslmode=prefer",
                "sslmode \"prefer\" is not supported",
            ),
            ("postgres://ferry@db/a?timeout=3", "unknown URL parameter"),
        ] {
            let message = parse(url).expect_err(url);
            assert!(message.contains(problem), "{url}: {message}");
            assert!(!message.contains("secret"), "{message}");
        }
    }

    #[test]
    fn password_comes_from_the_file_before_the_environment() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("pw");
        std::fs::write(&file, "from file\n").expect("write");
        let env = |name: &str| (name == PASSWORD_ENV_VAR).then(|| "from env".to_owned());
        let database = parse("postgres://ferry@127.0.0.1/a").expect("valid");
        let with_file = database
            .clone()
            .with_password(Some(&file), &env)
            .expect("read");
        assert_eq!(
            with_file.password.as_ref().map(DatabasePassword::expose),
            Some("from file")
        );
        assert!(!format!("{with_file:?}").contains("from file"));
        let with_env = database.clone().with_password(None, &env).expect("env");
        assert_eq!(
            with_env.password.as_ref().map(DatabasePassword::expose),
            Some("from env")
        );
        assert!(
            database
                .with_password(Some(&dir.path().join("absent")), &env)
                .is_err()
        );
    }
}
