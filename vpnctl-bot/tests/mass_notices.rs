//! Measurement (ignored by default): 1,000 users moved by one evacuation, each to
//! get the new `.conf` and its QR code, against a loopback Bot API that enforces
//! Telegram's limits (30 messages/s overall, 1/s per chat, 429 with
//! `retry_after` beyond) and a real vpnctld. 2,000 messages at 30/s take ~67 s at
//! the very least; the target is ≤ 90 s.
//!
//! ```sh
//! cargo test -p vpnctl-bot --test mass_notices -- --ignored --nocapture
//! ```

mod support;

use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use support::Harness;

const USERS: i64 = 1000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: about 70 s; run with --ignored --nocapture"]
#[allow(clippy::print_stderr, clippy::cast_precision_loss)]
async fn evacuation_of_1000_users_within_telegrams_limits() {
    // Telegram's limits, as a user of the bot gets them by default.
    let h = Harness::start_with(|c| {
        let defaults = vpnctl_bot::Config::new("1:a", "http://127.0.0.1:1", "t");
        c.messages_per_sec_chat = defaults.messages_per_sec_chat;
        c.messages_per_min_chat = defaults.messages_per_min_chat;
        c.messages_per_sec_overall = defaults.messages_per_sec_overall;
    })
    .await;
    let users: Vec<i64> = (0..USERS).map(|i| 100_000 + i).collect();
    let setup = Instant::now();
    futures_util::stream::iter(users.chunks(50))
        .for_each_concurrent(8, |chunk| support::users_with_devices(&h, chunk))
        .await;
    support::second_node(&h).await;
    let _reporting = h.keep_reporting();
    eprintln!(
        "set up {USERS} users with a device in {:?}",
        setup.elapsed()
    );
    h.tg.enforce_limits(30, Duration::from_secs(1));

    let mark = h.tg.mark();
    let started = Instant::now();
    let evacuation = h
        .admin
        .evacuate_node(h.node.id, vpnctl_core::EvacuateTo::Auto)
        .await
        .unwrap();
    assert_eq!(evacuation.moved.len(), users.len());
    let mut last = started;
    for u in &users {
        let photo =
            h.tg.wait_after(mark, Duration::from_secs(300), |c| {
                c.chat_id == Some(*u) && c.method == "sendphoto"
            })
            .await;
        last = last.max(photo.at);
    }
    let took = last - started;
    let calls = h.tg.calls();
    support::each_got_document_then_photo(&calls[mark..], &users);
    let messages = calls[mark..]
        .iter()
        .filter(|c| c.method.starts_with("send") && c.method != "sendchataction")
        .count();
    eprintln!(
        "{USERS} users moved: every document and QR code in {:.1} s ({messages} messages, {:.1}/s; {} refused with 429)",
        took.as_secs_f64(),
        messages as f64 / took.as_secs_f64(),
        h.tg.rate_limited()
    );
    h.stop().await;
}
