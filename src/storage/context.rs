//! What the storage backend needs of the session it serves, declared here and implemented by
//! the server (`server::session::SessionLink`), so that storage never imports the server.

use super::StoreError;
use crate::accounts::auth::FerryUser;
use std::fmt::Debug;
use std::net::IpAddr;
use std::sync::Arc;

/// Held while a transfer runs; dropping it tells the session the transfer has ended.
pub type TransferGuard = Box<dyn Send + Sync>;

/// One live session, as its storage backend sees it.
pub trait SessionContext: Debug + Send + Sync + 'static {
    /// The client's address, for the audit records.
    fn client_ip(&self) -> IpAddr;
    /// Records who logged in, once the session's storage is entered; the session can then ask
    /// [`FerryUser::standing`] whether the account still admits it.
    fn set_user(&self, user: &FerryUser);
    /// The host name the client gave with HOST (RFC 7151), for the audit records.
    fn host(&self) -> Option<String>;
    /// Counts a transfer as running until the guard drops; refused with
    /// [`StoreError::ShuttingDown`] once shutdown has begun, and with
    /// [`StoreError::TooManyTransfers`] while the server runs as many as it allows.
    fn begin_transfer(self: Arc<Self>) -> Result<TransferGuard, StoreError>;
    /// True when the client has closed or reset the control connection: an upload whose data
    /// connection closes cleanly after that is not committed.
    fn control_closed(&self) -> bool;
    /// True once the server has begun a graceful shutdown: a download then waits until the
    /// client has its last bytes before it counts as done (the process exits right after).
    fn shutting_down(&self) -> bool;
}
