//! A slog drain that keeps log records in memory so tests can assert on them: the audit
//! records, or every record.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

/// One captured log record: its key-value pairs (record and logger context) as strings.
pub type Fields = HashMap<String, String>;

/// Collects every record; [`AuditCapture::records`] are those tagged `audit = true`.
#[derive(Clone, Default)]
pub struct AuditCapture {
    /// Each record's key-value pairs, its message (`msg`) and level (`level`), in order.
    everything: Arc<Mutex<Vec<Fields>>>,
}

impl AuditCapture {
    pub fn logger(&self) -> slog::Logger {
        slog::Logger::root(slog::Fuse(self.clone()), slog::o!())
    }

    /// Every record captured so far, with its message as `msg` and its level as `level`.
    pub fn everything(&self) -> Vec<Fields> {
        self.everything
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }

    /// The audit records captured so far.
    pub fn records(&self) -> Vec<Fields> {
        self.everything()
            .into_iter()
            .filter(|r| r.get("audit").map(String::as_str) == Some("true"))
            .collect()
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
        fields.insert("msg".to_owned(), record.msg().to_string());
        fields.insert("level".to_owned(), record.level().as_short_str().to_owned());
        if let Ok(mut records) = self.everything.lock() {
            records.push(fields);
        }
        Ok(())
    }
}
