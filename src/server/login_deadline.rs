//! Pre-login watchdog: a connection that has not logged in within `login_timeout` gets 421.
//!
//! libunftp's idle timeout restarts with every complete command and never sees a partial line,
//! so a client that trickles one byte a second, or sends NOOP every few seconds, could hold a
//! session slot for ever without logging in (slowloris). The watchdog bounds the whole time
//! from accept to a successful login, whatever the client sends meanwhile.

use crate::server::session::{CLOSE_FALLBACK, SessionLink};
use std::future::Future;
use std::time::Duration;

/// The text of the 421 reply a connection gets when its login time is up.
const LOGIN_TIMEOUT_REPLY: &str = "Login timed out; closing control connection";

/// What the watchdog did to a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginWatch {
    /// The session ended by itself, or logged in in time.
    Undisturbed,
    /// Nobody had logged in when the time was up: the session was closed with 421.
    TimedOut,
}

/// Drives `session` (the libunftp control loop of `link`) to its end. If no user has logged in
/// on `link` once `timeout` has passed, the control loop is asked to answer 421 and close (see
/// [`SessionLink::request_close`]); one that has not ended within [`CLOSE_FALLBACK`] has its
/// socket shut down under it. The session is awaited either way so its task winds down.
pub async fn serve_with_login_deadline(
    session: impl Future<Output = ()>,
    link: &SessionLink,
    timeout: Duration,
    logger: &slog::Logger,
) -> LoginWatch {
    tokio::pin!(session);
    tokio::select! {
        () = &mut session => return LoginWatch::Undisturbed,
        () = tokio::time::sleep(timeout) => {}
    }
    if link.user().is_some() {
        session.await;
        return LoginWatch::Undisturbed;
    }
    slog::info!(logger, "closing a connection that did not log in in time";
        "client" => %link.client, "login_timeout_secs" => timeout.as_secs());
    link.request_close(LOGIN_TIMEOUT_REPLY);
    tokio::select! {
        () = &mut session => {}
        () = tokio::time::sleep(CLOSE_FALLBACK) => {
            link.force_close();
            session.await;
        }
    }
    LoginWatch::TimedOut
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::session::ServerState;
    use crate::storage::SessionContext;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::Arc;

    /// A link over a real loopback connection, the client's end of it, and the server's end
    /// (the link only borrows it, so the caller keeps it open).
    fn connected_link() -> (SessionLink, TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let client = TcpStream::connect(listener.local_addr().expect("address")).expect("connect");
        let (server_side, peer) = listener.accept().expect("accept");
        let link = SessionLink::new(
            peer,
            std::os::fd::AsFd::as_fd(&server_side),
            Arc::new(ServerState::default()),
        )
        .expect("link");
        (link, client, server_side)
    }

    fn discard_logger() -> slog::Logger {
        slog::Logger::root(slog::Discard, slog::o!())
    }

    #[tokio::test]
    async fn session_without_login_is_asked_to_close_with_421_when_the_time_is_up() {
        let (link, mut client, mut server_side) = connected_link();
        let requests = link.close_requests().expect("close requests");
        // Stands in for libunftp's control loop: answers the close request as it does.
        let stand_in = async move {
            let reply = requests.await.expect("a close request");
            server_side
                .write_all(format!("421 {reply}\r\n").as_bytes())
                .expect("write 421");
        };
        let timeout = Duration::from_millis(50);
        let watch = serve_with_login_deadline(stand_in, &link, timeout, &discard_logger()).await;
        assert_eq!(watch, LoginWatch::TimedOut);
        let mut reply = String::new();
        client
            .read_to_string(&mut reply)
            .expect("read until closed");
        assert_eq!(reply, format!("421 {LOGIN_TIMEOUT_REPLY}\r\n"));
    }

    #[tokio::test]
    async fn session_that_ignores_the_close_request_is_closed_under_it() {
        let (link, mut client, _server_side) = connected_link();
        // A control loop stuck for longer than the fallback allows.
        let stand_in = tokio::time::sleep(CLOSE_FALLBACK * 10);
        let timeout = Duration::from_millis(20);
        let started = std::time::Instant::now();
        let watch = tokio::spawn(async move {
            serve_with_login_deadline(stand_in, &link, timeout, &discard_logger()).await
        });
        let rest = tokio::task::spawn_blocking(move || {
            let mut rest = Vec::new();
            client.read_to_end(&mut rest).map(|_| rest)
        })
        .await
        .expect("reader thread")
        .expect("read until closed");
        assert!(
            rest.is_empty(),
            "nothing written under the session: {rest:?}"
        );
        assert!(started.elapsed() < CLOSE_FALLBACK * 5);
        watch.abort();
    }

    #[tokio::test]
    async fn logged_in_session_is_left_alone() {
        let (link, _client, _server_side) = connected_link();
        link.set_user(&crate::accounts::auth::FerryUser::with_fixed_rights(
            "alice",
            "/srv/alice".into(),
            crate::accounts::users::Permissions::ALL,
        ));
        let stand_in = tokio::time::sleep(Duration::from_millis(200));
        let timeout = Duration::from_millis(20);
        let watch = serve_with_login_deadline(stand_in, &link, timeout, &discard_logger()).await;
        assert_eq!(watch, LoginWatch::Undisturbed);
        assert!(!link.control_closed());
    }
}
