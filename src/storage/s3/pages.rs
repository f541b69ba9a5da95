//! A directory of the bucket, a page of ListObjectsV2 at a time: files are the keys directly
//! under the prefix, directories the common prefixes (with `/` as the delimiter). A listing of
//! any size holds one page (at most 1,000 keys) in memory.

use super::bucket::Bucket;
use crate::storage::paths::is_reserved_name;
use crate::storage::store::{Entry, EntryKind, EntryPages, StoreError};
use async_trait::async_trait;
use std::sync::Arc;
use std::time::SystemTime;

/// Permission bits LIST shows: objects have none of their own.
pub const FILE_MODE: u32 = 0o644;
pub const DIR_MODE: u32 = 0o755;

pub struct ObjectPages {
    bucket: Arc<Bucket>,
    /// The directory's key prefix, ending in `/` (or empty: the bucket's top).
    prefix: String,
    token: Option<String>,
    done: bool,
}

impl ObjectPages {
    pub fn new(bucket: Arc<Bucket>, prefix: String) -> Self {
        ObjectPages {
            bucket,
            prefix,
            token: None,
            done: false,
        }
    }
}

#[async_trait]
impl EntryPages for ObjectPages {
    async fn next_page(&mut self) -> Result<Option<Vec<(String, Entry)>>, StoreError> {
        if self.done {
            return Ok(None);
        }
        let request = self
            .bucket
            .client
            .list_objects_v2()
            .bucket(&self.bucket.name)
            .prefix(&self.prefix)
            .delimiter("/")
            .set_continuation_token(self.token.take());
        let page = self.bucket.call("ListObjectsV2", request.send()).await?;
        let mut entries = Vec::new();
        for object in page.contents() {
            // The directory's own marker (`dir/`) is not an entry of it.
            if let Some(name) = object.key().and_then(|key| self.name_of(key)) {
                let entry = Entry {
                    kind: EntryKind::File,
                    len: object.size().unwrap_or(0).max(0) as u64,
                    modified: object
                        .last_modified()
                        .and_then(|t| SystemTime::try_from(*t).ok()),
                    mode: FILE_MODE,
                };
                entries.push((name, entry));
            }
        }
        for common in page.common_prefixes() {
            let name = common
                .prefix()
                .map(|prefix| prefix.trim_end_matches('/'))
                .and_then(|prefix| self.name_of(prefix));
            if let Some(name) = name {
                entries.push((name, directory(None)));
            }
        }
        match page.next_continuation_token() {
            Some(next) if page.is_truncated() == Some(true) => self.token = Some(next.to_owned()),
            _ => self.done = true,
        }
        Ok(Some(entries))
    }
}

impl ObjectPages {
    /// The entry name of `key` in this directory; None for names a client could not address
    /// (empty, `.`, `..`, Ferry's own hidden objects).
    fn name_of(&self, key: &str) -> Option<String> {
        let name = key.strip_prefix(&self.prefix)?;
        let hidden = name.is_empty()
            || name == "."
            || name == ".."
            || name.contains('/')
            || is_reserved_name(name);
        (!hidden).then(|| name.to_owned())
    }
}

/// A directory entry; objects store no time for a prefix, so only a marker's is known.
pub fn directory(modified: Option<SystemTime>) -> Entry {
    Entry {
        kind: EntryKind::Dir,
        len: 0,
        modified,
        mode: DIR_MODE,
    }
}
