//! Shared set-up for the namespace tests: a node namespace running our
//! `UserspaceBackend` (wireguard-go started inside it), a client namespace with a
//! standard `wg-quick` config, an "internet" namespace behind the node.
//!
//! ```text
//!  client ns                 node ns                          inet ns
//!  wg-quick (198.51.100.2) ─ veth 192.0.2.2 ↔ 192.0.2.1
//!                            wireguard-go 198.51.100.1/24
//!                            NAT ─ veth 203.0.113.2 ↔ 203.0.113.1 (no route back to
//!                                                                 198.51.100.0/24)
//! ```
//!
//! `netconf` works on the namespace of the calling process, so the test binary re-runs
//! itself inside the node namespace (`ip netns exec NS <test exe> netns_child --exact
//! --ignored`) with the operation in environment variables; see [`child_main`].
//! The backend itself runs in the test process: UAPI sockets are machine-wide.

#![allow(dead_code)] // each test binary uses a different part

use std::process::Command;

use vpnctl_core::keys::{KeyPair, PresharedKey, PrivateKey, PublicKey};
use vpnctl_core::reconcile::PeerSpec;
use vpnctl_node::IfaceName;
use vpnctl_node::backend::{InterfaceSpec, UserspaceBackend, WgBackend};
use vpnctl_node::netconf::{self, ExitConfig};
use vpnctl_testbed::{Names, Netns, UapiGuard, WgQuick, veth};

pub const NODE_UNDERLAY: &str = "192.0.2.1";
pub const CLIENT_UNDERLAY: &str = "192.0.2.2";
pub const GATEWAY: &str = "198.51.100.1";
pub const CLIENT_TUNNEL: &str = "198.51.100.2";
pub const INET_HOST: &str = "203.0.113.1";
pub const PORT: u16 = 51820;

const CHILD_OP: &str = "VPNCTL_TEST_CHILD_OP";
const CHILD_ARG: &str = "VPNCTL_TEST_CHILD_ARG";

/// A node: namespace + wireguard-go interface driven by our backend.
/// Fields drop in order: the backend stops wireguard-go, then the namespace goes.
pub struct Node {
    pub backend: UserspaceBackend,
    pub iface: IfaceName,
    pub public: PublicKey,
    pub private: PrivateKey,
    _uapi: UapiGuard,
    pub ns: Netns,
}

impl Node {
    pub fn new(names: &Names) -> Self {
        vpnctl_testbed::require_root_and_tools();
        let ns = Netns::new(&names.netns("node"));
        let iface = IfaceName::new(&names.iface("wg")).unwrap();
        let uapi = UapiGuard::new(iface.as_str());
        let mut backend = UserspaceBackend::new(iface.clone()).with_launcher([
            "ip",
            "netns",
            "exec",
            ns.name(),
            "wireguard-go",
        ]);
        let private = PrivateKey::generate();
        let public = private.public_key();
        backend
            .ensure(&InterfaceSpec {
                private_key: private.clone(),
                listen_port: PORT,
                transport: None,
            })
            .expect("start wireguard-go in the node namespace");
        Self {
            backend,
            iface,
            public,
            private,
            _uapi: uapi,
            ns,
        }
    }

    pub fn exit_config(&self) -> ExitConfig {
        ExitConfig {
            iface: self.iface.clone(),
            ipv4: format!("{GATEWAY}/24").parse().unwrap(),
            ipv6: None,
            mtu: 1420,
            nat: true,
        }
    }

    /// Runs `netconf::up(cfg)` inside the node namespace.
    pub fn netconf_up(&self, cfg: &ExitConfig) {
        run_child(&self.ns, "netconf-up", &serde_json::to_string(cfg).unwrap());
    }

    /// Runs `netconf::down(iface)` inside the node namespace.
    pub fn netconf_down(&self) {
        run_child(&self.ns, "netconf-down", self.iface.as_str());
    }
}

/// Node, client and internet namespaces with a working tunnel.
/// Drop order: client (`wg-quick down`), node, then the other namespaces.
pub struct Tunnel {
    pub client: WgQuick,
    pub client_spec: PeerSpec,
    pub node: Node,
    pub cli: Netns,
    pub inet: Netns,
    pub names: Names,
}

impl Tunnel {
    pub fn new() -> Self {
        let names = Names::new();
        let node = Node::new(&names);
        let cli = Netns::new(&names.netns("cli"));
        let inet = Netns::new(&names.netns("inet"));
        veth(
            &names.iface("u"),
            &node.ns,
            &format!("{NODE_UNDERLAY}/24"),
            &cli,
            &format!("{CLIENT_UNDERLAY}/24"),
        );
        veth(
            &names.iface("i"),
            &node.ns,
            "203.0.113.2/24",
            &inet,
            &format!("{INET_HOST}/24"),
        );
        node.netconf_up(&node.exit_config());

        let client_keys = KeyPair::generate();
        let psk = PresharedKey::generate();
        let client_spec = PeerSpec::new(
            client_keys.public,
            Some(psk.clone()),
            [format!("{CLIENT_TUNNEL}/32").parse().unwrap()],
            None,
        );
        let mut node = node;
        let outcome =
            vpnctl_node::reconcile(&mut node.backend, std::slice::from_ref(&client_spec)).unwrap();
        assert_eq!(outcome.added(), 1);

        // A standard config, as the official apps get it.
        let config = format!(
            "[Interface]\nPrivateKey = {}\nAddress = {CLIENT_TUNNEL}/32\nDNS = {GATEWAY}\n\n\
             [Peer]\nPublicKey = {}\nPresharedKey = {}\nEndpoint = {NODE_UNDERLAY}:{PORT}\n\
             AllowedIPs = 0.0.0.0/0\nPersistentKeepalive = 25\n",
            client_keys.private.expose_base64(),
            node.public.to_base64(),
            psk.expose_base64(),
        );
        let client = WgQuick::up(&cli, &names.iface("c"), &config);
        Self {
            client,
            client_spec,
            node,
            cli,
            inet,
            names,
        }
    }
}

fn run_child(ns: &Netns, op: &str, arg: &str) {
    let exe = std::env::current_exe().expect("test executable");
    let out = Command::new("ip")
        .args(["netns", "exec", ns.name()])
        .arg(exe)
        .args([
            "netns_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_OP, op)
        .env(CHILD_ARG, arg)
        .output()
        .expect("re-run the test binary in the namespace");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{op} in {} failed: {stdout}{}",
        ns.name(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Body of the `netns_child` helper test: performs the operation named in the
/// environment, inside whatever namespace the process was started in.
pub fn child_main() {
    let Ok(op) = std::env::var(CHILD_OP) else {
        // Picked up by a plain `--ignored` run: nothing to do outside a re-execution.
        eprintln!("netns_child: not re-executed by a namespace test; nothing to do");
        return;
    };
    let arg = std::env::var(CHILD_ARG).unwrap_or_default();
    match op.as_str() {
        "netconf-up" => {
            let cfg: ExitConfig = serde_json::from_str(&arg).unwrap();
            netconf::up(&cfg).unwrap();
        }
        "netconf-down" => netconf::down(&IfaceName::new(&arg).unwrap()).unwrap(),
        other => panic!("unknown child op {other}"),
    }
}

/// `count` peers with distinct keys and /32s in 10.8.0.0/16 (configuration only; no
/// traffic goes there).
pub fn many_peers(count: usize) -> Vec<PeerSpec> {
    (0..count)
        .map(|i| {
            let ip = std::net::Ipv4Addr::new(
                10,
                8,
                u8::try_from(i / 250).unwrap(),
                u8::try_from(i % 250 + 2).unwrap(),
            );
            PeerSpec::new(
                KeyPair::generate().public,
                None,
                [ipnet::IpNet::from(std::net::IpAddr::V4(ip))],
                None,
            )
        })
        .collect()
}

/// Retries `ping` (one packet at a time) until it gets an answer or `secs` pass.
pub fn ping_until(ns: &Netns, addr: &str, secs: u64) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if vpnctl_testbed::ping_stats(ns, addr, 1, 0.2).is_some_and(|s| s.received == 1) {
            return true;
        }
    }
    false
}
