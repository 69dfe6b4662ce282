//! Users: creation, changes, access and deletion.

use tracing::instrument;

use crate::error::{Error, Result};
use crate::model::{EventKind, User, UserId, UserState, validate_display_name};
use crate::time::Timestamp;

use super::tx::{create_user_in, recheck_quota, revoke_in, set_access_in, sync_user_peers};
use super::{NewUser, UserFilter, UserPatch, Vpnctl};
use crate::api::body::Page;
use crate::api::routes::PAGE_MAX;

impl Vpnctl {
    #[instrument(skip(self, new), fields(actor = %self.actor))]
    pub fn create_user(&self, new: NewUser) -> Result<User> {
        let name = validate_display_name("user name", &new.name, crate::model::MAX_USER_NAME)?;
        let device_limit = new
            .device_limit
            .unwrap_or(self.inner.policy.default_device_limit);
        self.write(|tx| {
            let user = create_user_in(
                tx,
                new.telegram_id,
                name.clone(),
                new.role,
                new.until,
                device_limit,
                new.locale,
            )?;
            Ok(user)
        })
    }

    pub fn user(&self, id: UserId) -> Result<User> {
        self.read(|rx| rx.user(id))
    }

    pub fn user_by_telegram(&self, telegram_id: i64) -> Result<Option<User>> {
        self.read(|rx| rx.user_by_telegram(telegram_id))
    }

    /// The users of `ids` that exist (a deleted one is left out), in id order,
    /// once each: at most [`PAGE_MAX`] ids, in one read.
    pub fn users_by_id(&self, ids: &[UserId]) -> Result<Vec<User>> {
        let ids = super::id_set(ids, "users")?;
        self.read(|rx| rx.users_by_id(&ids))
    }

    pub fn users(&self) -> Result<Vec<User>> {
        // A method path does not satisfy the higher-ranked closure bound here.
        #[allow(clippy::redundant_closure_for_method_calls)]
        self.read(|rx| rx.users())
    }

    /// One page of users in id order: those after `after` that `filter` selects
    /// (name contained ignoring case, access state now), at most `limit`
    /// (1..=[`PAGE_MAX`]), and the cursor of the next page when there may be more.
    /// A filtered page reads at most 20 × `limit` users, so it may hold fewer
    /// items and still carry a cursor.
    pub fn users_page(
        &self,
        after: Option<UserId>,
        limit: usize,
        filter: &UserFilter,
    ) -> Result<Page<User>> {
        let limit = limit.clamp(1, PAGE_MAX);
        let needle = filter.name.as_deref().map(crate::Needle::new);
        let now = self.now();
        let (items, next) = self.read(|rx| {
            rx.users_after(after.map_or(0, |u| u.0), limit, limit * 20, |u| {
                needle.as_ref().is_none_or(|n| n.matches(&u.name))
                    && filter
                        .access
                        .is_none_or(|a| crate::Access::of(u, now).state() == a)
            })
        })?;
        Ok(Page { items, next })
    }

    #[instrument(skip(self, patch), fields(actor = %self.actor))]
    pub fn update_user(&self, id: UserId, patch: UserPatch) -> Result<User> {
        let name = patch
            .name
            .as_deref()
            .map(|n| validate_display_name("user name", n, crate::model::MAX_USER_NAME))
            .transpose()?;
        self.write(|tx| {
            let old = tx.user(id)?;
            let mut user = old.clone();
            if let Some(name) = &name {
                user.name.clone_from(name);
            }
            if let Some(tg) = patch.telegram_id {
                user.telegram_id = tg;
            }
            if let Some(role) = patch.role {
                user.role = role;
            }
            if let Some(limit) = patch.device_limit {
                user.device_limit = limit;
            }
            if let Some(locale) = patch.locale {
                user.locale = locale;
            }
            let quota_changed = patch.quota.is_some_and(|q| q != old.quota);
            if let Some(quota) = patch.quota {
                if quota.is_some_and(|q| q.bytes == 0) {
                    return Err(Error::invalid("quota", "must be at least 1 byte"));
                }
                user.quota = quota;
            }
            if quota_changed {
                recheck_quota(tx, &mut user)?;
            }
            if user != old {
                tx.put_user(Some(&old), &user)?;
                tx.event(EventKind::UserUpdated { user: id })?;
                if quota_changed {
                    sync_user_peers(tx, &user)?;
                }
            }
            Ok(user)
        })
    }

    /// Enables or disables a user; a disabled user's peers leave every node.
    #[instrument(skip(self), fields(actor = %self.actor))]
    pub fn set_user_state(&self, id: UserId, state: UserState) -> Result<User> {
        self.write(|tx| {
            let old = tx.user(id)?;
            if old.state == state {
                return Ok(old);
            }
            let mut user = old.clone();
            user.state = state;
            tx.put_user(Some(&old), &user)?;
            sync_user_peers(tx, &user)?;
            tx.event(match state {
                UserState::Active => EventKind::UserEnabled { user: id },
                UserState::Disabled => EventKind::UserDisabled { user: id },
            })?;
            Ok(user)
        })
    }

    /// Sets the end of access (`None`: unlimited). An end in the past takes the user's
    /// peers off the nodes at once; a future one brings them back.
    #[instrument(skip(self), fields(actor = %self.actor))]
    pub fn set_access(&self, id: UserId, until: Option<Timestamp>) -> Result<User> {
        self.write(|tx| set_access_in(tx, id, until))
    }

    /// Adds `days` of access, counted from the current end or from now if that has
    /// passed. Unlimited access stays unlimited.
    #[instrument(skip(self), fields(actor = %self.actor))]
    pub fn extend_access(&self, id: UserId, days: u32) -> Result<User> {
        if days == 0 || days > 36_500 {
            return Err(Error::invalid("days", "must be 1..=36500"));
        }
        self.write(|tx| {
            let user = tx.user(id)?;
            let Some(until) = user.until else {
                return Ok(user);
            };
            let from = until.max(tx.now());
            set_access_in(tx, id, Some(from.plus_days(i64::from(days))))
        })
    }

    /// Deletes a user and revokes all their peers.
    #[instrument(skip(self), fields(actor = %self.actor))]
    pub fn delete_user(&self, id: UserId) -> Result<()> {
        self.write(|tx| {
            let user = tx.user(id)?;
            for peer in tx.user_peer_ids(id)? {
                revoke_in(tx, peer)?;
            }
            tx.delete_user_record(&user)?;
            tx.forget_user_lifecycle(id)?;
            tx.event(EventKind::UserDeleted { user: id })
        })
    }
}
