//! Password hashing and verification (argon2id), bounded and off the async runtime.

use crate::accounts::verified_logins::VerifiedLogins;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, PasswordHash, PasswordHasher, Salt, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;
use tokio::sync::{Semaphore, oneshot};

/// Argon2id memory cost in KiB (19 MiB), time cost and parallelism of every hash Ferry writes.
///
/// These are the first of the equivalent argon2id settings in OWASP's Password Storage Cheat
/// Sheet (m=19456 KiB, t=2, p=1), and also the argon2 crate's defaults. Why this row and not a
/// bigger one:
/// - Brute-force cost: every guess against a stolen users file must fill 19 MiB twice, which is
///   what makes GPU/ASIC guessing expensive; OWASP considers this row as strong as its others.
/// - Login rate: one hash takes ~50 ms of one core (54 ms measured on a 2.5 GHz Xeon vCPU), so
///   a 2-core server still accepts some 35 logins per second, far more than people type.
/// - Memory: each hash in flight holds `m` (19 MiB). [`PasswordVerifier`] runs at most
///   `max_concurrent_logins` at once, so a login flood costs at most that many × 19 MiB; the
///   46 MiB row (m=47104, t=1) would more than double that ceiling for no gain in strength.
pub const ARGON2_MEMORY_KIB: u32 = 19_456;
/// Argon2id passes over memory; see [`ARGON2_MEMORY_KIB`].
pub const ARGON2_ITERATIONS: u32 = 2;
/// Argon2id lanes; see [`ARGON2_MEMORY_KIB`]. One lane: logins already run in parallel.
pub const ARGON2_PARALLELISM: u32 = 1;

/// Largest memory cost accepted from a users file (256 MiB). A hash with a larger `m` is
/// refused at load time, because every login for that user would allocate it and the
/// concurrency bound of [`PasswordVerifier`] would no longer bound memory.
pub const MAX_ACCEPTED_MEMORY_KIB: u32 = 256 * 1024;
/// Largest time cost accepted from a users file: beyond this one login takes seconds of CPU.
pub const MAX_ACCEPTED_ITERATIONS: u32 = 16;
/// Largest parallelism accepted from a users file.
pub const MAX_ACCEPTED_PARALLELISM: u32 = 16;

/// Verified against when the user is unknown, so that "no such user" costs as long as "wrong
/// password": a hash with Ferry's parameters of 24 random bytes that were thrown away. It is
/// public, which gives nothing away: a missing user never logs in, whatever matches it.
/// A unit test checks it still has the parameters above.
pub const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$2sdOFiIQN4QO8AluMrQxtw$otMeTZ6i8nbfqvV+6GVWP3JTY4aXCHDTm/Taal6SaOI";

/// Why a password could not be hashed.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("could not hash the password: {0}")]
    Hash(argon2::password_hash::Error),
}

/// Why a stored hash is not one Ferry accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhcError {
    #[error("not a PHC hash string ({0}); create one with `ferry user passwd`")]
    Malformed(String),
    #[error("algorithm `{0}` is not supported; only argon2id hashes are accepted")]
    WrongAlgorithm(String),
    #[error("argon2 version must be 19 (0x13)")]
    WrongVersion,
    #[error("invalid argon2 parameters: {0}")]
    BadParams(String),
    #[error("argon2 parameters {0} exceed the accepted maximum (m<={max_m}, t<={max_t}, p<={max_p})",
        max_m = MAX_ACCEPTED_MEMORY_KIB, max_t = MAX_ACCEPTED_ITERATIONS, max_p = MAX_ACCEPTED_PARALLELISM)]
    ParamsTooLarge(String),
    #[error("the hash has no salt or no output")]
    Incomplete,
}

fn ferry_argon2() -> Argon2<'static> {
    // The constants are within argon2's limits; a failure here is a programming error caught
    // by the unit tests, so fall back to the crate defaults (the same values) rather than panic.
    let params = Params::new(
        ARGON2_MEMORY_KIB,
        ARGON2_ITERATIONS,
        ARGON2_PARALLELISM,
        None,
    )
    .unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes `password` with argon2id, Ferry's parameters and a fresh random salt; returns a PHC
/// string (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`).
pub fn hash_password(password: &str) -> Result<String, PasswordError> {
    let salt = SaltString::generate(&mut OsRng);
    ferry_argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(PasswordError::Hash)
}

/// Checks that `phc` is an argon2id PHC string Ferry can verify against, with parameters
/// bounded so that verifying it cannot exhaust memory or CPU.
pub fn validate_phc(phc: &str) -> Result<(), PhcError> {
    let hash = PasswordHash::new(phc).map_err(|e| PhcError::Malformed(e.to_string()))?;
    if hash.algorithm != Algorithm::Argon2id.ident() {
        return Err(PhcError::WrongAlgorithm(hash.algorithm.to_string()));
    }
    if hash.version != Some(Version::V0x13.into()) {
        return Err(PhcError::WrongVersion);
    }
    let params = Params::try_from(&hash).map_err(|e| PhcError::BadParams(e.to_string()))?;
    if params.m_cost() > MAX_ACCEPTED_MEMORY_KIB
        || params.t_cost() > MAX_ACCEPTED_ITERATIONS
        || params.p_cost() > MAX_ACCEPTED_PARALLELISM
    {
        return Err(PhcError::ParamsTooLarge(format!(
            "m={},t={},p={}",
            params.m_cost(),
            params.t_cost(),
            params.p_cost()
        )));
    }
    if hash.salt.is_none() || hash.hash.is_none() {
        return Err(PhcError::Incomplete);
    }
    Ok(())
}

/// Whether `candidate` is the password `phc` was made from. Blocking (one full argon2 hash);
/// the final comparison is constant-time (argon2's `Output` equality). A malformed `phc`
/// verifies nothing. Allocates the hash's memory for this one call: logins use
/// [`PasswordVerifier`], which reuses it.
pub fn verify_password(phc: &str, candidate: &str) -> bool {
    verify_password_in(phc, candidate, &mut Vec::new())
}

/// [`verify_password`] with argon2's working memory in `memory`, grown if it is too small for
/// the hash's memory cost and left allocated for the next call.
fn verify_password_in(phc: &str, candidate: &str, memory: &mut Vec<Block>) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (hash.salt, hash.hash) else {
        return false;
    };
    // Everything comes from the PHC string, as argon2's own `verify_password` does, so old
    // hashes keep verifying after the constants above change.
    let Ok(algorithm) = Algorithm::try_from(hash.algorithm) else {
        return false;
    };
    let version = match hash.version.map(Version::try_from).transpose() {
        Ok(version) => version.unwrap_or_default(),
        Err(_) => return false,
    };
    let Ok(params) = Params::try_from(&hash) else {
        return false;
    };
    // A PHC salt is at most 64 Base64 characters, fewer bytes once decoded.
    let mut salt_bytes = [0u8; Salt::MAX_LENGTH];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let blocks = params.block_count();
    if memory.len() < blocks {
        memory.resize(blocks, Block::default());
    }
    let argon2 = Argon2::new(algorithm, version, params);
    let computed = Output::init_with(expected.len(), |out| {
        argon2
            .hash_password_into_with_memory(candidate.as_bytes(), salt, out, &mut memory[..])
            .map_err(argon2::password_hash::Error::from)
    });
    computed.is_ok_and(|computed| computed == expected)
}

/// Argon2's working memory for login hashes, reused from one hash to the next.
///
/// argon2 allocates its memory cost (19 MiB) for every hash and frees it after. glibc serves
/// allocations that size from per-thread arenas and keeps what is freed there for later, so
/// a flood of failed logins left hundreds of MiB resident for good (400 wrong passwords took
/// the server from 11 MB to 400 MB). Each hash now takes a buffer from here and puts it back:
/// hashes run at most `max_concurrent_logins` at once, so at most that many buffers ever
/// exist, and the server's hashing memory stays at that many × 19 MiB.
#[derive(Debug, Default)]
struct HashMemory {
    /// Buffers not in use. `std` lock: held only to push or pop.
    idle: Mutex<Vec<Vec<Block>>>,
}

/// Largest buffer kept for reuse (32 MiB, in blocks of 1 KiB): room for Ferry's own hashes and
/// then some. A bigger one (a users-file hash with a larger memory cost) is freed after use;
/// glibc maps allocations of 32 MiB and more on their own and unmaps them when freed.
const KEPT_MEMORY_BLOCKS: usize = 32 * 1024;

impl HashMemory {
    fn take(&self) -> Vec<Block> {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
            .unwrap_or_default()
    }

    fn give_back(&self, memory: Vec<Block>) {
        if memory.len() <= KEPT_MEMORY_BLOCKS {
            self.idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(memory);
        }
    }
}

/// Verifies login passwords on threads of their own, at most `max_concurrent_hashes` at once
/// and below normal CPU priority.
///
/// An argon2 hash is ~50 ms of CPU and 19 MiB of memory: run on the async workers it would
/// stall every session, and run without a bound a login flood would exhaust memory. Extra
/// logins wait for a permit instead. Run at normal priority, a flood of logins (or password
/// guesses) would take its share of the CPU from running transfers: measured on 2 cores, four
/// hashes at a time cut a concurrent 1 GiB download from ~1,900 to ~700 MB/s. So each hash
/// gets a new thread (~50 µs, next to ~50 ms of hashing) at [`HASH_NICENESS`].
#[derive(Debug)]
pub struct PasswordVerifier {
    /// One permit per hash allowed in flight (`max_concurrent_logins`).
    permits: Arc<Semaphore>,
    /// Hashes running right now and the most ever seen at once: observability for the bound.
    in_flight: Arc<InFlight>,
    /// Successful verifications of the last few minutes (`verify_or_recall`).
    recent: Arc<VerifiedLogins>,
    /// Argon2 memory, one buffer per hash in flight at most.
    memory: Arc<HashMemory>,
}

#[derive(Debug, Default)]
struct InFlight {
    now: AtomicUsize,
    peak: AtomicUsize,
    /// Hashes computed since start; a recalled login computes none.
    total: AtomicUsize,
}

impl PasswordVerifier {
    /// Builds the pool. `max_concurrent_hashes` of 0 is treated as 1, since a pool without
    /// permits would refuse every login.
    pub fn new(max_concurrent_hashes: usize) -> Self {
        PasswordVerifier {
            permits: Arc::new(Semaphore::new(max_concurrent_hashes.max(1))),
            in_flight: Arc::default(),
            recent: Arc::default(),
            memory: Arc::default(),
        }
    }

    /// Whether `candidate` matches `phc`. With `phc` None (unknown user) the dummy hash is
    /// verified instead and the answer is always false, after the same amount of work.
    pub async fn verify(&self, phc: Option<&str>, candidate: &str) -> bool {
        let is_real_user = phc.is_some();
        self.hash_and_compare(phc.unwrap_or(DUMMY_HASH), candidate, None)
            .await
            && is_real_user
    }

    /// Like [`PasswordVerifier::verify`], but a pair verified within the last
    /// [`crate::accounts::verified_logins::VERIFIED_LOGIN_TTL`] under users-file `generation` is
    /// accepted without hashing, and a success is remembered. Only for logins that succeed
    /// when the password is right (see `crate::accounts::verified_logins` on why that matters).
    pub async fn verify_or_recall(&self, phc: &str, candidate: &str, generation: u64) -> bool {
        self.hash_and_compare(phc, candidate, Some(generation))
            .await
    }

    async fn hash_and_compare(&self, phc: &str, candidate: &str, recall: Option<u64>) -> bool {
        let recalled = || {
            recall.is_some_and(|generation| {
                self.recent
                    .contains(generation, phc, candidate, Instant::now())
            })
        };
        if recalled() {
            return true;
        }
        // The semaphore is never closed, so acquiring only fails if it were; fail closed.
        let Ok(permit) = Arc::clone(&self.permits).acquire_owned().await else {
            return false;
        };
        // Looked up again: a burst of sessions with one password (a sync tool opening ten
        // connections) queues here behind the first hash, which has remembered it meanwhile.
        if recalled() {
            return true;
        }
        let (owned_phc, owned_candidate) = (phc.to_owned(), candidate.to_owned());
        let in_flight = Arc::clone(&self.in_flight);
        let remember = recall.map(|generation| (Arc::clone(&self.recent), generation));
        let hash_memory = Arc::clone(&self.memory);
        // The permit moves into the hashing thread: if the client disconnects and this future
        // is dropped, the hash still runs to completion and keeps its permit until then, so
        // abandoned logins cannot push the number of hashes past the bound.
        let verification = run_at_low_priority(move || {
            let running = in_flight.now.fetch_add(1, Ordering::SeqCst) + 1;
            in_flight.peak.fetch_max(running, Ordering::SeqCst);
            in_flight.total.fetch_add(1, Ordering::SeqCst);
            // Taken while the permit is held, so buffers never outnumber permits.
            let mut memory = hash_memory.take();
            let matches = verify_password_in(&owned_phc, &owned_candidate, &mut memory);
            hash_memory.give_back(memory);
            if let (true, Some((recent, generation))) = (matches, remember) {
                // Before the permit is released, so the next login waiting for it finds this.
                recent.insert(generation, &owned_phc, &owned_candidate, Instant::now());
            }
            in_flight.now.fetch_sub(1, Ordering::SeqCst);
            drop(permit);
            matches
        });
        // A hash that panicked or never started (no thread) is a refused login.
        verification.await.unwrap_or(false)
    }

    /// Argon2 hashes computed so far.
    pub fn hashes_computed(&self) -> usize {
        self.in_flight.total.load(Ordering::SeqCst)
    }

    /// The most hashes that have ever run at once; never above `max_concurrent_hashes`.
    pub fn peak_concurrent_hashes(&self) -> usize {
        self.in_flight.peak.load(Ordering::SeqCst)
    }
}

/// Niceness of password-hashing threads: the lowest. A nice-19 thread weighs 15 against a
/// normal thread's 1024 when both want the CPU, so transfers keep ~99% of a busy core; on an
/// idle machine hashes still run at full speed. Measured on 2 vCPUs during a flood of wrong
/// passwords from 32 connections: a 1 GiB download kept 64-86% of its speed at nice 10 and
/// 89-100% at nice 19. The price is paid only when normal-priority work saturates every core:
/// a login then waits for CPU left over (~2 s measured with both cores busy), well inside
/// `login_timeout`.
pub const HASH_NICENESS: libc::c_int = 19;

/// Runs `work` on a new thread at [`HASH_NICENESS`]; the receiver yields its result, or an
/// error if the thread could not be started or panicked.
fn run_at_low_priority<T, F>(work: F) -> oneshot::Receiver<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let (result, receiver) = oneshot::channel();
    // On failure the closure, and with it `result`, is dropped: the receiver reports it.
    let _ = std::thread::Builder::new()
        .name("ferry-hash".into())
        .spawn(move || {
            // SAFETY: setpriority on this thread's own id; raising one's niceness is always
            // allowed, and a failure only leaves the thread at normal priority.
            unsafe {
                libc::setpriority(
                    libc::PRIO_PROCESS,
                    libc::gettid() as libc::id_t,
                    HASH_NICENESS,
                );
            }
            let _ = result.send(work());
        });
    receiver
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_then_verify_accepts_the_password_and_nothing_else() {
        let phc = hash_password("correct horse").expect("hash");
        assert!(verify_password(&phc, "correct horse"));
        assert!(!verify_password(&phc, "correct hors"));
        assert!(!verify_password(&phc, ""));
    }

    #[test]
    fn hashes_use_argon2id_with_the_documented_parameters_and_a_fresh_salt() {
        let first = hash_password("same").expect("hash");
        let second = hash_password("same").expect("hash");
        assert!(
            first.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{first}"
        );
        assert_ne!(first, second, "each hash gets its own salt");
        assert_eq!(validate_phc(&first), Ok(()));
    }

    #[test]
    fn dummy_hash_has_the_parameters_of_new_hashes() {
        assert_eq!(validate_phc(DUMMY_HASH), Ok(()));
        let fresh = hash_password("x").expect("hash");
        let parameters = |phc: &str| phc.split('$').nth(3).map(str::to_owned);
        assert_eq!(parameters(DUMMY_HASH), parameters(&fresh));
    }

    #[test]
    fn malformed_hash_verifies_nothing() {
        assert!(!verify_password("not a hash", "not a hash"));
        assert!(!verify_password("", ""));
    }

    #[test]
    fn validate_phc_rejects_other_algorithms_and_garbage() {
        assert!(matches!(
            validate_phc("hunter2"),
            Err(PhcError::Malformed(_))
        ));
        let argon2i =
            "$argon2i$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$iWh06vD8Fy27wf9npn6FXWiCX4K6pW6Ue1Bnzz07Z8A";
        assert!(matches!(
            validate_phc(argon2i),
            Err(PhcError::WrongAlgorithm(_))
        ));
        let huge_memory = "$argon2id$v=19$m=4194304,t=2,p=1$c29tZXNhbHQ$iWh06vD8Fy27wf9npn6FXWiCX4K6pW6Ue1Bnzz07Z8A";
        assert!(matches!(
            validate_phc(huge_memory),
            Err(PhcError::ParamsTooLarge(_))
        ));
        let no_output = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ";
        assert_eq!(validate_phc(no_output), Err(PhcError::Incomplete));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn verifier_accepts_right_password_and_refuses_unknown_user() {
        let verifier = PasswordVerifier::new(2);
        let phc = hash_password("pw").expect("hash");
        assert!(verifier.verify(Some(&phc), "pw").await);
        assert!(!verifier.verify(Some(&phc), "wrong").await);
        // Even the dummy hash's own (unknown) password must not log in a missing user.
        assert!(!verifier.verify(None, "pw").await);
    }

    #[tokio::test]
    async fn hashes_run_below_normal_priority() {
        // SAFETY: getpriority on the calling thread's own id.
        let niceness = run_at_low_priority(|| unsafe {
            libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t)
        });
        assert!(niceness.await.expect("ran") >= HASH_NICENESS);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_repeated_right_password_is_recalled_and_a_wrong_one_always_hashed() {
        let verifier = PasswordVerifier::new(2);
        let phc = hash_password("pw").expect("hash");
        assert!(verifier.verify_or_recall(&phc, "pw", 0).await);
        assert!(verifier.verify_or_recall(&phc, "pw", 0).await);
        assert_eq!(
            verifier.hashes_computed(),
            1,
            "the second login is recalled"
        );
        assert!(!verifier.verify_or_recall(&phc, "nope", 0).await);
        assert!(!verifier.verify_or_recall(&phc, "nope", 0).await);
        assert_eq!(
            verifier.hashes_computed(),
            3,
            "wrong passwords are never remembered"
        );
        assert!(verifier.verify_or_recall(&phc, "pw", 1).await);
        assert_eq!(verifier.hashes_computed(), 4, "a users-file reload forgets");
        assert!(verifier.verify(Some(&phc), "pw").await);
        assert_eq!(verifier.hashes_computed(), 5, "plain verify never recalls");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_burst_of_one_login_hashes_at_most_once_per_permit() {
        let verifier = Arc::new(PasswordVerifier::new(2));
        let phc: Arc<str> = hash_password("pw").expect("hash").into();
        let logins: Vec<_> = (0..12)
            .map(|_| {
                let (verifier, phc) = (Arc::clone(&verifier), Arc::clone(&phc));
                tokio::spawn(async move { verifier.verify_or_recall(&phc, "pw", 0).await })
            })
            .collect();
        for login in logins {
            assert!(login.await.expect("join"));
        }
        // The first two hold the permits; the rest find the result once one is done.
        assert!(
            verifier.hashes_computed() <= 2,
            "{}",
            verifier.hashes_computed()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn verifier_never_runs_more_hashes_than_its_permits() {
        let verifier = Arc::new(PasswordVerifier::new(2));
        let phc: Arc<str> = hash_password("pw").expect("hash").into();
        let logins: Vec<_> = (0..8)
            .map(|_| {
                let verifier = Arc::clone(&verifier);
                let phc = Arc::clone(&phc);
                tokio::spawn(async move { verifier.verify(Some(&phc), "pw").await })
            })
            .collect();
        for login in logins {
            assert!(login.await.expect("join"));
        }
        let peak = verifier.peak_concurrent_hashes();
        assert!((1..=2).contains(&peak), "peak {peak}");
    }

    /// Equal cost without a timing assertion (which flakes on a loaded machine): both paths
    /// compute exactly one argon2 hash, and the dummy hash has the live parameters (tested
    /// above), so both cost the same.
    #[tokio::test]
    async fn unknown_user_costs_one_hash_like_a_wrong_password() {
        let verifier = PasswordVerifier::new(1);
        let phc = hash_password("pw").expect("hash");
        assert!(!verifier.verify(Some(&phc), "nope").await);
        assert_eq!(verifier.hashes_computed(), 1);
        assert!(!verifier.verify(None, "nope").await);
        assert_eq!(
            verifier.hashes_computed(),
            2,
            "an unknown user costs one full hash"
        );
        assert!(
            !verifier.verify(None, "pw").await,
            "the dummy hash never admits anyone"
        );
    }
}
