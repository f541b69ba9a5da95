//! Directory listings in the formats stock clients parse: `ls -l` lines for LIST, names for NLST.

use super::{Entry, EntryKind};
use chrono::{DateTime, Local};
use std::fmt::Write;
use std::time::{Duration, SystemTime};

/// `ls -l` shows the time of day for files changed within about six months, the year otherwise.
const RECENT: Duration = Duration::from_secs(182 * 24 * 3600);

/// One `ls -l` line per entry, e.g. `-rw-r--r--   1 ftp ftp  1024 Nov 21 05:24 report.pdf`.
/// Owner and group are always `ftp`: local uids mean nothing to the client and reveal the host.
pub fn long_format(entries: &[(String, Entry)], now: SystemTime) -> Vec<u8> {
    let mut text = String::with_capacity(entries.len() * 64);
    for (name, entry) in entries {
        let kind = match entry.kind {
            EntryKind::Dir => 'd',
            EntryKind::File => '-',
            EntryKind::Symlink => 'l',
        };
        let _ = write!(
            text,
            "{kind}{} {:>4} ftp ftp {:>13} {} {name}\r\n",
            mode_string(entry.mode),
            1,
            entry.len,
            date_column(entry.modified, now)
        );
    }
    text.into_bytes()
}

/// NLST: one bare name per line.
pub fn names(entries: &[(String, Entry)]) -> Vec<u8> {
    let mut text = String::with_capacity(entries.len() * 16);
    for (name, _) in entries {
        text.push_str(name);
        text.push_str("\r\n");
    }
    text.into_bytes()
}

fn mode_string(mode: u32) -> String {
    const FLAGS: [(u32, char); 9] = [
        (0o400, 'r'),
        (0o200, 'w'),
        (0o100, 'x'),
        (0o040, 'r'),
        (0o020, 'w'),
        (0o010, 'x'),
        (0o004, 'r'),
        (0o002, 'w'),
        (0o001, 'x'),
    ];
    FLAGS
        .iter()
        .map(|&(bit, flag)| if mode & bit != 0 { flag } else { '-' })
        .collect()
}

fn date_column(modified: Option<SystemTime>, now: SystemTime) -> String {
    let Some(modified) = modified else {
        return "Jan  1  1970".to_owned();
    };
    let local: DateTime<Local> = modified.into();
    let age = now.duration_since(modified).unwrap_or_default();
    let in_future = modified > now + Duration::from_secs(3600);
    if age < RECENT && !in_future {
        local.format("%b %e %H:%M").to_string()
    } else {
        local.format("%b %e  %Y").to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(kind: EntryKind, len: u64, mode: u32, modified: SystemTime) -> Entry {
        Entry {
            kind,
            len,
            modified: Some(modified),
            mode,
        }
    }

    #[test]
    fn long_format_looks_like_ls_dash_l() {
        let now = SystemTime::now();
        let old = now - Duration::from_secs(400 * 24 * 3600);
        let entries = vec![
            (
                "notes.txt".to_owned(),
                entry(EntryKind::File, 1234, 0o644, now),
            ),
            (
                "archive".to_owned(),
                entry(EntryKind::Dir, 4096, 0o755, old),
            ),
        ];
        let text = String::from_utf8(long_format(&entries, now)).unwrap();
        let lines: Vec<&str> = text.split("\r\n").filter(|l| !l.is_empty()).collect();
        assert_eq!(lines.len(), 2);
        assert!(
            lines[0].starts_with("-rw-r--r--    1 ftp ftp          1234 "),
            "{}",
            lines[0]
        );
        assert!(lines[0].ends_with(" notes.txt"), "{}", lines[0]);
        assert!(lines[1].starts_with("drwxr-xr-x"), "{}", lines[1]);
        // Old entries show the year instead of the time of day.
        let year = DateTime::<Local>::from(old).format("%Y").to_string();
        assert!(
            lines[1].contains(&format!(" {year} archive")),
            "{}",
            lines[1]
        );
    }

    #[test]
    fn names_lists_one_name_per_line() {
        let now = SystemTime::now();
        let entries = vec![("a b.txt".to_owned(), entry(EntryKind::File, 1, 0o644, now))];
        assert_eq!(names(&entries), b"a b.txt\r\n");
    }
}
