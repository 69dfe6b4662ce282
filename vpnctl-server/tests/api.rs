//! The HTTP API over real loopback HTTP and a real redb store: the admin/bot/node
//! flow through the typed client, authentication on every route, malformed input,
//! and the live event stream.

use std::time::Duration;

use futures_util::StreamExt as _;
use reqwest::{Method, StatusCode};
use vpnctl_api::ApiError;
use vpnctl_api::body::{CreateInvite, CreateUser, IssuePeerRequest, PeerQuery};
use vpnctl_client::ClientError;
use vpnctl_core::wire::{DesiredUpdate, NodeReport, SystemStats};
use vpnctl_core::{Availability, EventKind, Health, KeyPair, NodeState, Placement, Scope, Secret};
use vpnctl_testbed::control_plane::{ControlPlane, EnrolledNode, nodes_add};

fn report(applied: u64) -> NodeReport {
    NodeReport {
        applied_revision: applied,
        interface_up: true,
        listen_port: Some(51820),
        public_key: None,
        peers: Vec::new(),
        system: SystemStats::default(),
        strays_removed: Vec::new(),
        errors: Vec::new(),
        at: vpnctl_core::Timestamp(0),
        health_port: None,
    }
}

fn status(e: &ClientError) -> u16 {
    e.status()
        .unwrap_or_else(|| panic!("expected an API error, got {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_bot_and_node_flow() {
    let mut srv = ControlPlane::start().await;
    let admin = srv.admin();
    admin.healthz().await.unwrap();

    // Node: register, join token, enroll (the join secret is single use).
    let node = admin
        .register_node(&nodes_add(
            "fra-1",
            "de-fra",
            "vpn.example.com:51820",
            "10.8.0.0/16",
        ))
        .await
        .unwrap();
    assert!(node.public_key.is_none());
    let (join, _) = admin.create_join_token(node.id, Some(600)).await.unwrap();
    assert_eq!(join.url, srv.url);
    assert_eq!(join.fingerprint, None);
    let joiner = vpnctl_client::ApiClient::for_join_token(&join).unwrap();
    let node_key = KeyPair::generate().public;
    let (enrolled, node_token) = joiner.enroll(&join, node_key, Some(51821)).await.unwrap();
    assert_eq!(enrolled.public_key, Some(node_key));
    assert_eq!(enrolled.listen_port, 51821);
    assert!(node_token.expose().starts_with("vpt_"));
    let again = joiner.enroll(&join, node_key, None).await.unwrap_err();
    assert_eq!(status(&again), 403);
    assert_eq!(again.code(), Some(vpnctl_api::ErrorCode::JoinTokenInvalid));
    let node_api = joiner.with_token(node_token);

    let first = node_api.desired(node.id, 0, Duration::ZERO).await.unwrap();
    assert!(matches!(first, DesiredUpdate::Snapshot(ref s) if s.peers.is_empty()));

    // User and peer.
    let user = admin
        .create_user(&CreateUser {
            name: "alice".into(),
            telegram_id: Some(42),
            ..CreateUser::default()
        })
        .await
        .unwrap();
    assert_eq!(
        admin.user_by_telegram(42).await.unwrap().map(|u| u.id),
        Some(user.id)
    );
    let issued = admin
        .issue_peer(&IssuePeerRequest {
            user: user.id,
            node: node.id,
            device: "phone".into(),
            public_key: None,
        })
        .await
        .unwrap();
    assert!(issued.config.as_deref().unwrap().contains("[Interface]"));
    assert!(!format!("{issued:?}").contains("PrivateKey"));
    let text = admin.peer_config(issued.peer.id).await.unwrap();
    assert!(text.contains("PrivateKey = "));
    assert!(text.contains(&format!("PublicKey = {node_key}")));
    let png = admin.peer_qr_png(issued.peer.id).await.unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");

    let rotated = admin.rotate_peer(issued.peer.id, None).await.unwrap();
    assert_ne!(rotated.peer.public_key, issued.peer.public_key);
    assert_eq!(rotated.peer.ipv4, issued.peer.ipv4);

    // The node sees the rotated key and reports.
    let DesiredUpdate::Snapshot(snapshot) =
        node_api.desired(node.id, 0, Duration::ZERO).await.unwrap()
    else {
        panic!("expected a snapshot");
    };
    assert_eq!(snapshot.peers.len(), 1);
    assert_eq!(snapshot.peers[0].public_key, rotated.peer.public_key);
    // The node list is served from a cache: each change below must still show.
    let listed = admin.nodes().await.unwrap();
    assert!(listed[0].report.is_none());
    assert_eq!(admin.nodes().await.unwrap()[0].peers, 1);
    let mut with_traffic = report(snapshot.revision);
    with_traffic.peers.push(vpnctl_core::wire::PeerStats {
        public_key: rotated.peer.public_key,
        endpoint: None,
        last_handshake: None,
        rx_bytes: 1234,
        tx_bytes: 5678,
    });
    node_api.report(node.id, &with_traffic).await.unwrap();
    let listed = admin.nodes().await.unwrap();
    let summary = listed[0].report.as_ref().expect("the report shows at once");
    assert_eq!((summary.rx_bytes, summary.tx_bytes), (1234, 5678));
    // Health is judged by the scheduler; judge once now instead of waiting for it.
    srv.vpn.observe_health(&[]).unwrap();
    let view = admin.node(node.id).await.unwrap();
    assert_eq!(view.health.status, Health::Up);
    assert!(view.health.in_sync);
    assert_eq!(view.peers, 1);
    assert_eq!(admin.nodes().await.unwrap()[0].health.status, Health::Up);
    assert_eq!(
        admin
            .node_report(node.id)
            .await
            .unwrap()
            .unwrap()
            .report
            .applied_revision,
        snapshot.revision
    );

    let revoked = admin.revoke_peer(issued.peer.id).await.unwrap();
    assert_eq!(revoked.id, issued.peer.id);
    assert_eq!(admin.nodes().await.unwrap()[0].peers, 0);
    assert!(admin.peers(PeerQuery::default()).await.unwrap().is_empty());
    assert_eq!(status(&admin.peer(issued.peer.id).await.unwrap_err()), 404);

    // Invites carry a deep link when the bot's username is known.
    let invite = admin.create_invite(&CreateInvite::default()).await.unwrap();
    assert_eq!(
        invite.link.as_deref(),
        Some(format!("https://t.me/test_bot?start={}", invite.code).as_str())
    );

    // The bot: peers and configs yes, tokens and node management no.
    let (bot_token, bot_secret) = admin.create_token(Scope::Bot, "bot").await.unwrap();
    let bot = srv.client(Some(&bot_secret));
    let bot_peer = bot
        .issue_peer(&IssuePeerRequest {
            user: user.id,
            node: node.id,
            device: "laptop".into(),
            public_key: None,
        })
        .await
        .unwrap();
    assert!(
        bot.peer_config(bot_peer.peer.id)
            .await
            .unwrap()
            .contains("[Peer]")
    );
    assert_eq!(bot.nodes().await.unwrap().len(), 1);
    assert_eq!(status(&bot.tokens().await.unwrap_err()), 403);
    assert_eq!(
        status(
            &bot.create_token(Scope::Admin, "escalate")
                .await
                .unwrap_err()
        ),
        403
    );
    assert_eq!(
        status(
            &bot.register_node(&nodes_add(
                "x",
                "de-fra",
                "vpn.example.com:51820",
                "10.8.0.0/16"
            ))
            .await
            .unwrap_err()
        ),
        403
    );
    assert_eq!(status(&bot.drain_node(node.id).await.unwrap_err()), 403);
    assert_eq!(
        status(&bot.create_join_token(node.id, None).await.unwrap_err()),
        403
    );
    assert_eq!(
        status(
            &bot.create_invite(&CreateInvite::default())
                .await
                .unwrap_err()
        ),
        403
    );
    // A node token is no admin either.
    assert_eq!(status(&node_api.users().await.unwrap_err()), 403);

    // Node states and a refused issue map to 409 with the core's code.
    assert_eq!(
        admin.drain_node(node.id).await.unwrap().state,
        NodeState::Draining
    );
    let refused = admin
        .issue_peer(&IssuePeerRequest {
            user: user.id,
            node: node.id,
            device: "tablet".into(),
            public_key: None,
        })
        .await
        .unwrap_err();
    assert_eq!(status(&refused), 409);
    assert_eq!(refused.code(), Some(vpnctl_api::ErrorCode::NodeDraining));
    assert_eq!(
        admin.activate_node(node.id).await.unwrap().state,
        NodeState::Active
    );

    // Revoking the bot token locks it out.
    admin.revoke_token(bot_token.id).await.unwrap();
    assert_eq!(status(&bot.nodes().await.unwrap_err()), 401);
    srv.stop().await;
}

/// Every authenticated route, with a body where one is needed.
fn routes() -> Vec<(Method, &'static str, Option<&'static str>)> {
    let j = Some("{}");
    vec![
        (Method::GET, "/v1/users", None),
        (Method::POST, "/v1/users", Some(r#"{"name":"x"}"#)),
        (Method::GET, "/v1/users/1", None),
        (Method::PATCH, "/v1/users/1", j),
        (Method::DELETE, "/v1/users/1", None),
        (
            Method::PUT,
            "/v1/users/1/state",
            Some(r#"{"state":"disabled"}"#),
        ),
        (Method::PUT, "/v1/users/1/access", Some(r#"{"until":null}"#)),
        (
            Method::POST,
            "/v1/users/1/access/extend",
            Some(r#"{"days":1}"#),
        ),
        (Method::GET, "/v1/invites", None),
        (Method::POST, "/v1/invites", j),
        (Method::GET, "/v1/invites/1", None),
        (Method::POST, "/v1/invites/1/revoke", None),
        (
            Method::POST,
            "/v1/invites/redeem",
            Some(r#"{"code":"x","name":"y"}"#),
        ),
        (Method::GET, "/v1/nodes", None),
        (Method::POST, "/v1/nodes", j),
        (Method::GET, "/v1/nodes/1", None),
        (Method::PATCH, "/v1/nodes/1", j),
        (Method::DELETE, "/v1/nodes/1", None),
        (Method::POST, "/v1/nodes/1/drain", None),
        (Method::POST, "/v1/nodes/1/disable", None),
        (Method::POST, "/v1/nodes/1/activate", None),
        (Method::POST, "/v1/nodes/1/join-token", None),
        (Method::GET, "/v1/nodes/1/desired?after=0&wait=0", None),
        (Method::POST, "/v1/nodes/1/report", j),
        (Method::GET, "/v1/nodes/1/report", None),
        (Method::GET, "/v1/peers", None),
        (Method::POST, "/v1/peers", j),
        (Method::GET, "/v1/peers/1", None),
        (Method::DELETE, "/v1/peers/1", None),
        (Method::GET, "/v1/peers/1/config", None),
        (Method::GET, "/v1/peers/1/qr", None),
        (Method::POST, "/v1/peers/1/rotate", None),
        (Method::GET, "/v1/tokens", None),
        (
            Method::POST,
            "/v1/tokens",
            Some(r#"{"scope":"bot","label":"x"}"#),
        ),
        (Method::DELETE, "/v1/tokens/1", None),
        (Method::GET, "/v1/events", None),
        (Method::GET, "/v1/events/stream", None),
        (Method::GET, "/v1/users/1/usage", None),
        (Method::POST, "/v1/nodes/1/evacuate", j),
        (Method::GET, "/v1/peers/1/traffic", None),
        (Method::GET, "/v1/notifications", None),
        (Method::POST, "/v1/notifications/ack", Some(r#"{"upto":0}"#)),
        (Method::GET, "/metrics", None),
    ]
}

async fn raw(
    http: &reqwest::Client,
    base: &str,
    method: Method,
    path: &str,
    auth: Option<&str>,
    body: Option<&str>,
) -> (StatusCode, String, Option<ApiError>) {
    let mut req = http.request(method, format!("{base}{path}"));
    if let Some(auth) = auth {
        req = req.header("authorization", auth);
    }
    if let Some(body) = body {
        req = req
            .header("content-type", "application/json")
            .body(body.to_owned());
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let bytes = resp.bytes().await.unwrap();
    (status, content_type, serde_json::from_slice(&bytes).ok())
}

fn http() -> reqwest::Client {
    // No connection reuse: the server may answer an oversized or malformed request
    // early and close that connection, and a pooled request sent on it just then
    // would fail with IncompleteMessage (seen once in CI) instead of testing the API.
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_refuses_missing_or_bad_tokens() {
    // Hundreds of refusals from one address: past the default limit they would be
    // 429s (tests/hostile.rs checks that).
    let mut srv = ControlPlane::builder()
        .configure(|c| c.limits.auth_failures_per_minute = 100_000)
        .start()
        .await;
    let http = http();
    let bad_auth = [
        None,
        Some("Bearer vpt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
        Some("Bearer not-a-token"),
        Some("Basic YWRtaW46YWRtaW4="),
        Some("Bearer "),
    ];
    for (method, path, body) in routes() {
        for auth in bad_auth {
            let (status, content_type, error) =
                raw(&http, &srv.url, method.clone(), path, auth, body).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} with {auth:?}"
            );
            assert!(
                content_type.starts_with("application/json"),
                "{method} {path}"
            );
            assert_eq!(
                error.unwrap().code,
                vpnctl_api::ErrorCode::Unauthorized,
                "{method} {path}"
            );
        }
    }
    // The unauthenticated ones.
    let (status, _, _) = raw(&http, &srv.url, Method::GET, "/healthz", None, None).await;
    assert_eq!(status, StatusCode::OK);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scopes_are_enforced_on_every_route() {
    let mut srv = ControlPlane::start().await;
    let EnrolledNode {
        node: node_a,
        client: node_api,
        ..
    } = srv.enrolled_node("fra-1").await;
    let EnrolledNode { node: node_b, .. } = srv.enrolled_node("fra-2").await;
    let http = http();
    let node_token = srv
        .vpn
        .create_token(Scope::Node(node_a.id), "node a")
        .unwrap()
        .1;
    let node_auth = format!("Bearer {}", node_token.expose());
    // A node token may only use its own desired state and report.
    for (method, path, body) in routes() {
        let (status, _, error) = raw(
            &http,
            &srv.url,
            method.clone(),
            path,
            Some(&node_auth),
            body,
        )
        .await;
        let own = path.starts_with(&format!("/v1/nodes/{}/desired", node_a.id))
            || path.starts_with(&format!("/v1/nodes/{}/report", node_a.id));
        if !own {
            assert_eq!(
                status,
                StatusCode::FORBIDDEN,
                "node token on {method} {path}"
            );
            assert_eq!(error.unwrap().code, vpnctl_api::ErrorCode::Forbidden);
        }
    }
    for path in [
        format!("/v1/nodes/{}/desired?after=0&wait=0", node_b.id),
        format!("/v1/nodes/{}/report", node_b.id),
    ] {
        let method = if path.ends_with("report") {
            Method::POST
        } else {
            Method::GET
        };
        let body = serde_json::to_string(&report(0)).unwrap();
        let (status, _, _) = raw(
            &http,
            &srv.url,
            method,
            &path,
            Some(&node_auth),
            Some(&body),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
    }
    // Its own node: fine.
    node_api.report(node_a.id, &report(0)).await.unwrap();
    node_api
        .desired(node_a.id, 0, Duration::ZERO)
        .await
        .unwrap();

    // The bot may not touch admin-only routes.
    let bot_token = srv.vpn.create_token(Scope::Bot, "bot").unwrap().1;
    let bot_auth = format!("Bearer {}", bot_token.expose());
    let admin_only = [
        (Method::POST, "/v1/users"),
        (Method::PATCH, "/v1/users/1"),
        (Method::DELETE, "/v1/users/1"),
        (Method::PUT, "/v1/users/1/state"),
        (Method::PUT, "/v1/users/1/access"),
        (Method::POST, "/v1/users/1/access/extend"),
        (Method::GET, "/v1/invites"),
        (Method::POST, "/v1/invites"),
        (Method::POST, "/v1/invites/1/revoke"),
        (Method::POST, "/v1/nodes"),
        (Method::PATCH, "/v1/nodes/1"),
        (Method::DELETE, "/v1/nodes/1"),
        (Method::POST, "/v1/nodes/1/drain"),
        (Method::POST, "/v1/nodes/1/join-token"),
        (Method::GET, "/v1/nodes/1/desired?after=0&wait=0"),
        (Method::POST, "/v1/nodes/1/report"),
        (Method::GET, "/v1/tokens"),
        (Method::POST, "/v1/tokens"),
        (Method::DELETE, "/v1/tokens/1"),
        (Method::GET, "/v1/events"),
        (Method::GET, "/v1/events/stream"),
        (Method::POST, "/v1/nodes/1/evacuate"),
        (Method::GET, "/metrics"),
    ];
    for (method, path) in admin_only {
        let body = routes()
            .into_iter()
            .find(|(m, p, _)| *m == method && *p == path)
            .and_then(|(_, _, b)| b);
        let (status, _, _) =
            raw(&http, &srv.url, method.clone(), path, Some(&bot_auth), body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "bot on {method} {path}");
    }
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_json_4xx() {
    let mut srv = ControlPlane::start().await;
    let EnrolledNode { node, .. } = srv.enrolled_node("fra-1").await;
    let http = http();
    let auth = format!("Bearer {}", srv.admin_token.expose());
    let huge = format!(r#"{{"name":"{}"}}"#, "x".repeat(200_000));
    let huge_report = "x".repeat(20 * 1024 * 1024);
    let desired_bad = format!("/v1/nodes/{}/desired?after=x", node.id);
    let desired_neg = format!("/v1/nodes/{}/desired?after=-1", node.id);
    let report_path = format!("/v1/nodes/{}/report", node.id);
    let issue_bad_key = format!(
        r#"{{"user":1,"node":{},"device":"d","public_key":"not base64"}}"#,
        node.id
    );
    let cases: Vec<(Method, &str, Option<&str>, u16)> = vec![
        (Method::POST, "/v1/users", Some("{not json"), 400),
        (Method::POST, "/v1/users", Some(r#"{"name":5}"#), 422),
        (
            Method::POST,
            "/v1/users",
            Some(r#"{"name":"a","extra":1}"#),
            422,
        ),
        (Method::POST, "/v1/users", Some(r#"{"name":""}"#), 422),
        (Method::POST, "/v1/users", Some(&huge), 413),
        (Method::POST, &report_path, Some(&huge_report), 413),
        (Method::POST, "/v1/users", Some(r#"[]"#), 422),
        (Method::POST, "/v1/peers", Some(&issue_bad_key), 422),
        (
            Method::POST,
            "/v1/peers",
            Some(r#"{"user":999,"node":999,"device":"d"}"#),
            404,
        ),
        (
            Method::POST,
            "/v1/enroll",
            Some(r#"{"join_secret":"vpj_x","public_key":"short"}"#),
            422,
        ),
        (
            Method::POST,
            "/v1/enroll",
            Some(
                r#"{"join_secret":"vpj_nope","public_key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}"#,
            ),
            403,
        ),
        (
            Method::POST,
            "/v1/nodes",
            Some(
                r#"{"name":"n","region":{"code":"x","name":"y"},"endpoint":"no port","ipv4_pool":"10.0.0.0/24"}"#,
            ),
            422,
        ),
        (
            Method::POST,
            "/v1/nodes",
            Some(
                r#"{"name":"n","region":{"code":"x","name":"y"},"endpoint":"a:1","ipv4_pool":"10.0.0.0/99"}"#,
            ),
            422,
        ),
        (Method::GET, "/v1/users/abc", None, 400),
        (Method::GET, "/v1/users/99999", None, 404),
        (Method::GET, "/v1/users/-1", None, 400),
        (Method::GET, "/v1/peers/18446744073709551616", None, 400),
        (Method::GET, "/v1/peers/77/config", None, 404),
        (Method::GET, "/v1/nodes/77", None, 404),
        (
            Method::GET,
            "/v1/nodes/77/desired?after=0&wait=0",
            None,
            404,
        ),
        (Method::GET, &desired_bad, None, 400),
        (Method::GET, &desired_neg, None, 400),
        (Method::GET, "/v1/peers?user=abc", None, 400),
        (Method::GET, "/v1/events?limit=lots", None, 400),
        (
            Method::POST,
            "/v1/nodes/1/join-token",
            Some(r#"{"valid_for_secs":1}"#),
            422,
        ),
        (Method::POST, "/v1/nodes/1/join-token", Some("{{"), 400),
        (
            Method::POST,
            "/v1/peers/1/rotate",
            Some(r#"{"public_key":7}"#),
            422,
        ),
        (Method::DELETE, "/v1/tokens/999", None, 404),
        (
            Method::PATCH,
            "/v1/users/1",
            Some(r#"{"quota":{"bytes":0,"period":"monthly"}}"#),
            422,
        ),
        (
            Method::PATCH,
            "/v1/users/1",
            Some(r#"{"quota":{"bytes":5,"period":"yearly"}}"#),
            422,
        ),
        (Method::GET, "/v1/users/999/usage", None, 404),
        (Method::GET, "/v1/peers/999/traffic", None, 404),
        (Method::POST, "/v1/nodes/999/evacuate", Some("{}"), 404),
        (
            Method::POST,
            "/v1/nodes/1/evacuate",
            Some(r#"{"to":{"type":"mars"}}"#),
            422,
        ),
        (
            Method::POST,
            "/v1/nodes/1/evacuate",
            Some(r#"{"to":{"type":"region","value":" "}}"#),
            422,
        ),
        (Method::GET, "/v1/notifications?limit=0", None, 400),
        (Method::GET, "/v1/notifications?wait_secs=soon", None, 400),
        (Method::POST, "/v1/notifications/ack", Some("{nope"), 400),
        (
            Method::POST,
            "/v1/notifications/ack",
            Some(r#"{"upto":"all"}"#),
            422,
        ),
        (
            Method::POST,
            "/v1/notifications/ack",
            Some(r#"{"upto":-1}"#),
            422,
        ),
        (
            Method::POST,
            "/v1/notifications/ack",
            Some(r#"{"upto":99}"#),
            422,
        ),
        (Method::GET, "/v1/nothing", None, 404),
        (Method::PUT, "/v1/users", None, 405),
    ];
    for (method, path, body, want) in cases {
        let (status, content_type, error) =
            raw(&http, &srv.url, method.clone(), path, Some(&auth), body).await;
        let shown: String = body.unwrap_or("").chars().take(60).collect();
        assert_eq!(status.as_u16(), want, "{method} {path} {shown}: {error:?}");
        assert!(
            content_type.starts_with("application/json"),
            "{method} {path}"
        );
        let error = error.unwrap_or_else(|| panic!("{method} {path}: no ApiError body"));
        assert!(
            error.code != vpnctl_api::ErrorCode::Unknown && !error.message.is_empty(),
            "{method} {path}: {error:?}"
        );
    }
    // JSON without a content type.
    let resp = http
        .post(format!("{}/v1/users", srv.url))
        .header("authorization", &auth)
        .body(r#"{"name":"x"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_stream_delivers_new_events() {
    let mut srv = ControlPlane::start().await;
    let admin = srv.admin();
    let stream = admin.events_stream(None).await.unwrap();
    let mut stream = Box::pin(stream);
    let user = admin
        .create_user(&CreateUser {
            name: "bob".into(),
            ..CreateUser::default()
        })
        .await
        .unwrap();
    let event = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("an event within 5 s")
        .expect("stream open")
        .unwrap();
    assert_eq!(event.kind, EventKind::UserCreated { user: user.id });

    // Resuming after a sequence number replays the backlog first.
    let replay = admin.events_stream(Some(0)).await.unwrap();
    let mut replay = Box::pin(replay);
    let first = tokio::time::timeout(Duration::from_secs(5), replay.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        first.seq,
        admin.events(Some(0), Some(1)).await.unwrap()[0].seq
    );

    // Shutdown ends the stream.
    srv.stop().await;
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(item) = stream.next().await {
            if item.is_err() {
                break;
            }
        }
    })
    .await;
    assert!(end.is_ok(), "the stream ends when the server stops");
    drop(Secret::new(String::new()));
}

/// The client's follower, as `vpnctl events --follow` and the dashboard use it:
/// across the stream's regular ends (here every second) it goes on with the next
/// event, each once; events pruned while it was away are a gap, said before the
/// next event; a place past the end of the log is a restore; a control plane away
/// is said, and followed again when back, with what it committed before it went.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_goes_on_across_ends_gaps_restores_and_restarts() {
    use vpnctl_client::Followed;
    let mut srv = ControlPlane::builder()
        .policy(vpnctl_core::Policy {
            events_keep_max: 3,
            ..vpnctl_core::Policy::default()
        })
        .configure(|c| c.limits.event_stream_max_secs = 1)
        .start()
        .await;
    let admin = srv.admin();
    let user = |name: &'static str| {
        let admin = admin.clone();
        async move {
            admin
                .create_user(&CreateUser {
                    name: name.into(),
                    ..CreateUser::default()
                })
                .await
                .unwrap()
                .id
        }
    };
    // The next thing the follower says that is not a (re)opened stream.
    async fn said(follower: &mut vpnctl_client::Follower) -> Followed {
        loop {
            match tokio::time::timeout(Duration::from_secs(10), follower.next()).await {
                Ok(Ok(Followed::Open)) => {}
                Ok(Ok(followed)) => return followed,
                Ok(Err(e)) => panic!("the follower failed: {e}"),
                Err(_) => panic!("the follower said nothing for 10 s"),
            }
        }
    }
    let created = |followed: Followed| match followed {
        Followed::Event(e) => match e.kind {
            EventKind::UserCreated { user } => user,
            other => panic!("#{}: {other:?}", e.seq),
        },
        other => panic!("not an event: {other:?}"),
    };
    let mut follower = admin.follow(None).with_retry(Duration::from_millis(200));
    assert!(matches!(follower.next().await, Ok(Followed::Open)));
    let a = user("a").await;
    assert_eq!(created(said(&mut follower).await), a);
    // The stream ends after a second; what came meanwhile is replayed, once.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let b = user("b").await;
    assert_eq!(created(said(&mut follower).await), b);
    let seen = follower.after().unwrap();

    // Away while five users come and retention keeps three events: a gap, then
    // the oldest kept.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let mut five = Vec::new();
    for name in ["c", "d", "e", "f", "g"] {
        five.push(user(name).await);
    }
    srv.vpn.prune_events().unwrap();
    assert!(matches!(said(&mut follower).await, Followed::Gap));
    assert_eq!(created(said(&mut follower).await), five[2]);
    assert!(follower.after().unwrap() > seen + 1, "c and d skipped");
    assert_eq!(created(said(&mut follower).await), five[3]);
    assert_eq!(created(said(&mut follower).await), five[4]);

    // A place past the newest event ever committed: the store went back.
    let mut restored = admin.follow(Some(follower.after().unwrap() + 10));
    assert!(matches!(restored.next().await, Ok(Followed::Restored)));
    assert!(matches!(restored.next().await, Ok(Followed::Open)));
    assert_eq!(
        restored.after(),
        follower.after(),
        "from the end of the log"
    );
    // Resumed in a later run with the log it kept: the same goes on, another
    // (a store restored since) is a restore.
    assert!(follower.log().is_some());
    let mut again = admin.follow_in(follower.after(), follower.log());
    assert!(matches!(again.next().await, Ok(Followed::Open)));
    let mut other = admin.follow_in(follower.after(), follower.log().map(|l| l ^ 1));
    assert!(matches!(other.next().await, Ok(Followed::Restored)));
    // Reopened by its caller: the same place, the same log.
    let (at, log) = (follower.after(), follower.log());
    follower.reopen();
    assert!(matches!(follower.next().await, Ok(Followed::Open)));
    assert_eq!((follower.after(), follower.log()), (at, log));

    // A stop is said; what is committed before the follower is back comes first.
    srv.stop().await;
    match said(&mut follower).await {
        Followed::Away(e) => assert!(e.is_transient(), "{e}"),
        other => panic!("the stop was not said: {other:?}"),
    }
    srv.restart().await;
    let h = user("h").await;
    assert_eq!(created(said(&mut follower).await), h);
    let i = user("i").await;
    assert_eq!(created(said(&mut follower).await), i);
    srv.stop().await;
}

/// Over TLS a stopping control plane closes the stream's connection without TLS's
/// close_notify, which reqwest reports as an error decoding the body: that is the
/// network, not the answer, and a follower says the control plane is away and
/// follows again when it is back (it used to stop `vpnctl events --follow` with
/// "unexpected response").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_over_tls_outlives_a_stop() {
    use vpnctl_client::Followed;
    let mut srv = ControlPlane::start_tls().await;
    let mut follower = srv
        .admin()
        .follow(None)
        .with_retry(Duration::from_millis(200));
    assert!(matches!(follower.next().await, Ok(Followed::Open)));
    srv.stop().await;
    match tokio::time::timeout(Duration::from_secs(10), follower.next()).await {
        Ok(Ok(Followed::Away(e))) => assert!(e.is_transient(), "{e}"),
        other => panic!("the stop was not taken for an outage: {other:?}"),
    }
    srv.restart().await;
    let user = srv
        .admin()
        .create_user(&CreateUser {
            name: "back".into(),
            ..CreateUser::default()
        })
        .await
        .unwrap();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), follower.next()).await {
            Ok(Ok(Followed::Open | Followed::Away(_))) => {}
            Ok(Ok(Followed::Event(e))) => {
                assert_eq!(e.kind, EventKind::UserCreated { user: user.id });
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    srv.stop().await;
}

/// One commit of more events than the stream's buffer and its store reads hold (a
/// node's 4,000 devices moved to another: 8,000 peers revoked and issued at once): a
/// stream that was following, one that resumes from before the burst and one opened
/// without `after` each get every event, once, in order, with none arriving after
/// them to push them out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_longer_than_the_buffer_arrives_whole() {
    let srv = ControlPlane::start().await;
    let admin = srv.admin();
    let from = srv.enrolled_node("fra1").await.node;
    let to = srv.enrolled_node("ams1").await.node;
    let user = srv
        .vpn
        .create_user(vpnctl_core::NewUser {
            name: "burst".into(),
            device_limit: Some(5_000),
            ..vpnctl_core::NewUser::default()
        })
        .unwrap();
    srv.vpn
        .issue_peers(
            (0..4_000)
                .map(|i| vpnctl_core::IssuePeer {
                    user: user.id,
                    node: from.id,
                    device: format!("d{i}"),
                    public_key: Some(KeyPair::generate().public),
                })
                .collect(),
        )
        .unwrap();
    let newest = |admin: vpnctl_client::ApiClient| async move {
        let last = admin.events_before(None, Some(1)).await.unwrap();
        last.last().map_or(0, |e| e.seq)
    };
    let start = newest(admin.clone()).await;
    let following = admin.events_stream_at(Some(start), None).await.unwrap().1;
    // Without `after`: from what is committed next, as gapless (it used to pick up
    // wherever the broadcast buffer was after falling behind).
    let (began, fresh) = admin.events_stream_at(None, None).await.unwrap();
    assert_eq!(began.after, Some(start), "it says where it began");
    // And which log: resuming in another (a store restored since) is refused.
    let log = began.log.expect("the log's identity");
    assert_eq!(log, srv.vpn.event_log_id().unwrap());
    drop(
        admin
            .events_stream_at(Some(start), Some(log))
            .await
            .unwrap(),
    );
    let Err(e) = admin.events_stream_at(Some(start), Some(log ^ 1)).await else {
        panic!("a stream in another log");
    };
    assert_eq!(status(&e), 409, "{e}");
    assert!(e.to_string().contains("restored"), "{e}");
    let moved = srv
        .vpn
        .evacuate(from.id, &vpnctl_core::EvacuateTo::Node(to.id))
        .unwrap();
    assert_eq!(moved.moved.len(), 4_000, "{:?}", moved.failed.first());
    let end = newest(admin.clone()).await;
    assert!(end - start >= 8_000, "{start}..{end}");
    let resumed = admin.events_stream_at(Some(start), None).await.unwrap().1;
    // Past the end of the log: the store went back, and says so.
    let Err(e) = admin.events_stream(Some(end + 1)).await else {
        panic!("a stream after the end of the log");
    };
    assert_eq!(
        (status(&e), e.code()),
        (409, Some(vpnctl_api::ErrorCode::Conflict)),
        "{e}"
    );
    assert!(e.to_string().contains("restored"), "{e}");
    drop(admin.events_stream(Some(end)).await.unwrap());
    for (name, stream) in [
        ("following", following),
        ("resumed", resumed),
        ("fresh", fresh),
    ] {
        let mut stream = Box::pin(stream);
        let mut seqs = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(30), async {
            while seqs.last() != Some(&end) {
                match stream.next().await {
                    Some(Ok(event)) => seqs.push(event.seq),
                    other => panic!("{name}: the stream ended: {:?}", other.map(Result::err)),
                }
            }
        })
        .await;
        assert!(
            read.is_ok(),
            "{name}: {} of {} events, the last {:?}",
            seqs.len(),
            end - start,
            seqs.last()
        );
        let gap = seqs
            .iter()
            .zip(start + 1..)
            .find(|(got, want)| **got != *want);
        assert_eq!(gap, None, "{name}: (got, wanted) at the first gap");
        assert_eq!(seqs.len() as u64, end - start, "{name}");
    }
}

/// What the bot reads instead of the fleet's full list and whole node reports:
/// node briefs that core judges exactly as the full nodes, current after every
/// change (they are served from a cache), and one user's devices with their
/// nodes and counters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_briefs_and_user_devices_are_what_the_bot_reads() {
    let srv = ControlPlane::start().await;
    let (admin, bot) = (srv.admin(), srv.bot());
    let fra = srv.enrolled_node("fra-1").await;
    let ams = srv.enrolled_node("ams-1").await;
    let fresh = srv.add_node("waw-1", "vpn3.example.com:51820").await;
    let judged_alike = |briefs: &[vpnctl_api::body::NodeBrief],
                        full: &[vpnctl_api::body::NodeView]| {
        assert_eq!(briefs.len(), full.len());
        for (b, v) in briefs.iter().zip(full) {
            assert_eq!(b.id, v.node.id);
            assert_eq!((&b.name, &b.region), (&v.node.name, &v.node.region));
            assert_eq!(b.transport, v.node.transport.kind());
            assert_eq!(
                Placement::of_brief(b),
                Placement::of(&v.node, v.health.status, v.peers),
                "{}",
                b.name
            );
        }
    };
    let briefs = bot.node_briefs().await.unwrap();
    judged_alike(&briefs, &admin.nodes().await.unwrap());
    let of = |id| {
        let b = briefs.iter().find(|b| b.id == id).unwrap();
        Placement::of_brief(b).availability
    };
    assert_eq!(of(fresh.id), Availability::NotEnrolled);
    assert_eq!(of(fra.node.id), Availability::Unknown);

    let user = admin
        .create_user(&CreateUser {
            name: "alice".into(),
            telegram_id: Some(7),
            ..CreateUser::default()
        })
        .await
        .unwrap();
    let mut issued = Vec::new();
    for (node, device) in [(ams.node.id, "laptop"), (fra.node.id, "phone")] {
        let peer = bot
            .issue_peer(&IssuePeerRequest {
                user: user.id,
                node,
                device: device.into(),
                public_key: None,
            })
            .await
            .unwrap()
            .peer;
        issued.push(peer);
    }
    admin.drain_node(ams.node.id).await.unwrap();
    // The cached briefs follow each change at once.
    let briefs = bot.node_briefs().await.unwrap();
    judged_alike(&briefs, &admin.nodes().await.unwrap());
    let ams_brief = briefs.iter().find(|b| b.id == ams.node.id).unwrap();
    assert_eq!((ams_brief.peers, ams_brief.state), (1, NodeState::Draining));
    let full_json = serde_json::to_vec(&admin.nodes().await.unwrap()).unwrap();
    let brief_json = serde_json::to_vec(&briefs).unwrap();
    assert!(
        brief_json.len() * 3 < full_json.len(),
        "briefs {} bytes, full list {} bytes",
        brief_json.len(),
        full_json.len()
    );

    // Only fra reports: its device has counters, the other has none yet.
    let mut with_traffic = report(0);
    with_traffic.peers.push(vpnctl_core::wire::PeerStats {
        public_key: issued[1].public_key,
        endpoint: Some("198.51.100.7:40000".into()),
        last_handshake: Some(vpnctl_core::Timestamp::now()),
        rx_bytes: 10,
        tx_bytes: 20,
    });
    fra.client.report(fra.node.id, &with_traffic).await.unwrap();
    let devices = bot.user_devices(user.id).await.unwrap();
    let ids: Vec<_> = devices.iter().map(|d| d.peer.id).collect();
    assert_eq!(ids, vec![issued[0].id, issued[1].id], "in id order");
    assert_eq!(devices[0].node.id, ams.node.id);
    assert_eq!(devices[0].node.state, NodeState::Draining);
    assert!(devices[0].live.is_none());
    assert_eq!(devices[1].node.name, "fra-1");
    let live = devices[1].live.expect("fra's report");
    assert_eq!((live.rx_bytes, live.tx_bytes), (10, 20));
    assert!(live.last_handshake.is_some());
    let json = serde_json::to_string(&devices).unwrap();
    assert!(!json.contains("198.51.100.7"), "no endpoint: {json}");

    // Nobody's devices: empty; no such user: 404.
    let other = admin
        .create_user(&CreateUser {
            name: "bob".into(),
            ..CreateUser::default()
        })
        .await
        .unwrap();
    assert!(bot.user_devices(other.id).await.unwrap().is_empty());
    let missing = bot
        .user_devices(vpnctl_core::UserId(999_999))
        .await
        .unwrap_err();
    assert_eq!(status(&missing), 404);
}

/// Large JSON answers are gzipped for a client that asks (`Accept-Encoding: gzip`)
/// and read back byte for byte; small ones, event streams and clients that do not
/// ask get them as they are. The typed client asks when told to (by default, for
/// any server not on loopback) and reads the same rows in under a third of the
/// bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_json_answers_are_gzipped_for_clients_that_ask() {
    use vpnctl_testbed::scale::CountingRelay;
    let srv = ControlPlane::start().await;
    for i in 0..600 {
        srv.vpn
            .create_user(vpnctl_core::NewUser {
                name: format!("user-{i:04}"),
                ..vpnctl_core::NewUser::default()
            })
            .unwrap();
    }
    let http = http();
    let auth = format!("Bearer {}", srv.admin_token.expose());
    let get = |path: &'static str, accept: Option<&'static str>| {
        let (http, auth, url) = (http.clone(), auth.clone(), srv.url.clone());
        async move {
            let mut req = http
                .get(format!("{url}{path}"))
                .header("authorization", auth);
            if let Some(accept) = accept {
                req = req.header("accept-encoding", accept);
            }
            let resp = req.send().await.unwrap();
            assert!(resp.status().is_success(), "{path}: {}", resp.status());
            let encoding = resp
                .headers()
                .get("content-encoding")
                .map(|v| v.to_str().unwrap().to_owned());
            (encoding, resp.bytes().await.unwrap())
        }
    };
    let (plain_encoding, plain) = get("/v1/users", None).await;
    assert_eq!(plain_encoding, None);
    assert!(
        plain.len() > vpnctl_api::gzip::MIN_BYTES,
        "{} bytes",
        plain.len()
    );
    let (encoding, packed) = get("/v1/users", Some("br, gzip;q=0.8")).await;
    assert_eq!(encoding.as_deref(), Some("gzip"));
    assert!(
        packed.len() * 3 < plain.len(),
        "{} of {}",
        packed.len(),
        plain.len()
    );
    assert_eq!(vpnctl_api::gzip::gunzip(&packed, 1 << 24).unwrap(), plain);
    for (path, accept) in [
        ("/v1/users", "gzip;q=0"),
        ("/v1/users", "br, deflate"),
        ("/v1/users?limit=3", "gzip"),
    ] {
        let (encoding, _) = get(path, Some(accept)).await;
        assert_eq!(encoding, None, "{path} with {accept}");
    }
    // Large answers say they vary by Accept-Encoding, compressed or not.
    let plain_vary = http
        .get(format!("{}/v1/users", srv.url))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(
        plain_vary
            .headers()
            .get("vary")
            .map(|v| v.to_str().unwrap()),
        Some("accept-encoding")
    );
    // A node's desired state carries its peers' preshared keys next to keys users
    // chose: never compressed, however large.
    let node = srv.enrolled_node("fra-1").await;
    let owner = srv
        .vpn
        .create_user(vpnctl_core::NewUser {
            name: "many".into(),
            device_limit: Some(500),
            ..vpnctl_core::NewUser::default()
        })
        .unwrap();
    srv.vpn
        .issue_peers(
            (0..200)
                .map(|i| vpnctl_core::IssuePeer {
                    user: owner.id,
                    node: node.node.id,
                    device: format!("d{i}"),
                    public_key: Some(KeyPair::generate().public),
                })
                .collect(),
        )
        .unwrap();
    let desired = http
        .get(format!("{}/v1/nodes/{}/desired", srv.url, node.node.id.0))
        .header("authorization", format!("Bearer {}", node.token.expose()))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert!(desired.status().is_success(), "{}", desired.status());
    assert_eq!(desired.headers().get("content-encoding"), None);
    assert_eq!(
        desired
            .headers()
            .get("cache-control")
            .map(|v| v.to_str().unwrap()),
        Some("no-store")
    );
    let body = desired.bytes().await.unwrap();
    assert!(
        body.len() >= vpnctl_api::gzip::MIN_BYTES,
        "{} bytes",
        body.len()
    );
    assert!(
        String::from_utf8_lossy(&body).contains("preshared_key"),
        "the answer holds preshared keys"
    );
    // An event stream is never buffered to be compressed.
    let resp = http
        .get(format!("{}/v1/events/stream", srv.url))
        .header("authorization", &auth)
        .header("accept", "text/event-stream")
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    assert_eq!(resp.headers().get("content-encoding"), None);
    drop(resp);

    // The typed client: the same rows, fewer bytes.
    let mut read = Vec::new();
    for on in [false, true] {
        let relay = CountingRelay::start(srv.addr()).await;
        let client =
            vpnctl_client::ApiClient::new(&relay.url(), Some(srv.admin_token.clone()), None)
                .unwrap()
                .with_compression(on);
        let users = client.users().await.unwrap();
        let peers = client.peers(PeerQuery::default()).await.unwrap();
        read.push((users, peers.len(), relay.received()));
    }
    let (plain, packed) = (&read[0], &read[1]);
    assert_eq!(packed.0, plain.0);
    assert_eq!(packed.0.len(), 601, "600 and the owner of the node's peers");
    assert!(
        packed.2 * 3 < plain.2,
        "{} bytes gzipped, {} plain",
        packed.2,
        plain.2
    );
}
