//! `ferry user add|passwd|remove|list`: edits the users file without ever writing a plaintext password.

/// The `ferry user` subcommands (arguments filled in by the users/auth work).
#[derive(Debug, clap::Subcommand)]
pub enum UserCommand {
    /// Add a user.
    Add,
    /// Change a user's password.
    Passwd,
    /// Remove a user.
    Remove,
    /// List users.
    List,
}
