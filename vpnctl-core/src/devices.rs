//! Devices and their names: how many a user may have (the rule behind issuing and
//! behind what frontends offer: a new device only below the limit, replacing one at
//! it), and what a device is called when nobody named it (the same for the bot's
//! "new device" button and the admin's `vpnctl peers issue`).

use crate::model::{Peer, User};

/// Devices `user` may still add while they have `devices`.
pub fn room_for_devices(user: &User, devices: u64) -> u64 {
    u64::from(user.device_limit).saturating_sub(devices)
}

/// Whether `user`, having `devices`, may get one more.
pub fn may_add_device(user: &User, devices: u64) -> bool {
    room_for_devices(user, devices) > 0
}

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

    #[test]
    fn the_limit_counts_every_device() {
        let user = User {
            device_limit: 2,
            ..crate::access::tests::user()
        };
        assert!(may_add_device(&user, 1));
        assert!(!may_add_device(&user, 2));
        assert!(!may_add_device(&user, 5));
        assert_eq!(room_for_devices(&user, 0), 2);
    }
}
