//! The admin HTTP listener: `/metrics` for Prometheus, `/health` and `/ready` for orchestrators.
//!
//! Off unless `admin_bind` is set. It is bound with the FTP listener and serves while the
//! accept loop runs ([`crate::server::FerryServer::serve`] starts and stops it), so it still
//! answers during a graceful shutdown, when `/ready` says so. It has no authentication: nothing
//! it shows names a user, a path or a client address, but keep it on loopback or a private
//! network all the same.

use crate::auth::UserDirectory;
use crate::limits::SessionLimiter;
use crate::metrics::{self, Metrics};
use crate::paths::UPLOAD_TEMP_PREFIX;
use crate::session::ServerState;
use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
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

/// What the endpoints look at: all of it shared with the FTP side, none of it copied.
#[derive(Debug)]
pub struct Probes {
    pub metrics: Arc<Metrics>,
    /// Counts live sessions (`ferry_sessions_active`).
    pub limiter: Arc<SessionLimiter>,
    /// Says when shutdown has begun: the FTP listener no longer accepts.
    pub state: Arc<ServerState>,
    /// The loaded users; its root is the directory that must be writable.
    pub users: Arc<UserDirectory>,
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
            let serving = axum::serve(listener, router).with_graceful_shutdown(async {
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
    match probes.metrics.render(probes.limiter.live_sessions()) {
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
    let root = probes.users.root().to_owned();
    let root_check = tokio::task::spawn_blocking(move || check_root_writable(&root))
        .await
        .unwrap_or_else(|error| Err(format!("check did not finish: {error}")));
    let listener_check = if probes.state.is_shutting_down() {
        Err("shutting down: no new sessions".to_owned())
    } else {
        Ok(())
    };
    // The users file was loaded before the server was bound (a broken one stops `start`), and
    // a reload that fails keeps the previous users in force, so a server that is up has users.
    let users_check = Ok(());
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

/// Distinguishes the probe files of concurrent checks.
static PROBE_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Creates and removes a file in `root`. Permission bits do not stop root (the usual user in a
/// container), so asking the kernel (`access(2)`) would not do: only a real write shows a
/// read-only mount, a missing root or a root replaced by a file. The name carries the upload
/// temporary prefix, so clients never see it and a crash's leftover is removed at the next start.
fn check_root_writable(root: &Path) -> Result<(), String> {
    let probe = root.join(format!(
        "{UPLOAD_TEMP_PREFIX}ready-{}-{}",
        std::process::id(),
        PROBE_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .and_then(|_| std::fs::remove_file(&probe))
        .map_err(|error| format!("root {} is not writable: {error}", root.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writable_root_passes_and_leaves_nothing_behind() {
        let dir = tempfile::tempdir().expect("temp dir");
        assert_eq!(check_root_writable(dir.path()), Ok(()));
        assert_eq!(
            std::fs::read_dir(dir.path()).expect("read dir").count(),
            0,
            "probe file removed"
        );
    }

    #[test]
    fn missing_root_or_file_in_its_place_fails_with_the_reason() {
        let dir = tempfile::tempdir().expect("temp dir");
        let missing = dir.path().join("gone");
        let problem = check_root_writable(&missing).expect_err("missing root");
        assert!(problem.starts_with(&format!("root {} is not writable: ", missing.display())));
        let file = dir.path().join("file");
        std::fs::write(&file, b"").expect("write file");
        let problem = check_root_writable(&file).expect_err("file as root");
        assert!(problem.contains("Not a directory"), "{problem}");
    }
}
