//! Typed async client of the vpnctld HTTP/JSON API.
//!
//! Used by the node daemon, the Telegram bot, the admin TUI and embedders. Every
//! request and response is typed with `vpnctl-api`'s model, wire types and bodies, and
//! every path comes from its route table. HTTPS connections trust exactly one certificate, named by
//! its SHA-256 [`Fingerprint`] (pinning, as a [`JoinToken`] carries it), never a CA;
//! plain HTTP is only allowed to loopback hosts.
//!
//! ```no_run
//! # async fn demo() -> Result<(), vpnctl_client::ClientError> {
//! use vpnctl_client::{ApiClient, Fingerprint};
//! use vpnctl_api::Secret;
//! let pin: Fingerprint = "ab".repeat(32).parse().expect("hex");
//! let api = ApiClient::new("https://vpn.example.com:7443", Some(Secret::new("vpt_…".into())), Some(pin))?;
//! let nodes = api.nodes().await?;
//! # Ok(()) }
//! ```

mod billing;
mod client;
mod error;
mod follow;
mod move_in;
mod pin;
mod sse;

pub use client::{ApiClient, DEFAULT_WAIT_SECS, StreamStart};
pub use error::ClientError;
pub use follow::{FOLLOW_RETRY, Followed, Follower};
pub use pin::PinnedVerifier;
pub use vpnctl_api::{ConnectionString, ErrorCode, Fingerprint, JoinToken, TokenFormatError};
