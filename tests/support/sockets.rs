//! The sockets this test process holds: the in-process server's passive listeners and data
//! connections, read from `/proc/self/fd` rather than the machine-wide socket table
//! (/proc/net/tcp), which thousands of TIME_WAIT entries from other tests make slow to read.

use socket2::SockRef;
use std::collections::HashSet;
use std::ops::RangeInclusive;
use std::os::fd::BorrowedFd;

/// Which sockets to count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    /// Listening sockets only.
    Listening,
    /// Listening sockets and connections (accepted data connections share the listener's port).
    Any,
}

/// Sockets of this process whose local port is in `ports` (other than `control`). A socket held
/// through two descriptors (libunftp's and the binder's) counts once. The test's own client
/// sockets have ephemeral local ports, so keep `ports` below Linux's ephemeral range (32768).
pub fn sockets_on(ports: &RangeInclusive<u16>, control: u16, held: Held) -> usize {
    let mut sockets = HashSet::new();
    let Ok(descriptors) = std::fs::read_dir("/proc/self/fd") else {
        return 0;
    };
    for descriptor in descriptors.flatten() {
        let Ok(target) = std::fs::read_link(descriptor.path()) else {
            continue; // closed meanwhile
        };
        let is_socket = target.to_string_lossy().starts_with("socket:");
        let Some(fd) = descriptor.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        if !is_socket {
            continue;
        }
        // SAFETY: only borrowed for the two queries below; if the descriptor was closed and
        // reused meanwhile, the queries fail or describe the new socket, which is harmless.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        let socket = SockRef::from(&fd);
        let port = socket
            .local_addr()
            .ok()
            .and_then(|address| address.as_socket())
            .map(|address| address.port());
        let counted = match held {
            Held::Listening => socket.is_listener().unwrap_or(false),
            Held::Any => true,
        };
        if let Some(port) = port.filter(|port| ports.contains(port) && *port != control)
            && counted
        {
            sockets.insert((target, port));
        }
    }
    sockets.len()
}
