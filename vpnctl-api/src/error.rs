//! Error codes of the API and the body of every API error.
//!
//! [`ErrorCode`] is the one list of machine-readable codes: the SDK assigns one to each
//! refusal (`vpnctl_core::Error::code`), the server sends it, and clients match on the
//! enum, never on strings.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A stable, machine-readable reason. Serialized as `snake_case` (`device_limit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// The named record does not exist.
    NotFound,
    /// A field failed validation.
    Invalid,
    /// A WireGuard key that is not 44 characters of base64.
    MalformedKey,
    /// The change clashes with existing data (duplicate name, key, address).
    Conflict,
    /// The node has no room for another device.
    PoolExhausted,
    /// The user has as many devices as allowed.
    DeviceLimit,
    /// The user's access has ended.
    AccessExpired,
    /// The user's account was disabled by an admin.
    UserDisabled,
    /// The user's traffic quota of this period is used up.
    QuotaExhausted,
    InviteNotFound,
    InviteUsedUp,
    InviteExpired,
    InviteRevoked,
    NodeDisabled,
    /// The node keeps serving its devices but takes no new ones.
    NodeDraining,
    /// The node has not enrolled yet (no public key).
    NodeNotReady,
    /// The config of a device whose private key is not stored.
    PrivateKeyUnavailable,
    /// The join token is unknown, used or expired.
    JoinTokenInvalid,
    /// No or an unknown bearer token.
    Unauthorized,
    /// The token's scope does not cover this route or record.
    Forbidden,
    /// The JSON body or the query string is malformed.
    BadRequest,
    /// No such route.
    NoRoute,
    /// The route exists, the method does not.
    MethodNotAllowed,
    /// The body is larger than the server accepts.
    PayloadTooLarge,
    /// The body is not `application/json`.
    UnsupportedMediaType,
    /// The node has not reported since the control plane started.
    NoReport,
    /// Too many requests from this client; retry later.
    RateLimited,
    /// The server is shutting down.
    Unavailable,
    /// Something failed on the server; nothing was changed.
    Internal,
    /// A code this client does not know (a newer server).
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// The code as it appears on the wire, e.g. `device_limit`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::Invalid => "invalid",
            Self::MalformedKey => "malformed_key",
            Self::Conflict => "conflict",
            Self::PoolExhausted => "pool_exhausted",
            Self::DeviceLimit => "device_limit",
            Self::AccessExpired => "access_expired",
            Self::UserDisabled => "user_disabled",
            Self::QuotaExhausted => "quota_exhausted",
            Self::InviteNotFound => "invite_not_found",
            Self::InviteUsedUp => "invite_used_up",
            Self::InviteExpired => "invite_expired",
            Self::InviteRevoked => "invite_revoked",
            Self::NodeDisabled => "node_disabled",
            Self::NodeDraining => "node_draining",
            Self::NodeNotReady => "node_not_ready",
            Self::PrivateKeyUnavailable => "private_key_unavailable",
            Self::JoinTokenInvalid => "join_token_invalid",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::BadRequest => "bad_request",
            Self::NoRoute => "no_route",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::NoReport => "no_report",
            Self::RateLimited => "rate_limited",
            Self::Unavailable => "unavailable",
            Self::Internal => "internal",
            Self::Unknown => "unknown",
        }
    }

    /// Whether asking again later may succeed without anything else changing: the
    /// server or the network failed, not a rule.
    pub fn is_transient(self) -> bool {
        matches!(self, Self::Internal | Self::Unavailable | Self::RateLimited)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The body of every API error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    pub code: ErrorCode,
    /// For people (admins, logs); frontends word their own text from `code`.
    pub message: String,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// A value that does not parse or validate: which field, and why. The reason never
/// repeats a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: {reason}")]
pub struct InvalidInput {
    pub field: &'static str,
    pub reason: String,
}

impl InvalidInput {
    pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_serialize_as_their_names() {
        for code in [
            ErrorCode::NotFound,
            ErrorCode::DeviceLimit,
            ErrorCode::JoinTokenInvalid,
            ErrorCode::PayloadTooLarge,
        ] {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            assert_eq!(serde_json::from_str::<ErrorCode>(&json).unwrap(), code);
        }
    }

    #[test]
    fn unknown_codes_from_a_newer_server_still_parse() {
        let e: ApiError =
            serde_json::from_str(r#"{"code":"brand_new","message":"later"}"#).unwrap();
        assert_eq!(e.code, ErrorCode::Unknown);
    }
}
