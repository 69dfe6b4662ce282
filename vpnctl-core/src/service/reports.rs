//! Node reports: node status, traffic per peer, user and node, quotas, drift alerts.

use std::collections::BTreeMap;

use crate::error::Result;
use crate::lifecycle::{Health, Message, NodeStatus, QUOTA_WARN_PERCENT, Recipient, Traffic};
use crate::model::{EventKind, NodeId, Severity, UserId};
use crate::store::Tx;
use crate::wire::NodeReport;

use super::Vpnctl;
use super::tx::{current_usage, notify_user_once, recheck_quota, sync_user_peers};

/// A peer counts as connected with a handshake this recent (WireGuard re-keys every
/// two minutes while traffic flows).
pub const CONNECTED_WITHIN_SECS: i64 = 180;

impl Vpnctl {
    /// Takes in a node's report: the node's status (persisted), traffic per peer,
    /// user and node that survives counter resets, quotas, and drift alerts.
    pub fn record_report(&self, node: NodeId, report: &NodeReport) -> Result<NodeStatus> {
        let policy = self.policy().health.clone();
        let opened_at = self.opened_at();
        self.write(|tx| {
            let n = tx.node(node)?;
            let now = tx.now();
            let mut status = tx.node_status(node)?;
            let desired = tx.desired_revision(node)?;
            // A report that arrives after a newer one (a retry whose first attempt
            // did commit, a slow request) still proves the node lives, but its
            // counters are old: accounting them again would count traffic twice.
            let fresh = status.report_sent_at.is_none_or(|last| report.at >= last);
            if fresh {
                status.report_sent_at = Some(report.at);
            }
            status.health_port = report.health_port;
            if report.health_port.is_none() {
                // No probe target any more: old probe failures must not linger.
                status.probe = None;
                status.probe_failures = 0;
            }
            status.last_report_at = Some(now);
            status.applied_revision = report.applied_revision;
            status.behind_since = if report.applied_revision < desired {
                status.behind_since.or(Some(now))
            } else {
                None
            };
            status.interface_up = report.interface_up;
            // Bounded and cleaned here too, for embedders that skip the server.
            status.errors = crate::report::bounded_errors(&report.errors);
            let connected = report
                .peers
                .iter()
                .filter(|p| {
                    p.last_handshake.is_some_and(|h| {
                        report.at.seconds().saturating_sub(h.seconds()) <= CONNECTED_WITHIN_SECS
                    })
                })
                .count();
            status.peers_connected = u32::try_from(connected).unwrap_or(u32::MAX);

            let mut per_user: BTreeMap<UserId, Traffic> = BTreeMap::new();
            let mut seen = std::collections::HashSet::new();
            for stats in report.peers.iter().filter(|_| fresh) {
                if !seen.insert(stats.public_key) {
                    continue; // a key listed twice is counted once
                }
                let Some(peer) = tx.peer_id_by_key(node, &stats.public_key)? else {
                    continue;
                };
                let (rx, txb) = tx.account_peer(peer, stats.rx_bytes, stats.tx_bytes)?;
                if rx == 0 && txb == 0 {
                    continue;
                }
                let add = Traffic { rx, tx: txb };
                status.traffic = status.traffic.plus(add);
                let user = tx.peer(peer)?.peer.user;
                let t = per_user.entry(user).or_default();
                *t = t.plus(add);
            }
            for (user, add) in per_user {
                charge(tx, user, add)?;
            }

            if !report.strays_removed.is_empty() {
                let removed = report.strays_removed.len();
                let keys: Vec<String> = report
                    .strays_removed
                    .iter()
                    .take(8)
                    .map(ToString::to_string)
                    .collect();
                let more = removed.saturating_sub(keys.len());
                let tail = if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                };
                tx.event(EventKind::Notice {
                    severity: Severity::Warning,
                    node: Some(node),
                    message: format!(
                        "removed {removed} peer(s) that were not in the desired state: {}{tail}",
                        keys.join(", ")
                    ),
                })?;
                let quiet = status
                    .last_drift_alert
                    .is_some_and(|t| now.seconds() - t.seconds() < policy.drift_alert_every_secs);
                if !quiet {
                    status.last_drift_alert = Some(now);
                    tx.notify(
                        Recipient::Admins,
                        Message::NodeDrift {
                            node,
                            name: n.name.clone(),
                            removed: u32::try_from(removed).unwrap_or(u32::MAX),
                        },
                    )?;
                }
            }
            let first = status.health == Health::Unknown;
            tx.put_node_status(node, &status)?;
            if first {
                // A node never judged is judged now, not at the next sweep: a node
                // just started is offered as soon as it reports.
                super::health::judge_in(tx, node, None, &policy, opened_at)?;
                return tx.node_status(node);
            }
            Ok(status)
        })
    }
}

/// Adds `bytes` to the user's period and checks the quota.
fn charge(tx: &mut Tx<'_>, id: UserId, add: Traffic) -> Result<()> {
    let old = tx.user(id)?;
    let mut usage = current_usage(tx, &old)?;
    usage.total = usage.total.plus(add);
    usage.period_bytes = usage.period_bytes.saturating_add(add.total());
    tx.put_usage(id, &usage)?;
    let Some(quota) = old.quota else {
        return Ok(());
    };
    let (start, end) = quota.period.bounds(tx.now());
    if !old.suspended && usage.period_bytes >= quota.bytes {
        // Suspends, logs it and tells the user.
        let mut user = old.clone();
        recheck_quota(tx, &mut user)?;
        tx.put_user(Some(&old), &user)?;
        sync_user_peers(tx, &user)?;
    } else if !old.suspended
        && u128::from(usage.period_bytes) * 100
            >= u128::from(quota.bytes) * u128::from(QUOTA_WARN_PERCENT)
    {
        notify_user_once(
            tx,
            &old,
            "quota-80",
            start.seconds(),
            Message::QuotaWarning {
                used: usage.period_bytes,
                limit: quota.bytes,
                resets_at: end,
            },
        )?;
    }
    Ok(())
}
