//! Moving in: the clients of a wg-quick or wg-easy server (parsed by
//! [`crate::legacy`]) become users and peers of a node with their own public keys,
//! preshared keys and addresses, so that no client config has to change.
//!
//! An import is planned against one consistent view of the store and either written
//! whole, in one transaction, or not at all: any conflict (an address outside the
//! node's pool or taken, a public key used twice, a name used twice, a private key
//! that is not the public key's, a node that already has another key) refuses it, and
//! the report lists every conflict at once. A dry run only plans.

use std::collections::{HashMap, HashSet};

use tracing::instrument;

use crate::access::serves_devices;
use crate::api::import::{
    ConflictKind, ImportConflict, ImportPeer, ImportReport, ImportRequest, ImportedPeer,
};
use crate::error::Result;
use crate::ipam;
use crate::keys::{KEY_LEN, PresharedKey, PublicKey};
use crate::model::{
    EventKind, Locale, MAX_USER_NAME, Node, NodeId, Peer, PeerId, Role, UserState,
    validate_display_name,
};
use crate::store::{Mode, PeerRecord, Txn};

use super::Vpnctl;
use super::tx::create_user_in;

/// The device name imported peers get: each imported user has exactly one device.
const IMPORTED_DEVICE: &str = "device1";

/// One peer as planned: where it goes and under what name.
struct Planned<'a> {
    input: &'a ImportPeer,
    name: String,
    offset: u32,
    ipv4: std::net::Ipv4Addr,
    ipv6: Option<std::net::Ipv6Addr>,
}

struct Plan<'a> {
    node: Node,
    peers: Vec<Planned<'a>>,
    conflicts: Vec<ImportConflict>,
}

impl Vpnctl {
    /// Imports the clients of an old server into `node` (see the module docs). With
    /// `request.dry_run`, or when there is any conflict, nothing is written and the
    /// report says what would be created and what is in the way.
    #[instrument(skip(self, request), fields(actor = %self.actor, peers = request.peers.len()))]
    pub fn import_peers(&self, node: NodeId, request: &ImportRequest) -> Result<ImportReport> {
        let names = names(&request.peers);
        let planned = self.read(|rx| plan(rx, node, request, &names))?;
        if request.dry_run || !planned.conflicts.is_empty() {
            return Ok(report(&planned, request, None));
        }
        let store_private = self.inner.policy.store_private_keys;
        let device_limit = self.inner.policy.default_device_limit.max(1);
        let zero_psk = PresharedKey::from_bytes([0; KEY_LEN]);
        self.write(|tx| {
            // Planned again inside the write: nothing changed in between, or the
            // conflict is reported.
            let plan = plan(tx, node, request, &names)?;
            if !plan.conflicts.is_empty() {
                return Ok(report(&plan, request, None));
            }
            let mut node = plan.node.clone();
            let old = node.clone();
            if node.public_key.is_none() {
                node.public_key = request.server_public_key;
            }
            if let Some(port) = request.listen_port {
                node.listen_port = port;
            }
            if node != old {
                tx.put_node(&node)?;
                if node.listen_port != old.listen_port {
                    tx.bump(node.id, None)?;
                }
                tx.event(EventKind::NodeUpdated { node: node.id })?;
            }
            let mut ids = Vec::with_capacity(plan.peers.len());
            for p in &plan.peers {
                let mut user = create_user_in(
                    tx,
                    None,
                    p.name.clone(),
                    Role::User,
                    p.input.expires_at,
                    device_limit,
                    Locale::default(),
                )?;
                if !p.input.enabled {
                    let active = user.clone();
                    user.state = UserState::Disabled;
                    tx.put_user(Some(&active), &user)?;
                    tx.event(EventKind::UserDisabled { user: user.id })?;
                }
                tx.claim(&node, p.offset)?;
                let public = p.input.public_key;
                let bound = public.as_bytes();
                let psk = p.input.preshared_key.as_ref().unwrap_or(&zero_psk);
                let private_key_sealed = p
                    .input
                    .private_key
                    .as_ref()
                    .filter(|_| store_private)
                    .map(|k| tx.vault.seal(k.expose_bytes(), bound));
                let rec = PeerRecord {
                    peer: Peer {
                        id: PeerId(tx.next_id("next_peer")?),
                        user: user.id,
                        node: node.id,
                        device: IMPORTED_DEVICE.to_owned(),
                        public_key: public,
                        has_private_key: private_key_sealed.is_some(),
                        ipv4: p.ipv4,
                        ipv6: node.ipv6_pool.map(|pool| ipam::host_v6(pool, p.offset)),
                        created_at: tx.now(),
                        rotated_at: None,
                    },
                    offset: p.offset,
                    private_key_sealed,
                    preshared_key_sealed: tx.vault.seal(psk.expose_bytes(), bound),
                };
                tx.insert_peer(&rec)?;
                tx.set_desired(&rec, serves_devices(&user))?;
                tx.event(EventKind::PeerIssued {
                    peer: rec.peer.id,
                    user: user.id,
                    node: node.id,
                })?;
                ids.push((user.id, rec.peer.id));
            }
            let plan = Plan { node, ..plan };
            Ok(report(&plan, request, Some(&ids)))
        })
    }
}

/// Each peer's user name: its own (trimmed, checked) or one made from its key.
fn names(peers: &[ImportPeer]) -> Vec<Result<String, String>> {
    peers
        .iter()
        .map(|p| match &p.name {
            Some(name) => {
                let short: String = name.trim().chars().take(MAX_USER_NAME).collect();
                validate_display_name("user name", &short, MAX_USER_NAME).map_err(|e| e.to_string())
            }
            None => Ok(format!("peer-{}", &p.public_key.to_base64()[..8])),
        })
        .collect()
}

fn plan<'a, M: Mode>(
    rx: &Txn<'_, M>,
    node: NodeId,
    request: &'a ImportRequest,
    names: &[Result<String, String>],
) -> Result<Plan<'a>> {
    let node = rx.node(node)?;
    let mut conflicts = Vec::new();
    let mut conflict = |source: &str, kind: ConflictKind, message: String| {
        conflicts.push(ImportConflict {
            source: source.to_owned(),
            kind,
            message,
        });
    };
    if let (Some(have), Some(want)) = (node.public_key, request.server_public_key)
        && have != want
    {
        conflict(
            "server",
            ConflictKind::NodeKey,
            format!(
                "node {} already has public key {have}, not the old server's {want}; \
                 import into a node that has not joined yet, then join it with --adopt-key",
                node.name
            ),
        );
    }
    let existing: HashSet<String> = rx
        .users()?
        .into_iter()
        .map(|u| u.name.to_lowercase())
        .collect();
    let mut seen_names: HashMap<String, &str> = HashMap::new();
    let mut seen_keys: HashMap<PublicKey, &str> = HashMap::new();
    let mut seen_v4: HashMap<std::net::Ipv4Addr, &str> = HashMap::new();
    let size = ipam::pool_size(node.ipv4_pool);
    let mut peers = Vec::with_capacity(request.peers.len());
    for (input, name) in request.peers.iter().zip(names) {
        let src = input.source.as_str();
        let name = match name {
            Ok(name) => name.clone(),
            Err(e) => {
                conflict(src, ConflictKind::Name, e.clone());
                continue;
            }
        };
        let lower = name.to_lowercase();
        if let Some(first) = seen_names.insert(lower.clone(), src) {
            conflict(
                src,
                ConflictKind::Name,
                format!("the name {name:?} is also used at {first}"),
            );
        } else if existing.contains(&lower) {
            conflict(
                src,
                ConflictKind::Name,
                format!("a user named {name:?} already exists"),
            );
        }
        if let Some(first) = seen_keys.insert(input.public_key, src) {
            conflict(
                src,
                ConflictKind::DuplicateKey,
                format!("public key {} is also used at {first}", input.public_key),
            );
        } else if rx.key_taken(&input.public_key, node.id)? {
            conflict(
                src,
                ConflictKind::DuplicateKey,
                format!(
                    "public key {} is already a peer of node {}",
                    input.public_key, node.name
                ),
            );
        }
        if let Some(private) = &input.private_key
            && private.public_key() != input.public_key
        {
            conflict(
                src,
                ConflictKind::KeyMismatch,
                "its private key is not the private key of its public key".into(),
            );
        }
        let Some(ipv4) = input.ipv4 else {
            conflict(src, ConflictKind::Address, "no IPv4 address".into());
            continue;
        };
        let Some(offset) = ipam::offset_v4(node.ipv4_pool, ipv4) else {
            conflict(
                src,
                ConflictKind::Address,
                format!(
                    "{ipv4} is outside node {}'s pool {}",
                    node.name, node.ipv4_pool
                ),
            );
            continue;
        };
        if ipam::is_reserved(size, offset) {
            conflict(
                src,
                ConflictKind::Address,
                format!(
                    "{ipv4} is the network, gateway or broadcast address of {}",
                    node.ipv4_pool
                ),
            );
            continue;
        }
        if let Some(first) = seen_v4.insert(ipv4, src) {
            conflict(
                src,
                ConflictKind::DuplicateAddress,
                format!("{ipv4} is also the address at {first}"),
            );
        } else if let Some(other) = rx.peer_by_v4(node.id, ipv4)? {
            conflict(
                src,
                ConflictKind::DuplicateAddress,
                format!("{ipv4} is already peer {other}'s on node {}", node.name),
            );
        }
        let v6 = node.ipv6_pool.map(|pool| ipam::host_v6(pool, offset));
        if let Some(had) = input.ipv6
            && v6 != Some(had)
        {
            conflict(
                src,
                ConflictKind::Address,
                match v6 {
                    Some(v6) => format!(
                        "IPv6 address {had}: node {} gives this peer {v6} (the same offset \
                         as its IPv4 address)",
                        node.name
                    ),
                    None => format!("IPv6 address {had}: node {} has no IPv6 pool", node.name),
                },
            );
        }
        peers.push(Planned {
            input,
            name,
            offset,
            ipv4,
            ipv6: v6,
        });
    }
    Ok(Plan {
        node,
        peers,
        conflicts,
    })
}

fn report(
    plan: &Plan<'_>,
    request: &ImportRequest,
    ids: Option<&[(crate::model::UserId, PeerId)]>,
) -> ImportReport {
    let applied = ids.is_some();
    ImportReport {
        node: plan.node.id,
        dry_run: request.dry_run,
        applied,
        peers: plan
            .peers
            .iter()
            .enumerate()
            .map(|(i, p)| ImportedPeer {
                source: p.input.source.clone(),
                name: p.name.clone(),
                user: ids.map(|ids| ids[i].0),
                peer: ids.map(|ids| ids[i].1),
                public_key: p.input.public_key,
                ipv4: p.ipv4,
                ipv6: p.ipv6,
                enabled: p.input.enabled,
                until: p.input.expires_at,
                private_key_kept: p.input.private_key.is_some(),
                preshared_key: p.input.preshared_key.is_some(),
            })
            .collect(),
        conflicts: plan.conflicts.clone(),
        node_public_key: if applied {
            plan.node.public_key
        } else {
            plan.node.public_key.or(request.server_public_key)
        },
        listen_port: request.listen_port.unwrap_or(plan.node.listen_port),
    }
}
