//! Audit trail: one structured log record per client operation (the seed's vocabulary).

use super::metrics::Metrics;
use super::record::{AuditRecord, Outcome};
use std::sync::Arc;

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
            HostField(record.host),
            "path" => record.path,
            "bytes" => record.bytes,
            "duration_ms" => record.duration.as_millis() as u64,
            "result" => result,
            "reason" => reason,
        );
    }
}

/// The `host` field, written only when the client sent HOST: most sessions never do.
struct HostField<'a>(Option<&'a str>);

impl slog::KV for HostField<'_> {
    fn serialize(
        &self,
        _record: &slog::Record,
        serializer: &mut dyn slog::Serializer,
    ) -> slog::Result {
        match self.0 {
            Some(host) => serializer.emit_str("host", host),
            None => Ok(()),
        }
    }
}
