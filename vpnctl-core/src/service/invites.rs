//! Invites: creation, revocation and atomic redemption.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use tracing::instrument;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::model::{EventKind, Invite, InviteId, Role, validate_display_name};

use super::tx::{create_user_in, set_access_in};
use super::{InviteCode, NewInvite, Redeemer, Redemption, Vpnctl};

fn code_hash(code: &str) -> [u8; 32] {
    Sha256::new()
        .chain_update(b"vpnctl invite v1")
        .chain_update(code.as_bytes())
        .finalize()
        .into()
}

impl Vpnctl {
    /// Creates an invite; the returned code is shown once and only its hash is kept.
    #[instrument(skip(self, new), fields(actor = %self.actor))]
    pub fn create_invite(&self, mut new: NewInvite) -> Result<(Invite, InviteCode)> {
        let label = validate_display_name("invite label", &new.label, crate::model::MAX_LABEL)?;
        if new.uses == 0 || new.uses > 100_000 {
            return Err(Error::invalid("uses", "must be 1..=100000"));
        }
        if new.grant.access_days == Some(0) {
            return Err(Error::invalid("access days", "must be at least 1"));
        }
        // 24 random bytes: 32 characters of A-Za-z0-9_-, a valid Telegram deep link.
        let mut raw = Zeroizing::new([0u8; 24]);
        OsRng.fill_bytes(raw.as_mut());
        let code = InviteCode(Zeroizing::new(URL_SAFE_NO_PAD.encode(raw.as_slice())));
        let hash = code_hash(code.expose());
        let invite = self.write(|tx| {
            if new.expires_at.is_some_and(|t| t <= tx.now()) {
                return Err(Error::invalid("expiry", "is in the past"));
            }
            if let Some(plan) = new.plan {
                let plan = tx.plan(plan)?;
                if !plan.active {
                    return Err(Error::Conflict(format!("plan {} is retired", plan.id)));
                }
                new.grant = crate::model::Grant {
                    access_days: Some(plan.days),
                    device_limit: plan.device_limit,
                    role: Role::User,
                };
            }
            let invite = Invite {
                id: InviteId(tx.next_id("next_invite")?),
                label: label.clone(),
                uses_total: new.uses,
                uses_left: new.uses,
                expires_at: new.expires_at,
                grant: new.grant.clone(),
                revoked: false,
                created_at: tx.now(),
            };
            tx.put_invite(&invite, Some(&hash))?;
            if let Some(plan) = new.plan {
                tx.set_invite_plan(invite.id, plan)?;
            }
            tx.event(EventKind::InviteCreated { invite: invite.id })?;
            Ok(invite)
        })?;
        Ok((invite, code))
    }

    pub fn invites(&self) -> Result<Vec<Invite>> {
        // A method path does not satisfy the higher-ranked closure bound here.
        #[allow(clippy::redundant_closure_for_method_calls)]
        self.read(|rx| rx.invites())
    }

    /// One page of invites in id order, after `after`, at most `limit`
    /// (1..=[`PAGE_MAX`](crate::api::routes::PAGE_MAX)), with the next page's cursor
    /// when there may be more.
    pub fn invites_page(
        &self,
        after: Option<InviteId>,
        limit: usize,
    ) -> Result<crate::api::body::Page<Invite>> {
        let limit = limit.clamp(1, crate::api::routes::PAGE_MAX);
        let (items, next) = self.read(|rx| rx.invites_after(after.map_or(0, |i| i.0), limit))?;
        Ok(crate::api::body::Page { items, next })
    }

    pub fn invite(&self, id: InviteId) -> Result<Invite> {
        self.read(|rx| rx.invite(id))
    }

    #[instrument(skip(self), fields(actor = %self.actor))]
    pub fn revoke_invite(&self, id: InviteId) -> Result<Invite> {
        self.write(|tx| {
            let mut invite = tx.invite(id)?;
            if !invite.revoked {
                invite.revoked = true;
                tx.put_invite(&invite, None)?;
                tx.event(EventKind::InviteRevoked { invite: id })?;
            }
            Ok(invite)
        })
    }

    /// Redeems an invite atomically: checks and decrements its uses and creates the
    /// user (or adds the grant to the user with the same Telegram id) in one
    /// transaction, so concurrent redemptions never exceed the allowed uses.
    #[instrument(skip_all, fields(actor = %self.actor))]
    pub fn redeem_invite(&self, code: &str, who: Redeemer) -> Result<Redemption> {
        let code = code.trim();
        if code.is_empty()
            || code.len() > 64
            || !code
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(Error::InviteNotFound);
        }
        let hash = code_hash(code);
        let name = validate_display_name("user name", &who.name, crate::model::MAX_USER_NAME)?;
        self.write(|tx| {
            let now = tx.now();
            let mut invite = tx
                .invite_by_code_hash(&hash)?
                .ok_or(Error::InviteNotFound)?;
            if invite.revoked {
                return Err(Error::InviteRevoked { invite: invite.id });
            }
            if let Some(expired) = invite.expires_at.filter(|t| *t <= now) {
                return Err(Error::InviteExpired {
                    invite: invite.id,
                    expired,
                });
            }
            if invite.uses_left == 0 {
                return Err(Error::InviteUsedUp { invite: invite.id });
            }
            invite.uses_left -= 1;
            tx.put_invite(&invite, None)?;
            let grant = &invite.grant;
            let existing = match who.telegram_id {
                Some(tg) => tx.user_by_telegram(tg)?,
                None => None,
            };
            let (user, created) = if let Some(old) = existing {
                let until = match (old.until, grant.access_days) {
                    (_, None) | (None, _) => None,
                    (Some(u), Some(d)) => Some(u.max(now).plus_days(i64::from(d))),
                };
                let mut user = set_access_in(tx, old.id, until)?;
                let before = user.clone();
                user.device_limit = user.device_limit.max(grant.device_limit);
                if grant.role == Role::Admin {
                    user.role = Role::Admin;
                }
                tx.put_user(Some(&before), &user)?;
                (user, false)
            } else {
                let mut user = create_user_in(
                    tx,
                    who.telegram_id,
                    name.clone(),
                    grant.role,
                    grant.access_days.map(|d| now.plus_days(i64::from(d))),
                    grant.device_limit,
                    who.locale,
                )?;
                // A trial plan's quota comes with it (a new account only: an
                // existing one keeps what it has, and gets the days).
                if let Some(plan) = tx.invite_plan(invite.id)? {
                    let quota = tx.plan(plan)?.quota;
                    if quota.is_some() {
                        let before = user.clone();
                        user.quota = quota;
                        tx.put_user(Some(&before), &user)?;
                    }
                }
                (user, true)
            };
            tx.event(EventKind::InviteRedeemed {
                invite: invite.id,
                user: user.id,
            })?;
            Ok(Redemption {
                user,
                invite,
                created,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_hash_is_stable_and_keyed() {
        assert_eq!(code_hash("a"), code_hash("a"));
        assert_ne!(code_hash("a"), code_hash("b"));
    }
}
