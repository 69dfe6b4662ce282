//! What users buy and pay: plans, orders (one invoice each) and payments in
//! Telegram Stars, and the bodies of their routes.
//!
//! A [`Plan`] is what an admin offers; an [`Order`] fixes what one user is about to
//! buy (price, days, devices, quota) when the invoice is sent, so a plan changed or
//! retired later does not change what an open invoice sells; a [`Payment`] is one
//! charge Telegram confirmed, known by its `telegram_charge_id` and applied once.

use serde::{Deserialize, Serialize};

use crate::lifecycle::Quota;
use crate::model::{Locale, OrderId, PaymentId, PlanId, User, UserId};
use crate::time::Timestamp;

/// The only currency digital goods are sold in inside Telegram's apps.
pub const STARS: &str = "XTR";
/// How long an order (its invoice) can be paid: one hour.
pub const ORDER_TTL_SECS: i64 = 3600;
/// The period of a Stars subscription: Telegram allows exactly 30 days.
pub const SUBSCRIPTION_DAYS: u32 = 30;
/// Telegram's bounds on a Stars price.
pub const MAX_STARS: u32 = 10_000;
/// Longest plan name, in characters (it is the invoice title: Telegram allows 32).
pub const MAX_PLAN_NAME: usize = 32;

/// A plan's name in each language the frontends speak.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanName {
    pub en: String,
    /// Russian; English is shown when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ru: Option<String>,
}

impl PlanName {
    /// The name in `locale`, falling back to English.
    pub fn get(&self, locale: Locale) -> &str {
        match locale {
            Locale::Ru => self.ru.as_deref().unwrap_or(&self.en),
            Locale::En => &self.en,
        }
    }
}

/// What users can buy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub id: PlanId,
    pub name: PlanName,
    /// Days of access one purchase adds.
    pub days: u32,
    /// Price in Telegram Stars.
    pub stars: u32,
    /// Devices the buyer may have.
    pub device_limit: u32,
    /// Traffic allowance the buyer gets; `None` is unlimited.
    #[serde(default)]
    pub quota: Option<Quota>,
    /// Sold as a monthly Stars subscription that renews itself (then `days` is 30).
    #[serde(default)]
    pub recurring: bool,
    /// A trial: not sold (its price is 0), granted by invites (`vpnctl invites
    /// create --plan`).
    #[serde(default)]
    pub trial: bool,
    /// Retired plans are no longer offered; open orders for them are refused at
    /// checkout, payments already made stay valid.
    pub active: bool,
    pub created_at: Timestamp,
}

impl Plan {
    /// Offered in the bot (`/buy`, Renew): active and not a trial.
    pub fn on_sale(&self) -> bool {
        self.active && !self.trial
    }
}

/// One invoice sent to one user: what they are about to buy, fixed when it was sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub id: OrderId,
    pub user: UserId,
    pub plan: PlanId,
    pub stars: u32,
    pub days: u32,
    pub device_limit: u32,
    #[serde(default)]
    pub quota: Option<Quota>,
    #[serde(default)]
    pub recurring: bool,
    pub created_at: Timestamp,
    /// Checkout is refused after this.
    pub expires_at: Timestamp,
    /// The first payment made for it (a subscription's later payments name it too).
    #[serde(default)]
    pub paid: Option<PaymentId>,
}

/// The invoice payload that names an order: `vpnctl:o<id>`.
const PAYLOAD_PREFIX: &str = "vpnctl:o";

impl Order {
    /// The invoice payload that names this order (Telegram returns it at checkout).
    pub fn payload(&self) -> String {
        format!("{PAYLOAD_PREFIX}{}", self.id)
    }

    /// The order an invoice payload names, if it is one of ours.
    pub fn from_payload(payload: &str) -> Option<OrderId> {
        payload
            .strip_prefix(PAYLOAD_PREFIX)?
            .parse()
            .ok()
            .map(OrderId)
    }
}

/// Where a refund stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum Refund {
    /// An admin asked for it; the bot carries it out with Telegram.
    Requested { at: Timestamp },
    /// Telegram returned the Stars; access was shortened to `until`.
    Done {
        at: Timestamp,
        until: Option<Timestamp>,
    },
    /// Telegram refused it (for instance the Stars were refunded before).
    Failed { at: Timestamp, reason: String },
}

/// One charge Telegram confirmed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    pub id: PaymentId,
    pub order: OrderId,
    pub user: UserId,
    /// The payer's Telegram id (refunds go to it).
    pub telegram_id: i64,
    pub plan: PlanId,
    pub stars: u32,
    /// Days of access it added.
    pub days: u32,
    /// Telegram's id of the charge: what refunds and support name.
    pub telegram_charge_id: String,
    #[serde(default)]
    pub provider_charge_id: String,
    pub at: Timestamp,
    /// The user's end of access before and after the payment.
    pub until_before: Option<Timestamp>,
    pub until_after: Option<Timestamp>,
    /// One of a subscription's renewals (not its first payment).
    #[serde(default)]
    pub recurring: bool,
    /// For subscriptions: when the period paid for ends.
    #[serde(default)]
    pub subscription_until: Option<Timestamp>,
    #[serde(default)]
    pub refund: Option<Refund>,
}

/// A Telegram Stars subscription: a recurring plan's order, renewed by Telegram
/// every 30 days until the user cancels it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    pub user: UserId,
    pub order: OrderId,
    pub plan: PlanId,
    pub stars: u32,
    /// The first payment's charge id: what `editUserStarSubscription` names.
    pub telegram_charge_id: String,
    pub telegram_id: i64,
    /// The end of the period paid for; Telegram charges again then unless
    /// cancelled.
    pub until: Option<Timestamp>,
    pub renewals: u32,
    /// The user cancelled the renewal (it still runs to `until`).
    #[serde(default)]
    pub cancelled: bool,
}

/// `POST /v1/subscriptions/renewal`: the bot changed a subscription's renewal with
/// Telegram (`editUserStarSubscription`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetRenewal {
    pub user: UserId,
    pub order: OrderId,
    pub cancelled: bool,
}

/// Why a checkout is refused; frontends word it in the user's language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckoutRefusal {
    /// The payload names no order of ours.
    UnknownOrder,
    /// The order belongs to another user.
    OtherUser,
    /// The invoice is older than [`ORDER_TTL_SECS`].
    Expired,
    /// The order was paid already.
    AlreadyPaid,
    /// The plan was retired since the invoice was sent.
    PlanRetired,
    /// The plan's price changed since the invoice was sent, or the amount differs.
    PriceChanged,
    /// Not Telegram Stars.
    WrongCurrency,
    /// An admin disabled the user.
    UserDisabled,
}

/// `POST /v1/plans`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreatePlan {
    pub name: PlanName,
    pub days: u32,
    pub stars: u32,
    pub device_limit: u32,
    #[serde(default)]
    pub quota: Option<Quota>,
    #[serde(default)]
    pub recurring: bool,
    /// A trial plan: price 0, granted by invites only.
    #[serde(default)]
    pub trial: bool,
}

/// `GET /v1/plans`.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanQuery {
    /// Include retired plans.
    #[serde(default)]
    pub all: bool,
}

/// `POST /v1/orders`: an order for `plan` by `user`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateOrder {
    pub user: UserId,
    pub plan: PlanId,
}

/// `POST /v1/orders/checkout`: Telegram's pre-checkout query, to be answered within
/// 10 seconds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkout {
    pub payload: String,
    /// Who pays.
    pub telegram_id: i64,
    pub currency: String,
    pub total: u32,
}

/// The answer to a [`Checkout`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckoutAnswer {
    /// `None`: the order may be paid.
    pub refusal: Option<CheckoutRefusal>,
}

/// `POST /v1/payments`: Telegram confirmed a payment (`successful_payment`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceivedPayment {
    pub payload: String,
    pub telegram_id: i64,
    pub currency: String,
    pub total: u32,
    pub telegram_charge_id: String,
    #[serde(default)]
    pub provider_charge_id: String,
    #[serde(default)]
    pub recurring: bool,
    #[serde(default)]
    pub subscription_until: Option<Timestamp>,
}

/// What recording a payment did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentApplied {
    pub payment: Payment,
    pub user: User,
    /// False when this charge was recorded before (a repeated delivery): nothing
    /// changed.
    pub new: bool,
}

/// `GET /v1/payments`: newest first.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<UserId>,
    /// The previous page's cursor: payments with smaller ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<PaymentId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

/// `POST /v1/payments/{id}/refund-result`: what Telegram answered the bot's
/// `refundStarPayment`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefundResult {
    /// `None`: the Stars went back.
    pub error: Option<String>,
}

/// `GET /v1/revenue?days=N`.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevenueQuery {
    /// The last this many days (UTC), today included; default 30.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days: Option<u32>,
}

/// Stars taken and returned: per day and plan, or in total.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Takings {
    pub payments: u64,
    pub stars: u64,
    pub refunds: u64,
    pub refunded_stars: u64,
}

impl Takings {
    /// Stars kept: taken less returned.
    pub fn net(&self) -> i64 {
        i64::try_from(self.stars).unwrap_or(i64::MAX)
            - i64::try_from(self.refunded_stars).unwrap_or(i64::MAX)
    }
}

/// One line of the revenue report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevenueLine {
    /// `YYYY-MM-DD`, UTC.
    pub day: String,
    pub plan: PlanId,
    #[serde(flatten)]
    pub takings: Takings,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_name_orders() {
        assert_eq!(Order::from_payload("vpnctl:o42"), Some(OrderId(42)));
        assert_eq!(Order::from_payload("vpnctl:oo42"), None);
        assert_eq!(Order::from_payload("other:o42"), None);
        assert_eq!(Order::from_payload(""), None);
    }

    #[test]
    fn names_fall_back_to_english() {
        let n = PlanName {
            en: "Month".into(),
            ru: None,
        };
        assert_eq!(n.get(Locale::Ru), "Month");
        let n = PlanName {
            en: "Month".into(),
            ru: Some("Месяц".into()),
        };
        assert_eq!(n.get(Locale::Ru), "Месяц");
        assert_eq!(n.get(Locale::En), "Month");
    }
}
