//! Directory entries as servers describe them, MLSD/MLST facts (RFC 3659) or LIST lines (Unix
//! or DOS style), and as `ls --json` prints them.

use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use std::time::SystemTime;
use suppaftp::list::ListParser;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
    Link,
    Other,
}

impl EntryKind {
    fn as_str(self) -> &'static str {
        match self {
            EntryKind::File => "file",
            EntryKind::Dir => "dir",
            EntryKind::Link => "link",
            EntryKind::Other => "other",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub kind: EntryKind,
    pub size: Option<u64>,
    /// Modification time, RFC 3339 in UTC.
    pub modified: Option<String>,
}

impl Entry {
    /// `{"name": .., "type": "file"|"dir"|"link"|"other", "size": n|null, "modified": ..|null}`
    pub fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "type": self.kind.as_str(),
            "size": self.size,
            "modified": self.modified,
        })
    }

    /// A local directory entry, for `lls`.
    pub fn local(name: String, metadata: &std::fs::Metadata) -> Entry {
        let kind = if metadata.is_dir() {
            EntryKind::Dir
        } else if metadata.is_file() {
            EntryKind::File
        } else if metadata.file_type().is_symlink() {
            EntryKind::Link
        } else {
            EntryKind::Other
        };
        Entry {
            name,
            kind,
            size: metadata.is_file().then_some(metadata.len()),
            modified: metadata.modified().ok().map(rfc3339),
        }
    }
}

/// One MLSD line, or the entry line of an MLST reply: `type=file;size=5;modify=20240101120000; a b.txt`.
/// The name is everything after the first space, so it may hold spaces and semicolons.
/// `cdir` and `pdir` entries (the directory itself and its parent) give `None`.
pub fn parse_mlsx(line: &str) -> Option<Entry> {
    let (facts, name) = line.trim_end_matches(['\r', '\n']).split_once(' ')?;
    if name.is_empty() {
        return None;
    }
    let mut entry = Entry {
        name: name.to_owned(),
        kind: EntryKind::Other,
        size: None,
        modified: None,
    };
    for fact in facts.split(';').filter(|fact| !fact.is_empty()) {
        let (key, value) = fact.split_once('=')?;
        match key.to_ascii_lowercase().as_str() {
            "type" => {
                entry.kind = match value.to_ascii_lowercase().as_str() {
                    "file" => EntryKind::File,
                    "dir" => EntryKind::Dir,
                    "cdir" | "pdir" => return None,
                    // e.g. OS.unix=slink:/target (RFC 3659 section 7.5.1)
                    other if other.contains("link") => EntryKind::Link,
                    _ => EntryKind::Other,
                }
            }
            "size" => entry.size = value.parse().ok(),
            "modify" => entry.modified = parse_mlsx_time(value),
            _ => {}
        }
    }
    Some(entry)
}

/// `YYYYMMDDHHMMSS[.sss]`, always UTC (RFC 3659 section 2.3).
fn parse_mlsx_time(value: &str) -> Option<String> {
    let seconds = value.split('.').next()?;
    let time = NaiveDateTime::parse_from_str(seconds, "%Y%m%d%H%M%S").ok()?;
    Some(time.and_utc().to_rfc3339_opts(SecondsFormat::Secs, true))
}

/// One LIST line in Unix (`-rw-r--r-- 1 u g 5 Jan 1 2024 a.txt`) or DOS style; `None` for
/// lines that are neither, such as `total 12`.
pub fn parse_list(line: &str) -> Option<Entry> {
    let file = ListParser::parse_posix(line)
        .or_else(|_| ListParser::parse_dos(line))
        .ok()?;
    let kind = if file.is_directory() {
        EntryKind::Dir
    } else if file.is_symlink() {
        EntryKind::Link
    } else {
        EntryKind::File
    };
    Some(Entry {
        name: file.name().to_owned(),
        kind,
        size: u64::try_from(file.size()).ok(),
        modified: Some(rfc3339(file.modified())),
    })
}

fn rfc3339(time: SystemTime) -> String {
    DateTime::<Utc>::from(time).to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// True for a name that is one path component and nothing else: what a recursive download
/// accepts from a server's listing before creating it locally, so that a hostile server cannot
/// write outside the destination (`../x`, `/etc/x`) or smuggle control characters.
pub fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\'])
        && !name.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mlsd_lines_give_kind_size_time_and_the_whole_name() {
        let entry =
            parse_mlsx("type=file;size=1234;modify=20240102030405.123; a b;c.txt").expect("parses");
        assert_eq!(entry.name, "a b;c.txt");
        assert_eq!(entry.kind, EntryKind::File);
        assert_eq!(entry.size, Some(1234));
        assert_eq!(entry.modified.as_deref(), Some("2024-01-02T03:04:05Z"));
        let dir = parse_mlsx("Type=dir;Modify=20240102030405; docs").expect("parses");
        assert_eq!(dir.kind, EntryKind::Dir);
        assert_eq!(dir.size, None);
    }

    #[test]
    fn mlsd_skips_the_directory_itself_and_its_parent() {
        assert_eq!(parse_mlsx("type=cdir;modify=20240102030405; ."), None);
        assert_eq!(parse_mlsx("type=pdir; .."), None);
        assert_eq!(parse_mlsx("garbage"), None);
    }

    #[test]
    fn unix_list_lines_parse_and_totals_do_not() {
        let entry = parse_list("-rw-r--r-- 1 ftp ftp 5 Jan 02 2024 notes.txt").expect("parses");
        assert_eq!(entry.name, "notes.txt");
        assert_eq!(entry.kind, EntryKind::File);
        assert_eq!(entry.size, Some(5));
        let dir = parse_list("drwxr-xr-x 2 ftp ftp 4096 Jan 02 2024 sub").expect("parses");
        assert_eq!(dir.kind, EntryKind::Dir);
        assert_eq!(parse_list("total 8"), None);
    }

    #[test]
    fn json_form_names_every_field() {
        let entry = parse_mlsx("type=file;size=3; x").expect("parses");
        assert_eq!(
            entry.to_json(),
            json!({"name": "x", "type": "file", "size": 3, "modified": null})
        );
    }

    #[test]
    fn only_single_components_are_plain_names() {
        assert!(is_plain_name("report 2024.pdf"));
        for hostile in [
            "",
            ".",
            "..",
            "../x",
            "/etc/passwd",
            "a\\b",
            "a\r\nDELE b",
            "x\0",
        ] {
            assert!(!is_plain_name(hostile), "{hostile:?}");
        }
    }
}
