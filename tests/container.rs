//! The container image without Docker: `docker/entrypoint.sh` and the `ferry` binary run with
//! exactly the environment `docker/Dockerfile` sets, except that the container's directories
//! become temporary ones and its listeners bind loopback with ephemeral ports.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Cursor};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;
use suppaftp::tokio::AsyncFtpStream;
use tempfile::TempDir;

const DOCKERFILE: &str = include_str!("../docker/Dockerfile");
const ENTRYPOINT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docker/entrypoint.sh");
const FERRY: &str = env!("CARGO_BIN_EXE_ferry");
/// The image's volumes, which the tests replace by temporary directories.
const CONTAINER_DIRS: [&str; 2] = ["/data", "/etc/ferry"];
/// How long the server gets to start or stop before the test fails.
const PROCESS_DEADLINE: Duration = Duration::from_secs(30);

/// The `ENV` instructions of the Dockerfile, continuation lines joined.
fn dockerfile_env() -> HashMap<String, String> {
    instruction("ENV")
        .split_whitespace()
        .filter(|word| *word != "\\")
        .filter_map(|pair| pair.split_once('='))
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect()
}

/// The arguments of one Dockerfile instruction, continuation lines joined.
fn instruction(name: &str) -> String {
    let joined = DOCKERFILE.replace("\\\n", " ");
    joined
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("the Dockerfile has no {name}"))
        .to_owned()
}

/// The HEALTHCHECK command, exec form, as arguments.
fn healthcheck_command() -> Vec<String> {
    let healthcheck = instruction("HEALTHCHECK");
    let (_, array) = healthcheck
        .split_once("CMD ")
        .expect("HEALTHCHECK ... CMD [..]");
    serde_json::from_str(array.trim()).expect("exec-form HEALTHCHECK command")
}

/// A stand-in for the container: temporary volumes and the image's environment.
struct Container {
    dir: TempDir,
    env: HashMap<String, String>,
}

impl Container {
    fn new() -> Container {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut env = dockerfile_env();
        for volume in CONTAINER_DIRS {
            std::fs::create_dir_all(dir.path().join(&volume[1..])).expect("volume dir");
        }
        for value in env.values_mut() {
            for volume in CONTAINER_DIRS {
                if let Some(rest) = value.strip_prefix(volume) {
                    *value = format!("{}{rest}", dir.path().join(&volume[1..]).display());
                }
            }
        }
        Container { dir, env }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn users_file(&self) -> PathBuf {
        PathBuf::from(&self.env["FERRY_USERS"])
    }

    /// Binds loopback instead of every interface, on ports the kernel picks.
    fn on_loopback(mut self) -> Container {
        for key in ["FERRY_BIND", "FERRY_ADMIN_BIND"] {
            let value = self.env.get_mut(key).expect("the Dockerfile sets it");
            assert!(value.starts_with("0.0.0.0:"), "{key}={value}");
            *value = "127.0.0.1:0".to_owned();
        }
        self
    }

    /// The entrypoint with the image's environment plus `extra`, in a working directory
    /// without `config/ferry.toml` (the image's is `/`), so nothing but the environment counts.
    fn entrypoint(&self, args: &[&str], extra: &[(&str, &str)]) -> Command {
        let bin_dir = Path::new(FERRY).parent().expect("binary directory");
        let mut command = Command::new("sh");
        command
            .arg(ENTRYPOINT)
            .args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", format!("{}:/usr/bin:/bin", bin_dir.display()))
            .envs(&self.env)
            .envs(extra.iter().copied())
            .stdin(Stdio::null());
        command
    }

    /// Runs the entrypoint to its end: exit code and standard error.
    fn run(&self, args: &[&str], extra: &[(&str, &str)]) -> (Option<i32>, String) {
        let output = self
            .entrypoint(args, extra)
            .output()
            .expect("run the entrypoint");
        (output.status.code(), text(&output.stderr))
    }
}

/// A server process; killed if the test fails before stopping it.
struct Server {
    child: Child,
    ftp: SocketAddr,
    admin: SocketAddr,
}

impl Server {
    /// Starts `command` and reads its JSON log until both listeners have said where they are.
    fn start(mut command: Command) -> Server {
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run the entrypoint");
        let stderr = child.stderr.take().expect("stderr");
        let (lines, log) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let (mut ftp, mut admin) = (None, None);
        while ftp.is_none() || admin.is_none() {
            let line = log
                .recv_timeout(PROCESS_DEADLINE)
                .expect("the server logs where it listens");
            let Ok(record) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            let bind = record["bind"].as_str().and_then(|bind| bind.parse().ok());
            match record["msg"].as_str() {
                Some("ferry listening") => ftp = bind,
                Some("admin listening") => admin = bind,
                _ => {}
            }
        }
        Server {
            child,
            ftp: ftp.expect("FTP address"),
            admin: admin.expect("admin address"),
        }
    }

    /// SIGTERM, then the exit status.
    fn stop(mut self) -> ExitStatus {
        let pid = i32::try_from(self.child.id()).expect("pid fits");
        // SAFETY: signalling our own child, which has not been reaped yet.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        wait_with_deadline(&mut self.child)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_with_deadline(child: &mut Child) -> ExitStatus {
    let (done, status) = mpsc::channel();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let _ = done.send(child.wait());
        });
        status
            .recv_timeout(PROCESS_DEADLINE)
            .expect("the server exits in time")
            .expect("wait for the server")
    })
}

/// Runs the Dockerfile's HEALTHCHECK command against `admin`, instead of the image's port.
fn run_healthcheck(admin: SocketAddr) -> Output {
    let command = healthcheck_command();
    assert_eq!(command[0], "ferry");
    let args: Vec<String> = command[1..]
        .iter()
        .map(|arg| arg.replace("127.0.0.1:9090", &admin.to_string()))
        .collect();
    Command::new(FERRY)
        .args(&args)
        .output()
        .expect("run the health check")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn image_environment_alone_serves_the_first_user_and_answers_the_healthcheck() {
    let container = Container::new().on_loopback();
    let password = "a long container password";
    let server = Server::start(container.entrypoint(
        &[],
        &[
            ("FERRY_INIT_USER", "alice"),
            ("FERRY_INIT_PASSWORD", password),
        ],
    ));

    let mut ftp = AsyncFtpStream::connect(server.ftp).await.expect("connect");
    ftp.set_mode(suppaftp::Mode::ExtendedPassive);
    ftp.login("alice", password)
        .await
        .expect("the first user logs in");
    ftp.transfer_type(suppaftp::types::FileType::Binary)
        .await
        .expect("TYPE I");
    let data = b"shipped in a container".to_vec();
    ftp.put_file("hello.txt", &mut Cursor::new(data.clone()))
        .await
        .expect("upload");
    assert_eq!(
        std::fs::read(container.data().join("alice/hello.txt")).expect("file in the data volume"),
        data
    );
    ftp.quit().await.expect("quit");

    let healthy = run_healthcheck(server.admin);
    assert!(healthy.status.success(), "{}", text(&healthy.stderr));
    assert!(text(&healthy.stdout).contains("\"status\":\"ok\""));

    let admin = server.admin;
    assert!(server.stop().success(), "SIGTERM is a clean exit");
    let unhealthy = run_healthcheck(admin);
    assert_eq!(unhealthy.status.code(), Some(1));
    assert!(text(&unhealthy.stderr).starts_with("ferry health: could not connect"));
}

#[test]
fn demo_password_is_refused_on_the_image_bind_and_the_users_file_is_left_alone() {
    let container = Container::new();
    assert_eq!(container.env["FERRY_BIND"], "0.0.0.0:2121");
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/config/users.toml");
    std::fs::copy(shipped, container.users_file()).expect("copy the demo users file");
    let before = std::fs::read(container.users_file()).expect("read");
    // Ferry checks passwords before it binds anything, so this opens no public socket.
    let (code, stderr) = container.run(
        &[],
        &[
            ("FERRY_INIT_USER", "bob"),
            ("FERRY_INIT_PASSWORD", "secret"),
        ],
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("still have the published demo password"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read(container.users_file()).expect("read"),
        before,
        "an existing users file is not touched"
    );
}

#[test]
fn without_a_users_file_or_a_first_user_the_entrypoint_says_what_to_set() {
    let container = Container::new().on_loopback();
    let (code, stderr) = container.run(&["serve"], &[("FERRY_INIT_USER", "alice")]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("set FERRY_INIT_USER and FERRY_INIT_PASSWORD"),
        "{stderr}"
    );
    assert!(!container.users_file().exists());
}

#[test]
fn first_user_password_can_come_from_a_secret_file() {
    let container = Container::new().on_loopback();
    let secret = container.dir.path().join("secret");
    std::fs::write(&secret, "from a docker secret\n").expect("write secret");
    // A bad value stops `ferry serve` right after the user is created: no server to stop.
    let (code, stderr) = container.run(
        &[],
        &[
            ("FERRY_INIT_USER", "carol"),
            ("FERRY_INIT_PASSWORD_FILE", secret.to_str().expect("utf-8")),
            ("FERRY_MAX_SESSIONS", "none"),
        ],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("FERRY_MAX_SESSIONS"), "{stderr}");
    let users =
        ferry::accounts::users::UsersFile::load(&container.users_file()).expect("users file");
    let carol = users.get("carol").expect("carol was added");
    assert!(ferry::accounts::password::verify_password(
        &carol.password_hash,
        "from a docker secret"
    ));
}
