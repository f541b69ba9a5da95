//! An account's operator limits: its storage quota (bytes and files) and its bandwidth (upload
//! and download, bytes per second). Each is optional on the account; an absent one falls back
//! to the server-wide default (`quota_bytes`, `quota_files`, `user_upload_rate`,
//! `user_download_rate`), and 0 means no limit.

pub use crate::config::Limits;
use crate::config::parse_byte_size;

/// The limit fields of a `[users.NAME]` table, as named there and in the database.
pub const LIMIT_FIELDS: [&str; 4] = ["quota_bytes", "quota_files", "upload_rate", "download_rate"];

/// One account's limits; None takes the server's default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AccountLimits {
    pub quota_bytes: Option<u64>,
    pub quota_files: Option<u64>,
    /// Bytes per second, shared by the account's sessions.
    pub upload_rate: Option<u64>,
    pub download_rate: Option<u64>,
}

impl AccountLimits {
    /// This account's limits over `defaults`.
    pub fn over(&self, defaults: &Limits) -> Limits {
        Limits {
            quota_bytes: self.quota_bytes.unwrap_or(defaults.quota_bytes),
            quota_files: self.quota_files.unwrap_or(defaults.quota_files),
            upload_rate: self.upload_rate.unwrap_or(defaults.upload_rate),
            download_rate: self.download_rate.unwrap_or(defaults.download_rate),
        }
    }

    /// The field named `field` (one of [`LIMIT_FIELDS`]).
    pub fn field_mut(&mut self, field: &str) -> Option<&mut Option<u64>> {
        match field {
            "quota_bytes" => Some(&mut self.quota_bytes),
            "quota_files" => Some(&mut self.quota_files),
            "upload_rate" => Some(&mut self.upload_rate),
            "download_rate" => Some(&mut self.download_rate),
            _ => None,
        }
    }

    /// The fields that are set, by name.
    pub fn set_fields(&self) -> Vec<(&'static str, u64)> {
        let values = [
            self.quota_bytes,
            self.quota_files,
            self.upload_rate,
            self.download_rate,
        ];
        LIMIT_FIELDS
            .into_iter()
            .zip(values)
            .filter_map(|(name, value)| Some((name, value?)))
            .collect()
    }
}

/// Reads a limit from a users-file value: a whole number, or a size text (`10G`; for
/// `quota_files` a plain count reads the same way, `100K` being 102,400 files).
pub fn parse_limit(value: &toml::Value) -> Result<u64, String> {
    match value {
        toml::Value::Integer(number) => {
            u64::try_from(*number).map_err(|_| format!("{number} is not a whole number"))
        }
        toml::Value::String(text) => parse_byte_size(text),
        other => Err(format!(
            "expected a whole number or a size such as \"10G\", got {}",
            other.type_str()
        )),
    }
}

/// A size for people: `10.0 GiB`, `512 B`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_limit_beats_the_default_and_absent_ones_take_it() {
        let defaults = Limits {
            quota_bytes: 100,
            quota_files: 10,
            upload_rate: 0,
            download_rate: 5,
        };
        let account = AccountLimits {
            quota_bytes: Some(0),
            upload_rate: Some(7),
            ..AccountLimits::default()
        };
        assert_eq!(
            account.over(&defaults),
            Limits {
                quota_bytes: 0,
                quota_files: 10,
                upload_rate: 7,
                download_rate: 5
            }
        );
    }

    #[test]
    fn limits_read_numbers_and_sizes() {
        assert_eq!(parse_limit(&toml::Value::Integer(42)), Ok(42));
        assert_eq!(
            parse_limit(&toml::Value::String("10G".into())),
            Ok(10 << 30)
        );
        assert!(parse_limit(&toml::Value::Integer(-1)).is_err());
        assert!(parse_limit(&toml::Value::String("10X".into())).is_err());
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(10 << 30), "10.0 GiB");
    }
}
