//! What the admin listener (`observe::admin`) sees of the running server.

use super::limits::SessionLimiter;
use super::session::ServerState;
use crate::accounts::auth::UserDirectory;
use crate::observe::admin::ServerProbe;
use std::sync::Arc;

/// The server's live state, lent to `/metrics` and `/ready`.
#[derive(Debug)]
pub(super) struct AdminView {
    pub limiter: Arc<SessionLimiter>,
    pub state: Arc<ServerState>,
    /// The loaded users; their root is the directory that must be writable.
    pub users: Arc<UserDirectory>,
    /// The bucket that must be writable instead, when homes live in one.
    pub bucket: Option<Arc<crate::storage::s3::Bucket>>,
}

#[async_trait::async_trait]
impl ServerProbe for AdminView {
    fn live_sessions(&self) -> usize {
        self.limiter.live_sessions()
    }

    fn shutting_down(&self) -> bool {
        self.state.is_leaving()
    }

    fn check_users(&self) -> Result<(), String> {
        if self.users.is_available() {
            Ok(())
        } else {
            Err(format!(
                "accounts database {} unreachable: new logins get 421",
                self.users.source_name()
            ))
        }
    }

    async fn check_storage(&self) -> Result<(), String> {
        if let Some(bucket) = &self.bucket {
            return bucket.check_writable().await;
        }
        let root = self.users.root().to_owned();
        tokio::task::spawn_blocking(move || crate::storage::check_root_writable(&root))
            .await
            .unwrap_or_else(|error| Err(format!("check did not finish: {error}")))
    }
}
