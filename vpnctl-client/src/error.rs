//! What can go wrong talking to vpnctld.

use std::error::Error as StdError;

use crate::pin::PinMismatch;
use vpnctl_api::error::{ApiError, ErrorCode};
use vpnctl_api::fingerprint::Fingerprint;
use vpnctl_api::join::TokenFormatError;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server answered with an error status and an [`ApiError`] body.
    #[error("HTTP {status}: {} [{}]", .error.message, .error.code)]
    Api { status: u16, error: ApiError },
    /// The server presented another certificate than the pinned one: wrong address,
    /// a regenerated certificate, or someone in between.
    #[error(
        "the server at {url} presented certificate {actual} but {expected} is pinned; refusing to talk to it"
    )]
    PinMismatch {
        url: String,
        expected: Fingerprint,
        actual: Fingerprint,
    },
    #[error("TLS with {url} failed: {reason}")]
    Tls { url: String, reason: String },
    #[error("cannot reach {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("request to {url} timed out")]
    Timeout { url: String },
    /// The answer was not what the API promises.
    #[error("unexpected response from {url}: {reason}")]
    Protocol { url: String, reason: String },
    /// The client was set up wrongly (bad URL, plain HTTP to a remote host, ...).
    #[error("client settings: {0}")]
    Config(String),
    #[error("join token or connection string: {0}")]
    Token(#[from] TokenFormatError),
}

impl ClientError {
    /// The HTTP status of an API error.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The server's machine-readable code of an API error.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Self::Api { error, .. } => Some(error.code),
            _ => None,
        }
    }

    /// Whether the same request may succeed later with nothing else changed: the
    /// server or the network failed, not a rule of the service.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Api { error, .. } => error.code.is_transient(),
            Self::Unreachable { .. } | Self::Timeout { .. } | Self::Tls { .. } => true,
            Self::PinMismatch { .. } | Self::Protocol { .. } | Self::Config(_) | Self::Token(_) => {
                false
            }
        }
    }

    pub(crate) fn from_reqwest(url: &str, err: &reqwest::Error) -> Self {
        let url = url.to_owned();
        if err.is_timeout() {
            return Self::Timeout { url };
        }
        if let Some(m) = find_in_chain::<PinMismatch>(err) {
            return Self::PinMismatch {
                url,
                expected: m.expected,
                actual: m.actual,
            };
        }
        if let Some(tls) = find_in_chain::<rustls::Error>(err) {
            return Self::Tls {
                url,
                reason: tls.to_string(),
            };
        }
        // A body cut off (the server stopped, the connection broke) also reads as
        // an error decoding it: that is the network, not the answer.
        if err.is_decode() && find_in_chain::<std::io::Error>(err).is_none() {
            return Self::Protocol {
                url,
                reason: chain_text(err),
            };
        }
        Self::Unreachable {
            url,
            reason: chain_text(err),
        }
    }
}

/// Finds an error of type `T` anywhere in the chain, also inside `io::Error`s (whose
/// `source()` skips the wrapped error) and rustls' `OtherError`.
fn find_in_chain<'a, T: StdError + 'static>(err: &'a (dyn StdError + 'static)) -> Option<&'a T> {
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<T>() {
            return Some(found);
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && let Some(found) = find_in_chain::<T>(inner)
        {
            return Some(found);
        }
        if let Some(rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other))) =
            e.downcast_ref::<rustls::Error>()
            && let Some(found) = other.0.downcast_ref::<T>()
        {
            return Some(found);
        }
        current = e.source();
    }
    None
}

fn chain_text(err: &(dyn StdError + 'static)) -> String {
    let mut text = err.to_string();
    let mut current = err.source();
    while let Some(e) = current {
        let part = e.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        current = e.source();
    }
    text
}
