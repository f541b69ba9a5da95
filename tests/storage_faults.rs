//! The filesystem misbehaving under a session: a full disk, a home removed while its user is
//! logged in, a file deleted while it is downloaded. Clear replies, no panic, nothing lost.

mod common;
mod support;

use common::{TestServer, names_on_disk, pattern};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use support::transfers::{retrieve, store};
use tokio::io::AsyncReadExt;

/// A tmpfs mounted for the length of a test; unmounted when dropped, also when the test fails.
struct Tmpfs {
    mount_point: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (mount's syntax, e.g. "2m") on `dir`; the error explains why
    /// not (tests usually need root, or CAP_SYS_ADMIN, for this).
    fn mount(dir: &Path, size: &str) -> std::io::Result<Tmpfs> {
        let target = CString::new(dir.as_os_str().as_bytes())?;
        let options = CString::new(format!("size={size}"))?;
        // SAFETY: every pointer is a valid NUL-terminated string for the duration of the call.
        let mounted = unsafe {
            libc::mount(
                c"tmpfs".as_ptr(),
                target.as_ptr(),
                c"tmpfs".as_ptr(),
                0,
                options.as_ptr().cast(),
            )
        };
        if mounted != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Tmpfs {
            mount_point: dir.to_path_buf(),
        })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let Ok(target) = CString::new(self.mount_point.as_os_str().as_bytes()) else {
            return;
        };
        // SAFETY: valid NUL-terminated path. MNT_DETACH: the server may still hold the home
        // open; the mount goes away once it lets go.
        unsafe {
            libc::umount2(target.as_ptr(), libc::MNT_DETACH);
        }
    }
}

#[tokio::test]
async fn disk_full_mid_upload_gets_452_and_keeps_the_previous_version_and_the_space() {
    let server = TestServer::start().await;
    let home = server.home("alice");
    std::fs::create_dir_all(&home).unwrap();
    let disk = match Tmpfs::mount(&home, "2m") {
        Ok(disk) => disk,
        Err(error) => {
            eprintln!("SKIPPED disk_full_mid_upload: cannot mount a 2 MiB tmpfs here ({error})");
            return;
        }
    };
    std::fs::create_dir_all(server.home("reader")).unwrap();
    std::fs::write(server.home("reader").join("elsewhere.txt"), b"untouched").unwrap();
    std::fs::write(home.join("report.txt"), b"previous version").unwrap();
    let mut raw = server.raw_login("alice").await;

    let too_big = pattern(4 * 1024 * 1024);
    let code = store(&mut raw, server.addr, "report.txt", &too_big).await;
    assert_eq!(code, 452, "a full disk is reported as such");
    assert_eq!(
        std::fs::read(home.join("report.txt")).unwrap(),
        b"previous version"
    );
    assert_eq!(
        names_on_disk(&home),
        ["report.txt"],
        "the temporary is gone"
    );
    // Its space is free again: a file that fits is stored.
    let fits = pattern(1024 * 1024);
    assert_eq!(store(&mut raw, server.addr, "fits.bin", &fits).await, 226);
    assert!(std::fs::read(home.join("fits.bin")).unwrap() == fits);
    raw.expect("NOOP", 200).await;
    assert_eq!(
        std::fs::read(server.home("reader").join("elsewhere.txt")).unwrap(),
        b"untouched"
    );
    drop(raw);
    server.stop().await.expect("clean stop, no panic");
    drop(disk);
}

#[tokio::test]
async fn a_home_removed_under_a_logged_in_user_gets_550s_and_leaves_others_alone() {
    let server = TestServer::start().await;
    std::fs::create_dir_all(server.home("reader")).unwrap();
    std::fs::write(server.home("reader").join("doc.txt"), b"still here").unwrap();
    let mut alice = server.raw_login("alice").await;
    std::fs::write(server.home("alice").join("a.txt"), b"doomed").unwrap();
    std::fs::remove_dir_all(server.home("alice")).unwrap();

    assert_eq!(
        store(&mut alice, server.addr, "new.txt", b"data").await,
        550
    );
    let (data, code) = retrieve(&mut alice, server.addr, "a.txt").await;
    assert!(data.is_empty());
    assert_eq!(code, 550);
    alice.expect("MKD sub", 550).await;
    alice.expect("CWD sub", 550).await;
    alice.expect("SIZE a.txt", 550).await;
    // A removed directory lists as empty, as `ls` in a removed working directory does.
    let listing = alice.epsv(server.addr).await;
    alice.expect("NLST", 150).await;
    assert!(common::read_all(listing).await.is_empty());
    assert_eq!(alice.reply().await.0, 226);
    alice.expect("NOOP", 200).await;
    assert!(
        !server.home("alice").exists(),
        "nothing recreated it behind the operator's back"
    );

    let mut reader = server.raw_login("reader").await;
    let (doc, code) = retrieve(&mut reader, server.addr, "doc.txt").await;
    assert_eq!((doc.as_slice(), code), (&b"still here"[..], 226));
    // Logging in again recreates the home, as for a new user.
    let mut again = server.raw_login("alice").await;
    assert_eq!(
        store(&mut again, server.addr, "new.txt", b"data").await,
        226
    );
    server.stop().await.expect("clean stop, no panic");
}

#[tokio::test]
async fn a_file_deleted_while_downloading_is_still_sent_whole() {
    let server = TestServer::start().await;
    let home = server.home("alice");
    std::fs::create_dir_all(&home).unwrap();
    let content = pattern(8 * 1024 * 1024);
    std::fs::write(home.join("big.bin"), &content).unwrap();
    let mut downloader = server.raw_login("alice").await;
    let mut data = downloader.epsv(server.addr).await;
    downloader.expect("RETR big.bin", 150).await;
    let mut received = vec![0u8; 1024 * 1024];
    data.read_exact(&mut received).await.expect("first MiB");

    let mut deleter = server.raw_login("alice").await;
    deleter.expect("DELE big.bin", 250).await;
    assert!(!home.join("big.bin").exists());

    data.read_to_end(&mut received).await.expect("the rest");
    assert_eq!(downloader.reply().await.0, 226);
    assert!(received == content, "the download is whole");
    downloader.expect("SIZE big.bin", 550).await;
    server.stop().await.expect("clean stop, no panic");
}

/// A FIFO someone with shell access left in a home: opening it would wait for the other end
/// forever, holding a blocking-pool thread and the session. RETR and a resumed STOR (which
/// writes into the existing file) get an error at once, and the session goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_in_the_home_is_refused_without_hanging() {
    let server = TestServer::start().await;
    let home = server.home("alice");
    std::fs::create_dir_all(&home).unwrap();
    let fifo = CString::new(home.join("pipe").as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0, "mkfifo");
    std::fs::write(home.join("plain.txt"), b"still served").unwrap();

    let mut raw = server.raw_login("alice").await;
    for (rest, command) in [(None, "RETR pipe"), (Some("REST 5"), "STOR pipe")] {
        if let Some(rest) = rest {
            raw.expect(rest, 350).await;
        }
        let _data = raw.epsv(server.addr).await;
        raw.send(command).await;
        let reply = tokio::time::timeout(std::time::Duration::from_secs(10), async {
            let mut reply = raw.reply().await;
            if reply.0 == 150 {
                reply = raw.reply().await;
            }
            reply
        })
        .await
        .unwrap_or_else(|_| {
            // Open the other end so the server's stuck open() returns: otherwise the
            // runtime's shutdown would wait for that thread and the test would hang.
            let _other_end = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(home.join("pipe"));
            panic!("{command} on a FIFO hung")
        });
        assert!(reply.0 == 550 || reply.0 == 451, "{command}: {reply:?}");
    }
    let data = raw.epsv(server.addr).await;
    raw.expect("RETR plain.txt", 150).await;
    assert_eq!(common::read_all(data).await, b"still served");
    assert_eq!(raw.reply().await.0, 226);
}
