//! Why the accounts database could not be used.

use std::time::Duration;

/// What went wrong talking to PostgreSQL. Each message names the database (without password).
#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    #[error("could not connect to {database}: {source}")]
    Connect {
        database: String,
        source: tokio_postgres::Error,
    },
    #[error("could not set up TLS to {database}: {problem}")]
    Tls { database: String, problem: String },
    #[error("{database}: {what}: {source}")]
    Query {
        database: String,
        what: &'static str,
        source: tokio_postgres::Error,
    },
    #[error("{database}: {what}: no answer within {}s", timeout.as_secs())]
    Timeout {
        database: String,
        what: &'static str,
        timeout: Duration,
    },
    #[error(
        "{database}: the accounts schema is at version {found}, newer than this Ferry knows ({known}); upgrade Ferry"
    )]
    SchemaTooNew {
        database: String,
        found: i32,
        known: i32,
    },
    #[error("{database}: not connected")]
    NotConnected { database: String },
    #[error("{database}: the connection closed")]
    ConnectionClosed { database: String },
}
