//! Byte sizes, parsed and shown the same way by every frontend.
//!
//! Admins type quotas as `50GB`, `500MiB`, `1.5TB` ([`parse`]) and see them again
//! exactly as typed ([`display`]): `kB`/`MB`/`GB`/`TB` are powers of 1000 and
//! `KiB`/`MiB`/`GiB`/`TiB` powers of 1024, as the SI and IEC define them, so `50GB`
//! never comes back as a rounded `46 GiB`. Traffic is shown rounded to a tenth in
//! SI units, in the reader's language ([`traffic`]): the bot and the dashboard show
//! the same figure for the same bytes.

use crate::model::Locale;

/// Units, largest first within each family; matched case-insensitively.
const UNITS: [(&str, u64); 9] = [
    ("TiB", 1 << 40),
    ("TB", 1_000_000_000_000),
    ("GiB", 1 << 30),
    ("GB", 1_000_000_000),
    ("MiB", 1 << 20),
    ("MB", 1_000_000),
    ("KiB", 1 << 10),
    ("kB", 1_000),
    ("B", 1),
];

/// Decimals accepted after the point (`1.125GB`); more is a typo, not a size.
const MAX_DECIMALS: usize = 6;

const EXAMPLES: &str = "e.g. 50GB, 500MiB or 1.5TB";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    #[error("a size is needed, {EXAMPLES}")]
    Empty,
    #[error("{0:?} is negative: a size is a positive amount, {EXAMPLES}")]
    Negative(String),
    #[error("{0:?} is not a number followed by a unit, {EXAMPLES}")]
    NotANumber(String),
    #[error("{0:?} is zero: use `none` to remove a quota")]
    Zero(String),
    #[error("{0:?} has no unit: add one of B, kB, MB, GB, TB, KiB, MiB, GiB, TiB, {EXAMPLES}")]
    NoUnit(String),
    #[error(
        "{text:?}: unknown unit {unit:?}; use B, kB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024)"
    )]
    UnknownUnit { text: String, unit: String },
    #[error("{0:?} has more than {MAX_DECIMALS} decimals")]
    TooPrecise(String),
    #[error("{0:?} is not a whole number of bytes")]
    FractionalBytes(String),
    #[error("{0:?} is too large")]
    TooLarge(String),
}

/// Parses `50GB`, `500 MiB`, `1.5TB`, `2048B` into bytes. Strict: a unit is required,
/// no sign, no exponent, no zero, and the result must be whole bytes.
pub fn parse(text: &str) -> Result<u64, SizeError> {
    let s = text.trim();
    if s.is_empty() {
        return Err(SizeError::Empty);
    }
    if s.starts_with('-') {
        return Err(SizeError::Negative(s.into()));
    }
    let number_len = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(number_len);
    let unit = unit.trim_start();
    let (whole, fraction) = match number.split_once('.') {
        Some((w, f)) => (w, f),
        None => (number, ""),
    };
    let well_formed = !whole.is_empty()
        && !fraction.contains('.')
        && (number.len() == whole.len() || !fraction.is_empty());
    if !well_formed {
        return Err(SizeError::NotANumber(s.into()));
    }
    if whole.bytes().chain(fraction.bytes()).all(|b| b == b'0') {
        return Err(SizeError::Zero(s.into()));
    }
    if unit.is_empty() {
        return Err(SizeError::NoUnit(s.into()));
    }
    let Some(&(_, scale)) = UNITS.iter().find(|(u, _)| u.eq_ignore_ascii_case(unit)) else {
        return Err(SizeError::UnknownUnit {
            text: s.into(),
            unit: unit.into(),
        });
    };
    if fraction.len() > MAX_DECIMALS {
        return Err(SizeError::TooPrecise(s.into()));
    }
    let too_large = || SizeError::TooLarge(s.into());
    // Digits only from here on; u128 holds any whole part that could fit in u64 times
    // the largest unit, and the fraction has at most MAX_DECIMALS digits.
    let whole: u128 = whole.parse().map_err(|_| too_large())?;
    let fraction_value: u128 = if fraction.is_empty() {
        0
    } else {
        fraction.parse().map_err(|_| too_large())?
    };
    let denominator = 10u128.pow(u32::try_from(fraction.len()).unwrap_or(0));
    let scale = u128::from(scale);
    let fraction_bytes = fraction_value * scale;
    if !fraction_bytes.is_multiple_of(denominator) {
        return Err(SizeError::FractionalBytes(s.into()));
    }
    let bytes = whole
        .checked_mul(scale)
        .and_then(|b| b.checked_add(fraction_bytes / denominator))
        .ok_or_else(too_large)?;
    u64::try_from(bytes).map_err(|_| too_large())
}

/// `50 GB`, `500 MiB`, `1.5 TB`: the largest unit that shows `bytes` exactly with at
/// most two decimals, so what an admin typed comes back the same. Other amounts are
/// shown in the largest binary unit, cut (not rounded) to two decimals.
pub fn display(bytes: u64) -> String {
    let bytes = u128::from(bytes);
    let exact = UNITS.iter().find(|(_, scale)| {
        let scale = u128::from(*scale);
        // Whole bytes always divide: above a kilobyte a unit reads better.
        (scale > 1 || bytes < 1_000) && bytes >= scale && (bytes * 100).is_multiple_of(scale)
    });
    let (unit, scale) = match exact {
        Some(&(unit, scale)) => (unit, scale),
        None => UNITS
            .iter()
            .copied()
            .filter(|(unit, _)| unit.contains('i') || *unit == "B")
            .find(|(_, scale)| bytes >= u128::from(*scale))
            .unwrap_or(("B", 1)),
    };
    let hundredths = bytes * 100 / u128::from(scale);
    let (whole, frac) = (hundredths / 100, hundredths % 100);
    match frac {
        0 => format!("{whole} {unit}"),
        f if f.is_multiple_of(10) => format!("{whole}.{} {unit}", f / 10),
        f => format!("{whole}.{f:02} {unit}"),
    }
}

/// Traffic as people read it: SI units, one decimal, rounded (`8.0 GB`, `999 B`), with
/// the decimal separator and unit names of `l` (`8,0 ГБ`).
pub fn traffic(n: u64, l: Locale) -> String {
    const EN: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    const RU: [&str; 5] = ["Б", "КБ", "МБ", "ГБ", "ТБ"];
    let units = match l {
        Locale::En => EN,
        Locale::Ru => RU,
    };
    if n < 1000 {
        return format!("{n} {}", units[0]);
    }
    // Tenths of the unit, in integers: no float rounding surprises.
    let mut unit = 1;
    let mut scale: u128 = 1000;
    while unit + 1 < units.len() && u128::from(n) >= scale * 1000 {
        scale *= 1000;
        unit += 1;
    }
    let mut tenths = (u128::from(n) * 10 + scale / 2) / scale;
    // 999.96 MB rounds to 1000.0 MB: say 1.0 GB instead.
    if tenths >= 10_000 && unit + 1 < units.len() {
        scale *= 1000;
        unit += 1;
        tenths = (u128::from(n) * 10 + scale / 2) / scale;
    }
    let sep = match l {
        Locale::En => '.',
        Locale::Ru => ',',
    };
    format!("{}{sep}{} {}", tenths / 10, tenths % 10, units[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_sizes_parse_to_bytes() {
        for (text, bytes) in [
            ("50GB", 50_000_000_000),
            ("500MiB", 500 * 1024 * 1024),
            ("1.5TB", 1_500_000_000_000),
            ("1.5 TiB", 3 << 39),
            (" 2048B ", 2_048),
            ("50gb", 50_000_000_000),
            ("1kB", 1_000),
            ("1KiB", 1_024),
            ("0.5GiB", 1 << 29),
            ("1.000001MB", 1_000_001),
            ("16777215TiB", 16_777_215 << 40),
        ] {
            assert_eq!(parse(text), Ok(bytes), "{text}");
        }
    }

    #[test]
    fn bad_sizes_are_refused_with_a_reason() {
        use SizeError as E;
        type Expect = fn(&SizeError) -> bool;
        let cases: [(&str, Expect); 16] = [
            ("", |e| matches!(e, E::Empty)),
            ("  ", |e| matches!(e, E::Empty)),
            ("-1", |e| matches!(e, E::Negative(_))),
            ("-5GB", |e| matches!(e, E::Negative(_))),
            ("0", |e| matches!(e, E::Zero(_))),
            ("0GB", |e| matches!(e, E::Zero(_))),
            ("0.0MiB", |e| matches!(e, E::Zero(_))),
            ("50", |e| matches!(e, E::NoUnit(_))),
            (
                "50XB",
                |e| matches!(e, E::UnknownUnit { unit, .. } if unit == "XB"),
            ),
            ("50G", |e| matches!(e, E::UnknownUnit { .. })),
            ("1e9GB", |e| matches!(e, E::UnknownUnit { .. })),
            ("GB", |e| matches!(e, E::NotANumber(_))),
            (".5GB", |e| matches!(e, E::NotANumber(_))),
            ("5.GB", |e| matches!(e, E::NotANumber(_))),
            ("1.2.3GB", |e| matches!(e, E::NotANumber(_))),
            ("1.5B", |e| matches!(e, E::FractionalBytes(_))),
        ];
        for (text, expected) in cases {
            let err = parse(text).expect_err(text);
            assert!(expected(&err), "{text}: {err:?}");
            assert!(!err.to_string().is_empty());
        }
        assert!(matches!(
            parse("1.0000001GB"),
            Err(SizeError::TooPrecise(_))
        ));
        assert!(matches!(parse("16777217TiB"), Err(SizeError::TooLarge(_))));
        assert!(matches!(
            parse("99999999999999999999999999999999999999999GB"),
            Err(SizeError::TooLarge(_))
        ));
        // The messages say what to do.
        assert!(parse("50XB").unwrap_err().to_string().contains("GiB"));
        assert!(parse("0").unwrap_err().to_string().contains("none"));
    }

    #[test]
    fn display_shows_what_was_typed() {
        for text in ["50 GB", "500 MiB", "1.5 TB", "1.25 GiB", "2 B", "999 kB"] {
            let bytes = parse(text).unwrap();
            assert_eq!(display(bytes), text);
            assert_eq!(parse(&display(bytes)), Ok(bytes));
        }
        assert_eq!(display(1_500_000_000_000), "1.5 TB");
        assert_eq!(display(1_234_567), "1.17 MiB");
        assert_eq!(display(1_000_001), "976.56 KiB");
        assert_eq!(display(0), "0 B");
    }

    #[test]
    fn display_round_trips() {
        let mut x: u64 = 1;
        for _ in 0..2_000 {
            // A cheap deterministic spread over many magnitudes.
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let bytes = (x >> (x % 50)) | 1;
            let shown = display(bytes);
            if let Ok(back) = parse(&shown) {
                assert!(back <= bytes, "{bytes} → {shown} → {back}");
            }
        }
    }

    #[test]
    fn traffic_is_human_in_both_languages() {
        assert_eq!(traffic(0, Locale::En), "0 B");
        assert_eq!(traffic(999, Locale::Ru), "999 Б");
        assert_eq!(traffic(1000, Locale::En), "1.0 kB");
        assert_eq!(traffic(8_000_000_000, Locale::En), "8.0 GB");
        assert_eq!(traffic(8_000_000_000, Locale::Ru), "8,0 ГБ");
        assert_eq!(traffic(1_250_000, Locale::En), "1.3 MB");
        assert_eq!(traffic(999_960_000, Locale::En), "1.0 GB");
        assert_eq!(traffic(999_940_000, Locale::En), "999.9 MB");
        assert_eq!(traffic(u64::MAX, Locale::En), "18446744.1 TB");
    }
}
