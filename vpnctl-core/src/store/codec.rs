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
