//! The grammar under the texts: counted nouns with the plural rules of each language
//! (Russian: one / few / many), dates as each reader expects them, spans of time.
//!
//! Dates and times are UTC (the control plane's calendar): Russian `01.01.2027`,
//! English `1 Jan 2027`; a time of day says `UTC`.

use std::time::Duration;

use time::OffsetDateTime;
use vpnctl_core::{Locale, Timestamp};

/// Russian plural categories (CLDR): `one` 1, 21, 31…; `few` 2–4, 22–24…; `many`
/// the rest, 11–14 included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuPlural {
    One,
    Few,
    Many,
}

pub fn ru_plural(n: u64) -> RuPlural {
    match (n % 10, n % 100) {
        (1, m) if m != 11 => RuPlural::One,
        (2..=4, m) if !(12..=14).contains(&m) => RuPlural::Few,
        _ => RuPlural::Many,
    }
}

/// A noun in the forms a count needs: English singular and plural; Russian for
/// one, few and many (in the case the phrase needs).
#[derive(Debug, Clone, Copy)]
pub struct Noun {
    pub en: [&'static str; 2],
    pub ru: [&'static str; 3],
}

impl Noun {
    /// The noun's form for `n`, without the number.
    pub fn word(&self, n: u64, l: Locale) -> &'static str {
        match l {
            Locale::En => self.en[usize::from(n != 1)],
            Locale::Ru => match ru_plural(n) {
                RuPlural::One => self.ru[0],
                RuPlural::Few => self.ru[1],
                RuPlural::Many => self.ru[2],
            },
        }
    }

    /// `n` and the noun: "5 days", "5 дней".
    pub fn count(&self, n: u64, l: Locale) -> String {
        format!("{n} {}", self.word(n, l))
    }
}

// Russian forms in the accusative ("через 5 минут", "5 минут назад", "ещё 2 дня"),
// which for these nouns is also the nominative of a plain count.
pub const DAYS: Noun = Noun {
    en: ["day", "days"],
    ru: ["день", "дня", "дней"],
};
pub const HOURS: Noun = Noun {
    en: ["hour", "hours"],
    ru: ["час", "часа", "часов"],
};
pub const MINUTES: Noun = Noun {
    en: ["minute", "minutes"],
    ru: ["минуту", "минуты", "минут"],
};
pub const SECONDS: Noun = Noun {
    en: ["second", "seconds"],
    ru: ["секунду", "секунды", "секунд"],
};
/// "У вас 2 устройства".
pub const DEVICES: Noun = Noun {
    en: ["device", "devices"],
    ru: ["устройство", "устройства", "устройств"],
};
/// After "до" (genitive): "до 1 устройства", "до 3 устройств".
pub const DEVICES_UP_TO: Noun = Noun {
    en: ["device", "devices"],
    ru: ["устройства", "устройств", "устройств"],
};
/// After "на" (accusative): "доступ на 1 день", "на 30 дней".
pub const DAYS_FOR: Noun = DAYS;
pub const STRAY_PEERS: Noun = Noun {
    en: ["unknown peer", "unknown peers"],
    ru: ["посторонний пир", "посторонних пира", "посторонних пиров"],
};

fn utc(t: Timestamp) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(t.seconds()).ok()
}

const MONTHS_EN: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// The calendar date (UTC): `01.01.2027`, `1 Jan 2027`.
pub fn date(t: Timestamp, l: Locale) -> String {
    let Some(d) = utc(t) else {
        return t.to_date();
    };
    let month = u8::from(d.month());
    match l {
        Locale::Ru => format!("{:02}.{month:02}.{}", d.day(), d.year()),
        Locale::En => format!(
            "{} {} {}",
            d.day(),
            MONTHS_EN[usize::from(month - 1)],
            d.year()
        ),
    }
}

/// The time of day (UTC): `14:05 UTC`.
pub fn time_of_day(t: Timestamp) -> String {
    utc(t).map_or_else(
        || t.to_rfc3339(),
        |d| format!("{:02}:{:02} UTC", d.hour(), d.minute()),
    )
}

/// Calendar days from `now`'s date to `then`'s date (UTC): 0 today, 1 tomorrow.
/// Counted by dates, not by 24-hour spans, so that the count always agrees with
/// the date printed beside it.
pub fn days_between(now: Timestamp, then: Timestamp) -> i64 {
    match (utc(now), utc(then)) {
        (Some(a), Some(b)) => i64::from(b.date().to_julian_day() - a.date().to_julian_day()),
        _ => (then.seconds() - now.seconds()).div_euclid(86_400),
    }
}

/// A span of time in the largest unit that fits it, rounded up: "10 minutes",
/// "через 10 минут" needs "10 минут".
pub fn span(d: Duration, l: Locale) -> String {
    let s = d.as_secs();
    if s >= 2 * 86_400 && s.is_multiple_of(86_400) || s >= 7 * 86_400 {
        DAYS.count(s.div_ceil(86_400), l)
    } else if s >= 2 * 3600 && s.is_multiple_of(3600) || s >= 24 * 3600 {
        HOURS.count(s.div_ceil(3600), l)
    } else if s >= 60 {
        MINUTES.count(s.div_ceil(60), l)
    } else {
        SECONDS.count(s.max(1), l)
    }
}

/// How long ago, for "last connected …": "just now", "5 minutes ago", "2 days ago".
pub fn ago(secs: i64, l: Locale) -> String {
    let s = u64::try_from(secs.max(0)).unwrap_or(0);
    let (n, noun) = if s < 60 {
        return match l {
            Locale::En => "just now".into(),
            Locale::Ru => "только что".into(),
        };
    } else if s < 3600 {
        (s / 60, MINUTES)
    } else if s < 2 * 86_400 {
        (s / 3600, HOURS)
    } else {
        (s / 86_400, DAYS)
    };
    match l {
        Locale::En => format!("{} ago", noun.count(n, l)),
        Locale::Ru => format!("{} назад", noun.count(n, l)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn russian_plurals_follow_one_few_many() {
        let cases = [
            (0, "0 дней"),
            (1, "1 день"),
            (2, "2 дня"),
            (4, "4 дня"),
            (5, "5 дней"),
            (11, "11 дней"),
            (12, "12 дней"),
            (14, "14 дней"),
            (21, "21 день"),
            (22, "22 дня"),
            (25, "25 дней"),
            (101, "101 день"),
            (111, "111 дней"),
            (112, "112 дней"),
        ];
        for (n, want) in cases {
            assert_eq!(DAYS.count(n, Locale::Ru), want);
        }
        for (n, want) in [
            (1, "1 устройство"),
            (2, "2 устройства"),
            (5, "5 устройств"),
            (11, "11 устройств"),
            (21, "21 устройство"),
            (22, "22 устройства"),
            (25, "25 устройств"),
        ] {
            assert_eq!(DEVICES.count(n, Locale::Ru), want);
        }
        for (n, want) in [
            (1, "до 1 устройства"),
            (2, "до 2 устройств"),
            (21, "до 21 устройства"),
        ] {
            assert_eq!(format!("до {}", DEVICES_UP_TO.count(n, Locale::Ru)), want);
        }
    }

    #[test]
    fn english_plurals() {
        for (n, want) in [
            (0, "0 days"),
            (1, "1 day"),
            (2, "2 days"),
            (11, "11 days"),
            (21, "21 days"),
        ] {
            assert_eq!(DAYS.count(n, Locale::En), want);
        }
    }

    #[test]
    fn dates_as_each_reader_writes_them() {
        let t = Timestamp(1_798_761_600); // 2027-01-01T00:00:00Z
        assert_eq!(date(t, Locale::Ru), "01.01.2027");
        assert_eq!(date(t, Locale::En), "1 Jan 2027");
        assert_eq!(time_of_day(t.plus_seconds(14 * 3600 + 5 * 60)), "14:05 UTC");
        assert_eq!(days_between(t, t.plus_seconds(86_399)), 0);
        assert_eq!(
            days_between(t.plus_seconds(86_399), t.plus_seconds(86_401)),
            1
        );
        assert_eq!(days_between(t, t.plus_days(30)), 30);
    }

    #[test]
    fn spans_and_ago() {
        assert_eq!(span(Duration::from_secs(600), Locale::En), "10 minutes");
        assert_eq!(span(Duration::from_secs(60), Locale::Ru), "1 минуту");
        assert_eq!(span(Duration::from_secs(1), Locale::Ru), "1 секунду");
        assert_eq!(span(Duration::from_secs(3600), Locale::En), "60 minutes");
        assert_eq!(span(Duration::from_secs(7200), Locale::Ru), "2 часа");
        assert_eq!(span(Duration::from_secs(2 * 86_400), Locale::Ru), "2 дня");
        assert_eq!(span(Duration::from_secs(90), Locale::En), "2 minutes");
        assert_eq!(ago(30, Locale::En), "just now");
        assert_eq!(ago(300, Locale::Ru), "5 минут назад");
        assert_eq!(ago(3 * 3600, Locale::En), "3 hours ago");
        assert_eq!(ago(21 * 86_400, Locale::Ru), "21 день назад");
    }
}
