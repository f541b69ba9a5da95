//! `ferry user add|edit|passwd|remove|list`: edits the accounts, in the users file or in
//! PostgreSQL, without ever writing a plaintext password. (`ferry user rescan`, which measures
//! a home, needs the storage and is run by the binary: [`RescanArgs`].)

mod store;

use crate::accounts::limits::{AccountLimits, human_bytes};
use crate::accounts::password::hash_password;
use crate::accounts::users::{
    Permissions, UserRecord, UsersError, UsersFile, validate_home, validate_user_name,
};
use crate::config::parse_byte_size;
use std::fmt;
use std::io::{self, BufRead, Write};
use std::path::PathBuf;
use store::AccountStore;

/// The users file edited when neither `--users` nor `FERRY_USERS` is given: the one shipped
/// in the repository (relative to the working directory).
pub const DEFAULT_USERS_FILE: &str = "config/users.toml";

/// `--users FILE|postgres://…` and `--users-password-file`, shared by every subcommand.
#[derive(Debug, Clone, clap::Args)]
pub struct UsersFileArg {
    /// The users file to edit, or accounts in PostgreSQL:
    /// postgres://USER@HOST[:PORT]/DB[?sslmode=disable|require|verify-full].
    #[arg(
        long = "users",
        value_name = "FILE|postgres://…",
        env = "FERRY_USERS",
        default_value = DEFAULT_USERS_FILE
    )]
    pub location: String,
    /// File holding the PostgreSQL password [default: PGPASSWORD].
    #[arg(
        long = "users-password-file",
        value_name = "FILE",
        env = "FERRY_USERS_PASSWORD_FILE"
    )]
    pub password_file: Option<PathBuf>,
}

impl UsersFileArg {
    fn open(&self) -> Result<AccountStore, UsersError> {
        AccountStore::open(&self.location, self.password_file.as_deref())
    }
}

/// `--quota-bytes`, `--quota-files`, `--upload-rate`, `--download-rate`: each a size (`10G`,
/// `500M`, a plain number), `0` for no limit, or `default` for the server's default.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct LimitArgs {
    /// Most bytes the home may hold (`10G`; 0: no limit; `default`: the server's).
    #[arg(long, value_name = "SIZE")]
    quota_bytes: Option<String>,
    /// Most files the home may hold (0: no limit; `default`: the server's).
    #[arg(long, value_name = "COUNT")]
    quota_files: Option<String>,
    /// Bytes per second for all of the user's uploads together (`10M`; 0: no limit).
    #[arg(long, value_name = "RATE")]
    upload_rate: Option<String>,
    /// Bytes per second for all of the user's downloads together (`10M`; 0: no limit).
    #[arg(long, value_name = "RATE")]
    download_rate: Option<String>,
}

impl LimitArgs {
    /// `limits` of `user` (in the accounts at `path`) with the given flags applied; errors
    /// name the flag.
    fn apply(
        &self,
        limits: AccountLimits,
        path: &std::path::Path,
        user: &str,
    ) -> Result<AccountLimits, UsersError> {
        self.applied(limits)
            .map_err(|problem| UsersError::InvalidField {
                path: path.to_path_buf(),
                user: user.to_owned(),
                field: "limits".into(),
                problem,
            })
    }

    fn applied(&self, mut limits: AccountLimits) -> Result<AccountLimits, String> {
        let flags = [
            ("quota_bytes", &self.quota_bytes),
            ("quota_files", &self.quota_files),
            ("upload_rate", &self.upload_rate),
            ("download_rate", &self.download_rate),
        ];
        for (field, value) in flags {
            let (Some(value), Some(slot)) = (value, limits.field_mut(field)) else {
                continue;
            };
            *slot = if value.trim().eq_ignore_ascii_case("default") {
                None
            } else {
                Some(
                    parse_byte_size(value)
                        .map_err(|problem| format!("--{}: {problem}", field.replace('_', "-")))?,
                )
            };
        }
        Ok(limits)
    }
}

/// The settings `ferry user rescan` needs to reach the homes: those of `ferry serve`.
#[derive(Debug, clap::Args)]
pub struct RescanArgs {
    /// The user whose home to measure.
    pub name: String,
    #[command(flatten)]
    pub settings: crate::config::ServeArgs,
}

/// The `ferry user` subcommands.
#[derive(Debug, clap::Subcommand)]
#[allow(
    clippy::large_enum_variant,
    reason = "parsed once per process and moved once; boxing would only add noise"
)]
pub enum UserCommand {
    /// Add a user, with all permissions unless --read-only.
    Add {
        /// The new user's login name.
        name: String,
        #[command(flatten)]
        users: UsersFileArg,
        /// Home directory relative to the server root [default: the user name].
        #[arg(long, value_name = "DIR")]
        home: Option<String>,
        /// Allow only listing and downloading.
        #[arg(long)]
        read_only: bool,
        /// Refuse this user's logins unless the control connection is TLS (AUTH TLS first).
        #[arg(long)]
        require_tls: bool,
        /// Read the password from the first line of standard input instead of prompting.
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// Change a user's quotas or bandwidth limits.
    Edit {
        name: String,
        #[command(flatten)]
        users: UsersFileArg,
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// Measure what a user's home holds (bytes, files) and store it for the quota checks:
    /// corrects changes made behind Ferry's back. Takes `ferry serve`'s settings (config
    /// file, FERRY_* variables, flags) to find the homes and the accounts.
    Rescan(RescanArgs),
    /// Change a user's password.
    Passwd {
        name: String,
        #[command(flatten)]
        users: UsersFileArg,
        /// Read the password from the first line of standard input instead of prompting.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Remove a user (their files stay where they are).
    Remove {
        name: String,
        #[command(flatten)]
        users: UsersFileArg,
    },
    /// List users: name, home, permissions, enabled, TLS required, allowed networks, quotas
    /// and bandwidth limits (never password hashes).
    List {
        #[command(flatten)]
        users: UsersFileArg,
    },
}

/// Runs a `ferry user` subcommand: passwords from the terminal (or stdin with
/// `--password-stdin`), messages to stdout.
pub fn run(cmd: UserCommand) -> Result<(), UsersError> {
    execute(cmd, &mut io::stdin().lock(), &mut io::stdout().lock())
}

/// [`run`] with its input and output passed in, so tests can drive it.
fn execute(
    cmd: UserCommand,
    stdin: &mut dyn BufRead,
    out: &mut dyn Write,
) -> Result<(), UsersError> {
    match cmd {
        UserCommand::Add {
            name,
            users,
            home,
            read_only,
            require_tls,
            password_stdin,
            limits,
        } => {
            let store = users.open()?;
            let path = store.location();
            let accounts = store.load(Some(out))?;
            // Everything is checked before asking for the password, so a typo in the
            // command does not cost the admin a password prompt first.
            validate_user_name(&name).map_err(|problem| UsersError::InvalidUserName {
                path: path.clone(),
                user: name.clone(),
                problem,
            })?;
            if accounts.get(&name).is_some() {
                return Err(UsersError::UserExists { path, user: name });
            }
            let home = validate_home(home.as_deref().unwrap_or(&name)).map_err(|problem| {
                UsersError::InvalidField {
                    path: path.clone(),
                    user: name.clone(),
                    field: "home".into(),
                    problem,
                }
            })?;
            let permissions = if read_only {
                Permissions::READ_ONLY
            } else {
                Permissions::ALL
            };
            let limits = limits.apply(AccountLimits::default(), &path, &name)?;
            let password = new_password(&name, password_stdin, stdin)?;
            store.insert(UserRecord {
                name: name.clone(),
                password_hash: hash_password(&password)?,
                home: home.clone(),
                permissions,
                enabled: true,
                allowed_networks: Vec::new(),
                require_tls,
                limits,
            })?;
            report(
                out,
                format_args!(
                    "added user `{name}` (home {}, permissions {permissions}) to {}",
                    home.display(),
                    path.display()
                ),
            )
        }
        UserCommand::Edit {
            name,
            users,
            limits,
        } => {
            let store = users.open()?;
            let path = store.location();
            let current = store.load(None)?;
            let Some(record) = current.get(&name) else {
                return Err(store.no_such_user(&name));
            };
            let limits = limits.apply(record.limits, &path, &name)?;
            store.set_limits(&name, limits)?;
            report(
                out,
                format_args!(
                    "changed the limits of `{name}` in {}: {}",
                    path.display(),
                    describe_limits(&limits)
                ),
            )
        }
        UserCommand::Rescan(_) => Err(UsersError::Output(io::Error::other(
            "ferry user rescan is run by the ferry binary, which can reach the homes",
        ))),
        UserCommand::Passwd {
            name,
            users,
            password_stdin,
        } => {
            let store = users.open()?;
            if store.load(None)?.get(&name).is_none() {
                return Err(store.no_such_user(&name));
            }
            let password = new_password(&name, password_stdin, stdin)?;
            store.set_password(&name, hash_password(&password)?)?;
            report(
                out,
                format_args!(
                    "changed the password of `{name}` in {}",
                    store.location().display()
                ),
            )
        }
        UserCommand::Remove { name, users } => {
            let store = users.open()?;
            store.remove(&name)?;
            report(
                out,
                format_args!(
                    "removed user `{name}` from {} (their files were kept)",
                    store.location().display()
                ),
            )
        }
        UserCommand::List { users } => {
            let accounts = users.open()?.load(None)?;
            write_user_table(&accounts, out).map_err(UsersError::Output)
        }
    }
}

/// `quota_bytes=10.0 GiB, upload_rate=1.0 MiB/s`, or `defaults` when every limit is the
/// server's.
fn describe_limits(limits: &AccountLimits) -> String {
    let set = limits.set_fields();
    if set.is_empty() {
        return "defaults".into();
    }
    set.into_iter()
        .map(|(field, value)| match field {
            _ if value == 0 => format!("{field}=none"),
            "quota_files" => format!("{field}={value}"),
            "quota_bytes" => format!("{field}={}", human_bytes(value)),
            _ => format!("{field}={}/s", human_bytes(value)),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn report(out: &mut dyn Write, message: fmt::Arguments<'_>) -> Result<(), UsersError> {
    writeln!(out, "{message}").map_err(UsersError::Output)
}

/// Reads the new password: one line of stdin, or typed twice at the terminal without echo.
/// Never empty.
fn new_password(
    name: &str,
    from_stdin: bool,
    stdin: &mut dyn BufRead,
) -> Result<String, UsersError> {
    let password = if from_stdin {
        let mut line = String::new();
        stdin
            .read_line(&mut line)
            .map_err(UsersError::ReadPassword)?;
        // Only the line ending goes: spaces are legitimate password characters.
        let without_newline = line.strip_suffix('\n').unwrap_or(&line);
        let password = without_newline
            .strip_suffix('\r')
            .unwrap_or(without_newline);
        password.to_string()
    } else {
        let first = rpassword::prompt_password(format!("New password for {name}: "))
            .map_err(UsersError::ReadPassword)?;
        if first.is_empty() {
            return Err(UsersError::EmptyPassword);
        }
        let second = rpassword::prompt_password("Retype the password: ")
            .map_err(UsersError::ReadPassword)?;
        if first != second {
            return Err(UsersError::PasswordMismatch);
        }
        first
    };
    if password.is_empty() {
        return Err(UsersError::EmptyPassword);
    }
    Ok(password)
}

/// Prints one aligned row per user. Hashes are never printed.
fn write_user_table(file: &UsersFile, out: &mut dyn Write) -> io::Result<()> {
    let rows: Vec<[String; 7]> = file
        .users()
        .map(|user| {
            let networks = if user.allowed_networks.is_empty() {
                "anywhere".to_string()
            } else {
                user.allowed_networks
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            };
            [
                user.name.clone(),
                user.home.display().to_string(),
                user.permissions.to_string(),
                if user.enabled { "yes" } else { "no" }.to_string(),
                if user.require_tls {
                    "required"
                } else {
                    "optional"
                }
                .to_string(),
                networks,
                describe_limits(&user.limits),
            ]
        })
        .collect();
    let header = [
        "NAME",
        "HOME",
        "PERMISSIONS",
        "ENABLED",
        "TLS",
        "NETWORKS",
        "LIMITS",
    ]
    .map(String::from);
    let mut widths = [0usize; 7];
    for row in std::iter::once(&header).chain(&rows) {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (column, (cell, width)) in row.iter().zip(widths).enumerate() {
            if column + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}  "));
            }
        }
        writeln!(out, "{line}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
