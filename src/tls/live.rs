//! The live FTPS state: the current rustls config, what libunftp is told per session, reload.
//!
//! The rustls config is built once at startup and again on reload, never per connection.
//! Ferry builds one libunftp server per connection (in `server`), and each takes the
//! config current at its accept: a reload (SIGHUP, or a change to the certificate, key or CA
//! file) reaches every new session while established sessions keep the config they started
//! with, data connections included, so none is dropped.

use super::{TlsError, TlsMode, TlsRequiredFor, TlsSettings, build_server_config};
use crate::reload::{FileVersion, ReloadCounters};
use libunftp::ServerBuilder;
use libunftp::options::FtpsRequired;
use rustls::ServerConfig;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;
use unftp_core::auth::UserDetail;
use unftp_core::storage::{Metadata, StorageBackend};

/// How often the reloader looks at the certificate, key and CA files (see
/// [`crate::reload::FILE_POLL_INTERVAL`]).
pub const TLS_FILES_POLL_INTERVAL: Duration = crate::reload::FILE_POLL_INTERVAL;

/// What libunftp is told for a channel in `mode`.
pub(super) fn requirement(mode: TlsMode, required_for: TlsRequiredFor) -> FtpsRequired {
    match (mode, required_for) {
        (TlsMode::Required, TlsRequiredFor::All) => FtpsRequired::All,
        (TlsMode::Required, TlsRequiredFor::Accounts) => FtpsRequired::Accounts,
        (TlsMode::Off | TlsMode::Optional, _) => FtpsRequired::None,
    }
}

/// The live FTPS state: the settings and the current rustls config, reloadable.
pub struct Ftps {
    settings: TlsSettings,
    /// The config new sessions get. `std` lock: held only to clone or replace the `Arc`.
    current: RwLock<Arc<ServerConfig>>,
    /// The versions of the watched files last read, so each change is read once.
    last_seen: Mutex<Vec<Option<FileVersion>>>,
    /// Reloads so far; lets tests await a reload instead of sleeping.
    reloads: ReloadCounters,
    logger: slog::Logger,
}

impl fmt::Debug for Ftps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ftps")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Ftps {
    /// Builds the TLS config; None when `tls = off`.
    pub fn load(
        settings: &TlsSettings,
        logger: &slog::Logger,
    ) -> Result<Option<Arc<Ftps>>, TlsError> {
        if settings.mode == TlsMode::Off {
            return Ok(None);
        }
        let last_seen = file_versions(settings);
        let config = build_server_config(settings)?;
        slog::info!(logger, "FTPS enabled";
            "tls" => ?settings.mode, "tls_data" => ?settings.effective_data_mode(),
            "required_for" => ?settings.required_for, "min_version" => ?settings.min_version,
            "client_auth" => ?settings.client_auth,
            "cert" => settings.cert_file.as_ref().map(|path| path.display().to_string()));
        Ok(Some(Arc::new(Ftps {
            settings: settings.clone(),
            current: RwLock::new(config),
            last_seen: Mutex::new(last_seen),
            reloads: ReloadCounters::default(),
            logger: logger.clone(),
        })))
    }

    /// The config a session starting now gets.
    pub fn current(&self) -> Arc<ServerConfig> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Gives a session's libunftp server the current TLS config and the TLS requirements.
    pub fn configure<S, U>(&self, builder: ServerBuilder<S, U>) -> ServerBuilder<S, U>
    where
        S: StorageBackend<U> + 'static,
        S::Metadata: Metadata,
        U: UserDetail + 'static,
    {
        let settings = &self.settings;
        builder
            .ftps_manual::<PathBuf>(self.current())
            .ftps_required(
                requirement(settings.mode, settings.required_for),
                requirement(settings.effective_data_mode(), settings.required_for),
            )
    }

    /// Re-reads the certificate, key and CA files. On error the previous config stays in
    /// force, a warning says why, and the error is returned.
    pub fn reload(&self) -> Result<(), TlsError> {
        // Recorded before reading: a change during the read is seen by the next poll.
        *self
            .last_seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = file_versions(&self.settings);
        match build_server_config(&self.settings) {
            Ok(config) => {
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = config;
                self.reloads.record_success();
                slog::info!(self.logger, "TLS certificate reloaded; new sessions use it";
                    "cert" => self.settings.cert_file.as_ref().map(|path| path.display().to_string()));
                Ok(())
            }
            Err(error) => {
                self.reloads.record_failure();
                slog::warn!(self.logger, "TLS certificate not reloaded; keeping the previous one";
                    "key" => error.key(), "error" => %error);
                Err(error)
            }
        }
    }

    /// Reloads on SIGHUP and whenever a watched file changes (checked every
    /// [`TLS_FILES_POLL_INTERVAL`]). The SIGHUP handler is installed before this returns; the
    /// task ends once `self` is dropped.
    pub fn spawn_reloader(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        crate::reload::spawn_reloader(
            self,
            "the certificate",
            TLS_FILES_POLL_INTERVAL,
            &self.logger,
            Ftps::files_changed,
            |ftps| {
                // Errors are logged by `reload`; the previous config stays in force.
                let _ = ftps.reload();
            },
        )
    }

    fn files_changed(&self) -> bool {
        *self
            .last_seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            != file_versions(&self.settings)
    }

    /// Reloads so far, to await one.
    pub fn reloads(&self) -> &ReloadCounters {
        &self.reloads
    }
}

fn file_versions(settings: &TlsSettings) -> Vec<Option<FileVersion>> {
    settings
        .watched_files()
        .iter()
        .map(|path| FileVersion::of(path))
        .collect()
}
