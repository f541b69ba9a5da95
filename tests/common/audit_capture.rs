//! A slog drain that keeps audit records in memory so tests can assert on them.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

/// One captured log record: its key-value pairs (record and logger context) as strings.
pub type Fields = HashMap<String, String>;

/// Collects every record tagged `audit = true`.
#[derive(Clone, Default)]
pub struct AuditCapture {
    records: Arc<Mutex<Vec<Fields>>>,
}

impl AuditCapture {
    pub fn logger(&self) -> slog::Logger {
        slog::Logger::root(slog::Fuse(self.clone()), slog::o!())
    }

    /// The audit records captured so far.
    pub fn records(&self) -> Vec<Fields> {
        self.records.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// The records of one operation (`op` field).
    pub fn of(&self, op: &str) -> Vec<Fields> {
        self.records()
            .into_iter()
            .filter(|r| r.get("op").map(String::as_str) == Some(op))
            .collect()
    }
}

struct Collect<'a>(&'a mut Fields);

impl slog::Serializer for Collect<'_> {
    fn emit_arguments(&mut self, key: slog::Key, value: &fmt::Arguments) -> slog::Result {
        self.0.insert(key.to_string(), value.to_string());
        Ok(())
    }
}

impl slog::Drain for AuditCapture {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &slog::Record, values: &slog::OwnedKVList) -> Result<(), slog::Never> {
        let mut fields = Fields::new();
        let _ = slog::KV::serialize(&record.kv(), record, &mut Collect(&mut fields));
        let _ = slog::KV::serialize(values, record, &mut Collect(&mut fields));
        if fields.get("audit").map(String::as_str) == Some("true")
            && let Ok(mut records) = self.records.lock()
        {
            records.push(fields);
        }
        Ok(())
    }
}
