//! Selling access on a real redb file with a controllable clock: plans, orders,
//! checkout refusals, payments applied exactly once, lapsed and suspended users
//! restored, refunds, revenue, and all of it surviving a reopen.

mod support;

use std::sync::Arc;

use support::{T0, fixture, node};
use vpnctl_core::api::billing::{
    Checkout, CheckoutRefusal, CreatePlan, ORDER_TTL_SECS, Order, PaymentQuery, Plan, PlanName,
    ReceivedPayment, Refund, STARS,
};
use vpnctl_core::wire::{NodeReport, PeerStats, SystemStats};
use vpnctl_core::{
    Consumer, ErrorCode, EventKind, IssuePeer, ManualClock, Message, NewUser, Node, NodeId, Policy,
    PublicKey, Quota, QuotaPeriod, Recipient, Timestamp, User, UserPatch, Vault, Vpnctl,
};

fn plan(vpn: &Vpnctl, name: &str, days: u32, stars: u32) -> Plan {
    vpn.create_plan(CreatePlan {
        trial: false,
        name: PlanName {
            en: name.into(),
            ru: Some(format!("{name} (ru)")),
        },
        days,
        stars,
        device_limit: 5,
        quota: None,
        recurring: false,
    })
    .unwrap()
}

fn buyer(vpn: &Vpnctl, name: &str, tg: i64, until: Option<Timestamp>) -> User {
    vpn.create_user(NewUser {
        name: name.into(),
        telegram_id: Some(tg),
        until,
        device_limit: Some(1),
        ..Default::default()
    })
    .unwrap()
}

fn checkout(order: &Order, tg: i64, total: u32) -> Checkout {
    Checkout {
        payload: order.payload(),
        telegram_id: tg,
        currency: STARS.into(),
        total,
    }
}

fn paid(order: &Order, tg: i64, charge: &str) -> ReceivedPayment {
    ReceivedPayment {
        payload: order.payload(),
        telegram_id: tg,
        currency: STARS.into(),
        total: order.stars,
        telegram_charge_id: charge.into(),
        provider_charge_id: String::new(),
        recurring: false,
        subscription_until: None,
    }
}

fn desired_keys(vpn: &Vpnctl, node: NodeId) -> Vec<PublicKey> {
    vpn.node_desired(node)
        .unwrap()
        .peers
        .into_iter()
        .map(|p| p.public_key)
        .collect()
}

fn issue(vpn: &Vpnctl, user: &User, node: &Node) -> PublicKey {
    vpn.issue_peer(IssuePeer {
        user: user.id,
        node: node.id,
        device: "phone".into(),
        public_key: None,
    })
    .unwrap()
    .peer
    .public_key
}

fn report(vpn: &Vpnctl, node: NodeId, key: PublicKey, bytes: u64) {
    let at = vpn.now();
    vpn.record_report(
        node,
        &NodeReport {
            applied_revision: vpn.node_revision(node).unwrap(),
            interface_up: true,
            listen_port: Some(51820),
            public_key: None,
            peers: vec![PeerStats {
                public_key: key,
                endpoint: None,
                last_handshake: Some(at),
                rx_bytes: bytes / 2,
                tx_bytes: bytes / 2,
            }],
            system: SystemStats::default(),
            strays_removed: Vec::new(),
            errors: Vec::new(),
            at,
            health_port: None,
        },
    )
    .unwrap();
}

fn drain(vpn: &Vpnctl) -> Vec<(Recipient, Message)> {
    let out = vpn.notifications(Consumer::Bot, 1000).unwrap();
    if let Some(last) = out.last() {
        vpn.ack_notifications(Consumer::Bot, last.id).unwrap();
    }
    out.into_iter().map(|n| (n.recipient, n.message)).collect()
}

#[test]
fn a_lapsed_user_who_pays_is_back_at_once_and_a_repeated_charge_changes_nothing() {
    let f = fixture();
    let n = node(&f.vpn, "n1", "10.8.0.0/24");
    let month = plan(&f.vpn, "Month", 30, 100);
    let u = buyer(&f.vpn, "ann", 501, Some(T0.plus_seconds(60)));
    let key = issue(&f.vpn, &u, &n);
    f.clock.advance(120);
    f.vpn.sweep().unwrap();
    assert!(
        desired_keys(&f.vpn, n.id).is_empty(),
        "lapsed: off the node"
    );
    drain(&f.vpn);

    let order = f.vpn.create_order(u.id, month.id).unwrap();
    assert_eq!((order.stars, order.days, order.device_limit), (100, 30, 5));
    assert_eq!(
        f.vpn.checkout(&checkout(&order, 501, 100)).unwrap().refusal,
        None
    );

    let applied = f.vpn.record_payment(&paid(&order, 501, "ch-1")).unwrap();
    assert!(applied.new);
    let now = f.vpn.now();
    assert_eq!(
        applied.user.until,
        Some(now.plus_days(30)),
        "from now: it had ended"
    );
    assert!(!applied.user.lapsed);
    assert_eq!(applied.user.device_limit, 5);
    assert_eq!(
        desired_keys(&f.vpn, n.id),
        vec![key],
        "back on the node at once"
    );
    let told = drain(&f.vpn);
    let receipts: Vec<_> = told
        .iter()
        .filter(|(_, m)| matches!(m, Message::PaymentReceived { .. }))
        .collect();
    assert_eq!(receipts.len(), 2, "a receipt and an admin notice: {told:?}");
    assert!(matches!(
        receipts[0].0,
        Recipient::User {
            telegram_id: 501,
            ..
        }
    ));
    assert!(matches!(receipts[1].0, Recipient::Admins));

    // Telegram (or a restarted bot) delivers the same charge again.
    f.clock.advance(3600);
    let again = f.vpn.record_payment(&paid(&order, 501, "ch-1")).unwrap();
    assert!(!again.new);
    assert_eq!(again.payment.id, applied.payment.id);
    assert_eq!(again.user.until, applied.user.until, "extended once");
    assert!(drain(&f.vpn).is_empty(), "no second receipt");
    let page = f.vpn.payments(PaymentQuery::default()).unwrap();
    assert_eq!(page.items.len(), 1);

    // A paid order cannot be checked out again.
    assert_eq!(
        f.vpn.checkout(&checkout(&order, 501, 100)).unwrap().refusal,
        Some(CheckoutRefusal::AlreadyPaid)
    );
}

#[test]
fn renewal_extends_from_the_current_end_and_a_quota_suspension_ends() {
    let f = fixture();
    let n = node(&f.vpn, "n1", "10.8.0.0/24");
    let quota = Quota {
        bytes: 1000,
        period: QuotaPeriod::Monthly,
    };
    let plan = f
        .vpn
        .create_plan(CreatePlan {
            trial: false,
            name: PlanName {
                en: "Light".into(),
                ru: None,
            },
            days: 30,
            stars: 50,
            device_limit: 2,
            quota: Some(quota),
            recurring: false,
        })
        .unwrap();
    let end = T0.plus_days(10);
    let u = buyer(&f.vpn, "bob", 502, Some(end));
    let key = issue(&f.vpn, &u, &n);
    // Used up: a small quota and traffic beyond it.
    f.vpn
        .update_user(
            u.id,
            UserPatch {
                quota: Some(Some(Quota { bytes: 10, ..quota })),
                ..Default::default()
            },
        )
        .unwrap();
    report(&f.vpn, n.id, key, 0);
    report(&f.vpn, n.id, key, 1200);
    assert!(f.vpn.user(u.id).unwrap().suspended, "over its quota");
    assert!(desired_keys(&f.vpn, n.id).is_empty());

    let order = f.vpn.create_order(u.id, plan.id).unwrap();
    let applied = f.vpn.record_payment(&paid(&order, 502, "ch-2")).unwrap();
    assert_eq!(
        applied.user.until,
        Some(end.plus_days(30)),
        "from the current end"
    );
    assert!(!applied.user.suspended, "a fresh allowance");
    assert_eq!(applied.user.quota, Some(quota));
    assert_eq!(desired_keys(&f.vpn, n.id), vec![key]);
    assert_eq!(applied.payment.until_before, Some(end));
}

#[test]
fn checkout_refuses_what_should_not_be_paid() {
    let f = fixture();
    let month = plan(&f.vpn, "Month", 30, 100);
    let year = plan(&f.vpn, "Year", 365, 900);
    let ann = buyer(&f.vpn, "ann", 601, Some(T0));
    let _bob = buyer(&f.vpn, "bob", 602, Some(T0));
    let refusal = |c: Checkout| f.vpn.checkout(&c).unwrap().refusal;

    let order = f.vpn.create_order(ann.id, month.id).unwrap();
    assert_eq!(refusal(checkout(&order, 601, 100)), None);
    assert_eq!(
        refusal(checkout(&order, 602, 100)),
        Some(CheckoutRefusal::OtherUser),
        "another user's payload"
    );
    assert_eq!(
        refusal(checkout(&order, 601, 99)),
        Some(CheckoutRefusal::PriceChanged),
        "an amount that is not the invoice's"
    );
    let mut xusd = checkout(&order, 601, 100);
    xusd.currency = "USD".into();
    assert_eq!(refusal(xusd), Some(CheckoutRefusal::WrongCurrency));
    let mut bogus = checkout(&order, 601, 100);
    bogus.payload = "vpnctl:o999".into();
    assert_eq!(refusal(bogus), Some(CheckoutRefusal::UnknownOrder));
    bogus = checkout(&order, 601, 100);
    bogus.payload = "something else".into();
    assert_eq!(refusal(bogus), Some(CheckoutRefusal::UnknownOrder));

    // Expired: an hour later.
    f.clock.advance(ORDER_TTL_SECS + 1);
    assert_eq!(
        refusal(checkout(&order, 601, 100)),
        Some(CheckoutRefusal::Expired)
    );

    // Retired after the invoice was sent.
    let order = f.vpn.create_order(ann.id, year.id).unwrap();
    f.vpn.retire_plan(year.id).unwrap();
    assert_eq!(
        refusal(checkout(&order, 601, 900)),
        Some(CheckoutRefusal::PlanRetired)
    );
    let e = f.vpn.create_order(ann.id, year.id).unwrap_err();
    assert_eq!(e.code(), ErrorCode::Conflict, "no new orders for it: {e}");
    assert_eq!(f.vpn.plans(false).unwrap(), vec![month.clone()]);
    assert_eq!(f.vpn.plans(true).unwrap().len(), 2);

    // A disabled user can neither order nor pay an open order.
    let order = f.vpn.create_order(ann.id, month.id).unwrap();
    f.vpn
        .set_user_state(ann.id, vpnctl_core::UserState::Disabled)
        .unwrap();
    assert_eq!(
        refusal(checkout(&order, 601, 100)),
        Some(CheckoutRefusal::UserDisabled)
    );
    assert_eq!(
        f.vpn.create_order(ann.id, month.id).unwrap_err().code(),
        ErrorCode::UserDisabled
    );
}

#[test]
fn plans_are_validated() {
    let f = fixture();
    let good = || CreatePlan {
        trial: false,
        name: PlanName {
            en: "Month".into(),
            ru: None,
        },
        days: 30,
        stars: 100,
        device_limit: 3,
        quota: None,
        recurring: false,
    };
    for (bad, field) in [
        (CreatePlan { days: 0, ..good() }, "days"),
        (CreatePlan { stars: 0, ..good() }, "stars"),
        (
            CreatePlan {
                stars: 10_001,
                ..good()
            },
            "stars",
        ),
        (
            CreatePlan {
                device_limit: 0,
                ..good()
            },
            "device limit",
        ),
        (
            CreatePlan {
                recurring: true,
                days: 31,
                ..good()
            },
            "days",
        ),
        (
            CreatePlan {
                name: PlanName {
                    en: " ".into(),
                    ru: None,
                },
                ..good()
            },
            "plan name",
        ),
        (
            CreatePlan {
                name: PlanName {
                    en: "x".repeat(33),
                    ru: None,
                },
                ..good()
            },
            "plan name",
        ),
    ] {
        let e = f.vpn.create_plan(bad).unwrap_err();
        assert_eq!(e.code(), ErrorCode::Invalid, "{e}");
        assert!(e.to_string().contains(field), "{e} names {field}");
    }
    f.vpn.create_plan(good()).unwrap();
    let e = f.vpn.create_plan(good()).unwrap_err();
    assert_eq!(
        e.code(),
        ErrorCode::Conflict,
        "two active plans of one name: {e}"
    );
    assert_eq!(f.vpn.plans(true).unwrap().len(), 1, "nothing else written");
}

#[test]
fn a_refund_confirmed_by_telegram_takes_the_days_back_once() {
    let f = fixture();
    let n = node(&f.vpn, "n1", "10.8.0.0/24");
    let month = plan(&f.vpn, "Month", 30, 100);
    let u = buyer(&f.vpn, "ann", 701, Some(T0.plus_days(5)));
    let key = issue(&f.vpn, &u, &n);
    let order = f.vpn.create_order(u.id, month.id).unwrap();
    let p = f
        .vpn
        .record_payment(&paid(&order, 701, "ch-r"))
        .unwrap()
        .payment;
    drain(&f.vpn);

    // Not asked for: a result is refused.
    assert_eq!(
        f.vpn.finish_refund(p.id, None).unwrap_err().code(),
        ErrorCode::Conflict
    );
    let asked = f.vpn.request_refund(p.id).unwrap();
    assert!(matches!(asked.refund, Some(Refund::Requested { .. })));
    let told = drain(&f.vpn);
    assert!(
        told.iter().any(|(to, m)| matches!(to, Recipient::Admins)
            && matches!(m, Message::RefundRequested { telegram_id: 701, telegram_charge_id, stars: 100, .. } if telegram_charge_id == "ch-r")),
        "the bot is asked to refund: {told:?}"
    );
    // Asking again while it runs changes nothing.
    assert_eq!(f.vpn.request_refund(p.id).unwrap(), asked);
    assert!(drain(&f.vpn).is_empty());

    // Telegram refused: recorded, access unchanged, may be asked again.
    let failed = f
        .vpn
        .finish_refund(p.id, Some("Bad Request: BALANCE_TOO_LOW"))
        .unwrap();
    assert!(
        matches!(failed.refund, Some(Refund::Failed { ref reason, .. }) if reason.contains("BALANCE"))
    );
    assert_eq!(f.vpn.user(u.id).unwrap().until, Some(T0.plus_days(35)));
    f.vpn.request_refund(p.id).unwrap();

    let done = f.vpn.finish_refund(p.id, None).unwrap();
    assert!(
        matches!(done.refund, Some(Refund::Done { until: Some(t), .. }) if t == T0.plus_days(5)),
        "{done:?}"
    );
    assert_eq!(f.vpn.user(u.id).unwrap().until, Some(T0.plus_days(5)));
    assert_eq!(desired_keys(&f.vpn, n.id), vec![key], "5 days are left");
    // A repeated report changes nothing; a new request is refused.
    assert_eq!(f.vpn.finish_refund(p.id, None).unwrap(), done);
    assert_eq!(
        f.vpn.request_refund(p.id).unwrap_err().code(),
        ErrorCode::Conflict
    );
    let totals = f.vpn.revenue_totals().unwrap();
    assert_eq!(totals.len(), 1);
    let t = totals[0].1;
    assert_eq!(
        (t.payments, t.stars, t.refunds, t.refunded_stars),
        (1, 100, 1, 100)
    );
    assert_eq!(t.net(), 0);
    let events: Vec<_> = f
        .vpn
        .events_after(0, 1000)
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .filter(|k| {
            matches!(
                k,
                EventKind::PaymentReceived { .. }
                    | EventKind::RefundRequested { .. }
                    | EventKind::RefundFailed { .. }
                    | EventKind::PaymentRefunded { .. }
            )
        })
        .collect();
    assert_eq!(events.len(), 5, "{events:?}");
}

#[test]
fn a_refund_beyond_the_remaining_days_ends_access_now() {
    let f = fixture();
    let n = node(&f.vpn, "n1", "10.8.0.0/24");
    let month = plan(&f.vpn, "Month", 30, 100);
    let u = buyer(&f.vpn, "ann", 801, Some(T0));
    issue_after_payment(&f, &u, &n, &month);
    f.clock.advance(20 * 86_400);
    let p = f.vpn.payments(PaymentQuery::default()).unwrap().items[0].clone();
    f.vpn.request_refund(p.id).unwrap();
    // Telegram says it was refunded before (say, a result report lost): done.
    f.vpn
        .finish_refund(p.id, Some("Bad Request: CHARGE_ALREADY_REFUNDED"))
        .unwrap();
    let user = f.vpn.user(u.id).unwrap();
    assert_eq!(user.until, Some(f.vpn.now()));
    assert!(user.lapsed, "lapsed at once");
    assert!(desired_keys(&f.vpn, n.id).is_empty());
}

fn issue_after_payment(f: &support::Fixture, u: &User, n: &Node, plan: &Plan) {
    let order = f.vpn.create_order(u.id, plan.id).unwrap();
    f.vpn
        .record_payment(&paid(&order, u.telegram_id.unwrap(), "ch-x"))
        .unwrap();
    issue(&f.vpn, u, n);
}

#[test]
fn payments_and_revenue_survive_a_reopen_and_page_newest_first() {
    let f = fixture();
    let month = plan(&f.vpn, "Month", 30, 100);
    let week = plan(&f.vpn, "Week", 7, 30);
    let u = buyer(&f.vpn, "ann", 901, Some(T0));
    for i in 0..5 {
        let p = if i % 2 == 0 { &month } else { &week };
        let order = f.vpn.create_order(u.id, p.id).unwrap();
        f.vpn
            .record_payment(&paid(&order, 901, &format!("ch-{i}")))
            .unwrap();
        f.clock.advance(86_400);
    }
    let path = f.dir.path().join("vpnctl.redb");
    let vault = Vault::open_or_create(&f.dir.path().join("vault.key")).unwrap();
    let now = f.vpn.now();
    drop(f.vpn);
    let vpn = Vpnctl::open(
        &path,
        vault,
        Arc::new(ManualClock::new(now)),
        Policy::default(),
    )
    .unwrap();
    let first = vpn
        .payments(PaymentQuery {
            limit: Some(2),
            ..Default::default()
        })
        .unwrap();
    let ids: Vec<u64> = first.items.iter().map(|p| p.id.0).collect();
    assert_eq!(ids, [5, 4]);
    let rest = vpn
        .payments(PaymentQuery {
            before: first.next.map(vpnctl_core::PaymentId),
            limit: Some(10),
            ..Default::default()
        })
        .unwrap();
    let ids: Vec<u64> = rest.items.iter().map(|p| p.id.0).collect();
    assert_eq!(ids, [3, 2, 1]);
    assert_eq!(rest.next, None);
    let mine = vpn
        .payments(PaymentQuery {
            user: Some(u.id),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(mine.items.len(), 5);

    let lines = vpn.revenue(30).unwrap();
    assert_eq!(lines.len(), 5, "one line per day and plan: {lines:?}");
    assert_eq!(lines[0].day, T0.to_date());
    assert_eq!(lines[0].plan, month.id);
    let stars: u64 = lines.iter().map(|l| l.takings.stars).sum();
    assert_eq!(stars, 3 * 100 + 2 * 30);
    assert_eq!(
        vpn.revenue(2).unwrap().len(),
        1,
        "the last two days: one payment"
    );
    let totals = vpn.revenue_totals().unwrap();
    assert_eq!(totals[0].1.stars, 300);
    assert_eq!(totals[1].1.stars, 60);
    // The charge is known after the reopen: applied once still.
    let order = vpn.create_order(u.id, month.id).unwrap();
    let again = vpn.record_payment(&paid(&order, 901, "ch-0")).unwrap();
    assert!(!again.new);
}

#[test]
fn broadcasts_reach_their_audience_once_and_cancelling_drops_the_rest() {
    use vpnctl_core::api::broadcast::Audience;

    let f = fixture();
    let n = node(&f.vpn, "n1", "10.8.0.0/24");
    let active = buyer(&f.vpn, "active", 1001, Some(T0.plus_days(10)));
    let lapsed = buyer(&f.vpn, "lapsed", 1002, Some(T0.plus_seconds(10)));
    let _off = {
        let u = buyer(&f.vpn, "off", 1003, None);
        f.vpn
            .set_user_state(u.id, vpnctl_core::UserState::Disabled)
            .unwrap()
    };
    // No Telegram: nobody to tell.
    f.vpn
        .create_user(NewUser {
            name: "walk-in".into(),
            ..Default::default()
        })
        .unwrap();
    issue(&f.vpn, &active, &n);
    f.clock.advance(60);
    drain(&f.vpn);

    assert_eq!(f.vpn.broadcast_recipients(&Audience::All).unwrap(), 2);
    assert_eq!(f.vpn.broadcast_recipients(&Audience::Active).unwrap(), 1);
    assert_eq!(f.vpn.broadcast_recipients(&Audience::Lapsed).unwrap(), 1);
    assert_eq!(
        f.vpn
            .broadcast_recipients(&Audience::Region("DE-FRA".into()))
            .unwrap(),
        1,
        "the user with a device there"
    );
    let e = f
        .vpn
        .create_broadcast("hi", Audience::Region("xx".into()))
        .unwrap_err();
    assert!(e.to_string().contains("no node has region code"), "{e}");
    assert_eq!(
        f.vpn
            .create_broadcast("  ", Audience::All)
            .unwrap_err()
            .code(),
        ErrorCode::Invalid
    );
    assert_eq!(
        f.vpn
            .create_broadcast(&"x".repeat(4097), Audience::All)
            .unwrap_err()
            .code(),
        ErrorCode::Invalid
    );

    let b = f
        .vpn
        .create_broadcast("Maintenance at 02:00 UTC", Audience::All)
        .unwrap();
    assert_eq!(b.total, 2);
    let queued = f.vpn.notifications(Consumer::Bot, 100).unwrap();
    let to: Vec<i64> = queued
        .iter()
        .filter_map(|n| match (&n.recipient, &n.message) {
            (Recipient::User { telegram_id, .. }, Message::Broadcast { text, .. })
                if text == "Maintenance at 02:00 UTC" =>
            {
                Some(*telegram_id)
            }
            _ => None,
        })
        .collect();
    assert_eq!(to, [1001, 1002], "each recipient once");
    // The text is stored once, in the broadcast's record: no outbox row holds it.
    let dump = f.vpn.dump().unwrap();
    let needle = b"Maintenance at 02:00";
    let holds = |table: &str| {
        dump.table(table)
            .unwrap()
            .rows
            .iter()
            .filter(|(_, v)| v.windows(needle.len()).any(|w| w == needle))
            .count()
    };
    assert_eq!(holds("outbox"), 0);
    assert_eq!(holds("broadcasts"), 1);
    assert_eq!(f.vpn.broadcast(b.id).unwrap().handled, 0);
    f.vpn
        .ack_notifications(Consumer::Bot, queued[0].id)
        .unwrap();
    assert_eq!(f.vpn.broadcast(b.id).unwrap().handled, 1);

    // Cancelled: the unread rest leaves the outbox; cancelling again changes nothing.
    let cancelled = f.vpn.cancel_broadcast(b.id).unwrap();
    assert!(cancelled.cancelled_at.is_some());
    assert!(
        f.vpn.notifications(Consumer::Bot, 100).unwrap().is_empty(),
        "what the bot had not read is dropped"
    );
    assert_eq!(
        f.vpn.cancel_broadcast(b.id).unwrap().cancelled_at,
        cancelled.cancelled_at
    );
    let b2 = f.vpn.create_broadcast("second", Audience::Lapsed).unwrap();
    assert_eq!(b2.total, 1);
    let list = f.vpn.broadcasts().unwrap();
    assert_eq!(list.iter().map(|b| b.id).collect::<Vec<_>>(), [b2.id, b.id]);
    let _ = lapsed;
}

#[test]
fn a_trial_plan_comes_with_invites_and_is_not_sold() {
    use vpnctl_core::{NewInvite, Redeemer};

    let f = fixture();
    let quota = Quota {
        bytes: 5_000_000_000,
        period: QuotaPeriod::Monthly,
    };
    let trial = |stars, recurring| CreatePlan {
        name: PlanName {
            en: "Trial".into(),
            ru: None,
        },
        days: 7,
        stars,
        device_limit: 1,
        quota: Some(quota),
        recurring,
        trial: true,
    };
    assert_eq!(
        f.vpn.create_plan(trial(10, false)).unwrap_err().code(),
        ErrorCode::Invalid,
        "a trial has no price"
    );
    assert_eq!(
        f.vpn.create_plan(trial(0, true)).unwrap_err().code(),
        ErrorCode::Invalid
    );
    let t = f.vpn.create_plan(trial(0, false)).unwrap();
    assert!(t.active && !t.on_sale());
    let month = plan(&f.vpn, "Month", 30, 100);
    assert!(month.on_sale());

    let (invite, code) = f
        .vpn
        .create_invite(NewInvite {
            label: "trial".into(),
            plan: Some(t.id),
            ..NewInvite::default()
        })
        .unwrap();
    assert_eq!(invite.grant.access_days, Some(7), "the plan's days");
    assert_eq!(invite.grant.device_limit, 1);
    let r = f
        .vpn
        .redeem_invite(
            code.expose(),
            Redeemer {
                telegram_id: Some(4242),
                name: "newcomer".into(),
                ..Default::default()
            },
        )
        .unwrap();
    assert!(r.created);
    assert_eq!(r.user.until, Some(T0.plus_days(7)));
    assert_eq!(r.user.device_limit, 1);
    assert_eq!(
        f.vpn.user(r.user.id).unwrap().quota,
        Some(quota),
        "the plan's quota"
    );

    let e = f.vpn.create_order(r.user.id, t.id).unwrap_err();
    assert_eq!(e.code(), ErrorCode::Conflict, "{e}");
    assert!(e.to_string().contains("trial"), "{e}");
    // A retired trial is granted by no new invite.
    f.vpn.retire_plan(t.id).unwrap();
    assert_eq!(
        f.vpn
            .create_invite(NewInvite {
                plan: Some(t.id),
                ..NewInvite::default()
            })
            .unwrap_err()
            .code(),
        ErrorCode::Conflict
    );
}
