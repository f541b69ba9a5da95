//! Ferry: an FTP/FTPS server built on libunftp, with its own storage backend and authenticator.

pub mod audit;
pub mod auth;
pub mod cli;
pub mod config;
pub mod limits;
pub mod logging;
pub mod login_guard;
pub mod login_timeout;
pub mod passive;
pub mod password;
pub mod paths;
pub mod server;
pub mod session;
pub mod storage;
pub mod transfer;
pub mod user_admin;
pub mod users;
