//! FTPS (RFC 4217) with suppaftp over rustls: transfers over TLS 1.2 and 1.3, what is refused
//! when TLS is required, per-user `require_tls`, and client certificates.

mod common;
mod ftps_support;

use common::{PASSWORD, TestServer, TestUser, download, pattern, read_all};
use ferry::tls::{ClientAuth, TlsMode, TlsRequiredFor, TlsVersion};
use ftps_support::{
    TlsFiles, TlsRawSession, client_config, client_pki, ftps_login, ftps_login_fails, start_ftps,
    trusting,
};
use rustls::version::{TLS12, TLS13};
use std::io::Cursor;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_upload_download_and_resume_over_tls_are_byte_identical() {
    let files = TlsFiles::new();
    let server = start_ftps(&files, |_| {}, &common::default_users()).await;
    for (label, version) in [("tls12", &TLS12), ("tls13", &TLS13)] {
        let config = client_config(&[files.server.cert_der()], &[version], None);
        let mut ftp = ftps_login(&server, config, "alice").await;
        let name = format!("{label}.bin");
        let content = pattern(2 * 1024 * 1024 + 123);
        ftp.put_file(&name, &mut Cursor::new(content.clone()))
            .await
            .expect("upload over TLS");
        assert!(std::fs::read(server.home("alice").join(&name)).expect("stored") == content);

        let listing = ftp.list(None).await.expect("LIST over TLS");
        assert!(
            listing
                .iter()
                .any(|line| line.ends_with(&format!(" {name}"))
                    && line.contains(&content.len().to_string())),
            "{listing:?}"
        );
        assert!(
            download(&mut ftp, &name).await == content,
            "{label} download"
        );

        // Resumed download: REST, then RETR sends the rest.
        let offset = 1_000_003;
        ftp.resume_transfer(offset).await.expect("REST");
        assert!(
            download(&mut ftp, &name).await == content[offset..],
            "{label} resumed RETR"
        );

        // Resumed upload: the first part, then REST + STOR with the rest.
        let resumed = format!("{label}-resumed.bin");
        ftp.put_file(&resumed, &mut Cursor::new(content[..offset].to_vec()))
            .await
            .expect("first part");
        ftp.resume_transfer(offset).await.expect("REST");
        ftp.put_file(&resumed, &mut Cursor::new(content[offset..].to_vec()))
            .await
            .expect("rest");
        assert!(
            std::fs::read(server.home("alice").join(&resumed)).expect("stored") == content,
            "{label} resumed STOR"
        );
        ftp.quit().await.expect("QUIT");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_logins_and_plaintext_data_are_refused_when_tls_is_required() {
    let files = TlsFiles::new();
    let server = start_ftps(&files, |_| {}, &common::default_users()).await;

    let mut plain = server.raw().await;
    plain.expect("USER alice", 534).await;
    plain.expect(format!("PASS {PASSWORD}"), 534).await;
    let mut ftp = server.connect().await;
    assert!(ftp.login("alice", PASSWORD).await.is_err());

    // TLS on the control channel only: no data connection is opened in plaintext, whichever
    // command asks for it, and PROT C cannot turn protection off.
    let mut session = TlsRawSession::connect(server.addr, trusting(&files))
        .await
        .expect("AUTH TLS");
    session.expect("USER alice", 331).await;
    session.expect(format!("PASS {PASSWORD}"), 230).await;
    session.expect("EPSV", 534).await;
    session.expect("PASV", 534).await;
    session.expect("PBSZ 0", 200).await;
    session.expect("PROT P", 200).await;
    session.expect("PROT C", 534).await;
    session.nlst().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_tls_user_cannot_log_in_over_plaintext() {
    let files = TlsFiles::new();
    let users = [
        TestUser {
            name: "alice",
            permissions: common::ALL,
            extra: "",
        },
        TestUser {
            name: "secure",
            permissions: common::ALL,
            extra: "require_tls = true",
        },
    ];
    let server = start_ftps(&files, |c| c.tls.mode = TlsMode::Optional, &users).await;

    let mut plain = server.raw().await;
    plain.expect("USER secure", 331).await;
    plain.expect(format!("PASS {PASSWORD}"), 530).await;
    let mut plain = server.raw().await;
    plain.expect("USER alice", 331).await;
    plain.expect(format!("PASS {PASSWORD}"), 230).await;

    let mut ftp = ftps_login(&server, trusting(&files), "secure").await;
    ftp.put_file("s.txt", &mut Cursor::new(b"secret".to_vec()))
        .await
        .expect("upload over TLS");
    assert_eq!(download(&mut ftp, "s.txt").await, b"secret");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_for_accounts_lets_anonymous_stay_in_plaintext() {
    let files = TlsFiles::new();
    let server = start_ftps(
        &files,
        |c| {
            c.tls.required_for = TlsRequiredFor::Accounts;
            c.anonymous = true;
        },
        &common::default_users(),
    )
    .await;
    let mut anonymous = server.raw().await;
    anonymous.expect("USER anonymous", 331).await;
    anonymous.expect("PASS guest@example.com", 230).await;
    let data = anonymous.epsv(server.addr).await;
    anonymous.expect("LIST", 150).await;
    read_all(data).await;
    assert_eq!(anonymous.reply().await.0, 226);

    let mut account = server.raw().await;
    account.expect("USER alice", 534).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_from_the_trusted_ca_only() {
    let files = TlsFiles::new();
    let trusted = client_pki("alice");
    let stranger = client_pki("mallory");
    let ca_file = files.write("clients-ca.pem", &trusted.ca.cert);
    let server_cert = [files.server.cert_der()];
    let with_identity = |identity| client_config(&server_cert, rustls::ALL_VERSIONS, identity);

    let server = start_ftps(
        &files,
        |c| {
            c.tls.client_auth = ClientAuth::Require;
            c.tls.client_ca_file = Some(ca_file.clone());
        },
        &common::default_users(),
    )
    .await;
    let mut ftp = ftps_login(&server, with_identity(Some(&trusted.client)), "alice").await;
    ftp.put_file("c.txt", &mut Cursor::new(b"mutual".to_vec()))
        .await
        .expect("upload with a client certificate");
    assert_eq!(download(&mut ftp, "c.txt").await, b"mutual");
    for (label, identity) in [("untrusted", Some(&stranger.client)), ("none", None)] {
        assert!(
            ftps_login_fails(server.addr, with_identity(identity), "alice").await,
            "{label} client certificate accepted"
        );
    }

    // `request`: no certificate is fine, an untrusted one is not.
    let server = start_ftps(
        &files,
        |c| {
            c.tls.client_auth = ClientAuth::Request;
            c.tls.client_ca_file = Some(ca_file.clone());
        },
        &common::default_users(),
    )
    .await;
    ftps_login(&server, with_identity(None), "alice").await;
    assert!(
        ftps_login_fails(server.addr, with_identity(Some(&stranger.client)), "alice").await,
        "untrusted certificate accepted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_12_and_13_are_offered_and_min_version_13_refuses_12() {
    let files = TlsFiles::new();
    let server_cert = [files.server.cert_der()];
    let server = start_ftps(&files, |_| {}, &common::default_users()).await;
    for (version, expected) in [
        (&TLS12, rustls::ProtocolVersion::TLSv1_2),
        (&TLS13, rustls::ProtocolVersion::TLSv1_3),
    ] {
        let config = client_config(&server_cert, &[version], None);
        let session = TlsRawSession::login(server.addr, config, "alice").await;
        assert_eq!(session.protocol_version(), Some(expected));
    }

    let strict = start_ftps(
        &files,
        |c| c.tls.min_version = TlsVersion::V1_3,
        &common::default_users(),
    )
    .await;
    let tls12_only = client_config(&server_cert, &[&TLS12], None);
    assert!(
        TlsRawSession::connect(strict.addr, tls12_only)
            .await
            .is_err()
    );
    let tls13 = client_config(&server_cert, &[&TLS13], None);
    TlsRawSession::login(strict.addr, tls13, "alice").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_tls_is_refused_when_tls_is_off() {
    let server = TestServer::start().await;
    let mut plain = server.raw().await;
    plain.expect("AUTH TLS", 502).await;
    plain.expect("USER alice", 331).await;
    plain.expect(format!("PASS {PASSWORD}"), 230).await;
}
