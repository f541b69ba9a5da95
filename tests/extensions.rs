//! The commands a mature server is expected to have (issue 12): MFMT, SITE CHMOD, HASH with
//! its older X forms, and HOST. Driven over real sockets, checked against the bytes, times and
//! modes on disk, the audit records, and lftp's `mirror -R`.

mod common;

use common::audit_capture::AuditCapture;
use common::{ALL, PASSWORD, RawSession, TestServer, TestUser, default_users, pattern};
use sha2::Digest;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// 2020-06-15 12:00:00 UTC: mid-day, mid-month, so LIST (local time) shows the same day in
/// any time zone.
const MFMT_TIME: &str = "20200615120000";
const MFMT_SECS: u64 = 1_592_222_400;

/// `alice` may do everything; `reader` may list and download; `lister` may only list;
/// `uploader` may upload new files but not replace (or otherwise change) existing ones.
fn users() -> Vec<TestUser> {
    let mut users = default_users();
    users.push(TestUser {
        name: "lister",
        permissions: &["list"],
        extra: "",
    });
    users.push(TestUser {
        name: "uploader",
        permissions: &["list", "download", "upload"],
        extra: "",
    });
    users
}

/// A server whose users' homes exist, with `alice/f.txt` and `reader/f.txt`.
async fn server() -> TestServer {
    let server = TestServer::start_with(|_| {}, &users()).await;
    for user in ["alice", "reader", "lister", "uploader"] {
        std::fs::create_dir_all(server.home(user)).unwrap();
        std::fs::write(server.home(user).join("f.txt"), b"some content\n").unwrap();
    }
    server
}

fn modified(path: &Path) -> SystemTime {
    std::fs::metadata(path).unwrap().modified().unwrap()
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o7777
}

fn set_local_modified(path: &Path, when: SystemTime) {
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_modified(when).unwrap();
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The data of a LIST of `path`.
async fn list(server: &TestServer, raw: &mut RawSession, path: &str) -> String {
    let data = raw.epsv(server.addr).await;
    raw.expect(format!("LIST {path}"), 150).await;
    let text = String::from_utf8(common::read_all(data).await).unwrap();
    assert_eq!(raw.reply().await.0, 226);
    text
}

#[tokio::test]
async fn feat_lists_every_added_command() {
    let server = server().await;
    let mut raw = server.raw().await;
    // FEAT comes before login (RFC 2389): a client learns of HOST there.
    let feat = raw.expect("FEAT", 211).await;
    for line in [
        " MFMT",
        " SITE CHMOD",
        " HASH SHA-1;SHA-256*;SHA-512;MD5;CRC32",
        " XCRC",
        " XMD5",
        " XSHA1",
        " XSHA256",
        " XSHA512",
        " HOST",
    ] {
        assert!(
            feat.lines().any(|l| l == line),
            "FEAT lacks {line:?}:\n{feat}"
        );
    }
}

// MFMT

#[tokio::test]
async fn mfmt_sets_the_time_that_mdtm_mlst_and_list_then_show() {
    let server = server().await;
    let mut raw = server.raw_login("alice").await;
    let text = raw.expect(format!("MFMT {MFMT_TIME} f.txt"), 213).await;
    assert_eq!(text, format!("213 Modify={MFMT_TIME}; f.txt\r\n"));
    assert_eq!(
        modified(&server.home("alice").join("f.txt")),
        UNIX_EPOCH + Duration::from_secs(MFMT_SECS)
    );
    let text = raw.expect("MDTM f.txt", 213).await;
    assert_eq!(text, format!("213 {MFMT_TIME}\r\n"));
    let facts = raw.expect("MLST f.txt", 250).await;
    assert!(facts.contains(&format!("modify={MFMT_TIME};")), "{facts}");
    let listing = list(&server, &mut raw, "f.txt").await;
    assert!(listing.contains(" Jun 15  2020 f.txt"), "{listing}");
}

#[tokio::test]
async fn mfmt_resolves_a_relative_path_against_the_working_directory() {
    let server = server().await;
    let sub = server.home("alice").join("sub");
    std::fs::create_dir(&sub).unwrap();
    std::fs::write(sub.join("f.txt"), b"in sub").unwrap();
    let untouched = modified(&server.home("alice").join("f.txt"));
    let mut raw = server.raw_login("alice").await;
    raw.expect("CWD sub", 250).await;
    raw.expect(format!("MFMT {MFMT_TIME} f.txt"), 213).await;
    assert_eq!(
        modified(&sub.join("f.txt")),
        UNIX_EPOCH + Duration::from_secs(MFMT_SECS)
    );
    assert_eq!(modified(&server.home("alice").join("f.txt")), untouched);
}

#[tokio::test]
async fn mfmt_refuses_bad_times_missing_files_and_users_who_may_not_overwrite() {
    let server = server().await;
    let mut raw = server.raw_login("alice").await;
    for bad in [
        "MFMT 2020061512000 f.txt",
        "MFMT 20200230120000 f.txt",
        "MFMT yesterday f.txt",
        "MFMT 20200615120000",
    ] {
        raw.expect(bad, 501).await;
    }
    raw.expect(format!("MFMT {MFMT_TIME} missing.txt"), 550)
        .await;
    raw.expect(format!("MFMT {MFMT_TIME} /"), 550).await;
    raw.expect("NOOP", 200).await;

    for user in ["reader", "uploader"] {
        let file = server.home(user).join("f.txt");
        let before = modified(&file);
        let mut raw = server.raw_login(user).await;
        raw.expect(format!("MFMT {MFMT_TIME} f.txt"), 550).await;
        assert_eq!(modified(&file), before, "{user}");
    }
}

// SITE CHMOD

#[tokio::test]
async fn site_chmod_sets_the_permission_bits_on_disk() {
    let server = server().await;
    let file = server.home("alice").join("f.txt");
    set_mode(&file, 0o644);
    let mut raw = server.raw_login("alice").await;
    let text = raw.expect("SITE CHMOD 640 f.txt", 200).await;
    assert_eq!(text, "200 SITE CHMOD command successful\r\n");
    assert_eq!(mode(&file), 0o640);
    raw.expect("SITE CHMOD 0604 /f.txt", 200).await;
    assert_eq!(mode(&file), 0o604);

    let sub = server.home("alice").join("sub");
    std::fs::create_dir(&sub).unwrap();
    raw.expect("SITE CHMOD 700 sub", 200).await;
    assert_eq!(mode(&sub), 0o700);
    std::fs::write(sub.join("g.txt"), b"g").unwrap();
    raw.expect("CWD sub", 250).await;
    raw.expect("SITE CHMOD 600 g.txt", 200).await;
    assert_eq!(mode(&sub.join("g.txt")), 0o600);
    assert_eq!(mode(&file), 0o604, "relative to the working directory");
}

#[tokio::test]
async fn site_chmod_never_sets_setuid_setgid_or_sticky_and_refuses_bad_modes() {
    let server = server().await;
    let file = server.home("alice").join("f.txt");
    set_mode(&file, 0o644);
    let mut raw = server.raw_login("alice").await;
    // Accepted for its permission bits (lftp sends a setgid directory's mode as it is); the
    // special bits are dropped.
    raw.expect("SITE CHMOD 4755 f.txt", 200).await;
    assert_eq!(mode(&file), 0o755);
    raw.expect("SITE CHMOD 7777 f.txt", 200).await;
    assert_eq!(mode(&file), 0o777);
    for bad in [
        "SITE CHMOD 64 f.txt",
        "SITE CHMOD 06440 f.txt",
        "SITE CHMOD 648 f.txt",
        "SITE CHMOD u+x f.txt",
        "SITE CHMOD 644",
        "SITE CHMOD",
    ] {
        raw.expect(bad, 501).await;
    }
    assert_eq!(mode(&file), 0o777);
    raw.expect("SITE CHMOD 644 missing.txt", 550).await;
}

#[tokio::test]
async fn site_chmod_refuses_a_symlink_out_of_the_home_and_users_who_may_not_overwrite() {
    let server = server().await;
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("secret");
    std::fs::write(&secret, b"secret").unwrap();
    set_mode(&secret, 0o600);
    std::os::unix::fs::symlink(&secret, server.home("alice").join("escape")).unwrap();
    let mut raw = server.raw_login("alice").await;
    raw.expect("SITE CHMOD 666 escape", 550).await;
    assert_eq!(mode(&secret), 0o600);

    for user in ["reader", "uploader"] {
        let file = server.home(user).join("f.txt");
        set_mode(&file, 0o644);
        let mut raw = server.raw_login(user).await;
        raw.expect("SITE CHMOD 600 f.txt", 550).await;
        assert_eq!(mode(&file), 0o644, "{user}");
    }
}

/// lftp's `mirror -R` sets each uploaded file's mode with SITE CHMOD (and its time with MFMT);
/// without them it printed `chmod: Operation not supported` per file and exited 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lftp_mirror_reverse_keeps_modes_and_times() {
    let server = server().await;
    let local = tempfile::tempdir().unwrap();
    let tree = local.path().join("tree");
    std::fs::create_dir_all(tree.join("nested")).unwrap();
    std::fs::write(tree.join("private.txt"), b"for the group").unwrap();
    std::fs::write(tree.join("nested").join("script.sh"), b"#!/bin/sh\n").unwrap();
    set_mode(&tree.join("private.txt"), 0o640);
    set_mode(&tree.join("nested").join("script.sh"), 0o750);
    let when = UNIX_EPOCH + Duration::from_secs(MFMT_SECS);
    set_local_modified(&tree.join("private.txt"), when);

    let script = format!(
        "set ftp:ssl-allow no; set net:timeout 10; set net:max-retries 2; \
         set net:reconnect-interval-base 1; set cmd:fail-exit yes; \
         open -u 'alice,{PASSWORD}' -p {port} 127.0.0.1; \
         mirror -R '{tree}' tree; bye",
        port = server.addr.port(),
        tree = tree.display(),
    );
    let output = run_lftp(&script).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "lftp: {}\n{stderr}", output.status);
    assert!(!stderr.contains("chmod"), "{stderr}");

    let remote = server.home("alice").join("tree");
    assert_eq!(
        std::fs::read(remote.join("private.txt")).unwrap(),
        b"for the group"
    );
    assert_eq!(mode(&remote.join("private.txt")), 0o640);
    assert_eq!(mode(&remote.join("nested").join("script.sh")), 0o750);
    assert_eq!(modified(&remote.join("private.txt")), when);
}

/// rclone sets each copied file's modification time with MFMT once FEAT lists it; before,
/// it printed `SetModTime is not supported` for every file and the times were the upload's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rclone_copy_keeps_modification_times() {
    let server = server().await;
    let local = tempfile::tempdir().unwrap();
    let source = local.path().join("source");
    std::fs::create_dir(&source).unwrap();
    std::fs::write(source.join("kept.txt"), b"an old file").unwrap();
    let when = UNIX_EPOCH + Duration::from_secs(MFMT_SECS);
    set_local_modified(&source.join("kept.txt"), when);
    let obscured = run_client(Command::new("rclone").args(["obscure", PASSWORD])).await;
    let remote = format!(
        ":ftp,host=127.0.0.1,port={},user=alice,pass={}:copied",
        server.addr.port(),
        String::from_utf8_lossy(&obscured.stdout).trim()
    );
    let copy = run_client(
        Command::new("rclone")
            .args(["copy", "--config", "/dev/null", "--retries", "1", "-v"])
            .arg(&source)
            .arg(&remote),
    )
    .await;
    let stderr = String::from_utf8_lossy(&copy.stderr);
    assert!(copy.status.success(), "rclone: {}\n{stderr}", copy.status);
    assert!(!stderr.contains("SetModTime is not supported"), "{stderr}");
    let copied = server.home("alice").join("copied").join("kept.txt");
    assert_eq!(std::fs::read(&copied).unwrap(), b"an old file");
    assert_eq!(modified(&copied), when);
}

/// Runs a stock client off the async runtime, with a time limit. Takes the command by
/// reference, as `Command`'s builder methods return it, and leaves an empty one behind.
async fn run_client(command: &mut Command) -> Output {
    let mut command = std::mem::replace(command, Command::new("true"));
    let program = command.get_program().to_string_lossy().into_owned();
    command.stdin(std::process::Stdio::null());
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::task::spawn_blocking(move || command.output()),
    )
    .await
    .unwrap_or_else(|_| panic!("{program} finishes within 60 s"))
    .expect("join");
    output.unwrap_or_else(|error| panic!("{program} is installed (.ci/run installs it): {error}"))
}

async fn run_lftp(script: &str) -> Output {
    run_client(Command::new("lftp").args(["-c", script])).await
}

// HASH

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn hash_answers_each_algorithm_with_the_digest_of_the_file() {
    let server = server().await;
    // Larger than one read chunk, so the digest covers several.
    let content = pattern(600 * 1024 + 17);
    std::fs::write(server.home("alice").join("data.bin"), &content).unwrap();
    let len = content.len();
    let expected = [
        ("SHA-1", hex(&sha1::Sha1::digest(&content))),
        ("SHA-256", hex(&sha2::Sha256::digest(&content))),
        ("SHA-512", hex(&sha2::Sha512::digest(&content))),
        ("MD5", hex(&md5::Md5::digest(&content))),
        ("CRC32", format!("{:08x}", crc32fast::hash(&content))),
    ];
    let mut raw = server.raw_login("alice").await;
    // SHA-256 until OPTS HASH selects another.
    let text = raw.expect("OPTS HASH", 200).await;
    assert_eq!(text, "200 SHA-256\r\n");
    let text = raw.expect("HASH data.bin", 213).await;
    assert_eq!(
        text,
        format!("213 SHA-256 0-{len} {} data.bin\r\n", expected[1].1)
    );

    for (name, digest) in &expected {
        let text = raw
            .expect(format!("OPTS HASH {}", name.to_lowercase()), 200)
            .await;
        assert_eq!(text, format!("200 {name}\r\n"));
        let feat = raw.expect("FEAT", 211).await;
        assert!(feat.contains(&format!("{name}*")), "{feat}");
        let text = raw.expect("HASH data.bin", 213).await;
        assert_eq!(text, format!("213 {name} 0-{len} {digest} data.bin\r\n"));
    }
    let text = raw.expect("OPTS HASH", 200).await;
    assert_eq!(text, "200 CRC32\r\n");
    raw.expect("OPTS HASH SHA-3", 501).await;
    let text = raw.expect("OPTS HASH", 200).await;
    assert_eq!(
        text, "200 CRC32\r\n",
        "an unknown algorithm changes nothing"
    );

    // The older commands, each with its own algorithm, whatever OPTS HASH selected.
    for (command, (_, digest)) in ["XSHA1", "XSHA256", "XSHA512", "XMD5", "XCRC"]
        .into_iter()
        .zip(&expected)
    {
        let text = raw.expect(format!("{command} data.bin"), 250).await;
        assert_eq!(text, format!("250 {digest}\r\n"), "{command}");
    }
}

#[tokio::test]
async fn hash_is_a_download_audited_with_its_bytes() {
    let capture = AuditCapture::default();
    let server = TestServer::start_logging_to(|_| {}, &users(), capture.logger()).await;
    std::fs::create_dir_all(server.home("alice")).unwrap();
    std::fs::write(server.home("alice").join("data.bin"), pattern(1000)).unwrap();
    let mut raw = server.raw_login("alice").await;
    raw.expect("CWD /", 250).await;
    raw.expect("HASH data.bin", 213).await;
    raw.expect("XCRC /data.bin", 250).await;
    let downloads = capture.of("download");
    assert_eq!(downloads.len(), 2, "{downloads:?}");
    for record in downloads {
        assert_eq!(record["path"], "/data.bin");
        assert_eq!(record["bytes"], "1000");
        assert_eq!(record["result"], "ok");
    }
}

#[tokio::test]
async fn hash_refuses_users_without_download_missing_files_and_directories() {
    let server = server().await;
    let mut lister = server.raw_login("lister").await;
    for command in ["HASH f.txt", "XSHA256 f.txt", "XMD5 f.txt", "XCRC f.txt"] {
        lister.expect(command, 550).await;
    }
    let mut raw = server.raw_login("alice").await;
    for command in ["HASH missing.bin", "XCRC missing.bin", "HASH /"] {
        raw.expect(command, 550).await;
    }
    raw.expect("HASH", 501).await;
    raw.expect("NOOP", 200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hash_takes_a_transfer_slot() {
    let server = TestServer::start_with(|c| c.max_transfers = 1, &users()).await;
    std::fs::create_dir_all(server.home("alice")).unwrap();
    std::fs::write(server.home("alice").join("f.txt"), b"x").unwrap();
    std::fs::write(server.home("alice").join("big.bin"), pattern(16 << 20)).unwrap();
    // A download the client stops reading holds the one slot; its first byte shows that it
    // has taken it (the slot is taken before the file is read).
    let mut stalled = server.raw_login("alice").await;
    let mut data = stalled.epsv(server.addr).await;
    stalled.expect("RETR big.bin", 150).await;
    let mut first = [0u8; 1];
    tokio::io::AsyncReadExt::read_exact(&mut data, &mut first)
        .await
        .unwrap();
    let mut raw = server.raw_login("alice").await;
    let text = raw.expect("HASH f.txt", 450).await;
    assert!(text.contains("too many transfers"), "{text}");
    raw.expect("XCRC f.txt", 450).await;
}

// HOST

#[tokio::test]
async fn host_before_login_is_accepted_and_written_into_the_audit_records() {
    let capture = AuditCapture::default();
    let server = TestServer::start_logging_to(|_| {}, &users(), capture.logger()).await;
    let mut raw = server.raw().await;
    let text = raw.expect("HOST FTP.Example.COM", 220).await;
    assert_eq!(text, "220 Host accepted\r\n");
    raw.expect("USER alice", 331).await;
    raw.expect(format!("PASS {PASSWORD}"), 230).await;
    raw.expect("TYPE I", 200).await;
    let data = raw.epsv(server.addr).await;
    raw.expect("STOR up.txt", 150).await;
    drop(data);
    assert_eq!(raw.reply().await.0, 226);
    list(&server, &mut raw, "/").await;
    raw.expect("QUIT", 221).await;

    let uploads = capture.of("upload");
    assert_eq!(uploads.len(), 1, "{uploads:?}");
    assert_eq!(uploads[0]["host"], "ftp.example.com");
    let listings = capture.of("ls");
    assert!(!listings.is_empty());
    assert!(
        listings
            .iter()
            .all(|r| r.get("host").map(String::as_str) == Some("ftp.example.com")),
        "{listings:?}"
    );
    // A session without HOST has no host field.
    let mut other = server.raw_login("reader").await;
    other.expect("SIZE /nothing", 550).await;
    let sizes = capture.of("size");
    assert!(!sizes.is_empty());
    assert!(sizes.iter().all(|r| !r.contains_key("host")), "{sizes:?}");
}

#[tokio::test]
async fn host_after_login_is_a_bad_sequence() {
    let server = server().await;
    let mut raw = server.raw_login("alice").await;
    raw.expect("HOST ftp.example.com", 503).await;
    raw.expect("NOOP", 200).await;
}

#[tokio::test]
async fn host_names_refuses_other_names_with_504_and_the_client_may_retry() {
    let server = TestServer::start_with(
        |c| c.host_names = vec!["ftp.example.com".to_owned(), "127.0.0.1".to_owned()],
        &users(),
    )
    .await;
    let mut raw = server.raw().await;
    let text = raw.expect("HOST other.example.org", 504).await;
    assert_eq!(text, "504 Unknown host\r\n");
    raw.expect("HOST", 501).await;
    raw.expect("HOST ftp.example.com.", 220).await;
    raw.expect("USER alice", 331).await;
    raw.expect(format!("PASS {PASSWORD}"), 230).await;

    let mut by_address = server.raw().await;
    by_address.expect("HOST [127.0.0.1]", 220).await;
}

#[tokio::test]
async fn added_commands_need_a_login_except_host() {
    let server = TestServer::start_with(
        |_| {},
        &[TestUser {
            name: "alice",
            permissions: ALL,
            extra: "",
        }],
    )
    .await;
    let mut raw = server.raw().await;
    for command in [
        "MFMT 20200615120000 f.txt",
        "SITE CHMOD 644 f.txt",
        "HASH f.txt",
        "OPTS HASH MD5",
        "XCRC f.txt",
    ] {
        raw.expect(command, 530).await;
    }
    raw.expect("HOST ftp.example.com", 220).await;
}
