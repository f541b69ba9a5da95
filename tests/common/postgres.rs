//! A real PostgreSQL for the accounts tests: the server named by `FERRY_TEST_POSTGRES`
//! (default `postgres://ferry:ferry@127.0.0.1:5432/postgres`, a superuser; see
//! `scripts/ci-postgres.sh`), and a database of its own for each test, dropped afterwards.

#![allow(dead_code)] // each test binary that includes this uses a part of it

use crate::common::{PASSWORD, TestServer};
use ferry::config::{Config, UsersDatabase};
use std::sync::atomic::{AtomicU64, Ordering};
use tokio_postgres::{Client, NoTls};

const DEFAULT_SERVER: &str = "postgres://ferry:ferry@127.0.0.1:5432/postgres";

/// The server URL, with its password.
fn server_url() -> url::Url {
    let text = std::env::var("FERRY_TEST_POSTGRES").unwrap_or_else(|_| DEFAULT_SERVER.to_owned());
    url::Url::parse(&text).unwrap_or_else(|error| panic!("FERRY_TEST_POSTGRES {text:?}: {error}"))
}

/// Connects to database `dbname` of the test server as its superuser.
pub async fn admin_client(dbname: &str) -> Client {
    let mut url = server_url();
    url.set_path(dbname);
    let (client, connection) = tokio_postgres::connect(url.as_str(), NoTls)
        .await
        .unwrap_or_else(|error| {
            panic!(
                "PostgreSQL is not reachable at {} ({error}). Start it and create the test \
                 role: `bash scripts/ci-postgres.sh` (or set FERRY_TEST_POSTGRES)",
                url.host_str().unwrap_or_default()
            )
        });
    tokio::spawn(connection);
    client
}

/// A database of this test's own, dropped (with any connection left) when this is dropped.
pub struct TestDatabase {
    pub name: String,
    /// Ferry's view: the URL without password, the password set as PGPASSWORD would.
    pub users: UsersDatabase,
    /// The test's own connection to it, for SQL the test runs.
    pub client: Client,
    /// That connection's backend, spared by [`TestDatabase::make_unreachable`].
    client_pid: i32,
}

impl TestDatabase {
    /// A database with Ferry's schema in place, so that the test can add accounts before a
    /// server starts.
    pub async fn with_schema() -> TestDatabase {
        let mut db = TestDatabase::create().await;
        ferry::accounts::postgres::schema::migrate(&mut db.client, &db.users)
            .await
            .expect("migrate");
        db
    }

    /// An empty database.
    pub async fn create() -> TestDatabase {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "ferry_test_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let admin = admin_client("postgres").await;
        // Separate statements: several in one query would be one transaction, which neither
        // may run in.
        for statement in [
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            format!("CREATE DATABASE {name}"),
        ] {
            admin
                .batch_execute(&statement)
                .await
                .unwrap_or_else(|error| panic!("{statement}: {error}"));
        }
        let server = server_url();
        let password = server.password().unwrap_or_default().to_owned();
        let url = format!(
            "postgres://{}@{}:{}/{name}?sslmode=disable",
            server.username(),
            server.host_str().unwrap_or("127.0.0.1"),
            server.port().unwrap_or(5432)
        );
        let users = UsersDatabase::parse(&url)
            .expect("a postgres URL")
            .expect("valid URL")
            .with_password(None, &|_| Some(password.clone()))
            .expect("no file to read");
        let client = admin_client(&name).await;
        let client_pid: i32 = client
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .and_then(|row| row.try_get(0))
            .expect("backend pid");
        TestDatabase {
            name,
            users,
            client,
            client_pid,
        }
    }

    /// The URL `ferry user --users` takes (no password: it goes in PGPASSWORD).
    pub fn url(&self) -> String {
        format!("{}?sslmode=disable", self.users)
    }

    pub fn password(&self) -> String {
        self.users
            .password
            .as_ref()
            .map(|password| password.expose().to_owned())
            .unwrap_or_default()
    }

    /// Sets `config` to take its accounts from this database.
    pub fn configure(&self, config: &mut Config) {
        config.users_database = Some(self.users.clone());
    }

    /// Starts a server on this database; `configure` may change any other setting.
    pub async fn start_server(&self, configure: impl FnOnce(&mut Config)) -> TestServer {
        TestServer::start_with(
            |config| {
                self.configure(config);
                configure(config);
            },
            &[],
        )
        .await
    }

    /// Adds `name` with [`PASSWORD`] by SQL; `columns` sets other columns (`home`, ...).
    pub async fn add_user(&self, name: &str, permissions: &[&str], columns: &str) {
        let hash = ferry::accounts::password::hash_password(PASSWORD).expect("hash");
        let permissions: Vec<String> = permissions.iter().map(|p| p.to_string()).collect();
        self.client
            .execute(
                "INSERT INTO ferry_users (name, password_hash, home, permissions) VALUES ($1, $2, $1, $3)",
                &[&name, &hash, &permissions],
            )
            .await
            .expect("insert user");
        if !columns.is_empty() {
            self.sql(&format!(
                "UPDATE ferry_users SET {columns} WHERE name = '{name}'"
            ))
            .await;
        }
    }

    /// Runs the built `ferry user ARGS --users DATABASE` with `stdin`; panics unless it succeeds.
    pub async fn ferry_user(&self, args: &[&str], stdin: &str) -> String {
        use std::io::Write;
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"));
        command
            .arg("user")
            .args(args)
            .args(["--users", &self.url()])
            .env("PGPASSWORD", self.password())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let stdin = stdin.to_owned();
        let output = tokio::task::spawn_blocking(move || {
            let mut child = command.spawn().expect("run ferry user");
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(stdin.as_bytes())
                .expect("write the password");
            child.wait_with_output().expect("ferry user ends")
        })
        .await
        .expect("join");
        assert!(
            output.status.success(),
            "ferry user {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    pub async fn sql(&self, statement: &str) {
        self.client
            .batch_execute(statement)
            .await
            .unwrap_or_else(|error| panic!("{statement}: {error}"));
    }

    /// Refuses every new connection to the database and ends the open ones (Ferry's
    /// included): the database is unreachable for Ferry while the server stays up for others.
    pub async fn make_unreachable(&self) {
        let admin = admin_client("postgres").await;
        admin
            .batch_execute(&format!(
                "ALTER DATABASE {} ALLOW_CONNECTIONS false",
                self.name
            ))
            .await
            .expect("refuse new connections");
        admin
            .batch_execute(&format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = '{}' AND pid <> {}",
                self.name, self.client_pid
            ))
            .await
            .expect("end the open connections");
    }

    pub async fn make_reachable(&self) {
        admin_client("postgres")
            .await
            .batch_execute(&format!(
                "ALTER DATABASE {} ALLOW_CONNECTIONS true",
                self.name
            ))
            .await
            .expect("make the database reachable");
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs inside the test's runtime, which cannot be blocked on: a thread of its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                let admin = admin_client("postgres").await;
                let _ = admin
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await;
            });
        });
        let _ = dropped.join();
    }
}
