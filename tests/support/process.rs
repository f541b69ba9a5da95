//! The real `ferry` binary as a child process: for what needs a process of its own (kill -9,
//! the server's own memory use, the log exactly as an operator sees it).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;
use tempfile::TempDir;
use tokio::sync::watch;

/// How long the binary gets to start listening (a cold debug build on a busy 2-core machine).
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running `ferry serve`, killed (SIGKILL) when dropped.
pub struct FerryProcess {
    child: Child,
    pub addr: SocketAddr,
    /// Every line the server has logged (JSON, one object per line), as it arrives.
    log: watch::Receiver<Vec<String>>,
}

impl FerryProcess {
    /// Starts `ferry serve` on an ephemeral loopback port with `dir/root` as root and
    /// `dir/users.toml` as users file (both prepared by the caller), JSON logs, and `extra`
    /// flags. It runs in `dir`, with no `FERRY_*` variables, so no config file applies.
    pub async fn start(dir: &Path, extra: &[&str]) -> FerryProcess {
        let root: PathBuf = dir.join("root");
        let users = dir.join("users.toml");
        let mut args: Vec<String> = vec![
            "--bind".into(),
            "127.0.0.1:0".into(),
            "--root".into(),
            root.to_string_lossy().into_owned(),
            "--users".into(),
            users.to_string_lossy().into_owned(),
        ];
        args.extend(extra.iter().map(|arg| arg.to_string()));
        FerryProcess::start_with(dir, &args).await
    }

    /// Starts `ferry serve ARGS --log-format json` in `dir`, with no `FERRY_*` variables: the
    /// caller gives every setting (bind, root, users...) as flags.
    pub async fn start_with(dir: &Path, args: &[String]) -> FerryProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ferry"))
            .current_dir(dir)
            .env_clear()
            .arg("serve")
            .args(["--log-format", "json"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the ferry binary");
        let stderr = child.stderr.take().expect("piped stderr");
        let (lines, log) = watch::channel(Vec::new());
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                lines.send_modify(|all| all.push(line));
            }
        });
        let mut process = FerryProcess {
            child,
            addr: "127.0.0.1:0".parse().expect("address"),
            log,
        };
        let listening = process
            .wait_for_log(START_TIMEOUT, |line| line.contains("\"ferry listening\""))
            .await;
        process.addr = json_field(&listening, "bind")
            .and_then(|bind| bind.parse().ok())
            .unwrap_or_else(|| panic!("no bind address in {listening}"));
        process
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server's resident memory now, in KiB (VmRSS).
    pub fn rss_kib(&self) -> u64 {
        rss_kib_of(self.pid()).expect("VmRSS of a running ferry")
    }

    /// Starts sampling the server's resident memory (see [`PeakRss`]).
    pub fn watch_peak_rss(&self) -> PeakRss {
        PeakRss::start(self.pid())
    }

    /// Waits for the first log line matching `matches` (including lines already logged).
    pub async fn wait_for_log(
        &mut self,
        timeout: Duration,
        matches: impl Fn(&str) -> bool,
    ) -> String {
        let found = tokio::time::timeout(timeout, async {
            // The reader ends with the process: then no line will match.
            let lines = self
                .log
                .wait_for(|lines| lines.iter().any(|line| matches(line)))
                .await
                .ok()?;
            lines.iter().find(|line| matches(line)).cloned()
        })
        .await;
        match found {
            Ok(Some(line)) => line,
            _ => panic!(
                "no matching log line within {timeout:?}; log so far:\n{}",
                self.log.borrow().join("\n")
            ),
        }
    }

    /// The log lines so far.
    pub fn log_lines(&self) -> Vec<String> {
        self.log.borrow().clone()
    }

    /// SIGKILL, as a crash or the OOM killer would: no cleanup of any kind runs.
    pub fn kill9(&mut self) {
        self.child.kill().expect("SIGKILL ferry");
        self.child.wait().expect("reap ferry");
    }
}

impl Drop for FerryProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A temporary directory laid out for [`FerryProcess::start`]: `root/` and `users.toml` with
/// the harness's default users.
pub fn prepared_dir() -> TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(dir.path().join("root")).expect("create root");
    crate::common::write_users_file(
        &dir.path().join("users.toml"),
        &crate::common::default_users(),
    );
    dir
}

/// The resident memory of process `pid` in KiB; None once it has exited.
fn rss_kib_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
}

/// How often [`PeakRss`] looks: often enough to catch a burst that lasts a few tens of ms.
const RSS_SAMPLE_INTERVAL: Duration = Duration::from_millis(5);

/// The highest resident memory of a process seen between `start` and `stop`, sampled from a
/// thread of its own so that a busy test runtime cannot make it miss the peak.
pub struct PeakRss {
    stop: Arc<AtomicBool>,
    sampler: JoinHandle<u64>,
}

impl PeakRss {
    fn start(pid: u32) -> PeakRss {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let sampler = std::thread::spawn(move || {
            let mut peak = 0;
            while !stopped.load(Ordering::Relaxed) {
                peak = peak.max(rss_kib_of(pid).unwrap_or(0));
                std::thread::sleep(RSS_SAMPLE_INTERVAL);
            }
            peak.max(rss_kib_of(pid).unwrap_or(0))
        });
        PeakRss { stop, sampler }
    }

    /// Stops sampling; the peak in KiB.
    pub fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.sampler.join().expect("sampler thread")
    }
}

/// The string value of `"key":"..."` in a JSON log line (values Ferry logs have no escapes).
pub fn json_field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let start = line.find(&format!("\"{key}\":\""))? + key.len() + 4;
    let rest = line.get(start..)?;
    rest.find('"').and_then(|end| rest.get(..end))
}
