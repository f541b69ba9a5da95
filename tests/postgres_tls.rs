//! TLS to the accounts database: `sslmode=verify-full` (and `require`, which Ferry verifies
//! the same way) connects only to a server whose certificate chains to the trusted roots
//! (`sslrootcert`, else the system's) and names the host. Against a cluster of the test's own
//! serving a certificate the test made for `localhost`.

mod common;
#[path = "common/pg_cluster.rs"]
mod pg_cluster;

use common::{PASSWORD, TestServer};
use ferry::accounts::directory::UserDirectory;
use ferry::config::UsersDatabase;
use pg_cluster::OwnCluster;
use std::time::Duration;

fn database(url: &str) -> UsersDatabase {
    UsersDatabase::parse(url)
        .expect("a postgres URL")
        .expect("valid")
}

async fn open(url: &str) -> Result<std::sync::Arc<UserDirectory>, String> {
    let root = tempfile::tempdir().expect("root");
    let logger = slog::Logger::root(slog::Discard, slog::o!());
    UserDirectory::open_database(&database(url), Duration::ZERO, root.path(), None, logger)
        .await
        .map_err(|error| error.to_string())
}

#[tokio::test]
async fn verified_tls_connects_only_to_a_trusted_certificate_for_the_host() {
    let certificate =
        ferry::tls::cert::generate_self_signed(&["localhost".to_owned()], 1).expect("cert");
    let cluster = OwnCluster::start_with_tls(&certificate.cert_pem, &certificate.key_pem);
    let ca = cluster.write("ca.pem", &certificate.cert_pem);
    let port = cluster.port;
    let trusted = format!(
        "postgres://ferry@localhost:{port}/postgres?sslmode=verify-full&sslrootcert={}",
        ca.display()
    );

    let server = TestServer::start_with(
        |config| config.users_database = Some(database(&trusted)),
        &[],
    )
    .await;
    let (admin, connection) = tokio_postgres::connect(
        &format!("postgres://ferry@127.0.0.1:{port}/postgres?sslmode=disable"),
        tokio_postgres::NoTls,
    )
    .await
    .expect("connect to the own cluster");
    tokio::spawn(connection);
    let encrypted: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) \
             WHERE application_name = 'ferry' AND ssl",
            &[],
        )
        .await
        .and_then(|row| row.try_get(0))
        .expect("pg_stat_ssl");
    assert!(encrypted >= 1, "Ferry's connection is TLS");
    let hash = ferry::accounts::password::hash_password(PASSWORD).expect("hash");
    admin
        .execute(
            "INSERT INTO ferry_users (name, password_hash, home, permissions) \
             VALUES ('alice', $1, 'alice', '{all}')",
            &[&hash],
        )
        .await
        .expect("add alice");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while server.users.users().get("alice").is_none() {
        let generation = server.users.generation();
        tokio::time::timeout_at(deadline, server.users.wait_for_generation(generation + 1))
            .await
            .expect("the new account arrives over TLS within 2 s");
    }
    let _alice = server.login("alice").await;

    let untrusted = format!("postgres://ferry@localhost:{port}/postgres?sslmode=require");
    let error = open(&untrusted)
        .await
        .expect_err("a certificate no root vouches for");
    assert!(error.contains("certificate"), "{error}");
    let wrong_name = format!(
        "postgres://ferry@127.0.0.1:{port}/postgres?sslmode=verify-full&sslrootcert={}",
        ca.display()
    );
    let error = open(&wrong_name)
        .await
        .expect_err("a certificate for another name");
    assert!(error.contains("certificate"), "{error}");
}
