//! The demo end to end, without a terminal: an embedded vpnctld, three enrolled nodes
//! on the simulated backend, the dashboard's background tasks feeding an `App`, the
//! admin commands over real HTTP on loopback, and the CLI against the same API.

use std::time::Duration;

use tokio::sync::mpsc;
use vpnctl_client::ApiClient;
use vpnctl_core::{Scope, Secret};
use vpnctl_tui::app::{Action, App, Command, Connection, Health, Outcome, health, update};
use vpnctl_tui::cli::{Config, run};
use vpnctl_tui::demo::{DEMO_BOT, Demo, DemoOptions};
use vpnctl_tui::runtime::{self, spawn_worker};

async fn until(
    app: &mut App,
    rx: &mut mpsc::UnboundedReceiver<Action>,
    done: impl Fn(&App) -> bool,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !done(app) {
        let action = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .expect("state reached within 30 s")
            .expect("worker alive");
        update(app, action);
        update(app, Action::Tick(runtime::now()));
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
    let commands = spawn_worker(demo.api.clone(), tx);
    let mut app = App::new("demo test", runtime::now());

    // Three nodes up and in sync, their peers handshaking.
    until(&mut app, &mut rx, |app| {
        app.nodes.len() == 3
            && app.nodes.iter().all(|v| health(v, app.now) == Health::Up)
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
    let _commands = spawn_worker(wrong, tx);
    let mut app = App::new("wrong token", runtime::now());
    until(&mut app, &mut rx, |app| {
        matches!(app.connection, Connection::Failed(_))
    })
    .await;
    assert!(matches!(&app.connection, Connection::Failed(m) if m.contains("401")));
    assert!(app.running);

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
    let _commands = spawn_worker(api, tx);
    let mut app = App::new("unreachable", runtime::now());
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
