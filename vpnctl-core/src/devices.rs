//! What a device is called when nobody named it: the same for the bot's "new device"
//! button and the admin's `vpnctl peers issue`.

use crate::model::Peer;

/// The first of `device1`, `device2`, … that none of the user's `peers` is called.
pub fn next_device_name(peers: &[Peer]) -> String {
    (1..)
        .map(|n| format!("device{n}"))
        .find(|name| !peers.iter().any(|p| &p.device == name))
        .unwrap_or_else(|| "device".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::PublicKey;
    use crate::model::{NodeId, PeerId, UserId};
    use crate::time::Timestamp;

    fn peer(device: &str) -> Peer {
        Peer {
            id: PeerId(1),
            user: UserId(1),
            node: NodeId(1),
            device: device.into(),
            public_key: PublicKey::from_bytes([1; 32]),
            has_private_key: true,
            ipv4: "10.8.0.2".parse().unwrap(),
            ipv6: None,
            created_at: Timestamp(0),
            rotated_at: None,
        }
    }

    #[test]
    fn first_free_number() {
        assert_eq!(next_device_name(&[]), "device1");
        assert_eq!(
            next_device_name(&[peer("device1"), peer("phone"), peer("device3")]),
            "device2"
        );
    }
}
