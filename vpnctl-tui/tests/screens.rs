//! Screens drawn into ratatui's `TestBackend` and compared as insta snapshots at
//! 80×24 and 200×60.

#[path = "support/fixture.rs"]
mod fixture;

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use vpnctl_tui::app::{Action, App, Command, Modal, Outcome, Tab, update};

fn render(app: &App, width: u16, height: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal
        .draw(|frame| frame.render_widget(app, frame.area()))
        .unwrap();
    let buffer = terminal.backend().buffer();
    let mut out = String::new();
    for y in 0..height {
        let mut line = String::new();
        for x in 0..width {
            line.push_str(buffer[(x, y)].symbol());
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn keys(app: &mut App, keys: &str) {
    for c in keys.chars() {
        update(
            app,
            Action::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)),
        );
    }
}

fn both(name: &str, app: &App) {
    insta::assert_snapshot!(format!("{name}_80x24"), render(app, 80, 24));
    insta::assert_snapshot!(format!("{name}_200x60"), render(app, 200, 60));
}

#[test]
fn every_tab() {
    let mut app = fixture::app(30);
    for tab in Tab::ALL {
        update(&mut app, Action::SelectTab(tab));
        both(&format!("tab_{}", tab.title().to_lowercase()), &app);
    }
}

#[test]
fn nodes_with_detail_pane() {
    let mut app = fixture::app(30);
    update(&mut app, Action::Down);
    update(&mut app, Action::ToggleDetail);
    let screen = render(&app, 80, 24);
    for text in [
        "n1 fra-1 up",
        "why      ok (for 1h)",
        "probe    23 ms, 4s ago",
        "traffic  rx 3.2 GB · tx 11.8 GB in total",
        "pool     10.10.0.0/16",
    ] {
        assert!(screen.contains(text), "{text} missing:\n{screen}");
    }
    both("nodes_detail", &app);
    // The down node says why, and that its probe failed.
    update(&mut app, Action::Down);
    let screen = render(&app, 200, 60);
    for text in [
        "n3 nyc-1 down",
        "why      no report for 400 s (for 3h)",
        "probe    failed 4s ago: connection refused",
    ] {
        assert!(screen.contains(text), "{text} missing:\n{screen}");
    }
}

#[test]
fn users_detail_shows_quota_and_suspension() {
    let mut app = fixture::app(30);
    update(&mut app, Action::SelectTab(Tab::Users));
    keys(&mut app, "jjjjj");
    update(&mut app, Action::ToggleDetail);
    let screen = render(&app, 80, 24);
    for text in [
        "u6 frank suspended",
        "quota    500 MiB monthly · used up, resets",
    ] {
        assert!(screen.contains(text), "{text} missing:\n{screen}");
    }
    both("users_detail", &app);
}

#[test]
fn evacuate_confirmation_fits() {
    let mut app = fixture::app(30);
    keys(&mut app, "E");
    let screen = render(&app, 80, 24);
    assert!(screen.contains("Move all 10 devices off ams-1"), "{screen}");
    assert!(
        screen.contains("[y] yes"),
        "the question wraps, the keys stay:\n{screen}"
    );
    both("confirm_evacuate", &app);
}

#[test]
fn peers_filtered_and_sorted() {
    let mut app = fixture::app(30);
    update(&mut app, Action::SelectTab(Tab::Peers));
    keys(&mut app, "/alice");
    update(&mut app, Action::FilterDone);
    keys(&mut app, "ss");
    let screen = render(&app, 80, 24);
    assert!(screen.contains("filter:alice"), "{screen}");
    assert!(!screen.contains(" bob "), "{screen}");
    both("peers_filtered", &app);
}

#[test]
fn help_overlay_lists_every_key() {
    let mut app = fixture::app(30);
    keys(&mut app, "?");
    let screen = render(&app, 200, 60);
    for (key, _) in vpnctl_tui::app::KEYS {
        assert!(screen.contains(key), "{key} missing:\n{screen}");
    }
    both("help", &app);
}

#[test]
fn confirm_and_invite_dialogs() {
    let mut app = fixture::app(30);
    keys(&mut app, "i");
    both("confirm_invite", &app);
    keys(&mut app, "y");
    assert_eq!(app.outbox, vec![Command::CreateInvite]);
    let link = "https://t.me/vpnctl_demo_bot?start=FixtureCode0123456789abcdefXYZ";
    update(
        &mut app,
        Action::CommandDone(Ok(Outcome::Invite {
            link: link.into(),
            qr: vpnctl_tui::runtime::qr_lines(link),
        })),
    );
    let screen = render(&app, 80, 24);
    assert!(screen.contains(link), "{screen}");
    both("invite_created", &app);
}

#[test]
fn api_errors_are_shown() {
    let mut app = App::new("vpnctl test", fixture::NOW);
    update(
        &mut app,
        Action::ApiFailed("cannot reach http://127.0.0.1:1/v1/nodes: connection refused".into()),
    );
    let screen = render(&app, 80, 24);
    assert!(screen.contains("API error"), "{screen}");
    assert!(screen.contains("cannot reach"), "{screen}");
    both("api_unreachable", &app);
    update(
        &mut app,
        Action::CommandDone(Err("the API refused the token (HTTP 401)".into())),
    );
    assert!(matches!(app.modal, Some(Modal::Error(_))));
    insta::assert_snapshot!("command_failed_80x24", render(&app, 80, 24));
}

#[test]
fn new_device_dialogs() {
    let mut app = fixture::app(30);
    update(&mut app, Action::SelectTab(Tab::Users));
    keys(&mut app, "n");
    let screen = render(&app, 80, 24);
    assert!(screen.contains("A new device for alice"), "{screen}");
    assert!(screen.contains("▶ fra-1"), "{screen}");
    both("pick_node", &app);

    // The config's QR: whole on a large screen, a hint where it cannot fit.
    let config = "[Interface]\nPrivateKey = FixtureFixtureFixtureFixtureFixtureFixture0=\nAddress = 10.10.0.12/32\nDNS = 10.10.0.1\nMTU = 1420\n\n[Peer]\nPublicKey = FixtureNodeKeyFixtureNodeKeyFixtureNodeKe=\nPresharedKey = FixturePskFixturePskFixturePskFixturePskFi=\nEndpoint = fra-1.vpn.example:51820\nAllowedIPs = 0.0.0.0/0\nPersistentKeepalive = 25\n";
    let qr = vpnctl_core::render::qr_terminal(config).unwrap();
    update(
        &mut app,
        Action::CommandDone(Ok(Outcome::Device {
            title: "p31 alice/device1 on fra-1: scan with the WireGuard app".into(),
            qr: qr.clone(),
        })),
    );
    let small = render(&app, 80, 24);
    assert!(small.contains("The QR code needs a terminal of"), "{small}");
    assert!(!small.contains("████████"), "no clipped QR:\n{small}");
    let large = render(&app, 200, 60);
    let first = qr.lines().nth(1).unwrap();
    assert!(large.contains(first), "the QR whole:\n{large}");
    both("device_qr", &app);
}

#[test]
fn evacuation_asks_where_configs_go() {
    let mut app = fixture::app(30);
    keys(&mut app, "Ey");
    let screen = render(&app, 80, 24);
    assert!(screen.contains("> ./ams-1-configs"), "{screen}");
    assert!(screen.contains("Esc cancel"), "the keys fit:\n{screen}");
    both("evacuate_configs_dir", &app);
}

#[test]
fn event_messages_are_shown_exactly() {
    let mut app = fixture::app(30);
    update(&mut app, Action::SelectTab(Tab::Events));
    update(&mut app, Action::ToggleDetail);
    let screen = render(&app, 200, 60);
    assert!(
        screen.contains(&format!(
            "warning: nyc-1 removed a stray peer: {}",
            fixture::STRAY_KEY
        )),
        "{screen}"
    );
}

#[test]
fn tiny_terminal_gets_a_hint() {
    let app = fixture::app(30);
    let screen = render(&app, 40, 10);
    assert!(screen.contains("too small"), "{screen}");
    insta::assert_snapshot!("tiny_40x10", screen);
}

#[test]
fn ten_thousand_peers_scroll_to_the_end() {
    let mut app = fixture::app(10_000);
    update(&mut app, Action::SelectTab(Tab::Peers));
    update(&mut app, Action::Bottom);
    let screen = render(&app, 80, 24);
    assert!(screen.contains("10000/10000"), "{screen}");
    assert!(screen.contains("p10000"), "{screen}");
}

#[test]
fn broadcast_dialog_and_question() {
    use vpnctl_api::broadcast::Audience;

    let mut app = fixture::app(30);
    keys(&mut app, "b");
    keys(&mut app, "Maintenance tonight");
    both("broadcast_dialog", &app);
    update(
        &mut app,
        Action::BroadcastPreview {
            audience: Audience::All,
            text: "Maintenance tonight 02:00-02:30 UTC".into(),
            recipients: 1234,
        },
    );
    both("broadcast_confirm", &app);
}
