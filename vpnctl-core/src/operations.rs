//! The service's self-running side: reports turned into traffic totals and node
//! status, the periodic sweep (expiry, reminders, quota resets), health judgement
//! with alerts, node evacuation and the notification outbox.
//!
//! The control plane calls [`Vpnctl::record_report`] for every node report and
//! [`Vpnctl::sweep`] plus [`Vpnctl::observe_health`] on a timer; frontends drain the
//! outbox with [`Vpnctl::notifications`] and [`Vpnctl::ack_notifications`].

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use tracing::instrument;
use vpnctl_api::body::NodeHealth;
pub use vpnctl_api::body::{EvacuateTo, Evacuation, Moved, UsageView};

use crate::error::{Error, Result};
use crate::lifecycle::{
    self, Consumer, Health, HealthChange, Message, NodeStatus, Notification, Probe,
    QUOTA_WARN_PERCENT, QuotaPeriod, Recipient, Traffic, Usage,
};
use crate::model::{EventKind, Node, NodeId, NodeState, PeerId, Severity, User, UserId};
use crate::placement::Placement;
use crate::service::{FreshKeys, IssuePeer, Vpnctl, issue_in, revoke_in, sync_user_peers};
use crate::store::Tx;
use crate::time::DAY;
use crate::wire::NodeReport;

/// A peer counts as connected with a handshake this recent (WireGuard re-keys every
/// two minutes while traffic flows).
pub const CONNECTED_WITHIN_SECS: i64 = 180;

/// What one [`Vpnctl::sweep`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepOutcome {
    pub expired: Vec<UserId>,
    pub reminded: Vec<UserId>,
    pub restored: Vec<UserId>,
}

impl SweepOutcome {
    pub fn is_empty(&self) -> bool {
        self.expired.is_empty() && self.reminded.is_empty() && self.restored.is_empty()
    }
}

/// A node with what the control plane knows of it, read in one transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeOverview {
    pub node: Node,
    /// Peers on the node (including those of users without access).
    pub peers: u64,
    pub desired_revision: u64,
    pub status: NodeStatus,
}

impl NodeOverview {
    /// How the node is doing, as the API shows it.
    pub fn health(&self) -> NodeHealth {
        let status = &self.status;
        let reported = status.last_report_at.is_some();
        NodeHealth {
            status: status.health,
            reason: status.reason.clone(),
            since: status.since,
            desired_revision: self.desired_revision,
            applied_revision: reported.then_some(status.applied_revision),
            in_sync: reported && status.applied_revision == self.desired_revision,
            last_report_at: status.last_report_at,
            peers_connected: status.peers_connected,
            interface_up: reported.then_some(status.interface_up),
            report_errors: u32::try_from(status.errors.len()).unwrap_or(u32::MAX),
            probe: status.probe.clone(),
            traffic: status.traffic,
        }
    }

    /// Whether and how the node takes new devices.
    pub fn placement(&self) -> Placement {
        Placement::of(&self.node, self.status.health, self.peers)
    }
}

fn overview(rx: &crate::store::Rx<'_>, node: Node) -> Result<NodeOverview> {
    let (desired_revision, _, peers) = rx.node_rev(node.id)?;
    let status = rx.node_status(node.id)?;
    Ok(NodeOverview {
        node,
        peers,
        desired_revision,
        status,
    })
}

/// Queues `message` for `user` unless it was queued before for `anchor`; users
/// without a Telegram id have nobody to tell.
pub(crate) fn notify_user_once(
    tx: &mut Tx<'_>,
    user: &User,
    what: &str,
    anchor: i64,
    message: Message,
) -> Result<bool> {
    let Some(telegram_id) = user.telegram_id else {
        return Ok(false);
    };
    if !tx.mark_sent(user.id, what, anchor)? {
        return Ok(false);
    }
    tx.notify(
        Recipient::User {
            user: user.id,
            telegram_id,
            locale: user.locale,
        },
        message,
    )?;
    Ok(true)
}

fn period_of(user: &User) -> QuotaPeriod {
    user.quota.map_or(QuotaPeriod::Monthly, |q| q.period)
}

/// The usage with its period rolled forward to the one containing `now`.
fn current_usage(tx: &Tx<'_>, user: &User) -> Result<Usage> {
    let mut usage = tx.usage(user.id)?;
    let (start, _) = period_of(user).bounds(tx.now);
    if usage.period_start != start {
        usage.period_start = start;
        usage.period_bytes = 0;
    }
    Ok(usage)
}

/// Re-judges `user.suspended` after a quota change; the caller writes the user.
/// When that suspends a user who was not, the user is told, as when traffic does.
pub(crate) fn recheck_quota(tx: &mut Tx<'_>, user: &mut User) -> Result<()> {
    let usage = current_usage(tx, user)?;
    let (start, end) = period_of(user).bounds(tx.now);
    let over = user.quota.is_some_and(|q| usage.period_bytes >= q.bytes);
    let newly = over && !user.suspended;
    user.suspended = over;
    tx.set_suspended(user.id, over.then_some(end))?;
    if let (true, Some(quota)) = (newly, user.quota) {
        tx.event(EventKind::QuotaExceeded {
            user: user.id,
            until: end,
        })?;
        notify_user_once(
            tx,
            user,
            "quota-100",
            start.seconds(),
            Message::QuotaExceeded {
                used: usage.period_bytes,
                limit: quota.bytes,
                resets_at: end,
            },
        )?;
    }
    Ok(())
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
    let (start, end) = quota.period.bounds(tx.now);
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

impl Vpnctl {
    /// Takes in a node's report: the node's status (persisted), traffic per peer,
    /// user and node that survives counter resets, quotas, and drift alerts.
    pub fn record_report(&self, node: NodeId, report: &NodeReport) -> Result<NodeStatus> {
        let policy = self.policy().health.clone();
        self.write(|tx| {
            let n = tx.node(node)?;
            let now = tx.now;
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
            status.errors.clone_from(&report.errors);
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
            tx.put_node_status(node, &status)?;
            Ok(status)
        })
    }

    /// Expires access that ended, reminds users whose access ends soon, and lifts
    /// quota suspensions whose period is over. Every notice is queued once.
    #[instrument(skip(self))]
    pub fn sweep(&self) -> Result<SweepOutcome> {
        let reminders = self.policy().reminders.clone();
        let now = self.now();
        // Most sweeps find nothing: look first, so an idle system does not write.
        let (expire, remind, restore) = self.read(|rx| rx.sweep_work(now, &reminders))?;
        let mut out = SweepOutcome::default();
        if expire {
            out.expired = self.expire_due()?;
        }
        if !remind && !restore {
            return Ok(out);
        }
        let (reminded, restored) = self.write(|tx| {
            let mut reminded = Vec::new();
            let horizon = tx.now.plus_days(i64::from(reminders.max()));
            for (id, until) in tx.users_ending(tx.now, horizon)? {
                let Some(days) = reminders.due(until, tx.now) else {
                    continue;
                };
                if tx.was_sent(id, &format!("remind-{days}"), until.seconds())? {
                    continue;
                }
                // A later window covers the earlier ones: one message, all marked.
                // Users nobody can tell are marked too, so no sweep looks at them again.
                for &d in reminders.0.iter().filter(|&&d| d >= days) {
                    tx.mark_sent(id, &format!("remind-{d}"), until.seconds())?;
                }
                let user = tx.user(id)?;
                // A user suspended for quota still wants to know their access ends.
                if user.state != crate::model::UserState::Active
                    || user.lapsed
                    || user.telegram_id.is_none()
                {
                    continue;
                }
                let left = until.seconds() - tx.now.seconds();
                let days_left = u32::try_from((left + DAY - 1) / DAY).unwrap_or(u32::MAX);
                let telegram_id = user.telegram_id.unwrap_or_default();
                tx.notify(
                    Recipient::User {
                        user: id,
                        telegram_id,
                        locale: user.locale,
                    },
                    Message::AccessEndsSoon { until, days_left },
                )?;
                reminded.push(id);
            }
            let mut restored = Vec::new();
            for id in tx.suspensions_over(tx.now)? {
                let old = tx.user(id)?;
                let mut user = old.clone();
                recheck_quota(tx, &mut user)?;
                if user.suspended {
                    continue;
                }
                tx.put_user(Some(&old), &user)?;
                sync_user_peers(tx, &user)?;
                tx.event(EventKind::QuotaRestored { user: id })?;
                if let Some(telegram_id) = user.telegram_id {
                    tx.notify(
                        Recipient::User {
                            user: id,
                            telegram_id,
                            locale: user.locale,
                        },
                        Message::QuotaRestored,
                    )?;
                }
                restored.push(id);
            }
            Ok((reminded, restored))
        })?;
        out.reminded = reminded;
        out.restored = restored;
        Ok(out)
    }

    /// Judges every node from its status and the latest `probes`, through the
    /// hysteresis; confirmed changes are logged, and alerts queued for the admins.
    pub fn observe_health(&self, probes: &[(NodeId, Probe)]) -> Result<Vec<HealthChange>> {
        let policy = self.policy().health.clone();
        let probes: HashMap<NodeId, &Probe> = probes.iter().map(|(n, p)| (*n, p)).collect();
        let opened_at = self.opened_at();
        self.write(|tx| {
            let mut changes = Vec::new();
            for node in tx.node_ids()? {
                let n = tx.node(node)?;
                let mut status = tx.node_status(node)?;
                if let Some(p) = probes.get(&node) {
                    status.probe_failures = if p.rtt_ms.is_some() {
                        0
                    } else {
                        status.probe_failures.saturating_add(1)
                    };
                    status.probe = Some((*p).clone());
                }
                let desired = tx.desired_revision(node)?;
                // While the control plane was down nobody received reports: their
                // age counts from its start, so a restart alerts nobody.
                let mut judged = status.clone();
                judged.last_report_at = judged.last_report_at.map(|t| t.max(opened_at));
                let (seen, reason) = lifecycle::assess(&judged, desired, tx.now, &policy);
                let before = status.clone();
                let change = status.observe(node, seen, reason, tx.now, &policy);
                if status != before {
                    tx.put_node_status(node, &status)?;
                }
                let Some(change) = change else { continue };
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
                changes.push(change);
            }
            Ok(changes)
        })
    }

    /// Every node with its peer count, desired revision and status.
    pub fn node_overviews(&self) -> Result<Vec<NodeOverview>> {
        self.read(|rx| {
            rx.nodes()?
                .into_iter()
                .map(|node| overview(rx, node))
                .collect()
        })
    }

    /// Peers a node must serve now: its desired table, or none while it is disabled.
    pub fn desired_peer_count(&self, node: &Node) -> Result<u64> {
        if node.state == NodeState::Disabled {
            return Ok(0);
        }
        self.read(|rx| rx.desired_count(node.id))
    }

    pub fn node_overview(&self, node: NodeId) -> Result<NodeOverview> {
        self.read(|rx| overview(rx, rx.node(node)?))
    }

    pub fn node_status(&self, node: NodeId) -> Result<NodeStatus> {
        self.read(|rx| {
            rx.node(node)?;
            rx.node_status(node)
        })
    }

    /// A user's traffic in the current period and overall.
    pub fn usage(&self, user: UserId) -> Result<UsageView> {
        let now = self.now();
        self.read(|rx| {
            let u = rx.user(user)?;
            let mut usage = rx.usage(user)?;
            let (start, end) = period_of(&u).bounds(now);
            if usage.period_start != start {
                usage.period_bytes = 0;
            }
            Ok(UsageView {
                total: usage.total,
                period_bytes: usage.period_bytes,
                period_start: start,
                period_end: end,
                quota: u.quota,
                suspended: u.suspended,
            })
        })
    }

    /// A peer's accounted traffic.
    pub fn peer_traffic(&self, peer: PeerId) -> Result<Traffic> {
        self.read(|rx| {
            rx.peer(peer)?;
            let (rx_b, tx_b) = rx.peer_traffic(peer)?;
            Ok(Traffic { rx: rx_b, tx: tx_b })
        })
    }

    /// Notifications `consumer` has not acknowledged yet, oldest first.
    pub fn notifications(&self, consumer: Consumer, limit: usize) -> Result<Vec<Notification>> {
        self.read(|rx| {
            let after = rx.cursor(lifecycle::cursor_key(consumer))?;
            rx.notifications_after(after, limit.clamp(1, 1000))
        })
    }

    /// Marks everything up to `upto` as handled by `consumer`; returns its cursor.
    /// An `upto` beyond the newest notification is refused: it would silently swallow
    /// notifications that do not exist yet.
    pub fn ack_notifications(&self, consumer: Consumer, upto: u64) -> Result<u64> {
        self.write(|tx| {
            let newest = tx.cursor("next_notification")?.saturating_sub(1);
            if upto > newest {
                return Err(Error::invalid(
                    "upto",
                    format!("{upto} is beyond the newest notification ({newest})"),
                ));
            }
            tx.advance_cursor(
                lifecycle::cursor_key(consumer),
                upto,
                &[
                    lifecycle::cursor_key(Consumer::Bot),
                    lifecycle::cursor_key(Consumer::Webhook),
                ],
            )
        })
    }

    /// Moves every device off `node`: each is re-issued on a healthy node (new keys
    /// when we made the old ones, the same public key when the user brought it), the
    /// old peer is revoked, the node is set to draining, and each user is told.
    /// Devices that fit nowhere stay and are listed in `failed`.
    #[instrument(skip(self), fields(actor = %self.actor()))]
    pub fn evacuate(&self, node: NodeId, to: &EvacuateTo) -> Result<Evacuation> {
        let count = self.read(|rx| rx.node_peers(node))?.len();
        let mut keys: Vec<FreshKeys> = (0..count).map(|_| FreshKeys::new(None)).collect();
        let store_private = self.policy().store_private_keys;
        self.write(|tx| {
            let source = tx.node(node)?;
            let mut targets = candidates(tx, &source, to)?;
            if targets.is_empty() {
                return Err(Error::Conflict(format!(
                    "no healthy active node to move the devices of {} to",
                    source.name
                )));
            }
            let mut out = Evacuation {
                node,
                moved: Vec::new(),
                failed: Vec::new(),
            };
            for peer_id in tx.node_peer_ids(node)? {
                let rec = tx.peer(peer_id)?;
                let user = tx.user(rec.peer.user)?;
                // Without a stored private key (the user's own key, or a policy that
                // never stores them) the device keeps its keys, preshared key
                // included: its owner only needs the new endpoint, address and
                // server key. Otherwise it gets fresh keys and a config from the bot.
                let keep = rec.private_key_sealed.is_none();
                let fresh = if keep {
                    let bound = rec.peer.public_key.as_bytes();
                    let psk = crate::keys::PresharedKey::from_bytes(
                        *tx.vault.open(&rec.preshared_key_sealed, bound)?,
                    );
                    FreshKeys::keep(rec.peer.public_key, psk)
                } else {
                    keys.pop().unwrap_or_else(|| FreshKeys::new(None))
                };
                // Same region first, then the node placement prefers; capacity
                // is checked again by `issue_in`.
                targets.sort_by(|a, b| {
                    (a.node.region.code != source.region.code)
                        .cmp(&(b.node.region.code != source.region.code))
                        .then_with(|| a.placement.cmp_preference(&b.placement))
                        .then_with(|| a.node.id.cmp(&b.node.id))
                });
                let mut placed = None;
                let mut last_error = String::from("no target");
                for target in &mut targets {
                    let device = free_device_name(tx, user.id, target.node.id, &rec.peer.device)?;
                    let req = IssuePeer {
                        user: user.id,
                        node: target.node.id,
                        device: device.clone(),
                        public_key: keep.then_some(rec.peer.public_key),
                    };
                    // Access and the device limit are not re-judged: the device
                    // exists already and only changes node.
                    match issue_in(
                        tx,
                        &req,
                        &device,
                        &fresh,
                        &target.node,
                        store_private,
                        false,
                    ) {
                        Ok(issued) => {
                            target.placement = Placement::of(
                                &target.node,
                                target.health,
                                target.placement.peers + 1,
                            );
                            placed = Some((issued.peer, target.node.clone()));
                            break;
                        }
                        // Only "this node cannot take it" moves on to the next
                        // target; these are all found before anything is written.
                        Err(
                            e @ (Error::PoolExhausted { .. }
                            | Error::NodeDraining { .. }
                            | Error::NodeDisabled { .. }
                            | Error::NodeNotReady { .. }
                            | Error::Conflict(_)),
                        ) => last_error = e.to_string(),
                        Err(e) => return Err(e),
                    }
                }
                let Some((new_peer, target)) = placed else {
                    out.failed.push((peer_id, last_error));
                    continue;
                };
                revoke_in(tx, peer_id)?;
                tx.notify_user_moved(&user, &rec.peer.device, &new_peer, &source, &target)?;
                out.moved.push(Moved {
                    user: user.id,
                    device: new_peer.device.clone(),
                    old_peer: peer_id,
                    new_peer: new_peer.id,
                    to: target.id,
                });
            }
            if source.state == NodeState::Active {
                let mut drained = source.clone();
                drained.state = NodeState::Draining;
                tx.put_node(&drained)?;
                tx.event(EventKind::NodeStateChanged {
                    node,
                    state: NodeState::Draining,
                })?;
            }
            let moved = u32::try_from(out.moved.len()).unwrap_or(u32::MAX);
            let failed = u32::try_from(out.failed.len()).unwrap_or(u32::MAX);
            tx.event(EventKind::NodeEvacuated {
                node,
                moved,
                failed,
            })?;
            tx.notify(
                Recipient::Admins,
                Message::NodeEvacuated {
                    node,
                    name: source.name.clone(),
                    moved,
                    failed,
                },
            )?;
            Ok(out)
        })
    }
}

/// A node devices may move to, with its standing.
struct Target {
    node: Node,
    health: Health,
    placement: Placement,
}

/// The nodes that may take the devices of `source`: for `Auto` and `Region` those
/// offered to users (see [`Placement`]), for a named node that one if it takes
/// devices at all.
fn candidates(tx: &Tx<'_>, source: &Node, to: &EvacuateTo) -> Result<Vec<Target>> {
    let mut out = Vec::new();
    for id in tx.node_ids()? {
        if id == source.id {
            continue;
        }
        let node = tx.node(id)?;
        let health = tx.node_status(id)?.health;
        let placement = Placement::of(&node, health, tx.node_peer_count(id)?);
        let offered = placement.availability.is_offered();
        let wanted = match to {
            EvacuateTo::Auto => offered,
            EvacuateTo::Region(code) => offered && &node.region.code == code,
            EvacuateTo::Node(target) => *target == id && placement.availability.takes_devices(),
        };
        if wanted {
            out.push(Target {
                node,
                health,
                placement,
            });
        }
    }
    if let EvacuateTo::Node(target) = to
        && out.is_empty()
    {
        let node = tx.node(*target)?;
        let placement = Placement::of(
            &node,
            tx.node_status(node.id)?.health,
            tx.node_peer_count(node.id)?,
        );
        return Err(Error::Conflict(format!(
            "node {} cannot take devices: it is {}",
            node.name, placement.availability
        )));
    }
    Ok(out)
}

/// `device`, or `device-2`, `device-3`… if the user already has that name there.
fn free_device_name(tx: &Tx<'_>, user: UserId, node: NodeId, device: &str) -> Result<String> {
    if !tx.device_taken(user, node, device)? {
        return Ok(device.to_owned());
    }
    for i in 2..100 {
        let suffix = format!("-{i}");
        let base: String = device
            .chars()
            .take(crate::model::MAX_DEVICE_NAME - suffix.len())
            .collect();
        let name = format!("{base}{suffix}");
        if !tx.device_taken(user, node, &name)? {
            return Ok(name);
        }
    }
    Err(Error::Conflict(format!(
        "user {user} has too many devices named {device:?} on node {node}"
    )))
}

impl Tx<'_> {
    fn notify_user_moved(
        &mut self,
        user: &User,
        device: &str,
        new_peer: &crate::model::Peer,
        from: &Node,
        to: &Node,
    ) -> Result<()> {
        let Some(telegram_id) = user.telegram_id else {
            return Ok(());
        };
        self.notify(
            Recipient::User {
                user: user.id,
                telegram_id,
                locale: user.locale,
            },
            Message::DeviceMoved {
                device: device.to_owned(),
                new_peer: new_peer.id,
                from_node: from.name.clone(),
                to_node: to.name.clone(),
                to_region: to.region.name.clone(),
            },
        )?;
        Ok(())
    }
}
