//! Shared set-up for the whole-system tests: an in-process `vpnctld` (TLS, pinned)
//! in the root namespace, the real `vpnctl-node` binary in node namespaces, linked
//! to the root namespace by veth pairs.

#![allow(dead_code)] // each test binary uses a different part

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use vpnctl_api::body::IssuePeerRequest;
use vpnctl_client::ApiClient;
use vpnctl_core::{NodeId, PeerId, Policy, UserId, Vpnctl};
use vpnctl_server::{InitOptions, Server, ServerConfig};
use vpnctl_testbed::{ChildGuard, Names, Netns};

pub const WG_PORT: u16 = 51820;

/// The control plane, restartable on the same address and store.
pub struct ControlPlane {
    pub vpn: Vpnctl,
    pub config: ServerConfig,
    pub url: String,
    pub fingerprint: vpnctl_client::Fingerprint,
    pub admin: vpnctl_core::Secret,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), vpnctl_server::ServerError>>>,
}

impl ControlPlane {
    /// `vpnctld init` on `listen_ip`, then serves with `policy` and the settings
    /// `configure` changes.
    pub async fn start(
        data: &Path,
        listen_ip: &str,
        policy: Policy,
        configure: impl FnOnce(&mut ServerConfig),
    ) -> Self {
        let listen = format!("{listen_ip}:0").parse().unwrap();
        let init = vpnctl_server::init(&InitOptions {
            data: data.to_owned(),
            listen,
            public_url: None,
        })
        .expect("vpnctld init");
        let vpn = Vpnctl::open_dir_with(data, policy).expect("open store");
        let mut config = ServerConfig::new(data.to_owned(), listen);
        config.tls = true;
        configure(&mut config);
        let mut cp = Self {
            vpn,
            config,
            url: String::new(),
            fingerprint: init.fingerprint,
            admin: init.admin_token,
            stop: None,
            task: None,
        };
        cp.serve().await;
        cp
    }

    pub async fn serve(&mut self) {
        let server = Server::bind_with(self.config.clone(), self.vpn.clone())
            .await
            .expect("bind vpnctld");
        // Restarts come back on the same port: the node's credentials name it.
        self.config.listen = server.local_addr();
        self.url = server.base_url().to_owned();
        assert_eq!(server.fingerprint(), Some(self.fingerprint));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        self.stop = Some(tx);
        self.task = Some(tokio::spawn(server.serve(async move {
            let _ = rx.await;
        })));
    }

    pub async fn kill(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await
                .expect("server task")
                .expect("server stopped cleanly");
        }
    }

    pub fn admin(&self) -> ApiClient {
        ApiClient::new(&self.url, Some(self.admin.clone()), Some(self.fingerprint)).unwrap()
    }

    /// A client with a fresh token of `scope`.
    pub fn client(&self, scope: vpnctl_core::Scope) -> ApiClient {
        let (_, token) = self.vpn.create_token(scope, "test").unwrap();
        ApiClient::new(&self.url, Some(token), Some(self.fingerprint)).unwrap()
    }
}

/// A veth pair between the root namespace (this test, where vpnctld listens) and a
/// node namespace, `root_ip`/30 ↔ `ns_ip`/30. Deleting the namespace destroys both
/// ends; Drop also deletes the root end (and with it any route over it).
pub struct RootLink {
    root_end: String,
}

impl RootLink {
    pub fn new(names: &Names, tag: &str, ns: &Netns, root_ip: &str, ns_ip: &str) -> Self {
        let root_end = names.iface(&format!("{tag}r"));
        let ns_end = names.iface(&format!("{tag}n"));
        vpnctl_testbed::run_ok(
            "ip",
            &[
                "link",
                "add",
                &root_end,
                "type",
                "veth",
                "peer",
                "name",
                &ns_end,
                "netns",
                ns.name(),
            ],
        );
        let link = Self { root_end };
        vpnctl_testbed::run_ok(
            "ip",
            &[
                "addr",
                "add",
                &format!("{root_ip}/30"),
                "dev",
                &link.root_end,
            ],
        );
        vpnctl_testbed::run_ok("ip", &["link", "set", &link.root_end, "up"]);
        ns.ip(&["addr", "add", &format!("{ns_ip}/30"), "dev", &ns_end]);
        ns.ip(&["link", "set", &ns_end, "up"]);
        link
    }

    /// Routes `dest` (a host address of the node namespace) from the root namespace
    /// over this link, e.g. so that the control plane can probe a node's endpoint.
    pub fn route(&self, dest: &str, via: &str) {
        vpnctl_testbed::run_ok(
            "ip",
            &[
                "route",
                "add",
                &format!("{dest}/32"),
                "via",
                via,
                "dev",
                &self.root_end,
            ],
        );
    }
}

impl Drop for RootLink {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.root_end])
            .stderr(Stdio::null())
            .status();
    }
}

/// The real `vpnctl-node` binary inside a node namespace.
pub struct NodeDaemon {
    pub ns: String,
    pub state: PathBuf,
    pub iface: String,
    /// Extra arguments for `run`.
    pub run_args: Vec<String>,
}

impl NodeDaemon {
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns, env!("CARGO_BIN_EXE_vpnctl-node")])
            .args(["--state-dir", self.state.to_str().unwrap()])
            .args(["--interface", &self.iface, "--backend", "userspace"])
            .args(["--listen-port", &WG_PORT.to_string()])
            .args(["--reconcile-interval", "1s", "--report-interval", "1s"])
            .args(args)
            .env("RUST_LOG", "vpnctl_node=info")
            .stdin(Stdio::null());
        cmd
    }

    pub fn join(&self, token: &str) {
        let out = self
            .command(&["join"])
            .env("VPNCTL_NODE_JOIN_TOKEN", token)
            .output()
            .expect("run vpnctl-node join");
        assert!(
            out.status.success(),
            "join failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn run(&self) -> ChildGuard {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.state.with_extension("log"))
            .unwrap();
        let mut args = vec!["run"];
        args.extend(self.run_args.iter().map(String::as_str));
        ChildGuard::spawn(self.command(&args).stdout(Stdio::null()).stderr(log))
            .expect("spawn vpnctl-node run")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.state.with_extension("log")).unwrap_or_default()
    }

    pub fn interface_exists(&self) -> bool {
        vpnctl_testbed::run("wg", &["show", &self.iface]).is_ok_and(|o| o.status.success())
    }

    /// A "reboot": the daemon is killed, and the interface with its wireguard-go.
    pub fn crash(&self, running: ChildGuard, ns: &Netns) {
        running.signal("KILL");
        drop(running);
        for pid in ns.pids() {
            if std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "wireguard-go")
            {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            }
        }
        wait_for(
            "the interface to disappear",
            Duration::from_secs(10),
            || !self.interface_exists(),
        );
        let _ = std::fs::remove_file(format!("{}/{}.sock", vpnctl_testbed::UAPI_DIR, self.iface));
    }
}

pub fn wg_peers(iface: &str) -> Vec<String> {
    let out = vpnctl_testbed::run("wg", &["show", iface, "peers"]).expect("wg show");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

pub fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub async fn issue(
    admin: &ApiClient,
    user: UserId,
    node: NodeId,
    device: &str,
) -> (PeerId, String) {
    let issued = admin
        .issue_peer(&IssuePeerRequest {
            user,
            node,
            device: device.into(),
            public_key: None,
        })
        .await
        .expect("issue peer");
    (
        issued.peer.id,
        issued.config.expect("config of a generated key"),
    )
}

/// Runs a future to completion from synchronous test code on the multi-thread runtime.
pub fn block<F: std::future::Future>(f: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
}
