//! `upload -r` and `download -r`: directory trees, walked depth-first with an explicit stack,
//! each file moved by [`super::transfer`] (so each download is atomic or resumable).

use super::error::ClientError;
use super::listing::{self, EntryKind};
use super::session::Session;
use super::transfer::{self, Transferred};
use std::fs;
use std::path::{Path, PathBuf};

/// Deepest tree followed: real trees are far shallower, and a symlink loop (local, or on a
/// server that lists symlinked directories as directories) would otherwise never end.
pub const MAX_TREE_DEPTH: usize = 64;

/// What a tree transfer did, for the summary line.
#[derive(Debug, Default, Clone, Copy)]
pub struct TreeSummary {
    pub files: u64,
    pub bytes: u64,
    pub skipped: u64,
}

/// What the walk reports as it goes: each file moved, each entry skipped and why.
pub enum TreeEvent<'a> {
    File {
        from: &'a str,
        to: &'a str,
        done: Transferred,
    },
    Skipped {
        path: &'a str,
        why: &'a str,
    },
}

impl TreeSummary {
    fn add(&mut self, done: &Transferred) {
        self.files += 1;
        self.bytes += done.bytes;
    }
}

/// Uploads the local directory `local_root` as `remote_root`, creating directories as needed.
pub fn upload_tree(
    session: &mut Session,
    local_root: &Path,
    remote_root: &str,
    resume: bool,
    report: &mut dyn FnMut(TreeEvent),
) -> Result<TreeSummary, ClientError> {
    let mut summary = TreeSummary::default();
    ensure_remote_dir(session, remote_root)?;
    let mut stack: Vec<(PathBuf, String, usize)> =
        vec![(local_root.to_owned(), remote_root.to_owned(), 0)];
    while let Some((local_dir, remote_dir, depth)) = stack.pop() {
        for (name, local_path) in sorted_local_entries(&local_dir)? {
            let local_text = local_path.display().to_string();
            let Some(name) = name else {
                summary.skipped += 1;
                report(TreeEvent::Skipped {
                    path: &local_text,
                    why: "name is not UTF-8",
                });
                continue;
            };
            let remote_path = join_remote(&remote_dir, &name);
            // Follows symlinks: a link to a file uploads the file; loops stop at MAX_TREE_DEPTH.
            let metadata = match fs::metadata(&local_path) {
                Ok(metadata) => metadata,
                Err(_) => {
                    summary.skipped += 1;
                    report(TreeEvent::Skipped {
                        path: &local_text,
                        why: "unreadable or a dangling symlink",
                    });
                    continue;
                }
            };
            if metadata.is_dir() {
                check_depth(depth + 1, &local_text)?;
                ensure_remote_dir(session, &remote_path)?;
                stack.push((local_path, remote_path, depth + 1));
            } else if metadata.is_file() {
                let done = transfer::upload(session, &local_path, &remote_path, resume)?;
                summary.add(&done);
                report(TreeEvent::File {
                    from: &local_text,
                    to: &remote_path,
                    done,
                });
            } else {
                summary.skipped += 1;
                report(TreeEvent::Skipped {
                    path: &local_text,
                    why: "not a regular file or directory",
                });
            }
        }
    }
    Ok(summary)
}

/// Downloads the remote directory `remote_root` into the local directory `local_root`.
/// Only names that are a single path component are accepted from the server's listing.
pub fn download_tree(
    session: &mut Session,
    remote_root: &str,
    local_root: &Path,
    resume: bool,
    report: &mut dyn FnMut(TreeEvent),
) -> Result<TreeSummary, ClientError> {
    if !session.is_dir(remote_root)? {
        return Err(ClientError::Usage(format!(
            "{remote_root}: not a directory on the server"
        )));
    }
    let mut summary = TreeSummary::default();
    fs::create_dir_all(local_root).map_err(|error| ClientError::local(local_root, error))?;
    let mut stack: Vec<(String, PathBuf, usize)> =
        vec![(remote_root.to_owned(), local_root.to_owned(), 0)];
    while let Some((remote_dir, local_dir, depth)) = stack.pop() {
        let mut entries = session.entries(&remote_dir)?;
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        for entry in entries {
            let remote_path = join_remote(&remote_dir, &entry.name);
            if !listing::is_plain_name(&entry.name) {
                summary.skipped += 1;
                report(TreeEvent::Skipped {
                    path: &remote_path,
                    why: "unsafe name in the server's listing",
                });
                continue;
            }
            let local_path = local_dir.join(&entry.name);
            let local_text = local_path.display().to_string();
            match entry.kind {
                EntryKind::Dir => {
                    check_depth(depth + 1, &remote_path)?;
                    fs::create_dir_all(&local_path)
                        .map_err(|error| ClientError::local(&local_path, error))?;
                    stack.push((remote_path, local_path, depth + 1));
                }
                EntryKind::File => {
                    let done = transfer::download(session, &remote_path, &local_path, resume)?;
                    summary.add(&done);
                    report(TreeEvent::File {
                        from: &remote_path,
                        to: &local_text,
                        done,
                    });
                }
                EntryKind::Link | EntryKind::Other => {
                    summary.skipped += 1;
                    report(TreeEvent::Skipped {
                        path: &remote_path,
                        why: "not a regular file or directory",
                    });
                }
            }
        }
    }
    Ok(summary)
}

/// `dir/name` in FTP's `/`-separated paths.
pub fn join_remote(dir: &str, name: &str) -> String {
    match dir {
        "" | "." => name.to_owned(),
        _ if dir.ends_with('/') => format!("{dir}{name}"),
        _ => format!("{dir}/{name}"),
    }
}

/// MKD, unless the directory is already there.
fn ensure_remote_dir(session: &mut Session, path: &str) -> Result<(), ClientError> {
    match session.mkdir(path) {
        Ok(()) => Ok(()),
        Err(refused @ ClientError::Reply { .. }) => {
            if session.is_dir(path)? {
                Ok(())
            } else {
                Err(refused)
            }
        }
        Err(error) => Err(error),
    }
}

fn check_depth(depth: usize, path: &str) -> Result<(), ClientError> {
    if depth > MAX_TREE_DEPTH {
        return Err(ClientError::Usage(format!(
            "{path}: more than {MAX_TREE_DEPTH} directories deep (a symlink loop?)"
        )));
    }
    Ok(())
}

/// The entries of a local directory, by name; `None` for names that are not UTF-8.
fn sorted_local_entries(dir: &Path) -> Result<Vec<(Option<String>, PathBuf)>, ClientError> {
    let read = fs::read_dir(dir).map_err(|error| ClientError::local(dir, error))?;
    let mut entries = Vec::new();
    for entry in read {
        let entry = entry.map_err(|error| ClientError::local(dir, error))?;
        entries.push((entry.file_name().into_string().ok(), entry.path()));
    }
    entries.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_paths_join_with_one_slash() {
        assert_eq!(join_remote("", "a"), "a");
        assert_eq!(join_remote(".", "a"), "a");
        assert_eq!(join_remote("/", "a"), "/a");
        assert_eq!(join_remote("dir", "a b"), "dir/a b");
        assert_eq!(join_remote("/dir/", "a"), "/dir/a");
    }

    #[test]
    fn depth_is_bounded() {
        assert!(check_depth(MAX_TREE_DEPTH, "x").is_ok());
        assert!(check_depth(MAX_TREE_DEPTH + 1, "x").is_err());
    }
}
