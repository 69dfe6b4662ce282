//! Test support: a real vpnctld on 127.0.0.1:0 over a real redb store in a temp dir.
#![allow(dead_code, clippy::missing_panics_doc)]

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use vpnctl_api::body::RegisterNode;
use vpnctl_client::{ApiClient, Fingerprint};
use vpnctl_core::service::{DB_FILE, VAULT_FILE};
use vpnctl_core::{KeyPair, ManualClock, Node, Policy, Region, Scope, Secret, Vault, Vpnctl};
use vpnctl_server::{InitOptions, Server, ServerConfig, ServerError};

pub struct TestServer {
    pub url: String,
    pub fingerprint: Option<Fingerprint>,
    pub admin_token: Secret,
    pub vpn: Vpnctl,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<Result<(), ServerError>>>,
    _dir: tempfile::TempDir,
}

impl TestServer {
    /// Plain HTTP on loopback.
    pub async fn start() -> Self {
        Self::start_with(false).await
    }

    pub async fn start_with(tls: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let listen = "127.0.0.1:0".parse().unwrap();
        let admin_token = if tls {
            // `init` makes the certificate and the first admin token.
            let done = vpnctl_server::init(&InitOptions {
                data: data.clone(),
                listen,
                public_url: None,
            })
            .unwrap();
            Some(done.admin_token)
        } else {
            None
        };
        let vpn = Vpnctl::open_dir(&data).unwrap();
        let admin_token = match admin_token {
            Some(t) => t,
            None => vpn.create_token(Scope::Admin, "test admin").unwrap().1,
        };
        let mut config = ServerConfig::new(data, listen);
        config.tls = tls;
        config.bot_username = Some("test_bot".into());
        Self::serve(dir, vpn, admin_token, config).await
    }

    /// Plain HTTP on loopback over a store on `clock` with `policy`; the lifecycle
    /// loop runs every 50 ms unless `configure` says otherwise.
    pub async fn start_clocked(
        clock: &ManualClock,
        policy: Policy,
        configure: impl FnOnce(&mut ServerConfig),
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let vault = Vault::open_or_create(&data.join(VAULT_FILE)).unwrap();
        let vpn =
            Vpnctl::open(&data.join(DB_FILE), vault, Arc::new(clock.clone()), policy).unwrap();
        let admin_token = vpn.create_token(Scope::Admin, "test admin").unwrap().1;
        let mut config = ServerConfig::new(data, "127.0.0.1:0".parse().unwrap());
        config.tls = false;
        config.sweep_interval = Duration::from_millis(50);
        configure(&mut config);
        Self::serve(dir, vpn, admin_token, config).await
    }

    async fn serve(
        dir: tempfile::TempDir,
        vpn: Vpnctl,
        admin_token: Secret,
        config: ServerConfig,
    ) -> Self {
        let server = Server::bind_with(config, vpn.clone()).await.unwrap();
        let url = server.base_url().to_owned();
        let fingerprint = server.fingerprint();
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(server.serve(async move {
            let _ = rx.await;
        }));
        Self {
            url,
            fingerprint,
            admin_token,
            vpn,
            shutdown: Some(tx),
            handle: Some(handle),
            _dir: dir,
        }
    }

    pub fn client(&self, token: Option<&Secret>) -> ApiClient {
        ApiClient::new(&self.url, token.cloned(), self.fingerprint).unwrap()
    }

    pub fn admin(&self) -> ApiClient {
        self.client(Some(&self.admin_token))
    }

    /// Stops the server and waits until it has stopped.
    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(handle) = self.handle.take() {
            tokio::time::timeout(Duration::from_secs(5), handle)
                .await
                .expect("server stops within 5 s")
                .unwrap()
                .unwrap();
        }
    }

    /// Registers a node and enrolls it over the API; returns it and a client holding
    /// its node token.
    pub async fn enrolled_node(&self, name: &str) -> (Node, ApiClient) {
        self.enrolled_node_at(name, "vpn.example.com:51820").await
    }

    /// [`Self::enrolled_node`] with the endpoint clients (and probes) use.
    pub async fn enrolled_node_at(&self, name: &str, endpoint: &str) -> (Node, ApiClient) {
        let admin = self.admin();
        let mut new = register(name);
        new.endpoint = endpoint.into();
        let node = admin.register_node(&new).await.unwrap();
        let (join, _) = admin.create_join_token(node.id, None).await.unwrap();
        let joiner = ApiClient::for_join_token(&join).unwrap();
        let public = KeyPair::generate().public;
        let (node, token) = joiner.enroll(&join, public, Some(51820)).await.unwrap();
        (node, joiner.with_token(token))
    }
}

pub fn register(name: &str) -> RegisterNode {
    RegisterNode {
        name: name.into(),
        region: Region {
            code: "de-fra".into(),
            name: "Frankfurt".into(),
        },
        endpoint: "vpn.example.com:51820".into(),
        ipv4_pool: "10.8.0.0/16".parse().unwrap(),
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
