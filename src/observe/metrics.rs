//! Prometheus metrics: Ferry's counters, fed by the audit log, rendered with libunftp's.
//!
//! Every client operation already passes through [`super::audit::AuditLog::record`], so that is
//! where Ferry counts: no second set of hooks to keep in step with the audit records.
//!
//! libunftp registers its counters (`ftp_*`) in the prometheus crate's process-wide default
//! registry. Ferry's (`ferry_*`) live in a registry per server instead, so that several servers
//! in one process (the integration tests) each count their own; `/metrics` renders both in one
//! page. Labels never carry user names, paths or addresses: their number stays bounded.

use super::record::{LimitReached, Op, Outcome};
use prometheus::core::Collector;
use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// The content type of the text exposition format, for the `/metrics` response.
pub const CONTENT_TYPE: &str = prometheus::TEXT_FORMAT;

/// Operations on files and directories, labelled by their audit `op` name.
const FILE_OPS: [Op; 10] = [
    Op::Upload,
    Op::Download,
    Op::Ls,
    Op::Rm,
    Op::Size,
    Op::Mkdir,
    Op::Rmdir,
    Op::Rename,
    Op::Mfmt,
    Op::Chmod,
];

/// The operations that move bytes over a data connection.
const DATA_OPS: [Op; 3] = [Op::Upload, Op::Download, Op::Ls];

const LOGIN_SUCCEEDED: &str = "succeeded";
const LOGIN_FAILED: &str = "failed";

/// Why the metrics page could not be rendered.
#[derive(Debug, thiserror::Error)]
#[error("could not encode metrics: {0}")]
pub struct MetricsError(#[from] prometheus::Error);

/// Ferry's own metrics, per server.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Set from the session limiter's count when scraped: the limiter is the one source of truth.
    sessions_active: IntGauge,
    /// `result`: succeeded or failed (wrong password, unknown user, banned IP, ...).
    logins: IntCounterVec,
    /// Operations that completed, by `op`: one file (or directory) each.
    files: IntCounterVec,
    /// Bytes moved by completed transfers and listings, by `op`.
    bytes: IntCounterVec,
    /// Operations refused by policy (permissions, names Ferry reserves), by `op`.
    refused: IntCounterVec,
    /// Operations tried and failed (missing file, I/O error, full disk, aborted transfer), by `op`.
    storage_errors: IntCounterVec,
    /// Connections turned away with 421 by the session limits, by `reason`.
    connections_refused: IntCounterVec,
    /// Requests to the S3-compatible service (when `root` is a bucket).
    s3: ObjectStoreMetrics,
    /// Quotas and usage.
    usage: UsageMetrics,
    /// Events on their way to the hooks (when any is configured).
    events: EventMetrics,
}

/// Quotas and usage: refusals, failed usage updates, and (only with `usage_metrics`, as each
/// account is a series) each account's usage and byte quota.
#[derive(Debug, Clone)]
pub struct UsageMetrics {
    bytes: IntGaugeVec,
    files: IntGaugeVec,
    quota_bytes: IntGaugeVec,
    update_failures: IntCounter,
}

impl UsageMetrics {
    fn new(registry: &Registry) -> Self {
        let gauge = |name: &str, help: &str| {
            let gauge = IntGaugeVec::new(Opts::new(name, help), &["user"])
                .expect("constant metric definition");
            register(registry, gauge.clone());
            gauge
        };
        let update_failures = IntCounter::new(
            "ferry_usage_update_failures_total",
            "Usage changes that could not be stored (corrected by `ferry user rescan`).",
        )
        .expect("constant metric definition");
        register(registry, update_failures.clone());
        UsageMetrics {
            bytes: gauge(
                "ferry_user_usage_bytes",
                "Bytes in each account's home (with usage_metrics).",
            ),
            files: gauge(
                "ferry_user_usage_files",
                "Files in each account's home (with usage_metrics).",
            ),
            quota_bytes: gauge(
                "ferry_user_quota_bytes",
                "Each account's byte quota, 0 for none (with usage_metrics).",
            ),
            update_failures,
        }
    }

    /// Sets the series of one account.
    pub fn set(&self, user: &str, bytes: u64, files: u64, quota_bytes: u64) {
        let clamp = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
        self.bytes.with_label_values(&[user]).set(clamp(bytes));
        self.files.with_label_values(&[user]).set(clamp(files));
        self.quota_bytes
            .with_label_values(&[user])
            .set(clamp(quota_bytes));
    }

    pub fn update_failed(&self) {
        self.update_failures.inc();
    }
}

/// Events and their delivery, by `hook` (a name from the configuration, so the series stay
/// bounded): events queued in the spool, delivered, delivery attempts that failed (each is
/// retried), events dropped because the spool was full or could not be written, and the
/// events waiting now.
#[derive(Debug, Clone)]
pub struct EventMetrics {
    queued: IntCounterVec,
    delivered: IntCounterVec,
    failed_attempts: IntCounterVec,
    dropped: IntCounterVec,
    spool_depth: IntGaugeVec,
}

impl EventMetrics {
    fn new(registry: &Registry) -> Self {
        let spool_depth = IntGaugeVec::new(
            Opts::new(
                "ferry_event_spool_depth",
                "Events waiting in the spool for delivery, by hook.",
            ),
            &["hook"],
        )
        .expect("constant metric definition");
        register(registry, spool_depth.clone());
        EventMetrics {
            queued: counter(
                registry,
                "ferry_events_queued_total",
                "Events written to the spool for delivery, by hook.",
                "hook",
            ),
            delivered: counter(
                registry,
                "ferry_events_delivered_total",
                "Events delivered (2xx from a webhook, exit 0 from a command), by hook.",
                "hook",
            ),
            failed_attempts: counter(
                registry,
                "ferry_event_delivery_failures_total",
                "Delivery attempts that failed and will be retried, by hook.",
                "hook",
            ),
            dropped: counter(
                registry,
                "ferry_events_dropped_total",
                "Events not queued because the spool was full or could not be written, by hook.",
                "hook",
            ),
            spool_depth,
        }
    }

    /// Creates `hook`'s series at 0 (hooks are known only once the configuration is).
    pub fn start_hook(&self, hook: &str, waiting: usize) {
        for family in [
            &self.queued,
            &self.delivered,
            &self.failed_attempts,
            &self.dropped,
        ] {
            family.with_label_values(&[hook]);
        }
        self.spool_depth
            .with_label_values(&[hook])
            .set(i64::try_from(waiting).unwrap_or(i64::MAX));
    }

    pub fn queued(&self, hook: &str) {
        self.queued.with_label_values(&[hook]).inc();
        self.spool_depth.with_label_values(&[hook]).inc();
    }

    pub fn delivered(&self, hook: &str) {
        self.delivered.with_label_values(&[hook]).inc();
        self.spool_depth.with_label_values(&[hook]).dec();
    }

    pub fn failed_attempt(&self, hook: &str) {
        self.failed_attempts.with_label_values(&[hook]).inc();
    }

    pub fn dropped(&self, hook: &str) {
        self.dropped.with_label_values(&[hook]).inc();
    }
}

/// Requests to an object store, by `operation` (the S3 API name: GetObject, UploadPart...):
/// how many ended how (`outcome`: ok, or the error class), and how long they took (retries
/// included).
#[derive(Debug, Clone)]
pub struct ObjectStoreMetrics {
    requests: IntCounterVec,
    seconds: HistogramVec,
}

impl ObjectStoreMetrics {
    fn new(registry: &Registry) -> Self {
        let requests = IntCounterVec::new(
            Opts::new(
                "ferry_s3_requests_total",
                "Requests to the S3-compatible service, by operation and outcome.",
            ),
            &["operation", "outcome"],
        )
        .expect("constant metric definition");
        register(registry, requests.clone());
        let seconds = HistogramVec::new(
            HistogramOpts::new(
                "ferry_s3_request_seconds",
                "Latency of requests to the S3-compatible service (retries included), by operation.",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
            &["operation"],
        )
        .expect("constant metric definition");
        register(registry, seconds.clone());
        ObjectStoreMetrics { requests, seconds }
    }

    /// Counts one request. `operation` and `outcome` come from fixed sets (API names, error
    /// classes), never from a path or a message, so the series stay bounded.
    pub fn observe(&self, operation: &str, outcome: &str, elapsed: std::time::Duration) {
        self.requests.with_label_values(&[operation, outcome]).inc();
        self.seconds
            .with_label_values(&[operation])
            .observe(elapsed.as_secs_f64());
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let sessions_active = IntGauge::new("ferry_sessions_active", "Sessions open now.")
            .expect("constant metric definition is valid");
        register(&registry, sessions_active.clone());
        let metrics = Metrics {
            sessions_active,
            logins: counter(
                &registry,
                "ferry_logins_total",
                "Login attempts, by result.",
                "result",
            ),
            files: counter(
                &registry,
                "ferry_files_total",
                "Operations completed on a file or directory, by operation.",
                "op",
            ),
            bytes: counter(
                &registry,
                "ferry_bytes_total",
                "Bytes moved by completed transfers and listings, by operation.",
                "op",
            ),
            refused: counter(
                &registry,
                "ferry_refused_operations_total",
                "Operations refused by policy (permissions, reserved names), by operation.",
                "op",
            ),
            storage_errors: counter(
                &registry,
                "ferry_storage_errors_total",
                "Operations that failed (missing file, I/O error, full disk, aborted transfer), \
                 by operation.",
                "op",
            ),
            connections_refused: counter(
                &registry,
                "ferry_connections_refused_total",
                "Connections turned away by the session limits, an address ban or the PROXY \
                 protocol checks, by reason.",
                "reason",
            ),
            s3: ObjectStoreMetrics::new(&registry),
            usage: UsageMetrics::new(&registry),
            events: EventMetrics::new(&registry),
            registry,
        };
        metrics.start_series_at_zero();
        metrics
    }

    /// The quota and usage metrics.
    pub fn usage(&self) -> UsageMetrics {
        self.usage.clone()
    }

    /// The object-store request metrics, for the S3 store to count into.
    pub fn object_store(&self) -> ObjectStoreMetrics {
        self.s3.clone()
    }

    /// The event metrics, for the event spool and its delivery to count into.
    pub fn events(&self) -> EventMetrics {
        self.events.clone()
    }

    /// Creates every series at 0, so `rate()` and `increase()` see the first event too.
    fn start_series_at_zero(&self) {
        for result in [LOGIN_SUCCEEDED, LOGIN_FAILED] {
            self.logins.with_label_values(&[result]);
        }
        for op in FILE_OPS {
            for family in [&self.files, &self.refused, &self.storage_errors] {
                family.with_label_values(&[op.as_str()]);
            }
        }
        for op in DATA_OPS {
            self.bytes.with_label_values(&[op.as_str()]);
        }
        for limit in [
            LimitReached::Total,
            LimitReached::PerIp,
            LimitReached::IpBanned,
            LimitReached::ProxyHeader,
        ] {
            self.connections_refused
                .with_label_values(&[limit_label(limit)]);
        }
    }

    /// Counts one audited operation.
    pub fn observe(&self, op: Op, outcome: &Outcome, bytes: Option<u64>) {
        // No wildcard arm: a new `Op` must be placed here before it compiles.
        match op {
            Op::Login => {
                let result = match outcome {
                    Outcome::Ok => LOGIN_SUCCEEDED,
                    Outcome::Denied(_) | Outcome::Failed(_) => LOGIN_FAILED,
                };
                self.logins.with_label_values(&[result]).inc();
            }
            // A session's end; `ferry_sessions_active` already shows it.
            Op::Logout => {}
            Op::Upload
            | Op::Download
            | Op::Ls
            | Op::Rm
            | Op::Size
            | Op::Mkdir
            | Op::Rmdir
            | Op::Rename
            | Op::Mfmt
            | Op::Chmod => {
                let label = [op.as_str()];
                match outcome {
                    Outcome::Ok => {
                        self.files.with_label_values(&label).inc();
                        // SIZE's record carries the file's size, which is not traffic.
                        if let Some(bytes) = bytes.filter(|_| DATA_OPS.contains(&op)) {
                            self.bytes.with_label_values(&label).inc_by(bytes);
                        }
                    }
                    Outcome::Denied(_) => self.refused.with_label_values(&label).inc(),
                    Outcome::Failed(_) => self.storage_errors.with_label_values(&label).inc(),
                }
            }
        }
    }

    /// Counts a connection the session limits turned away.
    pub fn connection_refused(&self, limit: LimitReached) {
        self.connections_refused
            .with_label_values(&[limit_label(limit)])
            .inc();
    }

    /// The text exposition of Ferry's metrics and libunftp's, with `sessions_active` as the
    /// current number of sessions.
    pub fn render(&self, sessions_active: usize) -> Result<String, MetricsError> {
        self.sessions_active
            .set(i64::try_from(sessions_active).unwrap_or(i64::MAX));
        let mut families = self.registry.gather();
        families.extend(prometheus::gather());
        let mut text = String::new();
        TextEncoder::new().encode_utf8(&families, &mut text)?;
        Ok(text)
    }
}

fn limit_label(limit: LimitReached) -> &'static str {
    match limit {
        LimitReached::Total => "max_sessions",
        LimitReached::PerIp => "max_sessions_per_ip",
        LimitReached::IpBanned => "ip_banned",
        LimitReached::ProxyHeader => "proxy_header",
    }
}

/// A counter with one label, registered in `registry`.
fn counter(registry: &Registry, name: &str, help: &str, label: &str) -> IntCounterVec {
    let counter =
        IntCounterVec::new(Opts::new(name, help), &[label]).expect("constant metric definition");
    register(registry, counter.clone());
    counter
}

/// Registers a collector of a fresh registry. Names are constants and distinct (a unit test
/// renders them all), so this cannot fail at run time.
fn register(registry: &Registry, collector: impl Collector + 'static) {
    registry
        .register(Box::new(collector))
        .expect("metric names are distinct");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the sample `series` (name and labels as rendered) in `text`.
    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn every_series_starts_at_zero_and_counts_what_it_names() {
        let metrics = Metrics::new();
        let text = metrics.render(0).expect("renders");
        for series in [
            "ferry_sessions_active",
            "ferry_logins_total{result=\"succeeded\"}",
            "ferry_logins_total{result=\"failed\"}",
            "ferry_files_total{op=\"rename\"}",
            "ferry_bytes_total{op=\"ls\"}",
            "ferry_refused_operations_total{op=\"mkdir\"}",
            "ferry_storage_errors_total{op=\"rm\"}",
            "ferry_connections_refused_total{reason=\"max_sessions_per_ip\"}",
            "ferry_connections_refused_total{reason=\"ip_banned\"}",
            "ferry_connections_refused_total{reason=\"proxy_header\"}",
        ] {
            assert_eq!(sample(&text, series), Some(0.0), "{series} in\n{text}");
        }

        metrics.observe(Op::Login, &Outcome::Ok, None);
        metrics.observe(Op::Login, &Outcome::Denied("wrong password".into()), None);
        metrics.observe(Op::Login, &Outcome::Failed("no home".into()), None);
        metrics.observe(Op::Upload, &Outcome::Ok, Some(1000));
        metrics.observe(Op::Upload, &Outcome::Ok, Some(24));
        metrics.observe(
            Op::Upload,
            &Outcome::Denied("user may not upload".into()),
            None,
        );
        metrics.observe(Op::Download, &Outcome::Failed("not found".into()), None);
        metrics.observe(Op::Size, &Outcome::Ok, Some(5000));
        metrics.observe(Op::Logout, &Outcome::Ok, None);
        metrics.connection_refused(LimitReached::Total);
        metrics.connection_refused(LimitReached::ProxyHeader);
        let text = metrics.render(3).expect("renders");
        for (series, value) in [
            ("ferry_sessions_active", 3.0),
            ("ferry_logins_total{result=\"succeeded\"}", 1.0),
            ("ferry_logins_total{result=\"failed\"}", 2.0),
            ("ferry_files_total{op=\"upload\"}", 2.0),
            ("ferry_bytes_total{op=\"upload\"}", 1024.0),
            ("ferry_refused_operations_total{op=\"upload\"}", 1.0),
            ("ferry_storage_errors_total{op=\"download\"}", 1.0),
            ("ferry_files_total{op=\"download\"}", 0.0),
            ("ferry_files_total{op=\"size\"}", 1.0),
            (
                "ferry_connections_refused_total{reason=\"max_sessions\"}",
                1.0,
            ),
            (
                "ferry_connections_refused_total{reason=\"proxy_header\"}",
                1.0,
            ),
        ] {
            assert_eq!(sample(&text, series), Some(value), "{series} in\n{text}");
        }
    }

    #[test]
    fn servers_in_one_process_count_separately() {
        let first = Metrics::new();
        let second = Metrics::new();
        first.observe(Op::Rm, &Outcome::Ok, None);
        let text = second.render(0).expect("renders");
        assert_eq!(sample(&text, "ferry_files_total{op=\"rm\"}"), Some(0.0));
    }
}
