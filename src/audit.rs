//! Audit trail: one structured log record per client operation (the seed's vocabulary).

use crate::metrics::Metrics;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// An operation a client performed, named as in the seed programs (see the README mapping).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Login,
    Logout,
    Upload,
    Download,
    Ls,
    Rm,
    Size,
    Mkdir,
    Rmdir,
    Rename,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Login => "login",
            Op::Logout => "logout",
            Op::Upload => "upload",
            Op::Download => "download",
            Op::Ls => "ls",
            Op::Rm => "rm",
            Op::Size => "size",
            Op::Mkdir => "mkdir",
            Op::Rmdir => "rmdir",
            Op::Rename => "rename",
        }
    }
}

/// How an operation ended, as written in the `result` field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// Refused by policy (permissions, bans, disabled account): the client got a 5xx.
    Denied(String),
    /// Tried and failed (missing file, I/O error, aborted transfer).
    Failed(String),
}

/// One audit record; `path` is the path as the user sees it (rooted at their home).
#[derive(Debug, Clone)]
pub struct AuditRecord<'a> {
    pub op: Op,
    pub user: &'a str,
    pub client_ip: IpAddr,
    pub path: &'a str,
    pub bytes: Option<u64>,
    pub duration: Duration,
    pub outcome: Outcome,
}

/// Writes audit records to the structured log, tagged `audit = true` so they can be filtered,
/// and counts them in the metrics (clones share both).
#[derive(Debug, Clone)]
pub struct AuditLog {
    logger: slog::Logger,
    metrics: Arc<Metrics>,
}

impl AuditLog {
    pub fn new(logger: &slog::Logger) -> Self {
        AuditLog {
            logger: logger.new(slog::o!("audit" => true)),
            metrics: Arc::new(Metrics::new()),
        }
    }

    /// The metrics this log counts into.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    pub fn record(&self, record: AuditRecord<'_>) {
        self.metrics
            .observe(record.op, &record.outcome, record.bytes);
        let (result, reason) = match &record.outcome {
            Outcome::Ok => ("ok", ""),
            Outcome::Denied(reason) => ("denied", reason.as_str()),
            Outcome::Failed(reason) => ("failed", reason.as_str()),
        };
        slog::info!(self.logger, "{}", record.op.as_str();
            "op" => record.op.as_str(),
            "user" => record.user,
            "client_ip" => %record.client_ip,
            "path" => record.path,
            "bytes" => record.bytes,
            "duration_ms" => record.duration.as_millis() as u64,
            "result" => result,
            "reason" => reason,
        );
    }
}
