//! Directory listings in the formats stock clients parse: `ls -l` lines for LIST, names for
//! NLST, RFC 3659 facts for MLSD and MLST (with `perm`: what this user may do with the entry).

use super::{Entry, EntryKind};
use crate::accounts::users::Permissions;
use chrono::{DateTime, Datelike, Local, Timelike, Utc};
pub use libunftp::storage::ListingFormat;
use std::io::Write;
use std::time::{Duration, SystemTime};

/// `ls -l` shows the time of day for files changed within about six months, the year otherwise.
const RECENT: Duration = Duration::from_secs(182 * 24 * 3600);

/// A change time more than this far ahead of the clock shows the year, as `ls` does.
const FUTURE_SLACK: Duration = Duration::from_secs(3600);

/// Month abbreviations of the C locale, which every FTP client's LIST parser expects.
const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// Bytes of a typical line, to size the listing once (`ls -l` columns plus a short name).
const TYPICAL_LINE: usize = 72;

/// What a listing is for and what it says: the format, the MLST facts the client chose, and
/// the permissions of the user it is for (the `perm` fact).
#[derive(Debug, Clone)]
pub struct ListingStyle {
    pub format: ListingFormat,
    pub facts: Vec<&'static str>,
    pub permissions: Permissions,
    pub now: SystemTime,
}

/// `entries` in `style`: whole lines, so pages can be sent one after another. For
/// [`ListingFormat::MlstEntry`] only the first entry's facts, without name or line break.
pub fn format_page(style: &ListingStyle, entries: &[(String, Entry)]) -> Vec<u8> {
    match style.format {
        ListingFormat::Long => long_format(entries, style.now),
        ListingFormat::Names => names(entries),
        ListingFormat::Mlsd => {
            let mut text = Vec::with_capacity(entries.len() * TYPICAL_LINE);
            for (name, entry) in entries {
                text.extend_from_slice(facts(entry, &style.facts, &style.permissions).as_bytes());
                text.push(b' ');
                text.extend_from_slice(name.as_bytes());
                text.extend_from_slice(b"\r\n");
            }
            text
        }
        ListingFormat::MlstEntry => entries
            .first()
            .map(|(_, entry)| facts(entry, &style.facts, &style.permissions).into_bytes())
            .unwrap_or_default(),
    }
}

/// The RFC 3659 facts of `entry` that are `selected`, each followed by `;`:
/// `type=file;size=1024;modify=20241121052400;perm=radfw;UNIX.mode=0644;`.
pub fn facts(entry: &Entry, selected: &[&str], permissions: &Permissions) -> String {
    let wanted = |fact: &str| selected.iter().any(|s| s.eq_ignore_ascii_case(fact));
    let is_dir = entry.kind == EntryKind::Dir;
    let mut text = String::new();
    if wanted("type") {
        text.push_str(if is_dir { "type=dir;" } else { "type=file;" });
    }
    if wanted("size") && !is_dir {
        text.push_str(&format!("size={};", entry.len));
    }
    if wanted("modify")
        && let Some(modified) = entry.modified
    {
        let utc: DateTime<Utc> = modified.into();
        text.push_str(&format!("modify={};", utc.format("%Y%m%d%H%M%S")));
    }
    if wanted("perm") {
        text.push_str(&format!("perm={};", perm_fact(is_dir, permissions)));
    }
    if wanted("UNIX.mode") {
        text.push_str(&format!("UNIX.mode=0{:o};", entry.mode & 0o7777));
    }
    text
}

/// RFC 3659 section 7.5.5, from what the user may do (not from the file's mode bits: Ferry's
/// permissions decide). Files: r(etrieve), a(ppend), w(rite over), d(elete), f (rename).
/// Directories: e(nter), l(ist), c(reate files), m(ake directories), p(urge entries),
/// d(elete), f (rename).
fn perm_fact(is_dir: bool, p: &Permissions) -> String {
    let flags: &[(bool, char)] = if is_dir {
        &[
            (true, 'e'),
            (p.list, 'l'),
            (p.upload, 'c'),
            (p.mkdir, 'm'),
            (p.delete, 'p'),
            (p.rmdir, 'd'),
            (p.rename, 'f'),
        ]
    } else {
        &[
            (p.download, 'r'),
            (p.upload, 'a'),
            (p.upload && p.overwrite, 'w'),
            (p.delete, 'd'),
            (p.rename, 'f'),
        ]
    };
    flags
        .iter()
        .filter(|(allowed, _)| *allowed)
        .map(|(_, flag)| *flag)
        .collect()
}

/// One `ls -l` line per entry, e.g. `-rw-r--r--    1 ftp ftp          1024 Nov 21 05:24 report.pdf`.
/// Owner and group are always `ftp`: local uids mean nothing to the client and reveal the host.
///
/// Written byte by byte into one buffer rather than through `format!` and strftime: a
/// directory of 10,000 files is formatted in a few milliseconds.
pub fn long_format(entries: &[(String, Entry)], now: SystemTime) -> Vec<u8> {
    let mut text = Vec::with_capacity(entries.len() * TYPICAL_LINE);
    for (name, entry) in entries {
        text.push(match entry.kind {
            EntryKind::Dir => b'd',
            EntryKind::File => b'-',
            EntryKind::Symlink => b'l',
        });
        push_mode(&mut text, entry.mode);
        // Writing to a Vec cannot fail.
        let _ = write!(text, "    1 ftp ftp {:>13} ", entry.len);
        push_date(&mut text, entry.modified, now);
        text.push(b' ');
        text.extend_from_slice(name.as_bytes());
        text.extend_from_slice(b"\r\n");
    }
    text
}

/// NLST: one bare name per line.
pub fn names(entries: &[(String, Entry)]) -> Vec<u8> {
    let mut text = Vec::with_capacity(entries.len() * 16);
    for (name, _) in entries {
        text.extend_from_slice(name.as_bytes());
        text.extend_from_slice(b"\r\n");
    }
    text
}

/// `rwxr-xr-x` for the nine permission bits.
fn push_mode(text: &mut Vec<u8>, mode: u32) {
    for (shift, flag) in [b'r', b'w', b'x'].iter().cycle().take(9).enumerate() {
        let bit = 0o400 >> shift;
        text.push(if mode & bit != 0 { *flag } else { b'-' });
    }
}

/// `Nov 21 05:24` (recent) or `Nov 21  2023` (older or in the future), in local time.
fn push_date(text: &mut Vec<u8>, modified: Option<SystemTime>, now: SystemTime) {
    let Some(modified) = modified else {
        text.extend_from_slice(b"Jan  1  1970");
        return;
    };
    let local: DateTime<Local> = modified.into();
    let age = now.duration_since(modified).unwrap_or_default();
    let recent = age < RECENT && modified <= now + FUTURE_SLACK;
    text.extend_from_slice(MONTHS[local.month0() as usize % 12]);
    text.push(b' ');
    push_two_digits(text, local.day(), b' ');
    if recent {
        text.push(b' ');
        push_two_digits(text, local.hour(), b'0');
        text.push(b':');
        push_two_digits(text, local.minute(), b'0');
    } else {
        let _ = write!(text, "  {}", local.year());
    }
}

/// A value below 100 in two columns, padded on the left with `pad`.
fn push_two_digits(text: &mut Vec<u8>, value: u32, pad: u8) {
    let value = value % 100;
    text.push(if value < 10 {
        pad
    } else {
        b'0' + (value / 10) as u8
    });
    text.push(b'0' + (value % 10) as u8);
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
    fn date_column_matches_strftime_for_recent_old_and_future_times() {
        let now = SystemTime::now();
        let day = 24 * 3600;
        for (modified, pattern) in [
            (now - Duration::from_secs(5), "%b %e %H:%M"),
            (
                now - Duration::from_secs(40 * day + 7 * 3600),
                "%b %e %H:%M",
            ),
            (now - Duration::from_secs(400 * day), "%b %e  %Y"),
            (now + Duration::from_secs(30 * day), "%b %e  %Y"),
        ] {
            let mut column = Vec::new();
            push_date(&mut column, Some(modified), now);
            let expected = DateTime::<Local>::from(modified)
                .format(pattern)
                .to_string();
            assert_eq!(String::from_utf8(column).unwrap(), expected);
        }
    }

    #[test]
    fn mode_bits_read_like_ls() {
        for (mode, expected) in [
            (0o755, "rwxr-xr-x"),
            (0o640, "rw-r-----"),
            (0o007, "------rwx"),
        ] {
            let mut text = Vec::new();
            push_mode(&mut text, mode);
            assert_eq!(text, expected.as_bytes());
        }
    }

    #[test]
    fn names_lists_one_name_per_line() {
        let now = SystemTime::now();
        let entries = vec![("a b.txt".to_owned(), entry(EntryKind::File, 1, 0o644, now))];
        assert_eq!(names(&entries), b"a b.txt\r\n");
    }
}
