//! What Ferry knows about each live session beside libunftp: the client, the logged-in user,
//! running transfers, and a second handle on the control socket.
//!
//! libunftp owns the control connection once a session starts. Ferry remembers the socket's
//! descriptor number and identity so that it can tell whether the client has gone (an upload
//! whose data connection closes cleanly after the control connection died is not committed)
//! and so that shutdown can close idle sessions. It does not hold a duplicate for the whole
//! session: that would double the descriptors an idle session costs (see [`ControlSocket`]).
//!
//! Ferry closes a session by asking its libunftp control loop to (see
//! [`SessionLink::request_close`]): the loop sends the 421 through its reply sink, inside TLS
//! when the session is secured, and ends TLS with close_notify. Closing the socket under the
//! loop is the fallback for a session that does not end by itself within [`CLOSE_FALLBACK`].

use crate::accounts::auth::{FerryUser, Revoked};
use crate::storage::{SessionContext, StoreError};
use std::io;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, oneshot};

/// How long a session asked to close has to send its 421 and close by itself before Ferry
/// shuts its socket down under it. The control loop answers at once, unless it is inside a
/// command or its client reads nothing (the reply then waits for room in the socket's buffer).
pub const CLOSE_FALLBACK: Duration = Duration::from_secs(2);

/// Server-wide state shared by every session.
#[derive(Debug)]
pub struct ServerState {
    /// Set once shutdown begins: no new transfers start.
    shutting_down: AtomicBool,
    /// Set when a termination signal arrives and `shutdown_drain` is not zero: `/ready` answers
    /// 503 so a load balancer sends new sessions elsewhere, while everything else goes on.
    draining: AtomicBool,
    /// Transfers running in all sessions.
    transfers: AtomicUsize,
    /// Most transfers at once (`max_transfers`): each holds a blocking thread.
    max_transfers: usize,
    /// Woken whenever a transfer or a session ends, so shutdown can re-check without polling.
    activity: Notify,
}

impl Default for ServerState {
    fn default() -> Self {
        ServerState::new(usize::MAX)
    }
}

impl ServerState {
    pub fn new(max_transfers: usize) -> Self {
        ServerState {
            shutting_down: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            transfers: AtomicUsize::new(0),
            max_transfers,
            activity: Notify::new(),
        }
    }

    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }

    pub fn begin_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Draining before shutdown, or shutting down: either way, not taking new sessions for
    /// long, so not ready.
    pub fn is_leaving(&self) -> bool {
        self.draining.load(Ordering::SeqCst) || self.is_shutting_down()
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

/// The control socket of a session, borrowed from libunftp by number when needed.
///
/// The number alone is not enough: once libunftp closes the socket, the number can be reused
/// by any new file or socket. So the socket's identity (device and inode, unique among open
/// sockets) is recorded at accept time, and every use first duplicates the number and then
/// checks the duplicate's identity: a match is the control socket, held open by the duplicate
/// for as long as it is used; a mismatch or a closed number means the session has ended.
#[derive(Debug)]
struct ControlSocket {
    fd: RawFd,
    identity: (u64, u64),
}

impl ControlSocket {
    fn new(socket: BorrowedFd<'_>) -> io::Result<Self> {
        Ok(ControlSocket {
            fd: socket.as_raw_fd(),
            identity: identity(socket)?,
        })
    }

    /// A duplicate of the control socket while it is open; None once it has been closed.
    fn borrow(&self) -> Option<TcpStream> {
        // SAFETY: F_DUPFD_CLOEXEC on a number that may no longer be open fails with EBADF or
        // duplicates some other file; the identity check below rejects the latter.
        let duplicate = unsafe { libc::fcntl(self.fd, libc::F_DUPFD_CLOEXEC, 0) };
        if duplicate < 0 {
            return None;
        }
        // SAFETY: fcntl returned a new descriptor that nothing else owns.
        let duplicate = unsafe { OwnedFd::from_raw_fd(duplicate) };
        match identity(duplicate.as_fd()) {
            Ok(found) if found == self.identity => Some(TcpStream::from(duplicate)),
            _ => None,
        }
    }
}

/// (device, inode) of an open file.
fn identity(file: BorrowedFd<'_>) -> io::Result<(u64, u64)> {
    // SAFETY: an all-zero `stat` is a valid value for fstat to overwrite.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `file` is open for the duration of the call and `stat` is writable.
    if unsafe { libc::fstat(file.as_raw_fd(), &mut stat) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((stat.st_dev, stat.st_ino))
}

/// One live session, shared by the accept loop and the session's storage backend.
#[derive(Debug)]
pub struct SessionLink {
    pub client: SocketAddr,
    /// The control socket, owned by libunftp (see the module docs).
    control: ControlSocket,
    /// The logged-in user; None before login.
    user: Mutex<Option<FerryUser>>,
    /// The host name given with HOST (RFC 7151), written into the session's audit records.
    host: Mutex<Option<String>>,
    transfers: AtomicUsize,
    /// A session that never transferred has no final reply in flight: shutdown closes it at once.
    ever_transferred: AtomicBool,
    server: Arc<ServerState>,
    /// Tells the session's control loop to answer 421 with this text and close; taken by the
    /// first close request.
    close_tx: Mutex<Option<oneshot::Sender<String>>>,
    /// The control loop's end of `close_tx`, taken once when the session's server is built.
    close_rx: Mutex<Option<oneshot::Receiver<String>>>,
}

impl SessionLink {
    /// Links a session to its control socket, which libunftp is about to own.
    pub fn new(
        client: SocketAddr,
        control: BorrowedFd<'_>,
        server: Arc<ServerState>,
    ) -> io::Result<Self> {
        let (close_tx, close_rx) = oneshot::channel();
        Ok(SessionLink {
            client,
            control: ControlSocket::new(control)?,
            user: Mutex::new(None),
            host: Mutex::new(None),
            transfers: AtomicUsize::new(0),
            ever_transferred: AtomicBool::new(false),
            server,
            close_tx: Mutex::new(Some(close_tx)),
            close_rx: Mutex::new(Some(close_rx)),
        })
    }

    pub fn user(&self) -> Option<String> {
        self.user
            .lock()
            .ok()
            .and_then(|user| user.as_ref().map(|user| user.name.clone()))
    }

    /// Why the logged-in user's account no longer admits this session (removed, disabled, ...),
    /// as of the users file last reloaded; None while it does, and before login.
    pub fn revoked(&self) -> Option<Revoked> {
        let user = self.user.lock().ok()?.clone()?;
        user.standing(self.client.ip()).err()
    }

    /// Records the host name the client asked for (HOST, before login).
    pub fn set_host(&self, name: &str) {
        if let Ok(mut host) = self.host.lock() {
            *host = Some(name.to_owned());
        }
    }

    pub fn host(&self) -> Option<String> {
        self.host.lock().ok().and_then(|host| host.clone())
    }

    pub fn ever_transferred(&self) -> bool {
        self.ever_transferred.load(Ordering::SeqCst)
    }

    pub fn has_running_transfer(&self) -> bool {
        self.transfers.load(Ordering::SeqCst) > 0
    }

    /// What the session's control loop waits on: the text of the 421 it is to answer before
    /// closing. Given out once (None afterwards).
    pub fn close_requests(&self) -> Option<oneshot::Receiver<String>> {
        self.close_rx.lock().ok().and_then(|mut rx| rx.take())
    }

    /// Asks the session's control loop to answer `421 {reply}` and close the connection (the
    /// first request's text is the one sent). The 421 goes through the loop, not this socket,
    /// because a secured session must get it inside TLS.
    pub fn request_close(&self, reply: &str) {
        let sender = self.close_tx.lock().ok().and_then(|mut tx| tx.take());
        if let Some(sender) = sender {
            // An error means the loop has ended already: nothing left to close.
            let _ = sender.send(reply.to_owned());
        }
    }

    /// Shuts the control connection down under libunftp, which ends its control loop: the
    /// fallback for a session that did not close when asked. Nothing is written: the session
    /// may be inside TLS, where plaintext would reach the client as garbage.
    pub fn force_close(&self) {
        if let Some(control) = self.control.borrow() {
            let _ = control.shutdown(Shutdown::Both);
        }
    }
}

impl SessionContext for SessionLink {
    fn client_ip(&self) -> std::net::IpAddr {
        self.client.ip()
    }

    fn set_user(&self, user: &FerryUser) {
        if let Ok(mut slot) = self.user.lock() {
            *slot = Some(user.clone());
        }
    }

    fn host(&self) -> Option<String> {
        SessionLink::host(self)
    }

    fn begin_transfer(self: Arc<Self>) -> Result<crate::storage::TransferGuard, StoreError> {
        if self.server.is_shutting_down() {
            return Err(StoreError::ShuttingDown);
        }
        let max = self.server.max_transfers;
        self.server
            .transfers
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |running| {
                (running < max).then_some(running + 1)
            })
            .map_err(|_| StoreError::TooManyTransfers)?;
        self.transfers.fetch_add(1, Ordering::SeqCst);
        self.ever_transferred.store(true, Ordering::SeqCst);
        Ok(Box::new(RunningTransfer { link: self }))
    }

    fn shutting_down(&self) -> bool {
        self.server.is_shutting_down()
    }

    fn control_closed(&self) -> bool {
        let Some(control) = self.control.borrow() else {
            return true; // libunftp closed it: the session is over
        };
        let mut poll = libc::pollfd {
            fd: control.as_raw_fd(),
            events: libc::POLLRDHUP,
            revents: 0,
        };
        // SAFETY: one valid pollfd, zero timeout; `control` keeps the descriptor open.
        let ready = unsafe { libc::poll(&mut poll, 1, 0) };
        ready > 0 && poll.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0
    }
}

/// Marks a transfer as running (see [`SessionContext::begin_transfer`]).
#[derive(Debug)]
struct RunningTransfer {
    link: Arc<SessionLink>,
}

impl Drop for RunningTransfer {
    fn drop(&mut self) {
        self.link.transfers.fetch_sub(1, Ordering::SeqCst);
        self.link.server.transfers.fetch_sub(1, Ordering::SeqCst);
        self.link.server.notify_activity();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn connected_pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (server, _) = listener.accept().expect("accept");
        (server, client)
    }

    #[test]
    fn control_socket_is_seen_closed_when_the_client_goes() {
        let (server, client) = connected_pair();
        let link = SessionLink::new(
            client.peer_addr().expect("peer"),
            server.as_fd(),
            Arc::default(),
        )
        .expect("link");
        assert!(!link.control_closed());
        drop(client);
        assert!(link.control_closed());
    }

    #[test]
    fn a_descriptor_number_that_now_names_another_socket_is_not_the_control_socket() {
        let (server, _client) = connected_pair();
        let (other, _other_client) = connected_pair();
        let control = ControlSocket::new(server.as_fd()).expect("identity");
        assert!(control.borrow().is_some());
        // What the number names once libunftp has closed it and a new connection took it:
        let reused = ControlSocket {
            fd: other.as_raw_fd(),
            identity: control.identity,
        };
        assert!(reused.borrow().is_none());
        let closed = ControlSocket {
            fd: -1,
            identity: control.identity,
        };
        assert!(closed.borrow().is_none());
    }
}
