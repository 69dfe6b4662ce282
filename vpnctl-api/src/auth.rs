//! API tokens as clients see them: the token's id and scope, and the secret text
//! that is shown once.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::model::NodeId;
use crate::time::Timestamp;

/// A token's id (not its secret).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TokenId(pub u64);

impl fmt::Display for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "scope", content = "node")]
pub enum Scope {
    /// Everything.
    Admin,
    /// What the Telegram bot needs: users, invites, peers, configs.
    Bot,
    /// One node's own desired state and reports.
    Node(NodeId),
    /// A metrics scraper (Prometheus): `/metrics` and nothing else.
    Metrics,
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Admin => f.write_str("admin"),
            Self::Bot => f.write_str("bot"),
            Self::Node(id) => write!(f, "node:{id}"),
            Self::Metrics => f.write_str("metrics"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiToken {
    pub id: TokenId,
    pub scope: Scope,
    pub label: String,
    pub created_at: Timestamp,
}

/// A secret shown once (API token or join secret). `Debug`/`Display` print `***`.
#[derive(Clone)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// 32 random bytes as `<prefix><base64url>`.
    pub fn generate(prefix: &str) -> Self {
        let mut raw = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(raw.as_mut());
        Self(Zeroizing::new(format!(
            "{prefix}{}",
            URL_SAFE_NO_PAD.encode(raw.as_ref())
        )))
    }

    /// Wraps a secret read from a file or the environment.
    pub fn new(text: String) -> Self {
        Self(Zeroizing::new(text))
    }

    /// The secret text, to hand to its owner once. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// How API tokens start.
pub const TOKEN_PREFIX: &str = "vpt_";
/// How node join secrets start.
pub const JOIN_PREFIX: &str = "vpj_";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_have_prefix_and_hide() {
        let s = Secret::generate(TOKEN_PREFIX);
        assert!(s.expose().starts_with("vpt_"));
        assert_eq!(s.expose().len(), 4 + 43);
        assert_eq!(format!("{s:?}"), "Secret(***)");
    }

    #[test]
    fn scope_json() {
        assert_eq!(
            serde_json::to_string(&Scope::Node(NodeId(3))).unwrap(),
            r#"{"scope":"node","node":3}"#
        );
        assert_eq!(
            serde_json::to_string(&Scope::Admin).unwrap(),
            r#"{"scope":"admin"}"#
        );
        assert_eq!(
            serde_json::to_string(&Scope::Metrics).unwrap(),
            r#"{"scope":"metrics"}"#
        );
    }
}
