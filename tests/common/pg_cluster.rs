//! A PostgreSQL cluster of a test's own, in a temporary directory on a free loopback port,
//! for what the shared server cannot be made to do (serve TLS with a certificate the test
//! made). Uses the server binaries `scripts/ci-postgres.sh` installs; run as root, it runs
//! them as `postgres` (initdb refuses root).

#![allow(dead_code)] // each test binary that includes this uses a part of it

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct OwnCluster {
    pub port: u16,
    dir: tempfile::TempDir,
    bin: PathBuf,
}

/// The newest installed server's binaries (`/usr/lib/postgresql/VERSION/bin`).
fn server_binaries() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|entry| entry.path().join("bin"))
                .filter(|bin| bin.join("initdb").exists())
                .collect()
        })
        .unwrap_or_default();
    versions.sort_by_key(|bin| {
        bin.parent()
            .and_then(Path::file_name)
            .and_then(|name| name.to_str())
            .and_then(|name| name.parse::<u32>().ok())
    });
    versions.pop().expect(
        "no PostgreSQL server binaries under /usr/lib/postgresql: run `bash scripts/ci-postgres.sh`",
    )
}

fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Runs `program args` as the `postgres` user when root, else as ourselves.
fn run(program: &Path, args: &[&str]) {
    let mut command = if running_as_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    };
    let output = command
        .args(args)
        .output()
        .expect("run a PostgreSQL binary");
    assert!(
        output.status.success(),
        "{} {args:?}: {}{}",
        program.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

impl OwnCluster {
    /// Starts a cluster whose superuser `ferry` needs no password (trust), serving TLS with
    /// `cert_pem` and `key_pem` (and plaintext too).
    pub fn start_with_tls(cert_pem: &str, key_pem: &str) -> OwnCluster {
        let bin = server_binaries();
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        if running_as_root() {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))
                .expect("open the directory to postgres");
        }
        let data_arg = data.to_str().expect("utf-8 path");
        run(
            &bin.join("initdb"),
            &["-D", data_arg, "-U", "ferry", "-A", "trust", "--no-sync"],
        );
        for (name, pem) in [("server.crt", cert_pem), ("server.key", key_pem)] {
            let path = data.join(name);
            std::fs::write(&path, pem).expect("write TLS file");
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
            if running_as_root() {
                let owner = std::fs::metadata(&data).expect("data dir");
                use std::os::unix::fs::MetadataExt;
                std::os::unix::fs::chown(&path, Some(owner.uid()), Some(owner.gid()))
                    .expect("chown");
            }
        }
        let settings = format!(
            "\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
             ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\nfsync = off\n",
            dir.path().display()
        );
        let conf = data.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf).expect("read postgresql.conf");
        text.push_str(&settings);
        std::fs::write(&conf, text).expect("write postgresql.conf");
        let log = dir.path().join("log");
        run(
            &bin.join("pg_ctl"),
            &[
                "-D",
                data_arg,
                "-l",
                log.to_str().expect("utf-8"),
                "-w",
                "start",
            ],
        );
        OwnCluster { port, dir, bin }
    }

    /// Writes `pem` beside the cluster and returns its path.
    pub fn write(&self, name: &str, pem: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, pem).expect("write PEM");
        path
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        run(
            &self.bin.join("pg_ctl"),
            &[
                "-D",
                data.to_str().unwrap_or_default(),
                "-m",
                "immediate",
                "stop",
            ],
        );
    }
}
