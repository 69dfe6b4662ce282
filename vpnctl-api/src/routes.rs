//! Every route of the API, written once: the server mounts these templates and the
//! client fills them in, so a path cannot differ between the two.
//!
//! Templates use axum's `{id}` syntax; [`Route::path`] fills the one parameter.

use std::fmt;

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

pub const INVITES: Route = Route("/v1/invites");
pub const INVITES_REDEEM: Route = Route("/v1/invites/redeem");
pub const INVITE: Route = Route("/v1/invites/{id}");
pub const INVITE_REVOKE: Route = Route("/v1/invites/{id}/revoke");

pub const NODES: Route = Route("/v1/nodes");
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

/// Node enrollment, authenticated by the join secret in the body.
pub const ENROLL: Route = Route("/v1/enroll");

/// How long a desired-state long-poll waits for a change by default (seconds).
pub const DESIRED_WAIT_SECS: u64 = 25;
/// The longest wait a desired-state long-poll may ask for (seconds).
pub const DESIRED_MAX_WAIT_SECS: u64 = 60;
/// The longest wait a notification long-poll may ask for (seconds).
pub const NOTIFICATIONS_MAX_WAIT_SECS: u64 = 30;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_the_parameter() {
        assert_eq!(USER.path(12), "/v1/users/12");
        assert_eq!(NODE_DESIRED.path(3), "/v1/nodes/3/desired");
        assert_eq!(USERS.template(), "/v1/users");
    }
}
