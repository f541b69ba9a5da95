//! Listings: MLSD and MLST say what this user may do (`perm`) and the file mode (`UNIX.mode`),
//! MLST resolves a relative name in the working directory, and a directory of any size lists
//! completely, page by page, without holding up other sessions.

mod common;

use common::{RawSession, TestServer, default_users, read_all};
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

async fn listing(raw: &mut RawSession, server: &TestServer, command: &str) -> String {
    let data = raw.epsv(server.addr).await;
    raw.expect(command, 150).await;
    let text = String::from_utf8(read_all(data).await).expect("UTF-8 listing");
    assert_eq!(raw.reply().await.0, 226, "{command}");
    text
}

/// The MLSD line naming `name`.
fn line_for<'a>(text: &'a str, name: &str) -> &'a str {
    text.lines()
        .find(|line| line.ends_with(&format!(" {name}")))
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

fn fact<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    line.split(' ')
        .next()?
        .split(';')
        .find_map(|fact| fact.strip_prefix(&format!("{name}=")))
}

#[tokio::test]
async fn mlsd_and_mlst_give_perm_from_the_users_permissions_and_the_unix_mode() {
    let server = TestServer::start().await;
    for user in ["alice", "reader"] {
        let home = server.home(user);
        std::fs::create_dir_all(home.join("dir")).unwrap();
        std::fs::write(home.join("file.txt"), b"12345").unwrap();
        std::fs::set_permissions(
            home.join("file.txt"),
            std::fs::Permissions::from_mode(0o640),
        )
        .unwrap();
    }
    let mut alice = server.raw_login("alice").await;
    let text = listing(&mut alice, &server, "MLSD").await;
    let file = line_for(&text, "file.txt");
    assert_eq!(fact(file, "type"), Some("file"), "{file}");
    assert_eq!(fact(file, "size"), Some("5"), "{file}");
    assert_eq!(fact(file, "perm"), Some("rawdf"), "{file}");
    assert_eq!(fact(file, "UNIX.mode"), Some("0640"), "{file}");
    let dir = line_for(&text, "dir");
    assert_eq!(fact(dir, "type"), Some("dir"), "{dir}");
    assert_eq!(fact(dir, "perm"), Some("elcmpdf"), "{dir}");

    // A read-only user sees no w, a, d, f, c, m, p.
    let mut reader = server.raw_login("reader").await;
    let text = listing(&mut reader, &server, "MLSD").await;
    assert_eq!(fact(line_for(&text, "file.txt"), "perm"), Some("r"));
    assert_eq!(fact(line_for(&text, "dir"), "perm"), Some("el"));
    let mlst = reader.expect("MLST file.txt", 250).await;
    let entry = mlst.lines().nth(1).expect("the entry line").trim_start();
    assert_eq!(fact(entry, "perm"), Some("r"), "{mlst}");
    assert_eq!(fact(entry, "UNIX.mode"), Some("0640"), "{mlst}");

    let feat = alice.expect("FEAT", 211).await;
    assert!(
        feat.contains(" MLST type*;size*;modify*;perm*;UNIX.mode*;"),
        "{feat}"
    );
}

#[tokio::test]
async fn mlst_of_a_relative_name_answers_for_the_working_directory() {
    let server = TestServer::start().await;
    let home = server.home("alice");
    std::fs::create_dir_all(home.join("sub")).unwrap();
    std::fs::write(home.join("x.txt"), b"home").unwrap();
    std::fs::write(home.join("sub/x.txt"), b"in sub, longer").unwrap();
    let mut raw = server.raw_login("alice").await;
    raw.expect("CWD sub", 250).await;
    let mlst = raw.expect("MLST x.txt", 250).await;
    let entry = mlst.lines().nth(1).expect("the entry line").trim_start();
    assert_eq!(fact(entry, "size"), Some("14"), "{mlst}");
    assert!(entry.ends_with(" /sub/x.txt"), "{mlst}");
    raw.expect("MLST /x.txt", 250).await;
    raw.expect("MLST missing.txt", 550).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_of_20000_entries_lists_completely_while_other_sessions_are_served() {
    const ENTRIES: usize = 20_000;
    let server = TestServer::start_with(|_| {}, &default_users()).await;
    let big = server.home("alice").join("big");
    std::fs::create_dir_all(&big).unwrap();
    for i in 0..ENTRIES {
        std::fs::File::create(big.join(format!("entry-{i:05}.dat"))).unwrap();
    }
    std::fs::write(server.home("alice").join("probe.txt"), b"probe").unwrap();

    let mut raw = server.raw_login("alice").await;
    for command in ["LIST big", "NLST big", "MLSD big"] {
        let text = listing(&mut raw, &server, command).await;
        let mut names: Vec<&str> = text
            .lines()
            .map(|line| line.rsplit(' ').next().unwrap_or(line))
            .collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ENTRIES, "{command}: every entry once");
        assert_eq!(names[0], "entry-00000.dat");
        assert_eq!(names[ENTRIES - 1], format!("entry-{:05}.dat", ENTRIES - 1));
    }

    // Listings that nobody reads hold no worker: another session is answered at once.
    let mut unread = Vec::new();
    for _ in 0..6 {
        let mut session = server.raw_login("alice").await;
        let data = session.epsv(server.addr).await;
        session.expect("MLSD big", 150).await;
        unread.push((session, data));
    }
    let mut other = server.raw_login("alice").await;
    let asked = Instant::now();
    other.expect("SIZE probe.txt", 213).await;
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "{:?}",
        asked.elapsed()
    );
    // Each unread listing completes once read.
    for (mut session, data) in unread {
        let text = String::from_utf8(read_all(data).await).unwrap();
        assert_eq!(text.lines().count(), ENTRIES);
        assert_eq!(session.reply().await.0, 226);
    }
}
