//! The shell's vocabulary: one line (`UPLOAD "my file.txt" /to/file`) parsed into a command,
//! and the help text. Command names are case-insensitive; names with spaces are quoted.

/// One command of the vocabulary, for parsing and for `help`.
pub struct Spec {
    pub name: &'static str,
    pub aliases: &'static [&'static str],
    pub usage: &'static str,
    pub summary: &'static str,
}

/// Every command, in the order `help` lists them: the seed's first.
pub const COMMANDS: &[Spec] = &[
    Spec {
        name: "upload",
        aliases: &["put"],
        usage: "upload [-c] [-r] SRC [DEST]",
        summary: "send a local file (-r: a directory tree); -c resumes",
    },
    Spec {
        name: "download",
        aliases: &["get"],
        usage: "download [-c] [-r] SRC [DEST]",
        summary: "fetch a remote file (-r: a directory tree); -c resumes",
    },
    Spec {
        name: "ls",
        aliases: &["dir", "list"],
        usage: "ls [PATH]",
        summary: "list a remote directory",
    },
    Spec {
        name: "rm",
        aliases: &["delete", "del"],
        usage: "rm PATH",
        summary: "delete a remote file",
    },
    Spec {
        name: "size",
        aliases: &[],
        usage: "size PATH",
        summary: "print a remote file's size in bytes",
    },
    Spec {
        name: "connme",
        aliases: &["ping", "noop"],
        usage: "connme",
        summary: "check the connection (NOOP) and print the round-trip time",
    },
    Spec {
        name: "byebye",
        aliases: &["bye", "quit", "exit"],
        usage: "byebye",
        summary: "log out (QUIT) and leave",
    },
    Spec {
        name: "cd",
        aliases: &["cwd"],
        usage: "cd PATH",
        summary: "change the remote directory",
    },
    Spec {
        name: "pwd",
        aliases: &[],
        usage: "pwd",
        summary: "print the remote directory",
    },
    Spec {
        name: "mkdir",
        aliases: &[],
        usage: "mkdir PATH",
        summary: "create a remote directory",
    },
    Spec {
        name: "rmdir",
        aliases: &[],
        usage: "rmdir PATH",
        summary: "remove an empty remote directory",
    },
    Spec {
        name: "mv",
        aliases: &["rename"],
        usage: "mv FROM TO",
        summary: "rename or move a remote file or directory",
    },
    Spec {
        name: "lcd",
        aliases: &[],
        usage: "lcd [DIR]",
        summary: "change the local directory (default: home)",
    },
    Spec {
        name: "lpwd",
        aliases: &[],
        usage: "lpwd",
        summary: "print the local directory",
    },
    Spec {
        name: "lls",
        aliases: &[],
        usage: "lls [DIR]",
        summary: "list a local directory",
    },
    Spec {
        name: "reconnect",
        aliases: &["open"],
        usage: "reconnect",
        summary: "log in again (after a dropped connection)",
    },
    Spec {
        name: "help",
        aliases: &["?"],
        usage: "help [COMMAND]",
        summary: "list the commands, or explain one",
    },
];

/// `upload` and `download`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferArgs {
    pub src: String,
    pub dest: Option<String>,
    /// `-c`/`--continue`
    pub resume: bool,
    /// `-r`/`--recursive`
    pub recursive: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Upload(TransferArgs),
    Download(TransferArgs),
    Ls(Option<String>),
    Rm(String),
    Size(String),
    Connme,
    Byebye,
    Cd(String),
    Pwd,
    Mkdir(String),
    Rmdir(String),
    Mv(String, String),
    Lcd(Option<String>),
    Lpwd,
    Lls(Option<String>),
    Reconnect,
    Help(Option<String>),
}

/// A parsed line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub command: Command,
    /// The line started with `-`: a failure is reported but does not stop a script.
    pub keep_going: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("unbalanced quotes")]
    Quotes,
    #[error("unknown command `{0}` (type help)")]
    Unknown(String),
    #[error("usage: {0}")]
    Usage(&'static str),
    #[error("unknown option {option}; usage: {usage}")]
    Option { option: String, usage: &'static str },
}

/// Parses one line; `None` for a blank line or a `#` comment.
pub fn parse(line: &str) -> Result<Option<Line>, ParseError> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let (keep_going, line) = match line.strip_prefix('-') {
        Some(rest) => (true, rest.trim_start()),
        None => (false, line),
    };
    let words = shlex::split(line).ok_or(ParseError::Quotes)?;
    let Some((word, rest)) = words.split_first() else {
        return Ok(None);
    };
    let spec = find(word).ok_or_else(|| ParseError::Unknown(word.clone()))?;
    let usage = ParseError::Usage(spec.usage);
    let (flags, args) = split_flags(spec, rest)?;
    let transfer = |args: &[String]| -> Result<TransferArgs, ParseError> {
        let (src, dest) = match args {
            [src] => (src.clone(), None),
            [src, dest] => (src.clone(), Some(dest.clone())),
            _ => return Err(ParseError::Usage(spec.usage)),
        };
        Ok(TransferArgs {
            src,
            dest,
            resume: flags.resume,
            recursive: flags.recursive,
        })
    };
    let command = match (spec.name, args.as_slice()) {
        ("upload", args) => Command::Upload(transfer(args)?),
        ("download", args) => Command::Download(transfer(args)?),
        ("ls", []) => Command::Ls(None),
        ("ls", [path]) => Command::Ls(Some(path.clone())),
        ("rm", [path]) => Command::Rm(path.clone()),
        ("size", [path]) => Command::Size(path.clone()),
        ("connme", []) => Command::Connme,
        ("byebye", []) => Command::Byebye,
        ("cd", [path]) => Command::Cd(path.clone()),
        ("pwd", []) => Command::Pwd,
        ("mkdir", [path]) => Command::Mkdir(path.clone()),
        ("rmdir", [path]) => Command::Rmdir(path.clone()),
        ("mv", [from, to]) => Command::Mv(from.clone(), to.clone()),
        ("lcd", []) => Command::Lcd(None),
        ("lcd", [dir]) => Command::Lcd(Some(dir.clone())),
        ("lpwd", []) => Command::Lpwd,
        ("lls", []) => Command::Lls(None),
        ("lls", [dir]) => Command::Lls(Some(dir.clone())),
        ("reconnect", []) => Command::Reconnect,
        ("help", []) => Command::Help(None),
        ("help", [topic]) => Command::Help(Some(topic.clone())),
        _ => return Err(usage),
    };
    Ok(Some(Line {
        command,
        keep_going,
    }))
}

/// The command a word names, by name or alias, in any case (`UPLOAD` is `upload`).
pub fn find(word: &str) -> Option<&'static Spec> {
    let word = word.to_lowercase();
    COMMANDS
        .iter()
        .find(|spec| spec.name == word || spec.aliases.contains(&word.as_str()))
}

#[derive(Default)]
struct Flags {
    resume: bool,
    recursive: bool,
}

/// Separates `-c`, `-r` (also `-rc`, `--continue`, `--recursive`) from the arguments; `--`
/// ends the options, for names that start with a dash.
fn split_flags(spec: &'static Spec, words: &[String]) -> Result<(Flags, Vec<String>), ParseError> {
    let takes_flags = matches!(spec.name, "upload" | "download");
    let mut flags = Flags::default();
    let mut args = Vec::new();
    let mut options_done = !takes_flags;
    for word in words {
        if options_done || word == "-" || !word.starts_with('-') {
            args.push(word.clone());
            continue;
        }
        let unknown = || ParseError::Option {
            option: word.clone(),
            usage: spec.usage,
        };
        match word.to_lowercase().as_str() {
            "--" => options_done = true,
            "--continue" => flags.resume = true,
            "--recursive" => flags.recursive = true,
            short if !short.starts_with("--") => {
                for letter in short.chars().skip(1) {
                    match letter {
                        'c' => flags.resume = true,
                        'r' => flags.recursive = true,
                        _ => return Err(unknown()),
                    }
                }
            }
            _ => return Err(unknown()),
        }
    }
    Ok((flags, args))
}

/// `help`: every command with its usage, or one command with its aliases.
pub fn help(topic: Option<&str>) -> Result<String, ParseError> {
    let Some(topic) = topic else {
        let width = COMMANDS
            .iter()
            .map(|spec| spec.usage.len())
            .max()
            .unwrap_or(0);
        let mut text = String::from("Commands (any case; quote names with spaces):\n");
        for spec in COMMANDS {
            text.push_str(&format!("  {:width$}  {}\n", spec.usage, spec.summary));
        }
        text.push_str("In scripts, a line starting with - may fail without stopping the script.");
        return Ok(text);
    };
    let spec = find(topic).ok_or_else(|| ParseError::Unknown(topic.to_owned()))?;
    let mut text = format!("usage: {}\n  {}", spec.usage, spec.summary);
    if !spec.aliases.is_empty() {
        text.push_str(&format!("\n  also: {}", spec.aliases.join(", ")));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(line: &str) -> Command {
        parse(line).expect("parses").expect("not blank").command
    }

    #[test]
    fn the_seeds_uppercase_forms_parse() {
        assert_eq!(
            command("UPLOAD /from/file /to/file"),
            Command::Upload(TransferArgs {
                src: "/from/file".into(),
                dest: Some("/to/file".into()),
                resume: false,
                recursive: false,
            })
        );
        assert_eq!(command("DownLoad x"), command("download x"));
        assert_eq!(command("BYEBYE"), Command::Byebye);
        assert_eq!(command("CONNME"), Command::Connme);
    }

    #[test]
    fn quoted_names_keep_their_spaces() {
        assert_eq!(
            command(r#"mv "old name.txt" 'new name.txt'"#),
            Command::Mv("old name.txt".into(), "new name.txt".into())
        );
        assert_eq!(command(r"rm my\ file"), Command::Rm("my file".into()));
        assert_eq!(parse(r#"rm "unfinished"#), Err(ParseError::Quotes));
    }

    #[test]
    fn transfer_flags_combine_and_double_dash_ends_them() {
        let Command::Download(args) = command("download -rc --  -odd-name") else {
            panic!("not a download");
        };
        assert!(args.resume && args.recursive);
        assert_eq!(args.src, "-odd-name");
        let Command::Upload(args) = command("put --continue a b") else {
            panic!("not an upload");
        };
        assert!(args.resume && !args.recursive);
        assert!(matches!(
            parse("upload -x a"),
            Err(ParseError::Option { .. })
        ));
    }

    #[test]
    fn wrong_argument_counts_and_unknown_words_are_errors() {
        assert_eq!(parse("rm"), Err(ParseError::Usage("rm PATH")));
        assert_eq!(parse("pwd extra"), Err(ParseError::Usage("pwd")));
        assert_eq!(
            parse("upload a b c"),
            Err(ParseError::Usage("upload [-c] [-r] SRC [DEST]"))
        );
        assert_eq!(
            parse("frobnicate"),
            Err(ParseError::Unknown("frobnicate".into()))
        );
    }

    #[test]
    fn blanks_comments_and_the_keep_going_prefix() {
        assert_eq!(parse("   "), Ok(None));
        assert_eq!(parse("# a comment"), Ok(None));
        let line = parse("-rm maybe.txt").expect("parses").expect("a command");
        assert!(line.keep_going);
        assert_eq!(line.command, Command::Rm("maybe.txt".into()));
    }

    #[test]
    fn help_lists_every_command_and_explains_one() {
        let all = help(None).expect("help");
        for spec in COMMANDS {
            assert!(all.contains(spec.usage), "{}", spec.name);
        }
        assert!(
            help(Some("GET"))
                .expect("alias")
                .contains("download [-c] [-r] SRC [DEST]")
        );
        assert!(help(Some("nope")).is_err());
    }
}
