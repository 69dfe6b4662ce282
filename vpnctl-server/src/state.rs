//! Shared server state: the service, the per-node revision feed that wakes
//! long-polls, the notification counter that wakes outbox long-polls, the live event
//! fan-out, the nodes' latest raw reports (kept in memory for `GET .../report`;
//! what matters of a report is persisted by core), and the HTTP metrics.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use axum::body::Bytes;

use tokio::sync::{broadcast, watch};
use vpnctl_api::Fingerprint;
use vpnctl_api::body::{ReportSummary, StoredReport};
use vpnctl_core::{Commit, Event, EventKind, NodeId, Vpnctl};

use crate::limits::{Limits, RateLimiter};

use crate::metrics::Metrics;

/// How many live events a slow SSE subscriber may fall behind before it re-reads
/// from the store.
const EVENT_BUFFER: usize = 1024;

/// Wakes long-polls and streams events, fed by the service's commit listener.
#[derive(Debug)]
pub struct Feed {
    nodes: Mutex<HashMap<NodeId, watch::Sender<u64>>>,
    events: broadcast::Sender<Event>,
    /// Counts commits that queued notifications.
    notified: watch::Sender<u64>,
}

impl Default for Feed {
    fn default() -> Self {
        Self {
            nodes: Mutex::new(HashMap::new()),
            events: broadcast::channel(EVENT_BUFFER).0,
            notified: watch::channel(0).0,
        }
    }
}

impl Feed {
    fn lock_nodes(&self) -> std::sync::MutexGuard<'_, HashMap<NodeId, watch::Sender<u64>>> {
        self.nodes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn sender(&self, node: NodeId) -> watch::Sender<u64> {
        self.lock_nodes()
            .entry(node)
            .or_insert_with(|| watch::channel(0).0)
            .clone()
    }

    /// Called on the writer's thread after each commit: keep it short.
    pub fn on_commit(&self, commit: &Commit) {
        for &(node, revision) in &commit.revisions {
            self.sender(node).send_if_modified(|current| {
                let newer = revision > *current;
                if newer {
                    *current = revision;
                }
                newer
            });
        }
        for event in &commit.events {
            if let EventKind::NodeDeleted { node } = event.kind {
                // Its long-polls end with the node's 404 on their next read.
                self.lock_nodes().remove(&node);
            }
            // No subscriber is fine.
            let _ = self.events.send(event.clone());
        }
        if commit.notified > 0 {
            self.notified.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// Changes whenever notifications were queued. Subscribe *before* reading the
    /// outbox so that none queued in between is missed.
    pub fn watch_notifications(&self) -> watch::Receiver<u64> {
        self.notified.subscribe()
    }

    /// The node's latest committed revision, to wait on. Subscribe *before* reading
    /// the store so that no commit in between is missed.
    pub fn watch_node(&self, node: NodeId) -> watch::Receiver<u64> {
        self.sender(node).subscribe()
    }

    /// Drops the node's channel when nobody waits on it: called when a long-poll
    /// found that the node does not exist, so unknown ids leave nothing behind.
    pub fn forget_unwatched(&self, node: NodeId) {
        let mut nodes = self.lock_nodes();
        if nodes.get(&node).is_some_and(|tx| tx.receiver_count() == 0) {
            nodes.remove(&node);
        }
    }

    /// How many nodes have a channel (for tests: it must not grow with unknown ids).
    pub fn watched_nodes(&self) -> usize {
        self.lock_nodes().len()
    }

    pub fn subscribe_events(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }
}

/// What the server tells clients about itself.
#[derive(Debug, Clone)]
pub struct PublicInfo {
    /// The API base URL nodes and admins use, e.g. `https://vpn.example.com:7443`.
    pub url: String,
    /// The server certificate's fingerprint; `None` for plain HTTP on loopback.
    pub fingerprint: Option<Fingerprint>,
    /// For invite deep links.
    pub bot_username: Option<String>,
}

#[derive(Debug)]
struct Shared {
    vpn: Vpnctl,
    feed: Arc<Feed>,
    /// Each node's latest report, with its summary made once when it came (the
    /// node list shows summaries: summing a report's peers per listing would make
    /// every `GET /v1/nodes` O(peers)).
    reports: Mutex<HashMap<NodeId, (Arc<StoredReport>, ReportSummary)>>,
    /// Bumped whenever `reports` changes.
    reports_gen: AtomicU64,
    /// `GET /v1/nodes` and `GET /v1/nodes/brief` as sent, with the (store,
    /// reports) generations each was made at: the bot and every dashboard ask for
    /// them often, and they change rarely.
    node_lists: Mutex<[Option<CachedBody>; 2]>,
    public: PublicInfo,
    metrics: Metrics,
    shutdown: watch::Receiver<bool>,
    limits: Limits,
    limiters: Limiters,
}

/// The per-address rate limits of [`Limits`].
#[derive(Debug)]
pub struct Limiters {
    pub enroll: RateLimiter,
    pub auth_failures: RateLimiter,
}

/// A response body with the (store, reports) generations it was made at.
type CachedBody = ((u64, u64), Bytes);

/// The two node lists the server keeps a body of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeList {
    /// `GET /v1/nodes`: nodes with health and report summaries.
    Full = 0,
    /// `GET /v1/nodes/brief`.
    Brief = 1,
}

/// Cheap to clone; handed to every handler.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    /// Wires the state to `vpn`'s commits.
    pub fn new(
        vpn: Vpnctl,
        public: PublicInfo,
        shutdown: watch::Receiver<bool>,
        limits: Limits,
    ) -> Self {
        let feed = Arc::new(Feed::default());
        let listener_feed = Arc::clone(&feed);
        vpn.subscribe(Arc::new(move |commit: &Commit| {
            listener_feed.on_commit(commit);
        }));
        Self(Arc::new(Shared {
            vpn,
            feed,
            reports: Mutex::new(HashMap::new()),
            reports_gen: AtomicU64::new(0),
            node_lists: Mutex::new([None, None]),
            public,
            metrics: Metrics::default(),
            shutdown,
            limiters: Limiters {
                enroll: RateLimiter::per_minute(limits.enroll_per_minute),
                auth_failures: RateLimiter::per_minute(limits.auth_failures_per_minute),
            },
            limits,
        }))
    }

    pub fn vpn(&self) -> &Vpnctl {
        &self.0.vpn
    }

    pub fn feed(&self) -> &Feed {
        &self.0.feed
    }

    pub fn public(&self) -> &PublicInfo {
        &self.0.public
    }

    /// The counters and histograms of `/metrics`.
    pub fn metrics(&self) -> &Metrics {
        &self.0.metrics
    }

    pub fn limits(&self) -> &Limits {
        &self.0.limits
    }

    pub fn limiters(&self) -> &Limiters {
        &self.0.limiters
    }

    /// Resolves once the server is shutting down.
    pub async fn shutting_down(&self) {
        let mut rx = self.0.shutdown.clone();
        // An error means the sender is gone: that is shutdown too.
        let _ = rx.wait_for(|down| *down).await;
    }

    pub fn store_report(&self, node: NodeId, report: StoredReport) {
        let summary = vpnctl_core::report::summary(&report);
        self.0
            .reports
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(node, (Arc::new(report), summary));
        self.0.reports_gen.fetch_add(1, Ordering::SeqCst);
    }

    /// What a node list's cache is keyed by; read it before reading the list.
    /// Briefs hold nothing from reports, so reports do not make them stale.
    pub fn node_list_key(&self, list: NodeList) -> (u64, u64) {
        let reports = match list {
            NodeList::Full => self.0.reports_gen.load(Ordering::SeqCst),
            NodeList::Brief => 0,
        };
        (self.0.vpn.generation(), reports)
    }

    /// The node list made at `key`, if it is still current.
    pub fn cached_node_list(&self, list: NodeList, key: (u64, u64)) -> Option<Bytes> {
        let cached = self
            .0
            .node_lists
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        cached[list as usize]
            .as_ref()
            .filter(|(at, _)| *at == key)
            .map(|(_, body)| body.clone())
    }

    pub fn cache_node_list(&self, list: NodeList, key: (u64, u64), body: Bytes) {
        self.0
            .node_lists
            .lock()
            .unwrap_or_else(PoisonError::into_inner)[list as usize] = Some((key, body));
    }

    pub fn report(&self, node: NodeId) -> Option<Arc<StoredReport>> {
        self.0
            .reports
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&node)
            .map(|(report, _)| Arc::clone(report))
    }

    /// What listings show of the latest report, without copying its peers.
    pub fn report_summary(&self, node: NodeId) -> Option<ReportSummary> {
        self.0
            .reports
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&node)
            .map(|(_, summary)| summary.clone())
    }

    pub fn forget_report(&self, node: NodeId) {
        self.0
            .reports
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&node);
        self.0.reports_gen.fetch_add(1, Ordering::SeqCst);
    }
}
