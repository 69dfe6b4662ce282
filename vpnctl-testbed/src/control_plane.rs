//! A real `vpnctld` in the test process: the control plane every test of the server,
//! the node daemon, the bot and the admin CLI starts from (feature `control-plane`).
//!
//! It is the real server ([`vpnctl_server::Server`]) over a real redb store, serving
//! real HTTP (or TLS with the certificate `vpnctld init` makes, pinned by fingerprint)
//! on a real socket; nothing is mocked.
//!
//! # Starting one
//!
//! ```no_run
//! # async fn demo() {
//! use vpnctl_testbed::control_plane::ControlPlane;
//!
//! // Plain HTTP on 127.0.0.1, a fresh store in a temp dir, system clock, default
//! // policy, lifecycle loop every 10 s.
//! let cp = ControlPlane::start().await;
//! let admin = cp.admin(); // an `ApiClient` with the admin token
//!
//! // Or everything set: TLS as `vpnctld init` sets it up (the admin token is the one
//! // `init` printed), on the root-side address of a veth pair, with a manual clock,
//! // a policy, and server settings changed.
//! # let clock = vpnctl_core::ManualClock::new(vpnctl_core::Timestamp(1_800_000_000));
//! let cp = ControlPlane::builder()
//!     .tls()
//!     .listen_on("192.0.2.65".parse().unwrap())
//!     .clock(&clock)
//!     .policy(vpnctl_core::Policy::default())
//!     .configure(|c| c.sweep_interval = std::time::Duration::from_millis(50))
//!     .start()
//!     .await;
//! # }
//! ```
//!
//! What a [`ControlPlane`] holds, all public: [`ControlPlane::vpn`] (the open
//! [`Vpnctl`], for arranging and checking state directly), [`ControlPlane::url`],
//! [`ControlPlane::fingerprint`] (`Some` with TLS), [`ControlPlane::admin_token`] and
//! [`ControlPlane::bot_token`]. Clients: [`ControlPlane::admin`],
//! [`ControlPlane::bot`], [`ControlPlane::client`] (any token or none),
//! [`ControlPlane::client_with_scope`] (a fresh token).
//!
//! # Nodes, as an admin adds them
//!
//! [`nodes_add`] is the request `vpnctl nodes add NAME --region R --endpoint E --pool P`
//! sends: region name = code, capacity, MTU, DNS, IPv6 pool, keepalive and listen
//! port left to the control plane's defaults. Tests start from what users get, so
//! change a field only when the test is about it.
//!
//! - [`ControlPlane::add_node`]: registers a node with [`nodes_add`] (region `de-fra`,
//!   pool `10.8.0.0/16`) at the given endpoint; [`ControlPlane::register`] takes any
//!   [`RegisterNode`].
//! - [`ControlPlane::join_token`]: the `vpnctl-join:` token `vpnctl nodes join-token`
//!   prints (pass `token.encode()` to the real `vpnctl-node join`).
//! - [`ControlPlane::enroll`]: what `vpnctl-node join` does, in process: a fresh key
//!   pair, listen port 51820; returns an [`EnrolledNode`] with the node's own client.
//! - [`ControlPlane::enrolled_node`] / [`ControlPlane::enrolled_node_at`]: both steps.
//!
//! # Stopping and restarting
//!
//! [`ControlPlane::stop`] stops serving (open long-polls end at once) and waits for
//! the server to finish; the store stays open, so a test can change it while the API
//! is away (as an admin would after a restart). [`ControlPlane::restart`] serves again
//! on the **same address** (node credentials name it) over the same store and
//! certificate. Dropping the harness stops the server and removes the temp dir.
//!
//! The harness must run inside a tokio runtime (the server is a spawned task); a
//! multi-thread runtime when the test also blocks (e.g. waits for a child process).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use vpnctl_api::body::RegisterNode;
use vpnctl_client::{ApiClient, Fingerprint, JoinToken};
use vpnctl_core::service::{DB_FILE, VAULT_FILE};
use vpnctl_core::{
    KeyPair, ManualClock, Node, NodeId, Policy, Region, Scope, Secret, Vault, Vpnctl,
};
use vpnctl_server::{InitOptions, Server, ServerConfig, ServerError};

/// The listen port [`ControlPlane::enroll`] announces, like `vpnctl-node join`'s default.
pub const NODE_LISTEN_PORT: u16 = 51820;

/// How [`ControlPlane::stop`] may take before the test fails.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// The request `vpnctl nodes add NAME --region REGION --endpoint ENDPOINT --pool POOL`
/// sends: everything else is left to the control plane's defaults.
pub fn nodes_add(name: &str, region: &str, endpoint: &str, pool: &str) -> RegisterNode {
    RegisterNode {
        name: name.into(),
        region: Region {
            code: region.into(),
            name: region.into(),
        },
        endpoint: endpoint.into(),
        ipv4_pool: pool.parse().expect("an IPv4 pool such as 10.8.0.0/16"),
        listen_port: None,
        public_key: None,
        ipv6_pool: None,
        dns: None,
        mtu: None,
        capacity: None,
        client_allowed_ips: None,
        persistent_keepalive: None,
    }
}

/// A node registered and enrolled through the API.
#[derive(Debug)]
pub struct EnrolledNode {
    /// The node as enrollment returned it (public key and listen port set).
    pub node: Node,
    /// An API client holding the node's own token.
    pub client: ApiClient,
    /// The node's own API token (for raw requests).
    pub token: Secret,
    /// The node's WireGuard key pair (generated by the harness, as the node daemon
    /// generates it on the node).
    pub keys: KeyPair,
}

/// A change of the server settings before binding.
type Configure<'a> = Box<dyn FnOnce(&mut ServerConfig) + 'a>;

/// The stop signal and the task of a serving server.
type Serving = (oneshot::Sender<()>, JoinHandle<Result<(), ServerError>>);

/// Settings of a [`ControlPlane`] before it starts; see the module docs.
#[must_use]
pub struct Builder<'a> {
    tls: bool,
    ip: IpAddr,
    data: Option<PathBuf>,
    clock: Option<ManualClock>,
    policy: Policy,
    configure: Option<Configure<'a>>,
}

impl std::fmt::Debug for Builder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("tls", &self.tls)
            .field("ip", &self.ip)
            .field("data", &self.data)
            .finish_non_exhaustive()
    }
}

impl<'a> Builder<'a> {
    /// Serves TLS with the certificate and first admin token `vpnctld init` creates;
    /// clients pin its fingerprint. Default: plain HTTP (loopback only).
    pub fn tls(mut self) -> Self {
        self.tls = true;
        self
    }

    /// Listens on `ip` (port chosen by the kernel, kept across restarts) instead of
    /// 127.0.0.1, e.g. the root-side address of a veth pair to a node namespace.
    /// Plain HTTP is refused off loopback, as in production: use [`Builder::tls`].
    pub fn listen_on(mut self, ip: IpAddr) -> Self {
        self.ip = ip;
        self
    }

    /// Keeps the store in `dir` (created if missing) instead of a temp dir that goes
    /// with the harness.
    pub fn data_dir(mut self, dir: &Path) -> Self {
        self.data = Some(dir.to_owned());
        self
    }

    /// Runs the service on `clock` (expiry, reminders, health follow it).
    pub fn clock(mut self, clock: &ManualClock) -> Self {
        self.clock = Some(clock.clone());
        self
    }

    /// Opens the store with `policy` (health thresholds, reminder days…).
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// Changes the server settings (sweep interval, webhook, bot username…) before
    /// binding. `data`, `listen` and `tls` are the harness's.
    pub fn configure(mut self, f: impl FnOnce(&mut ServerConfig) + 'a) -> Self {
        self.configure = Some(Box::new(f));
        self
    }

    /// Creates the store (and with TLS the certificate), the admin and bot tokens,
    /// binds and serves.
    pub async fn start(self) -> ControlPlane {
        let (temp, data) = match &self.data {
            Some(dir) => (None, dir.clone()),
            None => {
                let temp = tempfile::tempdir().expect("temp dir for the control plane");
                let data = temp.path().join("data");
                (Some(temp), data)
            }
        };
        let listen = SocketAddr::new(self.ip, 0);
        let init_token = if self.tls {
            let done = vpnctl_server::init(&InitOptions {
                data: data.clone(),
                listen,
                public_url: None,
            })
            .expect("vpnctld init");
            Some(done.admin_token)
        } else {
            None
        };
        let policy = self.policy.clone();
        let vpn = match &self.clock {
            Some(clock) => {
                create_private_dir(&data);
                let vault = Vault::open_or_create(&data.join(VAULT_FILE)).expect("vault");
                Vpnctl::open(&data.join(DB_FILE), vault, Arc::new(clock.clone()), policy)
            }
            None => Vpnctl::open_dir_with(&data, policy),
        }
        .expect("open the store");
        let admin_token = match init_token {
            Some(token) => token,
            None => {
                vpn.create_token(Scope::Admin, "test admin")
                    .expect("admin token")
                    .1
            }
        };
        let bot_token = vpn
            .create_token(Scope::Bot, "test bot")
            .expect("bot token")
            .1;
        let mut config = ServerConfig::new(data, listen);
        config.tls = self.tls;
        config.bot_username = Some("test_bot".into());
        config.policy = self.policy;
        if let Some(configure) = self.configure {
            configure(&mut config);
        }
        let mut cp = ControlPlane {
            vpn,
            url: String::new(),
            fingerprint: None,
            admin_token,
            bot_token,
            config,
            running: None,
            _temp: temp,
        };
        cp.serve().await;
        cp
    }
}

fn create_private_dir(dir: &Path) {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
}

/// A running (or stopped) in-process `vpnctld`; see the module docs.
#[derive(Debug)]
pub struct ControlPlane {
    /// The service the server runs over; open while the server is stopped too.
    pub vpn: Vpnctl,
    /// The API base URL (`http://127.0.0.1:PORT` or `https://IP:PORT`).
    pub url: String,
    /// The certificate fingerprint clients pin (TLS only).
    pub fingerprint: Option<Fingerprint>,
    pub admin_token: Secret,
    pub bot_token: Secret,
    config: ServerConfig,
    running: Option<Serving>,
    _temp: Option<tempfile::TempDir>,
}

impl ControlPlane {
    /// Plain HTTP on 127.0.0.1 over a fresh store, with the defaults.
    pub async fn start() -> Self {
        Self::builder().start().await
    }

    /// TLS (as `vpnctld init` sets it up) on 127.0.0.1 over a fresh store.
    pub async fn start_tls() -> Self {
        Self::builder().tls().start().await
    }

    pub fn builder<'a>() -> Builder<'a> {
        Builder {
            tls: false,
            ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            data: None,
            clock: None,
            policy: Policy::default(),
            configure: None,
        }
    }

    /// The settings the server was bound with (`listen` is the bound address).
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// The data directory: store, key file, certificate.
    pub fn data_dir(&self) -> &Path {
        &self.config.data
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.config.listen
    }

    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    async fn serve(&mut self) {
        assert!(
            self.running.is_none(),
            "the control plane is already serving"
        );
        let server = Server::bind_with(self.config.clone(), self.vpn.clone())
            .await
            .expect("bind vpnctld");
        // Restarts come back on the same port: the nodes' credentials name it.
        self.config.listen = server.local_addr();
        self.url = server.base_url().to_owned();
        if self.fingerprint.is_some() {
            assert_eq!(
                server.fingerprint(),
                self.fingerprint,
                "the certificate changed"
            );
        }
        self.fingerprint = server.fingerprint();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.serve(async move {
            let _ = stopped.await;
        }));
        self.running = Some((stop, task));
    }

    /// Stops serving and waits until the server has stopped (at most 10 s). The
    /// store stays open. Does nothing when already stopped.
    pub async fn stop(&mut self) {
        let Some((stop, task)) = self.running.take() else {
            return;
        };
        let _ = stop.send(());
        tokio::time::timeout(STOP_TIMEOUT, task)
            .await
            .expect("vpnctld stops within 10 s")
            .expect("the server task")
            .expect("vpnctld stopped cleanly");
    }

    /// Serves again on the same address, store and certificate.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.serve().await;
    }

    /// A client with `token` (or none), pinning the certificate with TLS.
    pub fn client(&self, token: Option<&Secret>) -> ApiClient {
        ApiClient::new(&self.url, token.cloned(), self.fingerprint).expect("API client")
    }

    /// A client with the admin token.
    pub fn admin(&self) -> ApiClient {
        self.client(Some(&self.admin_token))
    }

    /// A client with the bot token.
    pub fn bot(&self) -> ApiClient {
        self.client(Some(&self.bot_token))
    }

    /// A client with a new token of `scope` (admin or bot).
    pub fn client_with_scope(&self, scope: Scope) -> ApiClient {
        let (_, token) = self.vpn.create_token(scope, "test").expect("create token");
        self.client(Some(&token))
    }

    /// Registers `request` through the admin API.
    pub async fn register(&self, request: &RegisterNode) -> Node {
        self.admin()
            .register_node(request)
            .await
            .expect("register node")
    }

    /// Registers a node as `vpnctl nodes add NAME --region de-fra --endpoint ENDPOINT
    /// --pool 10.8.0.0/16` does.
    pub async fn add_node(&self, name: &str, endpoint: &str) -> Node {
        self.register(&nodes_add(name, "de-fra", endpoint, "10.8.0.0/16"))
            .await
    }

    /// A single-use join token for `node`, as `vpnctl nodes join-token` makes it.
    pub async fn join_token(&self, node: NodeId) -> JoinToken {
        self.admin()
            .create_join_token(node, None)
            .await
            .expect("join token")
            .0
    }

    /// Enrolls `node` as `vpnctl-node join` does: a fresh key pair, listen port
    /// [`NODE_LISTEN_PORT`], the join token's pinned certificate.
    pub async fn enroll(&self, node: NodeId) -> EnrolledNode {
        let join = self.join_token(node).await;
        let joiner = ApiClient::for_join_token(&join).expect("client for the join token");
        let keys = KeyPair::generate();
        let (node, token) = joiner
            .enroll(&join, keys.public, Some(NODE_LISTEN_PORT))
            .await
            .expect("enroll");
        EnrolledNode {
            node,
            client: joiner.with_token(token.clone()),
            token,
            keys,
        }
    }

    /// [`Self::add_node`] at `vpn.example.com:51820`, then [`Self::enroll`].
    pub async fn enrolled_node(&self, name: &str) -> EnrolledNode {
        self.enrolled_node_at(name, "vpn.example.com:51820").await
    }

    /// [`Self::add_node`] at `endpoint` (what clients connect to and what the control
    /// plane probes), then [`Self::enroll`].
    pub async fn enrolled_node_at(&self, name: &str, endpoint: &str) -> EnrolledNode {
        let node = self.add_node(name, endpoint).await;
        self.enroll(node.id).await
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        if let Some((stop, task)) = self.running.take() {
            let _ = stop.send(());
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn plain_and_tls_serve_enroll_and_restart_on_the_same_address() {
        for tls in [false, true] {
            let builder = ControlPlane::builder();
            let builder = if tls { builder.tls() } else { builder };
            let mut cp = builder.start().await;
            assert_eq!(cp.fingerprint.is_some(), tls);
            assert!(cp.url.starts_with(if tls { "https://" } else { "http://" }));
            let enrolled = cp.enrolled_node("fra-1").await;
            assert_eq!(enrolled.node.public_key, Some(enrolled.keys.public));
            assert_eq!(enrolled.node.capacity, 0, "capacity left to the default");
            assert_eq!(cp.admin().nodes().await.unwrap().len(), 1);
            assert!(cp.bot().notifications(None, None).await.is_ok());

            let addr = cp.addr();
            cp.stop().await;
            assert!(!cp.is_running());
            assert!(cp.admin().nodes().await.is_err(), "stopped");
            cp.restart().await;
            assert_eq!(cp.addr(), addr);
            assert_eq!(cp.admin().nodes().await.unwrap().len(), 1);
        }
    }
}
