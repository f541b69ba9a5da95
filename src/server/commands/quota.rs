//! What a client can learn and ask of its quota: AVBL (draft-peterson-streamlined-ftp-command-
//! extensions: `213 <bytes>` that may still be stored), SITE QUOTA (usage and limits, as
//! Pure-FTPd and ProFTPD show them) and ALLO (RFC 959: a size the server may refuse, here with
//! 552 when it exceeds what the quota leaves).

use super::logged_in_user;
use crate::accounts::auth::FerryUser;
use crate::accounts::limits::human_bytes;
use crate::storage::{FerryStorage, to_reply};
use async_trait::async_trait;
use libunftp::options::{
    CommandExtension, ExtensionContext, Reply, ReplyCode, SiteCommandContext, SiteCommandHandler,
};

/// AVBL [path]: the bytes the user may still store: what the byte quota leaves, else the
/// free space where the home lives; 550 when neither is known (a bucket without a quota).
/// Every path is in the one home, so the path changes nothing.
#[derive(Debug)]
pub struct Avbl;

#[async_trait]
impl CommandExtension<FerryStorage, FerryUser> for Avbl {
    async fn handle(&self, context: &ExtensionContext<FerryStorage, FerryUser>) -> Reply {
        let user = match logged_in_user(&context.user) {
            Ok(user) => user,
            Err(reply) => return reply,
        };
        match context.storage.available(user).await {
            Err(error) => to_reply(&error),
            Ok(Some(bytes)) => Reply::new_with_string(ReplyCode::FileStatus, bytes.to_string()),
            Ok(None) => Reply::new(
                ReplyCode::FileError,
                "No quota, and the storage does not report free space",
            ),
        }
    }

    fn feature(&self) -> Option<String> {
        Some("AVBL".to_owned())
    }
}

/// ALLO n [R m]: 552 when `n` bytes exceed what the byte quota leaves; 200 otherwise (202,
/// as upstream answered, without a byte quota: nothing to reserve).
#[derive(Debug)]
pub struct Allo;

#[async_trait]
impl CommandExtension<FerryStorage, FerryUser> for Allo {
    async fn handle(&self, context: &ExtensionContext<FerryStorage, FerryUser>) -> Reply {
        let user = match logged_in_user(&context.user) {
            Ok(user) => user,
            Err(reply) => return reply,
        };
        let size = context
            .arguments
            .split_whitespace()
            .next()
            .map(str::parse::<u64>);
        let bytes = match size {
            Some(Ok(bytes)) => bytes,
            _ => {
                return Reply::new(
                    ReplyCode::ParameterSyntaxError,
                    "ALLO needs a size in bytes",
                );
            }
        };
        match context.storage.allocate(user, bytes).await {
            Ok(Some(left)) => Reply::new_with_string(
                ReplyCode::CommandOkay,
                format!("ALLO accepted: {bytes} bytes fit in the {left} left"),
            ),
            Ok(None) => Reply::new(ReplyCode::CommandOkayNotImplemented, "No quota; ignored"),
            Err(error) => to_reply(&error),
        }
    }

    fn feature(&self) -> Option<String> {
        None
    }
}

/// SITE QUOTA: the home's usage against the account's quotas, one line each.
#[derive(Debug)]
pub struct SiteQuota;

#[async_trait]
impl SiteCommandHandler<FerryStorage, FerryUser> for SiteQuota {
    async fn handle(&self, context: &SiteCommandContext<FerryStorage, FerryUser>) -> Reply {
        let user = match logged_in_user(&context.user) {
            Ok(user) => user,
            Err(reply) => return reply,
        };
        let status = match context.storage.quota_status(user).await {
            Ok(status) => status,
            Err(error) => return to_reply(&error),
        };
        let limit = |value: u64, show: fn(u64) -> String| {
            if value == 0 {
                "unlimited".to_owned()
            } else {
                show(value)
            }
        };
        let lines = vec![
            format!("Quota for {}:", user.name),
            format!(
                "Bytes used: {} ({}) of {}",
                status.usage.bytes,
                human_bytes(status.usage.bytes),
                limit(status.limits.quota_bytes, |q| format!(
                    "{q} ({})",
                    human_bytes(q)
                ))
            ),
            format!(
                "Files used: {} of {}",
                status.usage.files,
                limit(status.limits.quota_files, |q| q.to_string())
            ),
            "End of quota".to_owned(),
        ];
        Reply::new_multiline(ReplyCode::CommandOkay, lines)
    }
}
