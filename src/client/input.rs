//! Where commands come from. `-c` arguments and piped stdin run as a script that stops at the
//! first failure; a terminal gets the interactive prompt, with line editing, history, and an
//! offer to reconnect when the connection drops.

use super::command;
use super::error::ClientError;
use super::interrupt::EXIT_INTERRUPTED;
use super::shell::{Flow, Shell};
use rustyline::error::ReadlineError;
use std::fmt::Display;
use std::io;
use std::path::PathBuf;

/// Exit status when a command fails.
pub const EXIT_FAILED: u8 = 1;

/// The interactive history, in the user's home directory.
const HISTORY_FILE: &str = ".ferry_history";

/// Lines kept in the history file.
const HISTORY_LINES: usize = 1000;

fn report(line: &str, error: &dyn Display) {
    eprintln!("ferry client: {}: {error}", line.trim());
}

/// Runs `lines` in order and returns the exit status: 0, [`EXIT_FAILED`] at the first command
/// that fails (unless it starts with `-`), or 130 after Ctrl-C.
pub fn run_script(shell: &mut Shell, lines: impl Iterator<Item = io::Result<String>>) -> u8 {
    for line in lines {
        let line = match line {
            Ok(line) => line,
            Err(error) => {
                eprintln!("ferry client: reading commands: {error}");
                return EXIT_FAILED;
            }
        };
        let parsed = match command::parse(&line) {
            Ok(Some(parsed)) => parsed,
            Ok(None) => continue,
            Err(error) => {
                report(&line, &error);
                return EXIT_FAILED;
            }
        };
        match shell.execute(&parsed.command) {
            Ok(Flow::Quit) => return 0,
            Ok(Flow::Continue) => {}
            Err(ClientError::Interrupted) => {
                report(&line, &ClientError::Interrupted);
                return EXIT_INTERRUPTED;
            }
            Err(error) => {
                report(&line, &error);
                if !parsed.keep_going {
                    shell.close();
                    return EXIT_FAILED;
                }
            }
        }
    }
    shell.close();
    0
}

/// The interactive shell, until `byebye` or end of input (Ctrl-D).
pub fn run_interactive(shell: &mut Shell) -> u8 {
    let config = rustyline::Config::builder()
        .auto_add_history(true)
        .max_history_size(HISTORY_LINES)
        .map(|builder| builder.build())
        .unwrap_or_default();
    let mut editor = match rustyline::DefaultEditor::with_config(config) {
        Ok(editor) => editor,
        Err(error) => {
            eprintln!("ferry client: cannot use the terminal: {error}");
            return EXIT_FAILED;
        }
    };
    let history = history_path();
    if let Some(path) = &history {
        // No history yet is the normal first run.
        let _ = editor.load_history(path);
    }
    println!("Type help for the commands, byebye to leave.");
    loop {
        let prompt = format!("ferry {}> ", shell.remote_dir.as_deref().unwrap_or("?"));
        let line = match editor.readline(&prompt) {
            Ok(line) => line,
            // Ctrl-C at the prompt abandons the line, as in a shell.
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => {
                shell.close();
                break;
            }
            Err(error) => {
                eprintln!("ferry client: reading the terminal: {error}");
                shell.close();
                break;
            }
        };
        let parsed = match command::parse(&line) {
            Ok(Some(parsed)) => parsed,
            Ok(None) => continue,
            Err(error) => {
                report(&line, &error);
                continue;
            }
        };
        match shell.execute(&parsed.command) {
            Ok(Flow::Quit) => break,
            Ok(Flow::Continue) => {}
            Err(error) => {
                report(&line, &error);
                if error.ends_session() {
                    offer_reconnect(shell, &mut editor, &error);
                }
            }
        }
    }
    if let Some(path) = &history {
        // Losing the history is not worth an error at exit.
        let _ = editor.save_history(path);
    }
    0
}

/// After the session was lost: a cancelled transfer reconnects at once (the old connection was
/// only dropped to get out of the transfer); a dropped connection asks first.
fn offer_reconnect(shell: &mut Shell, editor: &mut rustyline::DefaultEditor, error: &ClientError) {
    if !matches!(error, ClientError::Interrupted) {
        let answer = editor
            .readline("Reconnect? [Y/n] ")
            .unwrap_or_else(|_| "n".into());
        let answer = answer.trim().to_lowercase();
        if !(answer.is_empty() || answer.starts_with('y')) {
            eprintln!("ferry client: not connected; type reconnect to log in again");
            return;
        }
    }
    match shell.connect() {
        Ok(_) => eprintln!("ferry client: reconnected to {}", shell.target),
        Err(error) => report("reconnect", &error),
    }
}

fn history_path() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(HISTORY_FILE))
}
