//! From install to a browsing client, as an operator does it: the installed packages
//! (`scripts/test.sh` builds them with `scripts/package.sh` and installs them with
//! `dpkg -i` before running this), and the commands of `docs/operations.md` that are
//! marked for the journey, run as written on the host each block names. Only where a
//! test machine differs from real ones is anything replaced, and each replacement is
//! listed here:
//!
//! - hosts are network namespaces on one "internet" (a bridge), with a resolver
//!   (dnsmasq) that knows `vpn.example.com` (the control plane), `vpn1`/`vpn2` (the
//!   VPN servers) and `www.example.com` (a web server);
//! - the hosts share one filesystem: `/var/lib/vpnctl` becomes a temp directory, and
//!   each VPN server gets its own state directory and interface name through the
//!   environment, as `/etc/default/vpnctl-node` would on a real server;
//! - there is no systemd: `systemctl enable --now UNIT` runs the installed unit's
//!   `ExecStart` (with its `Environment=`) in the background;
//! - placeholders take what the previous commands printed (the connection string,
//!   the join token) and the second VPN server is the first one's block with the
//!   name, region, endpoint and pool the guide gives as an example.
//!
//! Then it checks what the guide promises: the client resolves a name and fetches a
//! page through the tunnel; after `vpnctl nodes evacuate` the old config no longer
//! does and the new one (written for the admin to hand over) does, through the other
//! server.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use vpnctl_journey::{Block, journey};
use vpnctl_testbed::internet::{Dnsmasq, WebServer, curl};
use vpnctl_testbed::{ChildGuard, Names, Netns, UapiGuard, WgQuick, run_ok};

const GUIDE: &str = include_str!("../../docs/operations.md");
const PAGE: &str = "hello from www.example.com\n";

/// The example second server the guide names (section 2), and what replaces the
/// first one's values in its blocks.
const SECOND: [(&str, &str); 4] = [
    ("de-fra-1", "nl-ams-1"),
    ("de-fra", "nl-ams"),
    ("vpn1.example.com:51820", "vpn2.example.com:51820"),
    ("10.8.0.0/16", "10.9.0.0/16"),
];

struct Host {
    ns: Netns,
    addr: &'static str,
}

/// One VPN server: its namespace, the environment its daemon runs with.
struct Vps {
    host: Host,
    env: Vec<(String, String)>,
    _uapi: UapiGuard,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the vpnctl packages installed: scripts/test.sh builds and installs them, then runs this"]
async fn install_to_browse() {
    vpnctl_testbed::require_root_and_tools();
    let _serial = vpnctl_testbed::serial();
    let started = Instant::now();
    let blocks = journey(GUIDE).expect("docs/operations.md reads as a journey");
    for (_, example) in SECOND {
        assert!(
            GUIDE.contains(example),
            "the guide no longer names {example:?} as the second server"
        );
    }
    let names = Names::new();
    let work = tempfile::tempdir().unwrap();
    let admin_home = work.path().join("admin");
    std::fs::create_dir(&admin_home).unwrap();

    // ---- the internet: one bridge, a resolver, a web server
    let net = Netns::new(&names.netns("net"));
    net.ip(&["link", "add", "br0", "type", "bridge"]);
    for addr in ["203.0.113.1/24", "203.0.113.53/24", "203.0.113.80/24"] {
        net.ip(&["addr", "add", addr, "dev", "br0"]);
    }
    net.ip(&["link", "set", "br0", "up"]);
    let host = |role: &str, addr: &'static str| {
        let ns = Netns::new(&names.netns(role));
        let (inside, outside) = (
            names.iface(&format!("{role}h")),
            names.iface(&format!("{role}b")),
        );
        run_ok(
            "ip",
            &[
                "link",
                "add",
                &inside,
                "netns",
                ns.name(),
                "type",
                "veth",
                "peer",
                "name",
                &outside,
                "netns",
                net.name(),
            ],
        );
        ns.ip(&["addr", "add", &format!("{addr}/24"), "dev", &inside]);
        ns.ip(&["link", "set", &inside, "up"]);
        net.ip(&["link", "set", &outside, "master", "br0"]);
        net.ip(&["link", "set", &outside, "up"]);
        ns.ip(&["route", "add", "default", "via", "203.0.113.1"]);
        ns.set_resolv_conf("nameserver 203.0.113.53\n");
        Host { ns, addr }
    };
    let cp = host("cp", "203.0.113.10");
    let admin = host("adm", "203.0.113.30");
    // The client is elsewhere (its ISP's network, routed through the "internet"):
    // on the servers' own subnet wg-quick would leave that subnet outside the tunnel.
    let client = {
        let ns = Netns::new(&names.netns("cl"));
        vpnctl_testbed::veth(
            &names.iface("cl"),
            &ns,
            "198.51.100.2/24",
            &net,
            "198.51.100.1/24",
        );
        ns.ip(&["route", "add", "default", "via", "198.51.100.1"]);
        ns.set_resolv_conf("nameserver 203.0.113.53\n");
        Host {
            ns,
            addr: "198.51.100.2",
        }
    };
    net.exec_ok("sysctl", &["-qw", "net.ipv4.ip_forward=1"]);
    let vps = [("v1", "203.0.113.21"), ("v2", "203.0.113.22")].map(|(role, addr)| {
        let iface = names.iface(&format!("w{role}"));
        let state = work.path().join(role);
        Vps {
            host: host(role, addr),
            env: vec![
                ("VPNCTL_NODE_STATE_DIR".into(), state.display().to_string()),
                ("VPNCTL_NODE_INTERFACE".into(), iface.clone()),
            ],
            _uapi: UapiGuard::new(&iface),
        }
    });
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let _resolver = Dnsmasq::start(
        &net,
        ip("203.0.113.53"),
        &[
            ("vpn.example.com", &[ip(cp.addr)]),
            ("vpn1.example.com", &[ip(vps[0].host.addr)]),
            ("vpn2.example.com", &[ip(vps[1].host.addr)]),
            ("www.example.com", &[ip("203.0.113.80")]),
        ],
    );
    let web = WebServer::start(&net, &[SocketAddr::new(ip("203.0.113.80"), 80)], PAGE);

    // ---- the guide, block by block
    let data_dir = work.path().join("vpnctl");
    let mut admin_env: Vec<(String, String)> = Vec::new();
    let mut printed = Printed::default();
    let mut daemons: Vec<ChildGuard> = Vec::new();
    let mut tunnels: Vec<WgQuick> = Vec::new();
    let mut node_block: Option<&Block> = None;
    let mut clients_run = 0;
    for block in &blocks {
        match block.host.as_str() {
            "install" => {
                for command in &block.commands {
                    check_installed(command);
                }
            }
            "control-plane" => {
                for command in &block.commands {
                    let command = replace_data_dir(command, &data_dir);
                    if command[0] == "systemctl" {
                        daemons.push(start_unit(&cp.ns, &command, &[], &data_dir, work.path()));
                        wait_listening(&admin.ns, "vpn.example.com:7443");
                    } else {
                        let out = run(&cp.ns, &command, &[], work.path());
                        printed.take(&out);
                    }
                }
            }
            "admin" => {
                for command in &block.commands {
                    if command[0] == "export" {
                        let (key, _) = command[1].split_once('=').expect("export KEY=VALUE");
                        let value = printed
                            .connect
                            .clone()
                            .expect("vpnctld init printed a connection string");
                        admin_env.push((key.to_owned(), value));
                        continue;
                    }
                    let out = run(&admin.ns, command, &admin_env, &admin_home);
                    printed.take(&out);
                }
            }
            "admin-node" => {
                node_block = Some(block);
                run_node_block(block, &[], &admin.ns, &admin_env, &admin_home, &mut printed);
            }
            "vps" => {
                // The first server as written, then the second one the same way.
                let first = run_vps_block(block, &vps[0], &printed, &data_dir, work.path());
                daemons.push(first);
                let second_admin = node_block.expect("the admin's node block comes first");
                run_node_block(
                    second_admin,
                    &SECOND,
                    &admin.ns,
                    &admin_env,
                    &admin_home,
                    &mut printed,
                );
                daemons.push(run_vps_block(
                    block,
                    &vps[1],
                    &printed,
                    &data_dir,
                    work.path(),
                ));
                wait_nodes_up(
                    &admin.ns,
                    &admin_env,
                    &admin_home,
                    &["de-fra-1", "nl-ams-1"],
                );
            }
            "client" => {
                for command in &block.commands {
                    assert_eq!(
                        &command[..2],
                        ["wg-quick", "up"],
                        "client blocks bring a config up"
                    );
                    let file = admin_home.join(&command[2]);
                    clients_run += 1;
                    if clients_run == 1 {
                        let tunnel = up(&client.ns, &file);
                        let page = retry_curl(
                            &client.ns,
                            "http://www.example.com/",
                            Duration::from_secs(30),
                        );
                        assert_eq!(page, PAGE);
                        assert_eq!(
                            web.clients().last().unwrap().ip(),
                            ip(vps[0].host.addr),
                            "through de-fra-1"
                        );
                        tunnels.push(tunnel);
                    } else {
                        // After the evacuation: the old config is dead, the new one browses.
                        assert!(
                            file.exists(),
                            "the guide's {} is not among the files evacuate wrote: {:?}",
                            file.display(),
                            std::fs::read_dir(file.parent().unwrap())
                                .map(|d| d.flatten().map(|e| e.file_name()).collect::<Vec<_>>())
                        );
                        wait_until(
                            "the old config stops working",
                            Duration::from_secs(20),
                            || {
                                curl(
                                    &client.ns,
                                    "http://www.example.com/",
                                    Duration::from_secs(2),
                                    &[],
                                )
                                .is_err()
                            },
                        );
                        tunnels.clear();
                        let tunnel = up(&client.ns, &file);
                        let page = retry_curl(
                            &client.ns,
                            "http://www.example.com/",
                            Duration::from_secs(30),
                        );
                        assert_eq!(page, PAGE);
                        assert_eq!(
                            web.clients().last().unwrap().ip(),
                            ip(vps[1].host.addr),
                            "through nl-ams-1"
                        );
                        tunnels.push(tunnel);
                    }
                }
            }
            other => panic!("a journey block for an unknown host {other:?}"),
        }
    }
    assert_eq!(
        clients_run, 2,
        "the guide brings up a config before and after evacuating"
    );
    eprintln!(
        "install to browse: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    drop(tunnels);
    drop(daemons);
}

/// What earlier commands printed that later ones need.
#[derive(Default)]
struct Printed {
    connect: Option<String>,
    join: Option<String>,
}

impl Printed {
    fn take(&mut self, out: &Output) {
        let text = String::from_utf8_lossy(&out.stdout);
        for word in text.split_whitespace() {
            if word.starts_with("vpnctl-connect:") {
                self.connect = Some(word.to_owned());
            }
            if word.starts_with("vpnctl-join:") {
                self.join = Some(word.to_owned());
            }
        }
    }
}

/// `apt install ./NAME_VERSION_ARCH.deb`: NAME must be installed (by the test script).
fn check_installed(command: &[String]) {
    assert_eq!(
        &command[..2],
        ["apt", "install"],
        "install blocks install packages"
    );
    let file = command[2].trim_start_matches("./");
    let package = file.split('_').next().unwrap();
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "install ok installed",
        "{package} is not installed: run scripts/package.sh and dpkg -i dist/*.deb (scripts/test.sh does)"
    );
}

fn replace_data_dir(command: &[String], data_dir: &Path) -> Vec<String> {
    command
        .iter()
        .map(|w| w.replace("/var/lib/vpnctl", &data_dir.display().to_string()))
        .collect()
}

fn replace_words(command: &[String], table: &[(&str, &str)]) -> Vec<String> {
    command
        .iter()
        .map(|w| {
            table
                .iter()
                .find(|(from, _)| w == from)
                .map_or_else(|| w.clone(), |(_, to)| (*to).to_owned())
        })
        .collect()
}

fn run_node_block(
    block: &Block,
    table: &[(&str, &str)],
    ns: &Netns,
    env: &[(String, String)],
    cwd: &Path,
    printed: &mut Printed,
) {
    for command in &block.commands {
        let out = run(ns, &replace_words(command, table), env, cwd);
        printed.take(&out);
    }
}

fn run_vps_block(
    block: &Block,
    vps: &Vps,
    printed: &Printed,
    data_dir: &Path,
    work: &Path,
) -> ChildGuard {
    let mut daemon = None;
    for command in &block.commands {
        if command[0] == "systemctl" {
            daemon = Some(start_unit(&vps.host.ns, command, &vps.env, data_dir, work));
            continue;
        }
        let token = printed.join.clone().expect("join-token printed a token");
        let command: Vec<String> = command
            .iter()
            .map(|w| {
                if w.starts_with("vpnctl-join:") {
                    token.clone()
                } else {
                    w.clone()
                }
            })
            .collect();
        run(&vps.host.ns, &command, &vps.env, work);
    }
    daemon.expect("the vps block starts the service")
}

/// Runs a command inside `ns` (never through a shell) and fails the test unless it
/// succeeds.
fn run(ns: &Netns, command: &[String], env: &[(String, String)], cwd: &Path) -> Output {
    let out = ns
        .command(&command[0])
        .args(&command[1..])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(cwd)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("spawn {command:?}: {e}"));
    assert!(
        out.status.success(),
        "`{}` in {} failed ({}):\n{}{}",
        command.join(" "),
        ns.name(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `systemctl enable --now UNIT`: the installed unit's `ExecStart`, with its
/// `Environment=` and `env`, in the background; its log goes to `work/UNIT.log`.
fn start_unit(
    ns: &Netns,
    command: &[String],
    env: &[(String, String)],
    data_dir: &Path,
    work: &Path,
) -> ChildGuard {
    assert_eq!(&command[..3], ["systemctl", "enable", "--now"]);
    let unit = &command[3];
    let path = PathBuf::from("/lib/systemd/system").join(format!("{unit}.service"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (is the package installed?)", path.display()));
    let mut exec = None;
    let mut unit_env: HashMap<String, String> = HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("ExecStart=") {
            exec = Some(vpnctl_journey::split_words(rest).unwrap());
        }
        if let Some(rest) = line.strip_prefix("Environment=")
            && let Some((k, v)) = rest.split_once('=')
        {
            unit_env.insert(k.to_owned(), v.to_owned());
        }
    }
    let exec = replace_data_dir(&exec.expect("the unit has an ExecStart"), data_dir);
    let log = std::fs::File::create(work.join(format!("{unit}.log"))).unwrap();
    let mut cmd = ns.command(&exec[0]);
    cmd.args(&exec[1..])
        .envs(unit_env)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    ChildGuard::spawn(&mut cmd).expect("start the unit's ExecStart")
}

fn wait_listening(ns: &Netns, addr: &str) {
    wait_until(
        &format!("{addr} to accept connections"),
        Duration::from_secs(20),
        || {
            curl(
                ns,
                &format!("https://{addr}/healthz"),
                Duration::from_secs(2),
                &["--insecure"],
            )
            .is_ok()
        },
    );
}

fn wait_nodes_up(ns: &Netns, env: &[(String, String)], cwd: &Path, nodes: &[&str]) {
    let list = vec![
        "vpnctl".to_owned(),
        "nodes".into(),
        "list".into(),
        "--json".into(),
    ];
    wait_until("both nodes up", Duration::from_secs(60), || {
        let out = run(ns, &list, env, cwd);
        let views: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        nodes.iter().all(|name| {
            views
                .as_array()
                .into_iter()
                .flatten()
                .any(|v| v["node"]["name"] == *name && v["health"]["status"] == "up")
        })
    });
}

/// `wg-quick up FILE` in the client: the file exactly as the admin handed it over.
fn up(ns: &Netns, file: &Path) -> WgQuick {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let stem = file.file_stem().unwrap().to_str().unwrap();
    WgQuick::up(ns, stem, &text)
}

fn retry_curl(ns: &Netns, url: &str, within: Duration) -> String {
    let start = Instant::now();
    loop {
        match curl(ns, url, Duration::from_secs(3), &[]) {
            Ok(page) => return page,
            Err(e) if start.elapsed() > within => panic!("{e} (for {within:?})"),
            Err(_) => std::thread::sleep(Duration::from_millis(300)),
        }
    }
}

fn wait_until(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}
