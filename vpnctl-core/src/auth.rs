//! API tokens and node join secrets.
//!
//! A token is 32 random bytes shown once as `vpt_<base64url>`; the store keeps only
//! its SHA-256, so a leaked database grants no access. Lookup is by that hash (an
//! index seek), which also makes the check independent of how many leading
//! characters of a guess are right.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use vpnctl_api::auth::{ApiToken, JOIN_PREFIX, Scope, Secret, TOKEN_PREFIX, TokenId};

use crate::model::NodeId;
use crate::time::Timestamp;

pub(crate) fn hash_secret(secret: &str) -> [u8; 32] {
    Sha256::new()
        .chain_update(b"vpnctl token v1")
        .chain_update(secret.as_bytes())
        .finalize()
        .into()
}

/// A pending node enrollment, stored under the hash of its join secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct JoinRecord {
    pub node: NodeId,
    pub expires_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_differ_per_secret() {
        let s = Secret::generate(TOKEN_PREFIX);
        assert_ne!(hash_secret(s.expose()), hash_secret("vpt_other"));
        assert_eq!(hash_secret(s.expose()), hash_secret(s.expose()));
    }
}
