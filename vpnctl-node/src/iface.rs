//! Validated interface names.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A network interface name we are willing to create, pass to `ip` or `nft` and use in
/// a UAPI socket path: 1–15 characters (Linux `IFNAMSIZ` − 1) of `[A-Za-z0-9_-]`,
/// starting with a letter. Deliberately stricter than Linux, so that the name can be
/// written into an nftables ruleset or a file name without quoting concerns.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IfaceName(String);

/// An interface name outside the accepted alphabet or length.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid interface name {name:?}: use 1-15 characters of A-Z a-z 0-9 _ -, starting with a letter"
)]
pub struct IfaceNameError {
    name: String,
}

impl IfaceName {
    pub fn new(name: &str) -> Result<Self, IfaceNameError> {
        let ok = (1..=15).contains(&name.len())
            && name.as_bytes()[0].is_ascii_alphabetic()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if ok {
            Ok(Self(name.to_owned()))
        } else {
            Err(IfaceNameError {
                name: name.chars().take(32).collect(),
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for IfaceName {
    type Err = IfaceNameError;
    fn from_str(s: &str) -> Result<Self, IfaceNameError> {
        Self::new(s)
    }
}

impl TryFrom<String> for IfaceName {
    type Error = IfaceNameError;
    fn try_from(s: String) -> Result<Self, IfaceNameError> {
        Self::new(&s)
    }
}

impl From<IfaceName> for String {
    fn from(name: IfaceName) -> Self {
        name.0
    }
}

impl AsRef<str> for IfaceName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IfaceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for IfaceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_usual_names_and_rejects_injection() {
        for good in ["wg0", "vpnctl-exit_1", "a", "abcdefghijklmno"] {
            assert!(IfaceName::new(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "0wg",
            "abcdefghijklmnop",
            "wg0\"; flush ruleset",
            "wg 0",
            "../x",
            "wg.0",
            "wg/0",
        ] {
            assert!(IfaceName::new(bad).is_err(), "{bad}");
        }
        assert!(serde_json::from_str::<IfaceName>("\"wg;x\"").is_err());
        let name: IfaceName = serde_json::from_str("\"wg0\"").unwrap();
        assert_eq!(serde_json::to_string(&name).unwrap(), "\"wg0\"");
    }
}
