//! The language vpnctl's parts speak: the data the HTTP API serves (users, invites,
//! nodes, peers, events), the node protocol, request and response bodies, the route
//! paths, the error codes, and the join and connection strings.
//!
//! It holds data and its formats only. What the data means for the service (may this
//! user have devices, which node takes new ones, when is a node down) is decided in
//! `vpnctl-core`; frontends word what core decides.

pub mod auth;
pub mod billing;
pub mod body;
pub mod broadcast;
pub mod error;
pub mod fingerprint;
pub mod gzip;
pub mod import;
pub mod join;
pub mod json;
pub mod keys;
pub mod lifecycle;
pub mod model;
pub mod routes;
pub mod text;
pub mod time;
pub mod transport;
pub mod wire;

pub use auth::{ApiToken, Scope, Secret, TokenId};
pub use error::{ApiError, ErrorCode, InvalidInput};
pub use fingerprint::Fingerprint;
pub use join::{
    CONNECTION_PREFIX, ConnectionString, JOIN_TOKEN_PREFIX, JoinToken, TokenFormatError,
};
pub use keys::{KeyError, KeyPair, PresharedKey, PrivateKey, PublicKey};
pub use lifecycle::{
    Consumer, Health, Message, Notification, Probe, Quota, QuotaPeriod, Recipient, Traffic, Usage,
};
pub use model::*;
pub use time::{Clock, ManualClock, SystemClock, Timestamp};
pub use transport::{
    AwgGeneration, AwgParams, HeaderRange, Transport, TransportChoice, TransportKind,
};
