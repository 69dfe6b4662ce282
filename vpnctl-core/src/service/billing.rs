//! Selling access for Telegram Stars: plans, orders, checkout, payments applied
//! exactly once per charge, refunds, and the revenue they add up to.
//!
//! **Exactly once.** A payment is recorded in the same write transaction that
//! extends the user, keyed by Telegram's `telegram_charge_id`: a second delivery
//! of the same charge (Telegram repeating an update the bot did not acknowledge, a
//! bot restarted between receiving and acknowledging) finds the row and changes
//! nothing.
//!
//! **Refunds** run in two steps because only the bot can talk to Telegram: an
//! admin's request queues a notification the bot acts on (`refundStarPayment`),
//! and the bot reports the result. Only a refund Telegram confirmed shortens the
//! user's access, by the days the payment added, never to before now (the user
//! then lapses at once); unlimited access stays unlimited.

use tracing::instrument;

use crate::api::billing::{
    Checkout, CheckoutAnswer, CheckoutRefusal, CreatePlan, MAX_PLAN_NAME, MAX_STARS,
    ORDER_TTL_SECS, Order, Payment, PaymentApplied, PaymentQuery, Plan, PlanName, ReceivedPayment,
    Refund, RevenueLine, STARS, SUBSCRIPTION_DAYS, Subscription, Takings,
};
use crate::api::body::Page;
use crate::api::routes::PAGE_MAX;
use crate::error::{Error, Result};
use crate::lifecycle::{Message, Recipient};
use crate::model::{
    EventKind, OrderId, PaymentId, PlanId, User, UserId, UserState, validate_display_name,
};
use crate::store::Tx;
use crate::time::{DAY, Timestamp};

use super::Vpnctl;
use super::tx::{current_usage, notify_user, recheck_quota, sync_user_peers};

/// What Telegram answers a refund of Stars that were returned before: the refund
/// is done, whoever did it.
pub const ALREADY_REFUNDED: &str = "CHARGE_ALREADY_REFUNDED";
/// Most days one plan may sell.
pub const MAX_PLAN_DAYS: u32 = 3650;
/// Most devices a plan may allow.
pub const MAX_PLAN_DEVICES: u32 = 100;

fn plan_name(name: &PlanName) -> Result<PlanName> {
    Ok(PlanName {
        en: validate_display_name("plan name", &name.en, MAX_PLAN_NAME)?,
        ru: name
            .ru
            .as_deref()
            .map(|ru| validate_display_name("plan name (ru)", ru, MAX_PLAN_NAME))
            .transpose()?,
    })
}

impl Vpnctl {
    /// Adds a plan users can buy.
    #[instrument(skip(self, new), fields(actor = %self.actor))]
    pub fn create_plan(&self, new: CreatePlan) -> Result<Plan> {
        let name = plan_name(&new.name)?;
        if !(1..=MAX_PLAN_DAYS).contains(&new.days) {
            return Err(Error::invalid(
                "days",
                format!("must be 1..={MAX_PLAN_DAYS}"),
            ));
        }
        if new.trial {
            if new.stars != 0 || new.recurring {
                return Err(Error::invalid(
                    "stars",
                    "a trial is not sold: it has no price and does not recur",
                ));
            }
        } else if !(1..=MAX_STARS).contains(&new.stars) {
            return Err(Error::invalid(
                "stars",
                format!("must be 1..={MAX_STARS} (Telegram's limits)"),
            ));
        }
        if !(1..=MAX_PLAN_DEVICES).contains(&new.device_limit) {
            return Err(Error::invalid(
                "device limit",
                format!("must be 1..={MAX_PLAN_DEVICES}"),
            ));
        }
        if new.quota.is_some_and(|q| q.bytes == 0) {
            return Err(Error::invalid("quota", "must be at least 1 byte"));
        }
        if new.recurring && new.days != SUBSCRIPTION_DAYS {
            return Err(Error::invalid(
                "days",
                format!(
                    "a recurring plan renews every {SUBSCRIPTION_DAYS} days (Telegram's only period)"
                ),
            ));
        }
        self.write(|tx| {
            if tx
                .plans()?
                .iter()
                .any(|p| p.active && p.name.en.eq_ignore_ascii_case(&name.en))
            {
                return Err(Error::Conflict(format!(
                    "an active plan is already named {:?}",
                    name.en
                )));
            }
            let plan = Plan {
                id: PlanId(tx.next_id("next_plan")?),
                name: name.clone(),
                days: new.days,
                stars: new.stars,
                device_limit: new.device_limit,
                quota: new.quota,
                recurring: new.recurring,
                trial: new.trial,
                active: true,
                created_at: tx.now(),
            };
            tx.put_plan(&plan)?;
            tx.event(EventKind::PlanCreated { plan: plan.id })?;
            Ok(plan)
        })
    }

    /// The plans in id order; retired ones too when `all`.
    pub fn plans(&self, all: bool) -> Result<Vec<Plan>> {
        // A method path does not satisfy the higher-ranked closure bound here.
        #[allow(clippy::redundant_closure_for_method_calls)]
        let mut plans = self.read(|rx| rx.plans())?;
        plans.retain(|p| all || p.active);
        Ok(plans)
    }

    pub fn plan(&self, id: PlanId) -> Result<Plan> {
        self.read(|rx| rx.plan(id))
    }

    /// Stops offering a plan. Open invoices for it are refused at checkout; what
    /// was paid stays paid.
    #[instrument(skip(self), fields(actor = %self.actor))]
    pub fn retire_plan(&self, id: PlanId) -> Result<Plan> {
        self.write(|tx| {
            let mut plan = tx.plan(id)?;
            if plan.active {
                plan.active = false;
                tx.put_plan(&plan)?;
                tx.event(EventKind::PlanRetired { plan: id })?;
            }
            Ok(plan)
        })
    }

    /// Fixes what `user` is about to buy; its [`Order::payload`] goes in the invoice.
    #[instrument(skip(self), fields(actor = %self.actor))]
    pub fn create_order(&self, user: UserId, plan: PlanId) -> Result<Order> {
        self.write(|tx| {
            let buyer = tx.user(user)?;
            if buyer.state == UserState::Disabled {
                return Err(Error::UserDisabled { user });
            }
            let plan = tx.plan(plan)?;
            if !plan.active {
                return Err(Error::Conflict(format!("plan {} is retired", plan.id)));
            }
            if plan.trial {
                return Err(Error::Conflict(format!(
                    "plan {} is a trial: invites grant it, it is not sold",
                    plan.id
                )));
            }
            let now = tx.now();
            let order = Order {
                id: OrderId(tx.next_id("next_order")?),
                user,
                plan: plan.id,
                stars: plan.stars,
                days: plan.days,
                device_limit: plan.device_limit,
                quota: plan.quota,
                recurring: plan.recurring,
                created_at: now,
                expires_at: now.plus_seconds(ORDER_TTL_SECS),
                paid: None,
            };
            tx.put_order(&order)?;
            tx.event(EventKind::OrderCreated {
                order: order.id,
                user,
                plan: plan.id,
            })?;
            Ok(order)
        })
    }

    pub fn order(&self, id: OrderId) -> Result<Option<Order>> {
        self.read(|rx| rx.order(id))
    }

    /// Telegram's pre-checkout question: may this invoice be paid now? Reads only,
    /// so it answers fast even while writes queue.
    pub fn checkout(&self, c: &Checkout) -> Result<CheckoutAnswer> {
        let now = self.now();
        let refusal = self.read(|rx| {
            let Some(order) = Order::from_payload(&c.payload)
                .map(|id| rx.order(id))
                .transpose()?
                .flatten()
            else {
                return Ok(Some(CheckoutRefusal::UnknownOrder));
            };
            let user = rx.user(order.user)?;
            // Whose order it is comes first: nothing about another user's order is
            // told.
            if user.telegram_id != Some(c.telegram_id) {
                return Ok(Some(CheckoutRefusal::OtherUser));
            }
            let plan = rx.plan(order.plan)?;
            Ok(if c.currency != STARS {
                Some(CheckoutRefusal::WrongCurrency)
            } else if order.paid.is_some() {
                Some(CheckoutRefusal::AlreadyPaid)
            } else if now > order.expires_at {
                Some(CheckoutRefusal::Expired)
            } else if !plan.on_sale() {
                Some(CheckoutRefusal::PlanRetired)
            } else if plan.stars != order.stars || c.total != order.stars {
                Some(CheckoutRefusal::PriceChanged)
            } else if user.state == UserState::Disabled {
                Some(CheckoutRefusal::UserDisabled)
            } else {
                None
            })
        });
        match refusal {
            Ok(refusal) => Ok(CheckoutAnswer { refusal }),
            // The order's user was deleted.
            Err(Error::NotFound { .. }) => Ok(CheckoutAnswer {
                refusal: Some(CheckoutRefusal::UnknownOrder),
            }),
            Err(e) => Err(e),
        }
    }

    /// Applies a payment Telegram confirmed, once per `telegram_charge_id`: access
    /// extended from the later of now and its current end, devices and quota set
    /// to the order's, a lapsed or suspended user restored (their peers go back on
    /// the nodes), a receipt queued for the user and a notice for the admins.
    #[instrument(skip(self, p), fields(actor = %self.actor))]
    pub fn record_payment(&self, p: &ReceivedPayment) -> Result<PaymentApplied> {
        if p.telegram_charge_id.is_empty() || p.telegram_charge_id.len() > 256 {
            return Err(Error::invalid(
                "telegram_charge_id",
                "must be 1..=256 bytes",
            ));
        }
        let order_id = Order::from_payload(&p.payload)
            .ok_or_else(|| Error::invalid("payload", "names no order of this service"))?;
        self.write(|tx| {
            if let Some(payment) = tx.payment_by_charge(&p.telegram_charge_id)? {
                let user = tx.user(payment.user)?;
                return Ok(PaymentApplied {
                    payment,
                    user,
                    new: false,
                });
            }
            let Some(mut order) = tx.order(order_id)? else {
                return Err(Error::invalid(
                    "payload",
                    format!("order {order_id} does not exist"),
                ));
            };
            let old = tx.user(order.user)?;
            let mut user = old.clone();
            let now = tx.now();
            user.until = old
                .until
                .map(|u| u.max(now).plus_days(i64::from(order.days)));
            user.lapsed = false;
            user.device_limit = order.device_limit;
            user.quota = order.quota;
            // What was bought is a fresh allowance: this period starts from zero.
            let mut usage = current_usage(tx, &user)?;
            usage.period_bytes = 0;
            tx.put_usage(user.id, &usage)?;
            recheck_quota(tx, &mut user)?;
            let id = PaymentId(tx.next_id("next_payment")?);
            let payment = Payment {
                id,
                order: order.id,
                user: user.id,
                telegram_id: p.telegram_id,
                plan: order.plan,
                stars: p.total,
                days: order.days,
                telegram_charge_id: p.telegram_charge_id.clone(),
                provider_charge_id: p.provider_charge_id.clone(),
                at: now,
                until_before: old.until,
                until_after: user.until,
                recurring: p.recurring,
                subscription_until: p.subscription_until,
                refund: None,
            };
            tx.put_payment(&payment, true)?;
            if order.recurring {
                let mut sub = tx.subscription(user.id, order.id)?.unwrap_or(Subscription {
                    user: user.id,
                    order: order.id,
                    plan: order.plan,
                    stars: order.stars,
                    telegram_charge_id: p.telegram_charge_id.clone(),
                    telegram_id: p.telegram_id,
                    until: None,
                    renewals: 0,
                    cancelled: false,
                });
                if order.paid.is_some() {
                    sub.renewals += 1;
                }
                sub.until = p.subscription_until.or(user.until);
                tx.put_subscription(&sub)?;
            }
            if order.paid.is_none() {
                order.paid = Some(id);
                tx.put_order(&order)?;
            }
            tx.put_user(Some(&old), &user)?;
            sync_user_peers(tx, &user)?;
            if old.suspended && !user.suspended {
                tx.event(EventKind::QuotaRestored { user: user.id })?;
            }
            if old.until != user.until {
                tx.event(EventKind::AccessChanged {
                    user: user.id,
                    until: user.until,
                })?;
            }
            tx.account_revenue(
                order.plan,
                Takings {
                    payments: 1,
                    stars: u64::from(p.total),
                    ..Takings::default()
                },
            )?;
            tx.event(EventKind::PaymentReceived {
                payment: id,
                user: user.id,
                plan: order.plan,
                stars: p.total,
            })?;
            let plan = tx.plan(order.plan)?;
            let message = Message::PaymentReceived {
                payment: id,
                user: user.id,
                user_name: user.name.clone(),
                plan: plan.name,
                stars: p.total,
                days: order.days,
                until: user.until,
            };
            notify_user(tx, &user, message.clone())?;
            tx.notify(Recipient::Admins, message)?;
            Ok(PaymentApplied {
                payment,
                user,
                new: true,
            })
        })
    }

    pub fn payment(&self, id: PaymentId) -> Result<Payment> {
        self.read(|rx| rx.payment(id))
    }

    /// One page of payments, newest first; `next` is the `before` of the next page.
    pub fn payments(&self, q: PaymentQuery) -> Result<Page<Payment>> {
        let limit = q.limit.unwrap_or(PAGE_MAX).clamp(1, PAGE_MAX);
        let items =
            self.read(|rx| rx.payments_before(q.user, q.before.map_or(u64::MAX, |b| b.0), limit))?;
        let next = (items.len() == limit)
            .then(|| items.last().map(|p| p.id.0))
            .flatten();
        Ok(Page { items, next })
    }

    /// Asks for a refund: the bot returns the Stars and reports back
    /// ([`Vpnctl::finish_refund`]). Asking again while one is under way changes
    /// nothing; a refunded payment is refused.
    #[instrument(skip(self), fields(actor = %self.actor))]
    pub fn request_refund(&self, id: PaymentId) -> Result<Payment> {
        self.write(|tx| {
            let mut payment = tx.payment(id)?;
            match payment.refund {
                Some(Refund::Done { .. }) => {
                    return Err(Error::Conflict(format!(
                        "payment {id} was refunded already"
                    )));
                }
                Some(Refund::Requested { .. }) => return Ok(payment),
                Some(Refund::Failed { .. }) | None => {}
            }
            payment.refund = Some(Refund::Requested { at: tx.now() });
            tx.put_payment(&payment, false)?;
            tx.event(EventKind::RefundRequested {
                payment: id,
                user: payment.user,
            })?;
            tx.notify(
                Recipient::Admins,
                Message::RefundRequested {
                    payment: id,
                    telegram_id: payment.telegram_id,
                    telegram_charge_id: payment.telegram_charge_id.clone(),
                    stars: payment.stars,
                },
            )?;
            Ok(payment)
        })
    }

    /// What Telegram answered the bot's refund: `error` is its description when it
    /// refused. Done (or [`ALREADY_REFUNDED`]) shortens the user's access by the
    /// days the payment added. A repeated report of a finished refund changes
    /// nothing.
    #[instrument(skip(self, error), fields(actor = %self.actor))]
    pub fn finish_refund(&self, id: PaymentId, error: Option<&str>) -> Result<Payment> {
        self.write(|tx| {
            let mut payment = tx.payment(id)?;
            match payment.refund {
                Some(Refund::Requested { .. }) => {}
                Some(Refund::Done { .. } | Refund::Failed { .. }) => return Ok(payment),
                None => {
                    return Err(Error::Conflict(format!(
                        "no refund of payment {id} was asked for"
                    )));
                }
            }
            let now = tx.now();
            match error {
                Some(reason) if !reason.contains(ALREADY_REFUNDED) => {
                    let reason: String = reason.chars().take(200).collect();
                    payment.refund = Some(Refund::Failed {
                        at: now,
                        reason: reason.clone(),
                    });
                    tx.put_payment(&payment, false)?;
                    tx.event(EventKind::RefundFailed {
                        payment: id,
                        reason: reason.clone(),
                    })?;
                    tx.notify(
                        Recipient::Admins,
                        Message::RefundFailed {
                            payment: id,
                            reason,
                        },
                    )?;
                }
                _ => refund_done(tx, &mut payment)?,
            }
            Ok(payment)
        })
    }

    /// A user's Stars subscriptions, oldest first.
    pub fn subscriptions(&self, user: UserId) -> Result<Vec<Subscription>> {
        self.read(|rx| {
            rx.user(user)?;
            rx.subscriptions(user)
        })
    }

    /// Records that the user cancelled (or resumed) a subscription's renewal with
    /// Telegram. Access already paid for runs to its end either way.
    #[instrument(skip(self), fields(actor = %self.actor))]
    pub fn set_renewal(
        &self,
        user: UserId,
        order: OrderId,
        cancelled: bool,
    ) -> Result<Subscription> {
        self.write(|tx| {
            let Some(mut sub) = tx.subscription(user, order)? else {
                return Err(Error::invalid(
                    "order",
                    format!("user {user} has no subscription from order {order}"),
                ));
            };
            if sub.cancelled != cancelled {
                sub.cancelled = cancelled;
                tx.put_subscription(&sub)?;
                tx.event(EventKind::SubscriptionRenewal {
                    user,
                    order,
                    cancelled,
                })?;
            }
            Ok(sub)
        })
    }

    /// Takings per UTC day and plan over the last `days` days, today included.
    pub fn revenue(&self, days: u32) -> Result<Vec<RevenueLine>> {
        let today = crate::store::day_of(self.now());
        let from = today - i64::from(days.clamp(1, 3660)) + 1;
        let rows = self.read(|rx| rx.revenue(from, today))?;
        Ok(rows
            .into_iter()
            .map(|(day, plan, takings)| RevenueLine {
                day: Timestamp(day * DAY).to_date(),
                plan,
                takings,
            })
            .collect())
    }

    /// Takings per plan since the start (what `/metrics` shows).
    pub fn revenue_totals(&self) -> Result<Vec<(PlanId, Takings)>> {
        // A method path does not satisfy the higher-ranked closure bound here.
        #[allow(clippy::redundant_closure_for_method_calls)]
        self.read(|rx| rx.revenue_totals())
    }
}

/// The Stars are back: shorten access, count the refund, tell the user and admins.
fn refund_done(tx: &mut Tx<'_>, payment: &mut Payment) -> Result<()> {
    let now = tx.now();
    let until = match tx.user(payment.user) {
        Ok(user) => shorten(tx, &user, payment.days)?,
        Err(Error::NotFound { .. }) => None,
        Err(e) => return Err(e),
    };
    payment.refund = Some(Refund::Done { at: now, until });
    tx.put_payment(payment, false)?;
    tx.account_revenue(
        payment.plan,
        Takings {
            refunds: 1,
            refunded_stars: u64::from(payment.stars),
            ..Takings::default()
        },
    )?;
    tx.event(EventKind::PaymentRefunded {
        payment: payment.id,
        user: payment.user,
        stars: payment.stars,
    })?;
    let user = tx.user(payment.user).ok();
    let message = Message::PaymentRefunded {
        payment: payment.id,
        user: payment.user,
        user_name: user.as_ref().map(|u| u.name.clone()).unwrap_or_default(),
        stars: payment.stars,
        until,
    };
    if let Some(user) = &user {
        notify_user(tx, user, message.clone())?;
    }
    tx.notify(Recipient::Admins, message)?;
    Ok(())
}

/// Takes `days` off the user's access, not to before now; returns the new end.
fn shorten(tx: &mut Tx<'_>, user: &User, days: u32) -> Result<Option<Timestamp>> {
    let Some(until) = user.until else {
        return Ok(None);
    };
    let now = tx.now();
    let new = until.plus_days(-i64::from(days)).max(now).min(until);
    if new != until {
        super::tx::set_access_in(tx, user.id, Some(new))?;
    }
    Ok(Some(new))
}
