//! The admin HTTP listener: `/metrics` for Prometheus, `/health` and `/ready` for orchestrators.
//!
//! Off unless `admin_bind` is set. It is bound with the FTP listener and serves while the
//! accept loop runs (the server starts and stops it), so it still answers during a graceful
//! shutdown, when `/ready` says so. What it reports of the running server comes through
//! [`ServerProbe`], which the server implements. It has no authentication: nothing
//! it shows names a user, a path or a client address, but keep it on loopback or a private
//! network all the same.

use super::admin_listener::BoundedListener;
use super::metrics::{self, Metrics};
use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long stopping waits for requests in flight (a scrape takes milliseconds) before
/// cutting them off.
const STOP_TIMEOUT: Duration = Duration::from_secs(2);

/// What `/ready` reports for a check that passed.
const CHECK_OK: &str = "ok";

/// Why the admin listener could not start.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("could not bind the admin listener on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// What the endpoints ask of the running server, which implements it: the live state, never a
/// copy of it.
#[async_trait::async_trait]
pub trait ServerProbe: std::fmt::Debug + Send + Sync + 'static {
    /// Sessions open now (`ferry_sessions_active`).
    fn live_sessions(&self) -> usize;
    /// True once shutdown has begun: the FTP listener no longer accepts.
    fn shutting_down(&self) -> bool;
    /// Whether uploads can be stored now: Ok, or what is wrong (a real write: a probe file
    /// on disk, a probe object in a bucket).
    async fn check_storage(&self) -> Result<(), String>;
    /// Whether new logins can be decided: Ok, or what is wrong (the accounts database is
    /// unreachable). A users file, once loaded, always can.
    fn check_users(&self) -> Result<(), String> {
        Ok(())
    }
}

/// What the endpoints look at: all of it shared with the FTP side, none of it copied.
#[derive(Debug)]
pub struct Probes {
    pub metrics: Arc<Metrics>,
    pub server: Arc<dyn ServerProbe>,
}

/// A bound, not yet serving, admin listener.
#[derive(Debug)]
pub struct AdminServer {
    listener: TcpListener,
    probes: Arc<Probes>,
    logger: slog::Logger,
}

impl AdminServer {
    pub async fn bind(
        addr: SocketAddr,
        probes: Probes,
        logger: slog::Logger,
    ) -> Result<AdminServer, AdminError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| AdminError::Bind { addr, source })?;
        Ok(AdminServer {
            listener,
            probes: Arc::new(probes),
            logger,
        })
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Serves in a task of its own until [`RunningAdmin::stop`].
    pub fn spawn(self) -> RunningAdmin {
        let AdminServer {
            listener,
            probes,
            logger,
        } = self;
        let router = Router::new()
            .route("/metrics", get(metrics_page))
            .route("/health", get(health))
            .route("/ready", get(ready))
            .with_state(probes);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let addr = listener.local_addr().map(|a| a.to_string());
            slog::info!(logger, "admin listening"; "bind" => addr.unwrap_or_default());
            let serving = axum::serve(BoundedListener::new(listener), router)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                });
            if let Err(error) = serving.await {
                slog::error!(logger, "admin listener failed"; "error" => %error);
            }
        });
        RunningAdmin { stop, task }
    }
}

/// An admin listener serving in its own task.
#[derive(Debug)]
pub struct RunningAdmin {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl RunningAdmin {
    /// Stops accepting, lets requests in flight finish within [`STOP_TIMEOUT`], then returns.
    pub async fn stop(self) {
        let RunningAdmin { stop, mut task } = self;
        let _ = stop.send(());
        if tokio::time::timeout(STOP_TIMEOUT, &mut task).await.is_err() {
            task.abort();
        }
    }
}

async fn metrics_page(State(probes): State<Arc<Probes>>) -> Response {
    match probes.metrics.render(probes.server.live_sessions()) {
        Ok(text) => ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response(),
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response(),
    }
}

#[derive(Debug, Serialize)]
struct Health {
    status: &'static str,
}

/// The process is up and its runtime answers: nothing more, so that a restart is never
/// triggered by something a restart cannot fix (a full disk, a broken users file).
async fn health() -> Json<Health> {
    Json(Health { status: "ok" })
}

#[derive(Debug, Serialize)]
struct Readiness {
    /// "ready" or "not ready".
    status: &'static str,
    /// Each check: "ok", or what is wrong.
    checks: BTreeMap<&'static str, String>,
}

/// Whether Ferry can serve clients now: 200, or 503 with the checks that failed.
async fn ready(State(probes): State<Arc<Probes>>) -> (StatusCode, Json<Readiness>) {
    let root_check = probes.server.check_storage().await;
    let listener_check = if probes.server.shutting_down() {
        Err("shutting down: no new sessions".to_owned())
    } else {
        Ok(())
    };
    // The users file was loaded before the server was bound (a broken one stops `start`), and
    // a reload that fails keeps the previous users in force, so a server that is up has users;
    // accounts in a database are not ready while it is unreachable (logins get 421).
    let users_check = probes.server.check_users();
    let checks: BTreeMap<&'static str, String> = [
        ("root", root_check),
        ("users", users_check),
        ("listener", listener_check),
    ]
    .into_iter()
    .map(|(name, result)| (name, result.err().unwrap_or_else(|| CHECK_OK.to_owned())))
    .collect();
    let ready = checks.values().all(|result| result == CHECK_OK);
    let (status, word) = if ready {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    };
    (
        status,
        Json(Readiness {
            status: word,
            checks,
        }),
    )
}
