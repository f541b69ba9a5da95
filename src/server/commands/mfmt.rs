//! MFMT (draft-somers-ftp-mfxx): `MFMT YYYYMMDDHHMMSS path` sets a file's modification time,
//! in UTC, as rclone's SetModTime and FileZilla's "preserve timestamps" do after an upload.

use super::{client_path, logged_in_user};
use crate::accounts::auth::FerryUser;
use crate::storage::{FerryStorage, to_reply};
use async_trait::async_trait;
use chrono::NaiveDate;
use libunftp::options::{CommandExtension, ExtensionContext, Reply, ReplyCode};
use std::time::SystemTime;

#[derive(Debug)]
pub struct Mfmt;

#[async_trait]
impl CommandExtension<FerryStorage, FerryUser> for Mfmt {
    async fn handle(&self, context: &ExtensionContext<FerryStorage, FerryUser>) -> Reply {
        let Some((time_text, path)) = context.arguments.split_once(' ') else {
            return Reply::new(
                ReplyCode::ParameterSyntaxError,
                "MFMT needs a time and a path",
            );
        };
        if path.is_empty() {
            return Reply::new(
                ReplyCode::ParameterSyntaxError,
                "MFMT needs a time and a path",
            );
        }
        let Some(time) = parse_time_val(time_text) else {
            return Reply::new(
                ReplyCode::ParameterSyntaxError,
                "Invalid time: expected YYYYMMDDHHMMSS (UTC)",
            );
        };
        let user = match logged_in_user(&context.user) {
            Ok(user) => user,
            Err(reply) => return reply,
        };
        let target = client_path(&context.cwd, path);
        match context.storage.set_modified(user, &target, time).await {
            // The draft's reply: the time set and the path, as the client wrote them.
            Ok(()) => {
                Reply::new_with_string(ReplyCode::FileStatus, format!("Modify={time_text}; {path}"))
            }
            Err(error) => to_reply(&error),
        }
    }

    fn feature(&self) -> Option<String> {
        Some("MFMT".to_owned())
    }
}

/// RFC 3659's time-val, which MFMT uses: `YYYYMMDDHHMMSS[.sss]`, in UTC. None for anything
/// else, including dates that do not exist (20230230...).
fn parse_time_val(text: &str) -> Option<SystemTime> {
    let (whole, fraction) = match text.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (text, None),
    };
    if whole.len() != 14 || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let number = |range: std::ops::Range<usize>| whole.get(range)?.parse::<u32>().ok();
    let year = i32::try_from(number(0..4)?).ok()?;
    let nanos = match fraction {
        None => 0,
        Some(digits)
            if (1..=9).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) =>
        {
            // ".5" is half a second: pad to nine digits.
            format!("{digits:0<9}").parse().ok()?
        }
        Some(_) => return None,
    };
    let time = NaiveDate::from_ymd_opt(year, number(4..6)?, number(6..8)?)?.and_hms_nano_opt(
        number(8..10)?,
        number(10..12)?,
        number(12..14)?,
        nanos,
    )?;
    Some(SystemTime::from(time.and_utc()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn time_vals_are_utc_with_an_optional_fraction() {
        let at = |secs: u64| UNIX_EPOCH + Duration::from_secs(secs);
        assert_eq!(parse_time_val("19700101000000"), Some(at(0)));
        assert_eq!(parse_time_val("20200102030405"), Some(at(1_577_934_245)));
        assert_eq!(
            parse_time_val("20200102030405.5"),
            Some(at(1_577_934_245) + Duration::from_millis(500))
        );
    }

    #[test]
    fn malformed_or_impossible_times_are_refused() {
        for bad in [
            "",
            "2020010203040",
            "202001020304056",
            "2020010203040x",
            "20200230000000",
            "20201301000000",
            "20200101250000",
            "20200101000000.",
            "20200101000000.1234567890",
            "+2020101000000",
        ] {
            assert_eq!(parse_time_val(bad), None, "{bad:?}");
        }
    }
}
