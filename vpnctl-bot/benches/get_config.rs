//! `/get_config` round trip: the real dispatcher against a fake Telegram Bot API and
//! a real vpnctld (redb in a temp dir), all on loopback.
//!
//! Two user-visible round trips are timed: `/get_config` → the server keyboard, and
//! the button press → the document and the QR photo. Between them the bench waits
//! 300 ms, as a person tapping a button does. Telegram's limits are set high (the
//! harness's test settings) so that the bench measures the bot, not the one-second
//! gap Telegram asks for between two messages in a chat. Prints p50/p95 (target p50
//! ≤ 30 ms) and a criterion group.
#![allow(clippy::print_stdout, dead_code)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use support::Harness;

const USER: i64 = 1;
const THINK: Duration = Duration::from_millis(300);

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let i = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[i]
}

/// One journey; returns (keyboard round trip, config round trip).
async fn journey(h: &Harness, prefix: &str) -> (Duration, Duration) {
    tokio::time::sleep(THINK).await;
    let t = Instant::now();
    let keyboard = h.ask(USER, "/get_config").await;
    let menu = t.elapsed();
    let (_, data) = keyboard
        .buttons()
        .into_iter()
        .find(|(_, d)| d.starts_with(prefix))
        .expect("button");
    tokio::time::sleep(THINK).await;
    let mark = h.tg.mark();
    let t = Instant::now();
    h.tg.press(USER, USER, keyboard.message_id.unwrap(), &data);
    let doc = h.tg.reply(mark, USER, "sendDocument");
    let photo = h.tg.reply(mark, USER, "sendPhoto");
    let _ = tokio::join!(doc, photo);
    (menu, t.elapsed())
}

fn report(name: &str, samples: &mut [Duration]) {
    let p50 = percentile(samples, 0.5);
    let p95 = percentile(samples, 0.95);
    println!("{name}: p50 {p50:.2?} p95 {p95:.2?} (n={})", samples.len());
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let h = rt.block_on(async {
        let h = Harness::start_with(|c| {
            c.issue_per_hour = u32::MAX;
            c.delete_after_secs = 3600;
        })
        .await;
        h.signed_up(USER, 500).await;
        h
    });
    let reporter = {
        let _guard = rt.enter();
        h.keep_reporting()
    };

    for (label, prefix, n) in [("new device", "n:", 40), ("re-fetch", "s:", 60)] {
        let (mut menus, mut configs, mut totals) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..n {
            let (menu, config) = rt.block_on(journey(&h, prefix));
            menus.push(menu);
            configs.push(config);
            totals.push(menu + config);
        }
        report(&format!("{label}: /get_config -> keyboard"), &mut menus);
        report(&format!("{label}: press -> .conf + QR"), &mut configs);
        report(&format!("{label}: both round trips"), &mut totals);
    }

    let mut group = c.benchmark_group("bot");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_secs(1));
    group.bench_function("get_config_round_trips", |b| {
        b.iter_custom(|iters| {
            let mut measured = Duration::ZERO;
            for _ in 0..iters {
                let (menu, config) = rt.block_on(journey(&h, "s:"));
                measured += menu + config;
            }
            measured
        });
    });
    group.finish();
    reporter.abort();
    rt.block_on(h.stop());
}

criterion_group!(benches, bench);
criterion_main!(benches);
