//! `ferry user` run by several processes at once: every edit lands, none resurrects another's.
//! Each `add` hashes a password (~50 ms) between reading the users file and saving it, which
//! is the window concurrent edits used to fall into.

use ferry::accounts::users::UsersFile;
use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// Starts `ferry user ARGS --users FILE`, with a password on stdin for `add`.
fn ferry_user(users_file: &Path, args: &[&str]) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ferry"));
    command
        .arg("user")
        .args(args)
        .arg("--users")
        .arg(users_file)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if args.first() == Some(&"add") {
        command.arg("--password-stdin");
    }
    let mut child = command.spawn().expect("start ferry user");
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(b"a password for the race\n")
            .expect("write password");
    }
    child
}

/// Waits for `child`; panics with its output unless it exited 0.
fn succeeds(child: Child, what: &str) {
    let output = child.wait_with_output().expect("wait for ferry user");
    assert!(
        output.status.success(),
        "{what}: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

fn names(users_file: &Path) -> Vec<String> {
    UsersFile::load(users_file)
        .expect("the users file stays valid")
        .users()
        .map(|user| user.name.clone())
        .collect()
}

#[test]
fn ten_parallel_adds_all_land() {
    let dir = tempfile::tempdir().unwrap();
    let users_file = dir.path().join("users.toml");
    let names_added: Vec<String> = (0..10).map(|i| format!("user{i}")).collect();
    let adds: Vec<Child> = names_added
        .iter()
        .map(|name| ferry_user(&users_file, &["add", name]))
        .collect();
    for (add, name) in adds.into_iter().zip(&names_added) {
        succeeds(add, &format!("add {name}"));
    }
    assert_eq!(names(&users_file), names_added, "an add was lost");
}

/// `remove` racing an `add` of someone else: the removed user stays removed (an `add` that
/// read the file before the removal used to save it back) and the added one is there.
#[test]
fn a_remove_racing_adds_is_never_undone() {
    let dir = tempfile::tempdir().unwrap();
    let users_file = dir.path().join("users.toml");
    for round in 0..3 {
        let victim = format!("victim{round}");
        succeeds(ferry_user(&users_file, &["add", &victim]), "add the victim");
        let newcomers: Vec<String> = (0..3).map(|i| format!("new{round}x{i}")).collect();
        let adds: Vec<Child> = newcomers
            .iter()
            .map(|name| ferry_user(&users_file, &["add", name]))
            .collect();
        let remove = ferry_user(&users_file, &["remove", &victim]);
        succeeds(remove, "remove");
        for (add, name) in adds.into_iter().zip(&newcomers) {
            succeeds(add, &format!("add {name}"));
        }
        let now = names(&users_file);
        assert!(
            !now.contains(&victim),
            "round {round}: `{victim}` came back after `remove` said it was removed: {now:?}"
        );
        for name in &newcomers {
            assert!(
                now.contains(name),
                "round {round}: `{name}` was lost: {now:?}"
            );
        }
    }
}
