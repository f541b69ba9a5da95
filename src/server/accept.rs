//! The accept loop: session limits, per-connection libunftp servers, shutdown.
//!
//! Ferry owns the accept loop (after mini-redis): each accepted connection gets its own task,
//! which learns who the client is (from a PROXY header when the connection came from a load
//! balancer in `proxy_from`, see [`super::proxy`]), takes a session permit or gets 421, gets
//! TCP_NODELAY, and is handed to a libunftp `Server` built for that one connection, whose
//! storage backend shares a [`SessionLink`] with this loop. On shutdown the loop stops
//! accepting, closes idle sessions with 421, lets running transfers finish within the grace
//! period, then closes what is left.

use super::limits::{LimitReached, SessionLimiter};
use super::login_deadline::serve_with_login_deadline;
use super::passive::PassiveBinder;
use super::probe::AdminView;
use super::proxy::{Intake, ProxyTrust};
use super::session::{CLOSE_FALLBACK, ServerState, SessionLink};
use crate::accounts::auth::{FerryAuthenticator, FerryUser, UserDirectory};
use crate::accounts::login_guard::LoginGuard;
use crate::accounts::usage::UsageLedger;
use crate::config::Config;
use crate::events::{Delivery, Events, EventsError};
use crate::observe::admin::{AdminError, AdminServer, Probes};
use crate::observe::audit::AuditLog;
use crate::observe::record::{AuditRecord, Op, Outcome};
use crate::storage::limits::Limits;
use crate::storage::s3::{self, Bucket, BucketError, S3Store};
use crate::storage::{FerryStorage, LocalStore, SessionStore, remove_stale_temporaries};
use crate::tls::{Ftps, TlsError};
use libunftp::ServerBuilder;
use libunftp::options::{ActivePassiveMode, PassiveHost, Shutdown};
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use unftp_core::auth::{Authenticator, UserDetailProvider};

/// Blocking threads kept for everything but transfers (listings, metadata, renames, the
/// users-file reload): however many transfers run, these stay free, so a flood of stalled
/// transfers cannot starve listings and file operations.
pub const BLOCKING_THREADS_RESERVE: usize = 128;

/// The size of the runtime's blocking pool for `config`: one thread per allowed transfer, plus
/// the reserve.
pub fn blocking_threads(config: &Config) -> usize {
    config
        .max_transfers
        .saturating_add(BLOCKING_THREADS_RESERVE)
}

/// The runtime's async worker threads: half the cores, at least one, unless
/// `TOKIO_WORKER_THREADS` is set (then `None`: tokio reads that variable itself).
///
/// The workers run only the protocol (commands, replies, TLS); transfers, file operations and
/// password hashes have threads of their own. A session's command moves between tasks (the
/// control loop, the data connection's, the transfer's), and each hand-over to a task while
/// another worker sleeps wakes that worker for nothing: with one worker per core, a
/// one-session run of 4 KiB uploads and downloads on 2 cores switched context ~10 times per
/// file; with one worker, ~4, for 15% less server CPU per file (medians of 5).
pub fn async_worker_threads() -> Option<usize> {
    if std::env::var_os("TOKIO_WORKER_THREADS").is_some() {
        return None;
    }
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    Some((cores / 2).max(1))
}

/// The runtime `ferry serve` runs on: [`async_worker_threads`] workers and
/// [`blocking_threads`] for the blocking pool.
pub fn build_runtime(config: &Config) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder
        .enable_all()
        .max_blocking_threads(blocking_threads(config));
    if let Some(workers) = async_worker_threads() {
        builder.worker_threads(workers);
    }
    builder.build()
}

/// Pending connections the kernel queues for the accept loop (vsftpd and nginx use 511+).
const LISTEN_BACKLOG: i32 = 1024;

/// After the last transfer of a session ends, how long its final reply (226) gets to reach the
/// client before shutdown closes the session. libunftp sends that reply from another task.
const REPLY_FLUSH_DELAY: Duration = Duration::from_millis(100);

/// After a session is asked to close, how long libunftp lets its control loop run before
/// aborting it: the last resort, past [`CLOSE_FALLBACK`] (at which Ferry shuts the socket
/// down), for a loop stuck inside a command.
const SESSION_ABORT_AFTER: Duration = Duration::from_secs(5);

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("could not bind {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("could not clean upload temporaries under {root}: {source}")]
    Cleanup {
        root: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("libunftp refused the session configuration: {0}")]
    Session(String),
    #[error(transparent)]
    Bucket(#[from] BucketError),
    #[error("{0}")]
    BucketUnusable(String),
    #[error(transparent)]
    Users(#[from] crate::accounts::users::UsersError),
    #[error(transparent)]
    Admin(#[from] AdminError),
    #[error(transparent)]
    Events(#[from] EventsError),
    #[error(
        "refusing to serve on {bind}: user(s) {users} still have the published demo password; set a new one with `ferry user passwd NAME` or bind to 127.0.0.1"
    )]
    DemoPasswordExposed { bind: SocketAddr, users: String },
    #[error("TLS: key `{}`: {source}", .source.key())]
    Tls {
        #[from]
        source: TlsError,
    },
}

/// What every session task needs, shared.
struct Shared<A> {
    config: Config,
    authenticator: Arc<A>,
    state: Arc<ServerState>,
    limiter: Arc<SessionLimiter>,
    audit: AuditLog,
    logger: slog::Logger,
    /// libunftp wants a `&'static str`; leaked once per server, not per session.
    greeting: &'static str,
    /// Live sessions by id, so shutdown can reach them.
    sessions: Mutex<HashMap<u64, Arc<SessionLink>>>,
    next_session_id: AtomicU64,
    /// The TLS config and its reloader; None when `tls = off`.
    ftps: Option<Arc<Ftps>>,
    /// Addresses banned for failed logins are turned away here, at connect.
    login_guard: Option<Arc<LoginGuard>>,
    /// The bucket holding the homes, when `root` is `s3://…`; None: the local filesystem.
    bucket: Option<Arc<Bucket>>,
    /// The load balancers whose PROXY headers name the client (`proxy_from`), on control and
    /// passive data connections.
    proxy: Arc<ProxyTrust>,
    /// Quotas and bandwidth limits, shared by every session.
    limits: Arc<Limits>,
    /// Where sessions publish their changes, when any event hook is configured.
    events: Option<Events>,
}

/// A bound, not yet serving, Ferry server.
pub struct FerryServer<A> {
    listener: TcpListener,
    /// The implicit-FTPS listener (TLS from the first byte), when `tls_implicit_bind` is set.
    implicit_listener: Option<TcpListener>,
    shared: Arc<Shared<A>>,
    /// The admin HTTP listener, when `admin_bind` is set; serves while `serve` runs.
    admin: Option<AdminServer>,
    /// The users whose reloads close the sessions of accounts they removed or disabled
    /// (see [`FerryServer::close_revoked_sessions`]); None: sessions are left alone.
    users: Option<Arc<UserDirectory>>,
    /// The event hooks' delivery, started when serving and stopped after the sessions.
    delivery: Option<Delivery>,
}

impl<A> FerryServer<A>
where
    A: Authenticator + UserDetailProvider<User = FerryUser> + 'static,
{
    /// Cleans upload temporaries left by a crash and binds the control port. `audit` is shared
    /// with the authenticator, so that logins and file operations count in the same metrics.
    /// Connections from addresses `login_guard` has banned are refused with 421.
    /// Usage for the quotas is kept in `usage`.
    pub async fn bind(
        config: Config,
        authenticator: Arc<A>,
        login_guard: Option<Arc<LoginGuard>>,
        audit: AuditLog,
        usage: Arc<UsageLedger>,
        logger: slog::Logger,
    ) -> Result<Self, ServerError> {
        let bucket = match &config.bucket {
            Some(root) => Some(open_bucket(root, &config, &audit, &logger).await?),
            None => {
                let removed = remove_stale_temporaries(&config.root).map_err(|source| {
                    ServerError::Cleanup {
                        root: config.root.clone(),
                        source,
                    }
                })?;
                if removed > 0 {
                    slog::info!(logger, "removed upload temporaries left by an earlier run"; "count" => removed);
                }
                None
            }
        };
        let (events, delivery) = match Events::open(&config, audit.metrics().events(), &logger)? {
            Some((events, delivery)) => (Some(events), Some(delivery)),
            None => (None, None),
        };
        let ftps = Ftps::load(&config.tls, &logger)?;
        if let Some(ftps) = &ftps {
            ftps.spawn_reloader();
        }
        let listener = bind_control_listener(config.bind).map_err(|source| ServerError::Bind {
            addr: config.bind,
            source,
        })?;
        let implicit_listener = match config.tls.implicit_bind {
            Some(addr) => Some(
                bind_control_listener(addr).map_err(|source| ServerError::Bind { addr, source })?,
            ),
            None => None,
        };
        let limits = Arc::new(Limits::new(
            config.limits.clone(),
            usage,
            audit.metrics().usage(),
            logger.clone(),
        ));
        let shared = Arc::new(Shared {
            limits,
            limiter: SessionLimiter::new(config.max_sessions, config.max_sessions_per_ip),
            greeting: Box::leak(config.greeting.clone().into_boxed_str()),
            audit,
            state: Arc::new(ServerState::new(config.max_transfers)),
            sessions: Mutex::new(HashMap::new()),
            next_session_id: AtomicU64::new(0),
            ftps,
            login_guard,
            bucket,
            proxy: Arc::new(ProxyTrust::new(config.proxy_from.clone())),
            events,
            authenticator,
            logger,
            config,
        });
        Ok(FerryServer {
            listener,
            implicit_listener,
            shared,
            admin: None,
            users: None,
            delivery,
        })
    }

    /// While serving, after each reload of `users`, closes with 421 every session whose
    /// account the reload removed, disabled or otherwise revoked: NOOP must not keep such a
    /// session alive. (Changed permissions need nothing here: storage looks them up anew for
    /// every command.)
    pub fn close_revoked_sessions(&mut self, users: Arc<UserDirectory>) {
        self.users = Some(users);
    }

    /// Binds the admin HTTP listener on `addr`, reporting on this server and `users`.
    pub async fn bind_admin(
        &mut self,
        addr: SocketAddr,
        users: Arc<UserDirectory>,
    ) -> Result<(), ServerError> {
        let probes = Probes {
            metrics: self.shared.audit.metrics().clone(),
            server: Arc::new(AdminView {
                limiter: self.shared.limiter.clone(),
                state: self.shared.state.clone(),
                users,
                bucket: self.shared.bucket.clone(),
            }),
        };
        self.admin = Some(AdminServer::bind(addr, probes, self.shared.logger.clone()).await?);
        Ok(())
    }

    pub fn authenticator(&self) -> &Arc<A> {
        &self.shared.authenticator
    }

    /// Where the admin listener listens, when there is one.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(AdminServer::local_addr)
    }

    /// The live TLS config, when FTPS is on.
    pub fn ftps(&self) -> Option<&Arc<Ftps>> {
        self.shared.ftps.as_ref()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or(self.shared.config.bind)
    }

    /// Where the implicit-FTPS listener listens, when there is one.
    pub fn implicit_tls_addr(&self) -> Option<SocketAddr> {
        let listener = self.implicit_listener.as_ref()?;
        listener.local_addr().ok()
    }

    /// Serves until `shutdown` completes, then shuts down gracefully (see the module docs).
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
        let FerryServer {
            listener,
            implicit_listener,
            shared,
            admin,
            users,
            delivery,
        } = self;
        let admin = admin.map(AdminServer::spawn);
        let delivery = delivery.map(Delivery::start);
        let revoker =
            users.map(|users| tokio::spawn(close_revoked_after_reloads(shared.clone(), users)));
        slog::info!(shared.logger, "ferry listening"; "bind" => %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            "tls_implicit_bind" => implicit_listener.as_ref().and_then(|l| l.local_addr().ok()).map(|a| a.to_string()));
        let mut session_tasks = JoinSet::new();
        tokio::pin!(shutdown);
        // After the shutdown signal, `shutdown_drain` of still accepting while /ready says 503.
        let mut draining: Option<Pin<Box<tokio::time::Sleep>>> = None;
        loop {
            let (accepted, start) = tokio::select! {
                _ = &mut shutdown, if draining.is_none() => {
                    let drain = shared.config.shutdown_drain;
                    if drain.is_zero() {
                        break;
                    }
                    shared.state.begin_draining();
                    slog::info!(shared.logger, "draining: /ready reports not ready, new sessions still accepted"; "drain_secs" => drain.as_secs());
                    draining = Some(Box::pin(tokio::time::sleep(drain)));
                    continue;
                }
                _ = until(&mut draining) => break,
                accepted = listener.accept() => (accepted, ControlStart::Plain),
                accepted = accept_on(implicit_listener.as_ref()) => (accepted, ControlStart::ImplicitTls),
                Some(_) = session_tasks.join_next(), if !session_tasks.is_empty() => continue,
            };
            match accepted {
                Ok((stream, peer)) => {
                    session_tasks.spawn(serve_connection(shared.clone(), stream, peer, start));
                }
                Err(error) => {
                    // EMFILE and friends: back off instead of spinning on the error.
                    slog::warn!(shared.logger, "accept failed"; "error" => %error);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        drop(listener);
        drop(implicit_listener);
        if let Some(revoker) = revoker {
            revoker.abort();
        }
        drain_sessions(&shared, &mut session_tasks).await;
        // After the sessions: the last uploads' events are in the spool; what is not delivered
        // now is delivered after the next start.
        if let Some(delivery) = delivery {
            delivery.stop().await;
        }
        if let Some(admin) = admin {
            admin.stop().await;
        }
        Ok(())
    }
}

/// Completes when `deadline` passes; never, without one.
async fn until(deadline: &mut Option<Pin<Box<tokio::time::Sleep>>>) {
    match deadline {
        Some(deadline) => deadline.as_mut().await,
        None => std::future::pending().await,
    }
}

/// How a control connection starts: in plaintext (FTPS by `AUTH TLS`), or with the TLS
/// handshake (implicit FTPS, the `tls_implicit_bind` listener).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ControlStart {
    Plain,
    ImplicitTls,
}

/// The next connection on `listener`; never, without one.
async fn accept_on(listener: Option<&TcpListener>) -> std::io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(listener) => listener.accept().await,
        None => std::future::pending().await,
    }
}

/// Binds the control listener with a large backlog (tokio's default is 1024 too, but explicit:
/// small backlogs turn connection bursts into hung connects).
fn bind_control_listener(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG as u32)
}

/// Serves an accepted connection to its end: finds its client (the PROXY header's, when it
/// came from a load balancer in `proxy_from`), then serves it a session or turns it away.
async fn serve_connection<A>(
    shared: Arc<Shared<A>>,
    mut stream: TcpStream,
    peer: SocketAddr,
    start: ControlStart,
) where
    A: Authenticator + UserDetailProvider<User = FerryUser> + 'static,
{
    let _ = stream.set_nodelay(true);
    let client = match shared.proxy.control_client(&mut stream, peer).await {
        Ok(Intake::Client(client)) => client,
        Ok(Intake::HealthCheck) => {
            slog::debug!(shared.logger, "load balancer health check"; "peer" => %peer);
            return;
        }
        Err(refusal) => {
            slog::warn!(shared.logger, "connection refused"; "peer" => %peer, "reason" => %refusal);
            shared
                .audit
                .metrics()
                .connection_refused(LimitReached::ProxyHeader);
            return;
        }
    };
    // `serve` may have stopped accepting since (a PROXY header takes its time).
    if shared.state.is_shutting_down() {
        if start == ControlStart::Plain {
            let reply = format!("421 {SHUTDOWN_REPLY}\r\n");
            let _ = stream.write_all(reply.as_bytes()).await;
        }
        return;
    }
    let banned = shared
        .login_guard
        .as_ref()
        .is_some_and(|guard| guard.is_banned(client.ip(), Instant::now()));
    let admitted = if banned {
        Err(LimitReached::IpBanned)
    } else {
        shared.limiter.try_acquire(client.ip())
    };
    let permit = match admitted {
        Ok(permit) => permit,
        Err(limit) => {
            slog::warn!(shared.logger, "connection refused"; "client" => %client, "reason" => %limit);
            shared.audit.metrics().connection_refused(limit);
            // An implicit-FTPS client expects a TLS handshake: plaintext would be garbage to it,
            // and a handshake per refused connection is what a flood would want.
            if start == ControlStart::Plain {
                let _ = stream
                    .write_all(format!("421 {limit}\r\n").as_bytes())
                    .await;
            }
            let _ = stream.shutdown().await;
            return;
        }
    };
    let link = match SessionLink::new(client, stream.as_fd(), shared.state.clone()) {
        Ok(link) => Arc::new(link),
        Err(error) => {
            slog::error!(shared.logger, "could not inspect control socket"; "error" => %error);
            return;
        }
    };
    let id = shared.next_session_id.fetch_add(1, Ordering::Relaxed);
    lock(&shared.sessions).insert(id, link.clone());

    let _permit = permit;
    let started = Instant::now();
    match build_session_server(&shared, link.clone(), id) {
        Ok(server) => {
            // The client, not the peer, for libunftp too; and how to find the client behind
            // each passive data connection (libunftp patch `proxy-peer`).
            let data_peers = shared.proxy.clone();
            let service = async {
                let _ = match start {
                    ControlStart::Plain => {
                        server.service_with_peer(stream, client, data_peers).await
                    }
                    ControlStart::ImplicitTls => {
                        server
                            .service_implicit_tls_with_peer(stream, client, data_peers)
                            .await
                    }
                };
            };
            let timeout = shared.config.login_timeout;
            serve_with_login_deadline(service, &link, timeout, &shared.logger).await;
        }
        Err(error) => slog::error!(shared.logger, "could not start session"; "error" => %error),
    }
    if let Some(user) = link.user() {
        let host = link.host();
        shared.audit.record(AuditRecord {
            op: Op::Logout,
            user: &user,
            client_ip: client.ip(),
            host: host.as_deref(),
            path: "",
            bytes: None,
            duration: started.elapsed(),
            outcome: Outcome::Ok,
        });
    }
    lock(&shared.sessions).remove(&id);
    shared.state.notify_activity();
}

/// A libunftp server configured for exactly one connection; its storage shares `link`.
fn build_session_server<A>(
    shared: &Shared<A>,
    link: Arc<SessionLink>,
    session_id: u64,
) -> Result<libunftp::Server<FerryStorage, FerryUser>, ServerError>
where
    A: Authenticator + UserDetailProvider<User = FerryUser> + 'static,
{
    let config = &shared.config;
    let audit = shared.audit.clone();
    let storage_link = link.clone();
    let data_timeout = config.data_timeout;
    let bucket = shared.bucket.clone();
    let limits = shared.limits.clone();
    let events = shared.events.clone();
    let storage = Box::new(move || {
        let store = match &bucket {
            Some(bucket) => SessionStore::Bucket(S3Store::new(bucket.clone(), data_timeout)),
            None => SessionStore::Local(LocalStore::new(data_timeout)),
        };
        FerryStorage::new(store, storage_link.clone(), audit.clone(), limits.clone())
            .with_events(events.clone())
    });
    let provider: Arc<dyn UserDetailProvider<User = FerryUser> + Send + Sync> =
        shared.authenticator.clone();
    let mode = if config.active_mode {
        ActivePassiveMode::ActiveAndPassive
    } else {
        ActivePassiveMode::PassiveOnly
    };
    let passive_host = match &config.passive_host {
        Some(host) => PassiveHost::from(host.as_str()),
        None => PassiveHost::FromConnection,
    };
    // Ferry closes a session (shutdown, login timeout) through libunftp's control loop, so that
    // the 421 goes through the loop's reply sink: inside TLS for a secured session.
    let close_requests = link.close_requests();
    let shutdown_indicator = async move {
        match close_requests {
            Some(requests) => match requests.await {
                Ok(reply) => Shutdown::new()
                    .reply(reply)
                    .grace_period(SESSION_ABORT_AFTER),
                // The link is gone without a request: the session ends by itself.
                Err(_) => std::future::pending().await,
            },
            None => std::future::pending().await,
        }
    };
    let builder =
        ServerBuilder::<FerryStorage, FerryUser>::with_user_detail_provider(storage, provider)
            .shutdown_indicator(shutdown_indicator);
    let builder = match &shared.ftps {
        Some(ftps) => ftps.configure(builder),
        None => builder,
    };
    let builder = super::commands::register(builder, &link, &config.host_names);
    builder
        .authenticator(shared.authenticator.clone())
        .greeting(shared.greeting)
        .passive_ports(config.passive_ports.clone())
        .passive_host(passive_host)
        .idle_session_timeout(config.idle_timeout.as_secs())
        .active_passive_mode(mode)
        .binder(PassiveBinder::default())
        .metrics()
        .logger(library_logger(
            &shared.logger,
            config.log_level,
            link.client,
            session_id,
        ))
        .build()
        .map_err(|error| ServerError::Session(error.to_string()))
}

/// libunftp logs every command and connection at info; Ferry's audit records say what happened
/// in fewer lines, so libunftp speaks only at warning unless debugging. At debug it also logs
/// the conversation (each command, PASS masked, and each reply: the command-log patch), each
/// record carrying the session's id so that one session's lines can be picked out of many.
fn library_logger(
    logger: &slog::Logger,
    level: slog::Level,
    client: SocketAddr,
    session_id: u64,
) -> slog::Logger {
    let logger = logger.new(slog::o!("client" => client.to_string(), "session" => session_id));
    if matches!(level, slog::Level::Debug | slog::Level::Trace) {
        logger
    } else {
        slog::Logger::root(
            slog::Drain::fuse(slog::LevelFilter::new(logger, slog::Level::Warning)),
            slog::o!(),
        )
    }
}

/// Waits for each successful reload of `users` and closes the sessions it revoked.
async fn close_revoked_after_reloads<A>(shared: Arc<Shared<A>>, users: Arc<UserDirectory>) {
    let mut seen = users.generation();
    loop {
        users.wait_for_generation(seen + 1).await;
        seen = users.generation();
        let sessions: Vec<Arc<SessionLink>> = lock(&shared.sessions).values().cloned().collect();
        for link in sessions {
            if let Some(revoked) = link.revoked() {
                slog::warn!(shared.logger, "session closed: {revoked}";
                    "user" => link.user().unwrap_or_default(), "client" => %link.client);
                close_session(link, &format!("Session closed: {revoked}"));
            }
        }
    }
}

/// Graceful shutdown: idle sessions are closed at once; sessions with a running transfer are
/// closed when it ends; whatever remains when the grace period is over is closed regardless.
/// Each is asked to close (421 from its control loop, see [`SessionLink::request_close`]);
/// one still open [`CLOSE_FALLBACK`] later has its socket shut down.
async fn drain_sessions<A>(shared: &Shared<A>, session_tasks: &mut JoinSet<()>) {
    shared.state.begin_shutdown();
    let deadline = tokio::time::Instant::now() + shared.config.shutdown_grace;
    slog::info!(shared.logger, "shutting down"; "running_transfers" => shared.state.running_transfers(), "grace_secs" => shared.config.shutdown_grace.as_secs());
    let mut idle_since: HashMap<u64, tokio::time::Instant> = HashMap::new();
    loop {
        let now = tokio::time::Instant::now();
        let sessions: Vec<(u64, Arc<SessionLink>)> = lock(&shared.sessions)
            .iter()
            .map(|(id, link)| (*id, link.clone()))
            .collect();
        if sessions.is_empty() || now >= deadline {
            break;
        }
        let mut next_check = deadline;
        for (id, link) in sessions {
            if link.has_running_transfer() {
                idle_since.remove(&id);
                continue;
            }
            let idle_at = *idle_since.entry(id).or_insert(now);
            if now >= idle_at + REPLY_FLUSH_DELAY || !link.ever_transferred() {
                close_session(link, SHUTDOWN_REPLY);
                lock(&shared.sessions).remove(&id);
            } else {
                next_check = next_check.min(idle_at + REPLY_FLUSH_DELAY);
            }
        }
        tokio::select! {
            _ = shared.state.activity() => {}
            _ = tokio::time::sleep_until(next_check) => {}
        }
    }
    let remaining: Vec<Arc<SessionLink>> = lock(&shared.sessions).values().cloned().collect();
    for link in remaining {
        close_session(link, SHUTDOWN_REPLY);
    }
    // The sessions are closing; let their tasks end and write logout records, the fallback
    // included (a session's task ends when its control loop does).
    let _ = tokio::time::timeout(CLOSE_FALLBACK + REPLY_FLUSH_DELAY, async {
        while session_tasks.join_next().await.is_some() {}
    })
    .await;
    slog::info!(shared.logger, "shutdown complete"; "running_transfers" => shared.state.running_transfers());
}

/// Asks a session to close with `421 {reply}` (shutdown, a revoked account); shuts its socket
/// down if it is still open [`CLOSE_FALLBACK`] later.
fn close_session(link: Arc<SessionLink>, reply: &str) {
    link.request_close(reply);
    tokio::spawn(async move {
        tokio::time::sleep(CLOSE_FALLBACK).await;
        link.force_close();
    });
}

/// What `ferry serve --check-config` proves beyond the configuration itself: accounts in
/// PostgreSQL can be reached (a connection made), and a bucket root is reachable and writable
/// (a probe object written and deleted). A directory root and a users file were already
/// checked as the configuration loaded.
pub async fn check_services(config: &Config, logger: &slog::Logger) -> Result<(), ServerError> {
    if let Some(database) = &config.users_database {
        crate::accounts::postgres::connection::connect(database)
            .await
            .map_err(|error| ServerError::Users(error.into()))?;
    }
    let Some(root) = &config.bucket else {
        return Ok(());
    };
    let metrics = crate::observe::metrics::Metrics::new().object_store();
    let bucket = Bucket::connect(root, config, metrics, logger.clone()).await?;
    bucket
        .check_writable()
        .await
        .map_err(ServerError::BucketUnusable)
}

/// [`check_services`] for `ferry serve --check-config`, which has no runtime of its own: runs
/// one when there is anything to reach.
pub fn check_services_now(config: &Config) -> Result<(), String> {
    if config.bucket.is_none() && config.users_database.is_none() {
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| format!("could not start the async runtime: {error}"))?;
    let logger = slog::Logger::root(slog::Discard, slog::o!());
    runtime
        .block_on(check_services(config, &logger))
        .map_err(|error| error.to_string())
}

/// Connects to the bucket `root` names, proves it writable (a probe object written and
/// deleted), aborts the unfinished uploads an earlier run of this instance left, and starts
/// the periodic sweep of stale ones.
async fn open_bucket(
    root: &crate::config::BucketRoot,
    config: &Config,
    audit: &AuditLog,
    logger: &slog::Logger,
) -> Result<Arc<Bucket>, ServerError> {
    let metrics = audit.metrics().object_store();
    let bucket = Bucket::connect(root, config, metrics, logger.clone()).await?;
    bucket
        .check_writable()
        .await
        .map_err(ServerError::BucketUnusable)?;
    match s3::sweep_at_start(&bucket).await {
        Ok(0) => {}
        Ok(swept) => {
            slog::info!(logger, "aborted unfinished uploads left by an earlier run"; "count" => swept)
        }
        Err(failure) => {
            slog::warn!(logger, "could not sweep unfinished uploads; retrying periodically"; "error" => failure.to_string())
        }
    }
    let sweeping = Arc::downgrade(&bucket);
    let sweep_logger = logger.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(s3::SWEEP_EVERY).await;
            let Some(bucket) = sweeping.upgrade() else {
                return; // the server is gone
            };
            match s3::sweep_stale(&bucket).await {
                Ok(0) => {}
                Ok(swept) => {
                    slog::info!(sweep_logger, "aborted stale unfinished uploads"; "count" => swept)
                }
                Err(failure) => {
                    slog::warn!(sweep_logger, "could not sweep stale uploads"; "error" => failure.to_string())
                }
            }
        }
    });
    slog::info!(logger, "serving homes from a bucket"; "root" => root.to_string());
    Ok(bucket)
}

/// The text of the 421 sessions get at shutdown.
const SHUTDOWN_REPLY: &str = "Server shutting down";

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Loads the users file, starts its reloader, cleans temporaries and binds: everything but
/// serving. Tests call this and then [`FerryServer::serve`] with their own shutdown signal.
pub async fn start(
    config: Config,
    logger: slog::Logger,
) -> Result<FerryServer<FerryAuthenticator>, ServerError> {
    let directory = open_accounts(&config, &logger).await?;
    // The demo account's password is in the README: serve it on loopback only.
    if !config.bind.ip().is_loopback() {
        let exposed =
            directory.users_with_password(crate::accounts::users::PUBLISHED_DEMO_PASSWORD);
        if !exposed.is_empty() {
            return Err(ServerError::DemoPasswordExposed {
                bind: config.bind,
                users: exposed.join(", "),
            });
        }
    }
    directory.spawn_reloader();
    let audit = AuditLog::new(&logger);
    let authenticator = Arc::new(FerryAuthenticator::new(
        directory.clone(),
        &config,
        audit.clone(),
        logger.clone(),
    ));
    let admin_bind = config.admin_bind;
    let login_guard = authenticator.login_guard();
    let usage = Arc::new(usage_ledger(&config, &directory));
    let mut server =
        FerryServer::bind(config, authenticator, login_guard, audit, usage, logger).await?;
    server.close_revoked_sessions(directory.clone());
    if let Some(addr) = admin_bind {
        server.bind_admin(addr, directory).await?;
    }
    Ok(server)
}

/// The accounts `users` names: the users file, or PostgreSQL (connected, schema migrated).
pub async fn open_accounts(
    config: &Config,
    logger: &slog::Logger,
) -> Result<Arc<UserDirectory>, ServerError> {
    let anonymous_home = config.anonymous.then(|| config.anonymous_home.clone());
    // In a bucket, homes are key prefixes under a virtual root `/` (see `S3Store::enter`).
    let homes_root = match &config.bucket {
        Some(_) => std::path::Path::new("/"),
        None => config.root.as_path(),
    };
    let directory = match &config.users_database {
        Some(database) => {
            // With the policy off nothing is counted, and leftover rows may all go.
            let failure_window = config
                .login_failures
                .as_ref()
                .map_or(Duration::ZERO, |policy| policy.ban);
            UserDirectory::open_database(
                database,
                failure_window,
                homes_root,
                anonymous_home,
                logger.clone(),
            )
            .await?
        }
        None => UserDirectory::load(
            &config.users_file,
            homes_root,
            anonymous_home,
            logger.clone(),
        )?,
    };
    Ok(directory)
}

/// Where usage is kept: beside the accounts in PostgreSQL, else in the usage directory.
pub fn usage_ledger(config: &Config, directory: &UserDirectory) -> UsageLedger {
    match directory.database_link() {
        Some(link) => UsageLedger::in_database(link.clone()),
        None => {
            let root = config.bucket.is_none().then_some(config.root.as_path());
            UsageLedger::in_directory(config.limits.usage_dir(root))
        }
    }
}

/// Runs `ferry serve` until SIGINT/SIGTERM, then lets transfers finish within the grace period.
pub async fn run(config: Config, logger: slog::Logger) -> Result<(), ServerError> {
    raise_open_file_limit(&logger);
    let server = start(config, logger.clone()).await?;
    server.serve(termination_signal(logger)).await
}

/// Completes on the first SIGINT or SIGTERM.
async fn termination_signal(logger: slog::Logger) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut interrupt), Ok(mut terminate)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        slog::error!(
            logger,
            "could not install signal handlers; stop Ferry with SIGKILL"
        );
        return std::future::pending().await;
    };
    let name = tokio::select! {
        _ = interrupt.recv() => "SIGINT",
        _ = terminate.recv() => "SIGTERM",
    };
    slog::info!(logger, "signal received"; "signal" => name);
}

/// Every session holds a control socket and sometimes a data socket and a file: raise the
/// soft limit on open files to the hard limit so thousands of sessions fit.
pub fn raise_open_file_limit(logger: &slog::Logger) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid, initialised struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return;
        }
        let before = limit.rlim_cur;
        limit.rlim_cur = limit.rlim_max;
        if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
            slog::info!(logger, "open file limit"; "before" => before, "now" => limit.rlim_cur);
        }
    }
}
