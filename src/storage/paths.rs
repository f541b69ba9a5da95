//! Client path resolution: the one place a client-supplied path becomes a filesystem path.
//!
//! libunftp hands the storage backend the session's working directory joined with whatever the
//! client sent, so a path may be absolute (`/a/b`), relative (`a/b`), or contain `.` and `..`.
//! Every such path is resolved here, lexically, into a [`UserPath`]: a normalised path relative
//! to the user's home that cannot name anything above it (`..` at the top stays at the top, as
//! in a chroot). Symlinks are handled by the filesystem layer, which opens every `UserPath`
//! beneath the home directory handle with `cap-std` and so refuses links that lead outside.

use crate::config::DEFAULT_EVENT_SPOOL_NAME;
use std::fmt;
use std::path::{Component, Path, PathBuf};

/// Prefix of the temporary files uploads are written to before they are renamed into place.
/// Names with this prefix are invisible to clients and cannot be used by them.
pub const UPLOAD_TEMP_PREFIX: &str = ".ferry-upload-";

/// Whether a client may neither name nor see `name`: upload temporaries, the usage directory
/// and the event spool (`config::DEFAULT_USAGE_DIR_NAME`, `config::DEFAULT_EVENT_SPOOL_NAME`,
/// which live in a local root unless `usage_dir` and `event_spool` say otherwise: a user whose
/// home is the root must not reach them).
pub fn is_reserved_name(name: &str) -> bool {
    name.starts_with(UPLOAD_TEMP_PREFIX)
        || name == DEFAULT_EVENT_SPOOL_NAME
        || name == crate::config::DEFAULT_USAGE_DIR_NAME
}

/// Longest path, in bytes, a client may name (Linux PATH_MAX).
const MAX_PATH_BYTES: usize = 4096;

/// Longest name of one file or directory (Linux `NAME_MAX`): a longer one is refused as a bad
/// name (553) here, instead of failing later in the filesystem as a local error (451).
const MAX_NAME_BYTES: usize = 255;

/// A path inside a user's home, normalised: no root, no `.`, no `..`, never empty components.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserPath {
    /// The components below the home directory; empty for the home itself.
    relative: PathBuf,
}

/// Why a client path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("path is longer than {MAX_PATH_BYTES} bytes")]
    TooLong,
    #[error("a file name is longer than {MAX_NAME_BYTES} bytes")]
    NameTooLong,
    #[error("path names a reserved file")]
    Reserved,
    #[error("path is not valid UTF-8")]
    NotUtf8,
}

/// Resolves what a client named (already joined with its working directory by libunftp) into
/// a path beneath the user's home.
pub fn resolve_user_path(client_path: &Path) -> Result<UserPath, PathError> {
    if client_path.as_os_str().len() > MAX_PATH_BYTES {
        return Err(PathError::TooLong);
    }
    let mut parts: Vec<&str> = Vec::new();
    for component in client_path.components() {
        match component {
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                parts.pop();
            }
            Component::Normal(name) => {
                let name = name.to_str().ok_or(PathError::NotUtf8)?;
                if name.len() > MAX_NAME_BYTES {
                    return Err(PathError::NameTooLong);
                }
                if is_reserved_name(name) {
                    return Err(PathError::Reserved);
                }
                parts.push(name);
            }
        }
    }
    Ok(UserPath {
        relative: parts.iter().collect(),
    })
}

impl UserPath {
    /// The home directory itself.
    pub fn home() -> Self {
        UserPath {
            relative: PathBuf::new(),
        }
    }

    /// The path relative to the home, for opening beneath the home's directory handle
    /// (`.` for the home itself, since cap-std wants a non-empty path).
    pub fn relative(&self) -> &Path {
        if self.is_home() {
            Path::new(".")
        } else {
            &self.relative
        }
    }

    pub fn is_home(&self) -> bool {
        self.relative.as_os_str().is_empty()
    }

    /// The parent directory and the final name, or None for the home itself.
    pub fn split_parent(&self) -> Option<(UserPath, &str)> {
        let name = self.relative.file_name()?.to_str()?;
        let parent = self
            .relative
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        Some((UserPath { relative: parent }, name))
    }

    /// The final name, empty for the home itself.
    pub fn file_name(&self) -> String {
        self.split_parent()
            .map(|(_, name)| name.to_owned())
            .unwrap_or_default()
    }

    /// Joins a single directory-entry name (as read from disk) onto this path.
    pub fn child(&self, name: &str) -> UserPath {
        UserPath {
            relative: self.relative.join(name),
        }
    }
}

/// The path as the user sees it: rooted at their home, e.g. `/reports/q3.pdf`.
impl fmt::Display for UserPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/{}", self.relative.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(p: &str) -> String {
        resolve_user_path(Path::new(p)).unwrap().to_string()
    }

    #[test]
    fn a_name_longer_than_255_bytes_is_refused() {
        let longest = "n".repeat(MAX_NAME_BYTES);
        assert_eq!(
            resolve(&format!("/dir/{longest}")),
            format!("/dir/{longest}")
        );
        let too_long = format!("/dir/{longest}x");
        assert!(matches!(
            resolve_user_path(Path::new(&too_long)),
            Err(PathError::NameTooLong)
        ));
    }

    #[test]
    fn absolute_and_relative_paths_resolve_beneath_the_home() {
        assert_eq!(resolve("/"), "/");
        assert_eq!(resolve(""), "/");
        assert_eq!(resolve("/a/b.txt"), "/a/b.txt");
        assert_eq!(resolve("a/./b.txt"), "/a/b.txt");
    }

    #[test]
    fn parent_components_cannot_climb_above_the_home() {
        assert_eq!(resolve("/../../etc/passwd"), "/etc/passwd");
        assert_eq!(resolve("a/../../.."), "/");
        assert_eq!(resolve("/a/b/../c"), "/a/c");
        let escaped = resolve_user_path(Path::new("../../../../etc/passwd")).unwrap();
        assert_eq!(escaped.relative(), Path::new("etc/passwd"));
    }

    #[test]
    fn upload_temporaries_cannot_be_named_by_clients() {
        let name = format!("/dir/{UPLOAD_TEMP_PREFIX}123");
        assert_eq!(
            resolve_user_path(Path::new(&name)),
            Err(PathError::Reserved)
        );
    }

    #[test]
    fn the_usage_directory_cannot_be_named_by_clients() {
        assert_eq!(
            resolve_user_path(Path::new("/.ferry-usage/bob.usage")),
            Err(PathError::Reserved)
        );
    }

    #[test]
    fn the_event_spool_cannot_be_named_by_clients_but_similar_names_can() {
        for path in [
            "/.ferry-events",
            ".ferry-events/hook/x.json",
            "/a/../.ferry-events",
        ] {
            assert_eq!(
                resolve_user_path(Path::new(path)),
                Err(PathError::Reserved),
                "{path}"
            );
        }
        assert_eq!(resolve("/.ferry-events2"), "/.ferry-events2");
        assert_eq!(resolve("/ferry-events"), "/ferry-events");
    }

    #[test]
    fn overlong_paths_are_refused() {
        let long = "a/".repeat(MAX_PATH_BYTES);
        assert_eq!(resolve_user_path(Path::new(&long)), Err(PathError::TooLong));
    }

    #[test]
    fn split_parent_gives_directory_and_name() {
        let p = resolve_user_path(Path::new("/x/y/z.bin")).unwrap();
        let (parent, name) = p.split_parent().unwrap();
        assert_eq!(parent.to_string(), "/x/y");
        assert_eq!(name, "z.bin");
        assert!(UserPath::home().split_parent().is_none());
    }
}
