//! HOST (RFC 7151): the host name a client means, sent before login so that one address can
//! serve several names. Ferry serves every name alike; it records the name in the session's
//! audit records and, when `host_names` lists names, refuses the others (504, and the client
//! may try another name).

use crate::accounts::auth::FerryUser;
use crate::config::normalize_host_name;
use crate::server::session::SessionLink;
use crate::storage::FerryStorage;
use async_trait::async_trait;
use libunftp::options::{CommandExtension, ExtensionContext, Reply, ReplyCode};
use std::sync::Arc;

#[derive(Debug)]
pub struct Host {
    link: Arc<SessionLink>,
    /// Names accepted, as `config::normalize_host_name` writes them; empty accepts any.
    accepted: Vec<String>,
}

impl Host {
    pub fn new(link: Arc<SessionLink>, accepted: &[String]) -> Self {
        Host {
            link,
            accepted: accepted.to_vec(),
        }
    }
}

#[async_trait]
impl CommandExtension<FerryStorage, FerryUser> for Host {
    async fn handle(&self, context: &ExtensionContext<FerryStorage, FerryUser>) -> Reply {
        // RFC 7151 section 3: HOST after login is a bad sequence of commands.
        if context.logged_in {
            return Reply::new(ReplyCode::BadCommandSequence, "HOST must come before login");
        }
        let Some(name) = normalize_host_name(context.arguments.trim()) else {
            return Reply::new(
                ReplyCode::ParameterSyntaxError,
                "HOST needs a host name or an IP address",
            );
        };
        if !self.accepted.is_empty() && !self.accepted.contains(&name) {
            return Reply::new(ReplyCode::CommandNotImplementedForParameter, "Unknown host");
        }
        self.link.set_host(&name);
        Reply::new(ReplyCode::ServiceReady, "Host accepted")
    }

    fn before_login(&self) -> bool {
        true
    }

    fn feature(&self) -> Option<String> {
        Some("HOST".to_owned())
    }
}
