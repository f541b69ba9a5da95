//! The users file: accounts, argon2id password hashes, homes, permissions, allowed networks.

use crate::accounts::limits::{AccountLimits, LIMIT_FIELDS, parse_limit};
use crate::accounts::password::{PasswordError, validate_phc};
use crate::config::parse_network;
use ipnet::IpNet;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::net::IpAddr;
use std::path::{Component, Path, PathBuf};

/// The password of the `demo` account in the shipped `config/users.toml`. It is public, so the
/// server refuses to start on a non-loopback address while an enabled user still has it.
pub const PUBLISHED_DEMO_PASSWORD: &str = "ferry-demo";

/// Longest accepted user name. Names appear in every audit record and log line; nothing
/// legitimate needs more, and a cap keeps a hostile users file from bloating the logs.
pub const MAX_USER_NAME_BYTES: usize = 128;

/// Written at the top of every saved users file. Saving rewrites the whole file from the
/// parsed accounts, so this is the only comment that survives `ferry user ...`.
pub const USERS_FILE_HEADER: &str = "\
# Ferry users file: one [users.NAME] table per account.
#
# Edit it with `ferry user add|passwd|remove|list --users FILE`. A running server reloads it
# within a second of any change (or on SIGHUP) without dropping sessions. Saving rewrites the
# whole file, so comments other than this header are not kept.
#
#   password          argon2id PHC hash, never a plaintext password (`ferry user passwd`)
#   home              directory relative to the server root; no absolute paths, no `..`
#   permissions       \"all\", \"read-only\", or a list of: list, download, upload, overwrite,
#                     delete, mkdir, rmdir, rename
#   enabled           false refuses every login (default true)
#   allowed_networks  networks logins may come from, in CIDR notation (default: anywhere)
#   require_tls       true refuses logins that did not start with AUTH TLS (default false)
#   quota_bytes       most bytes the home may hold (\"10G\"; 0: no limit; default: the server's)
#   quota_files       most files the home may hold (0: no limit; default: the server's)
#   upload_rate       bytes per second for all of the user's uploads together (\"10M\")
#   download_rate     bytes per second for all of the user's downloads together
";

/// Why the users file could not be read, validated, edited or written.
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    #[error("could not read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("{}: line {line}, column {column}: {message}", path.display())]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}: user {user:?}: invalid user name: {problem}", path.display())]
    InvalidUserName {
        path: PathBuf,
        user: String,
        problem: String,
    },
    #[error("{}: user `{user}`: {problem}", path.display())]
    InvalidUser {
        path: PathBuf,
        user: String,
        problem: String,
    },
    #[error("{}: user `{user}`: field `{field}`: {problem}", path.display())]
    InvalidField {
        path: PathBuf,
        user: String,
        field: String,
        problem: String,
    },
    #[error("could not write {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("could not lock {} for editing: {source}", path.display())]
    Lock { path: PathBuf, source: io::Error },
    #[error("could not encode {} as TOML: {source}", path.display())]
    Encode {
        path: PathBuf,
        source: toml::ser::Error,
    },
    #[error("anonymous home: {problem}")]
    InvalidAnonymousHome { problem: String },
    #[error("{}: user `{user}` already exists", path.display())]
    UserExists { path: PathBuf, user: String },
    #[error("{}: no user `{user}`", path.display())]
    NoSuchUser { path: PathBuf, user: String },
    #[error("the password must not be empty")]
    EmptyPassword,
    #[error("the passwords do not match")]
    PasswordMismatch,
    #[error("could not read the password: {0}")]
    ReadPassword(io::Error),
    #[error(transparent)]
    Hash(#[from] PasswordError),
    #[error("could not print the user list: {0}")]
    Output(io::Error),
    #[error(transparent)]
    Database(#[from] crate::accounts::postgres::error::DatabaseError),
    /// `--users` (or `FERRY_USERS`) names a database that cannot be used. The URL itself is
    /// not repeated: a mistaken one may hold a password.
    #[error("users: {problem}")]
    InvalidUsersLocation { problem: String },
}

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

/// Shorthand for [`Permissions::ALL`] in the users file.
pub const ALL_SHORTHAND: &str = "all";
/// Shorthand for [`Permissions::READ_ONLY`] in the users file.
pub const READ_ONLY_SHORTHAND: &str = "read-only";

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
    /// Nothing allowed; the starting point when reading a list of permission names.
    pub const NONE: Permissions = Permissions {
        list: false,
        download: false,
        upload: false,
        overwrite: false,
        delete: false,
        mkdir: false,
        rmdir: false,
        rename: false,
    };

    /// The name of each permission in the users file, in the order they are written.
    pub const NAMES: [&'static str; 8] = [
        "list",
        "download",
        "upload",
        "overwrite",
        "delete",
        "mkdir",
        "rmdir",
        "rename",
    ];

    fn flag_mut(&mut self, name: &str) -> Option<&mut bool> {
        Some(match name {
            "list" => &mut self.list,
            "download" => &mut self.download,
            "upload" => &mut self.upload,
            "overwrite" => &mut self.overwrite,
            "delete" => &mut self.delete,
            "mkdir" => &mut self.mkdir,
            "rmdir" => &mut self.rmdir,
            "rename" => &mut self.rename,
            _ => return None,
        })
    }

    /// The names of the granted permissions, in [`Permissions::NAMES`] order.
    pub fn granted_names(&self) -> Vec<&'static str> {
        let mut copy = *self;
        Self::NAMES
            .into_iter()
            .filter(|name| copy.flag_mut(name).is_some_and(|granted| *granted))
            .collect()
    }

    /// The permissions named in `names`, each one of [`Permissions::NAMES`].
    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Permissions, String> {
        let mut permissions = Permissions::NONE;
        for name in names {
            let flag = permissions
                .flag_mut(name)
                .ok_or_else(|| Self::unknown(&toml::Value::from(name)))?;
            *flag = true;
        }
        Ok(permissions)
    }

    fn unknown(name: &toml::Value) -> String {
        format!(
            "unknown permission {name}; expected one of {}",
            Self::NAMES.join(", ")
        )
    }

    /// Reads the `permissions` field: a shorthand string or a list of permission names.
    fn from_toml(value: &toml::Value) -> Result<Permissions, String> {
        match value {
            toml::Value::String(shorthand) => match shorthand.as_str() {
                ALL_SHORTHAND => Ok(Permissions::ALL),
                READ_ONLY_SHORTHAND => Ok(Permissions::READ_ONLY),
                other => Err(format!(
                    "unknown shorthand {other:?}; expected \"{ALL_SHORTHAND}\", \
                     \"{READ_ONLY_SHORTHAND}\" or a list of {}",
                    Self::NAMES.join(", ")
                )),
            },
            toml::Value::Array(names) => {
                let names = names
                    .iter()
                    .map(|name| name.as_str().ok_or_else(|| Self::unknown(name)))
                    .collect::<Result<Vec<_>, _>>()?;
                Self::from_names(names)
            }
            other => Err(format!(
                "expected a string or a list of strings, got {}",
                other.type_str()
            )),
        }
    }
}

impl fmt::Display for Permissions {
    /// `all`, `read-only`, `none`, or the granted names separated by commas.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == Permissions::ALL {
            f.write_str(ALL_SHORTHAND)
        } else if *self == Permissions::READ_ONLY {
            f.write_str(READ_ONLY_SHORTHAND)
        } else if *self == Permissions::NONE {
            f.write_str("none")
        } else {
            f.write_str(&self.granted_names().join(","))
        }
    }
}

/// One account as stored in the users file.
#[derive(Clone, PartialEq, Eq)]
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
    /// Logins must come over a TLS control channel (FTPS).
    pub require_tls: bool,
    /// Quotas and bandwidth; unset ones take the server's defaults.
    pub limits: AccountLimits,
}

impl UserRecord {
    /// Whether a login from `ip` is allowed by `allowed_networks` (empty: from anywhere).
    /// IPv4 clients reaching a dual-stack socket appear as `::ffff:a.b.c.d`; they are matched
    /// as the IPv4 address they are.
    pub fn allows_ip(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.allowed_networks.is_empty() || self.allowed_networks.iter().any(|n| n.contains(&ip))
    }
}

impl fmt::Debug for UserRecord {
    // Hand-written so that debug logging of a record never prints the password hash.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserRecord")
            .field("name", &self.name)
            .field("password_hash", &"<redacted>")
            .field("home", &self.home)
            .field("permissions", &self.permissions)
            .field("enabled", &self.enabled)
            .field("allowed_networks", &self.allowed_networks)
            .field("require_tls", &self.require_tls)
            .field("limits", &self.limits)
            .finish()
    }
}

/// Checks a user name: not empty, no whitespace or control characters (they would break the
/// USER command and the logs), at most [`MAX_USER_NAME_BYTES`].
pub fn validate_user_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.len() > MAX_USER_NAME_BYTES {
        return Err(format!("longer than {MAX_USER_NAME_BYTES} bytes"));
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain whitespace or control characters".into());
    }
    Ok(())
}

/// Checks a home directory: a relative path beneath the root, without `..`. `"."` is the
/// root itself.
pub fn validate_home(home: &str) -> Result<PathBuf, String> {
    if home.is_empty() {
        return Err("must not be empty (use \".\" for the root itself)".into());
    }
    if home.contains('\0') {
        return Err("must not contain NUL characters".into());
    }
    let path = PathBuf::from(home);
    for component in path.components() {
        match component {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => {
                return Err(format!("must not contain `..`, got {home:?}"));
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!("must be relative to the root, got {home:?}"));
            }
        }
    }
    Ok(path)
}

/// The fields a `[users.NAME]` table may have (and the limits, [`LIMIT_FIELDS`]).
const USER_FIELDS: [&str; 6] = [
    "password",
    "home",
    "permissions",
    "enabled",
    "allowed_networks",
    "require_tls",
];

/// The parsed, validated users file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsersFile {
    users: BTreeMap<String, UserRecord>,
}

impl UsersFile {
    /// An empty users file (for `ferry user add` on a file that does not exist yet).
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads and validates `path`. Every error names the file, and the user and field at fault.
    pub fn load(path: &Path) -> Result<UsersFile, UsersError> {
        let text = fs::read_to_string(path).map_err(|source| UsersError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses and validates users-file text; `path` is used only in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<UsersFile, UsersError> {
        let document: toml::Table = toml::from_str(text).map_err(|e| {
            let (line, column) = e
                .span()
                .map(|span| line_and_column(text, span.start))
                .unwrap_or((1, 1));
            UsersError::Parse {
                path: path.to_path_buf(),
                line,
                column,
                message: e.message().trim_end().to_string(),
            }
        })?;
        // Only `users` is allowed at the top; this catches typos like `[user.bob]`.
        if let Some(unknown) = document.keys().find(|key| key.as_str() != "users") {
            return Err(UsersError::Parse {
                path: path.to_path_buf(),
                line: key_line(text, unknown),
                column: 1,
                message: format!(
                    "unknown top-level key `{unknown}`; expected `[users.NAME]` tables"
                ),
            });
        }
        let tables = match document.get("users") {
            None => return Ok(UsersFile::new()),
            Some(toml::Value::Table(tables)) => tables,
            Some(other) => {
                return Err(UsersError::Parse {
                    path: path.to_path_buf(),
                    line: key_line(text, "users"),
                    column: 1,
                    message: format!("`users` must be a table, got {}", other.type_str()),
                });
            }
        };
        let mut users = BTreeMap::new();
        for (name, table) in tables {
            let record = parse_user(name, table, path)?;
            users.insert(name.clone(), record);
        }
        Ok(UsersFile { users })
    }

    /// Writes the users file atomically: a temporary file in the same directory, fsync,
    /// rename over `path`, fsync the directory. A crash leaves the old or the new file, never
    /// half of one; a running server never reads a partial file. A symlink at `path` is
    /// followed, and an existing file keeps its permissions (new files are owner-only, since
    /// hashes are secrets too).
    pub fn save(&self, path: &Path) -> Result<(), UsersError> {
        let text = self.to_toml(path)?;
        write_atomically(path, text.as_bytes()).map_err(|source| UsersError::Write {
            path: path.to_path_buf(),
            source,
        })
    }

    /// The file as written by [`UsersFile::save`]: the header, then one table per user.
    pub fn to_toml(&self, path: &Path) -> Result<String, UsersError> {
        let mut on_disk = BTreeMap::new();
        for record in self.users.values() {
            let home = record
                .home
                .to_str()
                .ok_or_else(|| UsersError::InvalidField {
                    path: path.to_path_buf(),
                    user: record.name.clone(),
                    field: "home".into(),
                    problem: "must be valid UTF-8".into(),
                })?;
            on_disk.insert(record.name.as_str(), UserOnDisk::new(record, home));
        }
        let body = toml::to_string(&UsersFileOnDisk { users: on_disk }).map_err(|source| {
            UsersError::Encode {
                path: path.to_path_buf(),
                source,
            }
        })?;
        Ok(format!("{USERS_FILE_HEADER}\n{body}"))
    }

    pub fn get(&self, name: &str) -> Option<&UserRecord> {
        self.users.get(name)
    }

    pub fn get_mut(&mut self, name: &str) -> Option<&mut UserRecord> {
        self.users.get_mut(name)
    }

    /// Adds or replaces the user named `record.name`; returns the replaced record.
    pub fn insert(&mut self, record: UserRecord) -> Option<UserRecord> {
        self.users.insert(record.name.clone(), record)
    }

    pub fn remove(&mut self, name: &str) -> Option<UserRecord> {
        self.users.remove(name)
    }

    /// The users in name order.
    pub fn users(&self) -> impl Iterator<Item = &UserRecord> {
        self.users.values()
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

/// Validates one `[users.NAME]` table field by field, so every error names its field.
fn parse_user(name: &str, value: &toml::Value, path: &Path) -> Result<UserRecord, UsersError> {
    validate_user_name(name).map_err(|problem| UsersError::InvalidUserName {
        path: path.to_path_buf(),
        user: name.to_string(),
        problem,
    })?;
    let field_error = |field: &str, problem: String| UsersError::InvalidField {
        path: path.to_path_buf(),
        user: name.to_string(),
        field: field.to_string(),
        problem,
    };
    let Some(table) = value.as_table() else {
        return Err(UsersError::InvalidUser {
            path: path.to_path_buf(),
            user: name.to_string(),
            problem: format!("must be a table, got {}", value.type_str()),
        });
    };
    if let Some(unknown) = table
        .keys()
        .find(|key| !USER_FIELDS.contains(&key.as_str()) && !LIMIT_FIELDS.contains(&key.as_str()))
    {
        return Err(field_error(
            unknown,
            format!(
                "unknown field; expected one of {}, {}",
                USER_FIELDS.join(", "),
                LIMIT_FIELDS.join(", ")
            ),
        ));
    }
    let required_string = |field: &str| match table.get(field) {
        Some(toml::Value::String(text)) => Ok(text.as_str()),
        Some(other) => Err(field_error(
            field,
            format!("expected a string, got {}", other.type_str()),
        )),
        None => Err(field_error(field, "missing".into())),
    };

    let password_hash = required_string("password")?;
    validate_phc(password_hash).map_err(|problem| field_error("password", problem.to_string()))?;

    let home =
        validate_home(required_string("home")?).map_err(|problem| field_error("home", problem))?;

    let permissions = match table.get("permissions") {
        Some(value) => Permissions::from_toml(value),
        None => Err(format!(
            "missing; use \"{ALL_SHORTHAND}\", \"{READ_ONLY_SHORTHAND}\" or a list"
        )),
    }
    .map_err(|problem| field_error("permissions", problem))?;

    let boolean = |field: &str, default: bool| match table.get(field) {
        None => Ok(default),
        Some(toml::Value::Boolean(value)) => Ok(*value),
        Some(other) => Err(field_error(
            field,
            format!("expected true or false, got {}", other.type_str()),
        )),
    };
    let enabled = boolean("enabled", true)?;
    let require_tls = boolean("require_tls", false)?;

    let allowed_networks = match table.get("allowed_networks") {
        None => Vec::new(),
        Some(toml::Value::Array(entries)) => entries
            .iter()
            .map(|entry| match entry {
                toml::Value::String(text) => parse_network(text),
                other => Err(format!(
                    "expected strings in CIDR notation, got {}",
                    other.type_str()
                )),
            })
            .collect::<Result<_, _>>()
            .map_err(|problem| field_error("allowed_networks", problem))?,
        Some(other) => {
            return Err(field_error(
                "allowed_networks",
                format!("expected a list of networks, got {}", other.type_str()),
            ));
        }
    };

    let mut limits = AccountLimits::default();
    for field in LIMIT_FIELDS {
        if let (Some(value), Some(slot)) = (table.get(field), limits.field_mut(field)) {
            *slot = Some(parse_limit(value).map_err(|problem| field_error(field, problem))?);
        }
    }

    Ok(UserRecord {
        name: name.to_string(),
        password_hash: password_hash.to_string(),
        home,
        permissions,
        enabled,
        allowed_networks,
        require_tls,
        limits,
    })
}

/// 1-based line and column of byte `offset` in `text`.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Best-effort line of a top-level key or table header, for errors found after parsing.
fn key_line(text: &str, key: &str) -> usize {
    text.lines()
        .position(|line| {
            let line = line.trim_start().trim_start_matches('[').trim_start();
            line.strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with(['=', '.', ']']))
        })
        .map_or(1, |index| index + 1)
}

#[derive(Serialize)]
struct UsersFileOnDisk<'a> {
    users: BTreeMap<&'a str, UserOnDisk<'a>>,
}

#[derive(Serialize)]
struct UserOnDisk<'a> {
    password: &'a str,
    home: &'a str,
    permissions: PermissionsOnDisk,
    enabled: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    allowed_networks: Vec<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    require_tls: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    quota_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    quota_files: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    upload_rate: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    download_rate: Option<u64>,
}

impl<'a> UserOnDisk<'a> {
    fn new(record: &'a UserRecord, home: &'a str) -> Self {
        let permissions = if record.permissions == Permissions::ALL {
            PermissionsOnDisk::Shorthand(ALL_SHORTHAND)
        } else if record.permissions == Permissions::READ_ONLY {
            PermissionsOnDisk::Shorthand(READ_ONLY_SHORTHAND)
        } else {
            PermissionsOnDisk::List(record.permissions.granted_names())
        };
        UserOnDisk {
            password: &record.password_hash,
            home,
            permissions,
            enabled: record.enabled,
            allowed_networks: record
                .allowed_networks
                .iter()
                .map(ToString::to_string)
                .collect(),
            require_tls: record.require_tls,
            quota_bytes: record.limits.quota_bytes,
            quota_files: record.limits.quota_files,
            upload_rate: record.limits.upload_rate,
            download_rate: record.limits.download_rate,
        }
    }
}

#[derive(Serialize)]
#[serde(untagged)]
enum PermissionsOnDisk {
    Shorthand(&'static str),
    List(Vec<&'static str>),
}

/// Mode of a users file created by `save`: it holds password hashes, readable by the owner only.
#[cfg(unix)]
const NEW_USERS_FILE_MODE: u32 = 0o600;

fn write_atomically(path: &Path, contents: &[u8]) -> io::Result<()> {
    // Follow a symlink so that e.g. `config/users.toml -> /etc/ferry/users.toml` stays a link.
    let target = match fs::canonicalize(path) {
        Ok(target) => target,
        Err(e) if e.kind() == io::ErrorKind::NotFound => path.to_path_buf(),
        Err(e) => return Err(e),
    };
    let dir = match target.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = target
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file name"))?;
    let unique = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let temporary = dir.join(format!(
        ".{}.{}.{unique}.tmp",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    let existing = fs::metadata(&target).ok();

    let written = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temporary)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::{MetadataExt, PermissionsExt};
            let mode = existing
                .as_ref()
                .map_or(NEW_USERS_FILE_MODE, |meta| meta.mode() & 0o7777);
            file.set_permissions(fs::Permissions::from_mode(mode))?;
            if let Some(meta) = &existing {
                // Keep the owner when e.g. root edits a file the server user reads. Only
                // root may give a file away; anyone else already is the owner, so a
                // failure here changes nothing.
                let _ = std::os::unix::fs::fchown(&file, Some(meta.uid()), Some(meta.gid()));
            }
        }
        file.write_all(contents)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&temporary, &target)?;
        #[cfg(unix)]
        fs::File::open(&dir)?.sync_all()?;
        Ok(())
    })();
    if written.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    written
}

#[cfg(test)]
mod tests;
