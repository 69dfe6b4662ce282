//! The API under hostile clients, over real loopback connections and a real store:
//! half-open TLS connections (slowloris), oversized and escape-laden node reports,
//! what each token scope may call and see, QR-sized node settings, rate limits.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use vpnctl_api::body::{CreateUser, IssuePeerRequest, PatchNode};
use vpnctl_api::routes::{self, Access, Kind, Method, TABLE};
use vpnctl_client::PinnedVerifier;
use vpnctl_core::wire::{NodeReport, PeerStats, SystemStats};
use vpnctl_core::{HealthPolicy, Policy, PublicKey, Scope, Secret, Timestamp};
use vpnctl_server::{AppState, Limits, PublicInfo};
use vpnctl_testbed::control_plane::{ControlPlane, EnrolledNode, nodes_add};
use vpnctl_testbed::rss_bytes;

fn report(errors: Vec<String>, peers: Vec<PeerStats>) -> NodeReport {
    NodeReport {
        applied_revision: 0,
        interface_up: true,
        listen_port: Some(51820),
        public_key: None,
        peers,
        system: SystemStats::default(),
        strays_removed: Vec::new(),
        errors,
        at: Timestamp::now(),
        health_port: None,
    }
}

/// A TCP connection from `source` (any 127/8 address) with a finished TLS
/// handshake and half a request sent.
async fn half_open(
    server: SocketAddr,
    source: IpAddr,
    tls: tokio_rustls::TlsConnector,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source, 0))?;
    let tcp = socket.connect(server).await?;
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let mut stream = tokio::time::timeout(Duration::from_secs(10), tls.connect(name, tcp))
        .await
        .map_err(|_| std::io::Error::other("handshake timed out"))??;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        .await?;
    stream.flush().await?;
    Ok(stream)
}

/// 500 half-open TLS connections from five addresses (and 50 more refused by the
/// per-address cap) while a real client keeps getting answers in under a second;
/// each half-open connection is closed within the header read timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_tls_connections_neither_starve_clients_nor_stay_open() {
    const HEADER_TIMEOUT_SECS: u64 = 3;
    const PER_ADDRESS: usize = 100;
    const ADDRESSES: u8 = 5;
    let srv = ControlPlane::builder()
        .tls()
        .configure(|c| {
            c.limits.header_read_timeout_secs = HEADER_TIMEOUT_SECS;
            c.limits.max_connections_per_address = PER_ADDRESS;
            c.limits.max_connections = 1024;
        })
        .start()
        .await;
    let admin = srv.admin();
    admin.healthz().await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(
        PinnedVerifier::client_config(srv.fingerprint.unwrap()).unwrap(),
    ));

    // The real client: one request after another for the whole attack.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let prober = {
        let admin = admin.clone();
        let stop = Arc::clone(&stop);
        tokio::spawn(async move {
            let mut slowest = Duration::ZERO;
            let mut answered = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let started = Instant::now();
                let nodes = tokio::time::timeout(Duration::from_secs(5), admin.nodes()).await;
                assert!(
                    matches!(nodes, Ok(Ok(_))),
                    "a real client failed: {nodes:?}"
                );
                slowest = slowest.max(started.elapsed());
                answered += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (answered, slowest)
        })
    };

    // The attack: 110 connections from each of 127.0.0.2..=6, 20 at a time.
    let attack_started = Instant::now();
    let mut attempts = Vec::new();
    for a in 0..ADDRESSES {
        let source = IpAddr::from([127, 0, 0, 2 + a]);
        for _ in 0..PER_ADDRESS + 10 {
            attempts.push(source);
        }
    }
    let results: Vec<_> = futures_util::stream::iter(attempts)
        .map(|source| {
            let tls = tls.clone();
            let addr = srv.addr();
            async move { (half_open(addr, source, tls).await, Instant::now()) }
        })
        .buffer_unordered(20)
        .collect()
        .await;
    let setup = attack_started.elapsed();
    let (open, refused): (Vec<_>, Vec<_>) = results.into_iter().partition(|(r, _)| r.is_ok());
    // Connections past an address's cap are closed before the handshake ends; a few
    // of the capped ones may get in once an earlier one of theirs timed out.
    assert!(
        open.len() >= PER_ADDRESS * usize::from(ADDRESSES) - 10,
        "{} half-open connections held",
        open.len()
    );
    assert!(
        refused.len() >= 40,
        "the per-address cap refused only {}",
        refused.len()
    );

    // Every held connection is closed by the server within the header timeout (with
    // a margin for this busy 2-core machine); reading sees the end of the stream.
    let closes: Vec<Duration> = futures_util::stream::iter(open)
        .map(|(stream, opened_at)| async move {
            let mut stream = stream.unwrap();
            let mut buf = [0u8; 256];
            let deadline = Duration::from_secs(HEADER_TIMEOUT_SECS + 5);
            loop {
                match tokio::time::timeout(deadline, stream.read(&mut buf)).await {
                    Ok(Ok(0) | Err(_)) => return opened_at.elapsed(),
                    // hyper may answer 408 before closing.
                    Ok(Ok(_)) => {}
                    Err(_) => return Duration::MAX,
                }
            }
        })
        .buffer_unordered(600)
        .collect()
        .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (answered, slowest) = prober.await.unwrap();
    let longest = closes.iter().max().copied().unwrap_or_default();
    eprintln!(
        "{} half-open held, {} refused, set up in {setup:?}; longest until closed \
         {longest:?}; real client: {answered} answers, slowest {slowest:?}",
        closes.len(),
        refused.len()
    );
    assert!(
        longest <= Duration::from_secs(HEADER_TIMEOUT_SECS + 2),
        "a half-open connection stayed open {longest:?}"
    );
    assert!(answered >= 10, "only {answered} answers during the attack");
    assert!(
        slowest < Duration::from_secs(1),
        "the real client waited {slowest:?}"
    );
    // And afterwards everything is normal.
    admin.healthz().await.unwrap();
}

/// A node token sends a 4 MB error and escape codes, again and again, flapping
/// between healthy and degraded: what is kept, listed and logged stays small and
/// clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_escape_laden_reports_are_kept_clean_and_bounded() {
    let srv = ControlPlane::builder()
        .policy(Policy {
            health: HealthPolicy {
                worse_after: 1,
                better_after: 1,
                ..HealthPolicy::default()
            },
            ..Policy::default()
        })
        .start()
        .await;
    let admin = srv.admin();
    let EnrolledNode {
        node,
        client: node_api,
        ..
    } = srv.enrolled_node("fra-1").await;
    let huge = "A".repeat(4 << 20);
    let forged =
        "\u{1b}[2J\u{1b}[H\u{1b}[32mINFO\u{1b}[0m vpnctld: all good\r\n\u{9b}31m".to_owned();
    let endpoint_attack = format!("198.51.100.9:1\u{1b}]0;owned\u{7}{}", "9".repeat(10_000));
    let db = srv.data_dir().join(vpnctl_core::service::DB_FILE);
    let mut rss_after_warmup = 0;
    for round in 0..30 {
        let bad = report(
            std::iter::once(huge.clone())
                .chain(std::iter::once(forged.clone()))
                .chain((0..200).map(|i| format!("error {i} {forged}")))
                .collect(),
            vec![PeerStats {
                public_key: PublicKey::from_bytes([7; 32]),
                endpoint: Some(endpoint_attack.clone()),
                last_handshake: None,
                rx_bytes: 0,
                tx_bytes: 0,
            }],
        );
        node_api.report(node.id, &bad).await.unwrap();
        srv.vpn.observe_health(&[]).unwrap();
        node_api
            .report(node.id, &report(vec![], vec![]))
            .await
            .unwrap();
        srv.vpn.observe_health(&[]).unwrap();
        if round == 4 {
            rss_after_warmup = rss_bytes();
        }
    }
    node_api
        .report(
            node.id,
            &report(
                vec![huge.clone(), forged.clone()],
                vec![PeerStats {
                    public_key: PublicKey::from_bytes([7; 32]),
                    endpoint: Some(endpoint_attack.clone()),
                    last_handshake: None,
                    rx_bytes: 0,
                    tx_bytes: 0,
                }],
            ),
        )
        .await
        .unwrap();
    srv.vpn.observe_health(&[]).unwrap();

    let clean = |s: &str| !s.chars().any(char::is_control);
    // The listing: a summary, small.
    let listing = reqwest::Client::new()
        .get(format!("{}{}", srv.url, routes::NODES))
        .bearer_auth(srv.admin_token.expose())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        listing.len() < 4096,
        "GET /v1/nodes is {} bytes",
        listing.len()
    );
    let views = admin.nodes().await.unwrap();
    let summary = views[0].report.as_ref().unwrap();
    assert_eq!(summary.errors, 2);
    assert!(clean(summary.first_error.as_deref().unwrap()));
    assert!(clean(&views[0].health.reason) && views[0].health.reason.len() <= 400 * 4);

    // The full report (admin): cut, cleaned.
    let full = admin.node_report(node.id).await.unwrap().unwrap();
    assert_eq!(full.report.errors.len(), 2);
    for e in &full.report.errors {
        assert!(clean(e) && e.chars().count() <= 240, "{e:?}");
    }
    assert!(full.report.errors[1].contains("INFO"));
    let ep = full.report.peers[0].endpoint.as_deref().unwrap();
    assert!(clean(ep) && ep.chars().count() <= 64, "{ep:?}");

    // The event log: one event per health change, each short and clean.
    let events = admin.events(None, Some(1000)).await.unwrap();
    let health_events = events
        .iter()
        .filter(|e| matches!(e.kind, vpnctl_core::EventKind::NodeHealthChanged { .. }))
        .count();
    assert!(health_events >= 60, "{health_events} health changes logged");
    let log = serde_json::to_string(&events).unwrap();
    assert!(!log.contains("\\u001b") && !log.contains('\u{1b}'));
    assert!(
        log.len() < 200 * 1024,
        "the event log holds {} bytes of JSON",
        log.len()
    );

    // Store and memory: bounded.
    let store = std::fs::metadata(&db).unwrap().len();
    let rss = rss_bytes();
    eprintln!(
        "store {store} bytes; event log {} bytes of JSON; RSS {} MB after 5 rounds, {} MB after 30",
        log.len(),
        rss_after_warmup >> 20,
        rss >> 20
    );
    assert!(store < 8 << 20, "the store grew to {store} bytes");
    assert!(
        rss < rss_after_warmup + (64 << 20),
        "RSS grew from {} MB to {} MB",
        rss_after_warmup >> 20,
        rss >> 20
    );
}

/// A raw request with `token` (or none).
async fn call(
    http: &reqwest::Client,
    base: &str,
    method: Method,
    path: &str,
    token: Option<&Secret>,
) -> reqwest::Response {
    let method = reqwest::Method::from_bytes(method.as_str().as_bytes()).unwrap();
    let mut request = http.request(method.clone(), format!("{base}{path}"));
    if let Some(token) = token {
        request = request.bearer_auth(token.expose());
    }
    if method != reqwest::Method::GET && method != reqwest::Method::DELETE {
        request = request
            .header("content-type", "application/json")
            .body("{}");
    }
    request.send().await.unwrap()
}

/// Every route of the table × admin, bot, node (own and other), metrics and no
/// token: refused exactly where the table says, `no-store` on secrets; and no answer
/// the bot can read contains a client's endpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scope_matrix_is_the_route_table() {
    // Every cell without a token is a 401: more than the default limit allows.
    let srv = ControlPlane::builder()
        .configure(|c| c.limits.auth_failures_per_minute = 10_000)
        .start()
        .await;
    let admin = srv.admin();
    let own = srv.enrolled_node("fra-1").await;
    let other = srv.enrolled_node("ams-1").await;
    let (_, metrics_token) = srv.vpn.create_token(Scope::Metrics, "prometheus").unwrap();
    let user = admin
        .create_user(&CreateUser {
            name: "alice".into(),
            telegram_id: Some(42),
            ..CreateUser::default()
        })
        .await
        .unwrap();
    let issued = admin
        .issue_peer(&IssuePeerRequest {
            user: user.id,
            node: own.node.id,
            device: "phone".into(),
            public_key: None,
        })
        .await
        .unwrap();
    // A payment and a broadcast, so that the bot's reads of them (id 1) find one.
    let plan = srv
        .vpn
        .create_plan(vpnctl_api::billing::CreatePlan {
            name: vpnctl_api::billing::PlanName {
                en: "Month".into(),
                ru: None,
            },
            days: 30,
            stars: 100,
            device_limit: 3,
            quota: None,
            recurring: false,
            trial: false,
        })
        .unwrap();
    let order = srv.vpn.create_order(user.id, plan.id).unwrap();
    srv.vpn
        .record_payment(&vpnctl_api::billing::ReceivedPayment {
            payload: order.payload(),
            telegram_id: 42,
            currency: "XTR".into(),
            total: 100,
            telegram_charge_id: "charge-1".into(),
            provider_charge_id: String::new(),
            recurring: false,
            subscription_until: None,
        })
        .unwrap();
    srv.vpn
        .create_broadcast("hello", vpnctl_api::broadcast::Audience::All)
        .unwrap();
    // The user's real address, as the node sees it.
    const SECRET_IP: &str = "198.51.100.77";
    own.client
        .report(
            own.node.id,
            &report(
                vec![],
                vec![PeerStats {
                    public_key: issued.peer.public_key,
                    endpoint: Some(format!("{SECRET_IP}:40001")),
                    last_handshake: Some(Timestamp::now()),
                    rx_bytes: 1,
                    tx_bytes: 2,
                }],
            ),
        )
        .await
        .unwrap();

    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let scopes: Vec<(&str, Option<&Secret>, Option<Scope>)> = vec![
        ("none", None, None),
        ("metrics", Some(&metrics_token), Some(Scope::Metrics)),
        ("node", Some(&own.token), Some(Scope::Node(own.node.id))),
        ("bot", Some(&srv.bot_token), Some(Scope::Bot)),
        ("admin", Some(&srv.admin_token), Some(Scope::Admin)),
    ];
    let mut cells = 0;
    for rule in TABLE {
        // Ids that do not exist: an allowed caller gets 404/422, never a change.
        // Node routes name the node whose token is tested (or another node).
        let node_route = rule.route.template().starts_with("/v1/nodes/{id}");
        for (name, token, scope) in &scopes {
            for target in [own.node.id, other.node.id] {
                if !node_route && target == other.node.id {
                    continue;
                }
                let id = if node_route && rule.access == Access::OwnNode {
                    target.0
                } else {
                    999_999
                };
                let mut path = rule.route.path(id);
                if rule.kind == Kind::LongPoll {
                    path.push_str(if rule.route == routes::NODE_DESIRED {
                        "?wait=0"
                    } else {
                        "?wait_secs=0"
                    });
                }
                let response = call(&http, &srv.url, rule.method, &path, *token).await;
                let status = response.status();
                let allowed = match scope {
                    None => rule.access == Access::Public,
                    Some(scope) => rule.access.allows(*scope, Some(target)),
                };
                let what = format!("{name} {} {path}: {status}", rule.method);
                if allowed {
                    assert!(
                        status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN,
                        "allowed but refused: {what}"
                    );
                    assert!(!status.is_server_error(), "{what}");
                    if rule.secret {
                        assert_eq!(
                            response
                                .headers()
                                .get("cache-control")
                                .map(|v| v.to_str().unwrap()),
                            Some("no-store"),
                            "{what}"
                        );
                    }
                } else if token.is_none() {
                    assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}");
                } else {
                    assert_eq!(status, StatusCode::FORBIDDEN, "{what}");
                }
                cells += 1;
            }
        }
    }
    eprintln!("{cells} route × scope cells checked");

    // Every answer the bot may read, with real ids: never a client's endpoint.
    let ids = |rule: &routes::Rule| -> u64 {
        let t = rule.route.template();
        if t.starts_with("/v1/nodes/") {
            own.node.id.0
        } else if t.starts_with("/v1/users/") {
            user.id.0
        } else if t.starts_with("/v1/peers/") {
            issued.peer.id.0
        } else {
            1
        }
    };
    let mut read = 0;
    for rule in TABLE.iter().filter(|r| {
        r.method == Method::Get && r.access.allows(Scope::Bot, None) && r.kind != Kind::Stream
    }) {
        let path = rule.route.path(ids(rule));
        let response = call(&http, &srv.url, Method::Get, &path, Some(&srv.bot_token)).await;
        assert!(
            response.status().is_success(),
            "bot GET {path}: {}",
            response.status()
        );
        let body = response.bytes().await.unwrap();
        assert!(
            !String::from_utf8_lossy(&body).contains(SECRET_IP),
            "the bot sees a client endpoint in GET {path}"
        );
        read += 1;
    }
    assert!(read >= 10, "{read} bot routes read");
    // The admin does see it (so the check above can fail).
    let full = admin.node_report(own.node.id).await.unwrap().unwrap();
    assert!(
        full.report.peers[0]
            .endpoint
            .as_deref()
            .unwrap()
            .starts_with(SECRET_IP)
    );
    // The bot reads no node's report; its user's devices carry what /status shows.
    assert_eq!(
        srv.bot()
            .node_report(own.node.id)
            .await
            .unwrap_err()
            .status(),
        Some(403)
    );
    let devices = srv.bot().user_devices(user.id).await.unwrap();
    assert_eq!(devices.len(), 1);
    let live = devices[0].live.expect("the report's counters");
    assert_eq!((live.rx_bytes, live.tx_bytes), (1, 2));
    assert!(live.last_handshake.is_some());
    assert_eq!(devices[0].node.id, own.node.id);
    // A metrics token scrapes.
    let scraped = call(
        &http,
        &srv.url,
        Method::Get,
        routes::METRICS.template(),
        Some(&metrics_token),
    )
    .await;
    assert_eq!(scraped.status(), StatusCode::OK);
    assert!(scraped.text().await.unwrap().contains("vpnctl_"));
}

/// Node settings whose configs would not fit a QR code are refused when the node
/// is registered or changed, with what to change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_settings_whose_configs_cannot_be_a_qr_code_are_refused() {
    let srv = ControlPlane::start().await;
    let admin = srv.admin();
    let many: Vec<ipnet::IpNet> = (0..200u32)
        .map(|i| format!("10.{}.{}.0/24", i / 256, i % 256).parse().unwrap())
        .collect();
    let mut request = nodes_add("fra-1", "de-fra", "vpn.example.com:51820", "10.8.0.0/16");
    request.client_allowed_ips = Some(many.clone());
    let refused = admin.register_node(&request).await.unwrap_err();
    assert_eq!(refused.status(), Some(422));
    assert!(refused.to_string().contains("QR code"), "{refused}");

    let node = srv.add_node("fra-1", "vpn.example.com:51820").await;
    let refused = admin
        .update_node(
            node.id,
            &PatchNode {
                client_allowed_ips: Some(many),
                ..PatchNode::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(refused.status(), Some(422));
    // A handful of routes is fine.
    admin
        .update_node(
            node.id,
            &PatchNode {
                client_allowed_ips: Some(vec!["10.0.0.0/8".parse().unwrap()]),
                ..PatchNode::default()
            },
        )
        .await
        .unwrap();
}

/// Enrollment: at most 10 a minute from one address; then 429 with Retry-After.
/// Requests without a valid token: past 60 a minute, 429 for that address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrollment_and_unauthenticated_failures_are_rate_limited() {
    let srv = ControlPlane::start().await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut statuses = Vec::new();
    for _ in 0..11 {
        let r = call(
            &http,
            &srv.url,
            Method::Post,
            routes::ENROLL.template(),
            None,
        )
        .await;
        statuses.push(r.status().as_u16());
    }
    assert!(statuses[..10].iter().all(|s| *s == 422), "{statuses:?}");
    assert_eq!(statuses[10], 429);

    let wrong = Secret::new("vpt_wrong".into());
    let mut last = 0;
    for i in 0..61 {
        let r = call(
            &http,
            &srv.url,
            Method::Get,
            routes::USERS.template(),
            Some(&wrong),
        )
        .await;
        last = r.status().as_u16();
        if i < 60 {
            assert_eq!(last, 401, "request {i}");
        }
    }
    assert_eq!(last, 429);
    let r = call(
        &http,
        &srv.url,
        Method::Get,
        routes::USERS.template(),
        Some(&srv.admin_token),
    )
    .await;
    assert_eq!(
        r.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "the address waits a minute"
    );
    assert_eq!(r.headers().get("retry-after").unwrap(), "60");
    // Public health checks still answer.
    let r = call(
        &http,
        &srv.url,
        Method::Get,
        routes::HEALTHZ.template(),
        None,
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
}

/// Long-polls for nodes that do not exist leave no channel behind; a deleted
/// node's channel goes with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_polls_for_unknown_nodes_leave_nothing_behind() {
    use axum::body::Body;
    use axum::http::{Request, header};
    use tower::ServiceExt as _;

    let dir = tempfile::tempdir().unwrap();
    let vpn = vpnctl_core::Vpnctl::open_dir(dir.path()).unwrap();
    let (_down, shutdown) = tokio::sync::watch::channel(false);
    let state = AppState::new(
        vpn.clone(),
        PublicInfo {
            url: "http://127.0.0.1:1".into(),
            fingerprint: None,
            bot_username: None,
        },
        shutdown,
        Limits::default(),
    );
    let app = vpnctl_server::routes::router(state.clone());
    let (_, token) = vpn.create_token(Scope::Admin, "admin").unwrap();
    let poll = |id: u64| {
        Request::get(format!("/v1/nodes/{id}/desired?wait=0"))
            .header(header::AUTHORIZATION, format!("Bearer {}", token.expose()))
            .body(Body::empty())
            .unwrap()
    };
    for id in 1_000..3_000u64 {
        let response = app.clone().oneshot(poll(id)).await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
    }
    assert_eq!(state.feed().watched_nodes(), 0, "unknown ids left channels");

    let node = vpn
        .register_node(vpnctl_core::NewNode::new(
            "fra-1",
            "de-fra",
            "vpn.example.com:51820".parse().unwrap(),
            "10.8.0.0/16".parse().unwrap(),
        ))
        .unwrap();
    let response = app.clone().oneshot(poll(node.id.0)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(state.feed().watched_nodes(), 1);
    vpn.delete_node(node.id, false).unwrap();
    assert_eq!(
        state.feed().watched_nodes(),
        0,
        "the deleted node's channel stays"
    );
}
