//! HASH (draft-bryan-ftp-hash) and the older commands it replaces, which clients still send:
//! XSHA1, XSHA256, XSHA512, XMD5 and XCRC (ProFTPD's mod_digest, FileZilla Server).
//!
//! `HASH path` answers `213 SHA-256 0-<len> <hex> <path>` with the algorithm `OPTS HASH`
//! selected (SHA-256 until then); the X commands each use their own algorithm and answer
//! `250 <hex>`. Every one of them reads the whole file, so the storage backend treats it as a
//! download: permission, transfer slot, audit record (`FerryStorage::checksum`).

use super::{client_path, logged_in_user};
use crate::accounts::auth::FerryUser;
use crate::storage::checksum::HashAlgorithm;
use crate::storage::{FerryStorage, to_reply};
use async_trait::async_trait;
use libunftp::ServerBuilder;
use libunftp::options::{CommandExtension, ExtensionContext, Reply, ReplyCode};
use std::sync::{Arc, Mutex, PoisonError};

/// HASH's algorithm until OPTS HASH selects another: the draft's recommendation.
const DEFAULT_ALGORITHM: HashAlgorithm = HashAlgorithm::Sha256;

/// The older commands and the algorithm each one stands for.
const LEGACY_COMMANDS: [(&str, HashAlgorithm); 5] = [
    ("XSHA1", HashAlgorithm::Sha1),
    ("XSHA256", HashAlgorithm::Sha256),
    ("XSHA512", HashAlgorithm::Sha512),
    ("XMD5", HashAlgorithm::Md5),
    ("XCRC", HashAlgorithm::Crc32),
];

/// The session's algorithm for HASH, shared by HASH and OPTS HASH.
#[derive(Debug, Clone)]
struct Selected(Arc<Mutex<HashAlgorithm>>);

impl Selected {
    fn get(&self) -> HashAlgorithm {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set(&self, algorithm: HashAlgorithm) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = algorithm;
    }
}

pub(super) fn register(
    builder: ServerBuilder<FerryStorage, FerryUser>,
) -> ServerBuilder<FerryStorage, FerryUser> {
    let selected = Selected(Arc::new(Mutex::new(DEFAULT_ALGORITHM)));
    let builder = builder
        .command_extension(
            "HASH",
            Hash {
                selected: selected.clone(),
            },
        )
        .command_extension("OPTS HASH", OptsHash { selected });
    LEGACY_COMMANDS
        .into_iter()
        .fold(builder, |builder, (name, algorithm)| {
            builder.command_extension(name, LegacyHash { name, algorithm })
        })
}

/// `HASH path`.
#[derive(Debug)]
struct Hash {
    selected: Selected,
}

#[async_trait]
impl CommandExtension<FerryStorage, FerryUser> for Hash {
    async fn handle(&self, context: &ExtensionContext<FerryStorage, FerryUser>) -> Reply {
        let algorithm = self.selected.get();
        let path = context.arguments.as_str();
        match digest(context, path, algorithm).await {
            // The draft's form: algorithm, the byte range hashed, digest, path as sent.
            Ok((hex, len)) => Reply::new_with_string(
                ReplyCode::FileStatus,
                format!("{algorithm} 0-{len} {hex} {path}"),
            ),
            Err(reply) => reply,
        }
    }

    /// Every algorithm, the selected one marked `*` (draft-bryan-ftp-hash section 3.3).
    fn feature(&self) -> Option<String> {
        let selected = self.selected.get();
        let names: Vec<String> = HashAlgorithm::ALL
            .into_iter()
            .map(|algorithm| match algorithm == selected {
                true => format!("{algorithm}*"),
                false => algorithm.to_string(),
            })
            .collect();
        Some(format!("HASH {}", names.join(";")))
    }
}

/// `OPTS HASH [algorithm]`: selects HASH's algorithm, or names the selected one.
#[derive(Debug)]
struct OptsHash {
    selected: Selected,
}

#[async_trait]
impl CommandExtension<FerryStorage, FerryUser> for OptsHash {
    async fn handle(&self, context: &ExtensionContext<FerryStorage, FerryUser>) -> Reply {
        let asked = context.arguments.trim();
        if !asked.is_empty() {
            match HashAlgorithm::from_name(asked) {
                Some(algorithm) => self.selected.set(algorithm),
                None => {
                    return Reply::new(
                        ReplyCode::ParameterSyntaxError,
                        "Unknown algorithm, current selection not changed",
                    );
                }
            }
        }
        Reply::new(ReplyCode::CommandOkay, self.selected.get().name())
    }
}

/// XSHA1, XSHA256, XSHA512, XMD5, XCRC: `250 <hex>`.
#[derive(Debug)]
struct LegacyHash {
    name: &'static str,
    algorithm: HashAlgorithm,
}

#[async_trait]
impl CommandExtension<FerryStorage, FerryUser> for LegacyHash {
    async fn handle(&self, context: &ExtensionContext<FerryStorage, FerryUser>) -> Reply {
        match digest(context, &context.arguments, self.algorithm).await {
            Ok((hex, _)) => Reply::new_with_string(ReplyCode::FileActionOkay, hex),
            Err(reply) => reply,
        }
    }

    fn feature(&self) -> Option<String> {
        Some(self.name.to_owned())
    }
}

/// The digest of the file `path` names, and its length; or the reply explaining why not.
async fn digest(
    context: &ExtensionContext<FerryStorage, FerryUser>,
    path: &str,
    algorithm: HashAlgorithm,
) -> Result<(String, u64), Reply> {
    if path.is_empty() {
        return Err(Reply::new(
            ReplyCode::ParameterSyntaxError,
            "A path is required",
        ));
    }
    let user = logged_in_user(&context.user)?;
    let target = client_path(&context.cwd, path);
    match context.storage.checksum(user, &target, algorithm).await {
        Ok(checksum) => Ok((checksum.hex, checksum.len)),
        Err(error) => Err(to_reply(&error)),
    }
}
