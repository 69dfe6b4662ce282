//! Request and response bodies of the HTTP API that are not model types.
//! The server deserializes exactly these, so client and server cannot drift apart.

use std::net::IpAddr;

use crate::auth::{ApiToken, Scope};
use crate::keys::PublicKey;
use crate::lifecycle::{Health, Probe, Quota, Traffic};
use crate::model::{
    Grant, Invite, Locale, Node, NodeId, Peer, PeerId, Region, Role, User, UserId, UserState,
};
use crate::time::Timestamp;
use crate::wire::{NodeReport, SystemStats};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Deserializer, Serialize};

/// `Some(None)` for an explicit `null`, `None` for an absent field.
fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// `POST /v1/users`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    pub name: String,
    #[serde(default)]
    pub telegram_id: Option<i64>,
    #[serde(default)]
    pub role: Option<Role>,
    #[serde(default)]
    pub until: Option<Timestamp>,
    #[serde(default)]
    pub device_limit: Option<u32>,
    #[serde(default)]
    pub locale: Option<Locale>,
}

/// `PATCH /v1/users/{id}`: absent fields stay; `telegram_id: null` clears it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchUser {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(
        default,
        deserialize_with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub telegram_id: Option<Option<i64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_limit: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<Locale>,
    /// `null` removes the quota.
    #[serde(
        default,
        deserialize_with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub quota: Option<Option<Quota>>,
}

/// `PUT /v1/users/{id}/state`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetUserState {
    pub state: UserState,
}

/// `PUT /v1/users/{id}/access`: `until: null` is unlimited.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetAccess {
    pub until: Option<Timestamp>,
}

/// `POST /v1/users/{id}/access/extend`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtendAccess {
    pub days: u32,
}

/// `GET /v1/users?telegram_id=` (that one user), else `?ids=3,9,12` (those users,
/// at most [`crate::routes::PAGE_MAX`]), else one page: `?after=&limit=&name=&access=`.
/// The first of these given decides; the fields of the others are ignored.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telegram_id: Option<i64>,
    /// These users (those that exist, in id order): what a list of peers needs to
    /// name their owners, in one call instead of one per user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ids: Option<IdList<UserId>>,
    /// The previous page's cursor ([`crate::routes::NEXT_AFTER_HEADER`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<UserId>,
    /// At most this many (default and maximum [`crate::routes::PAGE_MAX`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// Only users whose name contains this, ignoring case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Only users whose access is in this state now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<AccessState>,
}

/// Ids in a query string, comma-separated (`3,9,12`; the prefixed form `u3` too).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IdList<T>(pub Vec<T>);

impl<T: std::fmt::Display> Serialize for IdList<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut text = String::new();
        for (i, id) in self.0.iter().enumerate() {
            if i > 0 {
                text.push(',');
            }
            text.push_str(&id.to_string());
        }
        s.serialize_str(&text)
    }
}

impl<'de, T: std::str::FromStr<Err = crate::InvalidInput>> Deserialize<'de> for IdList<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(d)?;
        text.split(',')
            .map(|part| match part.trim() {
                "" => Err(serde::de::Error::custom(format!(
                    "{text:?} is not a list of ids like 3,9,12"
                ))),
                id => id.parse().map_err(serde::de::Error::custom),
            })
            .collect::<Result<Vec<T>, _>>()
            .map(Self)
    }
}

/// Where a user's access stands, for filtering lists (`?access=lapsed`); core's
/// `Access::of` decides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessState {
    /// Devices work.
    Active,
    /// Access ended.
    Lapsed,
    /// The traffic quota of the period is used up.
    Suspended,
    /// An admin turned the account off.
    Disabled,
}

impl AccessState {
    pub const ALL: [Self; 4] = [Self::Active, Self::Lapsed, Self::Suspended, Self::Disabled];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Lapsed => "lapsed",
            Self::Suspended => "suspended",
            Self::Disabled => "disabled",
        }
    }
}

impl std::fmt::Display for AccessState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for AccessState {
    type Err = crate::error::InvalidInput;

    /// `active`, `lapsed`, `suspended` or `disabled`, ignoring case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                crate::error::InvalidInput::new(
                    "access",
                    format!("{s:?}: say active, lapsed, suspended or disabled"),
                )
            })
    }
}

/// `GET /v1/invites`: one page in id order.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InviteQuery {
    /// The previous page's cursor ([`crate::routes::NEXT_AFTER_HEADER`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<crate::model::InviteId>,
    /// At most this many (default and maximum [`crate::routes::PAGE_MAX`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

/// One page of a list and the cursor of the next (`None`: this was the last).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<u64>,
}

/// `POST /v1/invites`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateInvite {
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub uses: Option<u32>,
    #[serde(default)]
    pub expires_at: Option<Timestamp>,
    #[serde(default)]
    pub grant: Option<Grant>,
    /// A plan (usually a trial) whose days, devices and quota the invite grants,
    /// instead of `grant`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<crate::model::PlanId>,
}

/// The answer to `POST /v1/invites`. `code` is shown this once: never log it.
#[derive(Clone, Serialize, Deserialize)]
pub struct CreatedInvite {
    pub invite: Invite,
    pub code: String,
    /// `https://t.me/<bot>?start=<code>` when the server knows the bot's username.
    pub link: Option<String>,
}

impl std::fmt::Debug for CreatedInvite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedInvite")
            .field("invite", &self.invite)
            .field("code", &"***")
            .finish_non_exhaustive()
    }
}

/// `POST /v1/invites/redeem` (bot).
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedeemInvite {
    pub code: String,
    #[serde(default)]
    pub telegram_id: Option<i64>,
    pub name: String,
    #[serde(default)]
    pub locale: Option<Locale>,
}

impl std::fmt::Debug for RedeemInvite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedeemInvite")
            .field("code", &"***")
            .field("telegram_id", &self.telegram_id)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Redeemed {
    pub user: User,
    pub invite: Invite,
    /// False when an existing user (same Telegram id) got the grant added.
    pub created: bool,
}

/// `POST /v1/nodes`. Omitted settings take `NewNode::new`'s defaults.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterNode {
    pub name: String,
    pub region: Region,
    /// `host:port` clients connect to.
    pub endpoint: String,
    pub ipv4_pool: Ipv4Net,
    #[serde(default)]
    pub listen_port: Option<u16>,
    #[serde(default)]
    pub public_key: Option<PublicKey>,
    #[serde(default)]
    pub ipv6_pool: Option<Ipv6Net>,
    #[serde(default)]
    pub dns: Option<Vec<IpAddr>>,
    #[serde(default)]
    pub mtu: Option<u16>,
    #[serde(default)]
    pub capacity: Option<u32>,
    #[serde(default)]
    pub client_allowed_ips: Option<Vec<IpNet>>,
    #[serde(default)]
    pub persistent_keepalive: Option<u16>,
    /// Default plain WireGuard; AmneziaWG without parameters gets fresh ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<crate::transport::TransportChoice>,
}

impl RegisterNode {
    /// A node with only what `vpnctl nodes add` requires; every other setting is left
    /// to the control plane's defaults (region name = its code).
    pub fn new(name: &str, region: &str, endpoint: &str, ipv4_pool: Ipv4Net) -> Self {
        Self {
            name: name.into(),
            region: Region {
                code: region.into(),
                name: region.into(),
            },
            endpoint: endpoint.into(),
            ipv4_pool,
            listen_port: None,
            public_key: None,
            ipv6_pool: None,
            dns: None,
            mtu: None,
            capacity: None,
            client_allowed_ips: None,
            persistent_keepalive: None,
            transport: None,
        }
    }
}

/// `PATCH /v1/nodes/{id}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchNode {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<Region>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen_port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<PublicKey>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<Vec<IpAddr>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_allowed_ips: Option<Vec<IpNet>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent_keepalive: Option<u16>,
    /// A new transport, or new AmneziaWG parameters (given, or fresh when omitted):
    /// every client of the node then needs a new config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<crate::transport::TransportChoice>,
}

/// `DELETE /v1/nodes/{id}?force=true` revokes the node's peers too.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteNodeQuery {
    #[serde(default)]
    pub force: bool,
}

/// How a node is doing: the control plane's judgement (with hysteresis, see
/// `vpnctl_core::lifecycle`) and the facts it rests on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeHealth {
    pub status: Health,
    /// Why, e.g. `no report for 95 s`.
    pub reason: String,
    /// Since when the node is in `status`.
    pub since: Option<Timestamp>,
    /// The revision the control plane wants the node at.
    pub desired_revision: u64,
    /// The revision the node last reported as applied.
    pub applied_revision: Option<u64>,
    pub in_sync: bool,
    pub last_report_at: Option<Timestamp>,
    /// Peers with a handshake in the last 3 minutes, per the latest report.
    pub peers_connected: u32,
    pub interface_up: Option<bool>,
    pub report_errors: u32,
    /// The latest active probe of the node's endpoint.
    pub probe: Option<Probe>,
    /// Bytes through the node since it was registered.
    pub traffic: Traffic,
}

/// `GET /v1/notifications`: the caller's unacknowledged notifications.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// Long-poll: wait up to this many seconds (at most 30) for one to arrive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_secs: Option<u64>,
}

/// `POST /v1/notifications/ack`: everything up to `upto` was handled.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AckNotifications {
    pub upto: u64,
}

/// Where an evacuation may put devices.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type", content = "value")]
pub enum EvacuateTo {
    /// Nodes that take new devices, same region first, least loaded first.
    #[default]
    Auto,
    /// Nodes of this region code that take new devices.
    Region(String),
    /// Exactly this node (even if its health is unknown).
    Node(NodeId),
}

/// One device moved by an evacuation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Moved {
    pub user: UserId,
    pub device: String,
    pub old_peer: PeerId,
    pub new_peer: PeerId,
    pub to: NodeId,
}

/// The result of an evacuation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evacuation {
    pub node: NodeId,
    pub moved: Vec<Moved>,
    /// Devices that stayed, and why (no capacity anywhere, …).
    pub failed: Vec<(PeerId, String)>,
}

/// A user's traffic as shown to them and to admins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageView {
    pub total: Traffic,
    pub period_bytes: u64,
    pub period_start: Timestamp,
    pub period_end: Timestamp,
    pub quota: Option<Quota>,
    pub suspended: bool,
}

/// `POST /v1/nodes/{id}/evacuate`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvacuateRequest {
    #[serde(default)]
    pub to: EvacuateTo,
}

/// A node's latest report and when the control plane received it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredReport {
    pub received_at: Timestamp,
    pub report: NodeReport,
}

/// What node listings say about a node's latest report: a few figures, never the
/// per-peer list (`GET /v1/nodes/{id}/report` has it, for admins).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportSummary {
    pub received_at: Timestamp,
    /// When the node sent it (its own clock).
    pub at: Timestamp,
    pub applied_revision: u64,
    pub interface_up: bool,
    /// Peers listed in the report.
    pub peers: u32,
    /// Sum of the peers' counters as the node read them.
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub system: SystemStats,
    /// How many errors the node reported.
    pub errors: u32,
    /// The first of them, cleaned and cut short.
    pub first_error: Option<String>,
}

/// A node as `GET /v1/nodes` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeView {
    pub node: Node,
    /// Peers on the node (including those of users without access).
    pub peers: u64,
    pub health: NodeHealth,
    pub report: Option<ReportSummary>,
}

/// A node as the bot offers and names it (`GET /v1/nodes/brief`): ~150 bytes of
/// JSON where a [`NodeView`] takes ~700. The facts core judges a node by
/// (`vpnctl_core::Placement::of_brief`), its name, region and transport; no
/// endpoint, key, pool or report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeBrief {
    pub id: NodeId,
    pub name: String,
    pub region: Region,
    pub transport: crate::transport::TransportKind,
    pub state: crate::model::NodeState,
    /// Whether the node has joined (its public key is known).
    pub enrolled: bool,
    pub health: Health,
    /// Devices on the node now.
    pub peers: u64,
    /// Devices it takes in all (its capacity, bounded by its pool).
    pub capacity: u64,
}

/// One of a user's devices with its server and its latest counters
/// (`GET /v1/users/{id}/devices`): all the bot's /status needs, read per user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceView {
    pub peer: Peer,
    pub node: NodeBrief,
    /// From the node's latest report since the server started; `None` before one
    /// or when the report does not list the device yet.
    pub live: Option<DeviceLive>,
}

/// A device's counters as its node last reported them (no endpoint: the bot never
/// sees users' IP addresses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceLive {
    pub last_handshake: Option<Timestamp>,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub reported_at: Timestamp,
}

/// `POST /v1/nodes/{id}/join-token`.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateJoinToken {
    /// Default one day; 60 s to 30 days.
    #[serde(default)]
    pub valid_for_secs: Option<i64>,
}

/// The join token text (`vpnctl-join:...`). Show it once; never log it.
#[derive(Clone, Serialize, Deserialize)]
pub struct CreatedJoinToken {
    pub join_token: String,
    pub expires_at: Timestamp,
}

impl std::fmt::Debug for CreatedJoinToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedJoinToken")
            .field("join_token", &"***")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// `POST /v1/enroll`, authenticated by the join secret itself.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    pub join_secret: String,
    pub public_key: PublicKey,
    #[serde(default)]
    pub listen_port: Option<u16>,
}

impl std::fmt::Debug for EnrollRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnrollRequest")
            .field("join_secret", &"***")
            .field("public_key", &self.public_key)
            .field("listen_port", &self.listen_port)
            .finish()
    }
}

/// The node's record and its node-scoped API token (`vpt_...`, shown once).
#[derive(Clone, Serialize, Deserialize)]
pub struct EnrollResponse {
    pub node: Node,
    pub token: String,
}

impl std::fmt::Debug for EnrollResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnrollResponse")
            .field("node", &self.node)
            .field("token", &"***")
            .finish()
    }
}

/// `GET /v1/nodes/{id}/desired?after=N&wait=SECS`.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DesiredQuery {
    #[serde(default)]
    pub after: u64,
    /// Seconds to wait for a change; default 25, at most 60, 0 answers at once.
    #[serde(default)]
    pub wait: Option<u64>,
}

/// `POST /v1/peers`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuePeerRequest {
    pub user: UserId,
    pub node: NodeId,
    pub device: String,
    /// The device's own key; then no config can be rendered by the server.
    #[serde(default)]
    pub public_key: Option<PublicKey>,
}

/// `GET /v1/peers?ids=3,9,12` (those peers, at most [`crate::routes::PAGE_MAX`];
/// the other fields are then ignored), else one page:
/// `?user=&node=&region=&access=&device=&address=&public_key=&after=&limit=`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerQuery {
    /// These peers (those that exist, in id order): what a client told which peers
    /// changed reads them again with, in one call instead of one per peer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ids: Option<IdList<PeerId>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<UserId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<NodeId>,
    /// On a node of this region (its code, e.g. `de-fra`; ASCII case ignored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Whose owner's access is in this state now (a page filtered by this or by
    /// `device` reads at most 20 × `limit` peers, so it may hold fewer and still
    /// carry a cursor).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<AccessState>,
    /// Whose device name contains this, ignoring case (bounded like `access`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// Holding this tunnel address (IPv4 or IPv6) on its node; pools may repeat
    /// across nodes (`node` narrows). A point read per node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<std::net::IpAddr>,
    /// With this public key (base64; one peer per node at most). A point read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<PublicKey>,
    /// The previous page's cursor ([`crate::routes::NEXT_AFTER_HEADER`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<PeerId>,
    /// At most this many (default and maximum [`crate::routes::PAGE_MAX`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

/// `POST /v1/peers/{id}/rotate`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotatePeer {
    #[serde(default)]
    pub public_key: Option<PublicKey>,
}

/// A freshly issued or rotated peer. `config` (the wg-quick text, with the private key)
/// is present when the server generated the key: never log it.
#[derive(Clone, Serialize, Deserialize)]
pub struct IssuedPeerView {
    pub peer: Peer,
    pub tunnel_name: Option<String>,
    pub config: Option<String>,
}

impl std::fmt::Debug for IssuedPeerView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedPeerView")
            .field("peer", &self.peer)
            .field("tunnel_name", &self.tunnel_name)
            .field("config", &self.config.as_ref().map(|_| "***"))
            .finish()
    }
}

/// `POST /v1/tokens`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateToken {
    #[serde(flatten)]
    pub scope: Scope,
    pub label: String,
}

/// A new API token; `secret` (`vpt_...`) is shown this once.
#[derive(Clone, Serialize, Deserialize)]
pub struct CreatedToken {
    pub token: ApiToken,
    pub secret: String,
}

impl std::fmt::Debug for CreatedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedToken")
            .field("token", &self.token)
            .field("secret", &"***")
            .finish()
    }
}

/// `GET /v1/events?after=&limit=`, `GET /v1/events?before=&limit=` and
/// `GET /v1/events/stream?after=`.
///
/// `after` reads the log forwards (the oldest events after it); `before` reads it
/// backwards from its end (the newest events before it, still oldest first), which
/// is how a dashboard shows recent events and pages older ones on demand. The two do
/// not combine.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventQuery {
    #[serde(default)]
    pub after: Option<u64>,
    /// The stream only: the log `after` belongs to
    /// ([`crate::routes::STREAM_LOG_HEADER`]); another is a 409 (the store was
    /// restored from a backup).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<u64>,
    #[serde(default)]
    pub limit: Option<usize>,
}
