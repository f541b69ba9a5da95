//! The value parsers: text (or TOML) to the typed value of a key, or a message that says what
//! was expected. The caller prefixes where the value came from and the key's name.

use super::layers::RawValue;
use crate::observe::logging::LogFormat;
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};
use std::num::IntErrorKind;
use std::ops::RangeInclusive;
use std::path::{Component, PathBuf};
use std::time::Duration;

pub(super) fn text(value: RawValue) -> Result<String, String> {
    match value {
        RawValue::Text(text) => Ok(text),
        other => Err(format!("expected a string, found {}", other.describe())),
    }
}

pub(super) fn whole_number(value: RawValue) -> Result<u64, String> {
    match value {
        RawValue::Integer(number) => {
            u64::try_from(number).map_err(|_| format!("{number} is not a whole number"))
        }
        RawValue::Text(text) => text
            .trim()
            .parse()
            .map_err(|error: std::num::ParseIntError| match error.kind() {
                IntErrorKind::PosOverflow => format!("{text:?} is too large"),
                _ => format!("{text:?} is not a whole number"),
            }),
        other => Err(format!(
            "expected a whole number, found {}",
            other.describe()
        )),
    }
}

pub(super) fn too_large(number: u64) -> String {
    format!("{number} is too large")
}

pub(super) fn count(value: RawValue, minimum: u64) -> Result<usize, String> {
    let number = whole_number(value)?;
    if number < minimum {
        return Err(format!("must be at least {minimum}, not {number}"));
    }
    usize::try_from(number).map_err(|_| too_large(number))
}

pub(super) fn seconds(value: RawValue, minimum: u64) -> Result<Duration, String> {
    let number = whole_number(value)?;
    if number < minimum {
        return Err(format!("must be at least {minimum} seconds, not {number}"));
    }
    Ok(Duration::from_secs(number))
}

/// TOML booleans, or (from environment variables and flags) true/false, yes/no, 1/0.
pub(super) fn boolean(value: RawValue) -> Result<bool, String> {
    match value {
        RawValue::Boolean(boolean) => Ok(boolean),
        RawValue::Text(text) => match text.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" => Ok(true),
            "false" | "no" | "0" => Ok(false),
            _ => Err(format!(
                "{text:?} is not a boolean (true/false, yes/no, 1/0)"
            )),
        },
        other => Err(format!(
            "expected true or false, found {}",
            other.describe()
        )),
    }
}

pub(super) fn parse_bind(text: &str) -> Result<SocketAddr, String> {
    text.trim().parse().map_err(|_| {
        format!("{text:?} is not an address ADDR:PORT (e.g. 127.0.0.1:2121 or [::]:2121)")
    })
}

pub(super) fn parse_path(text: String) -> Result<PathBuf, String> {
    if text.is_empty() {
        return Err("must not be empty".to_owned());
    }
    Ok(PathBuf::from(text))
}

pub(super) fn parse_port_range(text: &str) -> Result<RangeInclusive<u16>, String> {
    let range = text.split_once('-').and_then(|(low, high)| {
        let low: u16 = low.trim().parse().ok()?;
        let high: u16 = high.trim().parse().ok()?;
        (low >= 1 && low <= high).then_some(low..=high)
    });
    range.ok_or_else(|| format!("{text:?} is not a port range LO-HI (ports 1-65535, LO <= HI)"))
}

/// An IPv4 address or a DNS name: PASV replies can only carry IPv4 (IPv6 clients use EPSV,
/// which announces only a port).
pub(super) fn parse_passive_host(text: String) -> Result<String, String> {
    let host = text.trim();
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(_)) => Ok(host.to_owned()),
        Ok(IpAddr::V6(_)) => Err(format!(
            "{text:?} is an IPv6 address; PASV can only announce IPv4 (IPv6 clients use EPSV)"
        )),
        Err(_) if is_dns_name(host) => Ok(host.to_owned()),
        Err(_) => Err(format!(
            "{text:?} is neither an IPv4 address nor a DNS name"
        )),
    }
}

/// RFC 1123 host name syntax; an all-numeric last label is a mistyped IPv4 address, not a name.
pub(super) fn is_dns_name(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    let labels_ok = host.split('.').all(|label| {
        (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    });
    let last_label_numeric = host
        .rsplit('.')
        .next()
        .is_some_and(|label| label.bytes().all(|b| b.is_ascii_digit()));
    !host.is_empty() && host.len() <= 253 && labels_ok && !last_label_numeric
}

/// One line: the greeting is sent as a 220 reply, and a line break in it would let the
/// configuration forge further reply lines.
pub(super) fn parse_greeting(text: String) -> Result<String, String> {
    if text.chars().any(char::is_control) {
        return Err(format!(
            "{text:?} must be a single line without control characters"
        ));
    }
    Ok(text)
}

pub(super) fn parse_log_format(text: &str) -> Result<LogFormat, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "human" => Ok(LogFormat::Human),
        "json" => Ok(LogFormat::Json),
        _ => Err(format!("{text:?} is not a log format (human or json)")),
    }
}

pub(super) fn parse_log_level(text: &str) -> Result<slog::Level, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "error" => Ok(slog::Level::Error),
        "warn" => Ok(slog::Level::Warning),
        "info" => Ok(slog::Level::Info),
        "debug" => Ok(slog::Level::Debug),
        "trace" => Ok(slog::Level::Trace),
        _ => Err(format!(
            "{text:?} is not a log level (error, warn, info, debug, trace)"
        )),
    }
}

/// A directory strictly beneath root: anonymous users must never see root itself, which holds
/// every other user's home.
pub(super) fn parse_anonymous_home(text: String) -> Result<PathBuf, String> {
    let path = PathBuf::from(&text);
    let components_ok = path
        .components()
        .all(|component| matches!(component, Component::Normal(_) | Component::CurDir));
    let names_a_directory = path
        .components()
        .any(|component| matches!(component, Component::Normal(_)));
    if !components_ok || !names_a_directory {
        return Err(format!(
            "{text:?} must be a relative path to a directory beneath root, without `..`"
        ));
    }
    Ok(path)
}

/// The names HOST accepts: a TOML array of strings in the file, or (from the environment and
/// flags) one string of names separated by commas. Each is a DNS name or an IP address
/// (RFC 7151 section 3 allows both; an IPv6 address may come in brackets), kept in lower case
/// without a trailing dot, as HOST arguments are compared.
pub(super) fn parse_host_names(value: RawValue) -> Result<Vec<String>, String> {
    text_list(value, "host names")?
        .iter()
        .map(|name| {
            normalize_host_name(name)
                .ok_or_else(|| format!("{name:?} is neither a DNS name nor an IP address"))
        })
        .collect()
}

/// The networks of `proxy_from`: a TOML array of strings in the file, or one string of
/// networks separated by commas (environment, flags); each as [`parse_network`] reads it.
pub(super) fn parse_networks(value: RawValue) -> Result<Vec<IpNet>, String> {
    text_list(value, "networks")?
        .iter()
        .map(|network| parse_network(network))
        .collect()
}

/// The items of a list key: a TOML array of strings, or a string of items separated by
/// commas; trimmed, empty ones dropped. `what` names the items in error messages.
fn text_list(value: RawValue, what: &str) -> Result<Vec<String>, String> {
    let items: Vec<String> = match value {
        RawValue::Text(text) => text.split(',').map(str::to_owned).collect(),
        RawValue::List(values) => values
            .into_iter()
            .map(|value| match value {
                RawValue::Text(text) => Ok(text),
                other => Err(format!(
                    "expected {what} (strings), found {}",
                    other.describe()
                )),
            })
            .collect::<Result<_, _>>()?,
        other => Err(format!(
            "expected a list of {what}, found {}",
            other.describe()
        ))?,
    };
    Ok(items
        .iter()
        .map(|item| item.trim())
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect())
}

/// Reads and checks one CIDR network; a bare address means just that host. Shared by
/// `proxy_from` and the users file's `allowed_networks`.
pub fn parse_network(text: &str) -> Result<IpNet, String> {
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| {
            format!(
                "{text:?} is not a network in CIDR notation (e.g. \"10.0.0.0/8\" or \"::1/128\")"
            )
        })
}

/// A host name as HOST compares it (lower case, no trailing dot, an IPv6 address without
/// brackets), or None if it is neither a DNS name nor an IP address.
pub fn normalize_host_name(name: &str) -> Option<String> {
    let unbracketed = name
        .strip_prefix('[')
        .and_then(|inner| inner.strip_suffix(']'))
        .unwrap_or(name);
    if let Ok(address) = unbracketed.parse::<IpAddr>() {
        return Some(address.to_string());
    }
    is_dns_name(name).then(|| name.trim_end_matches('.').to_ascii_lowercase())
}

/// Checks `instance_id`: it names a key prefix, so letters, digits, `.`, `-` and `_` only.
pub(super) fn parse_instance_id(text: String) -> Result<String, String> {
    let valid = text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    if text.is_empty() || text.len() > 64 || !valid {
        return Err(format!(
            "expected 1-64 letters, digits, dots, hyphens or underscores, got {text:?}"
        ));
    }
    Ok(text)
}

/// A size or a rate in bytes: a whole number, or one with a binary unit (`64K`, `500M`,
/// `10G`, `2T`; `KiB`, `MB`... read the same, as 1024-based like `ls -h` and vsftpd). `0` is
/// "no limit" wherever a limit is meant.
pub fn parse_byte_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let digits_end = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (digits, unit) = trimmed.split_at(digits_end);
    if digits.is_empty() {
        return Err(format!(
            "{text:?} is not a size (a whole number of bytes, or with K, M, G or T)"
        ));
    }
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is too large"))?;
    let unit = unit.trim().to_ascii_uppercase();
    let unit = unit
        .strip_suffix("IB")
        .or_else(|| unit.strip_suffix('B'))
        .unwrap_or(&unit);
    let shift = match unit {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => {
            return Err(format!(
                "{text:?} has an unknown unit (use K, M, G or T, powers of 1024)"
            ));
        }
    };
    number
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// A TOML integer or a size text ([`parse_byte_size`]).
pub(super) fn byte_size(value: RawValue) -> Result<u64, String> {
    match value {
        RawValue::Text(text) => parse_byte_size(&text),
        other => whole_number(other),
    }
}
