//! Client path resolution: whatever bytes a client sends, the result names something inside
//! the home, in normal form, and never an upload temporary.
#![no_main]

use ferry::storage::paths::{UPLOAD_TEMP_PREFIX, resolve_user_path};
use libfuzzer_sys::fuzz_target;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

fuzz_target!(|bytes: &[u8]| {
    let Ok(resolved) = resolve_user_path(Path::new(OsStr::from_bytes(bytes))) else {
        return;
    };
    let relative = resolved.relative();
    if resolved.is_home() {
        assert_eq!(relative, Path::new("."));
    } else {
        for component in relative.components() {
            let Component::Normal(name) = component else {
                panic!("{component:?} in {relative:?} from {bytes:?}");
            };
            let name = name.to_str().expect("resolved names are UTF-8");
            assert!(!name.starts_with(UPLOAD_TEMP_PREFIX), "{relative:?}");
        }
    }
    // Lexically inside the home, whatever the home is.
    let home = Path::new("/srv/ftp/alice");
    assert!(home.join(relative).starts_with(home));
    // Shown to the user rooted at the home, and resolving what is shown changes nothing.
    let shown = resolved.to_string();
    assert!(shown.starts_with('/'), "{shown:?}");
    assert!(
        shown.len() <= bytes.len() + 1,
        "{shown:?} longer than {bytes:?}"
    );
    let again = resolve_user_path(Path::new(&shown)).expect("a resolved path resolves");
    assert_eq!(again, resolved);
    if let Some((parent, name)) = resolved.split_parent() {
        assert_eq!(parent.child(name), resolved);
    }
});
