//! Builds the root slog logger: human-readable terminal lines or one JSON object per line.

use slog::Drain;
use std::io::{BufWriter, IsTerminal, Stderr};
use std::sync::Mutex;

/// Larger than any one record, so that each is flushed as a single write.
const RECORD_BUFFER_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

/// Builds the process-wide logger writing to stderr at `level` and above.
pub fn build_logger(format: LogFormat, level: slog::Level) -> slog::Logger {
    // Records are built in a buffer and written with one write(2) each: unbuffered, a line
    // took ~45 small writes, a sixth of the server's CPU when every transfer is logged.
    let drain: Box<dyn Drain<Ok = (), Err = slog::Never> + Send> = match format {
        LogFormat::Human if std::io::stderr().is_terminal() => {
            let decorator = slog_term::TermDecorator::new().stderr().build();
            Box::new(slog_term::FullFormat::new(decorator).build().fuse())
        }
        LogFormat::Human => {
            let decorator = slog_term::PlainDecorator::new(buffered_stderr());
            Box::new(slog_term::FullFormat::new(decorator).build().fuse())
        }
        LogFormat::Json => Box::new(
            Mutex::new(
                slog_json::Json::new(buffered_stderr())
                    .set_flush(true)
                    .add_default_keys()
                    .build(),
            )
            .fuse(),
        ),
    };
    // Logging must never stall a transfer: records go through a bounded queue to a
    // dedicated thread, and are dropped (and counted) if the queue is full. Records below
    // `level` are dropped before the queue, by the thread that makes them: queued, each cost
    // a hand-off to the logging thread only to be thrown away there.
    let drain = slog_async::Async::new(drain)
        .chan_size(8192)
        .overflow_strategy(slog_async::OverflowStrategy::DropAndReport)
        .build()
        .filter_level(level)
        .fuse();
    slog::Logger::root(drain, slog::o!())
}

fn buffered_stderr() -> BufWriter<Stderr> {
    BufWriter::with_capacity(RECORD_BUFFER_BYTES, std::io::stderr())
}
