//! `vpnctl demo`: a whole vpnctl in one process with zero setup. An embedded vpnctld
//! on a temporary (or given) store serves plain HTTP on 127.0.0.1; three nodes in
//! different regions run the real node agent over the simulated WireGuard backend and
//! talk to the API as real nodes do (enrolled with join tokens); users, invites and
//! peers are seeded; a ticker makes the simulated peers handshake and move traffic.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio::task::JoinHandle;
use vpnctl_client::ApiClient;
use vpnctl_core::{
    Endpoint, Grant, IssuePeer, KeyPair, NewInvite, NewNode, NewUser, Region, Role, Scope,
    UserState, Vpnctl,
};
use vpnctl_node::agent::{Agent, AgentConfig};
use vpnctl_node::backend::SimBackend;
use vpnctl_node::netconf::NoNetwork;
use vpnctl_node::{Cache, IfaceName};
use vpnctl_server::{Server, ServerConfig};

use vpnctl_node::http::Http;

/// The bot name put into invite deep links in the demo.
pub const DEMO_BOT: &str = "vpnctl_demo_bot";
/// How often the embedded control plane sweeps (expiry, quotas, node health).
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Default)]
pub struct DemoOptions {
    /// Keep the store here instead of a temporary directory.
    pub data: Option<PathBuf>,
    /// Extra generated peers (load testing the dashboard), beyond the seeded ones.
    pub extra_peers: usize,
    /// Seconds between node reports (default 2).
    pub report_secs: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("demo store: {0}")]
    Store(#[from] vpnctl_core::Error),
    #[error("embedded control plane: {0}")]
    Server(#[from] vpnctl_server::ServerError),
    #[error("demo setup over the API: {0}")]
    Api(#[from] vpnctl_client::ClientError),
    #[error("demo setup: {0}")]
    Setup(String),
}

/// A running demo. [`Demo::stop`] shuts everything down; dropping it leaves the tasks
/// to die with the runtime.
#[derive(Debug)]
pub struct Demo {
    /// An admin client of the embedded API.
    pub api: ApiClient,
    pub url: String,
    /// The embedded store's service (tests make tokens with it).
    pub vpn: Vpnctl,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    _dir: Option<tempfile::TempDir>,
}

const NODES: [(&str, &str, &str, &str); 3] = [
    ("fra-1", "de-fra", "Frankfurt, Germany", "10.10.0.0/16"),
    ("ams-1", "nl-ams", "Amsterdam, Netherlands", "10.20.0.0/16"),
    ("nyc-1", "us-nyc", "New York, USA", "10.30.0.0/16"),
];

const NAMES: [&str; 24] = [
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory",
    "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter", "yana", "zoe",
    "boris", "dasha", "oleg",
];
const DEVICES: [&str; 3] = ["phone", "laptop", "tablet"];

/// The nodes: registered first, as peers need enrolled nodes (with public keys).
fn seed_nodes(vpn: &Vpnctl) -> Result<(), DemoError> {
    for (name, code, region, pool) in NODES {
        let endpoint = Endpoint {
            host: format!("{name}.demo.vpnctl.example"),
            port: 51820,
        };
        let pool = pool
            .parse()
            .map_err(|e| DemoError::Setup(format!("pool {pool}: {e}")))?;
        let mut new = NewNode::new(name, code, endpoint, pool);
        new.region = Region {
            code: code.into(),
            name: region.into(),
        };
        vpn.register_node(new)?;
    }
    Ok(())
}

/// How many extra peers the demo's nodes hold besides the seeded devices: the load
/// goes round the three nodes, so each takes a third (and one more per batch at most).
pub fn max_extra_peers() -> usize {
    let seeded: usize = (0..NAMES.len()).map(|i| 1 + i % 3).sum();
    let smallest = NODES
        .iter()
        .map(|(.., pool)| pool.parse().map_or(0, vpnctl_core::ipam::usable))
        .min()
        .unwrap_or(0);
    let per_node = usize::try_from(smallest)
        .unwrap_or(0)
        .saturating_sub(seeded + 1);
    per_node * NODES.len()
}

/// Users with their devices, a load of generated peers if asked, and invites.
fn seed_users(vpn: &Vpnctl, extra_peers: usize) -> Result<(), DemoError> {
    let now = vpn.now();
    let nodes = vpn.nodes()?;
    let mut requests = Vec::new();
    let mut disabled = Vec::new();
    for (i, name) in NAMES.iter().enumerate() {
        let until = match i % 5 {
            0 => None,
            4 => Some(now.plus_days(2)),
            _ => Some(now.plus_days(i64::try_from(7 + i * 3).unwrap_or(30))),
        };
        let user = vpn.create_user(NewUser {
            name: (*name).into(),
            telegram_id: Some(100_000 + i64::try_from(i).unwrap_or(0)),
            role: if i == 0 { Role::Admin } else { Role::User },
            until,
            device_limit: Some(3),
            ..NewUser::default()
        })?;
        for (d, device) in DEVICES.iter().enumerate().take(1 + i % 3) {
            requests.push(IssuePeer {
                user: user.id,
                node: nodes[(i + d) % nodes.len()].id,
                device: (*device).into(),
                public_key: None,
            });
        }
        if *name == "mallory" {
            disabled.push(user.id);
        }
    }
    vpn.issue_peers(requests)?;
    for id in disabled {
        vpn.set_user_state(id, UserState::Disabled)?;
    }
    // Load: a few users with many devices each, issued in large batches (one
    // transaction per batch keeps 10,000 peers to seconds).
    const PER_USER: usize = 1_000;
    let mut made = 0;
    let mut k = 0;
    while made < extra_peers {
        let user = vpn.create_user(NewUser {
            name: format!("load-{k:03}"),
            device_limit: Some(u32::try_from(PER_USER).unwrap_or(u32::MAX)),
            ..NewUser::default()
        })?;
        let batch: Vec<IssuePeer> = (0..PER_USER.min(extra_peers - made))
            .map(|d| IssuePeer {
                user: user.id,
                node: nodes[(k + d) % nodes.len()].id,
                device: format!("dev-{d:04}"),
                public_key: None,
            })
            .collect();
        made += batch.len();
        vpn.issue_peers(batch)?;
        k += 1;
    }
    for (label, uses, days) in [("friends", 5, 30), ("family", 3, 365), ("trial", 1, 7)] {
        // The codes are dropped: they are shown only when an admin creates an invite.
        vpn.create_invite(NewInvite {
            label: label.into(),
            uses,
            expires_at: Some(now.plus_days(14)),
            grant: Grant {
                access_days: Some(days),
                ..Grant::default()
            },
            plan: None,
        })?;
    }
    Ok(())
}

impl Demo {
    /// Starts the control plane, seeds it (if its store is empty) and starts the nodes.
    pub async fn start(options: DemoOptions) -> Result<Self, DemoError> {
        if options.extra_peers > max_extra_peers() {
            return Err(DemoError::Setup(format!(
                "--peers {}: the demo's three nodes have room for {} extra peers (their pools are /16)",
                options.extra_peers,
                max_extra_peers()
            )));
        }
        let (dir, data) = match &options.data {
            Some(path) => (None, path.clone()),
            None => {
                let dir = tempfile::Builder::new()
                    .prefix("vpnctl-demo-")
                    .tempdir()
                    .map_err(|e| DemoError::Setup(format!("temporary directory: {e}")))?;
                let data = dir.path().join("data");
                (Some(dir), data)
            }
        };
        let (vpn, admin, fresh) = {
            let data = data.clone();
            tokio::task::spawn_blocking(move || -> Result<_, DemoError> {
                let vpn = Vpnctl::open_dir(&data)?;
                let fresh = vpn.nodes()?.is_empty();
                if fresh {
                    seed_nodes(&vpn)?;
                }
                let (_, admin) = vpn.create_token(Scope::Admin, "vpnctl demo")?;
                Ok((vpn, admin, fresh))
            })
            .await
            .map_err(|e| DemoError::Setup(e.to_string()))??
        };

        let mut config = ServerConfig::new(data.clone(), ([127, 0, 0, 1], 0).into());
        config.tls = false;
        config.bot_username = Some(DEMO_BOT.into());
        // Health is judged by the control plane's lifecycle loop: run it often, so
        // the nodes show `up` a second after their first report, not ten.
        config.sweep_interval = SWEEP_INTERVAL;
        let server = Server::bind_with(config, vpn.clone()).await?;
        let url = server.base_url().to_owned();
        let (shutdown, shutdown_rx) = watch::channel(false);
        let stopped = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        let mut tasks = Vec::new();
        let server_stop = stopped(shutdown_rx.clone());
        tasks.push(tokio::spawn(async move {
            if let Err(e) = server.serve(server_stop).await {
                tracing::error!(error = %e, "demo control plane stopped");
            }
        }));

        let api = ApiClient::new(&url, Some(admin), None)?;
        let mut backends: Vec<Arc<Mutex<SimBackend>>> = Vec::new();
        let report = Duration::from_secs(options.report_secs.unwrap_or(2));
        for view in api.nodes().await? {
            let node = view.node;
            let (join, _) = api.create_join_token(node.id, Some(600)).await?;
            let joiner = ApiClient::for_join_token(&join)?;
            let keys = KeyPair::generate();
            let (node, token) = joiner.enroll(&join, keys.public, Some(51820)).await?;
            let iface = IfaceName::new(&format!("demo{}", node.id))
                .map_err(|e| DemoError::Setup(format!("interface name: {e}")))?;
            let mut agent_config = AgentConfig::new(keys.private, 51820);
            agent_config.nat = false;
            agent_config.report_interval = report;
            agent_config.reconcile_interval = Duration::from_secs(10);
            let agent = Agent::new(
                Http::new(joiner.with_token(token), node.id),
                SimBackend::new(iface),
                NoNetwork,
                Cache::new(data.join(format!("node-{}-cache.json", node.id))),
                agent_config,
            );
            backends.push(agent.backend());
            let stop = stopped(shutdown_rx.clone());
            tasks.push(tokio::spawn(async move {
                if let Err(e) = agent.run(stop).await {
                    tracing::error!(error = %e, "demo node stopped");
                }
            }));
        }

        if fresh {
            let vpn = vpn.clone();
            let extra = options.extra_peers;
            tokio::task::spawn_blocking(move || seed_users(&vpn, extra))
                .await
                .map_err(|e| DemoError::Setup(e.to_string()))??;
        }

        // The simulated peers live on this clock.
        let mut stop = shutdown_rx.clone();
        tasks.push(tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = every.tick() => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
                let now = SystemTime::now();
                for backend in &backends {
                    if let Ok(mut sim) = backend.lock() {
                        sim.tick(now);
                    }
                }
            }
        }));

        Ok(Self {
            api,
            url,
            vpn,
            shutdown,
            tasks,
            _dir: dir,
        })
    }

    /// Stops nodes, ticker and control plane, waiting at most a few seconds.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }
}
