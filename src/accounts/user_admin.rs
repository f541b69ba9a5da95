//! `ferry user add|passwd|remove|list`: edits the users file without ever writing a plaintext password.

use crate::accounts::password::hash_password;
use crate::accounts::users::{
    Permissions, UserRecord, UsersError, UsersFile, validate_home, validate_user_name,
};
use std::fmt;
use std::io::{self, BufRead, Write};
use std::path::{Path, PathBuf};

/// The users file edited when neither `--users` nor `FERRY_USERS` is given: the one shipped
/// in the repository (relative to the working directory).
pub const DEFAULT_USERS_FILE: &str = "config/users.toml";

/// `--users FILE`, shared by every subcommand.
#[derive(Debug, Clone, clap::Args)]
pub struct UsersFileArg {
    /// The users file to edit.
    #[arg(
        long = "users",
        value_name = "FILE",
        env = "FERRY_USERS",
        default_value = DEFAULT_USERS_FILE
    )]
    pub path: PathBuf,
}

/// The `ferry user` subcommands.
#[derive(Debug, clap::Subcommand)]
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
    },
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
    /// List users: name, home, permissions, enabled, TLS required, allowed networks (never
    /// password hashes).
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
        } => {
            let path = users.path;
            let file = load_or_create(&path, out)?;
            // Everything is checked before asking for the password, so a typo in the
            // command does not cost the admin a password prompt first.
            validate_user_name(&name).map_err(|problem| UsersError::InvalidUserName {
                path: path.clone(),
                user: name.clone(),
                problem,
            })?;
            if file.get(&name).is_some() {
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
            let password = new_password(&name, password_stdin, stdin)?;
            let record = UserRecord {
                name: name.clone(),
                password_hash: hash_password(&password)?,
                home: home.clone(),
                permissions,
                enabled: true,
                allowed_networks: Vec::new(),
                require_tls,
            };
            edit_locked(&path, |file| {
                // Checked again under the lock: another `add` may have won the name meanwhile.
                if file.get(&name).is_some() {
                    return Err(UsersError::UserExists {
                        path: path.clone(),
                        user: name.clone(),
                    });
                }
                file.insert(record);
                Ok(())
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
        UserCommand::Passwd {
            name,
            users,
            password_stdin,
        } => {
            let path = users.path;
            if UsersFile::load(&path)?.get(&name).is_none() {
                return Err(UsersError::NoSuchUser { path, user: name });
            }
            let password = new_password(&name, password_stdin, stdin)?;
            let password_hash = hash_password(&password)?;
            edit_locked(&path, |file| match file.get_mut(&name) {
                Some(record) => {
                    record.password_hash = password_hash;
                    Ok(())
                }
                // Removed while the password was typed.
                None => Err(UsersError::NoSuchUser {
                    path: path.clone(),
                    user: name.clone(),
                }),
            })?;
            report(
                out,
                format_args!("changed the password of `{name}` in {}", path.display()),
            )
        }
        UserCommand::Remove { name, users } => {
            let path = users.path;
            edit_locked(&path, |file| match file.remove(&name) {
                Some(_) => Ok(()),
                None => Err(UsersError::NoSuchUser {
                    path: path.clone(),
                    user: name.clone(),
                }),
            })?;
            report(
                out,
                format_args!(
                    "removed user `{name}` from {} (their files were kept)",
                    path.display()
                ),
            )
        }
        UserCommand::List { users } => {
            let file = UsersFile::load(&users.path)?;
            write_user_table(&file, out).map_err(UsersError::Output)
        }
    }
}

/// Applies `edit` to the users file as it is now and saves the result, all under an exclusive
/// lock, so that concurrent edits (ten `ferry user add` at once, a `remove` racing an `add`)
/// each apply to what the one before saved instead of overwriting it. The file is read again
/// here, under the lock: a copy read earlier (before a password prompt, or an argon2 hash that
/// takes 50 ms) may be stale. An error from `edit` leaves the file untouched.
fn edit_locked(
    path: &Path,
    edit: impl FnOnce(&mut UsersFile) -> Result<(), UsersError>,
) -> Result<(), UsersError> {
    let _lock = UsersFileLock::acquire(path)?;
    // Whatever `load_or_create` would say was said already, before the lock.
    let mut file = load_or_create(path, &mut io::sink())?;
    edit(&mut file)?;
    file.save(path)
}

/// An exclusive flock(2) on the users file's sidecar lock file, `<users file>.lock` beside the
/// file a symlink leads to, held until dropped. Not on the users file itself: `save` replaces
/// that by renaming a new file over it, and a lock on the old inode would not exclude the next
/// editor, who opens the new one. The lock file is never removed: removing it would let two
/// editors hold locks on two different lock files. The server does not take it: it only reads,
/// and every save is an atomic rename.
#[derive(Debug)]
struct UsersFileLock {
    _file: std::fs::File,
}

impl UsersFileLock {
    fn acquire(users_file: &Path) -> Result<Self, UsersError> {
        let path = lock_file_path(users_file);
        let lock_error = |source| UsersError::Lock {
            path: path.clone(),
            source,
        };
        let file = {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(&path)
                .map_err(lock_error)?
        };
        // Blocking: another `ferry user` holds it for the few milliseconds of a save.
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|errno| lock_error(io::Error::from(errno)))?;
        Ok(UsersFileLock { _file: file })
    }
}

/// `<users file>.lock`, beside the file a symlink at `users_file` leads to (where `save` writes).
fn lock_file_path(users_file: &Path) -> PathBuf {
    let target = std::fs::canonicalize(users_file).unwrap_or_else(|_| users_file.to_path_buf());
    let mut name = target.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    target.with_file_name(name)
}

/// Loads `path`, or starts an empty users file when it does not exist yet.
fn load_or_create(path: &Path, out: &mut dyn Write) -> Result<UsersFile, UsersError> {
    match UsersFile::load(path) {
        Err(UsersError::Read { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            report(
                out,
                format_args!("{} does not exist; creating it", path.display()),
            )?;
            Ok(UsersFile::new())
        }
        loaded => loaded,
    }
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
    let rows: Vec<[String; 6]> = file
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
            ]
        })
        .collect();
    let header = ["NAME", "HOME", "PERMISSIONS", "ENABLED", "TLS", "NETWORKS"].map(String::from);
    let mut widths = [0usize; 6];
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
mod tests {
    use super::*;
    use crate::accounts::password::verify_password;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct UserCli {
        #[command(subcommand)]
        command: UserCommand,
    }

    fn parse(args: &[&str]) -> UserCommand {
        UserCli::try_parse_from(std::iter::once("ferry-user").chain(args.iter().copied()))
            .expect("valid arguments")
            .command
    }

    /// Runs `args` with `stdin` as standard input; returns the result and what was printed.
    fn run_with(args: &[&str], stdin: &str) -> (Result<(), UsersError>, String) {
        let mut out = Vec::new();
        let result = execute(parse(args), &mut stdin.as_bytes(), &mut out);
        (result, String::from_utf8(out).expect("utf-8 output"))
    }

    struct Scratch {
        _dir: tempfile::TempDir,
        users: String,
    }

    fn scratch() -> Scratch {
        let dir = tempfile::tempdir().expect("tempdir");
        let users = dir.path().join("users.toml").display().to_string();
        Scratch { _dir: dir, users }
    }

    #[test]
    fn command_line_definition_is_consistent() {
        use clap::CommandFactory;
        UserCli::command().debug_assert();
    }

    #[test]
    fn add_creates_the_file_with_a_hashed_password_and_defaults() {
        let s = scratch();
        let (result, output) = run_with(
            &["add", "bob", "--users", &s.users, "--password-stdin"],
            "s3cret pw\n",
        );
        result.expect("add");
        assert!(output.contains("added user `bob`"), "{output}");
        let text = std::fs::read_to_string(&s.users).expect("read");
        assert!(!text.contains("s3cret"), "no plaintext password on disk");
        let users = UsersFile::load(Path::new(&s.users)).expect("load");
        let bob = users.get("bob").expect("bob");
        assert!(verify_password(&bob.password_hash, "s3cret pw"));
        assert_eq!(bob.home, PathBuf::from("bob"));
        assert_eq!(bob.permissions, Permissions::ALL);
        assert!(bob.enabled);
    }

    #[test]
    fn add_read_only_with_home_keeps_existing_users() {
        let s = scratch();
        run_with(
            &["add", "amy", "--users", &s.users, "--password-stdin"],
            "a\n",
        )
        .0
        .expect("add amy");
        run_with(
            &[
                "add",
                "bob",
                "--users",
                &s.users,
                "--home",
                "shared/bob",
                "--read-only",
                "--password-stdin",
            ],
            "b\r\n",
        )
        .0
        .expect("add bob");
        let users = UsersFile::load(Path::new(&s.users)).expect("load");
        assert!(users.get("amy").is_some());
        let bob = users.get("bob").expect("bob");
        assert_eq!(bob.permissions, Permissions::READ_ONLY);
        assert_eq!(bob.home, PathBuf::from("shared/bob"));
        assert!(verify_password(&bob.password_hash, "b"), "CRLF is stripped");
    }

    #[test]
    fn add_refuses_existing_user_bad_home_and_empty_password() {
        let s = scratch();
        run_with(
            &["add", "bob", "--users", &s.users, "--password-stdin"],
            "pw\n",
        )
        .0
        .expect("add");
        let (result, _) = run_with(
            &["add", "bob", "--users", &s.users, "--password-stdin"],
            "x\n",
        );
        assert!(
            matches!(result, Err(UsersError::UserExists { .. })),
            "{result:?}"
        );
        let (result, _) = run_with(
            &[
                "add",
                "eve",
                "--users",
                &s.users,
                "--home",
                "../etc",
                "--password-stdin",
            ],
            "x\n",
        );
        let message = result.expect_err("dot-dot home").to_string();
        assert!(
            message.contains("user `eve`: field `home`: must not contain `..`"),
            "{message}"
        );
        let (result, _) = run_with(
            &["add", "eve", "--users", &s.users, "--password-stdin"],
            "\n",
        );
        assert!(
            matches!(result, Err(UsersError::EmptyPassword)),
            "{result:?}"
        );
        let (result, _) = run_with(&["add", "eve", "--users", &s.users, "--password-stdin"], "");
        assert!(
            matches!(result, Err(UsersError::EmptyPassword)),
            "{result:?}"
        );
        let (result, _) = run_with(
            &["add", "bad name", "--users", &s.users, "--password-stdin"],
            "x\n",
        );
        assert!(
            matches!(result, Err(UsersError::InvalidUserName { .. })),
            "{result:?}"
        );
        let users = UsersFile::load(Path::new(&s.users)).expect("load");
        assert_eq!(users.len(), 1, "failed commands change nothing");
    }

    #[test]
    fn passwd_changes_only_the_password() {
        let s = scratch();
        run_with(
            &[
                "add",
                "bob",
                "--users",
                &s.users,
                "--read-only",
                "--password-stdin",
            ],
            "old\n",
        )
        .0
        .expect("add");
        run_with(
            &["passwd", "bob", "--users", &s.users, "--password-stdin"],
            "new\n",
        )
        .0
        .expect("passwd");
        let users = UsersFile::load(Path::new(&s.users)).expect("load");
        let bob = users.get("bob").expect("bob");
        assert!(verify_password(&bob.password_hash, "new"));
        assert!(!verify_password(&bob.password_hash, "old"));
        assert_eq!(bob.permissions, Permissions::READ_ONLY);
        let (result, _) = run_with(
            &["passwd", "nobody", "--users", &s.users, "--password-stdin"],
            "x\n",
        );
        assert!(
            matches!(result, Err(UsersError::NoSuchUser { .. })),
            "{result:?}"
        );
    }

    #[test]
    fn remove_deletes_one_user() {
        let s = scratch();
        for name in ["amy", "bob"] {
            run_with(
                &["add", name, "--users", &s.users, "--password-stdin"],
                "pw\n",
            )
            .0
            .expect("add");
        }
        run_with(&["remove", "amy", "--users", &s.users], "")
            .0
            .expect("remove");
        let users = UsersFile::load(Path::new(&s.users)).expect("load");
        assert!(users.get("amy").is_none() && users.get("bob").is_some());
        let (result, _) = run_with(&["remove", "amy", "--users", &s.users], "");
        assert!(
            matches!(result, Err(UsersError::NoSuchUser { .. })),
            "{result:?}"
        );
    }

    #[test]
    fn list_shows_accounts_but_never_hashes() {
        let s = scratch();
        run_with(
            &[
                "add",
                "bob",
                "--users",
                &s.users,
                "--read-only",
                "--password-stdin",
            ],
            "pw\n",
        )
        .0
        .expect("add");
        let (result, output) = run_with(&["list", "--users", &s.users], "");
        result.expect("list");
        let lines: Vec<_> = output.lines().collect();
        assert_eq!(lines.len(), 2, "{output}");
        assert!(lines[0].starts_with("NAME"), "{output}");
        assert!(lines[1].starts_with("bob"), "{output}");
        assert!(
            lines[1].contains("read-only") && lines[1].contains("yes"),
            "{output}"
        );
        assert!(!output.contains("argon2"), "{output}");
    }

    #[test]
    fn add_with_require_tls_sets_it_in_the_file_and_list_shows_it() {
        let s = scratch();
        for (name, extra) in [("tina", Some("--require-tls")), ("pat", None)] {
            let mut args = vec!["add", name, "--users", &s.users, "--password-stdin"];
            args.extend(extra);
            run_with(&args, "pw\n").0.expect("add");
        }
        let file = UsersFile::load(Path::new(&s.users)).expect("load");
        assert!(file.get("tina").expect("tina").require_tls);
        assert!(!file.get("pat").expect("pat").require_tls);
        let (result, output) = run_with(&["list", "--users", &s.users], "");
        result.expect("list");
        let row = |name: &str| {
            output
                .lines()
                .find(|line| line.starts_with(name))
                .unwrap_or_else(|| panic!("no {name} in {output}"))
                .to_string()
        };
        assert!(
            output.lines().next().is_some_and(|h| h.contains("TLS")),
            "{output}"
        );
        assert!(row("tina").contains("required"), "{output}");
        assert!(row("pat").contains("optional"), "{output}");
    }

    #[test]
    fn users_flag_defaults_to_the_shipped_file() {
        // FERRY_USERS would override the default; tests do not set it.
        if std::env::var_os("FERRY_USERS").is_some() {
            return;
        }
        match parse(&["list"]) {
            UserCommand::List { users } => {
                assert_eq!(users.path, PathBuf::from(DEFAULT_USERS_FILE))
            }
            other => panic!("parsed as {other:?}"),
        }
    }
}
