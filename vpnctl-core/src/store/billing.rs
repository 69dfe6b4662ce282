//! Plans, orders, payments, the revenue counters and broadcasts: their readers and
//! writers.

use redb::ReadableTable;

use crate::api::billing::{Order, Payment, Plan, Subscription, Takings};
use crate::api::broadcast::Broadcast;
use crate::error::{Entity, Error, Result};
use crate::model::{OrderId, PaymentId, PlanId, UserId};
use crate::time::DAY;

use super::codec::{decode_json, encode_json};
use super::{Mode, Tx, Txn};

fn takings((payments, stars, refunds, refunded_stars): (u64, u64, u64, u64)) -> Takings {
    Takings {
        payments,
        stars,
        refunds,
        refunded_stars,
    }
}

fn row(t: Takings) -> (u64, u64, u64, u64) {
    (t.payments, t.stars, t.refunds, t.refunded_stars)
}

/// The UTC day `at` falls on, as days since the epoch.
pub(crate) fn day_of(at: crate::time::Timestamp) -> i64 {
    at.seconds().div_euclid(DAY)
}

impl<M: Mode> Txn<'_, M> {
    pub fn plan(&self, id: PlanId) -> Result<Plan> {
        match self.tables.plans.read()?.get(id.0)? {
            Some(v) => decode_json("plans", v.value()),
            None => Err(Error::not_found(Entity::Plan, id)),
        }
    }

    pub fn plans(&self) -> Result<Vec<Plan>> {
        let mut out = Vec::new();
        for row in self.tables.plans.read()?.iter()? {
            out.push(decode_json("plans", row?.1.value())?);
        }
        Ok(out)
    }

    pub fn order(&self, id: OrderId) -> Result<Option<Order>> {
        self.tables
            .orders
            .read()?
            .get(id.0)?
            .map(|v| decode_json("orders", v.value()))
            .transpose()
    }

    pub fn payment(&self, id: PaymentId) -> Result<Payment> {
        match self.tables.payments.read()?.get(id.0)? {
            Some(v) => decode_json("payments", v.value()),
            None => Err(Error::not_found(Entity::Payment, id)),
        }
    }

    pub fn payment_by_charge(&self, charge: &str) -> Result<Option<Payment>> {
        let id = self
            .tables
            .payments_by_charge
            .read()?
            .get(charge)?
            .map(|v| v.value());
        id.map(|id| self.payment(PaymentId(id))).transpose()
    }

    /// Payments with ids below `before`, newest first, at most `limit`; of one user
    /// when given.
    pub fn payments_before(
        &self,
        user: Option<UserId>,
        before: u64,
        limit: usize,
    ) -> Result<Vec<Payment>> {
        let mut out = Vec::new();
        match user {
            Some(user) => {
                let index = self.tables.payments_by_user.read()?;
                for row in index
                    .range((user.0, 0)..(user.0, before))?
                    .rev()
                    .take(limit)
                {
                    out.push(self.payment(PaymentId(row?.0.value().1))?);
                }
            }
            None => {
                let table = self.tables.payments.read()?;
                for row in table.range(..before)?.rev().take(limit) {
                    out.push(decode_json("payments", row?.1.value())?);
                }
            }
        }
        Ok(out)
    }

    /// Takings per (day, plan) for the days `from..=to` (days since the epoch).
    pub fn revenue(&self, from: i64, to: i64) -> Result<Vec<(i64, PlanId, Takings)>> {
        let mut out = Vec::new();
        for r in self
            .tables
            .revenue
            .read()?
            .range((from, 0)..=(to, u64::MAX))?
        {
            let (k, v) = r?;
            let (day, plan) = k.value();
            out.push((day, PlanId(plan), takings(v.value())));
        }
        Ok(out)
    }

    pub fn subscription(&self, user: UserId, order: OrderId) -> Result<Option<Subscription>> {
        self.tables
            .subscriptions
            .read()?
            .get((user.0, order.0))?
            .map(|v| decode_json("subscriptions", v.value()))
            .transpose()
    }

    /// A user's subscriptions, oldest first.
    pub fn subscriptions(&self, user: UserId) -> Result<Vec<Subscription>> {
        let mut out = Vec::new();
        for row in self
            .tables
            .subscriptions
            .read()?
            .range((user.0, 0)..=(user.0, u64::MAX))?
        {
            out.push(decode_json("subscriptions", row?.1.value())?);
        }
        Ok(out)
    }

    /// The plan an invite grants, if it grants one.
    pub fn invite_plan(&self, invite: crate::model::InviteId) -> Result<Option<PlanId>> {
        Ok(self
            .tables
            .invite_plans
            .read()?
            .get(invite.0)?
            .map(|v| PlanId(v.value())))
    }

    pub fn broadcast(&self, id: u64) -> Result<Broadcast> {
        match self.tables.broadcasts.read()?.get(id)? {
            Some(v) => decode_json("broadcasts", v.value()),
            None => Err(Error::not_found(Entity::Broadcast, id)),
        }
    }

    /// The newest `limit` broadcasts, newest first.
    pub fn broadcasts(&self, limit: usize) -> Result<Vec<Broadcast>> {
        let mut out = Vec::new();
        for row in self.tables.broadcasts.read()?.iter()?.rev().take(limit) {
            out.push(decode_json("broadcasts", row?.1.value())?);
        }
        Ok(out)
    }

    /// Takings per plan since the start.
    pub fn revenue_totals(&self) -> Result<Vec<(PlanId, Takings)>> {
        let mut out = Vec::new();
        for r in self.tables.revenue_total.read()?.iter()? {
            let (k, v) = r?;
            out.push((PlanId(k.value()), takings(v.value())));
        }
        Ok(out)
    }
}

impl Tx<'_> {
    pub fn put_plan(&mut self, plan: &Plan) -> Result<()> {
        self.tables
            .plans
            .write()?
            .insert(plan.id.0, encode_json(plan).as_slice())?;
        Ok(())
    }

    pub fn put_order(&mut self, order: &Order) -> Result<()> {
        self.tables
            .orders
            .write()?
            .insert(order.id.0, encode_json(order).as_slice())?;
        Ok(())
    }

    /// Writes a payment; a new one is indexed by its charge id and user.
    pub fn put_payment(&mut self, payment: &Payment, new: bool) -> Result<()> {
        let t = &mut self.tables;
        t.payments
            .write()?
            .insert(payment.id.0, encode_json(payment).as_slice())?;
        if new {
            t.payments_by_charge
                .write()?
                .insert(payment.telegram_charge_id.as_str(), payment.id.0)?;
            t.payments_by_user
                .write()?
                .insert((payment.user.0, payment.id.0), ())?;
        }
        Ok(())
    }

    pub fn put_subscription(&mut self, sub: &Subscription) -> Result<()> {
        self.tables
            .subscriptions
            .write()?
            .insert((sub.user.0, sub.order.0), encode_json(sub).as_slice())?;
        Ok(())
    }

    pub fn set_invite_plan(&mut self, invite: crate::model::InviteId, plan: PlanId) -> Result<()> {
        self.tables.invite_plans.write()?.insert(invite.0, plan.0)?;
        Ok(())
    }

    pub fn put_broadcast(&mut self, b: &Broadcast) -> Result<()> {
        self.tables
            .broadcasts
            .write()?
            .insert(b.id, encode_json(b).as_slice())?;
        Ok(())
    }

    /// Drops the outbox rows `from..=to` (a cancelled broadcast's, not yet read by
    /// every consumer).
    pub fn drop_notifications(&mut self, from: u64, to: u64) -> Result<()> {
        if from <= to {
            self.tables
                .outbox
                .write()?
                .retain_in(from..=to, |_, _| false)?;
        }
        Ok(())
    }

    /// Adds `delta` to the takings of `plan` on the day of now, and to its total.
    pub fn account_revenue(&mut self, plan: PlanId, delta: Takings) -> Result<()> {
        let day = day_of(self.now());
        let add = |old: Takings| Takings {
            payments: old.payments + delta.payments,
            stars: old.stars + delta.stars,
            refunds: old.refunds + delta.refunds,
            refunded_stars: old.refunded_stars + delta.refunded_stars,
        };
        let t = &mut self.tables;
        let by_day = t.revenue.write()?;
        let old = by_day
            .get((day, plan.0))?
            .map(|v| takings(v.value()))
            .unwrap_or_default();
        by_day.insert((day, plan.0), row(add(old)))?;
        let total = t.revenue_total.write()?;
        let old = total
            .get(plan.0)?
            .map(|v| takings(v.value()))
            .unwrap_or_default();
        total.insert(plan.0, row(add(old)))?;
        Ok(())
    }
}
