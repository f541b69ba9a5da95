//! Command delivery: the hook's program run directly (never through a shell) with the event in
//! its environment, in `{field}` placeholders of its arguments, and as JSON on its standard
//! input. Exit status 0 is a delivery; anything else, or the timeout (which kills it), is a
//! failed attempt, retried by `delivery`.

use super::event::Event;
use std::process::Stdio;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Variables the child keeps from Ferry's environment; everything else is left out, since
/// Ferry's may hold credentials (`AWS_SECRET_ACCESS_KEY`, `PGPASSWORD`).
const INHERITED_VARIABLES: [&str; 5] = ["PATH", "HOME", "LANG", "LC_ALL", "TZ"];
/// Most bytes of the command's standard error kept for the log line of a failed attempt.
const STDERR_EXCERPT: usize = 2048;

#[derive(Debug)]
pub struct CommandHook {
    argv: Vec<String>,
}

impl CommandHook {
    pub fn new(argv: Vec<String>) -> CommandHook {
        CommandHook { argv }
    }

    /// One attempt: runs the command to its end. The caller bounds it with the hook's timeout;
    /// dropping this future kills the child.
    pub async fn run(&self, event: &Event, body: &[u8]) -> Result<(), String> {
        let (program, args) = self
            .argv
            .split_first()
            .ok_or_else(|| "no program".to_owned())?;
        let mut command = tokio::process::Command::new(program);
        command
            .args(args.iter().map(|arg| expand(arg, event)))
            .env_clear()
            .envs(
                INHERITED_VARIABLES
                    .iter()
                    .filter_map(|name| Some((*name, std::env::var_os(name)?))),
            )
            .envs(variables(event))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .map_err(|error| format!("could not start {program}: {error}"))?;
        if let Some(mut stdin) = child.stdin.take() {
            // A command that does not read its input closes the pipe: not an error.
            let _ = stdin.write_all(body).await;
        }
        let mut stderr = Vec::new();
        if let Some(mut pipe) = child.stderr.take() {
            // Read to the end (a child blocked on a full pipe would never exit), keep the start.
            let mut chunk = [0u8; 4096];
            while let Ok(read) = pipe.read(&mut chunk).await {
                if read == 0 {
                    break;
                }
                let room = STDERR_EXCERPT.saturating_sub(stderr.len());
                stderr.extend_from_slice(&chunk[..read.min(room)]);
            }
        }
        let status = child
            .wait()
            .await
            .map_err(|error| format!("{program}: {error}"))?;
        if status.success() {
            return Ok(());
        }
        Err(format!(
            "{program} exited with {status}: {}",
            String::from_utf8_lossy(&stderr).trim()
        ))
    }
}

/// The event's fields as `FERRY_*` variables (absent fields are left out).
fn variables(event: &Event) -> Vec<(&'static str, String)> {
    let mut variables = vec![
        ("FERRY_EVENT", event.event.clone()),
        ("FERRY_EVENT_ID", event.id.clone()),
        ("FERRY_USER", event.user.clone()),
        ("FERRY_PATH", event.path.clone()),
        ("FERRY_REMOTE_ADDR", event.remote_addr.clone()),
        ("FERRY_TIME", event.time.clone()),
        ("FERRY_INSTANCE_ID", event.instance_id.clone()),
    ];
    if let Some(from) = &event.from {
        variables.push(("FERRY_FROM", from.clone()));
    }
    if let Some(size) = event.size {
        variables.push(("FERRY_SIZE", size.to_string()));
    }
    if let Some(sha256) = &event.sha256 {
        variables.push(("FERRY_SHA256", sha256.clone()));
    }
    variables
}

/// `arg` with each `{field}` replaced by the event's field (`{path}`, `{from}`, `{event}`,
/// `{id}`, `{user}`, `{size}`, `{sha256}`, `{remote_addr}`, `{time}`, `{instance_id}`; an
/// absent one by nothing). One pass: a value that itself holds `{path}` stays as it is.
/// Anything else in braces is kept.
fn expand(arg: &str, event: &Event) -> String {
    let mut out = String::with_capacity(arg.len());
    let mut rest = arg;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open..];
        let field = after
            .find('}')
            .and_then(|close| Some((field(&after[1..close], event)?, close)));
        match field {
            Some((value, close)) => {
                out.push_str(&value);
                rest = &after[close + 1..];
            }
            None => {
                out.push('{');
                rest = &after[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn field(name: &str, event: &Event) -> Option<String> {
    Some(match name {
        "path" => event.path.clone(),
        "from" => event.from.clone().unwrap_or_default(),
        "event" => event.event.clone(),
        "id" => event.id.clone(),
        "user" => event.user.clone(),
        "size" => event.size.map(|size| size.to_string()).unwrap_or_default(),
        "sha256" => event.sha256.clone().unwrap_or_default(),
        "remote_addr" => event.remote_addr.clone(),
        "time" => event.time.clone(),
        "instance_id" => event.instance_id.clone(),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EventKind;
    use crate::events::event::NewEvent;

    #[test]
    fn placeholders_are_replaced_once_and_unknown_braces_kept() {
        let event = Event::new(
            NewEvent {
                kind: EventKind::Rename,
                user: "bob".into(),
                path: "/dir/{path} é.txt".into(),
                from: Some("/old".into()),
                size: None,
                sha256: None,
                remote_addr: "127.0.0.1".parse().expect("address"),
            },
            "test",
        );
        assert_eq!(
            expand("--to={path} --from={from} {nope} {size}{", &event),
            "--to=/dir/{path} é.txt --from=/old {nope} {"
        );
        assert_eq!(expand("{user}", &event), "bob");
    }
}
