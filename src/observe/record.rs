//! What one client operation is, as the audit trail writes it and the metrics count it: the
//! types both [`super::audit`] and [`super::metrics`] see, so neither imports the other's.

use std::net::IpAddr;
use std::time::Duration;

/// An operation a client performed, named as in the seed programs (see the README mapping).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Login,
    Logout,
    Upload,
    Download,
    Ls,
    Rm,
    Size,
    Mkdir,
    Rmdir,
    Rename,
    /// MFMT: a file's modification time set.
    Mfmt,
    /// SITE CHMOD: a file's permission bits set.
    Chmod,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Login => "login",
            Op::Logout => "logout",
            Op::Upload => "upload",
            Op::Download => "download",
            Op::Ls => "ls",
            Op::Rm => "rm",
            Op::Size => "size",
            Op::Mkdir => "mkdir",
            Op::Rmdir => "rmdir",
            Op::Rename => "rename",
            Op::Mfmt => "mfmt",
            Op::Chmod => "chmod",
        }
    }
}

/// How an operation ended, as written in the `result` field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// Refused by policy (permissions, bans, disabled account): the client got a 5xx.
    Denied(String),
    /// Tried and failed (missing file, I/O error, aborted transfer).
    Failed(String),
}

/// One audit record; `path` is the path as the user sees it (rooted at their home).
#[derive(Debug, Clone)]
pub struct AuditRecord<'a> {
    pub op: Op,
    pub user: &'a str,
    pub client_ip: IpAddr,
    /// The host name the client asked for with HOST (RFC 7151), if it sent one.
    pub host: Option<&'a str>,
    pub path: &'a str,
    pub bytes: Option<u64>,
    pub duration: Duration,
    pub outcome: Outcome,
}

/// Why a connection was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LimitReached {
    #[error("too many sessions; try again later")]
    Total,
    #[error("too many sessions from your address; try again later")]
    PerIp,
    /// The address is banned for repeated failed logins (`accounts::login_guard`): turned away at
    /// connect, so it cannot hold session slots until its login timeout.
    #[error("too many failed logins from your address; try again later")]
    IpBanned,
    /// A PROXY protocol header from outside `proxy_from`, or none (or a malformed one) from a
    /// load balancer inside it: the connection is closed without a reply, so this text is
    /// only logged.
    #[error("PROXY protocol header refused")]
    ProxyHeader,
}
