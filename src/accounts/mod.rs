//! Accounts: who may log in and what they may do. The users file and its validation, accounts
//! in PostgreSQL (`postgres/`), the directory that keeps either current, argon2id password
//! hashing, Ferry's authenticator for libunftp, the failed-login guard (bans), the cache of
//! recently verified logins, and `ferry user`.
//!
//! It uses `config` (the validated settings), `reload` (to follow the users file)
//! and `observe` (audit records of logins). It never reaches into `server` or `storage`: they
//! use it, through [`auth::FerryUser`] and [`users::Permissions`].

pub mod auth;
pub mod directory;
pub mod limits;
pub mod login_guard;
pub mod password;
pub mod postgres;
pub mod usage;
pub mod user_admin;
pub mod users;
pub mod verified_logins;
