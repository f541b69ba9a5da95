//! Ctrl-C in the client: the first press cancels the running transfer (its partial download is
//! removed), a second press before the next command exits at once.

use std::sync::atomic::{AtomicBool, Ordering};

/// Exit status after Ctrl-C, as shells report a process killed by SIGINT (128 + 2).
pub const EXIT_INTERRUPTED: u8 = 130;

/// Set by the SIGINT handler; transfer loops poll it between reads and writes.
static REQUESTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_signal: libc::c_int) {
    if REQUESTED.swap(true, Ordering::SeqCst) {
        // Second press: the user wants out now. `_exit` is async-signal-safe; `exit` is not.
        // SAFETY: `_exit` only ends the process.
        unsafe { libc::_exit(i32::from(EXIT_INTERRUPTED)) };
    }
}

/// Installs the SIGINT handler. Without `SA_RESTART`, a read blocked on a stalled data
/// connection returns `EINTR`, so a cancelled transfer stops promptly.
pub fn install() {
    // SAFETY: the handler only touches an atomic and calls `_exit`; `action` is fully
    // initialised (zeroed, then the fields sigaction reads are set) before the call.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_sigint as *const () as libc::sighandler_t;
        action.sa_flags = 0;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGINT, &action, std::ptr::null_mut());
    }
}

/// True once Ctrl-C has been pressed since the last [`clear`].
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

/// Forgets an earlier Ctrl-C: called before each command, so a press only cancels the
/// command that was running.
pub fn clear() {
    REQUESTED.store(false, Ordering::SeqCst);
}
