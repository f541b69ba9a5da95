//! The server: the accept loop, one libunftp server per connection, session limits, the
//! passive-port binder, the pre-login deadline, the PROXY protocol, and graceful shutdown.
//!
//! This is the top of the dependency graph: it wires `accounts` (the authenticator), `storage`
//! (the backend, given each session's [`session::SessionLink`] through the
//! [`crate::storage::SessionContext`] trait), `tls`, `observe` and `config` together. Nothing
//! below it imports it; what the lower subsystems need of a session or of the running server
//! they declare as a trait (`storage::SessionContext`, `observe::admin::ServerProbe`) and the
//! server implements.

mod accept;
mod commands;
pub mod limits;
pub mod login_deadline;
pub mod passive;
mod probe;
mod proxy;
pub mod rescan;
pub mod session;

pub use accept::{
    BLOCKING_THREADS_RESERVE, FerryServer, ServerError, async_worker_threads, blocking_threads,
    build_runtime, check_services, check_services_now, raise_open_file_limit, run, start,
};
