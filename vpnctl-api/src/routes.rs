//! Every route of the API, written once: the server mounts these templates and the
//! client fills them in, so a path cannot differ between the two.
//!
//! Templates use axum's `{id}` syntax; [`Route::path`] fills the one parameter.
//!
//! [`TABLE`] says, for every method and route, which token scopes may call it
//! ([`Access`]), how long it may run ([`Kind`]) and whether its answer carries a
//! secret (then it is sent with `Cache-Control: no-store`). The server enforces the
//! table before any handler runs and refuses a route that is not in it; the scope
//! matrix test and docs/operations.md iterate it.

use std::fmt;

use crate::auth::Scope;
use crate::model::NodeId;

/// One route's path template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route(&'static str);

impl Route {
    /// The template as the server mounts it, e.g. `/v1/users/{id}`.
    pub const fn template(self) -> &'static str {
        self.0
    }

    /// The path with `{id}` filled in, e.g. `/v1/users/12`.
    pub fn path(self, id: impl fmt::Display) -> String {
        self.0.replacen("{id}", &id.to_string(), 1)
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

pub const HEALTHZ: Route = Route("/healthz");
pub const METRICS: Route = Route("/metrics");

pub const USERS: Route = Route("/v1/users");
pub const USER: Route = Route("/v1/users/{id}");
pub const USER_STATE: Route = Route("/v1/users/{id}/state");
pub const USER_ACCESS: Route = Route("/v1/users/{id}/access");
pub const USER_ACCESS_EXTEND: Route = Route("/v1/users/{id}/access/extend");
pub const USER_USAGE: Route = Route("/v1/users/{id}/usage");
/// A user's devices with their servers and latest counters: the bot's /status.
pub const USER_DEVICES: Route = Route("/v1/users/{id}/devices");

pub const INVITES: Route = Route("/v1/invites");
pub const INVITES_REDEEM: Route = Route("/v1/invites/redeem");
pub const INVITE: Route = Route("/v1/invites/{id}");
pub const INVITE_REVOKE: Route = Route("/v1/invites/{id}/revoke");

pub const NODES: Route = Route("/v1/nodes");
/// Every node in brief: what offering a server to a user needs.
pub const NODES_BRIEF: Route = Route("/v1/nodes/brief");
pub const NODE: Route = Route("/v1/nodes/{id}");
pub const NODE_DRAIN: Route = Route("/v1/nodes/{id}/drain");
pub const NODE_EVACUATE: Route = Route("/v1/nodes/{id}/evacuate");
pub const NODE_DISABLE: Route = Route("/v1/nodes/{id}/disable");
pub const NODE_ACTIVATE: Route = Route("/v1/nodes/{id}/activate");
pub const NODE_JOIN_TOKEN: Route = Route("/v1/nodes/{id}/join-token");
/// Long-poll: `?after=REVISION&wait=SECS`.
pub const NODE_DESIRED: Route = Route("/v1/nodes/{id}/desired");
pub const NODE_REPORT: Route = Route("/v1/nodes/{id}/report");

pub const PEERS: Route = Route("/v1/peers");
pub const PEER: Route = Route("/v1/peers/{id}");
pub const PEER_CONFIG: Route = Route("/v1/peers/{id}/config");
pub const PEER_QR: Route = Route("/v1/peers/{id}/qr");
pub const PEER_ROTATE: Route = Route("/v1/peers/{id}/rotate");
pub const PEER_TRAFFIC: Route = Route("/v1/peers/{id}/traffic");

/// Long-poll: `?limit=&wait_secs=`.
pub const NOTIFICATIONS: Route = Route("/v1/notifications");
pub const NOTIFICATIONS_ACK: Route = Route("/v1/notifications/ack");

pub const TOKENS: Route = Route("/v1/tokens");
pub const TOKEN: Route = Route("/v1/tokens/{id}");

pub const EVENTS: Route = Route("/v1/events");
/// Server-sent events.
pub const EVENTS_STREAM: Route = Route("/v1/events/stream");

/// Moving in: the clients of a wg-quick or wg-easy server become the node's peers.
pub const NODE_IMPORT: Route = Route("/v1/nodes/{id}/import");
/// An encrypted snapshot of the whole store (admin only).
pub const BACKUP: Route = Route("/v1/backup");
/// A scheduled backup by file name (encrypted; for the bot to send to the admins).
pub const BACKUP_FILE: Route = Route("/v1/backups/{id}");

pub const PLANS: Route = Route("/v1/plans");
pub const PLAN_RETIRE: Route = Route("/v1/plans/{id}/retire");
pub const ORDERS: Route = Route("/v1/orders");
/// Telegram's pre-checkout query: may this order be paid now?
pub const ORDERS_CHECKOUT: Route = Route("/v1/orders/checkout");
pub const PAYMENTS: Route = Route("/v1/payments");
pub const PAYMENT: Route = Route("/v1/payments/{id}");
pub const PAYMENT_REFUND: Route = Route("/v1/payments/{id}/refund");
pub const PAYMENT_REFUND_RESULT: Route = Route("/v1/payments/{id}/refund-result");
pub const REVENUE: Route = Route("/v1/revenue");
/// A user's Stars subscriptions.
pub const USER_SUBSCRIPTIONS: Route = Route("/v1/users/{id}/subscriptions");
pub const SUBSCRIPTION_RENEWAL: Route = Route("/v1/subscriptions/renewal");
pub const BROADCASTS: Route = Route("/v1/broadcasts");
/// How many users a broadcast would reach; queues nothing.
pub const BROADCASTS_PREVIEW: Route = Route("/v1/broadcasts/preview");
pub const BROADCAST: Route = Route("/v1/broadcasts/{id}");
pub const BROADCAST_CANCEL: Route = Route("/v1/broadcasts/{id}/cancel");

/// Node enrollment, authenticated by the join secret in the body.
pub const ENROLL: Route = Route("/v1/enroll");

/// The most items one page of a list route returns (and its default): `GET
/// /v1/users` and `GET /v1/peers` take `after` (the previous page's cursor) and
/// `limit`, and answer with [`NEXT_AFTER_HEADER`] while there may be more.
pub const PAGE_MAX: usize = 1000;
/// The response header that carries the next page's `after`.
pub const NEXT_AFTER_HEADER: &str = "x-next-after";

/// On the event stream's answer: the sequence number it sends the events after
/// (`after=` when given, else the newest event committed when it opened), so a
/// client that opened it without `after=` can resume from there.
pub const STREAM_AFTER_HEADER: &str = "x-stream-after";

/// On the event stream's answer: the event log's identity (a number, made anew when
/// the store is restored from a backup). A client that resumes sends it back as
/// `log=`; another store's is a 409, as for an `after=` past the end of the log.
pub const STREAM_LOG_HEADER: &str = "x-stream-log";

/// How long a desired-state long-poll waits for a change by default (seconds).
pub const DESIRED_WAIT_SECS: u64 = 25;
/// The longest wait a desired-state long-poll may ask for (seconds).
pub const DESIRED_MAX_WAIT_SECS: u64 = 60;
/// The longest wait a notification long-poll may ask for (seconds).
pub const NOTIFICATIONS_MAX_WAIT_SECS: u64 = 30;

/// An HTTP method of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Patch => "PATCH",
            Self::Delete => "DELETE",
        }
    }

    /// The method named by `name` (upper case), if the API uses it.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "GET" => Self::Get,
            "POST" => Self::Post,
            "PUT" => Self::Put,
            "PATCH" => Self::Patch,
            "DELETE" => Self::Delete,
            _ => return None,
        })
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which token scopes may call a route. Admin may call every route that takes a
/// token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No token: `/healthz`, and enrollment (authenticated by the join secret in the
    /// body, rate-limited per address).
    Public,
    /// Admin tokens only.
    Admin,
    /// Admin and the Telegram bot.
    Staff,
    /// Admin, and a node token for its own node (the `{id}` of the path).
    OwnNode,
    /// Admin and metrics scrapers.
    Metrics,
}

impl Access {
    /// Whether a token of `scope` may call a route with this access; `node` is the
    /// route's `{id}` for [`Access::OwnNode`] routes.
    pub fn allows(self, scope: Scope, node: Option<NodeId>) -> bool {
        match (self, scope) {
            (Self::Public, _) | (_, Scope::Admin) => true,
            (Self::Staff, Scope::Bot) | (Self::Metrics, Scope::Metrics) => true,
            (Self::OwnNode, Scope::Node(own)) => node == Some(own),
            _ => false,
        }
    }

    /// The scopes that may call it, as the docs list them.
    pub const fn describe(self) -> &'static str {
        match self {
            Self::Public => "anyone (no token)",
            Self::Admin => "admin",
            Self::Staff => "admin, bot",
            Self::OwnNode => "admin, node (own id only)",
            Self::Metrics => "admin, metrics",
        }
    }
}

/// How long a route may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Answers at once: bounded by the server's request timeout.
    Plain,
    /// Waits for a change up to the wait it was asked for (bounded by its own maximum).
    LongPoll,
    /// A server-sent event stream: bounded by the stream's maximum duration.
    Stream,
}

/// One line of the route table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub method: Method,
    pub route: Route,
    pub access: Access,
    pub kind: Kind,
    /// The answer carries a secret (private key, token, join token, invite code,
    /// preshared keys): sent with `Cache-Control: no-store`.
    pub secret: bool,
}

const fn rule(method: Method, route: Route, access: Access) -> Rule {
    Rule {
        method,
        route,
        access,
        kind: Kind::Plain,
        secret: false,
    }
}

impl Rule {
    const fn secret(mut self) -> Self {
        self.secret = true;
        self
    }

    const fn kind(mut self, kind: Kind) -> Self {
        self.kind = kind;
        self
    }

    /// The route's `{id}` in `path` when it is a node id (routes under `/v1/nodes/`).
    pub fn node_in(&self, id: Option<&str>) -> Option<NodeId> {
        if !self.route.template().starts_with("/v1/nodes/{id}") {
            return None;
        }
        id.and_then(|id| id.parse().ok()).map(NodeId)
    }
}

use Access::{Admin, Metrics as MetricsScope, OwnNode, Public, Staff};
use Method::{Delete, Get, Patch, Post, Put};

/// Every route the server mounts, with who may call it. New routes go here (the
/// server refuses a route that is not listed).
pub const TABLE: &[Rule] = &[
    rule(Get, HEALTHZ, Public),
    rule(Get, METRICS, MetricsScope),
    rule(Get, USERS, Staff),
    rule(Post, USERS, Admin),
    rule(Get, USER, Staff),
    rule(Patch, USER, Admin),
    rule(Delete, USER, Admin),
    rule(Put, USER_STATE, Admin),
    rule(Put, USER_ACCESS, Admin),
    rule(Post, USER_ACCESS_EXTEND, Admin),
    rule(Get, USER_USAGE, Staff),
    rule(Get, USER_DEVICES, Staff),
    rule(Get, INVITES, Admin),
    rule(Post, INVITES, Admin).secret(),
    rule(Post, INVITES_REDEEM, Staff),
    rule(Get, INVITE, Admin),
    rule(Post, INVITE_REVOKE, Admin),
    rule(Get, NODES, Staff),
    rule(Post, NODES, Admin),
    rule(Get, NODES_BRIEF, Staff),
    rule(Get, NODE, Staff),
    rule(Patch, NODE, Admin),
    rule(Delete, NODE, Admin),
    rule(Post, NODE_DRAIN, Admin),
    rule(Post, NODE_EVACUATE, Admin),
    rule(Post, NODE_DISABLE, Admin),
    rule(Post, NODE_ACTIVATE, Admin),
    rule(Post, NODE_JOIN_TOKEN, Admin).secret(),
    // Carries the peers' preshared keys.
    rule(Get, NODE_DESIRED, OwnNode)
        .kind(Kind::LongPoll)
        .secret(),
    rule(Post, NODE_REPORT, OwnNode),
    // Every peer's endpoint (users' IP addresses): the bot reads its users'
    // counters through USER_DEVICES instead.
    rule(Get, NODE_REPORT, Admin),
    rule(Get, PEERS, Staff),
    rule(Post, PEERS, Staff).secret(),
    rule(Get, PEER, Staff),
    rule(Delete, PEER, Staff),
    rule(Get, PEER_CONFIG, Staff).secret(),
    rule(Get, PEER_QR, Staff).secret(),
    rule(Post, PEER_ROTATE, Staff).secret(),
    rule(Get, PEER_TRAFFIC, Staff),
    rule(Get, NOTIFICATIONS, Staff).kind(Kind::LongPoll),
    rule(Post, NOTIFICATIONS_ACK, Staff),
    rule(Get, TOKENS, Admin),
    rule(Post, TOKENS, Admin).secret(),
    rule(Delete, TOKEN, Admin),
    rule(Get, EVENTS, Admin),
    rule(Get, EVENTS_STREAM, Admin).kind(Kind::Stream),
    rule(Post, ENROLL, Public).secret(),
    rule(Post, NODE_IMPORT, Admin),
    // The encrypted backup carries the vault key (inside the encryption); it may take
    // longer than a plain request on a large store.
    rule(Post, BACKUP, Admin).kind(Kind::Stream).secret(),
    rule(Get, BACKUP_FILE, Staff).kind(Kind::Stream).secret(),
    rule(Get, PLANS, Staff),
    rule(Post, PLANS, Admin),
    rule(Post, PLAN_RETIRE, Admin),
    rule(Post, ORDERS, Staff),
    rule(Post, ORDERS_CHECKOUT, Staff),
    rule(Get, PAYMENTS, Staff),
    rule(Post, PAYMENTS, Staff),
    rule(Get, PAYMENT, Staff),
    rule(Post, PAYMENT_REFUND, Admin),
    rule(Post, PAYMENT_REFUND_RESULT, Staff),
    rule(Get, REVENUE, Admin),
    rule(Get, USER_SUBSCRIPTIONS, Staff),
    rule(Post, SUBSCRIPTION_RENEWAL, Staff),
    rule(Get, BROADCASTS, Admin),
    rule(Post, BROADCASTS, Admin),
    rule(Post, BROADCASTS_PREVIEW, Admin),
    // The bot checks whether a broadcast was cancelled before each message.
    rule(Get, BROADCAST, Staff),
    rule(Post, BROADCAST_CANCEL, Admin),
];

/// The table's line for `method` on the route mounted as `template`.
pub fn rule_for(method: Method, template: &str) -> Option<&'static Rule> {
    TABLE
        .iter()
        .find(|r| r.method == method && r.route.template() == template)
}

/// The table as the Markdown table of docs/operations.md ("The scope matrix").
pub fn scope_matrix_markdown() -> String {
    let mut out = String::from(
        "| method | route | who may call it | bounded by | notes |\n|---|---|---|---|---|\n",
    );
    for rule in TABLE {
        let kind = match rule.kind {
            Kind::Plain => "request timeout",
            Kind::LongPoll => "its wait",
            Kind::Stream => "stream maximum",
        };
        let mut notes = Vec::new();
        if rule.secret {
            notes.push("secret: `no-store`");
        }
        if rule.route == ENROLL {
            notes.push("join secret; rate-limited");
        }
        out.push_str(&format!(
            "| `{}` | `{}` | {} | {kind} | {} |\n",
            rule.method,
            rule.route,
            rule.access.describe(),
            notes.join("; ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_docs_show_the_table() {
        let docs = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../docs/operations.md"
        ))
        .unwrap();
        let expected = scope_matrix_markdown();
        let shown = docs
            .split_once("<!-- scope-matrix -->\n")
            .and_then(|(_, rest)| rest.split_once("<!-- /scope-matrix -->"))
            .map(|(table, _)| table);
        assert_eq!(
            shown,
            Some(expected.as_str()),
            "docs/operations.md's scope matrix differs from routes::TABLE; it should read:\n{expected}"
        );
    }

    #[test]
    fn every_line_is_unique_and_only_public_routes_take_no_token() {
        for (i, a) in TABLE.iter().enumerate() {
            for b in &TABLE[i + 1..] {
                assert!(
                    !(a.method == b.method && a.route == b.route),
                    "{} {} twice",
                    a.method,
                    a.route
                );
            }
        }
        let public: Vec<_> = TABLE
            .iter()
            .filter(|r| r.access == Access::Public)
            .map(|r| r.route)
            .collect();
        assert_eq!(public, [HEALTHZ, ENROLL]);
    }

    #[test]
    fn scopes() {
        let own = Some(NodeId(3));
        assert!(Access::OwnNode.allows(Scope::Node(NodeId(3)), own));
        assert!(!Access::OwnNode.allows(Scope::Node(NodeId(4)), own));
        assert!(!Access::OwnNode.allows(Scope::Bot, own));
        assert!(Access::OwnNode.allows(Scope::Admin, own));
        assert!(Access::Metrics.allows(Scope::Metrics, None));
        assert!(!Access::Staff.allows(Scope::Metrics, None));
        assert!(!Access::Admin.allows(Scope::Bot, None));
        assert!(Access::Staff.allows(Scope::Bot, None));
        let rule = rule_for(Method::Get, NODE_DESIRED.template()).unwrap();
        assert_eq!(rule.node_in(Some("3")), own);
        assert_eq!(rule.kind, Kind::LongPoll);
    }

    #[test]
    fn fills_the_parameter() {
        assert_eq!(USER.path(12), "/v1/users/12");
        assert_eq!(NODE_DESIRED.path(3), "/v1/nodes/3/desired");
        assert_eq!(USERS.template(), "/v1/users");
    }
}
