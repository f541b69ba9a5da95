//! What may slow or stop a transfer's bytes: bandwidth limits (token buckets shared by every
//! transfer they apply to) and an upload's byte budget (what is left of a quota).
//!
//! The storage layer sets a transfer's [`Pace`] with [`paced`] around the store call; the
//! copy loops ask [`current`] and, after each chunk, [`Pace::after_chunk`]: the budget is
//! charged before the chunk is written (an upload that would pass it fails there, like a
//! broken upload), and the buckets say how long to wait before the next chunk. Zero-copy
//! transfers stay zero-copy: the wait falls between sendfile(2) or splice(2) calls, whose
//! chunks shrink when a limit is set so that the rate holds over short spans too.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Longest stretch a limited transfer may send at full speed: the bucket holds at most this
/// much of its rate, so an idle user does not bank a burst larger than a tenth of a second.
const BURST: Duration = Duration::from_millis(100);

/// Smallest chunk of a limited transfer: below it the system calls per byte cost more than
/// the smoothness is worth.
const MIN_LIMITED_CHUNK: usize = 4 * 1024;

/// How often a waiting zero-copy transfer looks whether it was abandoned.
const WAIT_SLICE: Duration = Duration::from_millis(100);

/// A bandwidth limit in bytes per second, shared by the transfers it applies to (one user's
/// sessions, or the whole server). Transfers take what they moved and wait off any debt, so
/// their sum holds to the rate however many there are.
#[derive(Debug)]
pub struct TokenBucket {
    /// Bytes per second; 0 is no limit. Changed in place when the account changes.
    rate: AtomicU64,
    state: Mutex<BucketState>,
}

#[derive(Debug)]
struct BucketState {
    /// Bytes that may go now; negative while transfers owe a wait.
    available: f64,
    refilled: Instant,
}

impl TokenBucket {
    pub fn new(rate: u64) -> Self {
        TokenBucket {
            rate: AtomicU64::new(rate),
            state: Mutex::new(BucketState {
                available: 0.0,
                refilled: Instant::now(),
            }),
        }
    }

    pub fn rate(&self) -> u64 {
        self.rate.load(Ordering::Relaxed)
    }

    /// Sets a new rate for the transfers that start or continue from now.
    pub fn set_rate(&self, rate: u64) {
        self.rate.store(rate, Ordering::Relaxed);
    }

    /// Takes `bytes` just moved; returns how long the transfer must wait before its next
    /// chunk (zero while within the rate).
    pub fn take(&self, bytes: u64) -> Duration {
        let rate = self.rate();
        if rate == 0 {
            return Duration::ZERO;
        }
        let rate = rate as f64;
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let elapsed = now.duration_since(state.refilled).as_secs_f64();
        state.refilled = now;
        state.available = (state.available + elapsed * rate).min(rate * BURST.as_secs_f64());
        state.available -= bytes as f64;
        if state.available >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-state.available / rate)
        }
    }
}

/// How many more bytes an upload may write: the quota left to its user. Charged before each
/// chunk is written.
pub trait ByteBudget: Send + Sync {
    /// Charges `bytes`; an error (its kind `Other`, carrying [`BudgetExceeded`]) ends the
    /// upload.
    fn charge(&self, bytes: u64) -> Result<(), BudgetExceeded>;
}

/// An upload went past its byte budget.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct BudgetExceeded(pub String);

impl BudgetExceeded {
    /// The budget error inside `error`, if that is what ended a transfer.
    pub fn within(error: &io::Error) -> Option<&BudgetExceeded> {
        error.get_ref()?.downcast_ref::<BudgetExceeded>()
    }
}

/// The limits on one transfer.
#[derive(Clone, Default)]
pub struct Pace {
    /// Every bucket the transfer draws from (its user's, the server's); it waits for the
    /// slowest.
    buckets: Vec<Arc<TokenBucket>>,
    budget: Option<Arc<dyn ByteBudget>>,
}

impl Pace {
    pub fn new(buckets: Vec<Arc<TokenBucket>>, budget: Option<Arc<dyn ByteBudget>>) -> Self {
        Pace { buckets, budget }
    }

    /// Whether nothing limits the transfer.
    pub fn is_free(&self) -> bool {
        self.budget.is_none() && self.slowest_rate().is_none()
    }

    /// The smallest limit in force, if any.
    fn slowest_rate(&self) -> Option<u64> {
        self.buckets
            .iter()
            .map(|bucket| bucket.rate())
            .filter(|rate| *rate > 0)
            .min()
    }

    /// The chunk to move at once, at most `max`: a twentieth of a second at the slowest rate.
    pub fn chunk(&self, max: usize) -> usize {
        match self.slowest_rate() {
            None => max,
            Some(rate) => ((rate / 20) as usize).clamp(MIN_LIMITED_CHUNK, max.max(1)),
        }
    }

    /// Accounts for `bytes` about to be written (uploads) or just sent (downloads): charges
    /// the budget, then returns how long to wait before the next chunk.
    pub fn after_chunk(&self, bytes: u64) -> io::Result<Duration> {
        if let Some(budget) = &self.budget {
            budget.charge(bytes).map_err(io::Error::other)?;
        }
        Ok(self
            .buckets
            .iter()
            .map(|bucket| bucket.take(bytes))
            .max()
            .unwrap_or_default())
    }

    /// [`Pace::after_chunk`], then the wait, on an async task.
    pub async fn after_chunk_async(&self, bytes: u64) -> io::Result<()> {
        let wait = self.after_chunk(bytes)?;
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        Ok(())
    }

    /// [`Pace::after_chunk`], then the wait, on a blocking thread that stops waiting when the
    /// transfer is abandoned.
    pub fn after_chunk_blocking(&self, bytes: u64, cancelled: &AtomicBool) -> io::Result<()> {
        let wait = self.after_chunk(bytes)?;
        let until = Instant::now() + wait;
        loop {
            let now = Instant::now();
            if now >= until {
                return Ok(());
            }
            if cancelled.load(Ordering::Relaxed) {
                return Err(io::Error::new(
                    io::ErrorKind::Interrupted,
                    "transfer abandoned",
                ));
            }
            std::thread::sleep((until - now).min(WAIT_SLICE));
        }
    }
}

tokio::task_local! {
    /// The limits of the transfer this task runs (see [`paced`]).
    static PACE: Pace;
}

/// Runs `transfer` with `pace` as its limits.
pub async fn paced<F: std::future::Future>(pace: Pace, transfer: F) -> F::Output {
    if pace.is_free() {
        return transfer.await;
    }
    PACE.scope(pace, transfer).await
}

/// The limits of the transfer this task runs; none outside [`paced`].
pub fn current() -> Pace {
    PACE.try_with(Pace::clone).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unlimited_bucket_never_waits() {
        let bucket = TokenBucket::new(0);
        assert_eq!(bucket.take(1 << 30), Duration::ZERO);
    }

    #[test]
    fn a_bucket_makes_its_takers_wait_off_what_they_took_past_the_rate() {
        let bucket = TokenBucket::new(1_000_000);
        // Nothing banked at the start: 500 KB at 1 MB/s is half a second's wait.
        let wait = bucket.take(500_000);
        assert!(
            wait > Duration::from_millis(450) && wait <= Duration::from_millis(500),
            "{wait:?}"
        );
        // A second taker of the same bucket queues behind the first.
        let wait = bucket.take(500_000);
        assert!(wait > Duration::from_millis(950), "{wait:?}");
    }

    #[test]
    fn a_rate_change_applies_to_the_next_take() {
        let bucket = TokenBucket::new(1_000);
        bucket.set_rate(0);
        assert_eq!(bucket.take(1 << 20), Duration::ZERO);
    }

    struct Left(std::sync::atomic::AtomicU64);
    impl ByteBudget for Left {
        fn charge(&self, bytes: u64) -> Result<(), BudgetExceeded> {
            let left = self.0.load(Ordering::Relaxed);
            if bytes > left {
                return Err(BudgetExceeded("quota exceeded".into()));
            }
            self.0.store(left - bytes, Ordering::Relaxed);
            Ok(())
        }
    }

    #[test]
    fn a_budget_stops_the_chunk_that_would_pass_it() {
        let pace = Pace::new(Vec::new(), Some(Arc::new(Left(AtomicU64::new(10)))));
        assert!(pace.after_chunk(6).is_ok());
        let error = pace.after_chunk(6).expect_err("past the budget");
        assert_eq!(
            BudgetExceeded::within(&error).map(|e| e.0.as_str()),
            Some("quota exceeded")
        );
    }

    #[test]
    fn chunks_shrink_to_a_twentieth_of_a_second_of_the_slowest_limit() {
        let pace = Pace::new(
            vec![
                Arc::new(TokenBucket::new(2_000_000)),
                Arc::new(TokenBucket::new(0)),
            ],
            None,
        );
        assert_eq!(pace.chunk(1 << 20), 100_000);
        assert_eq!(Pace::default().chunk(1 << 20), 1 << 20);
    }
}
