//! Ferry: an FTP/FTPS server built on libunftp, with its own storage backend and authenticator.

pub mod admin;
pub mod audit;
pub mod auth;
pub mod bench;
pub mod cert;
pub mod cli;
pub mod client;
pub mod config;
pub mod health_check;
pub mod limits;
pub mod logging;
pub mod login_guard;
pub mod login_timeout;
pub mod metrics;
pub mod passive;
pub mod password;
pub mod paths;
pub mod reload;
pub mod server;
pub mod session;
pub mod storage;
pub mod tls;
pub mod transfer;
pub mod user_admin;
pub mod users;
pub mod verified_logins;
