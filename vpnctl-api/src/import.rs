//! Bodies of moving in and backing up: `POST /v1/nodes/{id}/import` (peers of a
//! wg-quick or wg-easy server, parsed by `vpnctl_core::legacy`) and `POST /v1/backup`.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

use crate::keys::{PresharedKey, PrivateKey, PublicKey};
use crate::model::{NodeId, PeerId, UserId};
use crate::time::Timestamp;

/// `POST /v1/nodes/{id}/import`: the clients of an existing server, to become users
/// and peers of the node with the same keys and addresses.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportRequest {
    /// Where they come from, for the event log: `wg-quick` or `wg-easy`.
    pub source: String,
    /// The old server's public key (from its private key): the node must end up with
    /// it (`vpnctl-node join --adopt-key`) for the clients' configs to stay valid.
    #[serde(default)]
    pub server_public_key: Option<PublicKey>,
    /// The old server's listen port, which the clients' endpoints name.
    #[serde(default)]
    pub listen_port: Option<u16>,
    pub peers: Vec<ImportPeer>,
    /// Only check and report: nothing is written.
    #[serde(default)]
    pub dry_run: bool,
}

/// One client of the old server. Secrets print `***`.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportPeer {
    /// Where in the file it is (`line 12`, a wg-easy client id), for messages.
    pub source: String,
    /// The user's name (from a comment or wg-easy's name); `None`: made from the key.
    #[serde(default)]
    pub name: Option<String>,
    pub public_key: PublicKey,
    /// `None`: the old server used none (the node then uses none either).
    #[serde(default)]
    pub preshared_key: Option<PresharedKey>,
    /// The client's private key, when the old server kept it (wg-easy): sealed at
    /// rest, so the user can get the config again.
    #[serde(default)]
    pub private_key: Option<PrivateKey>,
    #[serde(default)]
    pub ipv4: Option<Ipv4Addr>,
    #[serde(default)]
    pub ipv6: Option<Ipv6Addr>,
    /// False: the user is created disabled.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// End of access.
    #[serde(default)]
    pub expires_at: Option<Timestamp>,
}

fn yes() -> bool {
    true
}

impl fmt::Debug for ImportPeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImportPeer")
            .field("source", &self.source)
            .field("name", &self.name)
            .field("public_key", &self.public_key)
            .field("preshared_key", &self.preshared_key.as_ref().map(|_| "***"))
            .field("private_key", &self.private_key.as_ref().map(|_| "***"))
            .field("ipv4", &self.ipv4)
            .field("ipv6", &self.ipv6)
            .field("enabled", &self.enabled)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// What an import did, or (dry run, or any conflict) would do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportReport {
    pub node: NodeId,
    pub dry_run: bool,
    /// True when the users and peers were written (no conflict, not a dry run).
    pub applied: bool,
    pub peers: Vec<ImportedPeer>,
    /// Any conflict refuses the whole import.
    pub conflicts: Vec<ImportConflict>,
    /// The node's public key after the import (the old server's).
    pub node_public_key: Option<PublicKey>,
    pub listen_port: u16,
}

/// One peer as imported (ids only when applied).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportedPeer {
    pub source: String,
    pub name: String,
    pub user: Option<UserId>,
    pub peer: Option<PeerId>,
    pub public_key: PublicKey,
    pub ipv4: Ipv4Addr,
    pub ipv6: Option<Ipv6Addr>,
    pub enabled: bool,
    pub until: Option<Timestamp>,
    /// The private key is kept (sealed): the config can be fetched again.
    pub private_key_kept: bool,
    pub preshared_key: bool,
}

/// Why a peer cannot be imported as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictKind {
    /// No IPv4 address, an address outside the node's pool or a reserved one
    /// (network, gateway, broadcast), or an IPv6 address the node cannot give it.
    Address,
    /// Two peers of the file, or a peer of the file and one of the node, share an
    /// address.
    DuplicateAddress,
    /// Two peers of the file, or a peer of the file and one of the node, share a
    /// public key.
    DuplicateKey,
    /// A private key that is not the public key's.
    KeyMismatch,
    /// Two peers of the file, or a peer and an existing user, have the same name.
    Name,
    /// The node already has another key than the old server's.
    NodeKey,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportConflict {
    pub source: String,
    pub kind: ConflictKind,
    pub message: String,
}

/// `POST /v1/backup`: an encrypted snapshot (`application/octet-stream`, an age
/// file) of the whole store, the vault key and the TLS material. Exactly one of the
/// two is set. Admin only.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupRequest {
    /// An age recipient (`age1...`, from `vpnctl backup-key`).
    #[serde(default)]
    pub recipient: Option<String>,
    /// A passphrase (scrypt): sent over the pinned TLS connection, never stored.
    #[serde(default)]
    pub passphrase: Option<String>,
}

impl fmt::Debug for BackupRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackupRequest")
            .field("recipient", &self.recipient)
            .field("passphrase", &self.passphrase.as_ref().map(|_| "***"))
            .finish()
    }
}

impl Drop for BackupRequest {
    fn drop(&mut self) {
        if let Some(p) = &mut self.passphrase {
            zeroize::Zeroize::zeroize(p);
        }
    }
}
