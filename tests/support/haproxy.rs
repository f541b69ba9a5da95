//! A real HAProxy (`haproxy -db`, from Debian's package) in front of one or more Ferry
//! instances, configured as the README's "Behind a load balancer" section and
//! `docker/scale/haproxy.cfg` do: `mode tcp`, the control port balanced over the instances
//! with `send-proxy-v2`, and each instance's passive range forwarded port for port to it.

use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tempfile::TempDir;

/// One Ferry instance behind the balancer.
pub struct Backend {
    /// Its control listener.
    pub control: SocketAddr,
    /// Its passive ports: the balancer listens on the same numbers and forwards each to it.
    pub passive: RangeInclusive<u16>,
    /// Its admin listener: when given, HAProxy checks `/ready` there every 500 ms and sends
    /// sessions only to an instance that answers 200.
    pub admin: Option<SocketAddr>,
}

/// A running HAProxy, stopped when dropped.
pub struct Haproxy {
    child: Child,
    /// The control port's frontend: where clients connect.
    pub control: SocketAddr,
    log: PathBuf,
    _dir: TempDir,
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Haproxy {
    /// Starts HAProxy on `balancer` in front of `backends` (balanced round robin, so that
    /// consecutive sessions alternate), connecting to them from `balancer` (the address Ferry's
    /// `proxy_from` names). Returns once every port listens.
    pub async fn start(balancer: IpAddr, backends: &[Backend]) -> Haproxy {
        let binary = haproxy_binary();
        let dir = tempfile::tempdir().expect("temp dir");
        let control = SocketAddr::new(balancer, free_port(&[balancer]));
        let mut config = format!(
            "global\n    maxconn 1024\n    log stdout format raw local0\n\
             defaults\n    mode tcp\n    log global\n    option tcplog\n    option log-health-checks\n    timeout connect 5s\n    timeout client 120s\n    timeout server 120s\n\
             frontend ftp_control\n    bind {control}\n    default_backend ferry_control\n\
             backend ferry_control\n    balance roundrobin\n    option httpchk GET /ready\n    http-check expect status 200\n"
        );
        for (index, backend) in backends.iter().enumerate() {
            // `port`/`addr` on the check: it goes to the admin listener, without a PROXY header.
            let check = match backend.admin {
                Some(admin) => format!(
                    " check addr {} port {} inter 500ms fall 1 rise 1",
                    admin.ip(),
                    admin.port()
                ),
                None => String::new(),
            };
            config.push_str(&format!(
                "    server ferry{index} {} send-proxy-v2 source {balancer}{check}\n",
                backend.control
            ));
        }
        for (index, backend) in backends.iter().enumerate() {
            config.push_str(&format!(
                "frontend ftp_passive{index}\n    bind {balancer}:{}-{}\n    default_backend ferry_passive{index}\n\
                 backend ferry_passive{index}\n    server ferry{index} {} send-proxy-v2 source {balancer}\n",
                backend.passive.start(),
                backend.passive.end(),
                backend.control.ip(),
            ));
        }
        let config_file = dir.path().join("haproxy.cfg");
        std::fs::write(&config_file, config).expect("write haproxy.cfg");
        let log = dir.path().join("haproxy.log");
        let log_file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(&binary)
            .arg("-db")
            .arg("-f")
            .arg(&config_file)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("log file"))
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|error| panic!("could not run {}: {error}", binary.display()));
        let mut haproxy = Haproxy {
            child,
            control,
            log,
            _dir: dir,
        };
        // HAProxy binds every port before it serves any: it listens once the last one does.
        let mut last = control;
        if let Some(backend) = backends.last() {
            last = SocketAddr::new(balancer, *backend.passive.end());
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(last).await.is_err() {
            if let Ok(Some(status)) = haproxy.child.try_wait() {
                panic!("haproxy exited ({status}): {}", haproxy.log_text());
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "haproxy did not listen within 20 s: {}",
                haproxy.log_text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        haproxy
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn haproxy_binary() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|dir| dir.join("haproxy"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "haproxy is not installed: the load-balancer tests run a real HAProxy in front \
                 of Ferry; install it with `apt-get install haproxy` (scripts/ci-haproxy.sh does)"
            )
        })
}

/// A free port on every address in `ips`.
pub fn free_port(ips: &[IpAddr]) -> u16 {
    *free_ports(ips, 1, 27000).start()
}

/// `count` consecutive ports, from `start` up, that are free on every address in `ips` (below
/// Linux's ephemeral ports, so that no outgoing connection takes one meanwhile).
pub fn free_ports(ips: &[IpAddr], count: u16, start: u16) -> RangeInclusive<u16> {
    let free = |port: u16| {
        ips.iter()
            .all(|ip| std::net::TcpListener::bind((*ip, port)).is_ok())
    };
    (start..start + 3000)
        .step_by(usize::from(count))
        .map(|first| first..=first + count - 1)
        .find(|range| range.clone().all(free))
        .expect("a free range of ports")
}
