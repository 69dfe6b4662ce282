//! Drawing the Peers screen with 10,000 peers into a `TestBackend` (target: ≤ 5 ms
//! per frame). Tables build only the visible rows, so this measures one screenful
//! plus the header, footer and the diff of the buffer.
//!
//! And what the UI loop spends at issue 16's size (200,000 peers, 66,667 users)
//! between two frames: a keystroke of the filter, and one change the event stream
//! names (a peer issued, its user read again), applied with the tables re-filtered.

#[allow(dead_code)]
#[path = "../tests/support/fixture.rs"]
mod fixture;

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use vpnctl_tui::app::{Action, Changes, Tab, update};

fn draw_peers(c: &mut Criterion) {
    let mut app = fixture::app(10_000);
    update(&mut app, Action::SelectTab(Tab::Peers));
    for (width, height) in [(80u16, 24u16), (200, 60)] {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("test backend");
        let mut frame = 0usize;
        c.bench_function(&format!("draw peers 10k {width}x{height}"), |b| {
            b.iter(|| {
                // Move the selection so every frame differs, as when scrolling.
                frame += 1;
                update(
                    &mut app,
                    if frame % 200 < 100 {
                        Action::Down
                    } else {
                        Action::Up
                    },
                );
                terminal
                    .draw(|f| f.render_widget(black_box(&app), f.area()))
                    .expect("draw");
            });
        });
    }
    c.bench_function("filter 10k peers", |b| {
        b.iter(|| {
            update(&mut app, Action::FilterChar('7'));
            update(&mut app, Action::FilterBackspace);
        });
    });
}

fn at_scale(c: &mut Criterion) {
    let mut app = fixture::app(200_000);
    update(&mut app, Action::SelectTab(Tab::Peers));
    let mut group = c.benchmark_group("200k peers");
    group.sample_size(20);
    group.bench_function("filter keystroke", |b| {
        b.iter(|| {
            update(&mut app, Action::FilterChar('7'));
            update(&mut app, Action::FilterBackspace);
        });
    });
    let peer = app.peers[1_234].clone();
    let user = app
        .users
        .iter()
        .find(|u| u.id == peer.user)
        .cloned()
        .expect("the peer's user");
    group.bench_function("one change applied", |b| {
        b.iter(|| {
            update(
                &mut app,
                Action::Changes(Box::new(Changes {
                    peers: vec![peer.clone()],
                    users: vec![user.clone()],
                    ..Changes::default()
                })),
            );
        });
    });
    group.finish();
}

criterion_group!(benches, draw_peers, at_scale);
criterion_main!(benches);
