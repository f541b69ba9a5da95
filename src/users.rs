//! The users file: accounts, argon2id password hashes, homes, permissions, allowed networks.

use ipnet::IpNet;
use std::path::PathBuf;

/// What a user may do. Every refused operation gets 550 and an audit record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permissions {
    pub list: bool,
    pub download: bool,
    pub upload: bool,
    /// Replace an existing file (STOR over it, APPE, REST+STOR).
    pub overwrite: bool,
    pub delete: bool,
    pub mkdir: bool,
    pub rmdir: bool,
    pub rename: bool,
}

impl Permissions {
    pub const ALL: Permissions = Permissions {
        list: true,
        download: true,
        upload: true,
        overwrite: true,
        delete: true,
        mkdir: true,
        rmdir: true,
        rename: true,
    };
    pub const READ_ONLY: Permissions = Permissions {
        list: true,
        download: true,
        upload: false,
        overwrite: false,
        delete: false,
        mkdir: false,
        rmdir: false,
        rename: false,
    };
}

/// One account as stored in the users file.
#[derive(Debug, Clone)]
pub struct UserRecord {
    pub name: String,
    /// argon2id PHC string; never a plaintext password.
    pub password_hash: String,
    /// Home directory relative to the server root.
    pub home: PathBuf,
    pub permissions: Permissions,
    pub enabled: bool,
    /// When not empty, logins are accepted only from these networks.
    pub allowed_networks: Vec<IpNet>,
}
