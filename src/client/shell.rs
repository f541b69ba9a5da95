//! Running one command: the session (reopened after a dropped connection), the remote and
//! local working directories, and what each command prints, as text or as JSON.

use super::command::{self, Command, TransferArgs};
use super::error::ClientError;
use super::interrupt;
use super::listing::Entry;
use super::session::{ConnectOptions, Session};
use super::target::Target;
use super::transfer::Transferred;
use super::tree::{self, TreeEvent, TreeSummary};
use indicatif::HumanBytes;
use serde_json::{Value, json};
use std::fmt::Display;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Whether the shell goes on after a command.
#[derive(Debug, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Quit,
}

/// Where results go: stdout, as text or one JSON value per line.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    pub json: bool,
}

impl Output {
    /// A command's result (`ls`, `size`, `pwd`...): stdout, in the chosen format.
    fn result(&self, text: impl Display, json: impl FnOnce() -> Value) {
        if self.json {
            print_line(&json());
        } else {
            print_line(&text);
        }
    }

    /// A confirmation ("uploaded a -> b"): stdout as text; stderr with --json, so that stdout
    /// holds nothing but JSON.
    pub fn note(&self, text: impl Display) {
        if self.json {
            eprintln!("{text}");
        } else {
            print_line(&text);
        }
    }
}

/// Writes a line to stdout; a closed stdout (`| head`) is not worth a panic.
fn print_line(text: &dyn Display) {
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}

pub struct Shell {
    pub target: Target,
    password: String,
    options: ConnectOptions,
    session: Option<Session>,
    /// The remote directory when last known, restored when the session is reopened.
    pub remote_dir: Option<String>,
    pub output: Output,
}

impl Shell {
    pub fn new(target: Target, password: String, options: ConnectOptions, output: Output) -> Self {
        Shell {
            target,
            password,
            options,
            session: None,
            remote_dir: None,
            output,
        }
    }

    /// Opens a session (again), back in the directory the last one was in; returns the
    /// server's greeting.
    pub fn connect(&mut self) -> Result<String, ClientError> {
        self.session = None;
        let mut session = Session::open(&self.target, &self.password, &self.options)?;
        match &self.remote_dir {
            Some(dir) => session.cwd(dir)?,
            None => self.remote_dir = session.pwd().ok(),
        }
        Ok(self.session.insert(session).greeting.clone())
    }

    /// Logs out politely, if connected.
    pub fn close(&mut self) {
        if let Some(session) = self.session.take() {
            // Leaving anyway: a server that does not answer QUIT changes nothing.
            let _ = session.quit();
        }
    }

    fn session(&mut self) -> Result<&mut Session, ClientError> {
        self.session
            .as_mut()
            .ok_or_else(|| ClientError::Usage("not connected (type reconnect)".into()))
    }

    /// Runs one command. An error that leaves the session unusable drops it.
    pub fn execute(&mut self, command: &Command) -> Result<Flow, ClientError> {
        interrupt::clear();
        let result = self.dispatch(command);
        if let Err(error) = &result
            && error.ends_session()
        {
            self.session = None;
        }
        result
    }

    fn dispatch(&mut self, command: &Command) -> Result<Flow, ClientError> {
        let output = self.output;
        match command {
            Command::Upload(args) => self.upload(args)?,
            Command::Download(args) => self.download(args)?,
            Command::Ls(path) => self.ls(path.as_deref())?,
            Command::Rm(path) => {
                self.session()?.rm(path)?;
                output.note(format!("removed {path}"));
            }
            Command::Size(path) => {
                let size = self.session()?.size(path)?;
                output.result(
                    format!("{path}: {size} bytes"),
                    || json!({"path": path, "size": size}),
                );
            }
            Command::Connme => {
                let rtt = self.session()?.noop()?;
                let millis = rtt.as_secs_f64() * 1000.0;
                output.result(
                    format!("connme: round trip {millis:.2} ms"),
                    || json!({"rtt_ms": millis}),
                );
            }
            Command::Byebye => {
                self.close();
                return Ok(Flow::Quit);
            }
            Command::Cd(path) => {
                let session = self.session()?;
                session.cwd(path)?;
                let now = session.pwd()?;
                self.remote_dir = Some(now);
            }
            Command::Pwd => {
                let dir = self.session()?.pwd()?;
                output.result(&dir, || json!({"path": dir}));
            }
            Command::Mkdir(path) => {
                self.session()?.mkdir(path)?;
                output.note(format!("created {path}"));
            }
            Command::Rmdir(path) => {
                self.session()?.rmdir(path)?;
                output.note(format!("removed directory {path}"));
            }
            Command::Mv(from, to) => {
                self.session()?.rename(from, to)?;
                output.note(format!("renamed {from} -> {to}"));
            }
            Command::Lcd(dir) => lcd(dir.as_deref())?,
            Command::Lpwd => {
                let dir = current_dir()?;
                output.result(dir.display(), || json!({"path": dir}));
            }
            Command::Lls(dir) => self.lls(dir.as_deref())?,
            Command::Reconnect => {
                self.close();
                let greeting = self.connect()?;
                output.note(format!("connected to {} ({greeting})", self.target));
            }
            Command::Help(topic) => {
                let text = command::help(topic.as_deref())
                    .map_err(|error| ClientError::Usage(error.to_string()))?;
                print_line(&text);
            }
        }
        Ok(Flow::Continue)
    }

    fn upload(&mut self, args: &TransferArgs) -> Result<(), ClientError> {
        let local = PathBuf::from(&args.src);
        let name = local_name(&local)?;
        let output = self.output;
        let session = self.session()?;
        let remote = match &args.dest {
            None => name,
            Some(dest) if dest.ends_with('/') || session.is_dir(dest)? => {
                tree::join_remote(dest, &name)
            }
            Some(dest) => dest.clone(),
        };
        if args.recursive {
            let summary =
                tree::upload_tree(session, &local, &remote, args.resume, &mut report(output))?;
            output.note(summarise("uploaded", &summary));
        } else {
            let done = super::transfer::upload(session, &local, &remote, args.resume)?;
            output.note(describe("uploaded", &args.src, &remote, &done));
        }
        Ok(())
    }

    fn download(&mut self, args: &TransferArgs) -> Result<(), ClientError> {
        let output = self.output;
        let name = args
            .src
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or("");
        let local = match &args.dest {
            Some(dest) if dest.ends_with('/') || Path::new(dest).is_dir() => {
                Path::new(dest).join(plain_remote_name(name, &args.src)?)
            }
            Some(dest) => PathBuf::from(dest),
            None => PathBuf::from(plain_remote_name(name, &args.src)?),
        };
        let session = self.session()?;
        if args.recursive {
            let summary =
                tree::download_tree(session, &args.src, &local, args.resume, &mut report(output))?;
            output.note(summarise("downloaded", &summary));
        } else {
            let done = super::transfer::download(session, &args.src, &local, args.resume)?;
            let to = local.display().to_string();
            output.note(describe("downloaded", &args.src, &to, &done));
        }
        Ok(())
    }

    fn ls(&mut self, path: Option<&str>) -> Result<(), ClientError> {
        let output = self.output;
        let session = self.session()?;
        if !output.json {
            let command = path.map_or("LIST".to_owned(), |path| format!("LIST {path}"));
            for line in session.listing(&command)? {
                print_line(&line);
            }
            return Ok(());
        }
        let entries = match session.entries(path.unwrap_or("")) {
            // MLSD refuses a file (501); MLST describes it.
            Err(ClientError::Reply { .. }) if session.features.mlst && path.is_some() => {
                vec![session.mlst(path.unwrap_or_default())?]
            }
            other => other?,
        };
        print_line(&Value::Array(entries.iter().map(Entry::to_json).collect()));
        Ok(())
    }

    fn lls(&self, dir: Option<&str>) -> Result<(), ClientError> {
        let dir = Path::new(dir.unwrap_or("."));
        let read = std::fs::read_dir(dir).map_err(|error| ClientError::local(dir, error))?;
        let mut entries: Vec<Entry> = read
            .flatten()
            .filter_map(|entry| {
                let metadata = entry.metadata().ok()?;
                Some(Entry::local(
                    entry.file_name().to_string_lossy().into_owned(),
                    &metadata,
                ))
            })
            .collect();
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        if self.output.json {
            print_line(&Value::Array(entries.iter().map(Entry::to_json).collect()));
        } else {
            for entry in entries {
                let size = entry.size.map(|size| size.to_string()).unwrap_or_default();
                let slash = if entry.kind == super::listing::EntryKind::Dir {
                    "/"
                } else {
                    ""
                };
                print_line(&format!("{size:>12}  {}{slash}", entry.name));
            }
        }
        Ok(())
    }
}

/// The file name of a local path, as the default remote name (`.` and `..` name the
/// directory they stand for; symlinks keep their own name).
fn local_name(path: &Path) -> Result<String, ClientError> {
    let named = match path.file_name() {
        Some(_) => path.to_owned(),
        None => path
            .canonicalize()
            .map_err(|error| ClientError::local(path, error))?,
    };
    named
        .file_name()
        .and_then(|name| name.to_str())
        .map(str::to_owned)
        .ok_or_else(|| ClientError::Usage(format!("{}: give a destination name", path.display())))
}

/// The last component of a remote path, as the default local name, if it is a safe one.
fn plain_remote_name<'a>(name: &'a str, src: &str) -> Result<&'a str, ClientError> {
    if super::listing::is_plain_name(name) {
        Ok(name)
    } else {
        Err(ClientError::Usage(format!(
            "{src}: give a destination name"
        )))
    }
}

fn lcd(dir: Option<&str>) -> Result<(), ClientError> {
    let dir = match dir {
        Some(dir) => PathBuf::from(dir),
        None => std::env::var_os("HOME")
            .map(PathBuf::from)
            .ok_or_else(|| ClientError::Usage("HOME is not set; give a directory".into()))?,
    };
    std::env::set_current_dir(&dir).map_err(|error| ClientError::local(&dir, error))
}

fn current_dir() -> Result<PathBuf, ClientError> {
    std::env::current_dir().map_err(|error| ClientError::local(".", error))
}

/// The line for one transfer: `uploaded a.bin -> b.bin (5 B in 0.01 s, 500 B/s)`.
fn describe(verb: &str, from: &str, to: &str, done: &Transferred) -> String {
    if done.already_complete {
        return format!("{to} is already complete ({} bytes)", done.offset);
    }
    let seconds = done.elapsed.as_secs_f64();
    let rate = if seconds > 0.0 {
        HumanBytes((done.bytes as f64 / seconds) as u64).to_string()
    } else {
        "-".into()
    };
    let resumed = if done.offset > 0 {
        format!(", resumed at byte {}", done.offset)
    } else {
        String::new()
    };
    format!(
        "{verb} {from} -> {to} ({} bytes in {seconds:.2} s, {rate}/s{resumed})",
        done.bytes
    )
}

fn summarise(verb: &str, summary: &TreeSummary) -> String {
    let skipped = if summary.skipped > 0 {
        format!(", {} skipped", summary.skipped)
    } else {
        String::new()
    };
    format!(
        "{verb} {} files, {} bytes{skipped}",
        summary.files, summary.bytes
    )
}

/// Prints each file of a tree transfer as it completes.
fn report(output: Output) -> impl FnMut(TreeEvent) {
    move |event| match event {
        TreeEvent::File { from, to, done } => output.note(describe("  ", from, to, &done)),
        TreeEvent::Skipped { path, why } => eprintln!("ferry client: skipped {path}: {why}"),
    }
}
