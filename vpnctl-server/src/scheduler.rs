//! The lifecycle loop: every sweep interval (at most 60 s) the control plane
//!
//! 1. sweeps ([`Vpnctl::sweep`]): expires access that ended, queues reminders, lifts
//!    quota suspensions whose period is over;
//! 2. probes every node that announced a health port: a TCP connect to
//!    `{endpoint host}:{health_port}` with a timeout, all nodes at once;
//! 3. judges node health from the reports and the probes
//!    ([`Vpnctl::observe_health`], with hysteresis; alerts are queued by core);
//! 4. delivers admin notifications to the alert webhook, or, without one, moves the
//!    webhook's outbox cursor to the end so the outbox can be pruned.
//!
//! Every time comes from the service clock (`vpn.now()`), so tests with a
//! `ManualClock` drive expiry and health; only the probe's round trip and the
//! webhook's retry backoff are measured in real time.

use std::time::{Duration, Instant};

use tokio::net::{TcpStream, lookup_host};
use vpnctl_core::{NodeId, Probe, Timestamp};

use crate::error::blocking;
use crate::state::AppState;
use crate::webhook::Webhook;

/// Runs until the server shuts down.
#[derive(Debug)]
pub struct Lifecycle {
    pub state: AppState,
    pub interval: Duration,
    pub probe_timeout: Duration,
    pub webhook: Option<Webhook>,
}

/// How often the event log's retention is applied.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

impl Lifecycle {
    pub async fn run(mut self) {
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let state = self.state.clone();
        let mut pruned_at: Option<tokio::time::Instant> = None;
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                () = state.shutting_down() => return,
            }
            tokio::select! {
                () = self.once() => {}
                () = state.shutting_down() => return,
            }
            if pruned_at.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
                pruned_at = Some(tokio::time::Instant::now());
                tokio::select! {
                    () = self.prune() => {}
                    () = state.shutting_down() => return,
                }
            }
        }
    }

    /// The event log's retention (`events_keep_days`, `events_keep_max`).
    async fn prune(&self) {
        let vpn = self.state.vpn().clone();
        match blocking(move || vpn.prune_events()).await {
            Ok(0) => {}
            Ok(gone) => tracing::info!(events = gone, "old events deleted (retention)"),
            Err(e) => {
                tracing::error!(code = %e.code, message = %e.message, "event retention failed");
            }
        }
    }

    /// One round: sweep, probe, judge, deliver.
    pub async fn once(&mut self) {
        let vpn = self.state.vpn().clone();
        match blocking(move || vpn.sweep()).await {
            Ok(out) if !out.is_empty() => tracing::info!(
                expired = out.expired.len(),
                reminded = out.reminded.len(),
                restored = out.restored.len(),
                "lifecycle sweep"
            ),
            Ok(_) => {}
            // Internal errors are logged where they are mapped.
            Err(e) => tracing::error!(code = %e.code, message = %e.message, "sweep failed"),
        }

        let probes = self.probe_all().await;
        let failed = probes.iter().filter(|(_, p)| p.rtt_ms.is_none()).count();
        if failed > 0 {
            tracing::debug!(probes = probes.len(), failed, "node probes");
        }
        let vpn = self.state.vpn().clone();
        match blocking(move || vpn.observe_health(&probes)).await {
            Ok(changes) => {
                for c in changes {
                    tracing::info!(node = %c.node, from = %c.from, to = %c.to, reason = %c.reason, "node health changed");
                }
            }
            Err(e) => {
                tracing::error!(code = %e.code, message = %e.message, "health judgement failed");
            }
        }

        match &mut self.webhook {
            Some(hook) => {
                let done = hook.deliver(self.state.vpn(), self.interval).await;
                self.state.metrics().webhook_round(done.sent, done.failed);
                if done.sent > 0 {
                    tracing::info!(host = %hook.host(), sent = done.sent, "alerts delivered to the webhook");
                }
            }
            None => crate::webhook::discard(self.state.vpn()).await,
        }
    }

    /// Probes every node that announced a health port, concurrently.
    async fn probe_all(&self) -> Vec<(NodeId, Probe)> {
        let vpn = self.state.vpn().clone();
        let (nodes, at) = match blocking(move || Ok((vpn.node_overviews()?, vpn.now()))).await {
            Ok(found) => found,
            Err(e) => {
                tracing::error!(code = %e.code, "listing nodes to probe failed");
                return Vec::new();
            }
        };
        let timeout = self.probe_timeout;
        let probes = nodes.into_iter().filter_map(|o| {
            let port = o.status.health_port?;
            let host = o.node.endpoint.host;
            Some(async move { (o.node.id, probe(&host, port, timeout, at).await) })
        });
        futures_util::future::join_all(probes).await
    }
}

/// One TCP connect to `host:port`; the round trip is the connect time (name
/// resolution not included, but within the same timeout).
pub async fn probe(host: &str, port: u16, timeout: Duration, at: Timestamp) -> Probe {
    let attempt = async {
        let addrs: Vec<_> = lookup_host((host, port))
            .await
            .map_err(|e| format!("resolving {host}: {e}"))?
            .collect();
        if addrs.is_empty() {
            return Err(format!("{host} has no address"));
        }
        let mut last = String::new();
        for addr in addrs {
            let started = Instant::now();
            match TcpStream::connect(addr).await {
                Ok(_) => return Ok(started.elapsed()),
                Err(e) => last = format!("connecting to {addr}: {e}"),
            }
        }
        Err(last)
    };
    let outcome = match tokio::time::timeout(timeout, attempt).await {
        Ok(done) => done,
        Err(_) => Err(format!(
            "no answer from {host}:{port} within {} ms",
            timeout.as_millis()
        )),
    };
    match outcome {
        Ok(rtt) => Probe {
            at,
            rtt_ms: Some(u32::try_from(rtt.as_millis()).unwrap_or(u32::MAX)),
            error: None,
        },
        Err(error) => Probe {
            at,
            rtt_ms: None,
            error: Some(error),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn probes_measure_open_ports_and_report_closed_ones() {
        let open = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = open.local_addr().unwrap().port();
        let ok = probe("127.0.0.1", port, Duration::from_secs(2), Timestamp(5)).await;
        assert_eq!(ok.at, Timestamp(5));
        assert!(ok.rtt_ms.is_some() && ok.error.is_none(), "{ok:?}");

        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let bad = probe("127.0.0.1", closed, Duration::from_secs(2), Timestamp(5)).await;
        assert!(bad.rtt_ms.is_none(), "{bad:?}");
        assert!(bad.error.unwrap().contains("connecting to 127.0.0.1"));

        let unknown = probe(
            "no-such-host.invalid",
            80,
            Duration::from_secs(2),
            Timestamp(5),
        )
        .await;
        assert!(unknown.rtt_ms.is_none());
        assert!(unknown.error.is_some());
    }
}
