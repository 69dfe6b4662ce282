//! Buying access with Telegram Stars.
//!
//! - `/buy` and the "Renew" button list the active plans; a plan's button makes an
//!   order in core and sends its invoice (`XTR`, one price, no provider token). A
//!   recurring plan is sent as a subscription link instead (Telegram sells
//!   subscriptions only through `createInvoiceLink`).
//! - Telegram's pre-checkout query is answered from core's judgement of the order
//!   ([`vpnctl_core::api::billing::CheckoutRefusal`]) within [`CHECKOUT_BUDGET`],
//!   well inside Telegram's 10 seconds; a control plane that does not answer in
//!   time gets the payment refused (nothing is charged) with "try again".
//! - A successful payment is first written to the bot's durable state, then sent to
//!   the control plane, which applies it exactly once per charge id. One that could
//!   not be sent stays held and is sent again by [`retry_held`] (every
//!   [`RETRY_HELD`] and at start), so neither a control plane outage nor a bot
//!   restart loses it. The receipt comes through the outbox, once.
//! - `/paysupport` and `/terms` answer the operator's texts.

use std::time::Duration;

use teloxide::prelude::*;
use teloxide::types::{
    InlineKeyboardButton, InlineKeyboardMarkup, LabeledPrice, PreCheckoutQuery, Seconds,
};
use tracing::{error, info, warn};
use vpnctl_api::ErrorCode;
use vpnctl_core::api::billing::{Checkout, Plan, ReceivedPayment, STARS, SUBSCRIPTION_DAYS};
use vpnctl_core::{PlanId, Timestamp, User, UserState};

use super::{Ctx, HandlerResult, MAX_ROWS, api};
use crate::alerts::Alerts;
use crate::callback::Action;
use crate::i18n::Text;
use crate::notifications::{Stop, pause};
use crate::pacer::Class;
use crate::services::{Services, telegram_id};

/// How long a pre-checkout query waits for the control plane before it is
/// refused (Telegram cancels the payment after 10 seconds without an answer).
pub const CHECKOUT_BUDGET: Duration = Duration::from_secs(6);
/// How often payments held for a control plane that was away are sent again.
pub const RETRY_HELD: Duration = Duration::from_secs(30);

/// Whether something is on sale (then `/status` and reminders carry "Renew").
/// Extra: when the control plane cannot say, the message goes without it.
pub async fn on_sale(s: &Services) -> bool {
    match s.api.bot.plans(false).await {
        Ok(plans) => plans.iter().any(Plan::on_sale),
        Err(e) => {
            warn!(error = %e, "could not read the plans; no Renew button");
            false
        }
    }
}

/// The "Renew" button, which lists the plans.
pub fn renew_keyboard(l: vpnctl_core::Locale) -> InlineKeyboardMarkup {
    InlineKeyboardMarkup::new([[InlineKeyboardButton::callback(
        Text::RenewButton.render(l),
        Action::Plans.encode(),
    )]])
}

/// A plan's name in the reader's language (its id if it is gone).
fn plan_name(ctx: &Ctx, plans: &[Plan], id: PlanId) -> String {
    plans
        .iter()
        .find(|p| p.id == id)
        .map_or_else(|| format!("plan {id}"), |p| p.name.get(ctx.l).to_owned())
}

/// `/buy`.
pub async fn buy(ctx: &Ctx, msg: &Message) -> HandlerResult {
    let Some(tg) = msg.from.as_ref().and_then(telegram_id) else {
        return Ok(());
    };
    let Some(user) = api!(ctx, ctx.s.tg.typing_if_slow(ctx.chat, ctx.user(tg))) else {
        return ctx.say(Text::NoAccount).await;
    };
    offer_plans(ctx, &user).await
}

/// The active plans as buttons (for /buy and "Renew").
pub async fn offer_plans(ctx: &Ctx, user: &User) -> HandlerResult {
    if user.state == UserState::Disabled {
        return ctx.say(Text::AccountDisabled).await;
    }
    let mut plans = api!(
        ctx,
        ctx.s
            .tg
            .typing_if_slow(ctx.chat, ctx.s.api.bot.plans(false))
    );
    plans.retain(Plan::on_sale);
    if plans.is_empty() {
        return ctx.say(Text::NoPlans).await;
    }
    let rows = plans.iter().take(MAX_ROWS).map(|p| {
        [InlineKeyboardButton::callback(
            Text::PlanButton {
                name: p.name.get(ctx.l),
                days: p.days,
                stars: p.stars,
            }
            .render(ctx.l),
            Action::Buy(p.id).encode(),
        )]
    });
    ctx.offer(Text::ChoosePlan, InlineKeyboardMarkup::new(rows))
        .await
}

/// The "Renew" button: the plans, for whoever pressed it.
pub async fn renew(ctx: &Ctx, telegram_id: i64) -> HandlerResult {
    let Some(user) = api!(ctx, ctx.user(telegram_id)) else {
        return ctx.say(Text::NoAccount).await;
    };
    offer_plans(ctx, &user).await
}

/// A plan's button: an order in core, and its invoice in the chat.
pub async fn invoice(ctx: &Ctx, telegram_id: i64, plan: PlanId) -> HandlerResult {
    let Some(user) = api!(ctx, ctx.user(telegram_id)) else {
        return ctx.say(Text::NoAccount).await;
    };
    let plans = api!(ctx, ctx.s.api.bot.plans(false));
    let Some(plan) = plans.into_iter().find(|p| p.id == plan && p.on_sale()) else {
        return ctx
            .say(Text::CheckoutRefused {
                refusal: vpnctl_core::api::billing::CheckoutRefusal::PlanRetired,
            })
            .await;
    };
    let order = match ctx.s.api.bot.create_order(user.id, plan.id).await {
        Ok(order) => order,
        Err(e) if e.code() == Some(ErrorCode::Conflict) => {
            return ctx
                .say(Text::CheckoutRefused {
                    refusal: vpnctl_core::api::billing::CheckoutRefusal::PlanRetired,
                })
                .await;
        }
        Err(e) => return ctx.fail(&e).await,
    };
    let title = plan.name.get(ctx.l).to_owned();
    let description = description(ctx, &plan);
    let prices = [LabeledPrice::new(title.clone(), order.stars)];
    let bot = ctx.s.tg.raw();
    if plan.recurring {
        let link = bot
            .create_invoice_link(title, description, order.payload(), STARS, prices)
            .subscription_period(Seconds::from_seconds(SUBSCRIPTION_DAYS * 86_400))
            .await?;
        let Ok(url) = reqwest::Url::parse(&link) else {
            warn!("Telegram answered an invoice link that is not a URL");
            return ctx.say(Text::Failed).await;
        };
        let button = InlineKeyboardButton::url(
            Text::PlanButton {
                name: plan.name.get(ctx.l),
                days: plan.days,
                stars: plan.stars,
            }
            .render(ctx.l),
            url,
        );
        return ctx
            .offer(Text::ChoosePlan, InlineKeyboardMarkup::new([[button]]))
            .await;
    }
    let request = bot.send_invoice(ctx.chat, title, description, order.payload(), STARS, prices);
    ctx.s.tg.send(ctx.chat, Class::Reply, request).await?;
    info!(order = %order.id, plan = %plan.id, "invoice sent");
    Ok(())
}

fn description(ctx: &Ctx, plan: &Plan) -> String {
    Text::InvoiceDescription {
        days: plan.days,
        devices: plan.device_limit,
        quota: plan.quota,
    }
    .render(ctx.l)
}

/// Telegram's pre-checkout query: may this invoice be paid now?
pub async fn pre_checkout(q: PreCheckoutQuery, ctx: Ctx) -> HandlerResult {
    let refusal = match telegram_id(&q.from) {
        None => Some(Text::CheckoutRefused {
            refusal: vpnctl_core::api::billing::CheckoutRefusal::OtherUser,
        }),
        Some(tg) => {
            let check = Checkout {
                payload: q.invoice_payload.clone(),
                telegram_id: tg,
                currency: q.currency.clone(),
                total: q.total_amount,
            };
            match tokio::time::timeout(CHECKOUT_BUDGET, ctx.s.api.bot.checkout(&check)).await {
                Ok(Ok(answer)) => answer
                    .refusal
                    .map(|refusal| Text::CheckoutRefused { refusal }),
                Ok(Err(e)) => {
                    warn!(error = %e, "could not judge a checkout; refused");
                    Some(Text::CheckoutUnavailable)
                }
                Err(_) => {
                    warn!(
                        budget = ?CHECKOUT_BUDGET,
                        "the control plane did not judge a checkout in time; refused"
                    );
                    Some(Text::CheckoutUnavailable)
                }
            }
        }
    };
    let bot = ctx.s.tg.raw();
    let mut answer = bot.answer_pre_checkout_query(q.id.clone(), refusal.is_none());
    if let Some(text) = &refusal {
        answer = answer.error_message(text.render(ctx.l));
    }
    answer.await?;
    Ok(())
}

/// A message carrying a successful payment.
pub async fn paid(msg: Message, ctx: Ctx) -> HandlerResult {
    let (Some(p), Some(tg)) = (
        msg.successful_payment(),
        msg.from.as_ref().and_then(telegram_id),
    ) else {
        return Ok(());
    };
    let received = ReceivedPayment {
        payload: p.invoice_payload.clone(),
        telegram_id: tg,
        currency: p.currency.clone(),
        total: p.total_amount,
        telegram_charge_id: p.telegram_payment_charge_id.0.clone(),
        provider_charge_id: p.provider_payment_charge_id.clone(),
        recurring: p.is_recurring,
        subscription_until: p
            .subscription_expiration_date
            .map(|d| Timestamp(d.timestamp())),
    };
    if let Err(e) = ctx.s.state.hold_payment(&received).await {
        error!(error = %e, "could not hold a payment in the bot's state; sending it at once");
    }
    match apply(&ctx.s, &received).await {
        Applied::Done => Ok(()),
        Applied::Later => ctx.say(Text::PaymentPending).await,
        Applied::Refused(reason) => {
            alert_unapplied(&ctx.s, &received, &reason).await;
            ctx.say(Text::PaySupport).await
        }
    }
}

/// What became of one attempt to hand a payment to the control plane.
#[derive(Debug)]
pub enum Applied {
    /// Applied now or before: the receipt comes through the outbox.
    Done,
    /// The control plane is away: held, sent again later.
    Later,
    /// Refused for good (its order is unknown): a person must look.
    Refused(String),
}

/// Hands a held payment to the control plane, and forgets it once applied or
/// refused for good.
pub async fn apply(s: &Services, p: &ReceivedPayment) -> Applied {
    let outcome = match s.api.bot.record_payment(p).await {
        Ok(applied) => {
            info!(
                payment = %applied.payment.id,
                user = %applied.user.id,
                new = applied.new,
                "payment applied"
            );
            Applied::Done
        }
        Err(e) if e.is_transient() => {
            warn!(error = %e, "could not hand a payment to the control plane; held for later");
            return Applied::Later;
        }
        Err(e) => {
            error!(error = %e, "the control plane refused a payment");
            Applied::Refused(e.to_string())
        }
    };
    if let Err(e) = s.state.release_payment(&p.telegram_charge_id).await {
        // Sent again later: the control plane applies a charge once.
        warn!(error = %e, "could not forget a handled payment");
    }
    outcome
}

async fn alert_unapplied(s: &Services, p: &ReceivedPayment, reason: &str) {
    let admins: Vec<i64> = s.policy.admin_ids.iter().copied().collect();
    let alerts = Alerts::new(s.tg.clone(), &admins);
    let text = Text::PaymentNotApplied {
        user: p.telegram_id,
        stars: p.total,
        charge: &p.telegram_charge_id,
        reason,
    };
    let sent = alerts
        .send(
            &text.render(vpnctl_core::Locale::En),
            vpnctl_core::Locale::En,
        )
        .await;
    if sent == 0 {
        error!(
            charge = %p.telegram_charge_id,
            "a payment could not be applied and no admin chat was told"
        );
    }
}

/// Sends the held payments again, at start and every [`RETRY_HELD`], until `stop`.
pub async fn retry_held(s: Services, stop: Stop) {
    loop {
        match s.state.held_payments().await {
            Ok(held) => {
                for p in held {
                    if let Applied::Refused(reason) = apply(&s, &p).await {
                        alert_unapplied(&s, &p, &reason).await;
                    }
                }
            }
            Err(e) => warn!(error = %e, "could not read held payments"),
        }
        if pause(&stop, RETRY_HELD).await {
            return;
        }
    }
}

/// `/subscription`: each Stars subscription with a button to cancel or resume its
/// renewal.
pub async fn subscription(ctx: &Ctx, msg: &Message) -> HandlerResult {
    let Some(tg) = msg.from.as_ref().and_then(telegram_id) else {
        return Ok(());
    };
    let Some(user) = api!(ctx, ctx.s.tg.typing_if_slow(ctx.chat, ctx.user(tg))) else {
        return ctx.say(Text::NoAccount).await;
    };
    let subs = api!(ctx, ctx.s.api.bot.subscriptions(user.id));
    let now = Timestamp::now();
    let live: Vec<_> = subs
        .into_iter()
        .filter(|s| s.until.is_none_or(|u| u > now))
        .collect();
    if live.is_empty() {
        return ctx.say(Text::NoSubscription).await;
    }
    let plans = api!(ctx, ctx.s.api.bot.plans(true));
    for sub in live {
        let name = plan_name(ctx, &plans, sub.plan);
        let (label, action) = if sub.cancelled {
            (Text::ResumeRenewalButton, false)
        } else {
            (Text::CancelRenewalButton, true)
        };
        let button = InlineKeyboardButton::callback(
            label.render(ctx.l),
            Action::Renewal {
                order: sub.order,
                cancel: action,
            }
            .encode(),
        );
        ctx.offer(
            Text::SubscriptionInfo {
                plan: &name,
                stars: sub.stars,
                until: sub.until,
                cancelled: sub.cancelled,
            },
            InlineKeyboardMarkup::new([[button]]),
        )
        .await?;
    }
    Ok(())
}

/// A renewal button: Telegram first (`editUserStarSubscription`), then core.
pub async fn renewal(
    ctx: &Ctx,
    telegram_id: i64,
    message: teloxide::types::MessageId,
    order: vpnctl_core::OrderId,
    cancel: bool,
) -> HandlerResult {
    let Some(user) = api!(ctx, ctx.user(telegram_id)) else {
        return ctx.say(Text::NoAccount).await;
    };
    let subs = api!(ctx, ctx.s.api.bot.subscriptions(user.id));
    let Some(sub) = subs.into_iter().find(|s| s.order == order) else {
        return ctx.say(Text::ButtonInvalid).await;
    };
    let Ok(payer) = u64::try_from(sub.telegram_id) else {
        return ctx.say(Text::ButtonInvalid).await;
    };
    if let Err(e) = ctx
        .s
        .tg
        .raw()
        .edit_user_star_subscription(
            teloxide::types::UserId(payer),
            teloxide::types::TelegramTransactionId(sub.telegram_charge_id.clone()),
            cancel,
        )
        .await
    {
        warn!(error = %e, %order, "Telegram did not change a subscription");
        return ctx.say(Text::TryAgain).await;
    }
    let sub = match ctx.s.api.bot.set_renewal(user.id, order, cancel).await {
        Ok(sub) => sub,
        Err(e) => {
            // Telegram has it; core learns it from the next press or payment.
            warn!(error = %e, %order, "could not record a subscription change");
            return ctx.say(Text::TryAgain).await;
        }
    };
    let plans = api!(ctx, ctx.s.api.bot.plans(true));
    let name = plan_name(ctx, &plans, sub.plan);
    ctx.edit(
        message,
        Text::RenewalChanged {
            plan: &name,
            until: sub.until,
            cancelled: sub.cancelled,
        },
    )
    .await;
    Ok(())
}

/// `/paysupport`.
pub async fn pay_support(ctx: &Ctx) -> HandlerResult {
    match ctx.s.policy.pay_support_text.clone() {
        Some(text) => ctx.say(Text::Operator { text: &text }).await,
        None => ctx.say(Text::PaySupport).await,
    }
}

/// `/terms`.
pub async fn terms(ctx: &Ctx) -> HandlerResult {
    match ctx.s.policy.terms_text.clone() {
        Some(text) => ctx.say(Text::Operator { text: &text }).await,
        None => ctx.say(Text::Terms).await,
    }
}
