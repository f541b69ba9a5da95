//! `ferry user rescan NAME`: measures what a home holds and stores it as the account's usage,
//! with the settings, accounts and store `ferry serve` would use. A running server reads the
//! new figure at its next quota check (uploads of that account in progress then still count).

use super::accept::{ServerError, open_accounts, usage_ledger};
use crate::accounts::usage::Usage;
use crate::config::Config;
use crate::storage::s3::{Bucket, S3Store};
use crate::storage::{HomeUsage, LocalStore, SessionStore, Store, StoreError};

/// Why a rescan could not be done.
#[derive(Debug, thiserror::Error)]
pub enum RescanError {
    #[error(transparent)]
    Server(#[from] ServerError),
    #[error("no user `{0}` in the accounts")]
    NoSuchUser(String),
    #[error("could not open the home of `{user}`: {source}")]
    Home {
        user: String,
        source: std::io::Error,
    },
    #[error("could not measure the home of `{user}`: {source}")]
    Measure { user: String, source: StoreError },
    #[error("could not store the usage of `{user}`: {source}")]
    Store {
        user: String,
        source: crate::accounts::usage::UsageError,
    },
    #[error("could not start the async runtime: {0}")]
    Runtime(std::io::Error),
}

/// `ferry user rescan`: [`rescan`] on a runtime of its own (the CLI has none), reported on
/// stdout, or the error on stderr.
pub fn run(config: &Config, user: &str) -> std::process::ExitCode {
    let rescanned = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(RescanError::Runtime)
        .and_then(|runtime| runtime.block_on(rescan(config, user)));
    match rescanned {
        Ok((usage, location)) => {
            println!(
                "{user}: {} files, {} bytes (stored in {location})",
                usage.files, usage.bytes
            );
            std::process::ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("ferry user rescan: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Measures `user`'s home and stores the result; returns it and where it was stored.
pub async fn rescan(config: &Config, user: &str) -> Result<(Usage, String), RescanError> {
    let logger = slog::Logger::root(slog::Discard, slog::o!());
    let directory = open_accounts(config, &logger).await?;
    let record = directory
        .users()
        .get(user)
        .cloned()
        .ok_or_else(|| RescanError::NoSuchUser(user.to_owned()))?;
    let mut store = match &config.bucket {
        Some(root) => {
            let metrics = crate::observe::metrics::Metrics::new().object_store();
            let bucket = Bucket::connect(root, config, metrics, logger.clone())
                .await
                .map_err(ServerError::from)?;
            SessionStore::Bucket(S3Store::new(bucket, config.data_timeout))
        }
        None => SessionStore::Local(LocalStore::new(config.data_timeout)),
    };
    store
        .enter(&directory.root().join(&record.home))
        .map_err(|source| RescanError::Home {
            user: user.to_owned(),
            source,
        })?;
    let HomeUsage { bytes, files } =
        store
            .measure()
            .await
            .map_err(|source| RescanError::Measure {
                user: user.to_owned(),
                source,
            })?;
    let usage = Usage { bytes, files };
    let ledger = usage_ledger(config, &directory);
    ledger
        .record(user, usage)
        .await
        .map_err(|source| RescanError::Store {
            user: user.to_owned(),
            source,
        })?;
    Ok((usage, ledger.location()))
}
