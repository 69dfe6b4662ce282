//! The demo end to end, without a terminal: an embedded vpnctld, three enrolled nodes
//! on the simulated backend, the dashboard's background tasks feeding an `App`, the
//! admin commands over real HTTP on loopback, and the CLI against the same API.

#![cfg(feature = "demo")]

use std::time::Duration;

use tokio::sync::mpsc;
use vpnctl_client::ApiClient;
use vpnctl_core::{Evacuation, NodeState};
use vpnctl_core::{Scope, Secret};
use vpnctl_tui::app::{
    Action, App, Command, Connection, Health, Outcome, UserStatus, health, update,
};
use vpnctl_tui::cli::{Config, run, run_with};
use vpnctl_tui::demo::{DEMO_BOT, Demo, DemoOptions};
use vpnctl_tui::runtime::{self, spawn_worker};

async fn until(
    app: &mut App,
    rx: &mut mpsc::UnboundedReceiver<Action>,
    done: impl Fn(&App) -> bool,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(45);
    while !done(app) {
        let Ok(action) = tokio::time::timeout_at(deadline, rx.recv()).await else {
            panic!(
                "state not reached within 45 s; nodes: {:?}",
                app.nodes
                    .iter()
                    .map(|v| (
                        &v.node.name,
                        v.health.status,
                        &v.health.reason,
                        v.health.peers_connected
                    ))
                    .collect::<Vec<_>>()
            );
        };
        let action = action.expect("worker alive");
        update(app, action);
        update(app, Action::Tick(vpnctl_core::Timestamp::now()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_nodes_report_and_admin_commands_work() {
    let demo = Demo::start(DemoOptions {
        report_secs: Some(1),
        ..DemoOptions::default()
    })
    .await
    .unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (commands, _shown) = spawn_worker(demo.api.clone(), tx);
    let mut app = App::new("demo test", vpnctl_core::Timestamp::now());

    // Three nodes up and in sync, their peers handshaking.
    until(&mut app, &mut rx, |app| {
        app.nodes.len() == 3
            && app.nodes.iter().all(|v| health(v) == Health::Up)
            && app.nodes.iter().all(|v| v.health.peers_connected > 0)
    })
    .await;
    assert_eq!(app.connection, Connection::Live);
    assert!(app.peers.len() >= 40, "{} peers", app.peers.len());
    assert_eq!(app.invites.len(), 3);
    assert!(!app.events.is_empty());
    let regions: std::collections::BTreeSet<_> = app
        .nodes
        .iter()
        .map(|v| v.node.region.code.clone())
        .collect();
    assert_eq!(regions.len(), 3);

    // An invite from the dashboard: a deep link and its QR.
    let outcome = runtime::execute(&demo.api, &Command::CreateInvite)
        .await
        .unwrap();
    let Outcome::Invite { link, qr } = outcome else {
        panic!("expected an invite");
    };
    assert!(
        link.starts_with(&format!("https://t.me/{DEMO_BOT}?start=")),
        "{link}"
    );
    assert!(!qr.is_empty());

    // Revoking a peer shows up live (event stream, then the lists).
    let peer = app.peers[0].id;
    commands.send(Command::RevokePeer(peer)).unwrap();
    until(&mut app, &mut rx, |app| {
        app.peers.iter().all(|p| p.id != peer)
    })
    .await;
    until(&mut app, &mut rx, |app| {
        app.events.iter().any(
            |e| matches!(e.kind, vpnctl_core::EventKind::PeerRevoked { peer: p, .. } if p == peer),
        )
    })
    .await;

    // Draining a node, disabling and re-enabling a user, extending access, join command.
    let node = app.nodes[0].node.id;
    let user = app.users[1].id;
    for command in [
        Command::SetNodeState(node, vpnctl_core::NodeState::Draining),
        Command::SetUserState(user, vpnctl_core::UserState::Disabled),
        Command::SetUserState(user, vpnctl_core::UserState::Active),
        Command::ExtendAccess(user, 30),
    ] {
        let outcome = runtime::execute(&demo.api, &command).await;
        assert!(
            matches!(outcome, Ok(Outcome::Done(_))),
            "{command:?}: {outcome:?}"
        );
    }
    let Ok(Outcome::JoinCommand { command, .. }) =
        runtime::execute(&demo.api, &Command::JoinCommand(node)).await
    else {
        panic!("join command");
    };
    assert!(command.starts_with("vpnctl-node join vpnctl-join:"));

    // The CLI against the same API, as a script would use it.
    let (_, token) = demo.vpn.create_token(Scope::Admin, "cli test").unwrap();
    let cli = |args: &[&str]| {
        let mut argv = vec![
            "vpnctl",
            "--api",
            demo.url.as_str(),
            "--token",
            token.expose(),
        ];
        argv.extend_from_slice(args);
        use clap::Parser as _;
        Config::try_parse_from(argv).unwrap()
    };
    let mut out = Vec::new();
    run(cli(&["users", "list", "--json"]), &mut out)
        .await
        .unwrap();
    let users: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert!(users.as_array().unwrap().len() >= 24);

    let mut out = Vec::new();
    run(
        cli(&["users", "add", "zed", "--days", "10", "--json"]),
        &mut out,
    )
    .await
    .unwrap();
    let zed: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(zed["name"], "zed");
    let zed_id = zed["id"].to_string();

    let mut out = Vec::new();
    run(cli(&["users", "disable", &zed_id]), &mut out)
        .await
        .unwrap();
    assert!(String::from_utf8(out).unwrap().contains("disabled"));

    let mut out = Vec::new();
    run(cli(&["invites", "create", "--uses", "2"]), &mut out)
        .await
        .unwrap();
    assert!(String::from_utf8(out).unwrap().contains("?start="));

    // Quotas: sizes as admins type them, strict about anything else.
    let mut out = Vec::new();
    run(
        cli(&[
            "users", "quota", "carol", "1.5TB", "--period", "weekly", "--json",
        ]),
        &mut out,
    )
    .await
    .unwrap();
    let carol: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(carol["quota"]["bytes"], 1_500_000_000_000u64);
    assert_eq!(carol["quota"]["period"], "weekly");
    let carol_id = format!("u{}", carol["id"]);
    let mut out = Vec::new();
    run(cli(&["users", "quota", &carol_id, "500MiB"]), &mut out)
        .await
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains("quota 500 MiB weekly"),
        "the period stays: {text}"
    );
    for (args, code) in [
        (
            &["users", "quota", "carol", "none", "--period", "daily"][..],
            2,
        ),
        (&["users", "quota", "nobody-at-all", "1GB"][..], 4),
    ] {
        let err = run(cli(args), &mut Vec::new()).await.unwrap_err();
        assert_eq!(err.exit_code(), code, "{args:?}: {err}");
    }
    for (size, why) in [("50XB", "unknown unit"), ("-1", "negative"), ("0", "none")] {
        use clap::Parser as _;
        let err = Config::try_parse_from(["vpnctl", "users", "quota", "carol", size]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains(why), "{size}: {err}");
    }
    // A tiny quota is used up by the simulated traffic: suspended, in the dashboard too.
    run(cli(&["users", "quota", "carol", "1kB"]), &mut Vec::new())
        .await
        .unwrap();
    let suspended = |app: &App| {
        app.users
            .iter()
            .find(|u| u.name == "carol")
            .map(|u| UserStatus::of(u, app.now))
    };
    until(&mut app, &mut rx, |app| {
        suspended(app) == Some(UserStatus::Suspended)
    })
    .await;
    run(cli(&["users", "quota", "carol", "none"]), &mut Vec::new())
        .await
        .unwrap();
    until(&mut app, &mut rx, |app| {
        suspended(app) == Some(UserStatus::Active)
    })
    .await;

    let mut out = Vec::new();
    run(cli(&["nodes", "list", "--json"]), &mut out)
        .await
        .unwrap();
    let nodes: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(nodes.as_array().unwrap().len(), 3);

    let mut out = Vec::new();
    run(cli(&["nodes", "drain", "n2"]), &mut out).await.unwrap();
    assert!(String::from_utf8(out).unwrap().contains("draining"));

    let peer = app.peers[1].id.to_string();
    let mut out = Vec::new();
    run(cli(&["peers", "config", &peer]), &mut out)
        .await
        .unwrap();
    let config = String::from_utf8(out).unwrap();
    assert!(config.contains("[Interface]") && config.contains("[Peer]"));

    // Errors: unknown id → the API's answer and exit code 4.
    let err = run(cli(&["users", "extend", "999999"]), &mut Vec::new())
        .await
        .unwrap_err();
    assert_eq!(err.exit_code(), 4, "{err}");

    // A wrong token: a clear message, in the CLI and in the dashboard state.
    let wrong = ApiClient::new(&demo.url, Some(Secret::new("vpt_wrong".into())), None).unwrap();
    let err = runtime::fetch_snapshot(&wrong).await.unwrap_err();
    assert!(
        runtime::describe(&err).contains("refused the token"),
        "{err}"
    );
    let (tx, mut rx) = mpsc::unbounded_channel();
    let _worker = spawn_worker(wrong, tx);
    let mut app = App::new("wrong token", vpnctl_core::Timestamp::now());
    until(&mut app, &mut rx, |app| {
        matches!(app.connection, Connection::Failed(_))
    })
    .await;
    assert!(matches!(&app.connection, Connection::Failed(m) if m.contains("401")));
    assert!(app.running);

    demo.stop().await;
}

/// Waits until every node of the demo is `up` (the control plane's judgement).
async fn all_up(api: &ApiClient) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let nodes = api.nodes().await.unwrap();
        if nodes.len() == 3 && nodes.iter().all(|v| health(v) == Health::Up) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "nodes not up within 30 s: {:?}",
            nodes
                .iter()
                .map(|v| (&v.node.name, v.health.status, &v.health.reason))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evacuating_a_demo_node_moves_every_device() {
    let demo = Demo::start(DemoOptions {
        report_secs: Some(1),
        ..DemoOptions::default()
    })
    .await
    .unwrap();
    all_up(&demo.api).await;
    let (_, token) = demo.vpn.create_token(Scope::Admin, "cli test").unwrap();
    let cli = |args: &[&str]| {
        let mut argv = vec![
            "vpnctl",
            "--api",
            demo.url.as_str(),
            "--token",
            token.expose(),
        ];
        argv.extend_from_slice(args);
        use clap::Parser as _;
        Config::try_parse_from(argv).unwrap()
    };
    let nodes = demo.api.nodes().await.unwrap();
    let id_of = |name: &str| {
        nodes
            .iter()
            .find(|v| v.node.name == name)
            .map(|v| v.node.id)
            .unwrap()
    };
    let (fra, ams, nyc) = (id_of("fra-1"), id_of("ams-1"), id_of("nyc-1"));
    let on = |node| vpnctl_api::body::PeerQuery {
        user: None,
        node: Some(node),
        ..vpnctl_api::body::PeerQuery::default()
    };
    let before = demo.api.peers(on(fra)).await.unwrap();
    assert!(!before.is_empty());

    // Destructive: without --yes it asks, and refuses when nobody can answer.
    let mut asked = Vec::new();
    let err = run_with(
        cli(&["nodes", "evacuate", "fra-1"]),
        &mut Vec::new(),
        &mut |q: &str| {
            asked.push(q.to_owned());
            None
        },
    )
    .await
    .unwrap_err();
    assert_eq!(err.exit_code(), 2, "{err}");
    assert!(err.to_string().contains("--yes"), "{err}");
    assert_eq!(
        asked,
        [format!(
            "Move all {} devices off fra-1 to healthy nodes? Users with Telegram get new configs from the bot.",
            before.len()
        )]
    );
    let err = run_with(
        cli(&["nodes", "evacuate", "fra-1"]),
        &mut Vec::new(),
        &mut |_| Some(false),
    )
    .await
    .unwrap_err();
    assert_eq!(err.exit_code(), 1, "{err}");
    for (args, code) in [
        (&["nodes", "evacuate", "nowhere-1", "--yes"][..], 4),
        (
            &["nodes", "evacuate", "fra-1", "--to", "xx-nowhere", "--yes"][..],
            4,
        ),
        (
            &["nodes", "evacuate", "fra-1", "--to", "fra-1", "--yes"][..],
            2,
        ),
    ] {
        let err = run(cli(args), &mut Vec::new()).await.unwrap_err();
        assert_eq!(err.exit_code(), code, "{args:?}: {err}");
    }
    assert_eq!(
        demo.api.peers(on(fra)).await.unwrap(),
        before,
        "nothing moved yet"
    );

    // Auto, by name, as JSON: every device moves to a healthy node, fra-1 drains.
    let mut out = Vec::new();
    run(
        cli(&["nodes", "evacuate", "fra-1", "--yes", "--json"]),
        &mut out,
    )
    .await
    .unwrap();
    let done: Evacuation = serde_json::from_slice(&out).unwrap();
    assert_eq!(done.node, fra);
    assert!(done.failed.is_empty(), "{:?}", done.failed);
    assert_eq!(done.moved.len(), before.len());
    assert!(done.moved.iter().all(|m| m.to == ams || m.to == nyc));
    for m in &done.moved {
        assert!(
            before
                .iter()
                .any(|p| p.id == m.old_peer && p.user == m.user),
            "{m:?}"
        );
    }
    let fra_view = demo.api.node(fra).await.unwrap();
    assert_eq!(fra_view.node.state, NodeState::Draining);
    assert_eq!(fra_view.peers, 0);
    assert!(demo.api.peers(on(fra)).await.unwrap().is_empty());

    // To a region, by id, as text: one line per device.
    let on_ams = demo.api.peers(on(ams)).await.unwrap();
    let mut out = Vec::new();
    run(
        cli(&[
            "nodes",
            "evacuate",
            &format!("n{ams}"),
            "--to",
            "us-nyc",
            "--yes",
        ]),
        &mut out,
    )
    .await
    .unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.starts_with(&format!(
            "evacuated ams-1: moved {}, failed 0\n",
            on_ams.len()
        )),
        "{text}"
    );
    assert_eq!(text.matches("-> nyc-1").count(), on_ams.len(), "{text}");
    assert!(demo.api.peers(on(ams)).await.unwrap().is_empty());

    // A draining node takes nothing: the API says no.
    let err = run(
        cli(&["nodes", "evacuate", "nyc-1", "--to", "fra-1", "--yes"]),
        &mut Vec::new(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.exit_code(), 4, "{err}");

    // From the dashboard: E on nyc-1 after fra-1 is active again.
    demo.api.activate_node(fra).await.unwrap();
    let devices = demo.api.node(nyc).await.unwrap().peers;
    let outcome = vpnctl_tui::runtime::execute(
        &demo.api,
        &Command::Evacuate {
            node: nyc,
            name: "nyc-1".into(),
            devices,
            configs: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(
        outcome,
        Outcome::Done(format!("evacuated nyc-1: moved {devices}, failed 0"))
    );

    // End to end: fra-1 now holds every device, and its (simulated) interface has
    // exactly the keys of those whose users have access once it caught up.
    let all = demo.api.peers(on(fra)).await.unwrap();
    assert_eq!(
        u64::try_from(all.len()).unwrap(),
        demo.api.node(fra).await.unwrap().peers
    );
    let users = demo.api.users().await.unwrap();
    let want: std::collections::BTreeSet<_> = all
        .iter()
        .filter(|p| {
            users
                .iter()
                .any(|u| u.id == p.user && vpnctl_core::access::serves_devices(u))
        })
        .map(|p| p.public_key)
        .collect();
    assert!(want.len() < all.len(), "mallory is disabled");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let view = demo.api.node(fra).await.unwrap();
        let report = demo.api.node_report(fra).await.unwrap();
        let have: std::collections::BTreeSet<_> = report
            .iter()
            .flat_map(|r| r.report.peers.iter().map(|p| p.public_key))
            .collect();
        if view.health.in_sync && have == want {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "fra-1 did not apply the moved peers: {} of {}",
            have.intersection(&want).count(),
            want.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    demo.stop().await;
}

#[tokio::test]
async fn unreachable_api_is_a_message_not_a_crash() {
    let api = ApiClient::new(
        "http://127.0.0.1:1",
        Some(Secret::new("vpt_x".into())),
        None,
    )
    .unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let _worker = spawn_worker(api, tx);
    let mut app = App::new("unreachable", vpnctl_core::Timestamp::now());
    until(&mut app, &mut rx, |app| {
        matches!(app.connection, Connection::Failed(_))
    })
    .await;
    assert!(
        matches!(&app.connection, Connection::Failed(m) if m.contains("cannot reach")),
        "{:?}",
        app.connection
    );

    use clap::Parser as _;
    let config = Config::try_parse_from([
        "vpnctl",
        "--api",
        "http://127.0.0.1:1",
        "--token",
        "vpt_x",
        "users",
        "list",
    ])
    .unwrap();
    let err = run(config, &mut Vec::new()).await.unwrap_err();
    assert_eq!(err.exit_code(), 3, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_rotate_and_nodes_delete_from_the_cli() {
    let demo = Demo::start(DemoOptions::default()).await.unwrap();
    let (_, token) = demo.vpn.create_token(Scope::Admin, "cli test").unwrap();
    let cli = |token: &str, args: &[&str]| {
        let mut argv = vec!["vpnctl", "--api", demo.url.as_str(), "--token", token];
        argv.extend_from_slice(args);
        use clap::Parser as _;
        Config::try_parse_from(argv).unwrap()
    };
    // A new admin token works; the old one stops working once revoked.
    let mut out = Vec::new();
    run(
        cli(
            token.expose(),
            &[
                "tokens", "create", "--scope", "admin", "--label", "alice", "--json",
            ],
        ),
        &mut out,
    )
    .await
    .unwrap();
    let created: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert_eq!(created["token"]["label"], "alice");
    let mut out = Vec::new();
    run(cli(&secret, &["tokens", "list"]), &mut out)
        .await
        .unwrap();
    let list = String::from_utf8(out).unwrap();
    assert!(
        list.contains("alice") && list.contains("cli test"),
        "{list}"
    );
    assert!(!list.contains(&secret), "a listing never shows secrets");
    let old_id = demo
        .vpn
        .tokens()
        .unwrap()
        .into_iter()
        .find(|t| t.label == "cli test")
        .unwrap()
        .id;
    run(
        cli(&secret, &["tokens", "revoke", &old_id.to_string()]),
        &mut Vec::new(),
    )
    .await
    .unwrap();
    let err = run(cli(token.expose(), &["nodes", "list"]), &mut Vec::new())
        .await
        .unwrap_err();
    assert_eq!(err.exit_code(), 4, "{err}");
    let err = {
        use clap::Parser as _;
        Config::try_parse_from([
            "vpnctl", "tokens", "create", "--scope", "node", "--label", "x",
        ])
    };
    assert!(err.is_err(), "node tokens come from enrollment only");

    // Delete: a node with devices needs --force, and asks first.
    let nodes = demo.api.nodes().await.unwrap();
    let fra = nodes.iter().find(|v| v.node.name == "fra-1").unwrap();
    assert!(fra.peers > 0);
    let err = run_with(
        cli(&secret, &["nodes", "delete", "fra-1"]),
        &mut Vec::new(),
        &mut |_| None,
    )
    .await
    .unwrap_err();
    assert_eq!(err.exit_code(), 2, "{err}");
    let err = run(
        cli(&secret, &["nodes", "delete", "fra-1", "--yes"]),
        &mut Vec::new(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.exit_code(), 4, "devices on it: {err}");
    let mut asked = Vec::new();
    run_with(
        cli(&secret, &["nodes", "delete", "fra-1", "--force"]),
        &mut Vec::new(),
        &mut |q: &str| {
            asked.push(q.to_owned());
            Some(true)
        },
    )
    .await
    .unwrap();
    assert!(
        asked[0].contains(&format!("revoke its {} devices", fra.peers)),
        "{asked:?}"
    );
    assert!(
        !demo
            .api
            .nodes()
            .await
            .unwrap()
            .iter()
            .any(|v| v.node.name == "fra-1")
    );
    demo.stop().await;
}

#[tokio::test]
async fn a_demo_larger_than_its_pools_is_refused_up_front() {
    // Three /16 pools less the seeded devices (and one per node for the round).
    assert_eq!(vpnctl_tui::demo::max_extra_peers(), 196_452);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let e = Demo::start(DemoOptions {
        data: Some(data.clone()),
        extra_peers: 200_000,
        ..DemoOptions::default()
    })
    .await
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "demo setup: --peers 200000: the demo's three nodes have room for 196452 extra peers (their pools are /16)"
    );
    assert!(!data.exists(), "nothing was made");
}

/// Changes of many rows at once (an evacuation, a user or node deleted with their
/// devices) reach the dashboard as the rows their events name, read again by id in
/// a few requests, and leave its tables exactly as a full read would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broad_changes_are_read_again_by_id_and_match_a_full_read() {
    let demo = Demo::start(DemoOptions {
        extra_peers: 600,
        ..DemoOptions::default()
    })
    .await
    .unwrap();
    let api = &demo.api;
    let mut app = App::new("t", vpnctl_core::Timestamp::now());
    let first = runtime::fetch_snapshot(api).await.unwrap();
    update(&mut app, Action::Data(Box::new(first)));
    let seen = api
        .events_before(None, Some(1))
        .await
        .unwrap()
        .last()
        .map_or(0, |e| e.seq);
    let nodes = api.nodes().await.unwrap();
    let id_of = |name: &str| {
        nodes
            .iter()
            .find(|v| v.node.name == name)
            .map(|v| v.node.id)
            .unwrap()
    };
    let (fra, ams) = (id_of("fra-1"), id_of("ams-1"));
    let moved = api.evacuate_node(fra, vpnctl_core::EvacuateTo::Auto).await;
    let moved = moved.unwrap().moved.len();
    let owner = app
        .peers
        .iter()
        .find(|p| p.node == ams)
        .map(|p| p.user)
        .unwrap();
    api.delete_user(owner).await.unwrap();
    api.delete_node(ams, true).await.unwrap();

    let mut dirty = vpnctl_tui::app::Dirty::default();
    let mut after = seen;
    loop {
        let events = api.events(Some(after), None).await.unwrap();
        let Some(last) = events.last() else { break };
        after = last.seq;
        for e in &events {
            dirty.note(&e.kind);
        }
    }
    assert!(!dirty.everything, "named rows only");
    // Each moved device is two peers (the old revoked, the new issued); more
    // rows than the 256 that used to send the dashboard back to a full read.
    assert!(
        dirty.peers.len() >= 2 * moved && dirty.peers.len() > 256,
        "{moved} devices moved, {} peers to read",
        dirty.peers.len()
    );
    let changes = runtime::fetch_changes(api, &dirty, true, &[])
        .await
        .unwrap();
    assert!(changes.users_gone.contains(&owner));
    update(&mut app, Action::Changes(Box::new(changes)));

    let full = runtime::fetch_snapshot(api).await.unwrap();
    assert_eq!(app.users, full.users);
    assert_eq!(app.peers, full.peers);
    assert!(app.peers.iter().all(|p| p.node != fra && p.node != ams));
    let mut counts = std::collections::HashMap::new();
    for p in &full.peers {
        *counts.entry(p.user).or_insert(0_u32) += 1;
    }
    assert_eq!(app.devices, counts, "device counts follow the rows");
    assert!(app.nodes.iter().all(|v| v.node.id != ams), "node list read");
    demo.stop().await;
}

/// The event stream ends (here every second: `event_stream_max_secs`) and the
/// dashboard reconnects from the last event it saw: what changed meanwhile is
/// replayed, so it reads those rows, not its tables again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnected_stream_reads_changes_not_tables() {
    use vpnctl_testbed::control_plane::ControlPlane;
    use vpnctl_testbed::scale::CountingRelay;
    let cp = ControlPlane::builder()
        .configure(|c| c.limits.event_stream_max_secs = 1)
        .start()
        .await;
    let users = 400;
    for i in 0..users {
        cp.vpn
            .create_user(vpnctl_core::NewUser {
                name: format!("user{i}"),
                ..vpnctl_core::NewUser::default()
            })
            .unwrap();
    }
    let relay = CountingRelay::start(cp.addr()).await;
    let api = ApiClient::new(&relay.url(), Some(cp.admin_token.clone()), None).unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let _worker = spawn_worker(api, tx);
    let mut app = App::new("t", vpnctl_core::Timestamp::now());
    until(&mut app, &mut rx, |app| app.users.len() == users).await;
    let first = relay.received();

    // Three ends of the stream pass, and a change made while it is away arrives.
    let away = tokio::time::Instant::now() + Duration::from_millis(3500);
    while let Ok(Some(action)) = tokio::time::timeout_at(away, rx.recv()).await {
        update(&mut app, action);
    }
    let renamed = app.users[7].id;
    cp.vpn
        .update_user(
            renamed,
            vpnctl_core::UserPatch {
                name: Some("renamed".into()),
                ..vpnctl_core::UserPatch::default()
            },
        )
        .unwrap();
    until(&mut app, &mut rx, |app| app.user_name(renamed) == "renamed").await;
    let since = relay.received() - first;
    eprintln!("first read {first} bytes; then {since} bytes over the reconnects and the change");
    assert!(
        since < first / 2,
        "{since} bytes read after a first read of {first}: the tables again"
    );
}

/// A change committed while the dashboard starts — after its first read of the
/// tables, before it knows where the event log ends — is not lost: the tables are
/// read only once the stream is open. A relay holds the dashboard's first read of
/// the log while a user is renamed; before, the tables had been read already and
/// the stream began after the rename, so the old name stayed on screen for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_while_the_dashboard_starts_is_not_lost() {
    use std::sync::Arc;
    use std::sync::atomic::Ordering;
    use vpnctl_testbed::control_plane::ControlPlane;

    let cp = ControlPlane::start().await;
    let users: Vec<_> = (0..20)
        .map(|i| {
            cp.vpn
                .create_user(vpnctl_core::NewUser {
                    name: format!("user{i}"),
                    ..vpnctl_core::NewUser::default()
                })
                .unwrap()
                .id
        })
        .collect();

    // A relay that holds any request for a page of the log until `open`.
    let gate = GateRelay::start(cp.addr(), b"GET /v1/events?before=", false).await;
    let (relay, held, open) = (
        gate.url.clone(),
        Arc::clone(&gate.held),
        Arc::clone(&gate.open),
    );

    let api = ApiClient::new(&relay, Some(cp.admin_token.clone()), None).unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let _worker = spawn_worker(api, tx);
    let mut app = App::new("t", vpnctl_core::Timestamp::now());
    // The log's first page is held; whatever else the dashboard reads now, it reads.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !held.load(Ordering::SeqCst) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the log is read at start"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let settle = tokio::time::Instant::now() + Duration::from_millis(700);
    while let Ok(Some(action)) = tokio::time::timeout_at(settle, rx.recv()).await {
        update(&mut app, action);
    }
    let renamed = users[7];
    cp.vpn
        .update_user(
            renamed,
            vpnctl_core::UserPatch {
                name: Some("renamed".into()),
                ..vpnctl_core::UserPatch::default()
            },
        )
        .unwrap();
    open.store(true, Ordering::SeqCst);
    // Poll reads (every 2 s) come and go meanwhile: several of them pass.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
    while !(app.users.len() == users.len() && app.user_name(renamed) == "renamed") {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(action)) => update(&mut app, action),
            _ => panic!(
                "the rename is not on screen: {} users, user 7 is {:?}",
                app.users.len(),
                app.user_name(renamed)
            ),
        }
    }
    drop(gate);
}

/// A user made directly in the control plane's store, as another admin would.
fn add_user(cp: &vpnctl_testbed::control_plane::ControlPlane, name: String) -> vpnctl_core::UserId {
    cp.vpn
        .create_user(vpnctl_core::NewUser {
            name,
            ..vpnctl_core::NewUser::default()
        })
        .unwrap()
        .id
}

/// Waits until a stopped control plane's last tasks let go of its store.
async fn store_closed(data: &std::path::Path) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while let Err(e) = vpnctl_core::Vpnctl::open_dir(data) {
        assert!(tokio::time::Instant::now() < deadline, "{e}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A dashboard on `cp` that has seen `kept` and then ten more users and `kept[1]`
/// renamed: what a restore from a backup taken before will lose.
async fn dashboard_sees_ten_users_and_a_rename(
    cp: &vpnctl_testbed::control_plane::ControlPlane,
    token: Secret,
    kept: &[vpnctl_core::UserId],
) -> (App, mpsc::UnboundedReceiver<Action>, impl Sized + use<>) {
    let api = ApiClient::new(&cp.url, Some(token), None).unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let worker = spawn_worker(api, tx);
    let mut app = App::new("t", vpnctl_core::Timestamp::now());
    until(&mut app, &mut rx, |app| app.users.len() == kept.len()).await;
    for i in 0..10 {
        add_user(cp, format!("lost{i}"));
    }
    cp.vpn
        .update_user(
            kept[1],
            vpnctl_core::UserPatch {
                name: Some("renamed".into()),
                ..vpnctl_core::UserPatch::default()
            },
        )
        .unwrap();
    until(&mut app, &mut rx, |app| {
        app.users.len() == kept.len() + 10 && app.user_name(kept[1]) == "renamed"
    })
    .await;
    (app, rx, worker)
}

/// The control plane comes back on a store restored by `vpnctld restore` from a
/// backup older than what the dashboard saw, and the restored store commits more
/// events than were lost before the dashboard is back (it retries every 2 s). Its
/// event log has another identity, so the dashboard still learns of the restore: it
/// reads everything again and shows only the restored log's events. (Before, it
/// resumed after the last event it saw, now a number of the restored history, and
/// kept the users the restore removed.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_restored_by_vpnctld_restore_is_read_again() {
    use vpnctl_core::backup::{self, BackupKey, RestoreKey};
    use vpnctl_testbed::control_plane::ControlPlane;
    let dir = tempfile::tempdir().unwrap();
    let (data, restored) = (dir.path().join("data"), dir.path().join("restored"));
    let mut cp = ControlPlane::builder().data_dir(&data).start().await;
    let kept: Vec<_> = (0..5).map(|i| add_user(&cp, format!("kept{i}"))).collect();
    let blob = cp
        .vpn
        .backup(
            &BackupKey::Passphrase {
                passphrase: "correct horse".to_owned().into(),
                work_factor: Some(10),
            },
            &[],
        )
        .unwrap();
    let backup_end = cp.vpn.last_event_seq().unwrap();
    let (token, addr) = (cp.admin_token.clone(), cp.addr());
    let (mut app, mut rx, _worker) = dashboard_sees_ten_users_and_a_rename(&cp, token, &kept).await;
    let lost_end = cp.vpn.last_event_seq().unwrap();
    cp.stop().await;
    drop(cp);
    store_closed(&data).await;

    backup::restore(&blob, &RestoreKey::passphrase("correct horse"), &restored).unwrap();
    // Past what was lost before it serves: only the log's identity can tell.
    let new: Vec<_> = {
        let store = vpnctl_core::Vpnctl::open_dir(&restored).unwrap();
        (0..30)
            .map(|i| {
                store
                    .create_user(vpnctl_core::NewUser {
                        name: format!("new{i}"),
                        ..vpnctl_core::NewUser::default()
                    })
                    .unwrap()
                    .id
            })
            .collect()
    };
    store_closed(&restored).await;
    let back = ControlPlane::builder()
        .data_dir(&restored)
        .configure(move |c| c.listen = addr)
        .start()
        .await;
    let newest = back.vpn.last_event_seq().unwrap();
    assert!(
        newest > lost_end,
        "the restored store went past what was lost"
    );
    until(&mut app, &mut rx, |app| {
        app.users.len() == kept.len() + new.len()
            && app.user_name(kept[1]) == "kept1"
            && app.events.back().is_some_and(|e| e.seq == newest)
    })
    .await;
    // The Events tab shows the restored log, not the lost one's events under
    // the same numbers.
    let restored_log = back.vpn.recent_events(app.events.len()).unwrap();
    assert!(
        app.events.iter().eq(restored_log.iter()),
        "events the restore lost are still shown (backup ended at #{backup_end})"
    );
}

/// The control plane comes back on a store restored from an older backup: its
/// event log ends before the events the dashboard has seen, and the numbers would
/// be given again. The server says so (409 to `after=` past its end) and the
/// dashboard reads everything again: the users made since the backup go, the
/// rename made since is undone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_restored_from_a_backup_is_read_again() {
    use vpnctl_testbed::control_plane::ControlPlane;
    fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                copy_dir(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), &target).unwrap();
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let (data, backup) = (dir.path().join("data"), dir.path().join("backup"));
    let mut cp = ControlPlane::builder().data_dir(&data).start().await;
    let kept: Vec<_> = (0..5).map(|i| add_user(&cp, format!("kept{i}"))).collect();
    let (token, addr) = (cp.admin_token.clone(), cp.addr());
    cp.stop().await;
    drop(cp);
    store_closed(&data).await;
    copy_dir(&data, &backup);
    let on = |dir: &std::path::Path| {
        ControlPlane::builder()
            .data_dir(dir)
            .configure(move |c| c.listen = addr)
    };
    let mut cp = on(&data).start().await;

    let (mut app, mut rx, _worker) = dashboard_sees_ten_users_and_a_rename(&cp, token, &kept).await;

    cp.stop().await;
    drop(cp);
    store_closed(&data).await;
    let restored = on(&backup).start().await;
    until(&mut app, &mut rx, |app| {
        app.users.len() == kept.len() && app.user_name(kept[1]) == "kept1"
    })
    .await;
    // Its events replace those shown, and new ones (numbered lower than the
    // events seen before) arrive.
    let newest = restored.vpn.last_event_seq().unwrap();
    until(&mut app, &mut rx, |app| {
        app.events.back().is_some_and(|e| e.seq == newest)
    })
    .await;
    let again = add_user(&restored, "after-restore".into());
    until(&mut app, &mut rx, |app| {
        app.user_name(again) == "after-restore"
            && app.events.back().is_some_and(|e| e.seq == newest + 1)
    })
    .await;
    drop(restored);
}

/// The first read comes in pages: the nodes and the first page of users and peers
/// are on screen at once ("loading N%"), the rest follow page by page, and the
/// tables then hold exactly what one whole read holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_read_comes_in_pages() {
    use vpnctl_testbed::control_plane::ControlPlane;
    use vpnctl_tui::app::Tab;
    fn screen(app: &App) -> String {
        let mut terminal =
            ratatui::Terminal::new(ratatui::backend::TestBackend::new(120, 30)).unwrap();
        terminal
            .draw(|frame| frame.render_widget(app, frame.area()))
            .unwrap();
        let buffer = terminal.backend().buffer();
        buffer
            .content()
            .iter()
            .map(ratatui::buffer::Cell::symbol)
            .collect()
    }
    let cp = ControlPlane::start().await;
    let node = cp.enrolled_node("fra-1").await.node;
    let owners: Vec<_> = (0..2_500)
        .map(|i| {
            cp.vpn
                .create_user(vpnctl_core::NewUser {
                    name: format!("user{i:04}"),
                    ..vpnctl_core::NewUser::default()
                })
                .unwrap()
                .id
        })
        .collect();
    cp.vpn
        .issue_peers(
            owners
                .iter()
                .take(1_500)
                .map(|&user| vpnctl_core::IssuePeer {
                    user,
                    node: node.id,
                    device: "phone".into(),
                    public_key: Some(vpnctl_core::KeyPair::generate().public),
                })
                .collect(),
        )
        .unwrap();
    let api = cp.admin();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (commands, _reports) = spawn_worker(api.clone(), tx);
    let mut app = App::new("t", vpnctl_core::Timestamp::now());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut rows = 0;
    loop {
        let action = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .expect("the first read finishes")
            .expect("worker alive");
        match &action {
            Action::Data(first) => {
                assert!(first.more, "more pages follow");
                assert_eq!((first.users.len(), first.peers.len()), (1_000, 1_000));
                update(&mut app, action);
                assert_eq!(app.connection, Connection::Loading);
                let header = screen(&app);
                assert!(header.contains("loading 66%"), "{header}");
                continue;
            }
            Action::Rows { done, .. } => {
                let done = *done;
                rows += 1;
                update(&mut app, action);
                if done {
                    break;
                }
            }
            _ => update(&mut app, action),
        }
    }
    assert_eq!(rows, 3 + 1, "two pages of users, one of peers, the end");
    assert_eq!(app.connection, Connection::Live);
    let whole = vpnctl_tui::runtime::fetch_snapshot(&api).await.unwrap();
    let ids = |users: &[vpnctl_core::User]| users.iter().map(|u| u.id).collect::<Vec<_>>();
    assert_eq!(ids(&app.users), ids(&whole.users));
    assert_eq!(app.peers, whole.peers);
    assert_eq!(app.view(Tab::Users).len(), whole.users.len());
    assert!(whole.users.len() >= 2_500);
    assert_eq!(app.view(Tab::Peers).len(), 1_500);
    assert_eq!(app.devices.values().sum::<u32>(), 1_500);
    assert!(screen(&app).contains("● live"));

    // A later full read (`R`) replaces the tables at once, never with one page.
    commands.send(Command::Reload).unwrap();
    loop {
        let action = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .expect("the reload arrives")
            .expect("worker alive");
        if let Action::Data(again) = &action {
            assert!(!again.more);
            assert_eq!(again.peers.len(), 1_500);
            break;
        }
        assert!(!matches!(action, Action::Rows { .. }), "paged again");
    }
}

/// An empty event log (retention pruned every event) gives the dashboard no event
/// to resume from; the stream says where it began, so when the control plane
/// restarts a change made while it was down is replayed and shown. Before, the
/// reconnect started from whatever was newest then, and the change was never
/// shown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_while_away_from_an_empty_log_is_shown() {
    use vpnctl_testbed::control_plane::ControlPlane;
    let clock = vpnctl_core::ManualClock::new(vpnctl_core::Timestamp::now());
    let mut cp = ControlPlane::builder().clock(&clock).start().await;
    cp.vpn
        .create_user(vpnctl_core::NewUser {
            name: "old".into(),
            ..vpnctl_core::NewUser::default()
        })
        .unwrap();
    clock.advance(400 * 86_400);
    cp.vpn.prune_events().unwrap();
    assert!(
        cp.vpn.recent_events(10).unwrap().is_empty(),
        "the log is empty"
    );

    let (tx, mut rx) = mpsc::unbounded_channel();
    let _worker = spawn_worker(cp.admin(), tx);
    let mut app = App::new("t", vpnctl_core::Timestamp::now());
    until(&mut app, &mut rx, |app| {
        app.connection == Connection::Live && app.users.iter().any(|u| u.name == "old")
    })
    .await;
    cp.stop().await;
    let away = cp
        .vpn
        .create_user(vpnctl_core::NewUser {
            name: "while-away".into(),
            ..vpnctl_core::NewUser::default()
        })
        .unwrap()
        .id;
    tokio::time::sleep(Duration::from_millis(500)).await;
    cp.restart().await;
    until(&mut app, &mut rx, |app| app.user_name(away) == "while-away").await;
}

/// A loopback relay to the control plane that, for a request starting with
/// `pattern`, either holds it until `open` (setting `held`) or, with `refuse`,
/// closes the connection.
struct GateRelay {
    url: String,
    held: std::sync::Arc<std::sync::atomic::AtomicBool>,
    open: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl GateRelay {
    async fn start(target: std::net::SocketAddr, pattern: &'static [u8], refuse: bool) -> Self {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        use tokio::net::{TcpListener, TcpStream};
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (held, open) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        let task = {
            let (held, open) = (Arc::clone(&held), Arc::clone(&open));
            tokio::spawn(async move {
                while let Ok((client, _)) = listener.accept().await {
                    let (held, open) = (Arc::clone(&held), Arc::clone(&open));
                    tokio::spawn(async move {
                        let Ok(server) = TcpStream::connect(target).await else {
                            return;
                        };
                        let (mut cr, mut cw) = client.into_split();
                        let (mut sr, mut sw) = server.into_split();
                        let up = async move {
                            let mut buf = vec![0u8; 64 * 1024];
                            while let Ok(n) = cr.read(&mut buf).await {
                                if n == 0 {
                                    break;
                                }
                                if buf[..n].windows(pattern.len()).any(|w| w == pattern) {
                                    held.store(true, Ordering::SeqCst);
                                    if refuse {
                                        return false;
                                    }
                                    while !open.load(Ordering::SeqCst) {
                                        tokio::time::sleep(Duration::from_millis(10)).await;
                                    }
                                }
                                if sw.write_all(&buf[..n]).await.is_err() {
                                    break;
                                }
                            }
                            true
                        };
                        let down = async move {
                            let _ = tokio::io::copy(&mut sr, &mut cw).await;
                        };
                        // A refused request closes both ways at once.
                        tokio::select! {
                            keep = up => if keep { std::future::pending::<()>().await },
                            () = down => {}
                        }
                    });
                }
            })
        };
        Self {
            url,
            held,
            open,
            task,
        }
    }
}

impl Drop for GateRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The event stream cannot be opened (here every request for it is refused):
/// the dashboard still reads and shows the tables, and says what fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tables_are_shown_when_the_event_stream_cannot_open() {
    use vpnctl_testbed::control_plane::ControlPlane;
    let cp = ControlPlane::start().await;
    for i in 0..5 {
        cp.vpn
            .create_user(vpnctl_core::NewUser {
                name: format!("user{i}"),
                ..vpnctl_core::NewUser::default()
            })
            .unwrap();
    }
    let gate = GateRelay::start(cp.addr(), b"GET /v1/events/stream", true).await;
    let api = ApiClient::new(&gate.url, Some(cp.admin_token.clone()), None).unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let _worker = spawn_worker(api, tx);
    let mut app = App::new("t", vpnctl_core::Timestamp::now());
    let t = tokio::time::Instant::now();
    until(&mut app, &mut rx, |app| {
        app.users
            .iter()
            .filter(|u| u.name.starts_with("user"))
            .count()
            == 5
            && matches!(app.connection, Connection::Failed(_))
    })
    .await;
    assert!(
        t.elapsed() < vpnctl_tui::runtime::STREAM_WAIT,
        "shown at the first failure, not after waiting for the stream"
    );
    assert!(gate.held.load(std::sync::atomic::Ordering::SeqCst));
}
