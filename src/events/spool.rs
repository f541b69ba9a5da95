//! The spool: events written durably before the operation that caused them returns, kept until
//! every hook they are for has them.
//!
//! ```text
//! SPOOL/.tmp/            an event being written
//! SPOOL/HOOK/NAME.json   an event waiting for HOOK (hard links: one file, one link per hook)
//! ```
//!
//! An event is written to `.tmp`, fsynced, linked into the directory of each hook it is for,
//! and those directories are fsynced: once [`Spool::write`] returns, a crash (kill -9, power
//! loss) cannot lose it. Delivered to a hook, its link there is removed, so a hook that
//! succeeded is not asked again when another one fails. `NAME` starts with the time in
//! microseconds, so a directory read in name order is in publication order.

use super::event::Event;
use std::fs::{self, DirBuilder, File};
use std::io::{self, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Events being written; whatever is left here at start is from a write that never returned.
const TMP_DIR: &str = ".tmp";
const EVENT_SUFFIX: &str = ".json";

/// Why an event could not be spooled.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("event spool {} is full ({max} events waiting, event_spool_max_events)", .dir.display())]
    Full { dir: PathBuf, max: usize },
    #[error("could not write to the event spool {}: {source}", .dir.display())]
    Io { dir: PathBuf, source: io::Error },
}

#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    /// The hooks' names, which are their directories.
    hooks: Vec<String>,
    /// Most events waiting (one per event and hook).
    max: usize,
    /// Events waiting now (one per event and hook), counted against `max`.
    depth: AtomicUsize,
}

/// What [`Spool::open`] found.
#[derive(Debug)]
pub struct Opened {
    pub spool: Spool,
    /// The names of the events waiting for each hook (in `hooks` order), oldest first.
    pub waiting: Vec<Vec<String>>,
    /// Directories of hooks no longer configured, with events in them: left alone.
    pub orphans: Vec<(String, usize)>,
}

impl Spool {
    /// Opens (creating it, owner-only) the spool in `dir` for `hooks`; removes what a crash left
    /// half-written and lists the events waiting.
    pub fn open(dir: &Path, hooks: &[String], max: usize) -> io::Result<Opened> {
        let mut builder = DirBuilder::new();
        builder.recursive(true).mode(0o700);
        builder.create(dir)?;
        builder.create(dir.join(TMP_DIR))?;
        for entry in fs::read_dir(dir.join(TMP_DIR))? {
            fs::remove_file(entry?.path())?;
        }
        let mut waiting = Vec::new();
        for hook in hooks {
            builder.create(dir.join(hook))?;
            waiting.push(event_names(&dir.join(hook))?);
        }
        let mut orphans = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.file_type()?.is_dir() && name != TMP_DIR && !hooks.contains(&name) {
                let count = event_names(&entry.path())?.len();
                if count > 0 {
                    orphans.push((name, count));
                }
            }
        }
        let depth = waiting.iter().map(Vec::len).sum();
        Ok(Opened {
            spool: Spool {
                dir: dir.to_owned(),
                hooks: hooks.to_vec(),
                max,
                depth: AtomicUsize::new(depth),
            },
            waiting,
            orphans,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes `event` for the hooks at `hooks` (indices), durably; returns its file name.
    /// Blocking: call it off the async runtime.
    pub fn write(&self, event: &Event, hooks: &[usize]) -> Result<String, SpoolError> {
        let reserved = self
            .depth
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |depth| {
                (depth + hooks.len() <= self.max).then_some(depth + hooks.len())
            });
        if reserved.is_err() {
            return Err(SpoolError::Full {
                dir: self.dir.clone(),
                max: self.max,
            });
        }
        let micros = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_micros());
        let name = format!("{micros:020}-{}{EVENT_SUFFIX}", event.id);
        match self.write_links(&name, &event.to_json(), hooks) {
            Ok(()) => Ok(name),
            Err(source) => {
                self.depth.fetch_sub(hooks.len(), Ordering::AcqRel);
                Err(SpoolError::Io {
                    dir: self.dir.clone(),
                    source,
                })
            }
        }
    }

    fn write_links(&self, name: &str, json: &[u8], hooks: &[usize]) -> io::Result<()> {
        let temporary = self.dir.join(TMP_DIR).join(name);
        let mut file = File::create(&temporary)?;
        let written = file.write_all(json).and_then(|()| file.sync_all());
        let mut linked = Vec::new();
        let result = written.and_then(|()| {
            for &hook in hooks {
                let link = self.dir.join(&self.hooks[hook]).join(name);
                fs::hard_link(&temporary, &link)?;
                linked.push(link);
            }
            for &hook in hooks {
                File::open(self.dir.join(&self.hooks[hook]))?.sync_all()?;
            }
            Ok(())
        });
        if result.is_err() {
            for link in linked {
                let _ = fs::remove_file(link);
            }
        }
        let _ = fs::remove_file(&temporary);
        result
    }

    /// The event `name` waiting for hook `hook`, as written; None once delivered.
    pub fn read(&self, hook: usize, name: &str) -> io::Result<Option<Vec<u8>>> {
        match fs::read(self.dir.join(&self.hooks[hook]).join(name)) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Hook `hook` has event `name`: it no longer waits for it. Not fsynced: if a crash undoes
    /// the removal the event is delivered again, with the same id.
    pub fn remove(&self, hook: usize, name: &str) -> io::Result<()> {
        fs::remove_file(self.dir.join(&self.hooks[hook]).join(name))?;
        self.depth.fetch_sub(1, Ordering::AcqRel);
        Ok(())
    }
}

/// The event files in `dir`, oldest first.
fn event_names(dir: &Path) -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name.ends_with(EVENT_SUFFIX) {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EventKind;
    use crate::events::event::NewEvent;

    fn event(path: &str) -> Event {
        Event::new(
            NewEvent {
                kind: EventKind::Mkdir,
                user: "u".into(),
                path: path.into(),
                from: None,
                size: None,
                sha256: None,
                remote_addr: "127.0.0.1".parse().expect("address"),
            },
            "test",
        )
    }

    #[test]
    fn events_wait_per_hook_survive_reopening_and_the_limit_drops_new_ones() {
        let dir = tempfile::tempdir().expect("temp dir");
        let spool_dir = dir.path().join("spool");
        let hooks = vec!["a".to_owned(), "b".to_owned()];
        let spool = Spool::open(&spool_dir, &hooks, 3).expect("opens").spool;
        let first = event("/one");
        let name = spool.write(&first, &[0, 1]).expect("written");
        spool.write(&event("/two"), &[1]).expect("written");
        assert!(matches!(
            spool.write(&event("/three"), &[0, 1]),
            Err(SpoolError::Full { max: 3, .. })
        ));
        spool.remove(0, &name).expect("delivered to a");
        assert_eq!(spool.read(0, &name).expect("reads"), None);
        let bytes = spool.read(1, &name).expect("reads").expect("still for b");
        assert_eq!(Event::from_json(&bytes).expect("JSON"), first);

        std::fs::write(spool_dir.join(TMP_DIR).join("half.json"), b"{").expect("leftover");
        let reopened = Spool::open(&spool_dir, &["b".to_owned()], 3).expect("reopens");
        assert_eq!(reopened.waiting[0].len(), 2);
        assert_eq!(reopened.waiting[0][0], name, "oldest first");
        assert!(reopened.orphans.is_empty(), "a's queue is empty");
        assert_eq!(names_in(&spool_dir.join(TMP_DIR)), Vec::<String>::new());
        reopened
            .spool
            .write(&event("/four"), &[0])
            .expect("room for one");
        assert!(reopened.spool.write(&event("/five"), &[0]).is_err());
    }

    fn names_in(dir: &Path) -> Vec<String> {
        event_names(dir).expect("lists")
    }
}
