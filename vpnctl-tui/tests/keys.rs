//! Key → action → state on a populated dashboard: every row action asks for
//! confirmation first and targets the selected row.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use vpnctl_core::{NodeId, NodeState, PeerId, UserId, UserState};
use vpnctl_tui::app::{Action, App, Command, EXTEND_DAYS, Modal, Tab, update};
use vpnctl_tui::fixture;

fn press(app: &mut App, code: KeyCode) {
    update(app, Action::Key(KeyEvent::new(code, KeyModifiers::NONE)));
}

fn asks(app: &mut App, key: char, expected: Command) {
    press(app, KeyCode::Char(key));
    assert_eq!(app.modal, Some(Modal::Confirm(expected)), "key {key}");
    press(app, KeyCode::Char('n'));
    assert_eq!(app.modal, None);
    assert!(app.outbox.iter().all(|c| *c == Command::Refresh));
}

#[test]
fn user_actions_target_the_selected_user() {
    let mut app = fixture::app(30);
    press(&mut app, KeyCode::Char('3'));
    assert_eq!(app.tab, Tab::Users);
    asks(&mut app, 'e', Command::ExtendAccess(UserId(1), EXTEND_DAYS));
    asks(
        &mut app,
        'x',
        Command::SetUserState(UserId(1), UserState::Disabled),
    );
    // u4 is disabled in the fixture: x enables it.
    for _ in 0..3 {
        press(&mut app, KeyCode::Down);
    }
    asks(
        &mut app,
        'x',
        Command::SetUserState(UserId(4), UserState::Active),
    );
    // Node keys do nothing here.
    press(&mut app, KeyCode::Char('d'));
    assert_eq!(app.modal, None);
}

#[test]
fn peer_and_node_actions() {
    let mut app = fixture::app(30);
    press(&mut app, KeyCode::Char('2'));
    press(&mut app, KeyCode::Char('G'));
    asks(&mut app, 'r', Command::RevokePeer(PeerId(30)));
    press(&mut app, KeyCode::Char('1'));
    // Nodes sort by name: ams-1 (n2) first.
    asks(
        &mut app,
        'd',
        Command::SetNodeState(NodeId(2), NodeState::Draining),
    );
    asks(
        &mut app,
        'D',
        Command::SetNodeState(NodeId(2), NodeState::Disabled),
    );
    asks(
        &mut app,
        'a',
        Command::SetNodeState(NodeId(2), NodeState::Active),
    );
    asks(&mut app, 'J', Command::JoinCommand(NodeId(2)));
    press(&mut app, KeyCode::Char('J'));
    press(&mut app, KeyCode::Enter);
    assert_eq!(app.outbox, vec![Command::JoinCommand(NodeId(2))]);
}

#[test]
fn paging_sorting_and_filter_keep_selection_in_range() {
    let mut app = fixture::app(10_000);
    press(&mut app, KeyCode::Char('2'));
    press(&mut app, KeyCode::PageDown);
    assert_eq!(app.tab_state(Tab::Peers).selected, app.page);
    press(&mut app, KeyCode::End);
    assert_eq!(app.tab_state(Tab::Peers).selected, 9_999);
    press(&mut app, KeyCode::Char('/'));
    for c in "p999".chars() {
        press(&mut app, KeyCode::Char(c));
    }
    // p999 and p9990..=p9999.
    assert_eq!(app.view(Tab::Peers).len(), 11);
    assert!(app.tab_state(Tab::Peers).selected < 11);
    press(&mut app, KeyCode::Esc);
    assert_eq!(app.view(Tab::Peers).len(), 10_000);
    press(&mut app, KeyCode::Char('S'));
    press(&mut app, KeyCode::Home);
    assert_eq!(app.selected_peer().map(|p| p.id), Some(PeerId(10_000)));
    press(&mut app, KeyCode::Char('?'));
    assert!(app.show_help);
    press(&mut app, KeyCode::Char('x'));
    assert!(!app.show_help);
}
