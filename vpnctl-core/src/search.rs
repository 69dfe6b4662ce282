//! Searching text: what "contains, ignoring case" means for every filter — the
//! API's user and device names, the dashboard's filter line — in one place.

/// A search text, lowercased once; matches names that contain it ignoring case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Needle(String);

impl Needle {
    pub fn new(text: &str) -> Self {
        Self(text.to_lowercase())
    }

    /// Whether the needle is empty (it then matches everything).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `name` contains the needle, ignoring case. ASCII names are compared
    /// in place (a filtered page tests up to 20,000 rows); others are lowercased
    /// as the needle was, so every Unicode case rule (a final Σ) applies alike.
    pub fn matches(&self, name: &str) -> bool {
        let needle = self.0.as_bytes();
        if name.is_ascii() && self.0.is_ascii() {
            return needle.is_empty()
                || name
                    .as_bytes()
                    .windows(needle.len())
                    .any(|w| w.eq_ignore_ascii_case(needle));
        }
        name.to_lowercase().contains(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::Needle;

    #[test]
    fn contains_ignoring_case() {
        for (needle, name, want) in [
            ("iphone", "My iPhone 15", true),
            ("IPHONE", "iphone", true),
            ("e 1", "iPhone 15", true),
            ("", "anything", true),
            ("phones", "iPhone", false),
            ("longer than the name", "short", false),
            ("айфон", "Айфон мамы", true),
            ("АЙФОН", "айфон", true),
            ("ΟΔΟΣ", "οδος", true),
            ("ß", "Straße", true),
            ("é", "CAFÉ", true),
            ("cafe", "CAFÉ", false),
        ] {
            assert_eq!(
                Needle::new(needle).matches(name),
                want,
                "{needle:?} in {name:?}"
            );
        }
    }
}
