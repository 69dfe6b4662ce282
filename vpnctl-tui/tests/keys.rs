//! Key → action → state on a populated dashboard: every row action asks for
//! confirmation first and targets the selected row.

#[allow(dead_code)]
#[path = "support/fixture.rs"]
mod fixture;

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use vpnctl_core::{Evacuation, Moved, NodeId, NodeState, PeerId, UserId, UserState};
use vpnctl_tui::app::{Action, App, Command, EXTEND_DAYS, Modal, Outcome, Tab, update};
use vpnctl_tui::runtime;

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

#[test]
fn evacuate_asks_with_the_device_count_and_reports_the_counts() {
    let mut app = fixture::app(30);
    // Nodes sort by name: ams-1 (n2) first, with 10 of the 30 peers.
    let evacuate = Command::Evacuate {
        node: NodeId(2),
        name: "ams-1".into(),
        devices: 10,
        configs: None,
    };
    asks(&mut app, 'E', evacuate.clone());
    assert_eq!(
        evacuate.describe(),
        "Move all 10 devices off ams-1 to healthy nodes? Users with Telegram get new configs from the bot."
    );
    // Esc cancels too.
    press(&mut app, KeyCode::Char('E'));
    press(&mut app, KeyCode::Esc);
    assert_eq!(app.modal, None);
    assert!(app.outbox.is_empty());

    // Yes, then where the configs of users without Telegram go: the default is
    // offered and can be edited; Esc still cancels everything.
    press(&mut app, KeyCode::Char('E'));
    press(&mut app, KeyCode::Char('y'));
    assert_eq!(
        app.modal,
        Some(Modal::ConfigsDir {
            command: evacuate.clone(),
            path: "./ams-1-configs".into()
        })
    );
    assert!(app.outbox.is_empty());
    press(&mut app, KeyCode::Esc);
    assert_eq!(app.modal, None);
    assert!(app.outbox.is_empty());

    press(&mut app, KeyCode::Char('E'));
    press(&mut app, KeyCode::Char('y'));
    for _ in 0.."configs".len() {
        press(&mut app, KeyCode::Backspace);
    }
    for c in "out".chars() {
        press(&mut app, KeyCode::Char(c));
    }
    press(&mut app, KeyCode::Enter);
    let with_dir = Command::Evacuate {
        node: NodeId(2),
        name: "ams-1".into(),
        devices: 10,
        configs: Some("./ams-1-out".into()),
    };
    assert_eq!(app.outbox, vec![with_dir]);
    assert!(matches!(app.modal, Some(Modal::Busy(_))));
    // Keys wait while the command runs.
    press(&mut app, KeyCode::Char('q'));
    assert!(app.running);
    app.outbox.clear();

    let done = Evacuation {
        node: NodeId(2),
        moved: (0..9)
            .map(|i| Moved {
                user: UserId(i + 1),
                device: "phone".into(),
                old_peer: PeerId(3 * i + 2),
                new_peer: PeerId(100 + i),
                to: NodeId(1),
            })
            .collect(),
        failed: vec![(PeerId(29), "no capacity".into())],
    };
    update(
        &mut app,
        Action::CommandDone(Ok(Outcome::Done(runtime::evacuation_summary(
            "ams-1", &done,
        )))),
    );
    assert_eq!(app.modal, None);
    assert_eq!(
        app.status.as_deref(),
        Some("evacuated ams-1: moved 9, failed 1")
    );
    assert_eq!(
        app.outbox,
        vec![Command::Refresh],
        "the lists refresh at once"
    );

    // Only on the Nodes tab.
    press(&mut app, KeyCode::Char('3'));
    press(&mut app, KeyCode::Char('E'));
    assert_eq!(app.modal, None);
}

#[test]
fn nodes_sort_by_health_and_filter_by_it() {
    let mut app = fixture::app(30);
    for _ in 0..4 {
        press(&mut app, KeyCode::Char('s'));
    }
    // Worst first: nyc-1 down, ams-1 degraded, fra-1 up.
    let order: Vec<&str> = app
        .view(Tab::Nodes)
        .iter()
        .map(|&i| app.nodes[i].node.name.as_str())
        .collect();
    assert_eq!(order, ["nyc-1", "ams-1", "fra-1"]);
    press(&mut app, KeyCode::Char('/'));
    for c in "degraded".chars() {
        press(&mut app, KeyCode::Char(c));
    }
    assert_eq!(app.view(Tab::Nodes).len(), 1);
    assert_eq!(app.selected_node().map(|v| v.node.id), Some(NodeId(2)));
}

#[test]
fn users_filter_and_sort_by_status() {
    let mut app = fixture::app(30);
    press(&mut app, KeyCode::Char('3'));
    press(&mut app, KeyCode::Char('/'));
    for c in "suspended".chars() {
        press(&mut app, KeyCode::Char(c));
    }
    // u6 used up its quota.
    assert_eq!(app.view(Tab::Users).len(), 1);
    assert_eq!(app.selected_user().map(|u| u.id), Some(UserId(6)));
    press(&mut app, KeyCode::Esc);
    press(&mut app, KeyCode::Char('s'));
    press(&mut app, KeyCode::Char('s'));
    // Disabled first, active last.
    assert_eq!(app.selected_user().map(|u| u.id), Some(UserId(4)));
}

#[test]
fn an_empty_configs_path_evacuates_without_writing() {
    let mut app = fixture::app(30);
    press(&mut app, KeyCode::Char('E'));
    press(&mut app, KeyCode::Char('y'));
    update(
        &mut app,
        Action::Key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL)),
    );
    press(&mut app, KeyCode::Enter);
    assert!(matches!(
        app.outbox.as_slice(),
        [Command::Evacuate { configs: None, .. }]
    ));
}

#[test]
fn new_device_picks_from_cores_offer_then_asks() {
    let mut app = fixture::app(30);
    press(&mut app, KeyCode::Char('3'));
    press(&mut app, KeyCode::Char('n'));
    // Of the fixture's nodes only fra-1 is offered: ams-1 drains, nyc-1 is down.
    let Some(Modal::PickNode { user, nodes, .. }) = &app.modal else {
        panic!("{:?}", app.modal);
    };
    assert_eq!(*user, UserId(1));
    assert_eq!(
        nodes
            .iter()
            .map(|(_, n, m)| (n.as_str(), m.as_str()))
            .collect::<Vec<_>>(),
        [("fra-1", "up")]
    );
    // Keys other than the picker's do nothing; Enter asks before issuing.
    press(&mut app, KeyCode::Char('q'));
    assert!(app.running);
    press(&mut app, KeyCode::Down);
    press(&mut app, KeyCode::Enter);
    let issue = Command::IssueDevice {
        user: UserId(1),
        user_name: "alice".into(),
        node: NodeId(1),
        node_name: "fra-1".into(),
    };
    assert_eq!(app.modal, Some(Modal::Confirm(issue.clone())));
    assert!(app.outbox.is_empty());
    press(&mut app, KeyCode::Char('y'));
    assert_eq!(app.outbox, vec![issue]);

    // Rotate on the Peers tab asks too.
    app.outbox.clear();
    app.modal = None;
    press(&mut app, KeyCode::Char('2'));
    asks(&mut app, 'o', Command::RotatePeer(PeerId(1)));
}

#[test]
fn a_broadcast_is_counted_then_confirmed() {
    use vpnctl_api::broadcast::Audience;

    let mut app = fixture::app(30);
    press(&mut app, KeyCode::Char('b'));
    assert!(matches!(app.modal, Some(Modal::Broadcast { .. })));
    // Enter without a text: nothing goes, the dialog stays.
    press(&mut app, KeyCode::Enter);
    assert!(matches!(app.modal, Some(Modal::Broadcast { .. })));
    assert!(app.status.as_deref().is_some_and(|s| s.contains("text")));
    for c in "Back at 3 UTC".chars() {
        press(&mut app, KeyCode::Char(c));
    }
    // The audience: a bad one is refused, with the reason.
    press(&mut app, KeyCode::Tab);
    update(
        &mut app,
        Action::Key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL)),
    );
    for c in "everyone".chars() {
        press(&mut app, KeyCode::Char(c));
    }
    press(&mut app, KeyCode::Enter);
    assert!(
        app.status.as_deref().is_some_and(|s| s.contains("region")),
        "{:?}",
        app.status
    );
    update(
        &mut app,
        Action::Key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL)),
    );
    for c in "region de-fra".chars() {
        press(&mut app, KeyCode::Char(c));
    }
    press(&mut app, KeyCode::Enter);
    let region = Audience::Region("de-fra".into());
    assert_eq!(
        app.outbox.last(),
        Some(&Command::PreviewBroadcast {
            audience: region.clone(),
            text: "Back at 3 UTC".into(),
        })
    );
    // The count comes back: the question shows it and the text.
    update(
        &mut app,
        Action::BroadcastPreview {
            audience: region.clone(),
            text: "Back at 3 UTC".into(),
            recipients: 17,
        },
    );
    let send = Command::Broadcast {
        audience: region,
        text: "Back at 3 UTC".into(),
        recipients: 17,
    };
    assert!(send.describe().contains("17 users (region de-fra)"));
    assert_eq!(app.modal, Some(Modal::Confirm(send.clone())));
    press(&mut app, KeyCode::Char('y'));
    assert_eq!(app.outbox.last(), Some(&send));
    // Nobody to reach: said so, nothing to confirm.
    update(
        &mut app,
        Action::BroadcastPreview {
            audience: Audience::Lapsed,
            text: "x".into(),
            recipients: 0,
        },
    );
    assert!(matches!(app.modal, Some(Modal::Error(ref e)) if e.contains("nothing to send")));
}
