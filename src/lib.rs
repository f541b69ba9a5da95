//! Ferry: an FTP/FTPS server built on libunftp, with its own storage backend and authenticator.
//!
//! One folder per subsystem; dependencies point one way (the README's "Architecture" section
//! draws them): `observe`, `reload` and `transfer` at the bottom, then `tls`, `config`,
//! `accounts`, `events`, `storage`, and `server` on top, which wires them together. `client`
//! and `bench` stand alone; `cli` is the binary's command tree over all of them.

pub mod accounts;
pub mod bench;
pub mod cli;
pub mod client;
pub mod config;
pub mod events;
pub mod observe;
pub mod reload;
pub mod server;
pub mod storage;
pub mod tls;
pub mod transfer;
