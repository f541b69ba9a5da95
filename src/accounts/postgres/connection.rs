//! One connection to the accounts database: TLS as the URL asks, notifications handed to the
//! caller, every wait bounded.

use super::error::DatabaseError;
use crate::config::{DatabaseTls, UsersDatabase};
use futures_util::StreamExt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_postgres::config::SslMode;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{AsyncMessage, Client, Notification, Socket};

/// How long connecting (TCP, TLS, authentication) may take: long enough for a database across
/// a region, short enough that a login waiting on a reconnect is not held for long.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one query may take before the connection is considered broken. Ferry's queries
/// read a few thousand rows at most or touch one row.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(5);
/// TCP keepalive on the connection, so that a database that vanished without closing it
/// (a partition, a dead host) is noticed even while no query runs.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(15);

/// A live connection: the client for queries and the notifications the server sends on it
/// (`LISTEN`). The receiver ends when the connection does.
pub struct Connection {
    pub client: Client,
    pub notifications: mpsc::UnboundedReceiver<Notification>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection").finish_non_exhaustive()
    }
}

/// Connects to `database` (TLS verified against the system's roots or `sslrootcert` unless
/// `sslmode=disable`) within [`CONNECT_TIMEOUT`].
pub async fn connect(database: &UsersDatabase) -> Result<Connection, DatabaseError> {
    let mut config = tokio_postgres::Config::new();
    config
        .host(&database.host)
        .port(database.port)
        .user(&database.user)
        .dbname(&database.dbname)
        .application_name("ferry")
        .connect_timeout(CONNECT_TIMEOUT)
        .keepalives(true)
        .keepalives_idle(KEEPALIVE_IDLE);
    if let Some(password) = &database.password {
        config.password(password.expose());
    }
    match database.tls {
        DatabaseTls::Disable => {
            config.ssl_mode(SslMode::Disable);
            open(&config, tokio_postgres::NoTls, database).await
        }
        DatabaseTls::VerifyFull => {
            config.ssl_mode(SslMode::Require);
            let tls = tokio_postgres_rustls::MakeRustlsConnect::new(tls_config(database)?);
            open(&config, tls, database).await
        }
    }
}

/// Connects with `tls` and starts driving the connection.
async fn open<T>(
    config: &tokio_postgres::Config,
    tls: T,
    database: &UsersDatabase,
) -> Result<Connection, DatabaseError>
where
    T: MakeTlsConnect<Socket>,
    T::Stream: Send + 'static,
{
    let (client, connection) = bounded(database, "connect", CONNECT_TIMEOUT, config.connect(tls))
        .await?
        .map_err(|source| DatabaseError::Connect {
            database: database.to_string(),
            source,
        })?;
    Ok(Connection {
        client,
        notifications: drive(connection),
    })
}

/// Runs `future` for at most `timeout`; a late answer is [`DatabaseError::Timeout`].
pub async fn bounded<T>(
    database: &UsersDatabase,
    what: &'static str,
    timeout: Duration,
    future: impl Future<Output = T>,
) -> Result<T, DatabaseError> {
    tokio::time::timeout(timeout, future)
        .await
        .map_err(|_| DatabaseError::Timeout {
            database: database.to_string(),
            what,
            timeout,
        })
}

/// Runs one query future within [`QUERY_TIMEOUT`], naming `what` in its error.
pub async fn query<T>(
    database: &UsersDatabase,
    what: &'static str,
    future: impl Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, DatabaseError> {
    bounded(database, what, QUERY_TIMEOUT, future)
        .await?
        .map_err(|source| DatabaseError::Query {
            database: database.to_string(),
            what,
            source,
        })
}

/// Polls the connection in its own task (tokio-postgres does its I/O there), forwarding
/// notifications. The task ends, and the receiver with it, when the connection closes.
fn drive<S, T>(
    mut connection: tokio_postgres::Connection<S, T>,
) -> mpsc::UnboundedReceiver<Notification>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, receiver) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(Ok(message)) = messages.next().await {
            if let AsyncMessage::Notification(notification) = message {
                // A receiver that is gone still leaves a client to serve: keep polling.
                let _ = sender.send(notification);
            }
        }
    });
    receiver
}

/// rustls with the provider FTPS uses, trusting `sslrootcert` when given, else the system's
/// roots.
fn tls_config(database: &UsersDatabase) -> Result<rustls::ClientConfig, DatabaseError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let tls_error = |problem: String| DatabaseError::Tls {
        database: database.to_string(),
        problem,
    };
    let mut roots = rustls::RootCertStore::empty();
    match &database.root_cert {
        Some(path) => {
            let certificates = CertificateDer::pem_file_iter(path)
                .and_then(|certificates| certificates.collect::<Result<Vec<_>, _>>())
                .map_err(|error| tls_error(format!("sslrootcert {}: {error}", path.display())))?;
            let (added, _) = roots.add_parsable_certificates(certificates);
            if added == 0 {
                return Err(tls_error(format!(
                    "sslrootcert {} holds no usable certificate",
                    path.display()
                )));
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(native.certs);
            if roots.is_empty() {
                return Err(tls_error(
                    "no trusted root certificates found on this system; name a CA file with sslrootcert"
                        .to_owned(),
                ));
            }
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| tls_error(error.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
