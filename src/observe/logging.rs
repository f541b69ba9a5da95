//! Builds the root slog logger: human-readable lines or one JSON object per line, on stderr.

use crate::observe::log_batch::BatchedDrain;
use slog::Drain;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

/// Builds the process-wide logger writing to stderr at `level` and above.
///
/// Records below `level` are dropped by the thread that makes them, before any formatting.
/// The rest are formatted on that thread and written in batches by a background thread
/// ([`BatchedDrain`]): logging never waits for stderr, and past 8 MiB waiting records are
/// dropped and counted rather than kept.
pub fn build_logger(format: LogFormat, level: slog::Level) -> std::io::Result<slog::Logger> {
    Ok(match format {
        LogFormat::Human => root(
            BatchedDrain::new(
                std::io::stderr(),
                |writer| slog_term::FullFormat::new(slog_term::PlainDecorator::new(writer)).build(),
                human_dropped_notice,
            )?,
            level,
        ),
        LogFormat::Json => root(
            BatchedDrain::new(
                std::io::stderr(),
                |writer| slog_json::Json::new(writer).add_default_keys().build(),
                json_dropped_notice,
            )?,
            level,
        ),
    })
}

fn root<D>(drain: D, level: slog::Level) -> slog::Logger
where
    D: slog::SendSyncRefUnwindSafeDrain<Ok = (), Err = slog::Never> + std::panic::UnwindSafe,
    D: 'static,
{
    slog::Logger::root(drain.filter_level(level).fuse(), slog::o!())
}

fn human_dropped_notice(count: u64) -> String {
    let now = chrono::Local::now().format("%b %d %H:%M:%S%.3f");
    format!("{now} WARN log records dropped (stderr could not keep up), count: {count}")
}

fn json_dropped_notice(count: u64) -> String {
    serde_json::json!({
        "msg": "log records dropped (stderr could not keep up)",
        "level": "WARN",
        "ts": chrono::Local::now().to_rfc3339(),
        "count": count,
    })
    .to_string()
}
