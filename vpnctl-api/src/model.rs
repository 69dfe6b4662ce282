//! The domain: users, invites, nodes, peers and events, plus the validation of the
//! names and settings they carry.
//!
//! These are the types the API serves and every frontend shows; none holds a secret.
//! Encrypted key material lives only in the store's own records.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

use crate::error::InvalidInput;
use crate::keys::PublicKey;
use crate::time::Timestamp;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub u64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }

        impl FromStr for $name {
            type Err = InvalidInput;
            /// Accepts `12` and the prefixed form `u12`/`n12`/`p12`/`i12`.
            fn from_str(s: &str) -> Result<Self, InvalidInput> {
                let digits = s.strip_prefix($prefix).unwrap_or(s);
                digits
                    .parse()
                    .map(Self)
                    .map_err(|_| InvalidInput::new(stringify!($name), format!("{s:?} is not an id")))
            }
        }
    };
}

id_type!(
    /// A user's id.
    UserId,
    "u"
);
id_type!(
    /// A node's id.
    NodeId,
    "n"
);
id_type!(
    /// A peer's (one device on one node) id.
    PeerId,
    "p"
);
id_type!(
    /// An invite's id (not its secret code).
    InviteId,
    "i"
);
id_type!(
    /// A plan's id (what users can buy).
    PlanId,
    "plan"
);
id_type!(
    /// An order's id: one invoice sent to one user.
    OrderId,
    "o"
);
id_type!(
    /// A payment's id (ours, not Telegram's charge id).
    PaymentId,
    "pay"
);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    #[default]
    User,
    Admin,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UserState {
    #[default]
    Active,
    Disabled,
}

/// The languages the frontends speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Locale {
    #[default]
    En,
    Ru,
}

impl Locale {
    /// Maps a Telegram `language_code` (e.g. `ru`, `ru-RU`, `be`) to a locale.
    pub fn from_language_code(code: Option<&str>) -> Self {
        match code.map(|c| c.split(['-', '_']).next().unwrap_or(c).to_ascii_lowercase()) {
            Some(c) if matches!(c.as_str(), "ru" | "uk" | "be" | "kk") => Self::Ru,
            _ => Self::En,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: UserId,
    pub telegram_id: Option<i64>,
    pub name: String,
    pub role: Role,
    pub state: UserState,
    /// End of access; `None` is unlimited.
    pub until: Option<Timestamp>,
    /// Set once `until` has passed and the user's peers left the nodes; cleared when
    /// access is extended. Stored (not computed from the clock) so that a node's
    /// desired state and its revision change together.
    pub lapsed: bool,
    pub device_limit: u32,
    pub locale: Locale,
    pub created_at: Timestamp,
    /// Traffic allowance per period; `None` is unlimited.
    pub quota: Option<crate::lifecycle::Quota>,
    /// Set while the quota of the current period is used up; cleared when the period
    /// resets or the quota changes. Stored for the same reason as `lapsed`.
    pub suspended: bool,
}

/// What redeeming an invite grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// Days of access from redemption; `None` is unlimited.
    pub access_days: Option<u32>,
    pub device_limit: u32,
    pub role: Role,
}

impl Default for Grant {
    fn default() -> Self {
        Self {
            access_days: Some(30),
            device_limit: 3,
            role: Role::User,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invite {
    pub id: InviteId,
    pub label: String,
    pub uses_total: u32,
    pub uses_left: u32,
    pub expires_at: Option<Timestamp>,
    pub grant: Grant,
    pub revoked: bool,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    #[default]
    Active,
    /// Keeps serving its peers, takes no new ones.
    Draining,
    /// Serves nobody: its desired state is empty.
    Disabled,
}

impl fmt::Display for NodeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Active => "active",
            Self::Draining => "draining",
            Self::Disabled => "disabled",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Region {
    /// Short code, e.g. `de-fra`.
    pub code: String,
    /// Display name, e.g. `Frankfurt, Germany`.
    pub name: String,
}

/// Where clients reach a node: a host name or an IP address, and a UDP port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.parse::<Ipv6Addr>().is_ok() {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl FromStr for Endpoint {
    type Err = InvalidInput;
    fn from_str(s: &str) -> Result<Self, InvalidInput> {
        let bad = |reason: &str| InvalidInput::new("endpoint", format!("{s:?}: {reason}"));
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (host, port) = rest
                .split_once("]:")
                .ok_or_else(|| bad("expected [v6]:port"))?;
            (host, port)
        } else {
            s.rsplit_once(':')
                .ok_or_else(|| bad("expected host:port"))?
        };
        let port: u16 = port
            .parse()
            .map_err(|_| bad("port is not a number 1-65535"))?;
        let endpoint = Self {
            host: host.to_owned(),
            port,
        };
        endpoint.validate()?;
        Ok(endpoint)
    }
}

impl Endpoint {
    pub fn validate(&self) -> Result<(), InvalidInput> {
        if self.port == 0 {
            return Err(InvalidInput::new("endpoint", "port 0"));
        }
        if self.host.parse::<IpAddr>().is_ok() {
            return Ok(());
        }
        let ok_label = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if self.host.is_empty() || self.host.len() > 253 || !self.host.split('.').all(ok_label) {
            return Err(InvalidInput::new(
                "endpoint",
                format!("{:?} is neither an IP address nor a DNS name", self.host),
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub id: NodeId,
    /// Unique, `[a-z0-9-]`, also the start of client tunnel names.
    pub name: String,
    pub region: Region,
    pub endpoint: Endpoint,
    /// UDP port the interface listens on (usually the endpoint's port; differs behind
    /// a port forward).
    pub listen_port: u16,
    /// Reported by the node at enrollment; its private key never leaves the node.
    pub public_key: Option<PublicKey>,
    pub ipv4_pool: Ipv4Net,
    pub ipv6_pool: Option<Ipv6Net>,
    /// DNS servers written into client configs.
    pub dns: Vec<IpAddr>,
    pub mtu: u16,
    /// Maximum number of peers; 0 means the pool's size.
    pub capacity: u32,
    /// What clients route through the tunnel (default: everything).
    pub client_allowed_ips: Vec<IpNet>,
    /// Written into client configs; 0 = off.
    pub persistent_keepalive: u16,
    pub state: NodeState,
    pub created_at: Timestamp,
    /// Plain WireGuard or AmneziaWG with its parameters; changing it changes every
    /// client's config.
    #[serde(default)]
    pub transport: crate::transport::Transport,
}

impl Node {
    /// The node's own tunnel address (first host of the pool), never given to a peer.
    pub fn gateway_v4(&self) -> Ipv4Addr {
        host_v4(self.ipv4_pool, 1)
    }

    pub fn gateway_v6(&self) -> Option<Ipv6Addr> {
        self.ipv6_pool.map(|p| host_v6(p, 1))
    }
}

/// The address at `offset` in an IPv4 pool (offset 1 is the node's gateway).
pub fn host_v4(pool: Ipv4Net, offset: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(pool.network()).wrapping_add(offset))
}

/// The address at `offset` in an IPv6 pool; a peer's IPv6 address has the same
/// offset as its IPv4 address.
pub fn host_v6(pool: Ipv6Net, offset: u32) -> Ipv6Addr {
    Ipv6Addr::from(u128::from(pool.network()).wrapping_add(u128::from(offset)))
}

/// One device's tunnel on one node. Key material stays in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peer {
    pub id: PeerId,
    pub user: UserId,
    pub node: NodeId,
    pub device: String,
    pub public_key: PublicKey,
    /// Whether the store keeps the client's private key (encrypted), so that its
    /// config can be shown again.
    pub has_private_key: bool,
    pub ipv4: Ipv4Addr,
    pub ipv6: Option<Ipv6Addr>,
    pub created_at: Timestamp,
    pub rotated_at: Option<Timestamp>,
}

/// Who did something, for the event log.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type", content = "id")]
pub enum Actor {
    #[default]
    System,
    Admin(String),
    Bot,
    User(UserId),
    Node(NodeId),
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::System => f.write_str("system"),
            Self::Admin(name) => write!(f, "admin:{name}"),
            Self::Bot => f.write_str("bot"),
            Self::User(id) => write!(f, "user:{id}"),
            Self::Node(id) => write!(f, "node:{id}"),
        }
    }
}

/// What happened. New variants are only ever appended (the log is stored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum EventKind {
    UserCreated {
        user: UserId,
    },
    UserUpdated {
        user: UserId,
    },
    UserDisabled {
        user: UserId,
    },
    UserEnabled {
        user: UserId,
    },
    UserDeleted {
        user: UserId,
    },
    AccessChanged {
        user: UserId,
        until: Option<Timestamp>,
    },
    AccessExpired {
        user: UserId,
    },
    InviteCreated {
        invite: InviteId,
    },
    InviteRedeemed {
        invite: InviteId,
        user: UserId,
    },
    InviteRevoked {
        invite: InviteId,
    },
    NodeRegistered {
        node: NodeId,
    },
    NodeUpdated {
        node: NodeId,
    },
    NodeStateChanged {
        node: NodeId,
        state: NodeState,
    },
    NodeDeleted {
        node: NodeId,
    },
    PeerIssued {
        peer: PeerId,
        user: UserId,
        node: NodeId,
    },
    PeerRotated {
        peer: PeerId,
        user: UserId,
        node: NodeId,
    },
    PeerRevoked {
        peer: PeerId,
        user: UserId,
        node: NodeId,
    },
    /// Free-form notices from other parts (health, alerts), appended by the server.
    Notice {
        severity: Severity,
        node: Option<NodeId>,
        message: String,
    },
    TokenCreated {
        token: crate::auth::TokenId,
        scope: crate::auth::Scope,
    },
    TokenRevoked {
        token: crate::auth::TokenId,
    },
    NodeEnrolled {
        node: NodeId,
    },
    NodeHealthChanged {
        node: NodeId,
        from: crate::lifecycle::Health,
        to: crate::lifecycle::Health,
        reason: String,
    },
    QuotaExceeded {
        user: UserId,
        until: Timestamp,
    },
    QuotaRestored {
        user: UserId,
    },
    NodeEvacuated {
        node: NodeId,
        moved: u32,
        failed: u32,
    },
    PlanCreated {
        plan: PlanId,
    },
    PlanRetired {
        plan: PlanId,
    },
    OrderCreated {
        order: OrderId,
        user: UserId,
        plan: PlanId,
    },
    PaymentReceived {
        payment: PaymentId,
        user: UserId,
        plan: PlanId,
        stars: u32,
    },
    RefundRequested {
        payment: PaymentId,
        user: UserId,
    },
    PaymentRefunded {
        payment: PaymentId,
        user: UserId,
        stars: u32,
    },
    RefundFailed {
        payment: PaymentId,
        reason: String,
    },
    BroadcastQueued {
        broadcast: u64,
        recipients: u32,
    },
    BroadcastCancelled {
        broadcast: u64,
    },
    SubscriptionRenewal {
        user: UserId,
        order: OrderId,
        cancelled: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

/// A store restored from a backup numbers its notifications, broadcasts and node
/// revisions from a new epoch, a multiple of this: no number a client saw from the
/// lost store is given again.
pub const RESTORE_EPOCH: u64 = 1 << 21;

/// Epochs are counted in seconds since 2026-01-01 UTC (or one more than the
/// backup's own, if that is more): restores a second apart never share one, one
/// epoch would have to give two million numbers a second to reach the next, and
/// numbers stay exact in JavaScript and Prometheus (below 2⁵³) for 136 years.
const EPOCHS_FROM: i64 = 1_767_225_600;

/// The first number of the epoch a store restored at `now` starts, when the
/// backup's highest number (notification, broadcast or revision) is `highest`.
pub fn restore_epoch(highest: u64, now: Timestamp) -> u64 {
    let by_time = u64::try_from(now.seconds() - EPOCHS_FROM).unwrap_or(0);
    let by_backup = (highest / RESTORE_EPOCH).saturating_add(1);
    by_time.max(by_backup).saturating_mul(RESTORE_EPOCH)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Its number in the log: one more than the event before, but for those
    /// retention pruned.
    pub seq: u64,
    pub at: Timestamp,
    pub actor: Actor,
    #[serde(flatten)]
    pub kind: EventKind,
}

/// Checks a display name: 1..=`max` characters, no control characters, trimmed.
pub fn validate_display_name(
    field: &'static str,
    name: &str,
    max: usize,
) -> Result<String, InvalidInput> {
    let trimmed = name.trim();
    if trimmed.is_empty() {
        return Err(InvalidInput::new(field, "must not be empty"));
    }
    let len = trimmed.chars().count();
    if len > max {
        return Err(InvalidInput::new(
            field,
            format!("{len} characters, at most {max} allowed"),
        ));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(InvalidInput::new(field, "contains control characters"));
    }
    Ok(trimmed.to_owned())
}

/// Checks a slug (node name, region code): 1..=`max` of `[a-z0-9-]`, not starting or
/// ending with `-`.
pub fn validate_slug(field: &'static str, slug: &str, max: usize) -> Result<(), InvalidInput> {
    if slug.is_empty() {
        return Err(InvalidInput::new(field, "must not be empty"));
    }
    if slug.len() > max {
        return Err(InvalidInput::new(
            field,
            format!("{} characters, at most {max} allowed", slug.len()),
        ));
    }
    if !slug
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        || slug.starts_with('-')
        || slug.ends_with('-')
    {
        return Err(InvalidInput::new(
            field,
            format!("{slug:?}: use a-z, 0-9 and inner '-'"),
        ));
    }
    Ok(())
}

pub const MAX_USER_NAME: usize = 64;
pub const MAX_DEVICE_NAME: usize = 32;
pub const MAX_NODE_NAME: usize = 32;
pub const MAX_REGION_CODE: usize = 16;
pub const MAX_LABEL: usize = 64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_are_seconds_apart_and_above_the_backup() {
        let at = |s| Timestamp(s);
        assert_eq!(restore_epoch(0, at(EPOCHS_FROM)), RESTORE_EPOCH, "one more");
        assert_eq!(restore_epoch(RESTORE_EPOCH + 5, at(0)), 2 * RESTORE_EPOCH);
        // The same backup restored twice, a second apart: two epochs.
        let first = restore_epoch(900, at(EPOCHS_FROM + 5_000));
        let again = restore_epoch(900, at(EPOCHS_FROM + 5_001));
        assert_eq!(first, 5_000 * RESTORE_EPOCH);
        assert!(again > first);
        // A backup of a store restored since: above its own epoch, whatever the clock.
        assert_eq!(
            restore_epoch(first + 77, at(EPOCHS_FROM + 10)),
            first + RESTORE_EPOCH
        );
        assert!(
            restore_epoch(1 << 40, at(EPOCHS_FROM + 100 * 366 * 86_400)) < 1 << 53,
            "exact in JavaScript for a century"
        );
        assert_eq!(restore_epoch(u64::MAX, at(0)), u64::MAX, "saturates");
    }

    #[test]
    fn endpoints_parse_and_print() {
        let e: Endpoint = "vpn.example.com:51820".parse().unwrap();
        assert_eq!(e.to_string(), "vpn.example.com:51820");
        let e: Endpoint = "[2001:db8::1]:443".parse().unwrap();
        assert_eq!(e.host, "2001:db8::1");
        assert_eq!(e.to_string(), "[2001:db8::1]:443");
        for bad in ["nohost", "a b:1", "x:0", "x:99999", "-x.com:1", ":1"] {
            assert!(bad.parse::<Endpoint>().is_err(), "{bad}");
        }
    }

    #[test]
    fn names_are_checked() {
        assert_eq!(
            validate_display_name("device", "  phone ", 32).unwrap(),
            "phone"
        );
        assert!(validate_display_name("device", "   ", 32).is_err());
        assert!(validate_display_name("device", &"x".repeat(33), 32).is_err());
        assert!(validate_display_name("device", "a\nb", 32).is_err());
        assert!(validate_slug("node name", "de-fra-1", 32).is_ok());
        for bad in ["", "De", "a_b", "-a", "a-", &"a".repeat(33)] {
            assert!(validate_slug("node name", bad, 32).is_err(), "{bad}");
        }
    }

    #[test]
    fn ids_accept_prefixes() {
        assert_eq!("u12".parse::<UserId>().unwrap(), UserId(12));
        assert_eq!("7".parse::<PeerId>().unwrap(), PeerId(7));
        assert!("x1".parse::<NodeId>().is_err());
    }

    #[test]
    fn telegram_language_codes_map_to_locales() {
        assert_eq!(Locale::from_language_code(Some("ru")), Locale::Ru);
        assert_eq!(Locale::from_language_code(Some("ru-RU")), Locale::Ru);
        assert_eq!(Locale::from_language_code(Some("en-US")), Locale::En);
        assert_eq!(Locale::from_language_code(None), Locale::En);
    }
}
