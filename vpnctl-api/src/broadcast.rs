//! Broadcasts: one text to many users, delivered by the bot through the outbox.

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

/// Longest broadcast, in characters (one Telegram message).
pub const MAX_BROADCAST: usize = 4096;

/// Who a broadcast goes to (users with a Telegram id only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "to", content = "region")]
pub enum Audience {
    /// Users whose access works now (not ended, not disabled; suspended for the
    /// quota counts as active).
    Active,
    /// Users whose access has ended.
    Lapsed,
    /// Everyone but disabled users.
    All,
    /// Users with a device on a node of this region code.
    Region(String),
}

impl std::fmt::Display for Audience {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Active => f.write_str("active"),
            Self::Lapsed => f.write_str("lapsed"),
            Self::All => f.write_str("all"),
            Self::Region(r) => write!(f, "region {r}"),
        }
    }
}

impl std::str::FromStr for Audience {
    type Err = crate::error::InvalidInput;

    /// `active`, `lapsed`, `all` or `region CODE`, as the CLI and the dashboard take
    /// it.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut words = s.split_whitespace();
        let who = words.next().unwrap_or_default().to_ascii_lowercase();
        let code = words.next();
        let audience = match (who.as_str(), code, words.next()) {
            ("active", None, None) => Self::Active,
            ("lapsed", None, None) => Self::Lapsed,
            ("all", None, None) => Self::All,
            ("region", Some(code), None) => Self::Region(code.to_owned()),
            ("region", None, None) => {
                return Err(crate::error::InvalidInput::new(
                    "audience",
                    "region needs the region code, e.g. `region de-fra`",
                ));
            }
            _ => {
                return Err(crate::error::InvalidInput::new(
                    "audience",
                    format!("{s:?}: say active, lapsed, all or region CODE"),
                ));
            }
        };
        Ok(audience)
    }
}

/// A broadcast and how far it got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Broadcast {
    pub id: u64,
    pub text: String,
    pub audience: Audience,
    pub created_at: Timestamp,
    /// Users it was queued for.
    pub total: u32,
    /// The outbox ids it took: `first..=last` (none when `total` is 0).
    pub first_notification: u64,
    pub last_notification: u64,
    /// Set when an admin cancelled it: what was not sent yet is not sent.
    #[serde(default)]
    pub cancelled_at: Option<Timestamp>,
    /// Handled by the bot so far (sent, or skipped for a chat that takes no
    /// messages, or after cancelling); filled in when read.
    #[serde(default)]
    pub handled: u32,
}

/// `POST /v1/broadcasts` (and `/v1/broadcasts/preview`, which queues nothing).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBroadcast {
    pub text: String,
    pub audience: Audience,
}

/// What `/v1/broadcasts/preview` answers: how many users it would reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BroadcastPreview {
    pub recipients: u32,
}
