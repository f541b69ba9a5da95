//! Accounts as rows of `ferry_users`: read all of them, add, change a password, remove.
//!
//! A row is checked exactly as a `[users.NAME]` table is (name, argon2id hash, home,
//! permissions, networks); a row that fails is left out, so that an account someone broke
//! with hand-written SQL refuses its logins instead of stopping every change after it.

use super::connection::query;
use super::error::DatabaseError;
use crate::accounts::limits::{AccountLimits, LIMIT_FIELDS};
use crate::accounts::password::validate_phc;
use crate::accounts::users::{
    ALL_SHORTHAND, Permissions, READ_ONLY_SHORTHAND, UserRecord, UsersFile, validate_home,
    validate_user_name,
};
use crate::config::{UsersDatabase, parse_network};
use tokio_postgres::{Client, Row};

const SELECT_USERS: &str = "SELECT name, password_hash, home, permissions, enabled, \
    allowed_networks, require_tls, quota_bytes, quota_files, upload_rate, download_rate \
    FROM ferry_users";

/// A row left out of the accounts, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidRow {
    pub user: String,
    pub problem: String,
}

/// Every valid account, and the rows that were left out.
pub async fn load_users(
    client: &Client,
    database: &UsersDatabase,
) -> Result<(UsersFile, Vec<InvalidRow>), DatabaseError> {
    let rows = query(
        database,
        "read the accounts",
        client.query(SELECT_USERS, &[]),
    )
    .await?;
    let mut users = UsersFile::new();
    let mut invalid = Vec::new();
    for row in &rows {
        match record_from_row(row) {
            Ok(record) => {
                users.insert(record);
            }
            Err(row) => invalid.push(row),
        }
    }
    Ok((users, invalid))
}

/// One row as a record, checked field by field like the users file.
fn record_from_row(row: &Row) -> Result<UserRecord, InvalidRow> {
    let name: String = row.try_get("name").map_err(|error| InvalidRow {
        user: String::new(),
        problem: format!("unreadable name: {error}"),
    })?;
    let invalid = |field: &str, problem: String| InvalidRow {
        user: name.clone(),
        problem: format!("field `{field}`: {problem}"),
    };
    macro_rules! field {
        ($name:literal) => {
            row.try_get($name)
                .map_err(|error| invalid($name, error.to_string()))?
        };
    }
    validate_user_name(&name).map_err(|problem| invalid("name", problem))?;
    let password_hash: String = field!("password_hash");
    validate_phc(&password_hash)
        .map_err(|problem| invalid("password_hash", problem.to_string()))?;
    let home: String = field!("home");
    let home = validate_home(&home).map_err(|problem| invalid("home", problem))?;
    let permission_names: Vec<String> = field!("permissions");
    let names: Vec<&str> = permission_names.iter().map(String::as_str).collect();
    let permissions = match names.as_slice() {
        [ALL_SHORTHAND] => Ok(Permissions::ALL),
        [READ_ONLY_SHORTHAND] => Ok(Permissions::READ_ONLY),
        names => Permissions::from_names(names.iter().copied()),
    }
    .map_err(|problem| invalid("permissions", problem))?;
    let networks: Vec<String> = field!("allowed_networks");
    let allowed_networks = networks
        .iter()
        .map(|network| parse_network(network))
        .collect::<Result<_, _>>()
        .map_err(|problem| invalid("allowed_networks", problem))?;
    let mut limits = AccountLimits::default();
    for name in LIMIT_FIELDS {
        let value: Option<i64> = row
            .try_get(name)
            .map_err(|error| invalid(name, error.to_string()))?;
        if let (Some(value), Some(slot)) = (value, limits.field_mut(name)) {
            *slot = Some(
                u64::try_from(value).map_err(|_| invalid(name, format!("{value} is negative")))?,
            );
        }
    }
    Ok(UserRecord {
        name: name.clone(),
        password_hash,
        home,
        permissions,
        enabled: field!("enabled"),
        allowed_networks,
        require_tls: field!("require_tls"),
        limits,
    })
}

/// Adds `record`; false when an account of that name exists (it is left as it is).
pub async fn insert_user(
    client: &Client,
    database: &UsersDatabase,
    record: &UserRecord,
) -> Result<bool, DatabaseError> {
    let home = record.home.to_string_lossy().into_owned();
    let permissions = record.permissions.granted_names();
    let networks: Vec<String> = record
        .allowed_networks
        .iter()
        .map(ToString::to_string)
        .collect();
    let limits = limit_columns(&record.limits);
    let inserted = query(
        database,
        "add the account",
        client.execute(
            "INSERT INTO ferry_users (name, password_hash, home, permissions, enabled, \
             allowed_networks, require_tls, quota_bytes, quota_files, upload_rate, \
             download_rate) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
             ON CONFLICT (name) DO NOTHING",
            &[
                &record.name,
                &record.password_hash,
                &home,
                &permissions,
                &record.enabled,
                &networks,
                &record.require_tls,
                &limits[0],
                &limits[1],
                &limits[2],
                &limits[3],
            ],
        ),
    )
    .await?;
    Ok(inserted == 1)
}

/// Replaces the limits of `name`; false when there is no such account.
pub async fn set_limits(
    client: &Client,
    database: &UsersDatabase,
    name: &str,
    limits: &AccountLimits,
) -> Result<bool, DatabaseError> {
    let limits = limit_columns(limits);
    let updated = query(
        database,
        "change the limits",
        client.execute(
            "UPDATE ferry_users SET quota_bytes = $2, quota_files = $3, upload_rate = $4, \
             download_rate = $5, updated_at = now() WHERE name = $1",
            &[&name, &limits[0], &limits[1], &limits[2], &limits[3]],
        ),
    )
    .await?;
    Ok(updated == 1)
}

/// The limits as the columns hold them, in [`LIMIT_FIELDS`] order.
fn limit_columns(limits: &AccountLimits) -> [Option<i64>; 4] {
    let column = |value: Option<u64>| value.map(|value| i64::try_from(value).unwrap_or(i64::MAX));
    [
        column(limits.quota_bytes),
        column(limits.quota_files),
        column(limits.upload_rate),
        column(limits.download_rate),
    ]
}

/// Replaces the password hash of `name`; false when there is no such account.
pub async fn set_password(
    client: &Client,
    database: &UsersDatabase,
    name: &str,
    password_hash: &str,
) -> Result<bool, DatabaseError> {
    let updated = query(
        database,
        "change the password",
        client.execute(
            "UPDATE ferry_users SET password_hash = $2, updated_at = now() WHERE name = $1",
            &[&name, &password_hash],
        ),
    )
    .await?;
    Ok(updated == 1)
}

/// Removes `name`; false when there is no such account.
pub async fn remove_user(
    client: &Client,
    database: &UsersDatabase,
    name: &str,
) -> Result<bool, DatabaseError> {
    let removed = query(
        database,
        "remove the account",
        client.execute("DELETE FROM ferry_users WHERE name = $1", &[&name]),
    )
    .await?;
    Ok(removed == 1)
}
