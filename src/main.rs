//! The `ferry` binary: parses the command line and hands each subcommand to the library.

use clap::Parser;
use ferry::accounts::user_admin::{RescanArgs, UserCommand};
use ferry::cli::{Cli, Command};
use ferry::config::{Config, ServeArgs};
use std::process::ExitCode;

/// Exit status for a configuration or usage error, as clap uses for bad flags.
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Serve(args) => serve(&args),
        Command::User {
            command: UserCommand::Rescan(args),
        } => rescan(&args),
        Command::User { command } => match ferry::accounts::user_admin::run(command) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("ferry user: {error}");
                ExitCode::FAILURE
            }
        },
        Command::Health(args) => match ferry::observe::health_check::check(&args.url) {
            Ok(response) => {
                println!("{}", response.body.trim_end());
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("ferry health: {error}");
                ExitCode::FAILURE
            }
        },
        Command::Client(args) => ferry::client::run(args),
        Command::Cert { command } => match ferry::tls::cert::run(command, &mut std::io::stdout()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("ferry cert: {error}");
                ExitCode::FAILURE
            }
        },
    }
}

/// The configuration of `ferry serve` from the file, the environment and `args`.
fn load_config(args: &ServeArgs) -> Result<Config, ExitCode> {
    // Lossy rather than `var(..).ok()`: a non-UTF-8 value then fails visibly (e.g. "root does
    // not exist") instead of being silently ignored.
    let env = |name: &str| std::env::var_os(name).map(|value| value.to_string_lossy().into());
    Config::load(args, &env).map_err(|error| {
        eprintln!("ferry: {error}");
        ExitCode::from(EXIT_USAGE)
    })
}

fn rescan(args: &RescanArgs) -> ExitCode {
    match load_config(&args.settings) {
        Ok(config) => ferry::server::rescan::run(&config, &args.name),
        Err(code) => code,
    }
}

fn serve(args: &ServeArgs) -> ExitCode {
    let config = match load_config(args) {
        Ok(config) => config,
        Err(code) => return code,
    };
    if args.check_config {
        if let Err(error) = ferry::server::check_services_now(&config) {
            eprintln!("ferry: {error}");
            return ExitCode::FAILURE;
        }
        match &config.source_file {
            Some(file) => println!("configuration OK ({})", file.display()),
            None => println!("configuration OK (no config file; defaults, environment, flags)"),
        }
        return ExitCode::SUCCESS;
    }
    let logger = match ferry::observe::logging::build_logger(config.log_format, config.log_level) {
        Ok(logger) => logger,
        Err(error) => {
            eprintln!("ferry: could not start the logging thread: {error}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match ferry::server::build_runtime(&config) {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("ferry: could not start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(ferry::server::run(config, logger)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("ferry: {error}");
            ExitCode::FAILURE
        }
    }
}
