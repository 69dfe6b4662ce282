//! Ends of access as admins type them (`--until 2027-01-31T18:00Z`) and read them in
//! lists: a date alone is 00:00 UTC that day, and a time is shown only when it is
//! not midnight, so what a list shows can be typed back.

use time::format_description::FormatItem;
use time::macros::format_description;
use time::{Date, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};
use vpnctl_core::Timestamp;

const EXAMPLES: &str = "e.g. 2027-01-31 (00:00 UTC), 2027-01-31T18:00Z or 2027-01-31T18:00+03:00";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WhenError {
    #[error("{0:?} is not a date or date-time, {EXAMPLES}")]
    Malformed(String),
    #[error("{0:?} has a time but no zone: add Z (UTC) or an offset like +03:00")]
    NoZone(String),
}

const DATE: &[FormatItem<'static>] = format_description!("[year]-[month]-[day]");
const HM: &[FormatItem<'static>] = format_description!("[hour]:[minute]");
const HMS: &[FormatItem<'static>] = format_description!("[hour]:[minute]:[second]");
const OFFSET: &[FormatItem<'static>] =
    format_description!("[offset_hour sign:mandatory]:[offset_minute]");

/// Parses `2027-01-31`, `2027-01-31T18:00Z`, `2027-01-31T18:00:30Z`,
/// `2027-01-31T18:00+03:00` (also with a space for the `T`, as lists show it).
pub fn parse_until(text: &str) -> Result<Timestamp, WhenError> {
    let malformed = || WhenError::Malformed(text.to_owned());
    let s = text.trim();
    let (date, rest) = match s.find(['T', 't', ' ']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let date = Date::parse(date, DATE).map_err(|_| malformed())?;
    let at = match rest {
        None => date.midnight().assume_utc(),
        Some(rest) => {
            let (clock, zone) = if let Some(clock) = rest.strip_suffix(['Z', 'z']) {
                (clock, UtcOffset::UTC)
            } else if let Some(i) = rest.rfind(['+', '-']) {
                let zone = UtcOffset::parse(&rest[i..], OFFSET).map_err(|_| malformed())?;
                (&rest[..i], zone)
            } else {
                return Err(WhenError::NoZone(text.to_owned()));
            };
            let clock = Time::parse(clock, HMS)
                .or_else(|_| Time::parse(clock, HM))
                .map_err(|_| malformed())?;
            PrimitiveDateTime::new(date, clock).assume_offset(zone)
        }
    };
    Ok(Timestamp(at.unix_timestamp()))
}

/// `2027-01-31` at midnight UTC, else `2027-01-31 18:00Z` (to the minute: lists
/// need no seconds).
pub fn show(at: Timestamp) -> String {
    let Ok(t) = OffsetDateTime::from_unix_timestamp(at.seconds()) else {
        return at.seconds().to_string();
    };
    let date = t.format(DATE).unwrap_or_default();
    if t.time() == Time::MIDNIGHT {
        date
    } else {
        format!("{date} {}Z", t.format(HM).unwrap_or_default())
    }
}

/// An end of access for a list: [`show`], or `unlimited`.
pub fn show_until(until: Option<Timestamp>) -> String {
    until.map_or_else(|| "unlimited".into(), show)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2027-01-31T00:00:00Z.
    const JAN31: i64 = 1_801_353_600;

    #[test]
    fn dates_are_midnight_utc_and_times_need_a_zone() {
        assert_eq!(parse_until("2027-01-31"), Ok(Timestamp(JAN31)));
        assert_eq!(
            parse_until("2027-01-31T18:00Z"),
            Ok(Timestamp(JAN31 + 18 * 3600))
        );
        assert_eq!(
            parse_until("2027-01-31 18:00:30z"),
            Ok(Timestamp(JAN31 + 18 * 3600 + 30))
        );
        assert_eq!(
            parse_until("2027-01-31T18:00+03:00"),
            Ok(Timestamp(JAN31 + 15 * 3600))
        );
        assert_eq!(
            parse_until("2027-01-31T01:00-02:30"),
            Ok(Timestamp(JAN31 + 3 * 3600 + 1800))
        );
        assert!(matches!(
            parse_until("2027-01-31T18:00"),
            Err(WhenError::NoZone(_))
        ));
        for bad in [
            "",
            "tomorrow",
            "2027-02-30",
            "2027-1-31",
            "31.01.2027",
            "2027-01-31T25:00Z",
        ] {
            assert!(
                matches!(parse_until(bad), Err(WhenError::Malformed(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn lists_show_the_time_only_when_it_is_not_midnight_and_read_back() {
        for (at, text) in [
            (JAN31, "2027-01-31"),
            (JAN31 + 18 * 3600, "2027-01-31 18:00Z"),
        ] {
            assert_eq!(show(Timestamp(at)), text);
            assert_eq!(parse_until(text), Ok(Timestamp(at)), "{text} reads back");
        }
        assert_eq!(show(Timestamp(JAN31 + 61)), "2027-01-31 00:01Z");
        assert_eq!(show_until(None), "unlimited");
    }
}
