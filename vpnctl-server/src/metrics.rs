//! `GET /metrics`: the Prometheus exposition of the service (users by state, peers,
//! nodes by health and per node: health, peers, revisions, report age, probe round
//! trip, traffic; pending notifications; webhook deliveries) and of the API itself
//! (requests by method, route template and status; latency by route template).
//!
//! Two sources, one exposition: [`Metrics`] holds the [`prometheus_client`] counters
//! and histograms that are updated as things happen (each request, each webhook
//! round) and restart with the process; [`ServiceFigures`] is read from the store at
//! scrape time (what the store keeps: users, nodes, traffic totals, the outbox),
//! reused for [`FIGURES_TTL`], and encoded by a collector.
//!
//! Routes are labelled with their template (`/v1/users/{id}`), never the raw path,
//! so ids do not multiply the series.

use std::collections::BTreeMap;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric as _};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use vpnctl_core::{Access, Consumer, Health, NodeStatus, Vpnctl};
use vpnctl_daemon::metrics::latency_histogram;

use crate::state::AppState;

/// The label of requests that matched no route.
const UNMATCHED: &str = "unmatched";
/// Pending notifications are counted up to this many per consumer.
pub const PENDING_COUNT_LIMIT: usize = 1000;

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: String,
    status: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct DeliveryLabels {
    result: &'static str,
}

/// The counters and histograms of the running server, updated as things happen.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    webhook: Family<DeliveryLabels, Counter>,
    /// The store's figures of the last scrape and when they were read.
    figures: std::sync::Mutex<Option<(Instant, ServiceFigures)>>,
}

/// How long the store's figures are reused between scrapes. Reading them touches
/// every user and desired-state row; with this, any number of scrapers (or a fast
/// one) cost one read per 5 s, and concurrent scrapes of a stale cache wait for the
/// one read instead of each doing it.
pub const FIGURES_TTL: std::time::Duration = std::time::Duration::from_secs(5);

impl Metrics {
    /// The store's figures, read again when older than [`FIGURES_TTL`].
    fn figures(&self, vpn: &Vpnctl) -> vpnctl_core::Result<ServiceFigures> {
        let mut cached = self
            .figures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((at, figures)) = cached.as_ref()
            && at.elapsed() < FIGURES_TTL
        {
            return Ok(figures.clone());
        }
        let figures = ServiceFigures::read(vpn)?;
        *cached = Some((Instant::now(), figures.clone()));
        Ok(figures)
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let latency: Family<RouteLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(latency_histogram);
        let webhook = Family::<DeliveryLabels, Counter>::default();
        // Both results from the start, so that a rate over them is defined at once.
        for result in ["ok", "failed"] {
            webhook.get_or_create(&DeliveryLabels { result }).inc_by(0);
        }
        registry.register(
            "vpnctl_webhook_deliveries",
            "Alert webhook POSTs by result",
            webhook.clone(),
        );
        registry.register(
            "vpnctl_http_requests",
            "API requests by method, route template and status",
            requests.clone(),
        );
        registry.register(
            "vpnctl_http_request_duration_seconds",
            "API request latency (until the response head) by route template",
            latency.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            webhook,
            figures: std::sync::Mutex::new(None),
        }
    }
}

impl Metrics {
    /// Counts and times one request.
    pub fn observe(&self, route: &str, method: &Method, status: u16, elapsed: std::time::Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                method: method_label(method),
                route: route.to_owned(),
                status,
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels {
                route: route.to_owned(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// Counts what a webhook round did: alerts delivered, and whether a POST failed.
    pub fn webhook_round(&self, sent: u32, failed: bool) {
        if sent > 0 {
            self.webhook
                .get_or_create(&DeliveryLabels { result: "ok" })
                .inc_by(u64::from(sent));
        }
        if failed {
            self.webhook
                .get_or_create(&DeliveryLabels { result: "failed" })
                .inc();
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
    let figures = st.metrics().figures(st.vpn())?;
    let mut scraped = Registry::default();
    scraped.register_collector(Box::new(figures));
    let mut out = String::new();
    vpnctl_daemon::metrics::encode(&mut out, &scraped);
    vpnctl_daemon::metrics::encode(&mut out, &st.metrics().registry);
    Ok(out)
}

fn user_state(u: &vpnctl_core::User, now: vpnctl_core::Timestamp) -> &'static str {
    match Access::of(u, now) {
        Access::Active { .. } => "active",
        Access::Lapsed { .. } => "expired",
        Access::Suspended { .. } => "suspended",
        Access::Disabled => "disabled",
    }
}

/// One node's row of the scrape.
#[derive(Debug, Clone)]
struct NodeRow {
    id: String,
    name: String,
    peers: u64,
    desired_revision: u64,
    status: NodeStatus,
}

/// What the store says at scrape time (at most [`FIGURES_TTL`] old).
#[derive(Debug, Clone)]
pub struct ServiceFigures {
    now: i64,
    /// Writes committed and commits (fsyncs) made since start.
    commits: (u64, u64),
    users: BTreeMap<&'static str, u64>,
    peers: u64,
    peers_desired: u64,
    nodes: Vec<NodeRow>,
    pending: Vec<(&'static str, u64)>,
    /// Takings per plan id since the start.
    revenue: Vec<(String, vpnctl_api::billing::Takings)>,
}

impl ServiceFigures {
    pub fn read(vpn: &Vpnctl) -> vpnctl_core::Result<Self> {
        let now = vpn.now();
        let mut users: BTreeMap<&'static str, u64> = ["active", "expired", "suspended", "disabled"]
            .into_iter()
            .map(|s| (s, 0))
            .collect();
        for u in &vpn.users()? {
            *users.entry(user_state(u, now)).or_default() += 1;
        }
        let overviews = vpn.node_overviews()?;
        let mut peers_desired = 0;
        for o in &overviews {
            peers_desired += vpn.desired_peer_count(&o.node)?;
        }
        let peers = overviews.iter().map(|o| o.peers).sum();
        let nodes = overviews
            .into_iter()
            .map(|o| NodeRow {
                id: o.node.id.to_string(),
                name: o.node.name,
                peers: o.peers,
                desired_revision: o.desired_revision,
                status: o.status,
            })
            .collect();
        let mut pending = Vec::new();
        for (consumer, label) in [(Consumer::Bot, "bot"), (Consumer::Webhook, "webhook")] {
            let n = vpn.notifications(consumer, PENDING_COUNT_LIMIT)?.len();
            pending.push((label, u64::try_from(n).unwrap_or(u64::MAX)));
        }
        Ok(Self {
            now: now.seconds(),
            commits: vpn.commit_figures(),
            users,
            peers,
            peers_desired,
            nodes,
            pending,
            revenue: vpn
                .revenue_totals()?
                .into_iter()
                .map(|(plan, t)| (plan.to_string(), t))
                .collect(),
        })
    }
}

/// A per-node series: name, help, and the node's value (absent: no sample).
type PerNode = (
    &'static str,
    &'static str,
    fn(&NodeRow, i64) -> Option<Value>,
);

/// A sample value: integers print as integers, the rest as floats.
#[derive(Debug, Clone, Copy)]
enum Value {
    Int(u64),
    Float(f64),
}

/// Writes one gauge family: `samples` are (labels, value).
fn gauge_family<L: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (L, Value)>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in samples {
        let metric = family.encode_family(&labels)?;
        match value {
            Value::Int(v) => ConstGauge::new(v).encode(metric)?,
            Value::Float(v) => ConstGauge::new(v).encode(metric)?,
        }
    }
    Ok(())
}

/// Writes one counter family (`name` without `_total`).
fn counter_family<L: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (L, u64)>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, value) in samples {
        ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for ServiceFigures {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let e = &mut encoder;
        gauge_family(
            e,
            "vpnctl_users",
            "Users by state.",
            self.users
                .iter()
                .map(|(state, n)| ([("state", *state)], Value::Int(*n))),
        )?;
        let none: [(&str, &str); 0] = [];
        counter_family(
            e,
            "vpnctl_store_commits",
            "Writes committed since start (several share one transaction: group commit).",
            [(none, self.commits.0)],
        )?;
        counter_family(
            e,
            "vpnctl_store_syncs",
            "Store commits (one fsync each) since start; concurrent writes share one (group commit).",
            [(none, self.commits.1)],
        )?;
        type PerPlan = (
            &'static str,
            &'static str,
            fn(&vpnctl_api::billing::Takings) -> u64,
        );
        let per_plan: [PerPlan; 4] = [
            ("vpnctl_payments", "Payments received, per plan id.", |t| {
                t.payments
            }),
            (
                "vpnctl_revenue_stars",
                "Telegram Stars received, per plan id.",
                |t| t.stars,
            ),
            ("vpnctl_refunds", "Payments refunded, per plan id.", |t| {
                t.refunds
            }),
            (
                "vpnctl_refunded_stars",
                "Telegram Stars refunded, per plan id.",
                |t| t.refunded_stars,
            ),
        ];
        for (name, help, value) in per_plan {
            counter_family(
                e,
                name,
                help,
                self.revenue
                    .iter()
                    .map(|(plan, t)| ([("plan", plan.as_str())], value(t))),
            )?;
        }
        gauge_family(
            e,
            "vpnctl_peers",
            "Peers (devices), with or without access.",
            [(none, Value::Int(self.peers))],
        )?;
        gauge_family(
            e,
            "vpnctl_peers_desired",
            "Peers in some node's desired state.",
            [(none, Value::Int(self.peers_desired))],
        )?;
        gauge_family(
            e,
            "vpnctl_nodes",
            "Nodes by health.",
            Health::ALL.iter().map(|h| {
                let n = self.nodes.iter().filter(|r| r.status.health == *h).count();
                (
                    [("health", h.as_str())],
                    Value::Int(u64::try_from(n).unwrap_or(u64::MAX)),
                )
            }),
        )?;
        gauge_family(
            e,
            "vpnctl_node_health",
            "1 for the node's current health, 0 for the others.",
            self.nodes.iter().flat_map(|r| {
                Health::ALL.iter().map(move |h| {
                    (
                        [
                            ("node", r.name.as_str()),
                            ("node_id", r.id.as_str()),
                            ("health", h.as_str()),
                        ],
                        Value::Int(u64::from(r.status.health == *h)),
                    )
                })
            }),
        )?;
        let gauges: [PerNode; 7] = [
            ("vpnctl_node_peers", "Peers on the node.", |r, _| {
                Some(Value::Int(r.peers))
            }),
            (
                "vpnctl_node_peers_connected",
                "Peers with a handshake in the last 3 minutes, per the latest report.",
                |r, _| Some(Value::Int(u64::from(r.status.peers_connected))),
            ),
            (
                "vpnctl_node_desired_revision",
                "The revision the control plane wants the node at.",
                |r, _| Some(Value::Int(r.desired_revision)),
            ),
            (
                "vpnctl_node_applied_revision",
                "The revision the node last reported as applied (absent before a report).",
                |r, _| {
                    r.status
                        .last_report_at
                        .map(|_| Value::Int(r.status.applied_revision))
                },
            ),
            (
                "vpnctl_node_last_report_age_seconds",
                "Seconds since the node's last report (absent before a report).",
                |r, now| {
                    r.status.last_report_at.map(|t| {
                        Value::Int(u64::try_from(now.saturating_sub(t.seconds())).unwrap_or(0))
                    })
                },
            ),
            (
                "vpnctl_node_probe_rtt_seconds",
                "TCP connect time of the latest successful probe of the node's health port.",
                |r, _| {
                    r.status
                        .probe
                        .as_ref()
                        .and_then(|p| p.rtt_ms)
                        .map(|ms| Value::Float(f64::from(ms) / 1000.0))
                },
            ),
            (
                "vpnctl_node_probe_failures",
                "Consecutive failed probes of the node's health port.",
                |r, _| Some(Value::Int(u64::from(r.status.probe_failures))),
            ),
        ];
        for (name, help, value) in gauges {
            gauge_family(
                e,
                name,
                help,
                self.nodes.iter().filter_map(|r| {
                    value(r, self.now)
                        .map(|v| ([("node", r.name.as_str()), ("node_id", r.id.as_str())], v))
                }),
            )?;
        }
        type Traffic = (&'static str, &'static str, fn(&NodeRow) -> u64);
        let traffic: [Traffic; 2] = [
            (
                "vpnctl_node_traffic_rx_bytes",
                "Bytes from clients to the node, accounted by the control plane.",
                |r| r.status.traffic.rx,
            ),
            (
                "vpnctl_node_traffic_tx_bytes",
                "Bytes from the node to clients, accounted by the control plane.",
                |r| r.status.traffic.tx,
            ),
        ];
        for (name, help, value) in traffic {
            counter_family(
                e,
                name,
                help,
                self.nodes.iter().map(|r| {
                    (
                        [("node", r.name.as_str()), ("node_id", r.id.as_str())],
                        value(r),
                    )
                }),
            )?;
        }
        gauge_family(
            e,
            "vpnctl_notifications_pending",
            "Notifications a consumer has not acknowledged (counted up to 1000).",
            self.pending
                .iter()
                .map(|(consumer, n)| ([("consumer", *consumer)], Value::Int(*n))),
        )
    }
}
