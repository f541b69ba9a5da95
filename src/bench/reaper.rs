//! `ferry-bench reap -- SERVER...`: runs a server as a child of a process that adopts
//! everything the server's processes orphan, so that the server's whole CPU time stays under
//! one root in /proc.
//!
//! vsftpd's session process forks a worker and can exit before reaping it; the orphan is then
//! reaped by init, and its CPU time (the transfer itself) never reaches vsftpd's counters.
//! As a child subreaper (prctl PR_SET_CHILD_SUBREAPER) this process adopts and reaps such
//! orphans, which adds their time to its own children's time, where
//! [`super::probe::ProcessTree`] finds it.

use std::io;
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

/// How often the reaper looks for exited processes and forwarded signals.
const REAP_INTERVAL: Duration = Duration::from_millis(50);

/// A termination signal received and not yet forwarded (0: none).
static PENDING_SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn remember_signal(signal: libc::c_int) {
    PENDING_SIGNAL.store(signal, Ordering::SeqCst);
}

/// Runs `command`, forwards SIGTERM and SIGINT to it, reaps every orphan it leaves, and
/// exits when it does.
pub fn run(command: &[String]) -> ExitCode {
    match supervise(command) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("ferry-bench reap: {error}");
            ExitCode::FAILURE
        }
    }
}

fn supervise(command: &[String]) -> io::Result<ExitCode> {
    let (program, arguments) = command
        .split_first()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no command to run"))?;
    // SAFETY: prctl with a constant option and flag; the handlers only store to an atomic,
    // which is async-signal-safe.
    unsafe {
        if libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0 {
            return Err(io::Error::last_os_error());
        }
        let handler = remember_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        libc::signal(libc::SIGTERM, handler);
        libc::signal(libc::SIGINT, handler);
    }
    let server = Command::new(program).args(arguments).spawn()?;
    let server_pid = server.id() as libc::pid_t;
    loop {
        let signal = PENDING_SIGNAL.swap(0, Ordering::SeqCst);
        if signal != 0 {
            // SAFETY: signalling our own child, which we have not reaped yet.
            unsafe { libc::kill(server_pid, signal) };
        }
        let mut status = 0;
        // SAFETY: waitpid with a valid status pointer; -1 reaps any child, orphans included.
        let reaped = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if reaped == server_pid {
            let code = if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status) as u8
            } else {
                1
            };
            return Ok(ExitCode::from(code));
        }
        if reaped <= 0 {
            std::thread::sleep(REAP_INTERVAL);
        }
    }
}
