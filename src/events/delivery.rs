//! The delivery workers: one per hook, each running up to [`ATTEMPTS_AT_ONCE`] events at a time,
//! each event retried with exponential backoff until the hook takes it. An event leaves a
//! hook's queue in the spool only once that hook has it; nothing gives up on an event while it
//! is in the spool. Events are not ordered across retries: a receiver must not rely on order.

use super::{Event, Events};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc, watch};

use tokio::task::JoinSet;

/// Events of one hook being delivered at once (each with its own retries): enough to keep a
/// slow receiver busy, few enough that a flood of uploads does not open hundreds of requests.
const ATTEMPTS_AT_ONCE: usize = 4;
/// The wait after the first failed attempt; it doubles after each further one ...
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// ... up to this: a receiver that was down for an hour has its events within 5 minutes of
/// coming back.
const LONGEST_RETRY: Duration = Duration::from_secs(300);
/// At shutdown, how long attempts in flight may finish (their hook's timeout bounds each too);
/// what is still running then is dropped, and the event stays in the spool for the next start.
const STOP_WAIT: Duration = Duration::from_secs(10);

/// The running workers; [`Running::stop`] at shutdown.
pub struct Running {
    stop: watch::Sender<bool>,
    workers: JoinSet<()>,
}

impl Running {
    /// Stops every worker: no new attempt starts, attempts in flight get [`STOP_WAIT`].
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(STOP_WAIT + Duration::from_secs(1), async {
            while self.workers.join_next().await.is_some() {}
        })
        .await;
        self.workers.abort_all();
    }
}

pub(super) fn start(
    events: Events,
    queues: Vec<mpsc::UnboundedReceiver<String>>,
    waiting: Vec<Vec<String>>,
) -> Running {
    let (stop, stopped) = watch::channel(false);
    let mut workers = JoinSet::new();
    for (index, (queue, waiting)) in queues.into_iter().zip(waiting).enumerate() {
        workers.spawn(run_hook(
            events.clone(),
            index,
            waiting.into(),
            queue,
            stopped.clone(),
        ));
    }
    Running { stop, workers }
}

/// Completes once the server asks the workers to stop (or is gone).
async fn stop_requested(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

/// One hook's worker: the events that waited in the spool, oldest first, then new ones.
async fn run_hook(
    events: Events,
    index: usize,
    mut backlog: VecDeque<String>,
    mut queue: mpsc::UnboundedReceiver<String>,
    mut stop: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(ATTEMPTS_AT_ONCE));
    let mut deliveries = JoinSet::new();
    loop {
        let name = match backlog.pop_front() {
            Some(name) => name,
            None => tokio::select! {
                _ = stop_requested(&mut stop) => break,
                name = queue.recv() => match name {
                    Some(name) => name,
                    None => break,
                },
            },
        };
        let slot = tokio::select! {
            _ = stop_requested(&mut stop) => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break, // never closed
            },
        };
        let delivery = deliver(events.clone(), index, name, stop.clone());
        deliveries.spawn(async move {
            delivery.await;
            drop(slot);
        });
        while deliveries.try_join_next().is_some() {}
    }
    let _ = tokio::time::timeout(STOP_WAIT, async {
        while deliveries.join_next().await.is_some() {}
    })
    .await;
    deliveries.abort_all();
}

/// Delivers the event `name` to hook `index`, attempt after attempt, until the hook has it or
/// the server stops (the event then stays in the spool).
async fn deliver(events: Events, index: usize, name: String, mut stop: watch::Receiver<bool>) {
    let shared = &events.0;
    let hook = &shared.hooks[index];
    let logger = shared.logger.new(slog::o!("hook" => hook.name.clone()));
    let mut failures: u32 = 0;
    loop {
        let outcome = match read_event(&events, index, &name).await {
            Ok(None) => return, // delivered already (a duplicate notification)
            Ok(Some((event, body))) => match hook.attempt(&event, &body).await {
                Ok(()) => Ok(event),
                Err(problem) => Err((problem, Some(event.id))),
            },
            Err(problem) => Err((problem, None)),
        };
        match outcome {
            Ok(event) => {
                let removed = {
                    let events = events.clone();
                    let name = name.clone();
                    tokio::task::spawn_blocking(move || events.0.spool.remove(index, &name)).await
                };
                match removed {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => {
                        slog::warn!(logger, "event delivered but still in the spool; it will be delivered again after a restart";
                        "id" => &event.id, "error" => %error)
                    }
                    Err(error) => {
                        slog::warn!(logger, "event delivered but still in the spool"; "id" => &event.id, "error" => %error)
                    }
                }
                shared.metrics.delivered(&hook.name);
                slog::debug!(logger, "event delivered"; "id" => &event.id, "event" => &event.event, "path" => &event.path, "attempts" => failures + 1);
                return;
            }
            Err((problem, id)) => {
                failures += 1;
                shared.metrics.failed_attempt(&hook.name);
                let retry_in = retry_delay(failures);
                slog::warn!(logger, "event delivery failed; retrying";
                    "id" => id, "file" => &name, "attempt" => failures, "retry_in_secs" => retry_in.as_secs(), "error" => problem);
                tokio::select! {
                    _ = stop_requested(&mut stop) => return,
                    _ = tokio::time::sleep(retry_in) => {}
                }
            }
        }
    }
}

/// The event `name` waiting for hook `index` and its JSON as written; None once delivered.
async fn read_event(
    events: &Events,
    index: usize,
    name: &str,
) -> Result<Option<(Event, Vec<u8>)>, String> {
    let reader = events.clone();
    let file = name.to_owned();
    let read = tokio::task::spawn_blocking(move || reader.0.spool.read(index, &file))
        .await
        .map_err(|error| error.to_string())?
        .map_err(|error| format!("could not read the event from the spool: {error}"))?;
    let Some(body) = read else {
        return Ok(None);
    };
    let event = Event::from_json(&body).map_err(|error| {
        format!("the event file in the spool is not an event ({error}); remove it by hand")
    })?;
    Ok(Some((event, body)))
}

/// The wait after `failures` failed attempts: 1 s, 2 s, 4 s ... up to 5 minutes.
fn retry_delay(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    FIRST_RETRY
        .saturating_mul(1 << doublings)
        .min(LONGEST_RETRY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_from_a_second_to_five_minutes() {
        let delays: Vec<u64> = (1..=12).map(|n| retry_delay(n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
        assert_eq!(retry_delay(u32::MAX), LONGEST_RETRY);
    }
}
