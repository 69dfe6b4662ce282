//! Drawing the Peers screen with 10,000 peers into a `TestBackend` (target: ≤ 5 ms
//! per frame). Tables build only the visible rows, so this measures one screenful
//! plus the header, footer and the diff of the buffer.

#[allow(dead_code)]
#[path = "../tests/support/fixture.rs"]
mod fixture;

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use vpnctl_tui::app::{Action, Tab, update};

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

criterion_group!(benches, draw_peers);
criterion_main!(benches);
