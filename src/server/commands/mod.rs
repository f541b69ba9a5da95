//! The commands Ferry adds to libunftp's: MFMT, SITE CHMOD, HASH (with OPTS HASH and the older
//! XSHA1, XSHA256, XSHA512, XMD5, XCRC), HOST, and the quota's AVBL, ALLO and SITE QUOTA.
//!
//! Each is registered on the session's libunftp server (built for one connection, so a
//! handler's state, such as the algorithm OPTS HASH selected, is that session's). A handler
//! parses its arguments and words its replies; the work, the permission it needs and its audit
//! record belong to the storage backend (`FerryStorage::checksum`, `set_modified`,
//! `set_permissions`), whose errors become replies in `storage::to_reply`.

mod chmod;
mod hash;
mod host;
mod mfmt;
mod quota;

use super::session::SessionLink;
use crate::accounts::auth::FerryUser;
use crate::storage::FerryStorage;
use libunftp::ServerBuilder;
use libunftp::options::{Reply, ReplyCode};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Registers Ferry's commands on a session's server builder. `host_names` is the `host_names`
/// setting (empty: HOST accepts any name).
pub fn register(
    builder: ServerBuilder<FerryStorage, FerryUser>,
    link: &Arc<SessionLink>,
    host_names: &[String],
) -> ServerBuilder<FerryStorage, FerryUser> {
    let builder = builder
        .command_extension("MFMT", mfmt::Mfmt)
        .site_command("CHMOD", chmod::SiteChmod)
        .site_command("QUOTA", quota::SiteQuota)
        .command_extension("AVBL", quota::Avbl)
        .command_extension("ALLO", quota::Allo)
        .command_extension("HOST", host::Host::new(link.clone(), host_names));
    hash::register(builder)
}

/// The logged-in user, or the reply for a session without one (libunftp only hands these
/// commands over after login; this is the type system's due).
fn logged_in_user(user: &Option<FerryUser>) -> Result<&FerryUser, Reply> {
    user.as_ref()
        .ok_or_else(|| Reply::new(ReplyCode::NotLoggedIn, "Please authenticate"))
}

/// A path argument as built-in commands take it: relative to the working directory (the
/// storage backend then resolves it beneath the home).
fn client_path(cwd: &Path, argument: &str) -> PathBuf {
    cwd.join(argument)
}
