//! How many devices a user may have: the rule behind issuing a device and behind
//! what frontends offer (the bot offers a new device only below the limit, and
//! replacing one at it).

use crate::model::User;

/// Devices `user` may still add while they have `devices`.
pub fn room_for_devices(user: &User, devices: u64) -> u64 {
    u64::from(user.device_limit).saturating_sub(devices)
}

/// Whether `user`, having `devices`, may get one more.
pub fn may_add_device(user: &User, devices: u64) -> bool {
    room_for_devices(user, devices) > 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Locale, Role, UserId, UserState};
    use crate::time::Timestamp;

    #[test]
    fn the_limit_counts_every_device() {
        let user = User {
            id: UserId(1),
            telegram_id: None,
            name: "a".into(),
            role: Role::User,
            state: UserState::Active,
            until: None,
            lapsed: false,
            device_limit: 2,
            locale: Locale::En,
            created_at: Timestamp(0),
            quota: None,
            suspended: false,
        };
        assert!(may_add_device(&user, 1));
        assert!(!may_add_device(&user, 2));
        assert!(!may_add_device(&user, 5));
        assert_eq!(room_for_devices(&user, 0), 2);
    }
}
