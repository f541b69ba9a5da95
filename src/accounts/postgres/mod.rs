//! Accounts in PostgreSQL (`users = "postgres://…"`): the same records as the users file, in a
//! table several Ferry instances share, and their failed logins and bans.
//!
//! [`link`] keeps one connection per instance and knows whether the database is reachable;
//! [`schema`] creates and migrates the tables at start; [`records`] reads and edits accounts;
//! [`follower`] keeps a [`crate::accounts::directory::UserDirectory`] in step with the table
//! (LISTEN/NOTIFY, a periodic full reload, reconnects with backoff); [`bans`] counts failed
//! logins across instances. Everything above the directory (the authenticator, revocation of
//! open sessions, permissions per command) is the same as with the users file.

pub mod bans;
pub mod connection;
pub mod error;
pub mod follower;
pub mod link;
pub mod records;
pub mod schema;

pub use error::DatabaseError;
pub use link::DatabaseLink;
