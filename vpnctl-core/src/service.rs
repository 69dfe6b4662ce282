//! [`Vpnctl`]: the service facade every frontend and embedder uses.
//!
//! Each mutating method is one durable transaction: it checks the rules, writes the
//! records, bumps the revision of every node whose desired state changed and appends
//! to the event log, or writes nothing at all. Methods are blocking (redb is); async
//! callers use `spawn_blocking`.

use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use tracing::instrument;
use zeroize::Zeroizing;

use crate::access::{Access, serves_devices};
use crate::auth::{self, ApiToken, Scope, Secret, TokenId};
use crate::error::{Error, Result, StorageError};
use crate::ipam;
use crate::keys::{KeyPair, PresharedKey, PrivateKey, PublicKey};
use crate::model::{
    Actor, Endpoint, Event, EventKind, Grant, Invite, InviteId, Locale, Node, NodeId, NodeState,
    Peer, PeerId, Region, Role, Severity, User, UserId, UserState, validate_display_name,
    validate_slug,
};
use crate::placement::Placement;
use crate::render::{ClientConfig, ConfigInput};
use crate::store::{Commit, PeerRecord, Rx, Store, Tx};
use crate::time::{Clock, SystemClock, Timestamp};
use crate::vault::Vault;
use crate::wire::{DesiredUpdate, InterfaceSpec, NodeDesired, PeerDelta};

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
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            store_private_keys: true,
            default_device_limit: 3,
            health: crate::lifecycle::HealthPolicy::default(),
            reminders: crate::lifecycle::ReminderDays::default(),
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
}

impl Default for NewInvite {
    fn default() -> Self {
        Self {
            label: "invite".into(),
            uses: 1,
            expires_at: None,
            grant: Grant::default(),
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

/// Which peers to list.
#[derive(Debug, Clone, Copy, Default)]
pub struct PeerFilter {
    pub user: Option<UserId>,
    pub node: Option<NodeId>,
}

/// Keys generated outside the write lock.
pub(crate) struct FreshKeys {
    private: Option<PrivateKey>,
    public: PublicKey,
    psk: PresharedKey,
}

impl FreshKeys {
    /// The keys a peer already has: the same public key and preshared key.
    pub(crate) fn keep(public: PublicKey, psk: PresharedKey) -> Self {
        Self {
            private: None,
            public,
            psk,
        }
    }

    pub(crate) fn new(user_key: Option<PublicKey>) -> Self {
        let (private, public) = match user_key {
            Some(public) => (None, public),
            None => {
                let pair = KeyPair::generate();
                (Some(pair.private), pair.public)
            }
        };
        Self {
            private,
            public,
            psk: PresharedKey::generate(),
        }
    }
}

fn code_hash(code: &str) -> [u8; 32] {
    Sha256::new()
        .chain_update(b"vpnctl invite v1")
        .chain_update(code.as_bytes())
        .finalize()
        .into()
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
        let store = Store::open(path, vault)?;
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

    pub(crate) fn write<T>(&self, f: impl FnOnce(&mut Tx<'_>) -> Result<T>) -> Result<T> {
        let (out, commit) = self.inner.store.write(&self.actor, self.now(), f)?;
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

    pub(crate) fn read<T>(&self, f: impl FnOnce(&Rx<'_>) -> Result<T>) -> Result<T> {
        self.inner.store.read(f)
    }

    // ---------------------------------------------------------------- users

    #[instrument(skip(self, new), fields(actor = %self.actor))]
    pub fn create_user(&self, new: NewUser) -> Result<User> {
        let name = validate_display_name("user name", &new.name, crate::model::MAX_USER_NAME)?;
        let device_limit = new
            .device_limit
            .unwrap_or(self.inner.policy.default_device_limit);
        self.write(|tx| {
            let now = tx.now;
            let user = User {
                id: UserId(tx.next_id("next_user")?),
                telegram_id: new.telegram_id,
                name,
                role: new.role,
                state: UserState::Active,
                until: new.until,
                lapsed: new.until.is_some_and(|u| u <= now),
                device_limit,
                locale: new.locale,
                created_at: now,
                quota: None,
                suspended: false,
            };
            tx.put_user(None, &user)?;
            tx.event(EventKind::UserCreated { user: user.id })?;
            Ok(user)
        })
    }

    pub fn user(&self, id: UserId) -> Result<User> {
        self.read(|rx| rx.user(id))
    }

    pub fn user_by_telegram(&self, telegram_id: i64) -> Result<Option<User>> {
        self.read(|rx| rx.user_by_telegram(telegram_id))
    }

    pub fn users(&self) -> Result<Vec<User>> {
        // A method path does not satisfy the higher-ranked closure bound here.
        #[allow(clippy::redundant_closure_for_method_calls)]
        self.read(|rx| rx.users())
    }

    #[instrument(skip(self, patch), fields(actor = %self.actor))]
    pub fn update_user(&self, id: UserId, patch: UserPatch) -> Result<User> {
        let name = patch
            .name
            .as_deref()
            .map(|n| validate_display_name("user name", n, crate::model::MAX_USER_NAME))
            .transpose()?;
        self.write(|tx| {
            let old = tx.user(id)?;
            let mut user = old.clone();
            if let Some(name) = name {
                user.name = name;
            }
            if let Some(tg) = patch.telegram_id {
                user.telegram_id = tg;
            }
            if let Some(role) = patch.role {
                user.role = role;
            }
            if let Some(limit) = patch.device_limit {
                user.device_limit = limit;
            }
            if let Some(locale) = patch.locale {
                user.locale = locale;
            }
            let quota_changed = patch.quota.is_some_and(|q| q != old.quota);
            if let Some(quota) = patch.quota {
                if quota.is_some_and(|q| q.bytes == 0) {
                    return Err(Error::invalid("quota", "must be at least 1 byte"));
                }
                user.quota = quota;
            }
            if quota_changed {
                crate::operations::recheck_quota(tx, &mut user)?;
            }
            if user != old {
                tx.put_user(Some(&old), &user)?;
                tx.event(EventKind::UserUpdated { user: id })?;
                if quota_changed {
                    sync_user_peers(tx, &user)?;
                }
            }
            Ok(user)
        })
    }

    /// Enables or disables a user; a disabled user's peers leave every node.
    #[instrument(skip(self), fields(actor = %self.actor))]
    pub fn set_user_state(&self, id: UserId, state: UserState) -> Result<User> {
        self.write(|tx| {
            let old = tx.user(id)?;
            if old.state == state {
                return Ok(old);
            }
            let mut user = old.clone();
            user.state = state;
            tx.put_user(Some(&old), &user)?;
            sync_user_peers(tx, &user)?;
            tx.event(match state {
                UserState::Active => EventKind::UserEnabled { user: id },
                UserState::Disabled => EventKind::UserDisabled { user: id },
            })?;
            Ok(user)
        })
    }

    /// Sets the end of access (`None`: unlimited). An end in the past takes the user's
    /// peers off the nodes at once; a future one brings them back.
    #[instrument(skip(self), fields(actor = %self.actor))]
    pub fn set_access(&self, id: UserId, until: Option<Timestamp>) -> Result<User> {
        self.write(|tx| set_access_in(tx, id, until))
    }

    /// Adds `days` of access, counted from the current end or from now if that has
    /// passed. Unlimited access stays unlimited.
    #[instrument(skip(self), fields(actor = %self.actor))]
    pub fn extend_access(&self, id: UserId, days: u32) -> Result<User> {
        if days == 0 || days > 36_500 {
            return Err(Error::invalid("days", "must be 1..=36500"));
        }
        self.write(|tx| {
            let user = tx.user(id)?;
            let Some(until) = user.until else {
                return Ok(user);
            };
            let from = until.max(tx.now);
            set_access_in(tx, id, Some(from.plus_days(i64::from(days))))
        })
    }

    /// Marks users whose access has ended as lapsed and takes their peers off the
    /// nodes. The control plane calls this every few seconds; returns who lapsed.
    pub fn expire_due(&self) -> Result<Vec<UserId>> {
        self.write(|tx| {
            let due = tx.users_due(tx.now)?;
            for id in &due {
                let old = tx.user(*id)?;
                let mut user = old.clone();
                user.lapsed = true;
                tx.put_user(Some(&old), &user)?;
                sync_user_peers(tx, &user)?;
                tx.event(EventKind::AccessExpired { user: *id })?;
                crate::operations::notify_user_once(
                    tx,
                    &user,
                    "ended",
                    old.until.map_or(0, Timestamp::seconds),
                    crate::lifecycle::Message::AccessEnded {
                        until: old.until.unwrap_or(tx.now),
                    },
                )?;
            }
            Ok(due)
        })
    }

    /// Deletes a user and revokes all their peers.
    #[instrument(skip(self), fields(actor = %self.actor))]
    pub fn delete_user(&self, id: UserId) -> Result<()> {
        self.write(|tx| {
            let user = tx.user(id)?;
            for peer in tx.user_peer_ids(id)? {
                revoke_in(tx, peer)?;
            }
            tx.delete_user_record(&user)?;
            tx.forget_user_lifecycle(id)?;
            tx.event(EventKind::UserDeleted { user: id })
        })
    }

    // ---------------------------------------------------------------- invites

    /// Creates an invite; the returned code is shown once and only its hash is kept.
    #[instrument(skip(self, new), fields(actor = %self.actor))]
    pub fn create_invite(&self, new: NewInvite) -> Result<(Invite, InviteCode)> {
        let label = validate_display_name("invite label", &new.label, crate::model::MAX_LABEL)?;
        if new.uses == 0 || new.uses > 100_000 {
            return Err(Error::invalid("uses", "must be 1..=100000"));
        }
        if new.grant.access_days == Some(0) {
            return Err(Error::invalid("access days", "must be at least 1"));
        }
        // 24 random bytes: 32 characters of A-Za-z0-9_-, a valid Telegram deep link.
        let mut raw = Zeroizing::new([0u8; 24]);
        OsRng.fill_bytes(raw.as_mut());
        let code = InviteCode(Zeroizing::new(URL_SAFE_NO_PAD.encode(raw.as_ref())));
        let hash = code_hash(code.expose());
        let invite = self.write(|tx| {
            if new.expires_at.is_some_and(|t| t <= tx.now) {
                return Err(Error::invalid("expiry", "is in the past"));
            }
            let invite = Invite {
                id: InviteId(tx.next_id("next_invite")?),
                label,
                uses_total: new.uses,
                uses_left: new.uses,
                expires_at: new.expires_at,
                grant: new.grant,
                revoked: false,
                created_at: tx.now,
            };
            tx.put_invite(&invite, Some(&hash))?;
            tx.event(EventKind::InviteCreated { invite: invite.id })?;
            Ok(invite)
        })?;
        Ok((invite, code))
    }

    pub fn invites(&self) -> Result<Vec<Invite>> {
        // A method path does not satisfy the higher-ranked closure bound here.
        #[allow(clippy::redundant_closure_for_method_calls)]
        self.read(|rx| rx.invites())
    }

    pub fn invite(&self, id: InviteId) -> Result<Invite> {
        self.read(|rx| rx.invite(id))
    }

    #[instrument(skip(self), fields(actor = %self.actor))]
    pub fn revoke_invite(&self, id: InviteId) -> Result<Invite> {
        self.write(|tx| {
            let mut invite = tx.invite(id)?;
            if !invite.revoked {
                invite.revoked = true;
                tx.put_invite(&invite, None)?;
                tx.event(EventKind::InviteRevoked { invite: id })?;
            }
            Ok(invite)
        })
    }

    /// Redeems an invite atomically: checks and decrements its uses and creates the
    /// user (or adds the grant to the user with the same Telegram id) in one
    /// transaction, so concurrent redemptions never exceed the allowed uses.
    #[instrument(skip_all, fields(actor = %self.actor))]
    pub fn redeem_invite(&self, code: &str, who: Redeemer) -> Result<Redemption> {
        let code = code.trim();
        if code.is_empty()
            || code.len() > 64
            || !code
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(Error::InviteNotFound);
        }
        let hash = code_hash(code);
        let name = validate_display_name("user name", &who.name, crate::model::MAX_USER_NAME)?;
        self.write(|tx| {
            let now = tx.now;
            let mut invite = tx
                .invite_by_code_hash(&hash)?
                .ok_or(Error::InviteNotFound)?;
            if invite.revoked {
                return Err(Error::InviteRevoked { invite: invite.id });
            }
            if let Some(expired) = invite.expires_at.filter(|t| *t <= now) {
                return Err(Error::InviteExpired {
                    invite: invite.id,
                    expired,
                });
            }
            if invite.uses_left == 0 {
                return Err(Error::InviteUsedUp { invite: invite.id });
            }
            invite.uses_left -= 1;
            tx.put_invite(&invite, None)?;
            let grant = &invite.grant;
            let existing = match who.telegram_id {
                Some(tg) => tx.user_by_telegram(tg)?,
                None => None,
            };
            let (user, created) = if let Some(old) = existing {
                let until = match (old.until, grant.access_days) {
                    (_, None) | (None, _) => None,
                    (Some(u), Some(d)) => Some(u.max(now).plus_days(i64::from(d))),
                };
                let mut user = set_access_in(tx, old.id, until)?;
                let before = user.clone();
                user.device_limit = user.device_limit.max(grant.device_limit);
                if grant.role == Role::Admin {
                    user.role = Role::Admin;
                }
                tx.put_user(Some(&before), &user)?;
                (user, false)
            } else {
                let user = User {
                    id: UserId(tx.next_id("next_user")?),
                    telegram_id: who.telegram_id,
                    name,
                    role: grant.role,
                    state: UserState::Active,
                    until: grant.access_days.map(|d| now.plus_days(i64::from(d))),
                    lapsed: false,
                    device_limit: grant.device_limit,
                    locale: who.locale,
                    created_at: now,
                    quota: None,
                    suspended: false,
                };
                tx.put_user(None, &user)?;
                tx.event(EventKind::UserCreated { user: user.id })?;
                (user, true)
            };
            tx.event(EventKind::InviteRedeemed {
                invite: invite.id,
                user: user.id,
            })?;
            Ok(Redemption {
                user,
                invite,
                created,
            })
        })
    }

    // ---------------------------------------------------------------- nodes

    #[instrument(skip(self, new), fields(actor = %self.actor, node = %new.name))]
    pub fn register_node(&self, new: NewNode) -> Result<Node> {
        validate_slug("node name", &new.name, crate::model::MAX_NODE_NAME)?;
        validate_region(&new.region)?;
        new.endpoint.validate()?;
        ipam::validate_pools(new.ipv4_pool, new.ipv6_pool)?;
        validate_mtu(new.mtu)?;
        let listen_port = new.listen_port.unwrap_or(new.endpoint.port);
        if listen_port == 0 {
            return Err(Error::invalid("listen port", "must be 1-65535"));
        }
        self.write(|tx| {
            let node = Node {
                id: NodeId(tx.next_id("next_node")?),
                name: new.name,
                region: new.region,
                endpoint: new.endpoint,
                listen_port,
                public_key: new.public_key,
                ipv4_pool: new.ipv4_pool,
                ipv6_pool: new.ipv6_pool,
                dns: new.dns,
                mtu: new.mtu,
                capacity: new.capacity,
                client_allowed_ips: new.client_allowed_ips,
                persistent_keepalive: new.persistent_keepalive,
                state: NodeState::Active,
                created_at: tx.now,
            };
            tx.insert_node(&node)?;
            tx.bump(node.id, None)?;
            tx.event(EventKind::NodeRegistered { node: node.id })?;
            Ok(node)
        })
    }

    pub fn node(&self, id: NodeId) -> Result<Node> {
        self.read(|rx| rx.node(id))
    }

    pub fn node_by_name(&self, name: &str) -> Result<Option<Node>> {
        self.read(|rx| rx.node_by_name(name))
    }

    pub fn nodes(&self) -> Result<Vec<Node>> {
        // A method path does not satisfy the higher-ranked closure bound here.
        #[allow(clippy::redundant_closure_for_method_calls)]
        self.read(|rx| rx.nodes())
    }

    /// Peers on the node (all, including those of disabled users).
    pub fn node_peer_count(&self, id: NodeId) -> Result<u64> {
        self.read(|rx| rx.node_rev(id).map(|r| r.2))
    }

    #[instrument(skip(self, patch), fields(actor = %self.actor))]
    pub fn update_node(&self, id: NodeId, patch: NodePatch) -> Result<Node> {
        if let Some(r) = &patch.region {
            validate_region(r)?;
        }
        if let Some(e) = &patch.endpoint {
            e.validate()?;
        }
        if let Some(m) = patch.mtu {
            validate_mtu(m)?;
        }
        if patch.listen_port == Some(0) {
            return Err(Error::invalid("listen port", "must be 1-65535"));
        }
        self.write(|tx| {
            let old = tx.node(id)?;
            let mut node = old.clone();
            macro_rules! set {
                ($($f:ident),*) => {$( if let Some(v) = patch.$f.clone() { node.$f = v; } )*};
            }
            set!(
                region,
                endpoint,
                listen_port,
                dns,
                mtu,
                capacity,
                client_allowed_ips,
                persistent_keepalive
            );
            if let Some(key) = patch.public_key {
                node.public_key = Some(key);
            }
            if node == old {
                return Ok(node);
            }
            tx.put_node(&node)?;
            if node.listen_port != old.listen_port || node.mtu != old.mtu {
                tx.bump(id, None)?;
            }
            tx.event(EventKind::NodeUpdated { node: id })?;
            Ok(node)
        })
    }

    /// Activates, drains (keeps its peers, takes no new ones) or disables (serves
    /// nobody) a node.
    #[instrument(skip(self), fields(actor = %self.actor))]
    pub fn set_node_state(&self, id: NodeId, state: NodeState) -> Result<Node> {
        self.write(|tx| {
            let old = tx.node(id)?;
            if old.state == state {
                return Ok(old);
            }
            let mut node = old.clone();
            node.state = state;
            tx.put_node(&node)?;
            if (old.state == NodeState::Disabled) != (state == NodeState::Disabled) {
                tx.bump(id, None)?;
            }
            tx.event(EventKind::NodeStateChanged { node: id, state })?;
            Ok(node)
        })
    }

    /// Deletes a node. With peers on it this is refused unless `force`, which revokes
    /// them.
    #[instrument(skip(self), fields(actor = %self.actor))]
    pub fn delete_node(&self, id: NodeId, force: bool) -> Result<()> {
        self.write(|tx| {
            let node = tx.node(id)?;
            let peers = tx.node_peer_ids(id)?;
            if !peers.is_empty() && !force {
                return Err(Error::Conflict(format!(
                    "node {id} still has {} peer(s); revoke them or delete with force",
                    peers.len()
                )));
            }
            for peer in peers {
                revoke_in(tx, peer)?;
            }
            tx.delete_node_record(&node)?;
            tx.forget_node_status(id)?;
            tx.event(EventKind::NodeDeleted { node: id })
        })
    }

    // ---------------------------------------------------------------- peers

    /// Issues one device's tunnel on a node, enforcing access, the device limit and
    /// the node's state; the address is the lowest free one in the node's pool.
    #[instrument(skip(self, req), fields(actor = %self.actor, user = %req.user, node = %req.node))]
    pub fn issue_peer(&self, req: IssuePeer) -> Result<IssuedPeer> {
        self.issue_peers(vec![req]).map(|mut v| v.remove(0))
    }

    /// Issues many peers in one transaction: all or none.
    pub fn issue_peers(&self, reqs: Vec<IssuePeer>) -> Result<Vec<IssuedPeer>> {
        let mut prepared = Vec::with_capacity(reqs.len());
        for req in reqs {
            let device =
                validate_display_name("device name", &req.device, crate::model::MAX_DEVICE_NAME)?;
            let keys = FreshKeys::new(req.public_key);
            prepared.push((req, device, keys));
        }
        let store_private = self.inner.policy.store_private_keys;
        self.write(|tx| {
            let mut out = Vec::with_capacity(prepared.len());
            let mut nodes: std::collections::HashMap<NodeId, Node> = Default::default();
            for (req, device, keys) in &prepared {
                let node = match nodes.get(&req.node) {
                    Some(n) => n.clone(),
                    None => {
                        let n = tx.node(req.node)?;
                        nodes.insert(req.node, n.clone());
                        n
                    }
                };
                out.push(issue_in(tx, req, device, keys, &node, store_private, true)?);
            }
            Ok(out)
        })
    }

    pub fn peer(&self, id: PeerId) -> Result<Peer> {
        self.read(|rx| rx.peer(id).map(|r| r.peer))
    }

    pub fn peers(&self, filter: PeerFilter) -> Result<Vec<Peer>> {
        self.read(|rx| match (filter.user, filter.node) {
            (Some(user), node) => Ok(rx
                .user_peers(user)?
                .into_iter()
                .filter(|p| node.is_none_or(|n| p.node == n))
                .collect()),
            (None, Some(node)) => rx.node_peers(node),
            (None, None) => rx.peers(),
        })
    }

    /// The address the next peer issued on `node` would get (lowest free), without
    /// taking it.
    pub fn next_free_address(&self, node: NodeId) -> Result<std::net::Ipv4Addr> {
        self.read(|rx| {
            let node = rx.node(node)?;
            let offset = rx.next_free_offset(&node)?;
            Ok(ipam::host_v4(node.ipv4_pool, offset))
        })
    }

    /// Peers with this public key (one per node at most).
    pub fn peers_by_public_key(&self, key: &PublicKey) -> Result<Vec<Peer>> {
        self.read(|rx| {
            rx.peers_by_key(key)?
                .into_iter()
                .map(|id| rx.peer(id).map(|r| r.peer))
                .collect()
        })
    }

    /// The peer holding `addr` on `node`.
    pub fn peer_by_address(&self, node: NodeId, addr: IpAddr) -> Result<Option<Peer>> {
        self.read(|rx| {
            let id = match addr {
                IpAddr::V4(a) => rx.peer_by_v4(node, a)?,
                IpAddr::V6(a) => rx.peer_by_v6(node, a)?,
            };
            id.map(|id| rx.peer(id).map(|r| r.peer)).transpose()
        })
    }

    /// Renders the peer's client config from the stored (encrypted) private key.
    pub fn peer_config(&self, id: PeerId) -> Result<ClientConfig> {
        self.read(|rx| {
            let rec = rx.peer(id)?;
            let node = rx.node(rec.peer.node)?;
            let sealed = rec
                .private_key_sealed
                .as_ref()
                .ok_or(Error::PrivateKeyUnavailable { peer: id })?;
            let bound = rec.peer.public_key.as_bytes();
            let private = PrivateKey::from_bytes(*rx.vault.open(sealed, bound)?);
            let psk = PresharedKey::from_bytes(*rx.vault.open(&rec.preshared_key_sealed, bound)?);
            render(&node, &rec.peer, &private, &psk)
        })
    }

    /// Gives the peer new keys (and a new preshared key), keeping its address. The
    /// old key leaves the node's desired state in the same revision step.
    #[instrument(skip(self, public_key), fields(actor = %self.actor))]
    pub fn rotate_peer(&self, id: PeerId, public_key: Option<PublicKey>) -> Result<IssuedPeer> {
        let keys = FreshKeys::new(public_key);
        let store_private = self.inner.policy.store_private_keys;
        self.write(|tx| {
            let old = tx.peer(id)?;
            let node = tx.node(old.peer.node)?;
            if node.public_key.is_none() {
                return Err(Error::NodeNotReady { node: node.id });
            }
            if node.state == NodeState::Disabled {
                return Err(Error::NodeDisabled { node: node.id });
            }
            let user = tx.user(old.peer.user)?;
            check_access(&user, tx.now)?;
            let mut rec = old.clone();
            rec.peer.public_key = keys.public;
            rec.peer.rotated_at = Some(tx.now);
            seal_keys(tx.vault, &mut rec, &keys, store_private);
            rec.peer.has_private_key = rec.private_key_sealed.is_some();
            tx.replace_peer_key(&old, &rec)?;
            let desired = tx.is_desired(node.id, id)?;
            tx.set_desired(&rec, desired)?;
            tx.event(EventKind::PeerRotated {
                peer: id,
                user: rec.peer.user,
                node: node.id,
            })?;
            let config = keys
                .private
                .as_ref()
                .map(|private| render(&node, &rec.peer, private, &keys.psk))
                .transpose()?;
            Ok(IssuedPeer {
                peer: rec.peer,
                config,
            })
        })
    }

    /// Revokes a peer: it leaves its node and its address is freed.
    #[instrument(skip(self), fields(actor = %self.actor))]
    pub fn revoke_peer(&self, id: PeerId) -> Result<Peer> {
        self.write(|tx| revoke_in(tx, id))
    }

    // ---------------------------------------------------------------- node state

    /// The current revision of the node's desired state.
    pub fn node_revision(&self, id: NodeId) -> Result<u64> {
        self.read(|rx| rx.node_rev(id).map(|r| r.0))
    }

    /// Everything the node must serve now.
    pub fn node_desired(&self, id: NodeId) -> Result<NodeDesired> {
        self.read(|rx| snapshot(rx, id))
    }

    /// What a node that has applied revision `after` needs: nothing, a delta, or (when
    /// it is far behind, ahead, or the interface changed) a full snapshot.
    pub fn node_update(&self, id: NodeId, after: u64) -> Result<DesiredUpdate> {
        self.read(|rx| {
            let (rev, floor, _) = rx.node_rev(id)?;
            if after == rev {
                return Ok(DesiredUpdate::UpToDate { revision: rev });
            }
            let node = rx.node(id)?;
            if after > rev || after < floor || node.state == NodeState::Disabled {
                return snapshot(rx, id).map(DesiredUpdate::Snapshot);
            }
            let Some(keys) = rx.changed_keys(id, after, rev)? else {
                return snapshot(rx, id).map(DesiredUpdate::Snapshot);
            };
            let mut changes = Vec::with_capacity(keys.len());
            for key in keys {
                changes.push(match rx.desired_spec_for_key(id, &key)? {
                    Some(spec) => PeerDelta::Upsert(spec),
                    None => PeerDelta::Remove(key),
                });
            }
            Ok(DesiredUpdate::Delta {
                from: after,
                to: rev,
                changes,
            })
        })
    }

    // ---------------------------------------------------------------- tokens

    /// Creates an API token; the secret is returned once and only its hash is kept.
    #[instrument(skip(self), fields(actor = %self.actor))]
    pub fn create_token(&self, scope: Scope, label: &str) -> Result<(ApiToken, Secret)> {
        let label = validate_display_name("token label", label, crate::model::MAX_LABEL)?;
        let secret = Secret::generate(auth::TOKEN_PREFIX);
        let hash = auth::hash_secret(secret.expose());
        let token = self.write(|tx| {
            if let Scope::Node(node) = scope {
                tx.node(node)?;
            }
            let token = ApiToken {
                id: TokenId(tx.next_id("next_token")?),
                scope,
                label,
                created_at: tx.now,
            };
            tx.insert_token(&token, &hash)?;
            tx.event(EventKind::TokenCreated {
                token: token.id,
                scope,
            })?;
            Ok(token)
        })?;
        Ok((token, secret))
    }

    /// The token this secret belongs to, if any.
    pub fn authenticate(&self, secret: &str) -> Result<Option<ApiToken>> {
        if !secret.starts_with(auth::TOKEN_PREFIX) || secret.len() > 128 {
            return Ok(None);
        }
        let hash = auth::hash_secret(secret);
        self.read(|rx| rx.token_by_hash(&hash))
    }

    pub fn tokens(&self) -> Result<Vec<ApiToken>> {
        // A method path does not satisfy the higher-ranked closure bound here.
        #[allow(clippy::redundant_closure_for_method_calls)]
        self.read(|rx| rx.tokens())
    }

    #[instrument(skip(self), fields(actor = %self.actor))]
    pub fn revoke_token(&self, id: TokenId) -> Result<ApiToken> {
        self.write(|tx| {
            let token = tx.delete_token(id)?.ok_or_else(|| Error::NotFound {
                entity: crate::error::Entity::Token,
                id: id.to_string(),
            })?;
            tx.event(EventKind::TokenRevoked { token: id })?;
            Ok(token)
        })
    }

    /// A single-use secret with which the node daemon enrolls (see
    /// [`Vpnctl::enroll_node`]), valid for `valid_for_secs`.
    #[instrument(skip(self), fields(actor = %self.actor))]
    pub fn create_join_secret(&self, node: NodeId, valid_for_secs: i64) -> Result<Secret> {
        if !(60..=30 * 86_400).contains(&valid_for_secs) {
            return Err(Error::invalid("validity", "must be 60 s to 30 days"));
        }
        let secret = Secret::generate(auth::JOIN_PREFIX);
        let hash = auth::hash_secret(secret.expose());
        self.write(|tx| {
            tx.node(node)?;
            let expires_at = tx.now.plus_seconds(valid_for_secs);
            tx.insert_join(&hash, &auth::JoinRecord { node, expires_at })
        })?;
        Ok(secret)
    }

    /// Enrolls a node: consumes the join secret, records the node's public key (its
    /// private key never leaves the node) and returns a node-scoped API token. Older
    /// tokens of that node are revoked.
    #[instrument(skip_all, fields(actor = %self.actor))]
    pub fn enroll_node(
        &self,
        join_secret: &str,
        public_key: PublicKey,
        listen_port: Option<u16>,
    ) -> Result<(Node, Secret)> {
        let hash = auth::hash_secret(join_secret);
        let secret = Secret::generate(auth::TOKEN_PREFIX);
        let token_hash = auth::hash_secret(secret.expose());
        if listen_port == Some(0) {
            return Err(Error::invalid("listen port", "must be 1-65535"));
        }
        let node = self.write(|tx| {
            let join = tx.take_join(&hash)?.ok_or(Error::JoinSecretInvalid)?;
            if join.expires_at <= tx.now {
                return Err(Error::JoinSecretInvalid);
            }
            let mut node = tx.node(join.node)?;
            let old = node.clone();
            node.public_key = Some(public_key);
            if let Some(port) = listen_port {
                node.listen_port = port;
            }
            tx.put_node(&node)?;
            if node.listen_port != old.listen_port {
                tx.bump(node.id, None)?;
            }
            for token in tx.tokens()? {
                if token.scope == Scope::Node(node.id) {
                    tx.delete_token(token.id)?;
                    tx.event(EventKind::TokenRevoked { token: token.id })?;
                }
            }
            let token = ApiToken {
                id: TokenId(tx.next_id("next_token")?),
                scope: Scope::Node(node.id),
                label: format!("node {}", node.name),
                created_at: tx.now,
            };
            tx.insert_token(&token, &token_hash)?;
            tx.event(EventKind::NodeEnrolled { node: node.id })?;
            Ok(node)
        })?;
        Ok((node, secret))
    }

    // ---------------------------------------------------------------- events

    pub fn events_after(&self, after: u64, limit: usize) -> Result<Vec<Event>> {
        self.read(|rx| rx.events_after(after, limit))
    }

    pub fn recent_events(&self, limit: usize) -> Result<Vec<Event>> {
        self.read(|rx| rx.recent_events(limit))
    }

    /// Appends a notice (health, alerts) to the event log.
    pub fn notice(&self, severity: Severity, node: Option<NodeId>, message: &str) -> Result<()> {
        let message = validate_display_name("message", message, 500)?;
        self.write(|tx| {
            tx.event(EventKind::Notice {
                severity,
                node,
                message,
            })
        })
    }
}

fn validate_region(region: &Region) -> Result<()> {
    validate_slug("region code", &region.code, crate::model::MAX_REGION_CODE)?;
    validate_display_name("region name", &region.name, 64)?;
    Ok(())
}

fn validate_mtu(mtu: u16) -> Result<()> {
    if !(1280..=9000).contains(&mtu) {
        return Err(Error::invalid(
            "mtu",
            format!("{mtu} is outside 1280..=9000"),
        ));
    }
    Ok(())
}

/// Refuses a device to a user without active access.
pub(crate) fn check_access(user: &User, now: Timestamp) -> Result<()> {
    match Access::of(user, now).refusal(user) {
        Some(refusal) => Err(refusal),
        None => Ok(()),
    }
}

fn seal_keys(vault: &Vault, rec: &mut PeerRecord, keys: &FreshKeys, store_private: bool) {
    let bound = keys.public.as_bytes();
    rec.private_key_sealed = keys
        .private
        .as_ref()
        .filter(|_| store_private)
        .map(|k| vault.seal(k.expose_bytes(), bound));
    rec.preshared_key_sealed = vault.seal(keys.psk.expose_bytes(), bound);
}

fn render(
    node: &Node,
    peer: &Peer,
    private: &PrivateKey,
    psk: &PresharedKey,
) -> Result<ClientConfig> {
    let node_public_key = node
        .public_key
        .as_ref()
        .ok_or(Error::NodeNotReady { node: node.id })?;
    Ok(ClientConfig::render(&ConfigInput {
        node,
        node_public_key,
        peer,
        private_key: private,
        preshared_key: psk,
    }))
}

pub(crate) fn issue_in(
    tx: &mut Tx<'_>,
    req: &IssuePeer,
    device: &str,
    keys: &FreshKeys,
    node: &Node,
    store_private: bool,
    enforce_limits: bool,
) -> Result<IssuedPeer> {
    let user = tx.user(req.user)?;
    if enforce_limits {
        check_access(&user, tx.now)?;
    }
    let placement = Placement::of(
        node,
        tx.node_status(node.id)?.health,
        tx.node_peer_count(node.id)?,
    );
    if let Some(refusal) = placement.refusal(node) {
        return Err(refusal);
    }
    if enforce_limits && tx.user_peer_count(user.id)? >= u64::from(user.device_limit) {
        return Err(Error::DeviceLimit {
            user: user.id,
            limit: user.device_limit,
        });
    }
    if tx.device_taken(user.id, node.id, device)? {
        return Err(Error::Conflict(format!(
            "user {} already has a device named {device:?} on node {}",
            user.id, node.id
        )));
    }
    if tx.key_taken(&keys.public, node.id)? {
        return Err(Error::Conflict(format!(
            "public key {} is already used on node {}",
            keys.public, node.id
        )));
    }
    let offset = tx.allocate(node)?;
    let mut rec = PeerRecord {
        peer: Peer {
            id: PeerId(tx.next_id("next_peer")?),
            user: user.id,
            node: node.id,
            device: device.to_owned(),
            public_key: keys.public,
            has_private_key: false,
            ipv4: ipam::host_v4(node.ipv4_pool, offset),
            ipv6: node.ipv6_pool.map(|p| ipam::host_v6(p, offset)),
            created_at: tx.now,
            rotated_at: None,
        },
        offset,
        private_key_sealed: None,
        preshared_key_sealed: Vec::new(),
    };
    seal_keys(tx.vault, &mut rec, keys, store_private);
    rec.peer.has_private_key = rec.private_key_sealed.is_some();
    tx.insert_peer(&rec)?;
    tx.set_desired(&rec, serves_devices(&user))?;
    tx.event(EventKind::PeerIssued {
        peer: rec.peer.id,
        user: user.id,
        node: node.id,
    })?;
    let config = keys
        .private
        .as_ref()
        .map(|private| render(node, &rec.peer, private, &keys.psk))
        .transpose()?;
    Ok(IssuedPeer {
        peer: rec.peer,
        config,
    })
}

pub(crate) fn revoke_in(tx: &mut Tx<'_>, id: PeerId) -> Result<Peer> {
    let rec = tx.peer(id)?;
    let node = tx.node(rec.peer.node)?;
    tx.set_desired(&rec, false)?;
    tx.delete_peer(&rec, &node)?;
    tx.forget_peer_traffic(id)?;
    tx.event(EventKind::PeerRevoked {
        peer: id,
        user: rec.peer.user,
        node: node.id,
    })?;
    Ok(rec.peer)
}

/// Brings every peer of `user` in or out of the desired state to match the user's
/// access.
pub(crate) fn sync_user_peers(tx: &mut Tx<'_>, user: &User) -> Result<()> {
    let want = serves_devices(user);
    for id in tx.user_peer_ids(user.id)? {
        let rec = tx.peer(id)?;
        tx.set_desired(&rec, want)?;
    }
    Ok(())
}

pub(crate) fn set_access_in(tx: &mut Tx<'_>, id: UserId, until: Option<Timestamp>) -> Result<User> {
    let old = tx.user(id)?;
    let mut user = old.clone();
    user.until = until;
    user.lapsed = until.is_some_and(|u| u <= tx.now);
    if user == old {
        return Ok(user);
    }
    tx.put_user(Some(&old), &user)?;
    sync_user_peers(tx, &user)?;
    tx.event(EventKind::AccessChanged { user: id, until })?;
    Ok(user)
}

fn snapshot(rx: &Rx<'_>, id: NodeId) -> Result<NodeDesired> {
    let (revision, _, _) = rx.node_rev(id)?;
    let node = rx.node(id)?;
    let enabled = node.state != NodeState::Disabled;
    let peers = if enabled {
        rx.desired_specs(id)?
    } else {
        Vec::new()
    };
    Ok(NodeDesired {
        node: id,
        revision,
        enabled,
        interface: interface_spec(&node),
        peers,
    })
}

/// The interface a node must bring up.
pub fn interface_spec(node: &Node) -> InterfaceSpec {
    InterfaceSpec {
        listen_port: node.listen_port,
        address_v4: Ipv4Net::new(node.gateway_v4(), node.ipv4_pool.prefix_len())
            .expect("prefix checked at registration"),
        address_v6: node
            .ipv6_pool
            .map(|p| Ipv6Net::new(ipam::host_v6(p, 1), p.prefix_len()).expect("valid prefix")),
        mtu: node.mtu,
    }
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

    #[test]
    fn code_hash_is_stable_and_keyed() {
        assert_eq!(code_hash("a"), code_hash("a"));
        assert_ne!(code_hash("a"), code_hash("b"));
    }
}
