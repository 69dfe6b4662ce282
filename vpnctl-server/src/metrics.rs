//! `GET /metrics`: the Prometheus exposition of the service (users by state, peers,
//! nodes by health and per node: health, peers, revisions, report age, probe round
//! trip, traffic; pending notifications; webhook deliveries) and of the API itself
//! (requests by method, route template and status; latency by route template).
//!
//! Routes are labelled with their template (`/v1/users/{id}`), never the raw path,
//! so ids do not multiply the series. Service figures are read from the store at
//! scrape time; the HTTP counters live in memory and restart with the process.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use vpnctl_core::prom::{Exposition, Histogram, Kind, LATENCY_BUCKETS};
use vpnctl_core::{Access, Consumer, Health, Vpnctl};

use crate::state::AppState;

/// The label of requests that matched no route.
const UNMATCHED: &str = "unmatched";
/// Pending notifications are counted up to this many per consumer.
pub const PENDING_COUNT_LIMIT: usize = 1000;

#[derive(Debug)]
struct RouteStats {
    latency: Histogram,
    /// (method, status) → requests.
    requests: BTreeMap<(&'static str, u16), u64>,
}

/// Request counts and latencies per route template.
#[derive(Debug, Default)]
pub struct HttpMetrics {
    routes: Mutex<HashMap<String, RouteStats>>,
}

impl HttpMetrics {
    pub fn observe(&self, route: &str, method: &Method, status: u16, elapsed: std::time::Duration) {
        let method = method_label(method);
        let mut routes = self.routes.lock().unwrap_or_else(PoisonError::into_inner);
        // Look up before inserting: no allocation on the common path.
        if !routes.contains_key(route) {
            routes.insert(
                route.to_owned(),
                RouteStats {
                    latency: Histogram::new(LATENCY_BUCKETS),
                    requests: BTreeMap::new(),
                },
            );
        }
        if let Some(stats) = routes.get_mut(route) {
            stats.latency.observe(elapsed);
            *stats.requests.entry((method, status)).or_insert(0) += 1;
        }
    }

    fn write(&self, e: &mut Exposition) {
        let routes = self.routes.lock().unwrap_or_else(PoisonError::into_inner);
        let mut names: Vec<&String> = routes.keys().collect();
        names.sort();
        e.family(
            "vpnctl_http_requests_total",
            Kind::Counter,
            "API requests by method, route template and status.",
        );
        for route in &names {
            for ((method, status), count) in &routes[*route].requests {
                let status = status.to_string();
                e.sample(
                    "vpnctl_http_requests_total",
                    &[("method", method), ("route", route), ("status", &status)],
                    as_f64(*count),
                );
            }
        }
        e.family(
            "vpnctl_http_request_duration_seconds",
            Kind::Histogram,
            "API request latency (until the response head) by route template.",
        );
        for route in &names {
            e.histogram(
                "vpnctl_http_request_duration_seconds",
                &[("route", route)],
                &routes[*route].latency.snapshot(),
            );
        }
    }
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

#[allow(clippy::cast_precision_loss)] // counts and bytes far below 2^52 in practice
fn as_f64(n: u64) -> f64 {
    n as f64
}

/// Middleware: counts and times every request by its route template, and logs it
/// at debug level (the path only: queries and bodies are never logged).
pub async fn track(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| UNMATCHED.to_owned(), |m| m.as_str().to_owned());
    let path = req.uri().path().to_owned();
    let started = Instant::now();
    let response = next.run(req).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    st.metrics().observe(&route, &method, status, elapsed);
    tracing::debug!(
        %method,
        path,
        status,
        elapsed_ms = elapsed.as_millis(),
        "request"
    );
    response
}

/// Everything `/metrics` shows. Runs on the blocking pool (it reads the store).
pub fn render(st: &AppState) -> vpnctl_core::Result<String> {
    let mut e = Exposition::new();
    service(st.vpn(), &mut e)?;
    let hooks = st.webhook_stats();
    e.family(
        "vpnctl_webhook_deliveries_total",
        Kind::Counter,
        "Alert webhook POSTs by result.",
    )
    .sample(
        "vpnctl_webhook_deliveries_total",
        &[("result", "ok")],
        as_f64(hooks.sent.load(Ordering::Relaxed)),
    )
    .sample(
        "vpnctl_webhook_deliveries_total",
        &[("result", "failed")],
        as_f64(hooks.failed.load(Ordering::Relaxed)),
    );
    st.metrics().write(&mut e);
    Ok(e.finish())
}

fn user_state(u: &vpnctl_core::User, now: vpnctl_core::Timestamp) -> &'static str {
    match Access::of(u, now) {
        Access::Active { .. } => "active",
        Access::Lapsed { .. } => "expired",
        Access::Suspended { .. } => "suspended",
        Access::Disabled => "disabled",
    }
}

fn service(vpn: &Vpnctl, e: &mut Exposition) -> vpnctl_core::Result<()> {
    let now = vpn.now();
    let users = vpn.users()?;
    let mut by_state: BTreeMap<&str, u64> = ["active", "expired", "suspended", "disabled"]
        .into_iter()
        .map(|s| (s, 0))
        .collect();
    for u in &users {
        *by_state.entry(user_state(u, now)).or_default() += 1;
    }
    e.family("vpnctl_users", Kind::Gauge, "Users by state.");
    for (state, n) in &by_state {
        e.sample("vpnctl_users", &[("state", state)], as_f64(*n));
    }

    let nodes = vpn.node_overviews()?;
    let mut desired = 0;
    for o in &nodes {
        desired += vpn.desired_peer_count(&o.node)?;
    }
    e.single(
        "vpnctl_peers",
        Kind::Gauge,
        "Peers (devices), with or without access.",
        as_f64(nodes.iter().map(|o| o.peers).sum()),
    );
    e.single(
        "vpnctl_peers_desired",
        Kind::Gauge,
        "Peers in some node's desired state.",
        as_f64(desired),
    );

    struct Row {
        id: String,
        name: String,
        peers: u64,
        desired_revision: u64,
        status: vpnctl_core::NodeStatus,
    }
    let rows: Vec<Row> = nodes
        .into_iter()
        .map(|o| Row {
            id: o.node.id.to_string(),
            name: o.node.name,
            peers: o.peers,
            desired_revision: o.desired_revision,
            status: o.status,
        })
        .collect();
    e.family("vpnctl_nodes", Kind::Gauge, "Nodes by health.");
    for h in Health::ALL {
        let count = rows.iter().filter(|r| r.status.health == h).count();
        e.sample(
            "vpnctl_nodes",
            &[("health", h.as_str())],
            as_f64(count as u64),
        );
    }
    e.family(
        "vpnctl_node_health",
        Kind::Gauge,
        "1 for the node's current health, 0 for the others.",
    );
    for r in &rows {
        for h in Health::ALL {
            let value = if r.status.health == h { 1.0 } else { 0.0 };
            e.sample(
                "vpnctl_node_health",
                &[
                    ("node", &r.name),
                    ("node_id", &r.id),
                    ("health", h.as_str()),
                ],
                value,
            );
        }
    }
    /// A per-node family: name, kind, help, and the value of a node at `now`.
    type PerNode = (
        &'static str,
        Kind,
        &'static str,
        fn(&Row, i64) -> Option<f64>,
    );
    let gauges: [PerNode; 8] = [
        (
            "vpnctl_node_peers",
            Kind::Gauge,
            "Peers on the node.",
            |r, _| Some(as_f64(r.peers)),
        ),
        (
            "vpnctl_node_peers_connected",
            Kind::Gauge,
            "Peers with a handshake in the last 3 minutes, per the latest report.",
            |r, _| Some(f64::from(r.status.peers_connected)),
        ),
        (
            "vpnctl_node_desired_revision",
            Kind::Gauge,
            "The revision the control plane wants the node at.",
            |r, _| Some(as_f64(r.desired_revision)),
        ),
        (
            "vpnctl_node_applied_revision",
            Kind::Gauge,
            "The revision the node last reported as applied (absent before a report).",
            |r, _| {
                r.status
                    .last_report_at
                    .map(|_| as_f64(r.status.applied_revision))
            },
        ),
        (
            "vpnctl_node_last_report_age_seconds",
            Kind::Gauge,
            "Seconds since the node's last report (absent before a report).",
            |r, now| {
                r.status
                    .last_report_at
                    .map(|t| as_f64(u64::try_from(now.saturating_sub(t.seconds())).unwrap_or(0)))
            },
        ),
        (
            "vpnctl_node_probe_rtt_seconds",
            Kind::Gauge,
            "TCP connect time of the latest successful probe of the node's health port.",
            |r, _| {
                r.status
                    .probe
                    .as_ref()
                    .and_then(|p| p.rtt_ms)
                    .map(|ms| f64::from(ms) / 1000.0)
            },
        ),
        (
            "vpnctl_node_traffic_rx_bytes_total",
            Kind::Counter,
            "Bytes from clients to the node, accounted by the control plane.",
            |r, _| Some(as_f64(r.status.traffic.rx)),
        ),
        (
            "vpnctl_node_traffic_tx_bytes_total",
            Kind::Counter,
            "Bytes from the node to clients, accounted by the control plane.",
            |r, _| Some(as_f64(r.status.traffic.tx)),
        ),
    ];
    for (name, kind, help, value) in gauges {
        e.family(name, kind, help);
        for r in &rows {
            if let Some(v) = value(r, now.seconds()) {
                e.sample(name, &[("node", &r.name), ("node_id", &r.id)], v);
            }
        }
    }
    e.family(
        "vpnctl_node_probe_failures",
        Kind::Gauge,
        "Consecutive failed probes of the node's health port.",
    );
    for r in &rows {
        e.sample(
            "vpnctl_node_probe_failures",
            &[("node", &r.name), ("node_id", &r.id)],
            f64::from(r.status.probe_failures),
        );
    }

    e.family(
        "vpnctl_notifications_pending",
        Kind::Gauge,
        "Notifications a consumer has not acknowledged (counted up to 1000).",
    );
    for (consumer, label) in [(Consumer::Bot, "bot"), (Consumer::Webhook, "webhook")] {
        let pending = vpn.notifications(consumer, PENDING_COUNT_LIMIT)?.len();
        e.sample(
            "vpnctl_notifications_pending",
            &[("consumer", label)],
            as_f64(pending as u64),
        );
    }
    Ok(())
}
