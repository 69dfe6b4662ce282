//! The dashboard follows changes: what each event marks to read again, how rows read
//! again land in the tables, older events read on demand, and which node reports the
//! screen needs.

#[allow(dead_code)]
#[path = "support/fixture.rs"]
mod fixture;

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use vpnctl_core::{EventKind, InviteId, NodeId, PeerId, UserId};
use vpnctl_tui::app::{Action, Changes, Command, DIRTY_MAX, Dirty, Tab, update};

#[test]
fn events_mark_the_rows_they_changed() {
    let mut dirty = Dirty::default();
    dirty.note(&EventKind::AccessChanged {
        user: UserId(7),
        until: None,
    });
    dirty.note(&EventKind::PeerIssued {
        peer: PeerId(40),
        user: UserId(8),
        node: NodeId(1),
    });
    dirty.note(&EventKind::InviteRedeemed {
        invite: InviteId(3),
        user: UserId(9),
    });
    dirty.note(&EventKind::NodeHealthChanged {
        node: NodeId(2),
        from: vpnctl_core::Health::Up,
        to: vpnctl_core::Health::Down,
        reason: "no report".into(),
    });
    assert_eq!(
        dirty.users.iter().map(|u| u.0).collect::<Vec<_>>(),
        [7, 8, 9]
    );
    assert_eq!(dirty.peers.iter().map(|p| p.0).collect::<Vec<_>>(), [40]);
    assert!(dirty.invites);
    assert!(dirty.nodes, "a node's event reads the node list now");
    assert!(!dirty.everything, "a node's health is in the node list");

    // A change of many rows at once names each row with its own event; the summary
    // reads the node list, a deleted user is read again (and found gone).
    let mut broad = Dirty::default();
    broad.note(&EventKind::NodeEvacuated {
        node: NodeId(1),
        moved: 10,
        failed: 0,
    });
    broad.note(&EventKind::NodeDeleted { node: NodeId(2) });
    broad.note(&EventKind::UserDeleted { user: UserId(5) });
    assert!(!broad.everything);
    assert!(broad.nodes);
    assert_eq!(broad.users.iter().map(|u| u.0).collect::<Vec<_>>(), [5]);
    let mut many = Dirty::default();
    for i in 0..=u64::try_from(DIRTY_MAX).unwrap() {
        many.note(&EventKind::UserUpdated { user: UserId(i) });
    }
    assert!(
        many.everything,
        "past {DIRTY_MAX} rows one full read is cheaper"
    );
}

#[test]
fn rows_read_again_replace_insert_and_remove_by_id() {
    let mut app = fixture::app(30);
    let users = app.users.len();
    let peers = app.peers.len();
    let mut changed = app.users[2].clone();
    changed.name = "renamed".into();
    let mut added = app.users[0].clone();
    added.id = UserId(1000);
    added.name = "newcomer".into();
    let mut new_peer = app.peers[0].clone();
    new_peer.id = PeerId(500);
    new_peer.user = UserId(1000);
    let gone_peer = app.peers[5].id;
    let nodes = app.nodes.clone();
    let gone_user = app.users[1].id;
    update(
        &mut app,
        Action::Changes(Box::new(Changes {
            nodes: Some(nodes),
            users: vec![changed.clone(), added],
            users_gone: vec![gone_user],
            peers: vec![new_peer],
            peers_gone: vec![gone_peer],
            ..Changes::default()
        })),
    );
    assert_eq!(app.users.len(), users, "one added, one gone");
    assert!(app.users.iter().all(|u| u.id != gone_user));
    assert!(
        app.users.windows(2).all(|w| w[0].id < w[1].id),
        "id order kept"
    );
    assert_eq!(app.user_name(changed.id), "renamed");
    assert_eq!(app.user_name(UserId(1000)), "newcomer");
    assert_eq!(app.peers.len(), peers);
    assert!(app.peers.iter().all(|p| p.id != gone_peer));
    assert_eq!(app.devices.get(&UserId(1000)), Some(&1));
    assert_eq!(app.devices, recount(&app), "device counts follow the rows");
    // The Users tab shows the new row.
    update(&mut app, Action::SelectTab(Tab::Users));
    assert_eq!(app.view(Tab::Users).len(), app.users.len());

    // A row read again is no new device; a user's last device gone leaves no count.
    let again = app.peers.iter().find(|p| p.id == PeerId(500)).cloned();
    let owner = app.peers[0].user;
    let theirs: Vec<PeerId> = app
        .peers
        .iter()
        .filter(|p| p.user == owner)
        .map(|p| p.id)
        .collect();
    update(
        &mut app,
        Action::Changes(Box::new(Changes {
            peers: again.into_iter().collect(),
            peers_gone: [theirs.clone(), vec![PeerId(999_999)]].concat(),
            ..Changes::default()
        })),
    );
    assert_eq!(app.devices.get(&UserId(1000)), Some(&1));
    assert_eq!(app.devices.get(&owner), None, "{theirs:?} gone");
    assert_eq!(app.devices, recount(&app));
}

/// Devices per user counted from the rows afresh.
fn recount(app: &vpnctl_tui::app::App) -> std::collections::HashMap<UserId, u32> {
    let mut counts = std::collections::HashMap::new();
    for p in &app.peers {
        *counts.entry(p.user).or_default() += 1;
    }
    counts
}

#[test]
fn a_filter_matches_what_a_row_shows_ignoring_case() {
    let mut app = fixture::app(30);
    let mut renamed = app.users[3].clone();
    renamed.name = "Борис".into();
    let boris = renamed.id;
    update(
        &mut app,
        Action::Changes(Box::new(Changes {
            users: vec![renamed],
            ..Changes::default()
        })),
    );
    let filter = |app: &mut vpnctl_tui::app::App, tab: Tab, text: &str| {
        update(app, Action::SelectTab(tab));
        update(app, Action::FilterClear);
        update(app, Action::StartFilter);
        for c in text.chars() {
            update(app, Action::FilterChar(c));
        }
        update(app, Action::FilterDone);
        app.view(tab).to_vec()
    };
    // Cyrillic names ignore case too; the user's peers show the name as well.
    let users = filter(&mut app, Tab::Users, "БОР");
    assert_eq!(users.len(), 1);
    assert_eq!(app.users[users[0]].id, boris);
    let peers = filter(&mut app, Tab::Peers, "борис");
    assert!(!peers.is_empty());
    assert!(peers.iter().all(|&i| app.peers[i].user == boris));
    // The text runs across the columns, as on screen: "p<id> user device node ip".
    let first = app.peers[0].clone();
    let text = format!("P{} {}", first.id, app.user_name(first.user).to_uppercase());
    let exact = filter(&mut app, Tab::Peers, &text);
    assert!(exact.contains(&0), "{text}");
    assert!(exact.iter().all(|&i| app.peers[i].user == first.user));
    // Greek: a word-final capital sigma lowercases to ς in the needle and the row alike.
    let mut greek = app.users[4].clone();
    greek.name = "ΟΔΟΣ".into();
    let odos = greek.id;
    update(
        &mut app,
        Action::Changes(Box::new(Changes {
            users: vec![greek],
            ..Changes::default()
        })),
    );
    for needle in ["ΟΔΟΣ", "οδος", "ΟΔΟ"] {
        let found = filter(&mut app, Tab::Users, needle);
        assert_eq!(
            found.iter().map(|&i| app.users[i].id).collect::<Vec<_>>(),
            [odos],
            "{needle}"
        );
    }
    // No match is an empty view; no filter shows every row.
    assert!(filter(&mut app, Tab::Peers, "zzz-nothing").is_empty());
    assert_eq!(filter(&mut app, Tab::Peers, "").len(), app.peers.len());
}

#[test]
fn older_events_come_before_the_oldest_shown() {
    let mut app = fixture::app(30);
    update(&mut app, Action::SelectTab(Tab::Events));
    let oldest = app.events.front().map(|e| e.seq).unwrap();
    let shown = app.events.len();
    update(
        &mut app,
        Action::Key(KeyEvent::new(KeyCode::Char('o'), KeyModifiers::NONE)),
    );
    assert_eq!(app.outbox, vec![Command::OlderEvents(Some(oldest))]);
    app.outbox.clear();
    // The page before (and a repeat of a shown one, which is dropped).
    let mut older: Vec<_> = app.events.iter().take(1).cloned().collect();
    older[0].seq = 0;
    older.push(app.events[0].clone());
    update(&mut app, Action::OlderEvents(older));
    assert_eq!(app.events.len(), shown + 1);
    assert_eq!(app.events.front().map(|e| e.seq), Some(0));
    assert_eq!(app.status.as_deref(), Some("1 older events"));
    update(&mut app, Action::OlderEvents(Vec::new()));
    assert_eq!(app.status.as_deref(), Some("no older events"));
}

#[test]
fn only_the_peers_tab_reads_reports_and_only_for_its_rows() {
    let mut app = fixture::app(30);
    assert!(app.report_nodes().is_empty(), "the Nodes tab reads none");
    update(&mut app, Action::SelectTab(Tab::Peers));
    update(&mut app, Action::Resize(80, 10));
    let nodes = app.report_nodes();
    assert!(!nodes.is_empty());
    let on_screen: std::collections::BTreeSet<NodeId> = app
        .view(Tab::Peers)
        .iter()
        .take(app.page)
        .map(|&i| app.peers[i].node)
        .collect();
    assert_eq!(nodes, on_screen.into_iter().collect::<Vec<_>>());
}
