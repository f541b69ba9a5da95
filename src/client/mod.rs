//! `ferry client`: the seed's client vocabulary (`upload`, `download`, `ls`, `rm`, `size`,
//! `connme`, `byebye`...) over real FTP or FTPS, against any server, interactively or as a
//! script. Standalone: it uses nothing else of Ferry's, so it works against any FTP server.

mod command;
mod data;
mod error;
mod input;
mod interrupt;
mod listing;
mod progress;
mod session;
mod shell;
mod target;
mod tls;
mod transfer;
mod tree;

pub use error::ClientError;
pub use target::Target;
pub use transfer::PARTIAL_SUFFIX;

use session::ConnectOptions;
use shell::{Output, Shell};
use std::io::{self, BufRead, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;

/// The environment variable holding the password.
pub const PASSWORD_ENV: &str = "FERRY_PASSWORD";

/// Exit status for a bad URL or bad flags, as clap uses.
pub const EXIT_USAGE: u8 = 2;

/// Exit status when the client cannot connect or log in.
pub const EXIT_CONNECT: u8 = 3;

/// The password anonymous logins send (RFC 1635 asks for something mail-like).
const ANONYMOUS_PASSWORD: &str = "anonymous@";

const CLIENT_AFTER_HELP: &str = "\
The password comes from --password-stdin, the URL, FERRY_PASSWORD, or a prompt, in that order. \
Commands come from -c, or standard input when it is not a terminal; both stop at the first \
command that fails (exit status 1) unless it starts with '-'. Exit status 2 is a usage error, \
3 a failed connection or login, 130 Ctrl-C. Type help at the prompt for the commands.";

/// The flags of `ferry client`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = CLIENT_AFTER_HELP)]
pub struct ClientArgs {
    /// ftp://[user@]host[:port][/dir], or ftps://... for explicit TLS
    #[arg(value_name = "URL")]
    pub url: String,
    /// Run COMMAND (repeatable, in order) and exit
    #[arg(short = 'c', long = "command", value_name = "COMMAND")]
    pub commands: Vec<String>,
    /// Print the results of ls, lls, size, pwd, lpwd and connme as JSON, one value per line
    #[arg(long)]
    pub json: bool,
    /// Read the password from the first line of standard input
    #[arg(long)]
    pub password_stdin: bool,
    /// Active mode: the server connects back to this machine (EPRT/PORT)
    #[arg(long)]
    pub active: bool,
    /// ftps: trust the CA certificates in this PEM file instead of the system's
    #[arg(long, value_name = "FILE", conflicts_with = "insecure")]
    pub ca: Option<PathBuf>,
    /// ftps: accept any server certificate (self-signed test servers; not authenticated)
    #[arg(long)]
    pub insecure: bool,
}

/// Runs `ferry client`.
pub fn run(args: ClientArgs) -> ExitCode {
    ExitCode::from(run_to_status(args))
}

fn run_to_status(args: ClientArgs) -> u8 {
    let target = match Target::parse(&args.url) {
        Ok(target) => target,
        Err(error) => {
            eprintln!("ferry client: {error}");
            return EXIT_USAGE;
        }
    };
    if target.password.is_some() {
        eprintln!(
            "ferry client: warning: a password in the URL is visible to other users (ps, shell \
             history); prefer {PASSWORD_ENV} or --password-stdin"
        );
    }
    let tls = if target.secure {
        let options = tls::TlsOptions {
            ca: args.ca.clone(),
            insecure: args.insecure,
        };
        match tls::client_config(&options) {
            Ok(config) => Some(config),
            Err(error) => {
                eprintln!("ferry client: {error}");
                return EXIT_USAGE;
            }
        }
    } else {
        if args.ca.is_some() || args.insecure {
            eprintln!("ferry client: warning: --ca and --insecure only apply to ftps:// URLs");
        }
        None
    };
    if args.insecure {
        eprintln!("ferry client: warning: --insecure: the server's certificate is not checked");
    }
    interrupt::install();
    let mut stdin = io::stdin().lock();
    let password = match password(&args, &target, &mut stdin) {
        Ok(password) => password,
        Err(error) => {
            eprintln!("ferry client: {error}");
            return EXIT_USAGE;
        }
    };
    let options = ConnectOptions {
        tls,
        active: args.active,
    };
    let output = Output { json: args.json };
    let mut shell = Shell::new(target, password, options, output);
    let interactive = args.commands.is_empty() && io::stdin().is_terminal();
    match shell.connect() {
        Ok(greeting) if interactive => {
            println!("Connected to {} ({greeting})", shell.target);
        }
        Ok(_) => {}
        Err(error) => {
            eprintln!("ferry client: cannot log in to {}: {error}", shell.target);
            return EXIT_CONNECT;
        }
    }
    if !args.commands.is_empty() {
        input::run_script(&mut shell, args.commands.into_iter().map(Ok))
    } else if interactive {
        drop(stdin);
        input::run_interactive(&mut shell)
    } else {
        input::run_script(&mut shell, stdin.lines())
    }
}

/// The password: `--password-stdin`, then the URL, then `FERRY_PASSWORD`, then a prompt that
/// does not echo. Anonymous logins need none.
fn password(args: &ClientArgs, target: &Target, stdin: &mut dyn BufRead) -> Result<String, String> {
    if args.password_stdin {
        let mut line = String::new();
        stdin
            .read_line(&mut line)
            .map_err(|error| format!("--password-stdin: {error}"))?;
        let password = line.trim_end_matches(['\r', '\n']);
        if password.is_empty() {
            return Err("--password-stdin: standard input did not start with a password".into());
        }
        return Ok(password.to_owned());
    }
    if let Some(password) = &target.password {
        return Ok(password.clone());
    }
    if let Some(password) = std::env::var_os(PASSWORD_ENV) {
        return password
            .into_string()
            .map_err(|_| format!("{PASSWORD_ENV} is not valid UTF-8"));
    }
    if target.is_anonymous() {
        return Ok(ANONYMOUS_PASSWORD.to_owned());
    }
    rpassword::prompt_password(format!("Password for {target}: ")).map_err(|error| {
        format!(
            "no password: set {PASSWORD_ENV}, use --password-stdin, or run in a terminal ({error})"
        )
    })
}
