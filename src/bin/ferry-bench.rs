//! `ferry-bench`: measures an FTP server, Ferry or any other; the work is in `ferry::bench`.

use clap::Parser;
use ferry::bench::{BenchArgs, Scenario};
use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = BenchArgs::parse();
    if let Scenario::Reap { command } = &args.scenario {
        return ferry::bench::reaper::run(command);
    }
    if let Scenario::Floor {
        bind,
        root,
        atomic_uploads,
    } = &args.scenario
    {
        let uploads = match atomic_uploads {
            true => ferry::bench::floor::Uploads::Atomic,
            false => ferry::bench::floor::Uploads::InPlace,
        };
        return ferry::bench::floor::run(*bind, root, uploads);
    }
    // Thousands of sessions need thousands of sockets.
    ferry::server::raise_open_file_limit(&slog::Logger::root(slog::Discard, slog::o!()));
    // One session runs on one thread: no wake-ups between threads, so the load generator
    // spends less of the machine than the server it measures. Scenarios with many sessions
    // (and raw, whose sender and receiver must not share a core) get a thread per core.
    let mut builder = if args.scenario.is_one_session() {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("ferry-bench: could not start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let report = runtime.block_on(ferry::bench::run(&args));
    match serde_json::to_string(&report) {
        Ok(line) => {
            // A reader that went away (`| head`) is not worth a panic; the status says it.
            if writeln!(std::io::stdout(), "{line}").is_err() {
                return ExitCode::FAILURE;
            }
        }
        Err(error) => {
            eprintln!("ferry-bench: could not encode the report: {error}");
            return ExitCode::FAILURE;
        }
    }
    if report.valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
