//! Events when files arrive: after an upload, a deletion, a rename, or a directory made or
//! removed, the hooks configured (`event_webhook`, `[[event_hooks]]`) hear of it: a webhook
//! gets the event as a JSON POST ([`webhook`]), a command runs with it ([`command`]), each
//! filtered by event and path ([`filter`]).
//!
//! At least once, and nothing lost: [`Events::publish`] writes the event durably to the spool
//! ([`spool`]) before the operation returns, so before the client's 226; per-hook workers
//! ([`delivery`]) then deliver it, retrying with backoff, and resume from the spool after a
//! restart. Bounded: a few attempts at once per hook, each with a timeout, and a spool of at
//! most `event_spool_max_events`; when it is full the event is dropped with an error in the log
//! and `ferry_events_dropped_total`, and the operation still succeeds.
//!
//! It uses `config` (the hooks) and `observe` (metrics); `storage` publishes, and the server
//! starts the delivery when it serves and stops it at shutdown.

mod command;
mod delivery;
mod event;
mod filter;
mod spool;
mod webhook;

pub use delivery::Running;
pub use event::{Event, NewEvent};
pub use webhook::{EVENT_HEADER, EVENT_ID_HEADER, SIGNATURE_HEADER, signature};

use crate::config::{Config, HookSettings, HookTarget};
use crate::observe::metrics::EventMetrics;
use command::CommandHook;
use filter::Filter;
use spool::Spool;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use webhook::Webhook;

/// Why the events could not be set up; Ferry does not start.
#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    #[error("event spool {}: {source}", .dir.display())]
    Spool {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("event hook `{hook}`: {problem}")]
    Hook { hook: String, problem: String },
}

/// Publishes events; cheap to clone (each session's storage holds one).
#[derive(Debug, Clone)]
pub struct Events(Arc<Shared>);

#[derive(Debug)]
struct Shared {
    hooks: Vec<Hook>,
    spool: Spool,
    instance_id: String,
    metrics: EventMetrics,
    logger: slog::Logger,
    /// Each hook's worker hears of new events here (by file name); the spool holds them.
    queues: Vec<mpsc::UnboundedSender<String>>,
}

/// One configured hook, ready to deliver.
#[derive(Debug)]
struct Hook {
    name: String,
    filter: Filter,
    target: Target,
    timeout: Duration,
}

#[derive(Debug)]
enum Target {
    /// Boxed: its client is large, and a hook is made once.
    Webhook(Box<Webhook>),
    Command(CommandHook),
}

impl Hook {
    fn new(settings: HookSettings) -> Result<Hook, EventsError> {
        let problem = |problem: String| EventsError::Hook {
            hook: settings.name.clone(),
            problem,
        };
        let filter = Filter::new(&settings.events, &settings.paths)
            .map_err(|error| problem(error.to_string()))?;
        let target = match &settings.target {
            HookTarget::Webhook(url) => Target::Webhook(Box::new(
                Webhook::new(url, settings.secret.clone(), settings.ca_file.as_deref())
                    .map_err(problem)?,
            )),
            HookTarget::Command(argv) => Target::Command(CommandHook::new(argv.clone())),
        };
        Ok(Hook {
            name: settings.name,
            filter,
            target,
            timeout: settings.timeout,
        })
    }

    /// One delivery attempt, within the hook's timeout.
    async fn attempt(&self, event: &Event, body: &[u8]) -> Result<(), String> {
        let attempt = async {
            match &self.target {
                Target::Webhook(webhook) => webhook.post(event, body).await,
                Target::Command(command) => command.run(event, body).await,
            }
        };
        match tokio::time::timeout(self.timeout, attempt).await {
            Ok(outcome) => outcome,
            Err(_) => Err(format!(
                "no answer within {} s (the hook's timeout)",
                self.timeout.as_secs()
            )),
        }
    }
}

/// The events' delivery, not yet started: [`Delivery::start`] when the server serves.
pub struct Delivery {
    events: Events,
    queues: Vec<mpsc::UnboundedReceiver<String>>,
    waiting: Vec<Vec<String>>,
}

impl Events {
    /// Sets up the hooks `config` names and opens the spool; None when there is no hook, and
    /// then nothing is hashed, spooled or delivered.
    pub fn open(
        config: &Config,
        metrics: EventMetrics,
        logger: &slog::Logger,
    ) -> Result<Option<(Events, Delivery)>, EventsError> {
        let settings = config.events.hooks();
        if settings.is_empty() {
            return Ok(None);
        }
        let hooks = settings
            .into_iter()
            .map(Hook::new)
            .collect::<Result<Vec<_>, _>>()?;
        let names: Vec<String> = hooks.iter().map(|hook| hook.name.clone()).collect();
        let dir = config
            .events
            .spool_dir(&config.root, config.bucket.is_some());
        let opened =
            Spool::open(&dir, &names, config.events.spool_max_events).map_err(|source| {
                EventsError::Spool {
                    dir: dir.clone(),
                    source,
                }
            })?;
        for (orphan, count) in &opened.orphans {
            slog::warn!(logger, "events wait in the spool for a hook no longer configured; they stay there until a hook of that name is configured again";
                "spool" => %dir.display(), "hook" => orphan, "events" => count);
        }
        for (name, waiting) in names.iter().zip(&opened.waiting) {
            metrics.start_hook(name, waiting.len());
        }
        let waiting_total: usize = opened.waiting.iter().map(Vec::len).sum();
        slog::info!(logger, "event hooks ready"; "hooks" => names.join(","), "spool" => %dir.display(), "waiting" => waiting_total);
        let (senders, receivers) = names.iter().map(|_| mpsc::unbounded_channel()).unzip();
        let events = Events(Arc::new(Shared {
            hooks,
            spool: opened.spool,
            instance_id: config.instance_id.clone(),
            metrics,
            logger: logger.new(slog::o!("component" => "events")),
            queues: senders,
        }));
        let delivery = Delivery {
            events: events.clone(),
            queues: receivers,
            waiting: opened.waiting,
        };
        Ok(Some((events, delivery)))
    }

    /// Writes the event for every hook it matches durably to the spool, and tells their
    /// workers. Never fails the operation that caused it: an event the spool cannot take (full,
    /// or a disk error) is dropped with an error in the log and `ferry_events_dropped_total`.
    pub async fn publish(&self, new: NewEvent) {
        let shared = self.0.clone();
        let event = Event::new(new, &shared.instance_id);
        if !shared.hooks.iter().any(|hook| hook.filter.matches(&event)) {
            return;
        }
        // All on the blocking pool, telling the workers included: if the operation is
        // abandoned while this runs (ABOR), the event is still spooled and delivered now.
        let _ = tokio::task::spawn_blocking(move || shared.publish_now(&event)).await;
    }
}

impl Shared {
    fn publish_now(&self, event: &Event) {
        let matching: Vec<usize> = (0..self.hooks.len())
            .filter(|&index| self.hooks[index].filter.matches(event))
            .collect();
        match self.spool.write(event, &matching) {
            Ok(name) => {
                for index in matching {
                    self.metrics.queued(&self.hooks[index].name);
                    // A stopped worker: the event waits in the spool for the next start.
                    let _ = self.queues[index].send(name.clone());
                }
            }
            Err(error) => {
                for &index in &matching {
                    self.metrics.dropped(&self.hooks[index].name);
                }
                let hooks: Vec<&str> = matching
                    .iter()
                    .map(|&index| self.hooks[index].name.as_str())
                    .collect();
                slog::error!(self.logger, "event dropped";
                    "error" => %error, "spool" => %self.spool.dir().display(), "hooks" => hooks.join(","),
                    "event" => &event.event, "id" => &event.id, "user" => &event.user, "path" => &event.path);
            }
        }
    }
}

impl Delivery {
    /// Starts one worker per hook: first the events that waited in the spool, then new ones.
    pub fn start(self) -> Running {
        delivery::start(self.events, self.queues, self.waiting)
    }
}
