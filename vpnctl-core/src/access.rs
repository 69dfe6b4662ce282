//! May this user have devices now, and if not, why: the one rule every frontend
//! words (the bot's /status, the dashboard's user list, the API's refusals).

use serde::{Deserialize, Serialize};

use crate::api::body::AccessState;
use crate::error::Error;
use crate::model::{User, UserState};
use crate::time::{DAY, Timestamp};

/// A user's access at one moment.
///
/// The states are exclusive and checked in this order: an admin's decision
/// (disabled) wins over dates, an ended access wins over a used-up quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum Access {
    /// Devices work; `until` is the end of access, `None` unlimited.
    Active { until: Option<Timestamp> },
    /// An admin turned the account off. Dates do not matter while it is off.
    Disabled,
    /// Access ended at `ended`.
    Lapsed { ended: Timestamp },
    /// The traffic quota of this period is used up; devices work again at `resumes`
    /// (the next period), or earlier if the quota is raised.
    Suspended {
        resumes: Timestamp,
        /// The end of access, which still applies after the period.
        until: Option<Timestamp>,
    },
}

impl Access {
    /// The user's access at `now`. An end date that has passed counts as ended even
    /// before the control plane's sweep has taken the devices off the nodes.
    pub fn of(user: &User, now: Timestamp) -> Self {
        if user.state == UserState::Disabled {
            return Self::Disabled;
        }
        if user.lapsed || user.until.is_some_and(|u| u <= now) {
            return Self::Lapsed {
                ended: user.until.unwrap_or(now),
            };
        }
        if user.suspended {
            let period = user.quota.map_or(crate::QuotaPeriod::Monthly, |q| q.period);
            return Self::Suspended {
                resumes: period.bounds(now).1,
                until: user.until,
            };
        }
        Self::Active { until: user.until }
    }

    /// The state alone, as lists filter by it.
    pub fn state(self) -> AccessState {
        match self {
            Self::Active { .. } => AccessState::Active,
            Self::Disabled => AccessState::Disabled,
            Self::Lapsed { .. } => AccessState::Lapsed,
            Self::Suspended { .. } => AccessState::Suspended,
        }
    }

    /// Whether the user may have working devices and get new ones.
    pub fn is_active(self) -> bool {
        matches!(self, Self::Active { .. })
    }

    /// The end of access, if it is limited: shown in every state but `Disabled`.
    pub fn until(self) -> Option<Timestamp> {
        match self {
            Self::Active { until } | Self::Suspended { until, .. } => until,
            Self::Lapsed { ended } => Some(ended),
            Self::Disabled => None,
        }
    }

    /// Whole days of access left at `now`, rounded up (12 h left is 1 day); `None`
    /// when access is unlimited or not running.
    pub fn days_left(self, now: Timestamp) -> Option<u32> {
        let Self::Active { until: Some(until) } = self else {
            return None;
        };
        let secs = until.seconds().saturating_sub(now.seconds()).max(0);
        Some(u32::try_from((secs + DAY - 1) / DAY).unwrap_or(u32::MAX))
    }

    /// The refusal to give this user a device, or `None` when access is active.
    pub fn refusal(self, user: &User) -> Option<Error> {
        match self {
            Self::Active { .. } => None,
            Self::Disabled => Some(Error::UserDisabled { user: user.id }),
            Self::Lapsed { ended } => Some(Error::AccessExpired {
                user: user.id,
                until: ended,
            }),
            Self::Suspended { resumes, .. } => Some(Error::QuotaExhausted {
                user: user.id,
                until: resumes,
            }),
        }
    }
}

/// Whether the user's devices belong on the nodes now: the desired-state rule.
///
/// It reads only stored facts (`lapsed` and `suspended` are set by the sweep and by
/// reports), never the clock, so a node's desired state and its revision always
/// change in the same transaction.
pub fn serves_devices(user: &User) -> bool {
    user.state == UserState::Active && !user.lapsed && !user.suspended
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::lifecycle::{Quota, QuotaPeriod};
    use crate::model::{Locale, Role, UserId};

    /// An active user without an end date, quota or devices (the rule tests' start).
    pub(crate) fn user() -> User {
        User {
            id: UserId(1),
            telegram_id: None,
            name: "a".into(),
            role: Role::User,
            state: UserState::Active,
            until: None,
            lapsed: false,
            device_limit: 3,
            locale: Locale::En,
            created_at: Timestamp(0),
            quota: None,
            suspended: false,
        }
    }

    const NOW: Timestamp = Timestamp(1_795_611_600); // 2026-11-25T13:00:00Z

    #[test]
    fn unlimited_and_dated_access() {
        let mut u = user();
        assert_eq!(Access::of(&u, NOW), Access::Active { until: None });
        assert_eq!(Access::of(&u, NOW).days_left(NOW), None);
        u.until = Some(NOW.plus_seconds(12 * 3600));
        let a = Access::of(&u, NOW);
        assert!(a.is_active());
        assert_eq!(a.days_left(NOW), Some(1));
        u.until = Some(NOW.plus_days(30));
        assert_eq!(Access::of(&u, NOW).days_left(NOW), Some(30));
    }

    #[test]
    fn an_end_in_the_past_is_lapsed_even_before_the_sweep() {
        let mut u = user();
        u.until = Some(NOW);
        assert_eq!(Access::of(&u, NOW), Access::Lapsed { ended: NOW });
        assert!(serves_devices(&u), "not swept yet: still on the nodes");
        u.lapsed = true;
        assert!(!serves_devices(&u));
    }

    #[test]
    fn disabled_wins_and_shows_no_dates() {
        let mut u = user();
        u.until = Some(NOW.plus_days(30));
        u.state = UserState::Disabled;
        let a = Access::of(&u, NOW);
        assert_eq!(a, Access::Disabled);
        assert_eq!(
            a.days_left(NOW),
            None,
            "a disabled account has no days left"
        );
        assert_eq!(a.until(), None);
        assert!(matches!(a.refusal(&u), Some(Error::UserDisabled { .. })));
        u.until = Some(NOW.plus_days(-1));
        assert_eq!(Access::of(&u, NOW), Access::Disabled);
    }

    #[test]
    fn quota_suspension_resumes_at_the_next_period() {
        let mut u = user();
        u.until = Some(NOW.plus_days(60));
        u.quota = Some(Quota {
            bytes: 1,
            period: QuotaPeriod::Monthly,
        });
        u.suspended = true;
        let a = Access::of(&u, NOW);
        assert_eq!(
            a,
            Access::Suspended {
                resumes: Timestamp(1_796_083_200), // 2026-12-01
                until: u.until,
            }
        );
        assert!(!a.is_active());
        assert!(matches!(a.refusal(&u), Some(Error::QuotaExhausted { .. })));
        // An ended access is reported as ended, not as a quota problem.
        u.until = Some(NOW.plus_days(-1));
        assert!(matches!(Access::of(&u, NOW), Access::Lapsed { .. }));
    }
}
