//! Shared set-up for the whole-system tests: the real `vpnctl-node` binary in node
//! namespaces, linked by [`vpnctl_testbed::RootLink`]s to the root namespace, where
//! the tests run an in-process `vpnctld`
//! ([`vpnctl_testbed::control_plane::ControlPlane`], TLS on the root-side address).

#![allow(dead_code)] // each test binary uses a different part

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use vpnctl_api::body::IssuePeerRequest;
use vpnctl_client::ApiClient;
use vpnctl_core::{NodeId, PeerId, UserId};
use vpnctl_testbed::internet::Dnsmasq;
use vpnctl_testbed::{ChildGuard, Netns};

pub const WG_PORT: u16 = 51820;

/// The real `vpnctl-node` binary inside a node namespace.
pub struct NodeDaemon {
    pub ns: String,
    pub state: PathBuf,
    pub iface: String,
    /// Extra arguments for `run`.
    pub run_args: Vec<String>,
    /// Reconcile and report every second instead of the defaults (10 s, 15 s).
    pub fast: bool,
}

impl NodeDaemon {
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns, env!("CARGO_BIN_EXE_vpnctl-node")])
            .args(["--state-dir", self.state.to_str().unwrap()])
            // No --listen-port, as an admin runs it: the node listens on the port of
            // the endpoint it was added with.
            .args(["--interface", &self.iface, "--backend", "userspace"])
            .args(if self.fast {
                &["--reconcile-interval", "1s", "--report-interval", "1s"][..]
            } else {
                &[]
            })
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

/// What every VPS has: a resolver of its own, here a local stub on 127.0.0.53 (as
/// systemd-resolved's) named by the namespace's resolv.conf. The node's tunnel
/// resolver forwards to it; without it the node would rightly report its DNS as
/// failing and be judged degraded.
pub fn vps_resolver(ns: &Netns) -> Dnsmasq {
    let stub: std::net::IpAddr = "127.0.0.53".parse().unwrap();
    let resolver = Dnsmasq::start(
        ns,
        stub,
        &[("vpn.example.test", &["192.0.2.1".parse().unwrap()])],
    );
    ns.set_resolv_conf("nameserver 127.0.0.53\n");
    resolver
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
