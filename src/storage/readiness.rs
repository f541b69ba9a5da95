//! The readiness check of the local store: can an upload be written under the root right now.

use super::paths::UPLOAD_TEMP_PREFIX;
use std::fs::OpenOptions;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Distinguishes the probe files of concurrent checks.
static PROBE_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Creates and removes a file in `root`. Permission bits do not stop root (the usual user in a
/// container), so asking the kernel (`access(2)`) would not do: only a real write shows a
/// read-only mount, a missing root or a root replaced by a file. The name carries the upload
/// temporary prefix, so clients never see it and a crash's leftover is removed at the next start.
pub fn check_root_writable(root: &Path) -> Result<(), String> {
    let probe = root.join(format!(
        "{UPLOAD_TEMP_PREFIX}ready-{}-{}",
        std::process::id(),
        PROBE_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .and_then(|_| std::fs::remove_file(&probe))
        .map_err(|error| format!("root {} is not writable: {error}", root.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writable_root_passes_and_leaves_nothing_behind() {
        let dir = tempfile::tempdir().expect("temp dir");
        assert_eq!(check_root_writable(dir.path()), Ok(()));
        assert_eq!(
            std::fs::read_dir(dir.path()).expect("read dir").count(),
            0,
            "probe file removed"
        );
    }

    #[test]
    fn missing_root_or_file_in_its_place_fails_with_the_reason() {
        let dir = tempfile::tempdir().expect("temp dir");
        let missing = dir.path().join("gone");
        let problem = check_root_writable(&missing).expect_err("missing root");
        assert!(problem.starts_with(&format!("root {} is not writable: ", missing.display())));
        let file = dir.path().join("file");
        std::fs::write(&file, b"").expect("write file");
        let problem = check_root_writable(&file).expect_err("file as root");
        assert!(problem.contains("Not a directory"), "{problem}");
    }
}
