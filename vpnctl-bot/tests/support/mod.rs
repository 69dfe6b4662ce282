//! Test support: a real vpnctld (redb in a temp dir, its lifecycle loop on a short
//! interval) with one enrolled, reporting, healthy node registered as `vpnctl nodes
//! add` registers it (capacity, DNS and MTU left to their defaults); a fake Telegram
//! Bot API; and the real bot (dispatcher, notification courier, deletions) between
//! them, with its state in a directory of the temp dir so that it can be restarted.
#![allow(dead_code, clippy::missing_panics_doc)]

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use vpnctl_api::body::CreateInvite;
use vpnctl_bot::{BotApp, Config};
use vpnctl_client::ApiClient;
use vpnctl_core::Health;
use vpnctl_core::wire::{DesiredUpdate, NodeReport, PeerStats, SystemStats};
use vpnctl_core::{Grant, Node, PublicKey, Role, Secret, Timestamp, Vpnctl};
use vpnctl_server::ServerConfig;
use vpnctl_testbed::control_plane::{ControlPlane, nodes_add};

pub use vpnctl_testbed::telegram::{Call, FakeTelegram};

pub fn now() -> Timestamp {
    Timestamp::now()
}

pub struct Harness {
    pub tg: FakeTelegram,
    /// The real vpnctld the bot talks to: the harness every test starts from.
    pub cp: ControlPlane,
    pub admin: ApiClient,
    pub bot_token: Secret,
    pub api_url: String,
    pub node: Node,
    pub node_client: ApiClient,
    pub vpn: Vpnctl,
    /// The bot's settings, to start it again after [`Harness::stop_bot`].
    pub config: Config,
    bot_stop: Option<oneshot::Sender<()>>,
    bot: Option<JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

/// How often the test control plane runs its lifecycle loop (sweep, health).
pub const SWEEP: Duration = Duration::from_millis(250);

/// Settings tests start from: fast limits so that tests measure the bot, not waits
/// (tests of the limits set Telegram's own).
pub fn test_config(tg: &FakeTelegram, api_url: &str, bot_token: &Secret) -> Config {
    let mut config = Config::new("123456:TEST", api_url, bot_token.expose());
    config.telegram_api_url = Some(tg.url.clone());
    config.messages_per_sec_chat = 1000;
    config.messages_per_min_chat = 100_000;
    config.messages_per_sec_overall = 100_000;
    config
}

/// Starts the bot with `config`; it runs until the sender is used or dropped.
pub fn spawn_bot(config: Config) -> (oneshot::Sender<()>, JoinHandle<()>) {
    let app = BotApp::new(config).unwrap();
    let (stop, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        app.run(async move {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    (stop, task)
}

impl Harness {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Self {
        Self::start_full(|_| {}, tweak).await
    }

    /// Starts with the control plane's settings (policy, sweep interval) tweaked too.
    pub async fn start_full(
        server_tweak: impl FnOnce(&mut ServerConfig),
        tweak: impl FnOnce(&mut Config),
    ) -> Self {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(std::env::var("TEST_LOG").unwrap_or_else(|_| "vpnctl_bot=warn".into()))
            .with_test_writer()
            .try_init();
        let cp = ControlPlane::builder()
            .configure(|sc| {
                sc.sweep_interval = SWEEP;
                server_tweak(sc);
            })
            .start()
            .await;
        let admin = cp.admin();
        let bot_token = cp.bot_token.clone();
        let api_url = cp.url.clone();
        let (node, node_client) = enrolled_node(&cp, "fra1").await;
        report(&node_client, &node, &[]).await;
        wait_health(&admin, &node, Health::Up).await;

        let dir = tempfile::tempdir().unwrap();
        let tg = FakeTelegram::start().await;
        let mut config = test_config(&tg, &api_url, &bot_token);
        config.admin_api_token = Some(vpnctl_bot::SecretText::new(cp.admin_token.expose()));
        config.state_dir = Some(dir.path().join("bot"));
        tweak(&mut config);
        let (bot_stop, bot) = spawn_bot(config.clone());
        let vpn = cp.vpn.clone();
        let h = Self {
            tg,
            cp,
            admin,
            bot_token,
            api_url,
            node,
            node_client,
            vpn,
            config,
            bot_stop: Some(bot_stop),
            bot: Some(bot),
            _dir: dir,
        };
        h.wait_bot_up(0).await;
        h
    }

    /// Waits until the bot registered its commands after call `mark`: it polls.
    pub async fn wait_bot_up(&self, mark: usize) {
        self.tg
            .wait_after(mark, Duration::from_secs(20), |c| {
                c.method == "setmycommands"
            })
            .await;
    }

    /// Stops the bot gracefully, as SIGTERM does (the control plane keeps running).
    pub async fn stop_bot(&mut self) {
        if let Some(tx) = self.bot_stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.bot.take() {
            tokio::time::timeout(Duration::from_secs(10), h)
                .await
                .expect("bot stops")
                .unwrap();
        }
    }

    /// Starts the bot again with the same settings and state directory.
    pub async fn start_bot(&mut self) {
        let mark = self.tg.mark();
        let (stop, task) = spawn_bot(self.config.clone());
        self.bot_stop = Some(stop);
        self.bot = Some(task);
        self.wait_bot_up(mark).await;
    }

    /// A fresh single-use invite code.
    pub async fn invite(&self, days: Option<u32>, devices: u32) -> String {
        self.admin
            .create_invite(&CreateInvite {
                plan: None,
                label: Some("test".into()),
                uses: Some(1),
                expires_at: None,
                grant: Some(Grant {
                    access_days: days,
                    device_limit: devices,
                    role: Role::User,
                }),
            })
            .await
            .unwrap()
            .code
    }

    /// Sends `command` from `user` and returns the keyboard answer with the data of
    /// its first button whose data starts with `prefix`.
    pub async fn keyboard(&self, user: i64, command: &str, prefix: &str) -> (Call, String) {
        let keyboard = self.ask(user, command).await;
        let data = button(&keyboard, prefix);
        (keyboard, data)
    }

    /// Sends `text` from `user` and waits for the bot's next text reply.
    pub async fn ask(&self, user: i64, text: &str) -> Call {
        let mark = self.tg.mark();
        self.tg.text(user, text);
        self.tg.reply(mark, user, "sendMessage").await
    }

    /// Signs `user` up with a fresh invite.
    pub async fn signed_up(&self, user: i64, devices: u32) {
        let code = self.invite(Some(30), devices).await;
        let reply = self.ask(user, &format!("/start {code}")).await;
        assert!(reply.text().contains("Welcome"), "{}", reply.text());
    }

    /// `/get_config` → press the first button whose data starts with `prefix` →
    /// the document and photo calls.
    pub async fn get_config(&self, user: i64, prefix: &str) -> (Call, Call) {
        let (keyboard, data) = self.keyboard(user, "/get_config", prefix).await;
        let mark = self.tg.mark();
        self.tg
            .press(user, user, keyboard.message_id.unwrap(), &data);
        let doc = self.tg.reply(mark, user, "sendDocument").await;
        let photo = self.tg.reply(mark, user, "sendPhoto").await;
        (doc, photo)
    }

    /// Keeps the node reporting (as its daemon would), so it stays healthy.
    pub fn keep_reporting(&self) -> JoinHandle<()> {
        keep_reporting(&self.node_client, &self.node, Duration::from_secs(5))
    }

    /// Notifications the bot has not acknowledged yet (read from the store).
    pub fn unacknowledged(&self) -> Vec<vpnctl_core::Notification> {
        self.vpn
            .notifications(vpnctl_core::Consumer::Bot, 1000)
            .unwrap()
    }

    /// The public keys in the node's desired state.
    pub async fn desired_keys(&self) -> Vec<PublicKey> {
        match self
            .node_client
            .desired(self.node.id, 0, Duration::ZERO)
            .await
            .unwrap()
        {
            DesiredUpdate::Snapshot(s) => s.peers.into_iter().map(|p| p.public_key).collect(),
            other => panic!("expected a snapshot, got {other:?}"),
        }
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.bot_stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.bot.take() {
            tokio::time::timeout(Duration::from_secs(10), h)
                .await
                .expect("bot stops")
                .unwrap();
        }
        self.cp.stop().await;
    }

    /// Stops only the control plane (the bot keeps running).
    pub async fn stop_server(&mut self) {
        self.cp.stop().await;
    }
}

/// Reports for `node` every `period` until the handle is aborted.
pub fn keep_reporting(client: &ApiClient, node: &Node, period: Duration) -> JoinHandle<()> {
    let client = client.clone();
    let node = node.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(period).await;
            report(&client, &node, &[]).await;
        }
    })
}

/// Waits until the control plane judges `node` to be `health`.
pub async fn wait_health(admin: &ApiClient, node: &Node, health: Health) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let view = admin.node(node.id).await.unwrap();
        if view.health.status == health {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "node {} stays {:?} ({}), expected {health:?}",
            node.name,
            view.health.status,
            view.health.reason
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn enrolled_node(cp: &ControlPlane, name: &str) -> (Node, ApiClient) {
    enrolled_node_at(cp, name, "vpn.example.com:51820", ("de-fra", "Frankfurt")).await
}

/// Registers a node as `vpnctl nodes add NAME --region CODE --region-name NAME
/// --endpoint ENDPOINT --pool POOL` does: capacity, DNS, MTU and keepalive left to the
/// control plane's defaults.
pub async fn register_like_the_cli(
    cp: &ControlPlane,
    name: &str,
    endpoint: &str,
    (region_code, region_name): (&str, &str),
    pool: &str,
) -> Node {
    let mut request = nodes_add(name, region_code, endpoint, pool);
    region_name.clone_into(&mut request.region.name);
    cp.register(&request).await
}

/// Enrolls a registered node as its daemon would; returns it and its client.
pub async fn enroll(cp: &ControlPlane, node: &Node) -> (Node, ApiClient) {
    let enrolled = cp.enroll(node.id).await;
    (enrolled.node, enrolled.client)
}

/// Registers (as the CLI does) and enrolls a node with its own endpoint and region.
pub async fn enrolled_node_at(
    cp: &ControlPlane,
    name: &str,
    endpoint: &str,
    region: (&str, &str),
) -> (Node, ApiClient) {
    let node = register_like_the_cli(cp, name, endpoint, region, "10.8.0.0/16").await;
    enroll(cp, &node).await
}

/// Posts a node report (so that the node counts as healthy) with peer stats.
pub async fn report(client: &ApiClient, node: &Node, peers: &[PeerStats]) {
    report_errors(client, node, peers, &[]).await;
}

/// Posts a node report with reconcile errors (which make the node degraded).
pub async fn report_errors(client: &ApiClient, node: &Node, peers: &[PeerStats], errors: &[&str]) {
    let revision = client
        .desired(node.id, 0, Duration::ZERO)
        .await
        .unwrap()
        .revision();
    client
        .report(
            node.id,
            &NodeReport {
                applied_revision: revision,
                interface_up: true,
                listen_port: Some(51820),
                public_key: node.public_key,
                peers: peers.to_vec(),
                system: SystemStats::default(),
                strays_removed: Vec::new(),
                errors: errors.iter().map(|e| (*e).to_owned()).collect(),
                at: now(),
                health_port: None,
            },
        )
        .await
        .unwrap();
}

/// Decodes the single QR code in a PNG.
pub fn decode_qr(png: &[u8]) -> String {
    let image = image::load_from_memory(png).unwrap().to_luma8();
    let mut prepared = rqrr::PreparedImage::prepare(image);
    let grids = prepared.detect_grids();
    assert_eq!(grids.len(), 1, "exactly one QR code");
    grids[0].decode().unwrap().1
}

/// What [`ApiProxy`] does with peer-config fetches (`GET /v1/peers/{id}/config`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Configs {
    Pass,
    /// Answered with a 500.
    Fail,
    /// The first one passes; the ones after it never get an answer.
    HoldAfterFirst,
}

#[derive(Debug)]
pub struct ProxyState {
    upstream: OnceLock<String>,
    configs: Mutex<Configs>,
    /// Config fetches since `configs` was last set.
    config_fetches: AtomicU32,
    /// While set, notification fetches are answered at once with nothing, so that
    /// what is queued meanwhile arrives in one batch once it is cleared.
    hold_notifications: AtomicBool,
    /// While set, every request is answered 502 Bad Gateway, as a reverse proxy
    /// answers while vpnctld is down.
    down: AtomicBool,
    /// Every request (but notification polls) waits this long first.
    delay_ms: AtomicU64,
    /// Every path requested (but notification polls), in order.
    paths: Mutex<Vec<String>>,
    http: reqwest::Client,
}

/// A pass-through proxy between the bot and the control plane that fails or holds
/// peer-config fetches on request.
pub struct ApiProxy {
    pub url: String,
    state: Arc<ProxyState>,
}

impl ApiProxy {
    pub async fn start() -> Self {
        let state = Arc::new(ProxyState {
            upstream: OnceLock::new(),
            configs: Mutex::new(Configs::Pass),
            config_fetches: AtomicU32::new(0),
            hold_notifications: AtomicBool::new(false),
            down: AtomicBool::new(false),
            delay_ms: AtomicU64::new(0),
            paths: Mutex::new(Vec::new()),
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
        });
        let app = axum::Router::new()
            .fallback(proxy_forward)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, state }
    }

    /// Points the bot at the proxy, and the proxy at the control plane.
    pub fn insert(&self, c: &mut vpnctl_bot::Config) {
        self.state.upstream.set(c.api_url.clone()).unwrap();
        c.api_url.clone_from(&self.url);
    }

    pub fn configs(&self, mode: Configs) {
        *self.state.configs.lock().unwrap() = mode;
        self.state.config_fetches.store(0, Ordering::SeqCst);
    }

    pub fn config_fetches(&self) -> u32 {
        self.state.config_fetches.load(Ordering::SeqCst)
    }

    /// The paths requested since the last call (notification polls left out).
    pub fn take_paths(&self) -> Vec<String> {
        std::mem::take(&mut *self.state.paths.lock().unwrap())
    }

    pub fn hold_notifications(&self, hold: bool) {
        self.state.hold_notifications.store(hold, Ordering::SeqCst);
    }

    /// The control plane is down (502 from the proxy) or back.
    pub fn down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
    }

    /// Every request (but notification polls) takes this long.
    pub fn delay(&self, delay: Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.state.delay_ms.store(ms, Ordering::SeqCst);
    }
}

async fn proxy_forward(
    State(s): State<Arc<ProxyState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path();
    if s.down.load(Ordering::SeqCst) {
        return (StatusCode::BAD_GATEWAY, "502 Bad Gateway").into_response();
    }
    if path == "/v1/notifications" && s.hold_notifications.load(Ordering::SeqCst) {
        return axum::Json(serde_json::json!([])).into_response();
    }
    if !path.starts_with("/v1/notifications") {
        s.paths.lock().unwrap().push(path.to_owned());
    }
    let delay = s.delay_ms.load(Ordering::SeqCst);
    if delay > 0 && path != "/v1/notifications" {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    if path.starts_with("/v1/peers/") && path.ends_with("/config") {
        let before = s.config_fetches.fetch_add(1, Ordering::SeqCst);
        let mode = *s.configs.lock().unwrap();
        match mode {
            Configs::Fail => {
                return (StatusCode::INTERNAL_SERVER_ERROR, "injected failure").into_response();
            }
            Configs::HoldAfterFirst if before > 0 => std::future::pending::<()>().await,
            Configs::Pass | Configs::HoldAfterFirst => {}
        }
    }
    let upstream = s.upstream.get().expect("the proxy was inserted");
    let url = format!(
        "{}{}",
        upstream.trim_end_matches('/'),
        uri.path_and_query().map_or(path, |p| p.as_str())
    );
    let mut request = s.http.request(method, url).body(body);
    for (name, value) in &headers {
        if name != header::HOST && name != header::CONTENT_LENGTH {
            request = request.header(name, value);
        }
    }
    let Ok(answer) = request.send().await else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    let mut response = Response::builder().status(answer.status());
    for (name, value) in answer.headers() {
        if name != header::CONTENT_LENGTH && name != header::TRANSFER_ENCODING {
            response = response.header(name, value);
        }
    }
    let bytes = answer.bytes().await.unwrap_or_default();
    response.body(Body::from(bytes)).unwrap()
}

/// A second node, healthy, for evacuations to move devices to.
pub async fn second_node(h: &Harness) -> Node {
    let (b, b_client) = enrolled_node_at(
        &h.cp,
        "ams1",
        "b.example.net:51820",
        ("nl-ams", "Amsterdam"),
    )
    .await;
    report(&b_client, &b, &[]).await;
    wait_health(&h.admin, &b, Health::Up).await;
    b
}

/// Users with these Telegram ids, each with one device on the harness's node,
/// made through the admin API (as if they had used the bot long ago).
pub async fn users_with_devices(h: &Harness, telegram_ids: &[i64]) {
    for tg in telegram_ids {
        let user = h
            .admin
            .create_user(&vpnctl_api::body::CreateUser {
                name: format!("user{tg}"),
                telegram_id: Some(*tg),
                ..Default::default()
            })
            .await
            .unwrap();
        h.admin
            .issue_peer(&vpnctl_api::body::IssuePeerRequest {
                user: user.id,
                node: h.node.id,
                device: "phone".into(),
                public_key: None,
            })
            .await
            .unwrap();
    }
}

/// The data of the first button of `keyboard` whose data starts with `prefix`.
pub fn button(keyboard: &Call, prefix: &str) -> String {
    keyboard
        .buttons()
        .into_iter()
        .map(|(_, d)| d)
        .find(|d| d.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix} button in {:?}", keyboard.buttons()))
}

/// Each of `users` got exactly a document, then a photo (its moved device's new
/// config and QR code), in that order.
pub fn each_got_document_then_photo(calls: &[Call], users: &[i64]) {
    for u in users {
        let mine: Vec<&str> = calls
            .iter()
            .filter(|c| c.chat_id == Some(*u))
            .map(|c| c.method.as_str())
            .collect();
        assert_eq!(mine, ["senddocument", "sendphoto"], "user {u}");
    }
}
