//! Uploads and downloads over a [`RawSession`], for tests that look at every reply code.

use crate::common::{RawSession, read_all};
use std::net::SocketAddr;
use tokio::io::AsyncWriteExt;

/// STOR `data` as `name`; returns the final reply code (226 when stored).
pub async fn store(raw: &mut RawSession, server: SocketAddr, name: &str, data: &[u8]) -> u32 {
    let mut channel = raw.epsv(server).await;
    raw.expect(format!("STOR {name}"), 150).await;
    // A server that gives up midway (disk full) resets the data connection; the reply says why.
    let _ = channel.write_all(data).await;
    let _ = channel.shutdown().await;
    drop(channel);
    raw.reply().await.0
}

/// RETR `name`; returns the bytes received and the final reply code (a refusal such as 550 for
/// a missing file comes alone, without a 150 first).
pub async fn retrieve(raw: &mut RawSession, server: SocketAddr, name: &str) -> (Vec<u8>, u32) {
    let channel = raw.epsv(server).await;
    raw.send(format!("RETR {name}")).await;
    let (code, _) = raw.reply().await;
    if code != 150 {
        return (Vec::new(), code);
    }
    let data = read_all(channel).await;
    (data, raw.reply().await.0)
}
