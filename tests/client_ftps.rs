//! `ferry client ftps://…` against Ferry with TLS required: the client's FTPS path end to end.

mod client_support;
mod common;
mod ftps_support;

use client_support::{Fixture, client_command, run_commands};
use common::pattern;
use ftps_support::{TlsFiles, start_ftps};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_uploads_and_downloads_over_ftps_trusting_a_private_ca() {
    let files = TlsFiles::new();
    let fixture = Fixture::with_server(start_ftps(&files, |_| {}, &common::default_users()).await);
    let content = pattern(1_500_000);
    std::fs::write(fixture.local("local.bin"), &content).unwrap();
    let url = format!("ftps://alice@{}/", fixture.server.addr);
    let ca = files.cert.to_str().unwrap().to_owned();

    let mut command = client_command(&url, fixture.local.path());
    command.args(["--ca", &ca]);
    run_commands(
        command,
        &[
            "upload local.bin remote.bin",
            "size remote.bin",
            "download remote.bin back.bin",
        ],
    )
    .await
    .success();
    assert!(std::fs::read(fixture.home().join("remote.bin")).unwrap() == content);
    assert!(std::fs::read(fixture.local("back.bin")).unwrap() == content);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_refuses_an_untrusted_certificate_unless_insecure() {
    let files = TlsFiles::new();
    let fixture = Fixture::with_server(start_ftps(&files, |_| {}, &common::default_users()).await);
    let url = format!("ftps://alice@{}/", fixture.server.addr);

    let refused = run_commands(client_command(&url, fixture.local.path()), &["pwd"]).await;
    assert_eq!(
        refused.code,
        Some(3),
        "an unknown CA is a connection failure: {refused:#?}"
    );

    let mut insecure = client_command(&url, fixture.local.path());
    insecure.arg("--insecure");
    let outcome = run_commands(insecure, &["pwd"]).await.success();
    assert!(outcome.stdout.contains('/'), "{outcome:#?}");
}
