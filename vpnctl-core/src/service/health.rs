//! Health judgement with hysteresis, and the alerts it raises.

use std::collections::HashMap;

use crate::error::Result;
use crate::lifecycle::{self, HealthChange, HealthPolicy, Message, Probe, Recipient};
use crate::model::{EventKind, NodeId, NodeState};
use crate::store::Tx;
use crate::time::Timestamp;

use super::Vpnctl;

impl Vpnctl {
    /// Judges every node from its status and the latest `probes`, through the
    /// hysteresis; confirmed changes are logged, and alerts queued for the admins.
    pub fn observe_health(&self, probes: &[(NodeId, Probe)]) -> Result<Vec<HealthChange>> {
        let policy = self.policy().health.clone();
        let probes: HashMap<NodeId, &Probe> = probes.iter().map(|(n, p)| (*n, p)).collect();
        let opened_at = self.opened_at();
        self.write(|tx| {
            let mut changes = Vec::new();
            for node in tx.node_ids()? {
                let probe = probes.get(&node).copied();
                changes.extend(judge_in(tx, node, probe, &policy, opened_at)?);
            }
            Ok(changes)
        })
    }
}

/// Judges one node from its status (and `probe`, a new probe result) through the
/// hysteresis; a confirmed change is logged, and queued for the admins when it is
/// news. The sweep judges every node this way; a node's first report is judged at
/// once (see `record_report`), so a new node is offered without waiting a sweep.
pub(super) fn judge_in(
    tx: &mut Tx<'_>,
    node: NodeId,
    probe: Option<&Probe>,
    policy: &HealthPolicy,
    opened_at: Timestamp,
) -> Result<Option<HealthChange>> {
    let n = tx.node(node)?;
    let mut status = tx.node_status(node)?;
    // Compared with what is stored: a new probe result is kept even when the
    // verdict stays the same.
    let before = status.clone();
    if let Some(p) = probe {
        status.probe_failures = if p.rtt_ms.is_some() {
            0
        } else {
            status.probe_failures.saturating_add(1)
        };
        status.probe = Some(p.clone());
    }
    let desired = tx.desired_revision(node)?;
    // While the control plane was down nobody received reports: their age counts
    // from its start, so a restart alerts nobody.
    let mut judged = status.clone();
    judged.last_report_at = judged.last_report_at.map(|t| t.max(opened_at));
    // Nor could a node catch up: a store restored from a backup comes back with the
    // time a node fell behind then, and every node behind (a new epoch of revisions).
    judged.behind_since = judged.behind_since.map(|t| t.max(opened_at));
    let (seen, reason) = lifecycle::assess(&judged, desired, tx.now(), policy);
    let change = status.observe(node, seen, reason, tx.now(), policy);
    if status != before {
        tx.put_node_status(node, &status)?;
    }
    let Some(change) = change else {
        return Ok(None);
    };
    tx.event(EventKind::NodeHealthChanged {
        node,
        from: change.from,
        to: change.to,
        reason: change.reason.clone(),
    })?;
    if lifecycle::is_alert(&change) && n.state != NodeState::Disabled {
        tx.notify(
            Recipient::Admins,
            Message::NodeHealth {
                node,
                name: n.name.clone(),
                from: change.from,
                to: change.to,
                reason: change.reason.clone(),
            },
        )?;
    }
    Ok(Some(change))
}
