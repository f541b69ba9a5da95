//! Command-line interface: `ferry serve`, `ferry user ...`, `ferry client URL`, `ferry cert ...`,
//! `ferry health`.

use crate::config::ServeArgs;

/// How the settings of `ferry serve` combine, shown under `ferry serve --help`.
const SERVE_AFTER_HELP: &str = "\
Every setting can come from the config file (key `passive_ports`), an environment variable \
(FERRY_PASSIVE_PORTS) or a flag (--passive-ports); a flag beats the environment, which beats \
the file, which beats the default. Relative paths are relative to the working directory.";

/// Ferry: an FTP/FTPS server that is safe by default.
#[derive(Debug, clap::Parser)]
#[command(name = "ferry", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands. A new one is a variant here and an arm in `main`.
#[derive(Debug, clap::Subcommand)]
#[allow(
    clippy::large_enum_variant,
    reason = "built once per process and moved once; boxing would only add noise"
)]
pub enum Command {
    /// Run the FTP server.
    #[command(after_help = SERVE_AFTER_HELP)]
    Serve(ServeArgs),
    /// Manage the accounts in the users file.
    User {
        #[command(subcommand)]
        command: crate::accounts::user_admin::UserCommand,
    },
    /// GET a URL of the admin listener; exit 0 on 200 OK (container health checks).
    Health(crate::observe::health_check::HealthArgs),
    /// Connect to an FTP or FTPS server (Ferry or any other) and run the seed's commands.
    Client(crate::client::ClientArgs),
    /// Make TLS certificates for FTPS.
    Cert {
        #[command(subcommand)]
        command: crate::tls::cert::CertCommand,
    },
}
