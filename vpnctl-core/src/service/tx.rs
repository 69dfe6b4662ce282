//! Steps that run inside a caller's write transaction, shared by the operations.
//!
//! An operation is one `Vpnctl::write`; these are its parts that more than one
//! operation needs: issuing and revoking a peer, bringing a user's peers in or out
//! of the desired state, setting the end of access, judging a quota, queuing a
//! notice once. They take the [`Tx`] and never commit; the operation modules call
//! them and never each other.

use crate::access::{Access, serves_devices};
use crate::error::{Error, Result};
use crate::ipam;
use crate::keys::{KeyPair, PresharedKey, PrivateKey, PublicKey};
use crate::lifecycle::{Message, QuotaPeriod, Recipient, Usage};
use crate::model::{EventKind, Locale, Node, Peer, PeerId, Role, User, UserId, UserState};
use crate::placement::Placement;
use crate::render::{ClientConfig, ConfigInput};
use crate::store::{PeerRecord, Tx};
use crate::time::Timestamp;
use crate::vault::Vault;

use super::{IssuePeer, IssuedPeer};

/// Keys generated outside the write lock.
pub(super) struct FreshKeys {
    private: Option<PrivateKey>,
    pub(super) public: PublicKey,
    psk: PresharedKey,
}

impl FreshKeys {
    /// The keys a peer already has: the same public key and preshared key.
    pub(super) fn keep(public: PublicKey, psk: PresharedKey) -> Self {
        Self {
            private: None,
            public,
            psk,
        }
    }

    pub(super) fn new(user_key: Option<PublicKey>) -> Self {
        let (private, public) = match user_key {
            Some(public) => (None, public),
            None => {
                let pair = KeyPair::generate();
                (Some(pair.private), pair.public)
            }
        };
        Self {
            private,
            public,
            psk: PresharedKey::generate(),
        }
    }

    /// The client config for `peer` with these keys, when we generated the private
    /// key: the one chance to show it when keys are not stored.
    pub(super) fn config(&self, node: &Node, peer: &Peer) -> Result<Option<ClientConfig>> {
        self.private
            .as_ref()
            .map(|private| render(node, peer, private, &self.psk))
            .transpose()
    }
}

/// A new account: a fresh id, active (lapsed already when `until` has passed), no
/// quota; writes it and its creation event. The caller validated the name.
pub(super) fn create_user_in(
    tx: &mut Tx<'_>,
    telegram_id: Option<i64>,
    name: String,
    role: Role,
    until: Option<Timestamp>,
    device_limit: u32,
    locale: Locale,
) -> Result<User> {
    let now = tx.now();
    let user = User {
        id: UserId(tx.next_id("next_user")?),
        telegram_id,
        name,
        role,
        state: UserState::Active,
        until,
        lapsed: until.is_some_and(|u| u <= now),
        device_limit,
        locale,
        created_at: now,
        quota: None,
        suspended: false,
    };
    tx.put_user(None, &user)?;
    tx.event(EventKind::UserCreated { user: user.id })?;
    Ok(user)
}

/// Refuses a device to a user without active access.
pub(super) fn check_access(user: &User, now: Timestamp) -> Result<()> {
    match Access::of(user, now).refusal(user) {
        Some(refusal) => Err(refusal),
        None => Ok(()),
    }
}

pub(super) fn seal_keys(
    vault: &Vault,
    rec: &mut PeerRecord,
    keys: &FreshKeys,
    store_private: bool,
) {
    let bound = keys.public.as_bytes();
    rec.private_key_sealed = keys
        .private
        .as_ref()
        .filter(|_| store_private)
        .map(|k| vault.seal(k.expose_bytes(), bound));
    rec.preshared_key_sealed = vault.seal(keys.psk.expose_bytes(), bound);
}

pub(super) fn render(
    node: &Node,
    peer: &Peer,
    private: &PrivateKey,
    psk: &PresharedKey,
) -> Result<ClientConfig> {
    let node_public_key = node
        .public_key
        .as_ref()
        .ok_or(Error::NodeNotReady { node: node.id })?;
    Ok(ClientConfig::render(&ConfigInput {
        node,
        node_public_key,
        peer,
        private_key: private,
        preshared_key: psk,
    }))
}

/// Refuses settings (many DNS servers or client AllowedIPs, a long endpoint) whose
/// configs could not be shown as a QR code.
pub(super) fn fits_qr(node: &Node) -> Result<()> {
    crate::render::check_qr_fits(node).map_err(|len| {
        Error::invalid(
            "node",
            format!(
                "its client configs would be up to {len} bytes, more than a QR code holds ({}); \
                 use fewer DNS servers or client AllowedIPs",
                crate::render::QR_MAX_BYTES
            ),
        )
    })
}

pub(super) fn issue_in(
    tx: &mut Tx<'_>,
    req: &IssuePeer,
    device: &str,
    keys: &FreshKeys,
    node: &Node,
    store_private: bool,
    enforce_limits: bool,
) -> Result<IssuedPeer> {
    let user = tx.user(req.user)?;
    if enforce_limits {
        check_access(&user, tx.now())?;
    }
    let placement = Placement::of(
        node,
        tx.node_status(node.id)?.health,
        tx.node_peer_count(node.id)?,
    );
    if let Some(refusal) = placement.refusal(node) {
        return Err(refusal);
    }
    // Nodes registered before the check existed: refuse before the device counts.
    fits_qr(node)?;
    if enforce_limits && !crate::devices::may_add_device(&user, tx.user_peer_count(user.id)?) {
        return Err(Error::DeviceLimit {
            user: user.id,
            limit: user.device_limit,
        });
    }
    if tx.device_taken(user.id, node.id, device)? {
        return Err(Error::Conflict(format!(
            "user {} already has a device named {device:?} on node {}",
            user.id, node.id
        )));
    }
    if tx.key_taken(&keys.public, node.id)? {
        return Err(Error::Conflict(format!(
            "public key {} is already used on node {}",
            keys.public, node.id
        )));
    }
    let offset = tx.allocate(node)?;
    let mut rec = PeerRecord {
        peer: Peer {
            id: PeerId(tx.next_id("next_peer")?),
            user: user.id,
            node: node.id,
            device: device.to_owned(),
            public_key: keys.public,
            has_private_key: false,
            ipv4: ipam::host_v4(node.ipv4_pool, offset),
            ipv6: node.ipv6_pool.map(|p| ipam::host_v6(p, offset)),
            created_at: tx.now(),
            rotated_at: None,
        },
        offset,
        private_key_sealed: None,
        preshared_key_sealed: Vec::new(),
    };
    seal_keys(tx.vault, &mut rec, keys, store_private);
    rec.peer.has_private_key = rec.private_key_sealed.is_some();
    tx.insert_peer(&rec)?;
    tx.set_desired(&rec, serves_devices(&user))?;
    tx.event(EventKind::PeerIssued {
        peer: rec.peer.id,
        user: user.id,
        node: node.id,
    })?;
    let config = keys.config(node, &rec.peer)?;
    Ok(IssuedPeer {
        peer: rec.peer,
        config,
    })
}

pub(super) fn revoke_in(tx: &mut Tx<'_>, id: PeerId) -> Result<Peer> {
    let rec = tx.peer(id)?;
    let node = tx.node(rec.peer.node)?;
    tx.set_desired(&rec, false)?;
    tx.delete_peer(&rec, &node)?;
    tx.forget_peer_traffic(id)?;
    tx.event(EventKind::PeerRevoked {
        peer: id,
        user: rec.peer.user,
        node: node.id,
    })?;
    Ok(rec.peer)
}

/// Brings every peer of `user` in or out of the desired state to match the user's
/// access.
pub(super) fn sync_user_peers(tx: &mut Tx<'_>, user: &User) -> Result<()> {
    let want = serves_devices(user);
    for id in tx.user_peer_ids(user.id)? {
        let rec = tx.peer(id)?;
        tx.set_desired(&rec, want)?;
    }
    Ok(())
}

pub(super) fn set_access_in(tx: &mut Tx<'_>, id: UserId, until: Option<Timestamp>) -> Result<User> {
    let old = tx.user(id)?;
    let mut user = old.clone();
    user.until = until;
    user.lapsed = until.is_some_and(|u| u <= tx.now());
    if user == old {
        return Ok(user);
    }
    tx.put_user(Some(&old), &user)?;
    sync_user_peers(tx, &user)?;
    tx.event(EventKind::AccessChanged { user: id, until })?;
    Ok(user)
}

/// Queues `message` for `user` unless it was queued before for `anchor`; users
/// without a Telegram id have nobody to tell.
pub(super) fn notify_user_once(
    tx: &mut Tx<'_>,
    user: &User,
    what: &str,
    anchor: i64,
    message: Message,
) -> Result<bool> {
    if user.telegram_id.is_none() || !tx.mark_sent(user.id, what, anchor)? {
        return Ok(false);
    }
    notify_user(tx, user, message)
}

/// Queues `message` for `user`; false for users without a Telegram id, who have
/// nobody to tell.
pub(super) fn notify_user(tx: &mut Tx<'_>, user: &User, message: Message) -> Result<bool> {
    let Some(telegram_id) = user.telegram_id else {
        return Ok(false);
    };
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

pub(super) fn period_of(user: &User) -> QuotaPeriod {
    user.quota.map_or(QuotaPeriod::Monthly, |q| q.period)
}

/// The usage with its period rolled forward to the one containing `now`.
pub(super) fn current_usage(tx: &Tx<'_>, user: &User) -> Result<Usage> {
    let mut usage = tx.usage(user.id)?;
    let (start, _) = period_of(user).bounds(tx.now());
    if usage.period_start != start {
        usage.period_start = start;
        usage.period_bytes = 0;
    }
    Ok(usage)
}

/// Re-judges `user.suspended` after a quota change; the caller writes the user.
/// When that suspends a user who was not, the user is told, as when traffic does.
pub(super) fn recheck_quota(tx: &mut Tx<'_>, user: &mut User) -> Result<()> {
    let usage = current_usage(tx, user)?;
    let (start, end) = period_of(user).bounds(tx.now());
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
