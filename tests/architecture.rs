//! The layering of `src/` (README, "Architecture"): which subsystem may import which, and no
//! two modules importing each other. Read from the source text, so a change that breaks the
//! rule fails here with the file and the import named.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each subsystem and the subsystems it may import. Anything not listed may import nothing of
/// Ferry's. `main.rs` and `src/bin/` may use everything.
const ALLOWED: &[(&str, &[&str])] = &[
    ("observe", &[]),
    ("reload", &[]),
    ("transfer", &[]),
    ("client", &[]),
    ("bench", &[]),
    ("tls", &["reload"]),
    ("config", &["observe", "tls"]),
    ("accounts", &["config", "observe", "reload"]),
    ("events", &["config", "observe"]),
    (
        "storage",
        &["accounts", "config", "events", "observe", "transfer"],
    ),
    (
        "server",
        &[
            "accounts", "config", "events", "observe", "reload", "storage", "tls", "transfer",
        ],
    ),
    ("cli", &["accounts", "client", "config", "observe", "tls"]),
];

/// One source file as a module: `storage::local` for `src/storage/local.rs`.
struct Module {
    path: Vec<String>,
    file: PathBuf,
    /// The code before the first `#[cfg(test)]`, comments removed: inline test modules
    /// resolve `super::` differently and may use anything.
    code: String,
}

fn modules() -> Vec<Module> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    collect_rust_files(&root, &mut files);
    files
        .into_iter()
        .filter_map(|file| {
            let relative = file.strip_prefix(&root).ok()?.with_extension("");
            let mut path: Vec<String> = relative
                .components()
                .map(|part| part.as_os_str().to_string_lossy().into_owned())
                .collect();
            if path.first().is_some_and(|first| first == "bin")
                || path == ["main"]
                || path == ["lib"]
            {
                return None;
            }
            if path.last().is_some_and(|last| last == "mod") {
                path.pop();
            }
            let text = std::fs::read_to_string(&file).expect("read source file");
            let before_tests = text.split("#[cfg(test)]").next().unwrap_or_default();
            let code = before_tests
                .lines()
                .filter(|line| !line.trim_start().starts_with("//"))
                .collect::<Vec<_>>()
                .join("\n");
            Some(Module { path, file, code })
        })
        .collect()
}

fn collect_rust_files(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src directory") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            collect_rust_files(&path, files);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
}

/// The paths a module names through `crate::` or `super::`, resolved to absolute paths
/// (`crate::{a, b}` groups are expanded).
fn imported_paths(module: &Module) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    for anchor in ["crate::", "super::"] {
        let mut rest = module.code.as_str();
        while let Some(at) = rest.find(anchor) {
            let preceded_by_ident = rest[..at]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':');
            rest = &rest[at + anchor.len()..];
            if preceded_by_ident {
                continue;
            }
            let mut base = if anchor == "crate::" {
                Vec::new()
            } else {
                module.path[..module.path.len().saturating_sub(1)].to_vec()
            };
            let mut tail = rest;
            while let Some(after) = tail.strip_prefix("super::") {
                base.pop();
                tail = after;
            }
            if let Some(group) = tail.strip_prefix('{') {
                let inner = group.split('}').next().unwrap_or_default();
                for item in inner.split(',') {
                    let mut path = base.clone();
                    path.extend(segments(item.trim()));
                    found.push(path);
                }
            } else {
                let mut path = base;
                path.extend(segments(tail));
                found.push(path);
            }
        }
    }
    found
}

/// The leading `a::b::c` of `text`.
fn segments(text: &str) -> Vec<String> {
    let end = text
        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(text.len());
    text[..end]
        .split("::")
        .filter(|part| !part.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The longest known module that `path` starts with.
fn owning_module<'a>(path: &[String], known: &'a BTreeSet<Vec<String>>) -> Option<&'a Vec<String>> {
    (1..=path.len())
        .rev()
        .find_map(|len| known.get(&path[..len].to_vec()))
}

#[test]
fn subsystems_import_only_the_layers_below_them() {
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut violations = Vec::new();
    for module in modules() {
        let own = module.path[0].as_str();
        let may_use = allowed.get(own).copied().unwrap_or(&[]);
        for path in imported_paths(&module) {
            let Some(target) = path.first() else { continue };
            if target != own && !may_use.contains(&target.as_str()) {
                violations.push(format!(
                    "{} imports crate::{}",
                    module.file.display(),
                    path.join("::")
                ));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "imports against the layering:\n{}",
        violations.join("\n")
    );
}

#[test]
fn no_two_modules_import_each_other() {
    let modules = modules();
    let known: BTreeSet<Vec<String>> = modules.iter().map(|m| m.path.clone()).collect();
    let mut edges: BTreeSet<(Vec<String>, Vec<String>)> = BTreeSet::new();
    for module in &modules {
        for path in imported_paths(module) {
            if let Some(target) = owning_module(&path, &known)
                && *target != module.path
            {
                edges.insert((module.path.clone(), target.clone()));
            }
        }
    }
    // A parent module naming its children (`mod x; pub use x::Y`) while they use its items
    // is how Rust folders work, not a cycle.
    let related = |a: &[String], b: &[String]| a.starts_with(b) || b.starts_with(a);
    let cycles: Vec<String> = edges
        .iter()
        .filter(|(from, to)| {
            from < to && edges.contains(&(to.clone(), from.clone())) && !related(from, to)
        })
        .map(|(from, to)| format!("{} <-> {}", from.join("::"), to.join("::")))
        .collect();
    assert!(
        cycles.is_empty(),
        "modules that import each other:\n{}",
        cycles.join("\n")
    );
    assert!(
        edges.len() > 20,
        "the scan found only {} imports: it is not reading the source",
        edges.len()
    );
}
