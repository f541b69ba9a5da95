//! Progress bars for transfers: bytes, rate and ETA on stderr, only for transfers large enough
//! to be worth watching and only when stderr is a terminal (scripts and logs stay clean).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;

/// Transfers of at most this many bytes finish before a bar would be worth reading.
pub const PROGRESS_THRESHOLD: u64 = 1024 * 1024;

const TEMPLATE: &str =
    "{msg} {wide_bar} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} ETA {eta}";

/// A bar, or nothing.
pub struct Progress(Option<ProgressBar>);

impl Progress {
    /// A bar for moving `remaining` bytes (when known) of `label`, if one should be shown.
    pub fn start(label: &str, remaining: Option<u64>) -> Progress {
        Self::start_on(label, remaining, std::io::stderr().is_terminal())
    }

    fn start_on(label: &str, remaining: Option<u64>, terminal: bool) -> Progress {
        let Some(total) = remaining.filter(|&total| wants_bar(total, terminal)) else {
            return Progress(None);
        };
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        // The template is a constant; if indicatif ever rejects it, the default style will do.
        if let Ok(style) = ProgressStyle::with_template(TEMPLATE) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(label.to_owned());
        Progress(Some(bar))
    }

    pub fn advance(&self, bytes: u64) {
        if let Some(bar) = &self.0 {
            bar.inc(bytes);
        }
    }

    #[cfg(test)]
    fn is_shown(&self) -> bool {
        self.0.is_some()
    }
}

/// The bar is cleared however the transfer ends, so an error line is not glued to it.
impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

fn wants_bar(total: u64, terminal: bool) -> bool {
    terminal && total > PROGRESS_THRESHOLD
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_large_transfers_on_a_terminal_get_a_bar() {
        assert!(wants_bar(PROGRESS_THRESHOLD + 1, true));
        assert!(!wants_bar(PROGRESS_THRESHOLD, true));
        assert!(!wants_bar(PROGRESS_THRESHOLD * 100, false));
        assert!(!Progress::start_on("x", None, true).is_shown());
        assert!(!Progress::start_on("x", Some(10), true).is_shown());
    }
}
