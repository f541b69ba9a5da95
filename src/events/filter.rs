//! Which events a hook hears of: by kind (`events`) and by path (`paths`, globs).

use super::event::Event;
use crate::config::EventKind;
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

/// A hook's filter. Globs match the path relative to the home (`in/a.csv` for `/in/a.csv`):
/// a glob with a `/` matches the whole path (`incoming/**`), one without matches the file name
/// at any depth (`*.csv`), as in `.gitignore`; `*` never crosses a `/`, `**` does. A rename
/// matches when its source or its destination does.
#[derive(Debug, Clone)]
pub struct Filter {
    /// Empty: every kind.
    kinds: Vec<EventKind>,
    /// Globs with a `/`, against the whole path; None with no glob at all (every path).
    whole_paths: Option<GlobSet>,
    /// Globs without one, against the file name.
    names: GlobSet,
}

impl Filter {
    /// The configuration checked every glob already; one that fails here is left out.
    pub fn new(kinds: &[EventKind], globs: &[String]) -> Result<Filter, globset::Error> {
        let mut whole = GlobSetBuilder::new();
        let mut names = GlobSetBuilder::new();
        for pattern in globs {
            let pattern = pattern.trim_start_matches('/');
            let glob = GlobBuilder::new(pattern).literal_separator(true).build()?;
            if pattern.contains('/') {
                whole.add(glob);
            } else {
                names.add(glob);
            }
        }
        Ok(Filter {
            kinds: kinds.to_vec(),
            whole_paths: (!globs.is_empty()).then(|| whole.build()).transpose()?,
            names: names.build()?,
        })
    }

    pub fn matches(&self, event: &Event) -> bool {
        let kind_matches =
            self.kinds.is_empty() || self.kinds.iter().any(|kind| kind.as_str() == event.event);
        kind_matches
            && (self.path_matches(&event.path)
                || event
                    .from
                    .as_deref()
                    .is_some_and(|from| self.path_matches(from)))
    }

    fn path_matches(&self, path: &str) -> bool {
        let Some(whole) = &self.whole_paths else {
            return true;
        };
        let relative = path.trim_start_matches('/');
        let name = relative.rsplit('/').next().unwrap_or(relative);
        whole.is_match(relative) || self.names.is_match(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::event::NewEvent;

    fn event(kind: EventKind, path: &str, from: Option<&str>) -> Event {
        Event::new(
            NewEvent {
                kind,
                user: "u".into(),
                path: path.into(),
                from: from.map(str::to_owned),
                size: None,
                sha256: None,
                remote_addr: "127.0.0.1".parse().expect("address"),
            },
            "test",
        )
    }

    #[test]
    fn globs_without_a_slash_match_names_and_with_one_the_whole_path() {
        let filter = Filter::new(&[], &["*.csv".into(), "incoming/**".into()]).expect("globs");
        assert!(filter.matches(&event(EventKind::Upload, "/a.csv", None)));
        assert!(filter.matches(&event(EventKind::Upload, "/deep/er/a b.csv", None)));
        assert!(filter.matches(&event(EventKind::Upload, "/incoming/x/y.bin", None)));
        assert!(!filter.matches(&event(EventKind::Upload, "/other/y.bin", None)));
        assert!(!filter.matches(&event(EventKind::Upload, "/a.csv.part", None)));
        assert!(filter.matches(&event(EventKind::Rename, "/out/y.bin", Some("/incoming/y"))));
    }

    #[test]
    fn kinds_filter_and_no_globs_match_every_path() {
        let filter = Filter::new(&[EventKind::Upload, EventKind::Delete], &[]).expect("globs");
        assert!(filter.matches(&event(EventKind::Upload, "/x", None)));
        assert!(filter.matches(&event(EventKind::Delete, "/d/x", None)));
        assert!(!filter.matches(&event(EventKind::Mkdir, "/d", None)));
        let slash = Filter::new(&[], &["/in/*.txt".into()]).expect("globs");
        assert!(slash.matches(&event(EventKind::Upload, "/in/a.txt", None)));
        assert!(!slash.matches(&event(EventKind::Upload, "/in/deeper/a.txt", None)));
    }
}
