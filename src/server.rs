//! Server wiring: the accept loop, session limits, per-connection libunftp servers, shutdown.

use crate::config::Config;

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("could not bind {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// Runs `ferry serve` until SIGINT/SIGTERM, then lets transfers finish within the grace period.
pub async fn run(_config: Config, _logger: slog::Logger) -> Result<(), ServerError> {
    todo!("server wiring")
}
