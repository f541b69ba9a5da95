//! Ferry's authenticator: verifies logins against the users file and yields the session's user.

use crate::users::Permissions;
use std::fmt;
use std::path::{Path, PathBuf};

/// The logged-in user of a session, as libunftp hands it to the storage backend.
#[derive(Debug, Clone)]
pub struct FerryUser {
    pub name: String,
    /// Absolute path of the home directory (beneath the server root).
    pub home: PathBuf,
    pub permissions: Permissions,
    pub anonymous: bool,
}

impl fmt::Display for FerryUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl unftp_core::auth::UserDetail for FerryUser {
    fn home(&self) -> Option<&Path> {
        Some(&self.home)
    }
}
