//! Join tokens (how a node daemon finds, trusts and enrolls with the control plane)
//! and admin connection strings (the same for an admin's TUI or CLI).
//!
//! Both are a prefix plus base64url (no padding) of a small JSON object:
//! `vpnctl-join:` + `{"url", "fingerprint", "secret"}` and
//! `vpnctl-connect:` + `{"url", "fingerprint", "token"}`. The fingerprint is the hex
//! SHA-256 of the server certificate's DER, or null for plain HTTP on loopback.

use std::fmt;
use std::str::FromStr;

use crate::auth::Secret;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::fingerprint::Fingerprint;

pub const JOIN_TOKEN_PREFIX: &str = "vpnctl-join:";
pub const CONNECTION_PREFIX: &str = "vpnctl-connect:";

/// Why a join token or connection string could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenFormatError {
    #[error("it does not start with {0:?}")]
    Prefix(&'static str),
    #[error("it is not base64url")]
    Base64,
    #[error("its content is not the expected JSON: {0}")]
    Json(String),
    #[error("its secret does not start with {0:?}")]
    Secret(&'static str),
}

#[derive(Serialize, Deserialize)]
struct JoinJson<'a> {
    url: String,
    fingerprint: Option<Fingerprint>,
    secret: &'a str,
}

#[derive(Serialize, Deserialize)]
struct ConnectJson<'a> {
    url: String,
    fingerprint: Option<Fingerprint>,
    token: &'a str,
}

fn encode(prefix: &str, json: &impl Serialize) -> String {
    let bytes = Zeroizing::new(serde_json::to_vec(json).expect("plain struct serializes"));
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes.as_slice()))
}

fn decode(prefix: &'static str, text: &str) -> Result<Zeroizing<Vec<u8>>, TokenFormatError> {
    let body = text
        .trim()
        .strip_prefix(prefix)
        .ok_or(TokenFormatError::Prefix(prefix))?;
    URL_SAFE_NO_PAD
        .decode(body)
        .map(Zeroizing::new)
        .map_err(|_| TokenFormatError::Base64)
}

/// What `vpnctld` hands out for one node to enroll: where the API is, which
/// certificate it has, and a single-use join secret. `Debug` hides the secret.
#[derive(Clone)]
pub struct JoinToken {
    /// The API base URL, e.g. `https://vpn.example.com:7443`.
    pub url: String,
    /// `None` only for plain HTTP on loopback.
    pub fingerprint: Option<Fingerprint>,
    /// `vpj_...`: single use, expires.
    pub secret: Secret,
}

impl JoinToken {
    /// The `vpnctl-join:...` text. It contains the secret: show it once, never log it.
    pub fn encode(&self) -> String {
        encode(
            JOIN_TOKEN_PREFIX,
            &JoinJson {
                url: self.url.clone(),
                fingerprint: self.fingerprint,
                secret: self.secret.expose(),
            },
        )
    }

    pub fn parse(text: &str) -> Result<Self, TokenFormatError> {
        let bytes = decode(JOIN_TOKEN_PREFIX, text)?;
        let json: JoinJson<'_> =
            serde_json::from_slice(&bytes).map_err(|e| TokenFormatError::Json(e.to_string()))?;
        if !json.secret.starts_with(crate::auth::JOIN_PREFIX) {
            return Err(TokenFormatError::Secret(crate::auth::JOIN_PREFIX));
        }
        Ok(Self {
            url: json.url,
            fingerprint: json.fingerprint,
            secret: Secret::new(json.secret.to_owned()),
        })
    }
}

impl FromStr for JoinToken {
    type Err = TokenFormatError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinToken")
            .field("url", &self.url)
            .field("fingerprint", &self.fingerprint)
            .field("secret", &"***")
            .finish()
    }
}

/// Everything an admin tool needs to talk to `vpnctld`: URL, pin and an API token.
/// `Debug` hides the token.
#[derive(Clone)]
pub struct ConnectionString {
    pub url: String,
    pub fingerprint: Option<Fingerprint>,
    /// `vpt_...`.
    pub token: Secret,
}

impl ConnectionString {
    /// The `vpnctl-connect:...` text. It contains the token: never log it.
    pub fn encode(&self) -> String {
        encode(
            CONNECTION_PREFIX,
            &ConnectJson {
                url: self.url.clone(),
                fingerprint: self.fingerprint,
                token: self.token.expose(),
            },
        )
    }

    pub fn parse(text: &str) -> Result<Self, TokenFormatError> {
        let bytes = decode(CONNECTION_PREFIX, text)?;
        let json: ConnectJson<'_> =
            serde_json::from_slice(&bytes).map_err(|e| TokenFormatError::Json(e.to_string()))?;
        if !json.token.starts_with(crate::auth::TOKEN_PREFIX) {
            return Err(TokenFormatError::Secret(crate::auth::TOKEN_PREFIX));
        }
        Ok(Self {
            url: json.url,
            fingerprint: json.fingerprint,
            token: Secret::new(json.token.to_owned()),
        })
    }
}

impl FromStr for ConnectionString {
    type Err = TokenFormatError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Debug for ConnectionString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionString")
            .field("url", &self.url)
            .field("fingerprint", &self.fingerprint)
            .field("token", &"***")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_token_round_trips_and_hides_secret() {
        let token = JoinToken {
            url: "https://127.0.0.1:7443".into(),
            fingerprint: Some(Fingerprint::of_der(b"x")),
            secret: Secret::new("vpj_abc".into()),
        };
        let text = token.encode();
        assert!(text.starts_with("vpnctl-join:"));
        let back = JoinToken::parse(&text).unwrap();
        assert_eq!(back.url, token.url);
        assert_eq!(back.fingerprint, token.fingerprint);
        assert_eq!(back.secret.expose(), "vpj_abc");
        assert!(!format!("{back:?}").contains("vpj_abc"));

        let plain = JoinToken {
            fingerprint: None,
            ..token
        };
        assert_eq!(JoinToken::parse(&plain.encode()).unwrap().fingerprint, None);
    }

    #[test]
    fn bad_join_tokens_are_refused() {
        assert_eq!(
            JoinToken::parse("nope").unwrap_err(),
            TokenFormatError::Prefix(JOIN_TOKEN_PREFIX)
        );
        assert_eq!(
            JoinToken::parse("vpnctl-join:!!").unwrap_err(),
            TokenFormatError::Base64
        );
        let wrong = format!(
            "vpnctl-join:{}",
            URL_SAFE_NO_PAD.encode(br#"{"url":"x","fingerprint":null,"secret":"vpt_x"}"#)
        );
        assert!(matches!(
            JoinToken::parse(&wrong),
            Err(TokenFormatError::Secret(_))
        ));
    }

    #[test]
    fn connection_string_round_trips() {
        let c = ConnectionString {
            url: "http://127.0.0.1:1".into(),
            fingerprint: None,
            token: Secret::new("vpt_zz".into()),
        };
        let back = ConnectionString::parse(&c.encode()).unwrap();
        assert_eq!(back.token.expose(), "vpt_zz");
        assert!(!format!("{back:?}").contains("vpt_zz"));
    }
}
