//! Buying access with Telegram Stars, end to end: the real bot between a fake Bot
//! API (invoices, pre-checkout queries, successful payments, refunds) and a real
//! vpnctld over a real redb store.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::{ApiProxy, Harness, button};
use vpnctl_api::billing::{CreatePlan, PaymentQuery, Plan, PlanName, Refund};
use vpnctl_core::{Timestamp, User};
use vpnctl_testbed::telegram::{Call, Payment};

const WAIT: Duration = Duration::from_secs(10);
const ADMIN: i64 = 9_000_001;

async fn month(h: &Harness, stars: u32) -> Plan {
    h.admin
        .create_plan(&CreatePlan {
            trial: false,
            name: PlanName {
                en: "Month".into(),
                ru: Some("Месяц".into()),
            },
            days: 30,
            stars,
            device_limit: 3,
            quota: None,
            recurring: false,
        })
        .await
        .unwrap()
}

async fn user_of(h: &Harness, tg: i64) -> User {
    h.admin.user_by_telegram(tg).await.unwrap().unwrap()
}

/// `/buy` → the plan's button → the invoice; returns the invoice call.
async fn invoice(h: &Harness, user: i64, plan: &Plan) -> Call {
    let (keyboard, data) = h.keyboard(user, "/buy", &format!("b:{}", plan.id)).await;
    assert!(
        keyboard.text().contains("Telegram Stars"),
        "{}",
        keyboard.text()
    );
    let (label, _) = keyboard
        .buttons()
        .into_iter()
        .find(|(_, d)| *d == data)
        .unwrap();
    assert!(
        label.contains("Month") && label.contains(&plan.stars.to_string()),
        "{label}"
    );
    let mark = h.tg.mark();
    h.tg.press(user, user, keyboard.message_id.unwrap(), &data);
    h.tg.reply(mark, user, "sendInvoice").await
}

fn payload(invoice: &Call) -> String {
    invoice.str_param("payload").unwrap()
}

/// Telegram's pre-checkout query; returns the bot's answer and how long it took.
async fn pre_checkout(h: &Harness, user: i64, payload: &str, total: u32) -> (Call, Duration) {
    let mark = h.tg.mark();
    let started = Instant::now();
    let id = h.tg.pre_checkout(user, payload, "XTR", total);
    let answer =
        h.tg.pre_checkout_answer(mark, &id, Duration::from_secs(15))
            .await;
    (answer, started.elapsed())
}

/// The next text to `chat` after `mark` that contains `needle`.
async fn text_to(h: &Harness, mark: usize, chat: i64, needle: &str) -> Call {
    h.tg.wait_after(mark, WAIT, |c| {
        c.chat_id == Some(chat) && c.method == "sendmessage" && c.text().contains(needle)
    })
    .await
}

async fn payments(h: &Harness) -> Vec<vpnctl_api::billing::Payment> {
    h.admin
        .payments_page(&PaymentQuery::default())
        .await
        .unwrap()
        .items
}

/// Polls until `f` holds (a user's access, a refund's state).
async fn eventually<F: std::future::Future<Output = bool>>(what: &str, mut f: impl FnMut() -> F) {
    let deadline = Instant::now() + WAIT;
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lapsed_user_buys_access_back_once_whatever_telegram_repeats() {
    let mut h = Harness::start_with(|c| c.admin_ids = vec![ADMIN]).await;
    let user = 3001;
    h.signed_up(user, 1).await;
    let _ = h.get_config(user, "n:").await;
    let key = h.desired_keys().await[0];
    let plan = month(&h, 100).await;
    // Access ended yesterday: the device left the node.
    let u = user_of(&h, user).await;
    h.admin
        .set_access(u.id, Some(Timestamp::now().plus_days(-1)))
        .await
        .unwrap();
    assert!(h.desired_keys().await.is_empty());

    // /status offers to renew.
    let status = h.ask(user, "/status").await;
    let renew = button(&status, "b");
    assert_eq!(renew, "b");

    let sent = invoice(&h, user, &plan).await;
    assert_eq!(sent.str_param("currency").as_deref(), Some("XTR"));
    let prices: Value = match sent.params.get("prices") {
        Some(Value::String(s)) => serde_json::from_str(s).unwrap(),
        Some(v) => v.clone(),
        None => panic!("no prices"),
    };
    assert_eq!(prices[0]["amount"], 100);
    assert_eq!(prices.as_array().unwrap().len(), 1, "one price");
    assert!(
        sent.str_param("provider_token")
            .is_none_or(|t| t.is_empty()),
        "Stars take no provider token"
    );
    let first = payload(&sent);

    let (answer, took) = pre_checkout(&h, user, &first, 100).await;
    assert_eq!(answer.bool_param("ok"), Some(true), "{:?}", answer.params);
    assert!(took < Duration::from_secs(10), "answered in {took:?}");

    let mark = h.tg.mark();
    let update =
        h.tg.successful_payment(user, &Payment::stars(&first, 100, "charge-1"));
    let receipt = text_to(&h, mark, user, "Payment received").await;
    assert!(receipt.text().contains("100"), "{}", receipt.text());
    let notice = text_to(&h, mark, ADMIN, "paid 100").await;
    assert!(notice.text().contains("Month"), "{}", notice.text());
    let after = user_of(&h, user).await;
    let until = after.until.unwrap();
    assert!(
        until > Timestamp::now().plus_days(29),
        "from now: {until:?}"
    );
    assert!(!after.lapsed);
    assert_eq!(after.device_limit, 3);
    assert_eq!(h.desired_keys().await, vec![key], "the device is back");

    // Telegram delivers the same payment again: nothing changes, no second receipt.
    let mark = h.tg.mark();
    h.tg.redeliver(&update);
    let probe = h.ask(user, "/help").await;
    assert!(probe.text().contains("/buy"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(payments(&h).await.len(), 1);
    assert_eq!(user_of(&h, user).await.until, Some(until), "extended once");
    assert!(
        !h.tg.calls()[mark..]
            .iter()
            .any(|c| c.text().contains("Payment received")),
        "one receipt"
    );

    // A second purchase; the bot restarts before Telegram hears it was handled, so
    // the new bot gets the payment again.
    let second = payload(&invoice(&h, user, &plan).await);
    let (answer, _) = pre_checkout(&h, user, &second, 100).await;
    assert_eq!(answer.bool_param("ok"), Some(true));
    let mark = h.tg.mark();
    let update =
        h.tg.successful_payment(user, &Payment::stars(&second, 100, "charge-2"));
    text_to(&h, mark, user, "Payment received").await;
    h.stop_bot().await;
    h.tg.redeliver(&update);
    h.start_bot().await;
    let probe = h.ask(user, "/help").await;
    assert!(probe.text().contains("/buy"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(payments(&h).await.len(), 2);
    assert_eq!(
        user_of(&h, user).await.until,
        Some(until.plus_days(30)),
        "the second purchase counted once"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkout_refuses_forged_and_stale_invoices_and_answers_in_time() {
    let proxy = ApiProxy::start().await;
    let h = Harness::start_with(|c| proxy.insert(c)).await;
    let (ann, bob) = (3101, 3102);
    h.signed_up(ann, 1).await;
    h.signed_up(bob, 1).await;
    let plan = month(&h, 100).await;
    let p = payload(&invoice(&h, ann, &plan).await);

    let (answer, _) = pre_checkout(&h, bob, &p, 100).await;
    assert_eq!(
        answer.bool_param("ok"),
        Some(false),
        "another user's payload"
    );
    assert!(
        answer
            .str_param("error_message")
            .unwrap()
            .contains("someone else")
    );
    let (answer, _) = pre_checkout(&h, ann, &p, 1).await;
    assert_eq!(answer.bool_param("ok"), Some(false), "a forged amount");
    assert!(answer.str_param("error_message").unwrap().contains("price"));
    let (answer, _) = pre_checkout(&h, ann, "vpnctl:o9999", 100).await;
    assert_eq!(answer.bool_param("ok"), Some(false));

    // The control plane answers too slowly: refused inside Telegram's 10 s.
    proxy.delay(Duration::from_secs(30));
    let (answer, took) = pre_checkout(&h, ann, &p, 100).await;
    assert_eq!(answer.bool_param("ok"), Some(false));
    assert!(
        answer
            .str_param("error_message")
            .unwrap()
            .contains("try again")
    );
    assert!(took < Duration::from_secs(9), "answered in {took:?}");
    proxy.delay(Duration::ZERO);

    // Retired since the invoice was sent.
    h.admin.retire_plan(plan.id).await.unwrap();
    let (answer, _) = pre_checkout(&h, ann, &p, 100).await;
    assert_eq!(answer.bool_param("ok"), Some(false));
    assert!(
        answer
            .str_param("error_message")
            .unwrap()
            .contains("no longer sold")
    );
    let reply = h.ask(ann, "/buy").await;
    assert!(
        reply.text().contains("Nothing is on sale"),
        "{}",
        reply.text()
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_made_while_the_control_plane_is_away_is_applied_later() {
    let proxy = ApiProxy::start().await;
    let mut h = Harness::start_with(|c| proxy.insert(c)).await;
    let user = 3201;
    h.signed_up(user, 1).await;
    let plan = month(&h, 50).await;
    let p = payload(&invoice(&h, user, &plan).await);
    let (answer, _) = pre_checkout(&h, user, &p, 50).await;
    assert_eq!(answer.bool_param("ok"), Some(true));
    let before = user_of(&h, user).await.until.unwrap();

    proxy.down(true);
    let mark = h.tg.mark();
    h.tg.successful_payment(user, &Payment::stars(&p, 50, "charge-away"));
    text_to(&h, mark, user, "will be applied").await;
    assert!(payments(&h).await.is_empty());
    // The bot restarts while the payment is held; the control plane is back.
    h.stop_bot().await;
    proxy.down(false);
    let mark = h.tg.mark();
    h.start_bot().await;
    text_to(&h, mark, user, "Payment received").await;
    assert_eq!(payments(&h).await.len(), 1);
    assert_eq!(user_of(&h, user).await.until, Some(before.plus_days(30)));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_refund_goes_through_telegram_and_takes_the_days_back() {
    let h = Harness::start_with(|c| c.admin_ids = vec![ADMIN]).await;
    let user = 3301;
    h.signed_up(user, 1).await;
    let plan = month(&h, 75).await;
    let before = user_of(&h, user).await.until.unwrap();
    let p = payload(&invoice(&h, user, &plan).await);
    let (answer, _) = pre_checkout(&h, user, &p, 75).await;
    assert_eq!(answer.bool_param("ok"), Some(true));
    let mark = h.tg.mark();
    h.tg.successful_payment(user, &Payment::stars(&p, 75, "charge-r"));
    text_to(&h, mark, user, "Payment received").await;
    let payment = payments(&h).await.remove(0);
    assert_eq!(user_of(&h, user).await.until, Some(before.plus_days(30)));

    let mark = h.tg.mark();
    h.admin.request_refund(payment.id).await.unwrap();
    text_to(&h, mark, user, "refunded").await;
    text_to(&h, mark, ADMIN, "refunded").await;
    assert!(h.tg.refunded("charge-r"), "refundStarPayment was called");
    let refunded = h.admin.payment(payment.id).await.unwrap();
    assert!(
        matches!(refunded.refund, Some(Refund::Done { .. })),
        "{refunded:?}"
    );
    assert_eq!(user_of(&h, user).await.until, Some(before));

    // Asked again: refused, Telegram is not asked twice.
    let e = h.admin.request_refund(payment.id).await.unwrap_err();
    assert_eq!(e.status(), Some(409));
    let refunds =
        h.tg.calls()
            .iter()
            .filter(|c| c.method == "refundstarpayment")
            .count();
    assert_eq!(refunds, 1);
    let revenue = h.admin.revenue(Some(1)).await.unwrap();
    assert_eq!(revenue.len(), 1);
    assert_eq!(revenue[0].takings.stars, 75);
    assert_eq!(revenue[0].takings.refunded_stars, 75);
    let metrics = h.admin.metrics().await.unwrap();
    assert!(
        metrics.contains(&format!(
            "vpnctl_revenue_stars_total{{plan=\"{}\"}} 75",
            plan.id
        )),
        "{metrics}"
    );
    eventually("nothing left unacknowledged", || async {
        h.unacknowledged().is_empty()
    })
    .await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paysupport_and_terms_answer_the_operators_texts() {
    let h = Harness::start_with(|c| {
        c.pay_support_text = Some("Write to @acme_support, we answer within a day.".into());
    })
    .await;
    let reply = h.ask(3401, "/paysupport").await;
    assert_eq!(
        reply.text(),
        "Write to @acme_support, we answer within a day."
    );
    let reply = h.ask(3401, "/terms").await;
    assert!(reply.text().contains("days of access"), "{}", reply.text());
    // People without an account cannot buy.
    let reply = h.ask(3401, "/buy").await;
    assert!(!reply.text().contains("Stars"), "{}", reply.text());
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reminders_offer_to_renew_when_plans_are_on_sale() {
    let h = Harness::start().await;
    let user = 3501;
    h.signed_up(user, 1).await;
    let plan = month(&h, 90).await;
    // A trial is granted by invites, never offered.
    h.admin
        .create_plan(&CreatePlan {
            name: PlanName {
                en: "Trial".into(),
                ru: None,
            },
            days: 7,
            stars: 0,
            device_limit: 1,
            quota: None,
            recurring: false,
            trial: true,
        })
        .await
        .unwrap();
    let u = user_of(&h, user).await;
    let mark = h.tg.mark();
    h.admin
        .set_access(u.id, Some(Timestamp::now().plus_days(2)))
        .await
        .unwrap();
    let reminder = text_to(&h, mark, user, "Renew it below").await;
    let renew = button(&reminder, "b");
    // The button lists the plans; a plan's button sends its invoice.
    let mark = h.tg.mark();
    h.tg.press(user, user, reminder.message_id.unwrap(), &renew);
    let plans = text_to(&h, mark, user, "Choose a plan").await;
    assert_eq!(
        plans.buttons().len(),
        1,
        "only what is on sale: {:?}",
        plans.buttons()
    );
    let data = button(&plans, &format!("b:{}", plan.id));
    let mark = h.tg.mark();
    h.tg.press(user, user, plans.message_id.unwrap(), &data);
    let invoice = h.tg.reply(mark, user, "sendInvoice").await;
    assert_eq!(invoice.str_param("title").as_deref(), Some("Month"));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_monthly_subscription_renews_itself_until_cancelled() {
    let h = Harness::start().await;
    let user = 3601;
    h.signed_up(user, 1).await;
    let plan = h
        .admin
        .create_plan(&CreatePlan {
            trial: false,
            name: PlanName {
                en: "Monthly".into(),
                ru: None,
            },
            days: 30,
            stars: 80,
            device_limit: 2,
            quota: None,
            recurring: true,
        })
        .await
        .unwrap();
    let before = user_of(&h, user).await.until.unwrap();
    // A recurring plan is sold through a subscription link, not an invoice.
    let (keyboard, data) = h.keyboard(user, "/buy", &format!("b:{}", plan.id)).await;
    let mark = h.tg.mark();
    h.tg.press(user, user, keyboard.message_id.unwrap(), &data);
    h.tg.wait_after(mark, WAIT, |c| c.method == "createinvoicelink")
        .await;
    let offer = text_to(&h, mark, user, "Choose a plan").await;
    assert!(
        offer
            .params
            .to_string()
            .contains("https://t.me/$fake_invoice"),
        "{:?}",
        offer.params
    );
    let link = h.tg.invoices().pop().unwrap();
    assert!(link.link);
    assert_eq!(link.subscription_period, Some(30 * 86_400));
    assert_eq!((link.currency.as_str(), link.total), ("XTR", 80));

    // The first payment, then Telegram's renewal a month later.
    let period_end = Timestamp::now().plus_days(30).seconds();
    let mut first = Payment::stars(&link.payload, 80, "sub-charge-1");
    first.subscription_expiration = Some(period_end);
    first.first_recurring = true;
    let mark = h.tg.mark();
    h.tg.successful_payment(user, &first);
    text_to(&h, mark, user, "Payment received").await;
    let mut renewal = Payment::stars(&link.payload, 80, "sub-charge-2");
    renewal.subscription_expiration = Some(period_end + 30 * 86_400);
    renewal.recurring = true;
    let mark = h.tg.mark();
    h.tg.successful_payment(user, &renewal);
    text_to(&h, mark, user, "Payment received").await;
    assert_eq!(
        user_of(&h, user).await.until,
        Some(before.plus_days(60)),
        "each payment adds its 30 days"
    );
    let all = payments(&h).await;
    assert_eq!(all.len(), 2);
    assert!(
        all[0].recurring && !all[1].recurring,
        "newest first: {all:?}"
    );

    // /subscription shows it; cancelling goes to Telegram, then to core.
    let shown = h.ask(user, "/subscription").await;
    assert!(
        shown.text().contains("Monthly, 80 ⭐ a month: renews on"),
        "{}",
        shown.text()
    );
    let cancel = button(&shown, "sc:");
    let mark = h.tg.mark();
    h.tg.press(user, user, shown.message_id.unwrap(), &cancel);
    let edited =
        h.tg.wait_after(mark, WAIT, |c| {
            c.method == "editmessagetext" && c.text().contains("renewal cancelled")
        })
        .await;
    assert!(edited.text().contains("nothing more will be charged"));
    assert_eq!(h.tg.subscription_canceled("sub-charge-1"), Some(true));
    let subs = h
        .admin
        .subscriptions(user_of(&h, user).await.id)
        .await
        .unwrap();
    assert!(subs[0].cancelled && subs[0].renewals == 1, "{subs:?}");
    let shown = h.ask(user, "/subscription").await;
    assert!(
        shown.text().contains("cancelled, paid until"),
        "{}",
        shown.text()
    );
    button(&shown, "sr:");
    h.stop().await;
}
