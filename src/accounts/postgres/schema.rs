//! The accounts schema, created and migrated as an instance starts (or `ferry user` runs).
//!
//! Several instances may start at once against an empty database: each migrates inside one
//! transaction that first takes a transaction-scoped advisory lock, so one creates the tables
//! while the others wait, then find the version already current and change nothing.

use super::connection::query;
use super::error::DatabaseError;
use crate::config::UsersDatabase;
use tokio_postgres::Client;

/// The advisory lock key every Ferry migration takes ("FerryAcc" in ASCII): any fixed number
/// works, as long as other applications in the database do not use it.
const MIGRATION_LOCK: i64 = 0x4665_7272_7941_6363;

/// The tables that record which migrations ran.
const VERSION_TABLE: &str = "CREATE TABLE IF NOT EXISTS ferry_schema_version (
    version integer PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)";

/// Migration N (1-based) brings the schema from version N-1 to N. Append only: a released
/// migration is never edited.
const MIGRATIONS: &[&str] = &[
    // 1: accounts (the fields of a users-file record), failed logins by client address, and the
    // triggers that tell every instance about a change.
    r#"
CREATE TABLE ferry_users (
    name text PRIMARY KEY CHECK (name <> '' AND octet_length(name) <= 128),
    password_hash text NOT NULL,
    home text NOT NULL,
    permissions text[] NOT NULL,
    enabled boolean NOT NULL DEFAULT true,
    allowed_networks text[] NOT NULL DEFAULT '{}',
    require_tls boolean NOT NULL DEFAULT false,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE FUNCTION ferry_users_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('ferry_users', '');
    RETURN NULL;
END $$;
CREATE TRIGGER ferry_users_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON ferry_users
    FOR EACH STATEMENT EXECUTE FUNCTION ferry_users_changed();
CREATE TABLE ferry_login_failures (
    ip text PRIMARY KEY,
    window_started timestamptz NOT NULL,
    failures integer NOT NULL,
    banned_until timestamptz
);
CREATE FUNCTION ferry_ban_started() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('ferry_bans',
        NEW.ip || ' ' || extract(epoch FROM NEW.banned_until - now())::float8::text);
    RETURN NULL;
END $$;
CREATE TRIGGER ferry_ban_started AFTER INSERT OR UPDATE ON ferry_login_failures
    FOR EACH ROW WHEN (NEW.banned_until IS NOT NULL) EXECUTE FUNCTION ferry_ban_started();
"#,
    // 2: per-account quotas and bandwidth (NULL: the server's default; 0: no limit), and the
    // measured usage of each home. Usage has no trigger: instances read it when they check a
    // quota, and its changes are not account changes.
    r#"
ALTER TABLE ferry_users
    ADD COLUMN quota_bytes bigint CHECK (quota_bytes >= 0),
    ADD COLUMN quota_files bigint CHECK (quota_files >= 0),
    ADD COLUMN upload_rate bigint CHECK (upload_rate >= 0),
    ADD COLUMN download_rate bigint CHECK (download_rate >= 0);
CREATE TABLE ferry_usage (
    name text PRIMARY KEY,
    bytes bigint NOT NULL CHECK (bytes >= 0),
    files bigint NOT NULL CHECK (files >= 0),
    measured_at timestamptz NOT NULL DEFAULT now()
);
"#,
];

/// The schema version this Ferry writes and understands.
pub const SCHEMA_VERSION: i32 = MIGRATIONS.len() as i32;

/// The NOTIFY channel of account changes.
pub const USERS_CHANNEL: &str = "ferry_users";
/// The NOTIFY channel of new bans: payload `IP SECONDS_LEFT`.
pub const BANS_CHANNEL: &str = "ferry_bans";

/// Brings the schema to [`SCHEMA_VERSION`]; returns the migrations applied (0 when another
/// instance already did). A database migrated by a newer Ferry is refused.
pub async fn migrate(
    client: &mut Client,
    database: &UsersDatabase,
) -> Result<usize, DatabaseError> {
    let transaction = query(database, "begin the migration", client.transaction()).await?;
    query(
        database,
        "take the migration lock",
        transaction.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]),
    )
    .await?;
    query(
        database,
        "create the version table",
        transaction.batch_execute(VERSION_TABLE),
    )
    .await?;
    let row = query(
        database,
        "read the schema version",
        transaction.query_one(
            "SELECT coalesce(max(version), 0) FROM ferry_schema_version",
            &[],
        ),
    )
    .await?;
    let found: i32 = row.try_get(0).map_err(|source| DatabaseError::Query {
        database: database.to_string(),
        what: "read the schema version",
        source,
    })?;
    if found > SCHEMA_VERSION {
        return Err(DatabaseError::SchemaTooNew {
            database: database.to_string(),
            found,
            known: SCHEMA_VERSION,
        });
    }
    let pending: Vec<(i32, &str)> = (1..)
        .zip(MIGRATIONS.iter().copied())
        .filter(|(version, _)| *version > found)
        .collect();
    for (version, migration) in &pending {
        query(
            database,
            "migrate the schema",
            transaction.batch_execute(migration),
        )
        .await?;
        query(
            database,
            "record the schema version",
            transaction.execute(
                "INSERT INTO ferry_schema_version (version) VALUES ($1)",
                &[version],
            ),
        )
        .await?;
    }
    query(database, "commit the migration", transaction.commit()).await?;
    Ok(pending.len())
}
