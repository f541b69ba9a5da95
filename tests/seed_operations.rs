//! The seed programs' operations over real FTP: upload, download, ls, rm, size, byebye, connme.

mod common;

use common::{TestServer, download, pattern};
use std::io::Cursor;
use suppaftp::FtpError;
use suppaftp::Status;

async fn round_trip(len: usize) {
    let server = TestServer::start().await;
    let mut ftp = server.login("alice").await;
    let data = pattern(len);
    let name = format!("file-{len}.bin");

    let sent = ftp
        .put_file(&name, &mut Cursor::new(data.clone()))
        .await
        .expect("upload");
    assert_eq!(sent as usize, len);
    let on_disk = std::fs::read(server.home("alice").join(&name)).expect("uploaded file on disk");
    assert!(
        on_disk == data,
        "bytes on disk differ after uploading {len} bytes"
    );

    let downloaded = download(&mut ftp, &name).await;
    assert!(
        downloaded == data,
        "bytes downloaded differ for {len} bytes"
    );
    ftp.quit().await.expect("quit");
}

#[tokio::test]
async fn upload_and_download_empty_file_round_trips() {
    round_trip(0).await;
}

#[tokio::test]
async fn upload_and_download_one_byte_round_trips() {
    round_trip(1).await;
}

#[tokio::test]
async fn upload_and_download_one_mebibyte_and_seven_bytes_round_trips() {
    round_trip(1024 * 1024 + 7).await;
}

#[tokio::test]
async fn upload_and_download_sixty_four_mebibytes_round_trips() {
    round_trip(64 * 1024 * 1024).await;
}

#[tokio::test]
async fn ls_lists_files_and_directories_in_every_listing_format() {
    let server = TestServer::start().await;
    let home = server.home("alice");
    let mut ftp = server.login("alice").await;
    ftp.put_file("report.txt", &mut Cursor::new(b"hello".to_vec()))
        .await
        .unwrap();
    ftp.mkdir("archive").await.unwrap();
    assert!(home.join("archive").is_dir());

    let mut names = ftp.nlst(None).await.unwrap();
    names.sort();
    assert_eq!(names, ["archive", "report.txt"]);

    let long = ftp.list(None).await.unwrap();
    assert_eq!(long.len(), 2, "{long:?}");
    let report = long
        .iter()
        .find(|l| l.ends_with(" report.txt"))
        .expect("report.txt listed");
    assert!(report.starts_with('-'), "{report}");
    // The size column parses as stock clients parse it.
    let parsed = suppaftp::list::File::try_from(report.as_str()).expect("ls -l line parses");
    assert_eq!(parsed.size(), 5);
    assert!(parsed.is_file());
    let archive = long.iter().find(|l| l.ends_with(" archive")).unwrap();
    assert!(
        suppaftp::list::File::try_from(archive.as_str())
            .unwrap()
            .is_directory()
    );

    let mlsd = ftp.mlsd(None).await.unwrap();
    let report_facts = mlsd
        .iter()
        .find(|l| l.ends_with(" report.txt"))
        .expect("MLSD lists report.txt");
    assert!(
        report_facts.contains("type=file") && report_facts.contains("size=5"),
        "{report_facts}"
    );
    assert!(
        mlsd.iter()
            .any(|l| l.contains("type=dir") && l.ends_with(" archive"))
    );
}

#[tokio::test]
async fn ls_of_a_single_file_lists_that_file() {
    let server = TestServer::start().await;
    let mut ftp = server.login("alice").await;
    ftp.put_file("one.txt", &mut Cursor::new(b"1".to_vec()))
        .await
        .unwrap();
    let long = ftp.list(Some("one.txt")).await.unwrap();
    assert_eq!(long.len(), 1);
    assert!(long[0].ends_with(" one.txt"));
}

#[tokio::test]
async fn rm_deletes_the_file_on_disk() {
    let server = TestServer::start().await;
    let mut ftp = server.login("alice").await;
    ftp.put_file("gone.txt", &mut Cursor::new(b"bye".to_vec()))
        .await
        .unwrap();
    assert!(server.home("alice").join("gone.txt").exists());
    ftp.rm("gone.txt").await.expect("DELE");
    assert!(!server.home("alice").join("gone.txt").exists());
    match ftp.rm("gone.txt").await {
        Err(FtpError::UnexpectedResponse(reply)) => {
            assert_eq!(reply.status, Status::FileUnavailable)
        }
        other => panic!("deleting a missing file: {other:?}"),
    }
}

#[tokio::test]
async fn size_reports_the_exact_byte_count() {
    let server = TestServer::start().await;
    let mut ftp = server.login("alice").await;
    ftp.put_file("sized.bin", &mut Cursor::new(pattern(12345)))
        .await
        .unwrap();
    assert_eq!(ftp.size("sized.bin").await.unwrap(), 12345);
    assert!(ftp.size("missing.bin").await.is_err());
}

#[tokio::test]
async fn byebye_is_quit_and_connme_is_noop() {
    let server = TestServer::start().await;
    let mut raw = server.raw_login("alice").await;
    raw.expect("NOOP", 200).await;
    raw.expect("QUIT", 221).await;
    assert!(
        raw.is_closed().await,
        "server closes the connection after QUIT"
    );
}
