//! One event as hooks receive it: a JSON object, written once to the spool and sent as is.

use crate::config::EventKind;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::SystemTime;

/// What a storage operation reports once it has succeeded.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub kind: EventKind,
    pub user: String,
    /// The client-visible path in the home (`/in/a b.csv`); a rename's destination.
    pub path: String,
    /// A rename's source.
    pub from: Option<String>,
    /// An upload's size in bytes: the file's, after the upload.
    pub size: Option<u64>,
    /// An upload's SHA-256 in lower-case hex: the file's, after the upload.
    pub sha256: Option<String>,
    /// The client's address (with the PROXY protocol, the one in the header).
    pub remote_addr: IpAddr,
}

/// The event as hooks receive it (README, "Events when files arrive").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Unique, and the same on every delivery attempt, before and after a restart.
    pub id: String,
    pub event: String,
    pub user: String,
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    pub remote_addr: String,
    /// RFC 3339, UTC.
    pub time: String,
    pub instance_id: String,
}

impl Event {
    /// The event for `new`, with a fresh id and the time now.
    pub fn new(new: NewEvent, instance_id: &str) -> Event {
        let time: chrono::DateTime<chrono::Utc> = SystemTime::now().into();
        Event {
            id: uuid::Uuid::new_v4().hyphenated().to_string(),
            event: new.kind.as_str().to_owned(),
            user: new.user,
            path: new.path,
            from: new.from,
            size: new.size,
            sha256: new.sha256,
            remote_addr: new.remote_addr.to_string(),
            time: time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            instance_id: instance_id.to_owned(),
        }
    }

    /// The JSON body hooks receive.
    pub fn to_json(&self) -> Vec<u8> {
        // Strings and numbers only: serialising cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn from_json(bytes: &[u8]) -> Result<Event, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut text, byte| {
            let _ = write!(text, "{byte:02x}");
            text
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upload_event_carries_every_field_and_reads_back() {
        let event = Event::new(
            NewEvent {
                kind: EventKind::Upload,
                user: "alice".into(),
                path: "/in/a b é.csv".into(),
                from: None,
                size: Some(3),
                sha256: Some("ab".repeat(32)),
                remote_addr: "192.0.2.7".parse().expect("address"),
            },
            "ferry-1",
        );
        let json: serde_json::Value = serde_json::from_slice(&event.to_json()).expect("JSON");
        assert_eq!(json["event"], "upload");
        assert_eq!(json["path"], "/in/a b é.csv");
        assert_eq!(json["size"], 3);
        assert_eq!(json["sha256"], "ab".repeat(32));
        assert_eq!(json["remote_addr"], "192.0.2.7");
        assert_eq!(json["instance_id"], "ferry-1");
        assert!(json.get("from").is_none());
        assert_eq!(json["id"].as_str().map(str::len), Some(36));
        assert!(json["time"].as_str().is_some_and(|t| t.ends_with('Z')));
        assert_eq!(Event::from_json(&event.to_json()).expect("reads"), event);
    }
}
