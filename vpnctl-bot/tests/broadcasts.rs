//! Broadcasts through the real bot and a real vpnctld, against a loopback Bot API
//! that enforces Telegram's limits (30 messages/s overall, 1/s per chat, 429 with
//! `retry_after` beyond): 1,000 users each get the text once, at the pace Telegram
//! allows; a cancelled broadcast stops.

mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use support::Harness;
use vpnctl_api::broadcast::{Audience, CreateBroadcast};
use vpnctl_core::{NewUser, Timestamp};

/// The bot with Telegram's limits as a user of it gets them by default, and the
/// fake Bot API enforcing them.
async fn harness() -> Harness {
    let h = Harness::start_with(|c| {
        let defaults = vpnctl_bot::Config::new("1:a", "http://127.0.0.1:1", "t");
        c.messages_per_sec_chat = defaults.messages_per_sec_chat;
        c.messages_per_min_chat = defaults.messages_per_min_chat;
        c.messages_per_sec_overall = defaults.messages_per_sec_overall;
    })
    .await;
    h.tg.enforce_limits(30, Duration::from_secs(1));
    h
}

/// `n` users with Telegram ids from `first`, created through the SDK.
fn users(h: &Harness, first: i64, n: i64) -> Vec<i64> {
    let ids: Vec<i64> = (first..first + n).collect();
    for id in &ids {
        h.vpn
            .create_user(NewUser {
                name: format!("user{id}"),
                telegram_id: Some(*id),
                until: Some(Timestamp::now().plus_days(30)),
                ..Default::default()
            })
            .unwrap();
    }
    ids
}

/// How many messages with `text` each chat got after `mark`.
fn received(h: &Harness, mark: usize, text: &str) -> HashMap<i64, usize> {
    let mut got = HashMap::new();
    for c in &h.tg.calls()[mark..] {
        if c.method == "sendmessage" && c.text() == text {
            *got.entry(c.chat_id.unwrap_or_default()).or_default() += 1;
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::print_stderr, clippy::cast_precision_loss)]
async fn a_broadcast_reaches_1000_users_once_within_telegrams_limits() {
    let h = harness().await;
    let ids = users(&h, 200_000, 1000);
    let text = "Maintenance tonight 02:00–02:30 UTC; tunnels reconnect by themselves.";
    let mark = h.tg.mark();
    let started = Instant::now();
    let b = h
        .admin
        .create_broadcast(&CreateBroadcast {
            text: text.into(),
            audience: Audience::All,
        })
        .await
        .unwrap();
    assert_eq!(b.total, 1000);
    let deadline = started + Duration::from_secs(120);
    loop {
        let got = received(&h, mark, text);
        if got.len() == ids.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of 1000 reached in 120 s",
            got.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let took = started.elapsed();
    let got = received(&h, mark, text);
    assert!(
        ids.iter().all(|id| got.get(id) == Some(&1)),
        "each user once"
    );
    // Telegram's pace: 1,000 messages at 30/s take at least 33 s.
    assert!(
        took > Duration::from_secs(30),
        "{took:?}: faster than Telegram allows"
    );
    eprintln!(
        "broadcast to 1000 users: all reached in {:.1} s ({:.1}/s, {} refused with 429)",
        took.as_secs_f64(),
        1000.0 / took.as_secs_f64(),
        h.tg.rate_limited()
    );
    // The bot acknowledged them all: a restart sends none again.
    let deadline = Instant::now() + Duration::from_secs(10);
    while h.admin.broadcast(b.id).await.unwrap().handled < 1000 {
        assert!(Instant::now() < deadline, "not all acknowledged");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_broadcast_stops() {
    let h = harness().await;
    let ids = users(&h, 300_000, 300);
    let text = "This broadcast is cancelled after a second.";
    let mark = h.tg.mark();
    let b = h
        .admin
        .create_broadcast(&CreateBroadcast {
            text: text.into(),
            audience: Audience::Active,
        })
        .await
        .unwrap();
    assert_eq!(b.total, 300);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let cancelled = h.admin.cancel_broadcast(b.id).await.unwrap();
    assert!(cancelled.cancelled_at.is_some());
    let at_cancel = received(&h, mark, text).len();
    // What was on its way when the bot heard of it may still go; nothing after.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let settled = received(&h, mark, text).len();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let later = received(&h, mark, text).len();
    assert!(at_cancel > 0, "it had started");
    assert!(
        settled < ids.len() / 2,
        "{settled} of 300 reached: it did not stop"
    );
    assert_eq!(later, settled, "messages kept coming after the cancel");
    assert!(received(&h, mark, text).values().all(|n| *n == 1));
    h.stop().await;
}
