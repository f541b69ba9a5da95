//! Observing the server: the audit trail (one record per client operation), Prometheus
//! metrics fed by it, the structured log (slog, batched to stderr), the admin HTTP listener
//! (`/metrics`, `/health`, `/ready`) and `ferry health`, the client for container checks.
//!
//! It uses only `config`'s value types. The rest of Ferry reports into it; what the admin
//! listener needs to know of the running server comes through the [`admin::ServerProbe`]
//! trait, which the server implements, so this folder never imports `server`. Records flow
//! one way: [`record`] defines what an operation is, [`audit`] writes it and counts it in
//! [`metrics`].

pub mod admin;
pub mod admin_listener;
pub mod audit;
pub mod health_check;
pub mod log_batch;
pub mod logging;
pub mod metrics;
pub mod record;
