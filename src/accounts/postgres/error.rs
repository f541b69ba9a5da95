//! Why the accounts database could not be used.

use std::time::Duration;

/// What went wrong talking to PostgreSQL. Each message names the database (without password).
#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    #[error("could not connect to {database}: {}", with_causes(.source))]
    Connect {
        database: String,
        source: tokio_postgres::Error,
    },
    #[error("could not set up TLS to {database}: {problem}")]
    Tls { database: String, problem: String },
    #[error("{database}: {what}: {}", with_causes(.source))]
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

/// An error and its causes, `a: b: c`: tokio-postgres says "error performing TLS handshake"
/// and keeps why (an unknown issuer, a wrong name) in its source.
fn with_causes(error: &tokio_postgres::Error) -> String {
    let mut text = error.to_string();
    let mut cause = std::error::Error::source(error);
    while let Some(next) = cause {
        let next_text = next.to_string();
        if !text.ends_with(&next_text) {
            text = format!("{text}: {next_text}");
        }
        cause = next.source();
    }
    text
}
