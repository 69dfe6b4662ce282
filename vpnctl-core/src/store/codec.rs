//! How rows are encoded: records are postcard (compact, fast); what is internally
//! tagged for the API or grows fields (events, tokens, join secrets, node status,
//! notifications) is JSON.

use std::net::{Ipv4Addr, Ipv6Addr};

use redb::ReadableTable;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Result, StorageError};
use crate::keys::{PresharedKey, PublicKey};
use crate::model::Peer;
use crate::reconcile::PeerSpec;
use crate::vault::Vault;

/// A peer as stored: the public [`Peer`] plus sealed key material.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct PeerRecord {
    pub peer: Peer,
    pub offset: u32,
    pub private_key_sealed: Option<Vec<u8>>,
    pub preshared_key_sealed: Vec<u8>,
}

/// One peer of a node's desired state, as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(super) struct DesiredEntry {
    pub public_key: PublicKey,
    pub preshared_key_sealed: Vec<u8>,
    pub ipv4: Ipv4Addr,
    pub ipv6: Option<Ipv6Addr>,
}

impl DesiredEntry {
    pub fn from_record(rec: &PeerRecord) -> Self {
        Self {
            public_key: rec.peer.public_key,
            preshared_key_sealed: rec.preshared_key_sealed.clone(),
            ipv4: rec.peer.ipv4,
            ipv6: rec.peer.ipv6,
        }
    }

    pub fn to_spec(&self, vault: &Vault) -> Result<PeerSpec> {
        let psk = vault.open(&self.preshared_key_sealed, self.public_key.as_bytes())?;
        let mut ips = vec![ipnet::IpNet::from(ipnet::Ipv4Net::from(self.ipv4))];
        if let Some(v6) = self.ipv6 {
            ips.push(ipnet::IpNet::from(ipnet::Ipv6Net::from(v6)));
        }
        Ok(PeerSpec::new(
            self.public_key,
            Some(PresharedKey::from_bytes(*psk)),
            ips,
            None,
        ))
    }
}

pub(super) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_stdvec(value).expect("records always serialize")
}

pub(super) fn decode<T: DeserializeOwned>(table: &'static str, bytes: &[u8]) -> Result<T> {
    postcard::from_bytes(bytes).map_err(|e| corrupt(table, &e))
}

/// The public [`Peer`] of a stored [`PeerRecord`], without decoding its sealed
/// keys: `peer` is the record's first field and postcard writes fields in order
/// and ignores what follows a value, so the bytes start with the peer. Lists
/// read thousands of rows; this halves their decoding (`cargo bench -p
/// vpnctl-benches --bench core -- peers_page`).
pub(super) fn decode_peer(bytes: &[u8]) -> Result<Peer> {
    decode("peers", bytes)
}

pub(super) fn encode_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("JSON rows always serialize")
}

pub(super) fn decode_json<T: DeserializeOwned>(table: &'static str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| corrupt(table, &e))
}

/// Every record of a table keyed by id, in id order.
pub(super) fn decode_all<T: DeserializeOwned>(
    table: &impl ReadableTable<u64, &'static [u8]>,
    name: &'static str,
) -> Result<Vec<T>> {
    let mut out = Vec::new();
    for row in table.iter()? {
        out.push(decode(name, row?.1.value())?);
    }
    Ok(out)
}

fn corrupt(table: &'static str, e: &dyn std::fmt::Display) -> crate::error::Error {
    StorageError::Corrupt {
        table,
        reason: e.to_string(),
    }
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyPair;
    use crate::model::{NodeId, PeerId, UserId};

    #[test]
    fn a_peer_decodes_from_its_records_bytes() {
        let peer = Peer {
            id: PeerId(7),
            user: UserId(3),
            node: NodeId(2),
            device: "ноутбук".into(),
            public_key: KeyPair::generate().public,
            has_private_key: true,
            ipv4: "10.8.0.9".parse().unwrap(),
            ipv6: Some("fd00::9".parse().unwrap()),
            created_at: crate::time::Timestamp(1_700_000_000),
            rotated_at: None,
        };
        let rec = PeerRecord {
            peer: peer.clone(),
            offset: 9,
            private_key_sealed: Some(vec![1; 60]),
            preshared_key_sealed: vec![2; 60],
        };
        assert_eq!(decode_peer(&encode(&rec)).unwrap(), peer);
        // A record's own decoding still reads the keys that follow.
        let back: PeerRecord = decode("peers", &encode(&rec)).unwrap();
        assert_eq!(back.preshared_key_sealed, vec![2; 60]);
    }
}
