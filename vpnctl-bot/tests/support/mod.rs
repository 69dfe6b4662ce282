//! Test support: a real vpnctld (redb in a temp dir, its lifecycle loop on a short
//! interval) with one enrolled, reporting, healthy node; a fake Telegram Bot API;
//! and the real bot (dispatcher and notification courier) between them.
#![allow(dead_code, clippy::missing_panics_doc)]

use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use vpnctl_api::body::{CreateInvite, RegisterNode};
use vpnctl_bot::{BotApp, Config};
use vpnctl_client::ApiClient;
use vpnctl_core::Health;
use vpnctl_core::wire::{DesiredUpdate, NodeReport, PeerStats, SystemStats};
use vpnctl_core::{
    Grant, KeyPair, Node, PublicKey, Region, Role, Scope, Secret, Timestamp, Vpnctl,
};
use vpnctl_server::{Server, ServerConfig};

pub use vpnctl_testbed::telegram::{Call, FakeTelegram};

pub fn now() -> Timestamp {
    Timestamp(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            .try_into()
            .unwrap(),
    )
}

pub struct Harness {
    pub tg: FakeTelegram,
    pub admin: ApiClient,
    pub bot_token: Secret,
    pub api_url: String,
    pub node: Node,
    pub node_client: ApiClient,
    pub vpn: Vpnctl,
    bot_stop: Option<oneshot::Sender<()>>,
    bot: Option<JoinHandle<()>>,
    server_stop: Option<oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

/// How often the test control plane runs its lifecycle loop (sweep, health).
pub const SWEEP: Duration = Duration::from_millis(250);

/// Settings tests start from: fast limits so that tests measure the bot, not waits.
pub fn test_config(tg: &FakeTelegram, api_url: &str, bot_token: &Secret) -> Config {
    let mut config = Config::new("123456:TEST", api_url, bot_token.expose());
    config.telegram_api_url = Some(tg.url.clone());
    config.messages_per_sec_chat = 1000;
    config.messages_per_min_chat = 100_000;
    config.messages_per_sec_overall = 100_000;
    config
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
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let mut sc = ServerConfig::new(data.clone(), "127.0.0.1:0".parse().unwrap());
        sc.tls = false;
        sc.bot_username = Some("test_bot".into());
        sc.sweep_interval = SWEEP;
        server_tweak(&mut sc);
        let vpn = Vpnctl::open_dir_with(&data, sc.policy.clone()).unwrap();
        let admin_token = vpn.create_token(Scope::Admin, "test admin").unwrap().1;
        let bot_token = vpn.create_token(Scope::Bot, "test bot").unwrap().1;
        let server = Server::bind_with(sc, vpn.clone()).await.unwrap();
        let api_url = server.base_url().to_owned();
        let (server_stop, rx) = oneshot::channel::<()>();
        tokio::spawn(server.serve(async move {
            let _ = rx.await;
        }));
        let admin = ApiClient::new(&api_url, Some(admin_token.clone()), None).unwrap();
        let (node, node_client) = enrolled_node(&admin, "fra1").await;
        report(&node_client, &node, &[]).await;
        wait_health(&admin, &node, Health::Up).await;

        let tg = FakeTelegram::start().await;
        let mut config = test_config(&tg, &api_url, &bot_token);
        config.admin_api_token = Some(vpnctl_bot::SecretText::new(admin_token.expose()));
        tweak(&mut config);
        let app = BotApp::new(config).unwrap();
        let (bot_stop, rx) = oneshot::channel::<()>();
        let bot = tokio::spawn(async move {
            app.run(async move {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        let h = Self {
            tg,
            admin,
            bot_token,
            api_url,
            node,
            node_client,
            vpn,
            bot_stop: Some(bot_stop),
            bot: Some(bot),
            server_stop: Some(server_stop),
            _dir: dir,
        };
        // The dispatcher is up once it registered its commands and polls.
        h.tg.wait_after(0, Duration::from_secs(10), |c| {
            c.method == "getupdates" || c.method == "setmycommands"
        })
        .await;
        h
    }

    /// A fresh single-use invite code.
    pub async fn invite(&self, days: Option<u32>, devices: u32) -> String {
        self.admin
            .create_invite(&CreateInvite {
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
        let keyboard = self.ask(user, "/get_config").await;
        let (_, data) = keyboard
            .buttons()
            .into_iter()
            .find(|(_, d)| d.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} button in {:?}", keyboard.buttons()));
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
        if let Some(tx) = self.server_stop.take() {
            let _ = tx.send(());
        }
    }

    /// Stops only the control plane (the bot keeps running).
    pub fn stop_server(&mut self) {
        if let Some(tx) = self.server_stop.take() {
            let _ = tx.send(());
        }
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

pub async fn enrolled_node(admin: &ApiClient, name: &str) -> (Node, ApiClient) {
    enrolled_node_at(
        admin,
        name,
        "vpn.example.com:51820",
        ("de-fra", "Frankfurt"),
    )
    .await
}

/// Registers and enrolls a node with its own endpoint and region.
pub async fn enrolled_node_at(
    admin: &ApiClient,
    name: &str,
    endpoint: &str,
    (region_code, region_name): (&str, &str),
) -> (Node, ApiClient) {
    let node = admin
        .register_node(&RegisterNode {
            name: name.into(),
            region: Region {
                code: region_code.into(),
                name: region_name.into(),
            },
            endpoint: endpoint.into(),
            ipv4_pool: "10.8.0.0/16".parse().unwrap(),
            listen_port: None,
            public_key: None,
            ipv6_pool: None,
            dns: None,
            mtu: None,
            capacity: Some(1000),
            client_allowed_ips: None,
            persistent_keepalive: None,
        })
        .await
        .unwrap();
    let (join, _) = admin.create_join_token(node.id, None).await.unwrap();
    let joiner = ApiClient::for_join_token(&join).unwrap();
    let public = KeyPair::generate().public;
    let (node, token) = joiner.enroll(&join, public, Some(51820)).await.unwrap();
    (node, joiner.with_token(token))
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
