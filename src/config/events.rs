//! The event keys (`event_webhook`, `event_webhook_secret_file`, `event_spool`,
//! `event_spool_max_events`) and the file-only `[[event_hooks]]` tables: which hooks hear of
//! uploads, deletions, renames and directories made or removed (delivered by `events`).

use globset::Glob;
use serde::Deserialize;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The spool's name under a local `root` when `event_spool` is not set. Storage reserves it:
/// no client can name it or see it in a listing.
pub const DEFAULT_EVENT_SPOOL_NAME: &str = ".ferry-events";
/// The spool when `root` is a bucket and `event_spool` is not set, relative to the working
/// directory: the process keeps no other files then, so this is the one to put on a volume.
const DEFAULT_BUCKET_EVENT_SPOOL: &str = "ferry-events";
/// Events waiting in the spool (one per event and hook) before new ones are dropped: at about
/// 600 bytes each, 60 MB of disk; a day of one upload a second for a receiver that is down.
pub(super) const DEFAULT_SPOOL_MAX_EVENTS: usize = 100_000;
/// How long one delivery attempt (an HTTP request, a command) may take before it counts as
/// failed and is retried.
const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(30);
/// The array of tables `[[event_hooks]]`: a key of the config file only (no variable or flag
/// could hold tables).
pub(super) const EVENT_HOOKS_KEY: &str = "event_hooks";
/// The name of the hook `event_webhook` sets up (a `[[event_hooks]]` table may not take it).
pub const SIMPLE_WEBHOOK_NAME: &str = "webhook";

/// What happened, as a hook's `events` filter and the event's `event` field name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    Upload,
    Delete,
    Rename,
    Mkdir,
    Rmdir,
}

impl EventKind {
    pub const ALL: [EventKind; 5] = [
        EventKind::Upload,
        EventKind::Delete,
        EventKind::Rename,
        EventKind::Mkdir,
        EventKind::Rmdir,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Upload => "upload",
            EventKind::Delete => "delete",
            EventKind::Rename => "rename",
            EventKind::Mkdir => "mkdir",
            EventKind::Rmdir => "rmdir",
        }
    }

    fn parse(name: &str) -> Option<EventKind> {
        EventKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == name)
    }
}

/// A shared secret, never shown in `Debug` output (configurations get logged).
#[derive(Clone, PartialEq, Eq)]
pub struct HookSecret(Vec<u8>);

impl HookSecret {
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for HookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Where a hook delivers.
#[derive(Debug, Clone, PartialEq)]
pub enum HookTarget {
    /// POST the event as JSON to this http:// or https:// URL.
    Webhook(url::Url),
    /// Run this program (argv[0]) with these arguments, directly, never through a shell.
    Command(Vec<String>),
}

/// One hook: where events go and which of them.
#[derive(Debug, Clone, PartialEq)]
pub struct HookSettings {
    /// Names the hook in logs and metrics, and its queue in the spool: keep it stable.
    pub name: String,
    pub target: HookTarget,
    /// The file holding the webhook's HMAC secret (one line); read into `secret` as the
    /// configuration loads.
    pub secret_file: Option<PathBuf>,
    pub secret: Option<HookSecret>,
    /// PEM certificates to trust for an https:// webhook instead of the system's roots.
    pub ca_file: Option<PathBuf>,
    /// The events it hears of; empty: all.
    pub events: Vec<EventKind>,
    /// Globs on the client-visible path (`*.csv`, `incoming/**`); empty: every path.
    pub paths: Vec<String>,
    /// Longest delivery attempt.
    pub timeout: Duration,
}

impl HookSettings {
    fn webhook(name: String, url: url::Url) -> HookSettings {
        HookSettings {
            name,
            target: HookTarget::Webhook(url),
            secret_file: None,
            secret: None,
            ca_file: None,
            events: Vec::new(),
            paths: Vec::new(),
            timeout: DEFAULT_HOOK_TIMEOUT,
        }
    }
}

/// The event keys together.
#[derive(Debug, Clone, PartialEq)]
pub struct EventSettings {
    /// `event_webhook`: every event to this URL.
    pub webhook: Option<url::Url>,
    /// `event_webhook_secret_file`: its HMAC secret, read into `webhook_secret` as the
    /// configuration loads.
    pub webhook_secret_file: Option<PathBuf>,
    pub webhook_secret: Option<HookSecret>,
    /// `event_spool`: the spool directory; None: the default (see [`EventSettings::spool_dir`]).
    pub spool: Option<PathBuf>,
    /// `event_spool_max_events`.
    pub spool_max_events: usize,
    /// The `[[event_hooks]]` tables (file only).
    pub tables: Vec<HookSettings>,
}

impl Default for EventSettings {
    fn default() -> Self {
        EventSettings {
            webhook: None,
            webhook_secret_file: None,
            webhook_secret: None,
            spool: None,
            spool_max_events: DEFAULT_SPOOL_MAX_EVENTS,
            tables: Vec::new(),
        }
    }
}

impl EventSettings {
    /// Every hook: `event_webhook`'s (named [`SIMPLE_WEBHOOK_NAME`]) and the tables.
    pub fn hooks(&self) -> Vec<HookSettings> {
        let mut hooks = Vec::new();
        if let Some(url) = &self.webhook {
            let mut hook = HookSettings::webhook(SIMPLE_WEBHOOK_NAME.to_owned(), url.clone());
            hook.secret_file = self.webhook_secret_file.clone();
            hook.secret = self.webhook_secret.clone();
            hooks.push(hook);
        }
        hooks.extend(self.tables.iter().cloned());
        hooks
    }

    /// The spool directory: `event_spool`, else `.ferry-events` in a local `root`, else
    /// `ferry-events` in the working directory (a bucket root).
    pub fn spool_dir(&self, root: &Path, bucket_root: bool) -> PathBuf {
        match (&self.spool, bucket_root) {
            (Some(spool), _) => spool.clone(),
            (None, false) => root.join(DEFAULT_EVENT_SPOOL_NAME),
            (None, true) => PathBuf::from(DEFAULT_BUCKET_EVENT_SPOOL),
        }
    }

    /// Reads every hook's secret file (`event_webhook_secret_file` included); the error names
    /// the key and the file.
    pub(super) fn read_secrets(&mut self) -> Result<(), (&'static str, String)> {
        if let Some(file) = &self.webhook_secret_file {
            self.webhook_secret =
                Some(read_secret(file).map_err(|problem| ("event_webhook_secret_file", problem))?);
        }
        for (index, hook) in self.tables.iter_mut().enumerate() {
            if let Some(file) = &hook.secret_file {
                hook.secret = Some(read_secret(file).map_err(|problem| {
                    (
                        "event_hooks",
                        format!("event_hooks[{index}].secret_file: {problem}"),
                    )
                })?);
            }
        }
        Ok(())
    }
}

/// The secret in `file`: its first line, which must not be empty.
fn read_secret(file: &Path) -> Result<HookSecret, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|error| format!("could not read {}: {error}", file.display()))?;
    let line = text.lines().next().unwrap_or("").trim_end_matches('\r');
    if line.is_empty() {
        return Err(format!("{} holds no secret", file.display()));
    }
    Ok(HookSecret(line.as_bytes().to_vec()))
}

/// `event_webhook`: an http:// or https:// URL with a host.
pub(super) fn parse_webhook_url(text: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(text.trim()).map_err(|error| format!("{text:?}: {error}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(format!(
            "{text:?} is not an http:// or https:// URL with a host"
        ));
    }
    Ok(url)
}

/// One `[[event_hooks]]` table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HookTable {
    name: Option<String>,
    webhook: Option<String>,
    command: Option<Vec<String>>,
    secret_file: Option<PathBuf>,
    ca_file: Option<PathBuf>,
    events: Option<Vec<String>>,
    paths: Option<Vec<String>>,
    timeout: Option<u64>,
}

/// Checks the `[[event_hooks]]` array; the error names the table and field
/// (`event_hooks[1].paths: ...`).
pub(super) fn parse_hook_tables(value: toml::Value) -> Result<Vec<HookSettings>, String> {
    let toml::Value::Array(tables) = value else {
        return Err("expected [[event_hooks]] tables".to_owned());
    };
    let mut hooks: Vec<HookSettings> = Vec::new();
    for (index, table) in tables.into_iter().enumerate() {
        let at = format!("event_hooks[{index}]");
        let table: HookTable = table
            .try_into()
            .map_err(|error: toml::de::Error| format!("{at}: {}", error.message()))?;
        let hook = check_hook_table(table, index).map_err(|problem| format!("{at}.{problem}"))?;
        if hooks.iter().any(|other| other.name == hook.name) {
            return Err(format!(
                "{at}.name: {:?} names another hook too; each needs its own",
                hook.name
            ));
        }
        hooks.push(hook);
    }
    Ok(hooks)
}

/// One table's fields; the error starts with the field's name.
fn check_hook_table(table: HookTable, index: usize) -> Result<HookSettings, String> {
    let name = match table.name {
        Some(name) => check_hook_name(&name).map_err(|problem| format!("name: {problem}"))?,
        None => format!("hook{index}"),
    };
    let target = match (table.webhook, table.command) {
        (Some(url), None) => {
            HookTarget::Webhook(parse_webhook_url(&url).map_err(|p| format!("webhook: {p}"))?)
        }
        (None, Some(argv)) if argv.first().is_some_and(|program| !program.is_empty()) => {
            HookTarget::Command(argv)
        }
        (None, Some(_)) => {
            return Err("command: expected [\"PROGRAM\", \"ARG\"...] with a program".to_owned());
        }
        _ => return Err("webhook: give either webhook = \"URL\" or command = [...]".to_owned()),
    };
    if matches!(target, HookTarget::Command(_)) {
        for (field, set) in [
            ("secret_file", table.secret_file.is_some()),
            ("ca_file", table.ca_file.is_some()),
        ] {
            if set {
                return Err(format!("{field}: only a webhook has one"));
            }
        }
    }
    let mut events = Vec::new();
    for event in table.events.unwrap_or_default() {
        let kind = EventKind::parse(&event).ok_or_else(|| {
            let known: Vec<&str> = EventKind::ALL.map(EventKind::as_str).to_vec();
            format!(
                "events: {event:?} is not an event (one of {})",
                known.join(", ")
            )
        })?;
        events.push(kind);
    }
    let paths = table.paths.unwrap_or_default();
    for pattern in &paths {
        Glob::new(pattern).map_err(|error| format!("paths: {pattern:?}: {}", error.kind()))?;
    }
    let timeout = match table.timeout {
        None => DEFAULT_HOOK_TIMEOUT,
        Some(0) => return Err("timeout: must be at least 1 second".to_owned()),
        Some(seconds) => Duration::from_secs(seconds),
    };
    Ok(HookSettings {
        name,
        target,
        secret_file: table.secret_file,
        secret: None,
        ca_file: table.ca_file,
        events,
        paths,
        timeout,
    })
}

/// A hook's name is a directory in the spool and a metric label: letters, digits, `-`, `_`.
fn check_hook_name(name: &str) -> Result<String, String> {
    let valid = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'));
    if name.is_empty() || name.len() > 64 || !valid {
        return Err(format!(
            "expected 1-64 letters, digits, hyphens or underscores, got {name:?}"
        ));
    }
    if name == SIMPLE_WEBHOOK_NAME {
        return Err(format!("{name:?} is the name of event_webhook's hook"));
    }
    Ok(name.to_owned())
}
