//! The SHA-256 of an upload, computed from its bytes as they pass on their way to the file or
//! the object, for the events that report it (`events`).
//!
//! The store and the receive loops sit between the caller who wants the digest and the bytes,
//! so the wish travels as a task-local (the way libunftp tells the storage layer that an
//! upload is an APPE or TYPE A): [`sha256_of_upload`] runs an upload with a slot, the receive
//! loops that see one hash what they store (after TYPE A conversion) and fill it in when the
//! upload's last byte has been stored. Without the slot nothing is hashed, and plaintext
//! uploads keep splice(2).

use sha2::{Digest, Sha256};
use std::future::Future;
use std::sync::{Arc, Mutex};

/// What a finished upload stored: its SHA-256 and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadDigest {
    pub sha256: [u8; 32],
    /// Bytes stored (in TYPE A, after CRLF became LF: the file's size, not the wire's).
    pub len: u64,
}

impl UploadDigest {
    /// The SHA-256 in lower-case hex.
    pub fn sha256_hex(&self) -> String {
        self.sha256
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect()
    }
}

type Slot = Arc<Mutex<Option<UploadDigest>>>;

tokio::task_local! {
    static WANTED: Slot;
}

/// Runs `upload` (a store's write of a whole new file) and returns, beside its result, the
/// SHA-256 of the bytes it stored when it hashed them; None when no receive loop ran to the
/// end (the upload failed, or the store wrote nothing through one).
pub async fn sha256_of_upload<F: Future>(upload: F) -> (F::Output, Option<UploadDigest>) {
    let slot: Slot = Arc::default();
    let output = WANTED.scope(slot.clone(), upload).await;
    let digest = *slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    (output, digest)
}

/// Hashes an upload's bytes in the order they are stored.
pub(super) struct UploadHasher {
    sha256: Sha256,
    len: u64,
    slot: Slot,
}

impl UploadHasher {
    /// A hasher when the running task asked for a digest ([`sha256_of_upload`]).
    pub(super) fn wanted() -> Option<UploadHasher> {
        WANTED
            .try_with(|slot| UploadHasher {
                sha256: Sha256::new(),
                len: 0,
                slot: slot.clone(),
            })
            .ok()
    }

    pub(super) fn update(&mut self, stored: &[u8]) {
        self.sha256.update(stored);
        self.len += stored.len() as u64;
    }

    /// Every byte has been stored: the digest is the upload's.
    pub(super) fn finish(self) {
        let digest = UploadDigest {
            sha256: self.sha256.finalize().into(),
            len: self.len,
        };
        *self
            .slot
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(digest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_digest_is_reported_only_inside_the_scope_that_asked() {
        assert!(UploadHasher::wanted().is_none());
        let ((), digest) = sha256_of_upload(async {
            let mut hasher = UploadHasher::wanted().expect("asked for");
            hasher.update(b"ab");
            hasher.update(b"c");
            hasher.finish();
        })
        .await;
        let digest = digest.expect("filled in");
        assert_eq!(digest.len, 3);
        assert_eq!(digest.sha256, <[u8; 32]>::from(Sha256::digest(b"abc")));
    }
}
