//! What Ferry knows about each live session beside libunftp: the client, the logged-in user,
//! running transfers, and a second handle on the control socket.
//!
//! libunftp owns the control connection once a session starts. Ferry keeps a duplicate of the
//! socket descriptor so that it can tell whether the client has gone (an upload whose data
//! connection closes cleanly after the control connection died is not committed) and so that
//! shutdown can close idle sessions.

use crate::storage::StoreError;
use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// Server-wide state shared by every session.
#[derive(Debug, Default)]
pub struct ServerState {
    /// Set once shutdown begins: no new transfers start.
    shutting_down: AtomicBool,
    /// Transfers running in all sessions.
    transfers: AtomicUsize,
    /// Woken whenever a transfer or a session ends, so shutdown can re-check without polling.
    activity: Notify,
}

impl ServerState {
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }

    pub fn running_transfers(&self) -> usize {
        self.transfers.load(Ordering::SeqCst)
    }

    /// Waits for the next transfer or session to end.
    pub async fn activity(&self) {
        self.activity.notified().await
    }

    pub fn notify_activity(&self) {
        self.activity.notify_waiters();
    }
}

/// One live session, shared by the accept loop and the session's storage backend.
#[derive(Debug)]
pub struct SessionLink {
    pub client: SocketAddr,
    /// A duplicate of the control socket (see the module docs).
    control: TcpStream,
    user: Mutex<Option<String>>,
    transfers: AtomicUsize,
    /// A session that never transferred has no final reply in flight: shutdown closes it at once.
    ever_transferred: AtomicBool,
    server: Arc<ServerState>,
}

impl SessionLink {
    pub fn new(client: SocketAddr, control: TcpStream, server: Arc<ServerState>) -> Self {
        SessionLink {
            client,
            control,
            user: Mutex::new(None),
            transfers: AtomicUsize::new(0),
            ever_transferred: AtomicBool::new(false),
            server,
        }
    }

    pub fn set_user(&self, name: &str) {
        if let Ok(mut user) = self.user.lock() {
            *user = Some(name.to_owned());
        }
    }

    pub fn user(&self) -> Option<String> {
        self.user.lock().ok().and_then(|user| user.clone())
    }

    pub fn ever_transferred(&self) -> bool {
        self.ever_transferred.load(Ordering::SeqCst)
    }

    pub fn has_running_transfer(&self) -> bool {
        self.transfers.load(Ordering::SeqCst) > 0
    }

    /// Counts a transfer as running until the guard drops; refused once shutdown has begun.
    pub fn begin_transfer(self: &Arc<Self>) -> Result<TransferGuard, StoreError> {
        if self.server.is_shutting_down() {
            return Err(StoreError::ShuttingDown);
        }
        self.transfers.fetch_add(1, Ordering::SeqCst);
        self.ever_transferred.store(true, Ordering::SeqCst);
        self.server.transfers.fetch_add(1, Ordering::SeqCst);
        Ok(TransferGuard { link: self.clone() })
    }

    /// True when the client has closed or reset the control connection.
    pub fn control_closed(&self) -> bool {
        let mut poll = libc::pollfd {
            fd: self.control.as_raw_fd(),
            events: libc::POLLRDHUP,
            revents: 0,
        };
        // SAFETY: one valid pollfd, zero timeout; the descriptor is owned by `self.control`.
        let ready = unsafe { libc::poll(&mut poll, 1, 0) };
        ready > 0 && poll.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0
    }

    /// Tells the client the service is closing (421) and closes the control connection, which
    /// ends libunftp's control loop for this session.
    pub fn close(&self, reply: &str) {
        let mut control = &self.control;
        let _ = control.write_all(format!("421 {reply}\r\n").as_bytes());
        let _ = self.control.shutdown(Shutdown::Both);
    }
}

/// Marks a transfer as running (see [`SessionLink::begin_transfer`]).
#[derive(Debug)]
pub struct TransferGuard {
    link: Arc<SessionLink>,
}

impl Drop for TransferGuard {
    fn drop(&mut self) {
        self.link.transfers.fetch_sub(1, Ordering::SeqCst);
        self.link.server.transfers.fetch_sub(1, Ordering::SeqCst);
        self.link.server.notify_activity();
    }
}
