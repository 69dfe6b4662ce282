//! vpnctl-core: the SDK behind vpnctl.
//!
//! The domain of a WireGuard VPN service (users, invites, nodes, peers, events) kept
//! in an embedded redb store, with the key handling, address pools, client config and
//! QR rendering, and the reconcile planning that the control plane, the node daemon,
//! the Telegram bot and the admin dashboard share. No frontend lives here.
//!
//! ```no_run
//! use vpnctl_core::{Vpnctl, NewUser, NewNode, IssuePeer};
//! # fn main() -> Result<(), vpnctl_core::Error> {
//! let vpn = Vpnctl::open_dir(std::path::Path::new("/var/lib/vpnctl"))?;
//! let user = vpn.create_user(NewUser { name: "alice".into(), ..Default::default() })?;
//! # Ok(()) }
//! ```

pub mod access;
pub mod auth;
pub mod backup;
pub mod devices;
pub mod error;
pub mod ipam;
pub mod legacy;
pub mod lifecycle;
pub mod placement;
pub mod reconcile;
pub mod render;
pub mod report;
pub mod search;
pub mod service;
pub mod store;
pub mod transport;
pub mod units;
pub mod vault;

/// The service's self-running operations (reports, sweep, health, evacuation, outbox,
/// usage) were once their own module; they are part of [`service`] now, and this
/// name keeps `vpnctl_core::operations::…` paths working.
pub use service as operations;

/// The data types, wire types and error codes every part shares.
pub use vpnctl_api as api;
pub use vpnctl_api::{keys, model, time, wire};

pub use access::Access;
pub use placement::{Availability, Placement};
pub use search::Needle;
pub use vpnctl_api::ErrorCode;

pub use auth::{ApiToken, Scope, Secret, TokenId};
pub use error::{Entity, Error, ErrorKind, Result, StorageError};
pub use keys::{KeyPair, PresharedKey, PrivateKey, PublicKey};
pub use lifecycle::{
    Consumer, Health, HealthChange, HealthPolicy, Message, NodeStatus, Notification, Probe, Quota,
    QuotaPeriod, Recipient, ReminderDays, Traffic,
};
pub use model::*;
pub use operations::{EvacuateTo, Evacuation, Moved, NodeOverview, SweepOutcome, UsageView};
pub use render::ClientConfig;
pub use service::{
    InviteCode, IssuePeer, IssuedPeer, NewInvite, NewNode, NewUser, NodePatch, PeerFilter, Policy,
    Redeemer, Redemption, UserFilter, UserPatch, Vpnctl,
};
pub use store::Commit;
pub use time::{Clock, ManualClock, SystemClock, Timestamp};
pub use vault::Vault;
