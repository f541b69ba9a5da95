//! The layers a value can come from (the config file, `FERRY_*` variables, flags), each read
//! into assignments of raw values that [`super::Settings`] then checks against their keys.

use super::keys::{Key, flag_values};
use super::{CONFIG_FILE_ENV_VAR, ConfigError, Origin, ServeArgs};
use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// A value as one layer supplied it, not yet checked against its key. Environment variables
/// and flags are always text; the file has TOML's types.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum RawValue {
    Text(String),
    Integer(i64),
    Boolean(bool),
    /// A TOML array (`host_names`).
    List(Vec<RawValue>),
    /// A TOML type no key takes, described for the error message ("an array").
    Other(&'static str),
}

impl From<toml::Value> for RawValue {
    fn from(value: toml::Value) -> Self {
        match value {
            toml::Value::String(text) => RawValue::Text(text),
            toml::Value::Integer(number) => RawValue::Integer(number),
            toml::Value::Boolean(boolean) => RawValue::Boolean(boolean),
            toml::Value::Float(_) => RawValue::Other("a decimal number"),
            toml::Value::Datetime(_) => RawValue::Other("a date-time"),
            toml::Value::Array(values) => {
                RawValue::List(values.into_iter().map(RawValue::from).collect())
            }
            toml::Value::Table(_) => RawValue::Other("a table"),
        }
    }
}

impl RawValue {
    pub(super) fn describe(&self) -> String {
        match self {
            RawValue::Text(text) => format!("the string {text:?}"),
            RawValue::Integer(number) => format!("the number {number}"),
            RawValue::Boolean(boolean) => format!("{boolean}"),
            RawValue::List(_) => "an array".to_owned(),
            RawValue::Other(kind) => (*kind).to_owned(),
        }
    }
}

/// One key set by one layer.
#[derive(Debug)]
pub(super) struct Assignment {
    pub(super) key: Key,
    pub(super) value: RawValue,
    pub(super) origin: Origin,
}

/// Reads the config file, if there is one to read: `(path, contents)`.
pub(super) fn read_config_file(
    args: &ServeArgs,
    env: &dyn Fn(&str) -> Option<String>,
    default_config_file: &Path,
) -> Result<Option<(PathBuf, String)>, ConfigError> {
    // A file someone named must exist; the default one may be absent.
    let (path, named_by) = if let Some(path) = &args.config {
        (path.clone(), Some(Origin::Flag("--config".to_owned())))
    } else if let Some(path) = env(CONFIG_FILE_ENV_VAR).filter(|path| !path.is_empty()) {
        (
            PathBuf::from(path),
            Some(Origin::Env(CONFIG_FILE_ENV_VAR.to_owned())),
        )
    } else {
        (default_config_file.to_owned(), None)
    };
    match fs::read_to_string(&path) {
        Ok(text) => Ok(Some((path, text))),
        Err(error) if error.kind() == io::ErrorKind::NotFound => match named_by {
            Some(named_by) => Err(ConfigError::ConfigFileMissing { path, named_by }),
            None => Ok(None),
        },
        Err(error) => Err(ConfigError::ConfigFileUnreadable { path, error }),
    }
}

/// The `[[event_hooks]]` tables as the file holds them, and where they start.
pub(super) type HookTables = (toml::Value, Origin);

/// The keys set in the config file, in the order they appear, and the `[[event_hooks]]`
/// tables.
pub(super) fn file_layer(
    path: &Path,
    text: &str,
) -> Result<(Vec<Assignment>, Option<HookTables>), ConfigError> {
    let table: BTreeMap<Spanned<String>, Spanned<toml::Value>> =
        toml::from_str(text).map_err(|error| ConfigError::ConfigFileSyntax {
            path: path.to_owned(),
            line: error.span().map(|span| line_of(text, span.start)),
            message: error.message().to_owned(),
        })?;
    let mut entries: Vec<_> = table.into_iter().collect();
    entries.sort_by_key(|(key, _)| key.span().start);
    let mut event_hooks = None;
    let mut assignments = Vec::new();
    for (key, value) in entries {
        let line = line_of(text, key.span().start);
        let name = key.into_inner();
        let origin = Origin::File {
            path: path.to_owned(),
            line,
        };
        if name == super::events::EVENT_HOOKS_KEY {
            event_hooks = Some((value.into_inner(), origin));
            continue;
        }
        let key = Key::from_name(&name).ok_or_else(|| ConfigError::UnknownKey {
            path: path.to_owned(),
            line,
            key: name,
        })?;
        assignments.push(Assignment {
            key,
            value: value.into_inner().into(),
            origin,
        });
    }
    Ok((assignments, event_hooks))
}

/// The 1-based line holding byte `offset` of `text`.
pub(super) fn line_of(text: &str, offset: usize) -> usize {
    let before = text.get(..offset).unwrap_or(text);
    before.matches('\n').count() + 1
}

/// The keys set by `FERRY_<KEY>` environment variables. An empty variable counts as unset, as
/// container templates often leave `FERRY_X=` behind for a value nobody filled in.
pub(super) fn env_layer(env: &dyn Fn(&str) -> Option<String>) -> Vec<Assignment> {
    Key::ALL
        .into_iter()
        .filter_map(|key| {
            let name = key.env_var();
            let value = env(&name).filter(|value| !value.is_empty())?;
            Some(Assignment {
                key,
                value: RawValue::Text(value),
                origin: Origin::Env(name),
            })
        })
        .collect()
}

/// The keys set by flags.
pub(super) fn flag_layer(args: &ServeArgs) -> Vec<Assignment> {
    flag_values(args)
        .into_iter()
        .filter_map(|(key, value)| {
            Some(Assignment {
                key,
                value: RawValue::Text(value?.to_owned()),
                origin: Origin::Flag(key.flag()),
            })
        })
        .collect()
}
