//! SITE CHMOD: `SITE CHMOD 640 path` sets a file's permission bits, as lftp's `mirror -R` and
//! FileZilla's "File permissions..." do.

use super::{client_path, logged_in_user};
use crate::accounts::auth::FerryUser;
use crate::storage::{FerryStorage, to_reply};
use async_trait::async_trait;
use libunftp::options::{Reply, ReplyCode, SiteCommandContext, SiteCommandHandler};

#[derive(Debug)]
pub struct SiteChmod;

#[async_trait]
impl SiteCommandHandler<FerryStorage, FerryUser> for SiteChmod {
    async fn handle(&self, context: &SiteCommandContext<FerryStorage, FerryUser>) -> Reply {
        let parsed = context
            .arguments
            .split_once(' ')
            .and_then(|(mode, path)| Some((parse_mode(mode)?, path)))
            .filter(|(_, path)| !path.is_empty());
        let Some((mode, path)) = parsed else {
            return Reply::new(
                ReplyCode::ParameterSyntaxError,
                "SITE CHMOD needs an octal mode (3 or 4 digits) and a path",
            );
        };
        let user = match logged_in_user(&context.user) {
            Ok(user) => user,
            Err(reply) => return reply,
        };
        let target = client_path(&context.cwd, path);
        match context.storage.set_permissions(user, &target, mode).await {
            Ok(()) => Reply::new(ReplyCode::CommandOkay, "SITE CHMOD command successful"),
            Err(error) => to_reply(&error),
        }
    }
}

/// An octal mode of 3 or 4 digits (`640`, `0644`, `2755`). The setuid, setgid and sticky bits
/// a 4-digit mode may carry are accepted but never set (the store masks them off): clients
/// such as lftp send a local directory's setgid bit along, and refusing the whole command
/// would leave its permission bits unset too.
fn parse_mode(text: &str) -> Option<u32> {
    if !(3..=4).contains(&text.len()) || !text.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return None;
    }
    u32::from_str_radix(text, 8).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_are_three_or_four_octal_digits() {
        assert_eq!(parse_mode("640"), Some(0o640));
        assert_eq!(parse_mode("0644"), Some(0o644));
        assert_eq!(parse_mode("4755"), Some(0o4755));
        for bad in ["", "64", "06440", "648", "rwx", "-644", "+644"] {
            assert_eq!(parse_mode(bad), None, "{bad:?}");
        }
    }
}
