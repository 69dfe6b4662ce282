//! [`Vpnctl`]: the service facade every frontend and embedder uses.
//!
//! Each mutating method is one durable transaction: it checks the rules, writes the
//! records, bumps the revision of every node whose desired state changed and appends
//! to the event log, or writes nothing at all. Methods are blocking (redb is); async
//! callers use `spawn_blocking`.
//!
//! This module holds the handle ([`Vpnctl`]: store, clock, policy, listeners, the
//! write/read plumbing) and the service's vocabulary: the inputs operations take and
//! the results they return. The operations themselves live in one submodule per
//! concern, each an `impl Vpnctl` block:
//!
//! - what admins and the bot ask for: `users`, `invites`, `nodes`, `peers`,
//!   `tokens` (API tokens, join secrets, enrollment), `events`;
//! - what nodes ask for: `feed` (desired state, revisions, delta or snapshot);
//! - what runs the service by itself: `reports`, `sweep` (expiry, reminders, quota
//!   resets), `health`, `evacuation`, `outbox`, `usage`.
//!
//! Steps that several operations take inside their write transaction (issue, revoke,
//! bring a user's peers in line with their access, quota checks, notices sent once)
//! live in `tx`. Operation modules use `tx` and this module, never each other, so
//! there is no cycle and each rule has one home.

use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};
use vpnctl_api::body::NodeHealth;
use zeroize::Zeroizing;

use crate::error::{Result, StorageError};
use crate::ipam;
use crate::keys::PublicKey;
use crate::lifecycle::NodeStatus;
use crate::model::{
    Actor, Endpoint, Grant, Invite, Locale, Node, NodeId, Peer, Region, Role, User, UserId,
};
use crate::placement::Placement;
use crate::render::ClientConfig;
use crate::store::{Commit, Rx, Store, Tx};
use crate::time::{Clock, SystemClock, Timestamp};
use crate::vault::Vault;

mod billing;
mod broadcasts;
mod evacuation;
mod events;
mod feed;
mod health;
mod import;
mod invites;
mod nodes;
mod outbox;
mod peers;
mod reports;
mod sweep;
mod tokens;
mod tx;
mod usage;
mod users;

pub use billing::{ALREADY_REFUNDED, MAX_PLAN_DAYS, MAX_PLAN_DEVICES};
pub use broadcasts::BROADCASTS_LISTED;
pub use feed::interface_spec;
pub use reports::CONNECTED_WITHIN_SECS;
pub use vpnctl_api::body::{EvacuateTo, Evacuation, Moved, UsageView};

/// File names inside a data directory.
pub const DB_FILE: &str = "vpnctl.redb";
pub const VAULT_FILE: &str = "vault.key";

/// Service-wide rules.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Keep client private keys (encrypted) so configs can be fetched again. When
    /// false, a config is shown once, at issue or rotation.
    pub store_private_keys: bool,
    /// Device limit of users created without one.
    pub default_device_limit: u32,
    /// When a node counts as degraded or down.
    pub health: crate::lifecycle::HealthPolicy,
    /// Days before the end of access on which users are reminded.
    pub reminders: crate::lifecycle::ReminderDays,
    /// The store's page cache (redb's own default is 1 GiB, filled by any full
    /// scan). Reads beyond it go to the OS page cache.
    pub store_cache_bytes: usize,
    /// Events (the audit log) older than this many days are deleted by
    /// [`Vpnctl::prune_events`]; 0 keeps them for ever.
    pub events_keep_days: u32,
    /// At most this many events are kept (the oldest go first); 0: no limit.
    pub events_keep_max: u64,
}

/// [`Policy::store_cache_bytes`] by default: 64 MiB.
pub const DEFAULT_STORE_CACHE_BYTES: usize = 64 << 20;
/// [`Policy::events_keep_days`] by default.
pub const DEFAULT_EVENTS_KEEP_DAYS: u32 = 180;
/// [`Policy::events_keep_max`] by default.
pub const DEFAULT_EVENTS_KEEP_MAX: u64 = 1_000_000;

impl Default for Policy {
    fn default() -> Self {
        Self {
            store_private_keys: true,
            default_device_limit: 3,
            health: crate::lifecycle::HealthPolicy::default(),
            reminders: crate::lifecycle::ReminderDays::default(),
            store_cache_bytes: DEFAULT_STORE_CACHE_BYTES,
            events_keep_days: DEFAULT_EVENTS_KEEP_DAYS,
            events_keep_max: DEFAULT_EVENTS_KEEP_MAX,
        }
    }
}

/// Called after every committed write.
pub type Listener = Arc<dyn Fn(&Commit) + Send + Sync>;

struct Inner {
    store: Store,
    /// When this handle opened the store (the control plane's start): a node's
    /// report age is not held against it before then.
    opened_at: Timestamp,
    clock: Arc<dyn Clock>,
    policy: Policy,
    listeners: Mutex<Vec<Listener>>,
}

/// The vpnctl service over one store. Cheap to clone; clones share the store.
#[derive(Clone)]
pub struct Vpnctl {
    inner: Arc<Inner>,
    actor: Actor,
}

impl fmt::Debug for Vpnctl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vpnctl")
            .field("actor", &self.actor)
            .field("policy", &self.inner.policy)
            .finish_non_exhaustive()
    }
}

// ---- inputs

#[derive(Debug, Clone, Default)]
pub struct NewUser {
    pub name: String,
    pub telegram_id: Option<i64>,
    pub role: Role,
    pub until: Option<Timestamp>,
    pub device_limit: Option<u32>,
    pub locale: Locale,
}

#[derive(Debug, Clone, Default)]
pub struct UserPatch {
    pub name: Option<String>,
    pub telegram_id: Option<Option<i64>>,
    pub role: Option<Role>,
    pub device_limit: Option<u32>,
    pub locale: Option<Locale>,
    /// `Some(None)` removes the quota.
    pub quota: Option<Option<crate::lifecycle::Quota>>,
}

#[derive(Debug, Clone)]
pub struct NewInvite {
    pub label: String,
    pub uses: u32,
    pub expires_at: Option<Timestamp>,
    pub grant: Grant,
    /// The plan whose days, devices and quota it grants (`grant` is then the
    /// plan's).
    pub plan: Option<crate::model::PlanId>,
}

impl Default for NewInvite {
    fn default() -> Self {
        Self {
            label: "invite".into(),
            uses: 1,
            expires_at: None,
            grant: Grant::default(),
            plan: None,
        }
    }
}

/// Who redeems an invite.
#[derive(Debug, Clone, Default)]
pub struct Redeemer {
    pub telegram_id: Option<i64>,
    pub name: String,
    pub locale: Locale,
}

#[derive(Debug, Clone)]
pub struct Redemption {
    pub user: User,
    pub invite: Invite,
    /// False when an existing user (same Telegram id) got the grant added.
    pub created: bool,
}

/// An invite's secret code: `Debug`/`Display` never show it.
#[derive(Clone)]
pub struct InviteCode(Zeroizing<String>);

impl InviteCode {
    /// The code, for building a deep link shown once to the admin. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `https://t.me/<bot>?start=<code>`.
    pub fn telegram_link(&self, bot_username: &str) -> String {
        format!("https://t.me/{bot_username}?start={}", self.0.as_str())
    }
}

impl fmt::Debug for InviteCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("InviteCode(***)")
    }
}

/// The MTU of a new node's interface and of its client configs: IPv6's minimum,
/// which every path carries (WireGuard adds 60–80 bytes, so 1,340–1,360 on the
/// wire), including mobile networks whose path MTU is below Ethernet's 1,500.
pub const DEFAULT_MTU: u16 = 1280;

#[derive(Debug, Clone)]
pub struct NewNode {
    pub name: String,
    pub region: Region,
    pub endpoint: Endpoint,
    /// Defaults to the endpoint's port.
    pub listen_port: Option<u16>,
    pub public_key: Option<PublicKey>,
    pub ipv4_pool: Ipv4Net,
    pub ipv6_pool: Option<Ipv6Net>,
    pub dns: Vec<IpAddr>,
    pub mtu: u16,
    pub capacity: u32,
    pub client_allowed_ips: Vec<IpNet>,
    pub persistent_keepalive: u16,
    /// Plain WireGuard (default) or AmneziaWG; resolve an admin's choice with
    /// `transport::resolve` first (it generates parameters).
    pub transport: crate::transport::Transport,
}

impl NewNode {
    /// A node with the usual settings: MTU 1280 (fits every path, mobile networks
    /// and IPv6 tunnels included), keepalive 25 s, full tunnel (IPv4 and IPv6), DNS
    /// on the node's own gateway address, where the node daemon answers.
    pub fn new(name: &str, region: &str, endpoint: Endpoint, ipv4_pool: Ipv4Net) -> Self {
        Self {
            name: name.to_owned(),
            region: Region {
                code: region.to_owned(),
                name: region.to_owned(),
            },
            endpoint,
            listen_port: None,
            public_key: None,
            ipv4_pool,
            ipv6_pool: None,
            dns: vec![IpAddr::V4(ipam::host_v4(ipv4_pool, 1))],
            mtu: DEFAULT_MTU,
            capacity: 0,
            client_allowed_ips: Vec::new(),
            persistent_keepalive: 25,
            transport: crate::transport::Transport::Wireguard,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct NodePatch {
    pub region: Option<Region>,
    pub endpoint: Option<Endpoint>,
    pub listen_port: Option<u16>,
    pub public_key: Option<PublicKey>,
    pub dns: Option<Vec<IpAddr>>,
    pub mtu: Option<u16>,
    pub capacity: Option<u32>,
    pub client_allowed_ips: Option<Vec<IpNet>>,
    pub persistent_keepalive: Option<u16>,
    /// A new transport or new AmneziaWG parameters: every client needs a new config
    /// (users with Telegram are sent theirs, admins are told).
    pub transport: Option<crate::transport::Transport>,
}

/// A request for one device's tunnel on one node.
#[derive(Debug, Clone)]
pub struct IssuePeer {
    pub user: UserId,
    pub node: NodeId,
    pub device: String,
    /// The device's own public key; then the store never sees a private key and no
    /// config can be rendered by us.
    pub public_key: Option<PublicKey>,
}

/// A freshly issued or rotated peer. `config` is present when we generated the
/// private key: it is the one chance to show it when keys are not stored.
#[derive(Debug, Clone)]
pub struct IssuedPeer {
    pub peer: Peer,
    pub config: Option<ClientConfig>,
}

/// Which peers to list; the filters combine.
#[derive(Debug, Clone, Default)]
pub struct PeerFilter {
    pub user: Option<UserId>,
    pub node: Option<NodeId>,
    /// On a node of this region (its code, ignoring ASCII case).
    pub region: Option<String>,
    /// Whose owner's access is in this state now.
    pub access: Option<crate::api::body::AccessState>,
    /// Whose device name contains this, ignoring case.
    pub device: Option<String>,
    /// Holding this tunnel address (IPv4 or IPv6) on its node: "who is 10.8.3.7?"
    /// from a node's logs. Pools may repeat across nodes; `node` narrows it.
    pub address: Option<std::net::IpAddr>,
    /// With this public key (one peer per node at most): "whose key is this?" from
    /// `wg show`.
    pub public_key: Option<PublicKey>,
}

/// Which users to list.
#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    /// The name contains this, ignoring case.
    pub name: Option<String>,
    /// The access is in this state now.
    pub access: Option<crate::api::body::AccessState>,
}

/// What one [`Vpnctl::sweep`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepOutcome {
    pub expired: Vec<UserId>,
    pub reminded: Vec<UserId>,
    pub restored: Vec<UserId>,
}

impl SweepOutcome {
    pub fn is_empty(&self) -> bool {
        self.expired.is_empty() && self.reminded.is_empty() && self.restored.is_empty()
    }
}

/// A node with what the control plane knows of it, read in one transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeOverview {
    pub node: Node,
    /// Peers on the node (including those of users without access).
    pub peers: u64,
    pub desired_revision: u64,
    pub status: NodeStatus,
}

impl NodeOverview {
    /// How the node is doing, as the API shows it.
    pub fn health(&self) -> NodeHealth {
        let status = &self.status;
        let reported = status.last_report_at.is_some();
        NodeHealth {
            status: status.health,
            reason: status.reason.clone(),
            since: status.since,
            desired_revision: self.desired_revision,
            applied_revision: reported.then_some(status.applied_revision),
            in_sync: reported && status.applied_revision == self.desired_revision,
            last_report_at: status.last_report_at,
            peers_connected: status.peers_connected,
            interface_up: reported.then_some(status.interface_up),
            report_errors: u32::try_from(status.errors.len()).unwrap_or(u32::MAX),
            probe: status.probe.clone(),
            traffic: status.traffic,
        }
    }

    /// Whether and how the node takes new devices.
    pub fn placement(&self) -> Placement {
        Placement::of(&self.node, self.status.health, self.peers)
    }

    /// The node in brief, as the bot reads it.
    pub fn brief(&self) -> crate::api::body::NodeBrief {
        crate::placement::brief(&self.node, self.status.health, self.peers)
    }
}

impl Vpnctl {
    /// Opens (creating if needed) the store in `dir`: `vpnctl.redb` and the key file
    /// `vault.key` (0600). The directory is created with mode 0700.
    pub fn open_dir(dir: &Path) -> Result<Self> {
        Self::open_dir_with(dir, Policy::default())
    }

    /// [`Self::open_dir`] with a policy other than the default.
    pub fn open_dir_with(dir: &Path, policy: Policy) -> Result<Self> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(StorageError::Io)?;
        let vault = Vault::open_or_create(&dir.join(VAULT_FILE))?;
        Self::open(&dir.join(DB_FILE), vault, Arc::new(SystemClock), policy)
    }

    pub fn open(path: &Path, vault: Vault, clock: Arc<dyn Clock>, policy: Policy) -> Result<Self> {
        let store = Store::open_with_cache(path, vault, policy.store_cache_bytes)?;
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                opened_at: clock.now(),
                clock,
                policy,
                listeners: Mutex::new(Vec::new()),
            }),
            actor: Actor::System,
        })
    }

    /// A handle whose writes are attributed to `actor` in the event log.
    #[must_use]
    pub fn acting_as(&self, actor: Actor) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            actor,
        }
    }

    pub fn actor(&self) -> &Actor {
        &self.actor
    }

    pub fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }

    pub fn policy(&self) -> &Policy {
        &self.inner.policy
    }

    /// When the store was opened by this process.
    pub fn opened_at(&self) -> Timestamp {
        self.inner.opened_at
    }

    /// Registers a function called after every committed write (event stream,
    /// long-poll wake-ups). It runs on the writer's thread: keep it short.
    pub fn subscribe(&self, listener: Listener) {
        self.inner
            .listeners
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(listener);
    }

    #[track_caller]
    fn write<T>(&self, f: impl FnMut(&mut Tx<'_>) -> Result<T>) -> Result<T> {
        let at = std::panic::Location::caller();
        let (out, commit) = self.inner.store.write(&self.actor, self.now(), at, f)?;
        if !commit.events.is_empty() || !commit.revisions.is_empty() || commit.notified > 0 {
            let listeners = self
                .inner
                .listeners
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone();
            for listener in listeners {
                listener(&commit);
            }
        }
        Ok(out)
    }

    fn read<T>(&self, f: impl FnOnce(&Rx<'_>) -> Result<T>) -> Result<T> {
        self.inner.store.read(f)
    }

    /// Grows with every commit: a cache of anything read from the store stays good
    /// while this reads the same as when the cache was filled (read it before).
    pub fn generation(&self) -> u64 {
        self.inner.store.generation()
    }

    /// Writes committed and commits (one fsync each) made since the store was opened:
    /// with group commit, concurrent writes share syncs, so their ratio is the
    /// batching.
    pub fn commit_figures(&self) -> (u64, u64) {
        self.inner.store.commit_figures()
    }

    pub(crate) fn store(&self) -> &Store {
        &self.inner.store
    }
}

/// `ids` as a read by id takes them: in id order, once each, at most
/// [`PAGE_MAX`](crate::api::routes::PAGE_MAX) (`what` names the rows in the error).
fn id_set<T: Ord + Copy>(ids: &[T], what: &str) -> Result<Vec<T>> {
    use crate::api::routes::PAGE_MAX;
    if ids.len() > PAGE_MAX {
        return Err(crate::error::Error::invalid(
            "ids",
            format!("at most {PAGE_MAX} {what} at once, not {}", ids.len()),
        ));
    }
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invite_code_never_prints() {
        let code = InviteCode(Zeroizing::new("secret-code".into()));
        assert_eq!(format!("{code:?}"), "InviteCode(***)");
        assert_eq!(
            code.telegram_link("my_bot"),
            "https://t.me/my_bot?start=secret-code"
        );
    }
}
