//! The `vpnctl-node` command line: configuration and the `join`, `run`, `down` and
//! `status` subcommands.
//!
//! The binary only parses, installs tracing and calls [`execute`] with the control
//! plane client it was built with: [`execute`] is generic over the [`Enroller`] that
//! `join` uses and the function that connects a [`ControlPlane`] from the stored
//! [`Credentials`], so that tests (and other builds) plug in their own.

use std::future::Future;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use clap::{ArgAction, Parser, Subcommand};
use serde::{Deserialize, Serialize};
use vpnctl_core::keys::PublicKey;
use vpnctl_daemon::SettingsError;
use vpnctl_daemon::settings;

use crate::agent::{Agent, AgentConfig, AgentError, ControlPlane, CpError, DnsSettings};
use crate::backend::{
    AwgBackend, BackendError, BackendKind, KernelBackend, SimBackend, TransportBackend,
    UserspaceBackend, WgBackend,
};
use crate::iface::IfaceName;
use crate::metrics::{MetricsError, MetricsListener};
use crate::netconf::{ExitNetwork, HostNetwork, NoNetwork};
use crate::state_dir::{Credentials, StateDir, StateError, Token};

pub const DEFAULT_STATE_DIR: &str = "/var/lib/vpnctl-node";
pub const DEFAULT_INTERFACE: &str = "wg-vpnctl";
pub const DEFAULT_LISTEN_PORT: u16 = 51820;
/// The port to use for `--metrics-listen` when there is no reason to pick another.
pub const SUGGESTED_METRICS_PORT: u16 = 9586;

/// Enrollment with the control plane: the seam where `join` meets the HTTP client.
pub trait Enroller: Send + Sync {
    /// Presents the join token with the node's public key and, when the node's admin
    /// set one, its listen port (otherwise the control plane keeps the port it has:
    /// the endpoint's); the join token tells the client where the control plane is
    /// and which certificate to pin.
    fn enroll(
        &self,
        join_token: &Token,
        public_key: PublicKey,
        listen_port: Option<u16>,
    ) -> impl Future<Output = Result<Credentials, CpError>> + Send;
}

/// Settings of the node daemon as given, layered by [`vpnctl_daemon::settings`] like
/// every daemon's: command line, then `VPNCTL_NODE_*` environment variables, then the
/// TOML file given with `--config`. Every field is optional; [`Config::resolve`]
/// applies the defaults and gives the [`NodeConfig`] the subcommands run with.
#[derive(Debug, Clone, Default, Parser, Serialize, Deserialize)]
#[command(
    name = "vpnctl-node",
    version,
    about = "vpnctl node daemon: applies the control plane's peers to WireGuard",
    subcommand_required = true,
    arg_required_else_help = true
)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// TOML file with these settings (keys as the long options, with `_`).
    #[arg(long, global = true, env = "VPNCTL_NODE_CONFIG", value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,

    /// Directory of the node key, credentials and cache (created 0700)
    /// [default: /var/lib/vpnctl-node].
    #[arg(long, global = true, env = "VPNCTL_NODE_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

    /// WireGuard interface name, at most 15 characters [default: wg-vpnctl].
    #[arg(
        long,
        global = true,
        env = "VPNCTL_NODE_INTERFACE",
        value_name = "NAME"
    )]
    pub interface: Option<IfaceName>,

    /// kernel or userspace (sim: no WireGuard at all) [default: kernel when
    /// /sys/module/wireguard exists, else userspace].
    #[arg(long, global = true, env = "VPNCTL_NODE_BACKEND", value_name = "KIND")]
    pub backend: Option<BackendKind>,

    /// The userspace WireGuard program [default: wireguard-go].
    #[arg(
        long,
        global = true,
        env = "VPNCTL_NODE_WIREGUARD_GO",
        value_name = "PROGRAM"
    )]
    pub wireguard_go: Option<String>,

    /// The AmneziaWG program, run when the control plane gives the node the
    /// amneziawg transport [default: amneziawg-go].
    #[arg(
        long,
        global = true,
        env = "VPNCTL_NODE_AMNEZIAWG_GO",
        value_name = "PROGRAM"
    )]
    pub amneziawg_go: Option<String>,

    /// UDP port to listen on. Announced at join only when set: otherwise the control
    /// plane keeps the port of the endpoint the node was added with. The control
    /// plane's interface spec wins afterwards [default: the control plane's; 51820
    /// until it is known].
    #[arg(
        long,
        global = true,
        env = "VPNCTL_NODE_LISTEN_PORT",
        value_name = "PORT"
    )]
    pub listen_port: Option<u16>,

    /// Masquerade the client pools behind the host's addresses [default: true].
    #[arg(
        long,
        global = true,
        env = "VPNCTL_NODE_NAT",
        value_name = "BOOL",
        action = ArgAction::Set
    )]
    pub nat: Option<bool>,

    /// How often the live device is checked against the desired state, e.g. 10s
    /// [default: 10s].
    #[arg(
        long,
        global = true,
        env = "VPNCTL_NODE_RECONCILE_INTERVAL",
        value_name = "DURATION"
    )]
    pub reconcile_interval: Option<Interval>,

    /// How often a report is sent even without changes, e.g. 15s [default: 15s].
    #[arg(
        long,
        global = true,
        env = "VPNCTL_NODE_REPORT_INTERVAL",
        value_name = "DURATION"
    )]
    pub report_interval: Option<Interval>,

    /// Serve plain-HTTP /healthz and Prometheus /metrics on IP:PORT (e.g. 0.0.0.0:9586;
    /// default: off). No authentication: firewall the port so that only the control
    /// plane and Prometheus reach it. The control plane measures the node with a TCP
    /// connect to this port at the node's endpoint host.
    #[arg(
        long,
        global = true,
        env = "VPNCTL_NODE_METRICS_LISTEN",
        value_name = "IP:PORT",
        value_parser = parse_listen_addr
    )]
    pub metrics_listen: Option<SocketAddr>,

    /// Answer the tunnel's DNS queries on the gateway addresses (the `DNS =` of the
    /// configs core issues), forwarding them to --dns-upstream [default: true].
    #[arg(
        long,
        global = true,
        env = "VPNCTL_NODE_DNS",
        value_name = "BOOL",
        action = ArgAction::Set
    )]
    pub dns: Option<bool>,

    /// Resolvers the tunnel's DNS forwards to, comma-separated IP or IP:PORT
    /// [default: the nameservers of this host's /etc/resolv.conf].
    #[arg(
        long,
        global = true,
        env = "VPNCTL_NODE_DNS_UPSTREAM",
        value_name = "IP[:PORT]",
        value_delimiter = ',',
        value_parser = parse_upstream
    )]
    pub dns_upstream: Option<Vec<SocketAddr>>,

    /// Log filter (tracing `EnvFilter` syntax) [default: info; RUST_LOG also works].
    #[arg(long, global = true, env = "VPNCTL_NODE_LOG", value_name = "FILTER")]
    pub log: Option<String>,

    #[command(subcommand)]
    #[serde(skip)]
    pub command: Command,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Enroll this node with a join token (from `vpnctl nodes join-token <NODE>` on the
    /// admin machine); generates the node's WireGuard key here, where it stays.
    Join {
        /// The `vpnctl-join:...` token (or VPNCTL_NODE_JOIN_TOKEN). Single-use.
        #[arg(env = "VPNCTL_NODE_JOIN_TOKEN", hide_env_values = true)]
        token: Token,
        /// Enroll again although credentials exist (keeps the key, so client configs
        /// stay valid).
        #[arg(long)]
        force: bool,
        /// Take over an existing server's WireGuard key instead of generating one, so
        /// its clients' configs stay valid: its wg-quick config (`/etc/wireguard/wg0.conf`,
        /// whose ListenPort is then announced unless --listen-port is given),
        /// wg-easy's `wg0.json`, or a file with the private key alone. Replacing an
        /// existing node key needs --force.
        #[arg(long, value_name = "FILE")]
        adopt_key: Option<PathBuf>,
    },
    /// Run the daemon: restore the interface from the cache, then follow the control plane.
    Run {
        /// Remove the interface when the daemon stops (default: keep serving).
        #[arg(long)]
        down_on_exit: bool,
    },
    /// Remove the interface and the NAT table (the cache and credentials stay).
    Down,
    /// Show enrollment, interface and cached state (never a key or token).
    #[default]
    Status,
}

/// The settings the subcommands run with: [`Config`] with the defaults applied.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub state_dir: PathBuf,
    pub interface: IfaceName,
    /// `None`: the kernel module when it is loaded, else userspace.
    pub backend: Option<BackendKind>,
    pub wireguard_go: String,
    pub amneziawg_go: String,
    /// `--listen-port` as given: announced at join, and the port until the control
    /// plane's interface spec names one. `None`: the control plane's (the endpoint's
    /// port), [`DEFAULT_LISTEN_PORT`] until it is known.
    pub listen_port: Option<u16>,
    pub nat: bool,
    pub reconcile_interval: Duration,
    pub report_interval: Duration,
    pub metrics_listen: Option<SocketAddr>,
    /// Whether the node answers the tunnel's DNS queries.
    pub dns: bool,
    /// Where they go; empty: this host's resolvers, read when the daemon starts.
    pub dns_upstreams: Vec<SocketAddr>,
    /// The `--log` filter, for the binary's logging.
    pub log: Option<String>,
    pub command: Command,
}

impl Config {
    /// Parses the process arguments (exiting with usage on error, as clap does),
    /// merges the `--config` file and applies the defaults.
    pub fn load() -> Result<NodeConfig, CliError> {
        Ok(Self::parse().resolve()?)
    }

    /// Like [`Config::load`] over given arguments; usage errors are returned.
    pub fn try_load_from<I, T>(args: I) -> Result<NodeConfig, CliError>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        Ok(Self::try_parse_from(args)?.resolve()?)
    }

    /// Layers the `--config` file under these settings and applies the defaults.
    pub fn resolve(mut self) -> Result<NodeConfig, SettingsError> {
        let command = std::mem::take(&mut self.command);
        let file = self.config.take();
        let s = settings::layered(self, file.as_deref())?;
        Ok(NodeConfig {
            state_dir: s
                .state_dir
                .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR)),
            interface: s
                .interface
                .unwrap_or_else(|| IfaceName::new(DEFAULT_INTERFACE).expect("valid default name")),
            backend: s.backend,
            wireguard_go: s.wireguard_go.unwrap_or_else(|| "wireguard-go".into()),
            amneziawg_go: s.amneziawg_go.unwrap_or_else(|| "amneziawg-go".into()),
            listen_port: s.listen_port,
            nat: s.nat.unwrap_or(true),
            reconcile_interval: s
                .reconcile_interval
                .map_or(crate::agent::DEFAULT_RECONCILE_INTERVAL, |i| i.0),
            report_interval: s
                .report_interval
                .map_or(crate::agent::DEFAULT_REPORT_INTERVAL, |i| i.0),
            metrics_listen: s.metrics_listen,
            dns: s.dns.unwrap_or(true),
            dns_upstreams: s.dns_upstream.unwrap_or_default(),
            log: s.log,
            command,
        })
    }
}

impl NodeConfig {
    pub fn state_dir(&self) -> StateDir {
        StateDir::new(&self.state_dir)
    }

    /// The configured backend, or the kernel one when the module is loaded.
    pub fn backend_kind(&self) -> BackendKind {
        self.backend.unwrap_or_else(|| {
            if Path::new("/sys/module/wireguard").exists() {
                BackendKind::Kernel
            } else {
                BackendKind::Userspace
            }
        })
    }

    /// The configured WireGuard backend, beside amneziawg-go for when the control
    /// plane names the amneziawg transport.
    fn open_backend(&self) -> Box<dyn WgBackend> {
        let iface = self.interface.clone();
        let plain: Box<dyn WgBackend> = match self.backend_kind() {
            BackendKind::Kernel => Box::new(KernelBackend::new(iface.clone())),
            BackendKind::Userspace => {
                Box::new(UserspaceBackend::new(iface.clone()).with_launcher([&self.wireguard_go]))
            }
            BackendKind::Sim => return Box::new(SimBackend::new(iface)),
        };
        let awg = AwgBackend::new(iface).with_launcher([&self.amneziawg_go]);
        Box::new(TransportBackend::new(plain, awg))
    }
}

/// `--metrics-listen`: an IP address and a port (`[::1]:9586` for IPv6); no host names,
/// since the listener binds exactly one address.
/// A resolver: `IP` (port 53) or `IP:PORT` (`[v6]:PORT`).
fn parse_upstream(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    text.parse::<SocketAddr>()
        .or_else(|_| {
            text.parse::<std::net::IpAddr>()
                .map(|ip| SocketAddr::new(ip, crate::dns::DNS_PORT))
        })
        .map_err(|_| format!("{text:?}: expected IP or IP:PORT, e.g. 9.9.9.9 or [2620:fe::fe]:53"))
}

fn parse_listen_addr(text: &str) -> Result<SocketAddr, String> {
    text.trim().parse().map_err(|_| {
        format!(
            "expected IP:PORT, e.g. 127.0.0.1:{SUGGESTED_METRICS_PORT} or [::1]:{SUGGESTED_METRICS_PORT}"
        )
    })
}

/// A duration setting: `500ms`, `10s`, `5m`, `1h` or plain seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "IntervalText")]
pub struct Interval(pub Duration);

/// As milliseconds (`"1500ms"`), which reads back the same.
impl Serialize for Interval {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}ms", self.0.as_millis()))
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum IntervalText {
    Secs(u64),
    Text(String),
}

impl TryFrom<IntervalText> for Interval {
    type Error = String;
    fn try_from(value: IntervalText) -> Result<Self, String> {
        match value {
            IntervalText::Secs(secs) => Ok(Self(Duration::from_secs(secs))),
            IntervalText::Text(text) => text.parse(),
        }
    }
}

impl FromStr for Interval {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let split = s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len());
        let (number, unit) = s.split_at(split);
        let value: f64 = number
            .trim()
            .parse()
            .map_err(|_| format!("invalid duration {s:?}: use e.g. 500ms, 10s, 5m"))?;
        let secs = match unit {
            "ms" => value / 1000.0,
            "" | "s" => value,
            "m" => value * 60.0,
            "h" => value * 3600.0,
            _ => return Err(format!("invalid duration unit in {s:?}: use ms, s, m or h")),
        };
        if !(0.01..=86_400.0).contains(&secs) {
            return Err(format!("duration {s:?} outside 10ms..24h"));
        }
        Ok(Self(Duration::from_secs_f64(secs)))
    }
}

/// Why a subcommand failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Usage(#[from] clap::Error),
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(
        "this node is already enrolled ({0} exists); use `join --force` to enroll again with the same key"
    )]
    AlreadyJoined(PathBuf),
    #[error("this node is not enrolled: run `vpnctl-node join <TOKEN>` first")]
    NotJoined,
    #[error(
        "{0} holds another key; `join --adopt-key FILE --force` replaces it (clients of the old key lose their tunnel)"
    )]
    KeyExists(PathBuf),
    #[error("enrollment failed: {0}")]
    Enroll(#[source] CpError),
    #[error("connecting to the control plane: {0}")]
    Connect(#[source] CpError),
    #[error(transparent)]
    Agent(#[from] AgentError),
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    #[error("taking the interface down: {0}")]
    Down(String),
    #[error("writing output: {0}")]
    Output(#[from] io::Error),
}

/// Runs the configured subcommand. `connect` makes the control plane client from the
/// stored credentials (used by `run`), `enroller` serves `join`; `shutdown` stops `run`.
pub async fn execute<E, C, F>(
    config: NodeConfig,
    enroller: E,
    connect: F,
    shutdown: impl Future<Output = ()> + Send,
    out: &mut (dyn Write + Send),
) -> Result<(), CliError>
where
    E: Enroller,
    C: ControlPlane,
    F: FnOnce(&Credentials) -> Result<C, CpError>,
{
    match config.command.clone() {
        Command::Join {
            token,
            force,
            adopt_key,
        } => join_adopting(&config, &token, force, adopt_key.as_deref(), &enroller, out).await,
        Command::Run { down_on_exit } => {
            let credentials = config
                .state_dir()
                .load_credentials()?
                .ok_or(CliError::NotJoined)?;
            let control_plane = connect(&credentials).map_err(CliError::Connect)?;
            run(&config, control_plane, down_on_exit, shutdown).await
        }
        Command::Down => down(&config),
        Command::Status => status(&config, out),
    }
}

/// `join`: makes (or keeps) the node key, enrolls, stores the credentials.
pub async fn join<E: Enroller>(
    config: &NodeConfig,
    token: &Token,
    force: bool,
    enroller: &E,
    out: &mut (dyn Write + Send),
) -> Result<(), CliError> {
    join_adopting(config, token, force, None, enroller, out).await
}

/// `join --adopt-key FILE`: [`join`] with an existing server's key (and listen port).
pub async fn join_adopting<E: Enroller>(
    config: &NodeConfig,
    token: &Token,
    force: bool,
    adopt_key: Option<&Path>,
    enroller: &E,
    out: &mut (dyn Write + Send),
) -> Result<(), CliError> {
    let state = config.state_dir();
    state.create()?;
    if !force && state.load_credentials()?.is_some() {
        return Err(CliError::AlreadyJoined(state.credentials_path()));
    }
    let mut listen_port = config.listen_port;
    let key = match adopt_key {
        Some(path) => {
            let text =
                zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(|source| {
                    StateError::Io {
                        path: path.to_owned(),
                        source,
                    }
                })?);
            let (key, port) =
                vpnctl_core::legacy::server_key_file(&text).map_err(|e| StateError::Invalid {
                    path: path.to_owned(),
                    detail: e.to_string(),
                })?;
            if let Some(have) = state.load_key()?
                && have.public_key() != key.public_key()
                && !force
            {
                return Err(CliError::KeyExists(state.key_path()));
            }
            state.store_key(&key)?;
            listen_port = listen_port.or(port);
            key
        }
        None => state.load_or_generate_key()?,
    };
    let public_key = key.public_key();
    drop(key);
    let credentials = enroller
        .enroll(token, public_key, listen_port)
        .await
        .map_err(CliError::Enroll)?;
    state.store_credentials(&credentials)?;
    tracing::info!(node = %credentials.node_id, %public_key, "enrolled");
    writeln!(
        out,
        "joined as node {} of {}\npublic key {public_key}\nstate in {}",
        credentials.node_id,
        credentials.api_url,
        state.root().display()
    )?;
    Ok(())
}

/// `run`: the agent over the configured backend until `shutdown`.
pub async fn run<C: ControlPlane>(
    config: &NodeConfig,
    control_plane: C,
    down_on_exit: bool,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), CliError> {
    let state = config.state_dir();
    state.create()?;
    let private_key = state.load_key()?.ok_or(CliError::NotJoined)?;
    // Bound before anything touches the interface: a taken port is a start-up error.
    let metrics = match config.metrics_listen {
        Some(addr) => Some(MetricsListener::bind(addr).await?),
        None => None,
    };
    let mut agent_config = AgentConfig::new(
        private_key,
        config.listen_port.unwrap_or(DEFAULT_LISTEN_PORT),
    );
    agent_config.nat = config.nat;
    agent_config.reconcile_interval = config.reconcile_interval;
    agent_config.report_interval = config.report_interval;
    agent_config.teardown_on_exit = down_on_exit;
    let kind = config.backend_kind();
    if config.dns && kind != BackendKind::Sim {
        agent_config.dns = dns_settings(config);
    }
    tracing::info!(iface = %config.interface, backend = %kind, "starting");
    let backend = config.open_backend();
    if kind == BackendKind::Sim {
        run_agent(
            control_plane,
            backend,
            NoNetwork,
            state,
            agent_config,
            metrics,
            shutdown,
        )
        .await
    } else {
        run_agent(
            control_plane,
            backend,
            HostNetwork,
            state,
            agent_config,
            metrics,
            shutdown,
        )
        .await
    }
}

/// The tunnel resolver's upstreams: the configured ones, else this host's. Without
/// any the node runs on without DNS and says why in its log and reports.
fn dns_settings(config: &NodeConfig) -> Option<DnsSettings> {
    let upstreams = if config.dns_upstreams.is_empty() {
        match crate::dns::system_upstreams(Path::new(RESOLV_CONF)) {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(error = %e, "the tunnel's DNS is off");
                return None;
            }
        }
    } else {
        config.dns_upstreams.clone()
    };
    Some(DnsSettings {
        upstreams,
        port: crate::dns::DNS_PORT,
    })
}

/// Where this host's resolvers are listed.
const RESOLV_CONF: &str = "/etc/resolv.conf";

async fn run_agent<C: ControlPlane, N: ExitNetwork>(
    control_plane: C,
    backend: Box<dyn WgBackend>,
    network: N,
    state: StateDir,
    config: AgentConfig,
    metrics: Option<MetricsListener>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), CliError> {
    let mut agent = Agent::new(control_plane, backend, network, state.cache(), config);
    if let Some(listener) = metrics {
        agent = agent.with_metrics_listener(listener);
    }
    agent.run(shutdown).await?;
    Ok(())
}

/// `down`: removes the interface and our NAT table; the cache stays for the next `run`.
pub fn down(config: &NodeConfig) -> Result<(), CliError> {
    let mut backend = config.open_backend();
    backend
        .teardown()
        .map_err(|e| CliError::Down(e.to_string()))?;
    if config.backend_kind() != BackendKind::Sim {
        crate::netconf::down(&config.interface).map_err(|e| CliError::Down(e.to_string()))?;
    }
    Ok(())
}

/// `status`: enrollment, identity, live interface and cached state. Prints public
/// facts only: never the private key, a token or a preshared key.
pub fn status(config: &NodeConfig, out: &mut (dyn Write + Send)) -> Result<(), CliError> {
    let state = config.state_dir();
    match state.load_credentials()? {
        Some(c) => writeln!(
            out,
            "node:       {} at {} (certificate {})",
            c.node_id, c.api_url, c.fingerprint
        )?,
        None => writeln!(
            out,
            "node:       not enrolled (run `vpnctl-node join <TOKEN>`)"
        )?,
    }
    match state.load_key()? {
        Some(key) => writeln!(out, "public key: {}", key.public_key())?,
        None => writeln!(out, "public key: none yet")?,
    }
    let kind = config.backend_kind();
    let backend = config.open_backend();
    match backend.read() {
        Ok(device) => writeln!(
            out,
            "interface:  {} ({kind}) up, listen port {}, {} peers",
            config.interface,
            device
                .listen_port
                .map_or_else(|| "-".to_owned(), |p| p.to_string()),
            device.peers.len()
        )?,
        Err(BackendError::NotRunning(_)) => {
            writeln!(out, "interface:  {} ({kind}) down", config.interface)?;
        }
        Err(e) => writeln!(
            out,
            "interface:  {} ({kind}) unreadable: {e}",
            config.interface
        )?,
    }
    match state.cache().load() {
        Ok(Some(d)) => {
            let v6 = d
                .interface
                .address_v6
                .map_or_else(String::new, |a| format!(" {a}"));
            writeln!(
                out,
                "cached:     revision {}, {}, {} peers, {}{v6}, mtu {}, port {}",
                d.revision,
                if d.enabled { "enabled" } else { "disabled" },
                d.peers.len(),
                d.interface.address_v4,
                d.interface.mtu,
                d.interface.listen_port
            )?;
        }
        Ok(None) => writeln!(out, "cached:     nothing yet")?,
        Err(e) => writeln!(out, "cached:     unreadable: {e}")?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    #[test]
    fn command_line_is_consistent() {
        Config::command().debug_assert();
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let config = Config::try_load_from(["vpnctl-node", "status"]).unwrap();
        assert_eq!(config.state_dir, PathBuf::from(DEFAULT_STATE_DIR));
        assert_eq!(config.interface.as_str(), DEFAULT_INTERFACE);
        assert_eq!(config.backend, None);
        assert_eq!(config.wireguard_go, "wireguard-go");
        assert_eq!(
            config.listen_port, None,
            "the control plane's port by default"
        );
        assert!(config.nat);
        assert_eq!(
            config.reconcile_interval,
            crate::agent::DEFAULT_RECONCILE_INTERVAL
        );
        assert_eq!(
            config.report_interval,
            crate::agent::DEFAULT_REPORT_INTERVAL
        );
        assert_eq!(config.metrics_listen, None);
        assert_eq!(config.command, Command::Status);
    }

    #[test]
    fn file_settings_yield_to_the_command_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.toml");
        std::fs::write(
            &path,
            "state_dir = \"/srv/node\"\ninterface = \"wg-file\"\nlisten_port = 4000\n\
             backend = \"userspace\"\nreconcile_interval = \"2s\"\nreport_interval = 30\nnat = false\n\
             metrics_listen = \"127.0.0.1:9586\"\nlog = \"debug\"\n",
        )
        .unwrap();
        let config = Config::try_load_from([
            "vpnctl-node".as_ref(),
            "run".as_ref(),
            "--config".as_ref(),
            path.as_os_str(),
            "--listen-port".as_ref(),
            "5000".as_ref(),
        ])
        .unwrap();
        assert_eq!(config.state_dir, PathBuf::from("/srv/node"));
        assert_eq!(config.interface.as_str(), "wg-file");
        assert_eq!(config.listen_port, Some(5000), "command line wins");
        assert_eq!(config.backend, Some(BackendKind::Userspace));
        assert_eq!(config.reconcile_interval, Duration::from_secs(2));
        assert_eq!(config.report_interval, Duration::from_secs(30));
        assert!(!config.nat);
        assert_eq!(
            config.metrics_listen,
            Some("127.0.0.1:9586".parse().unwrap())
        );
        assert_eq!(config.log.as_deref(), Some("debug"));
        assert_eq!(
            config.command,
            Command::Run {
                down_on_exit: false
            }
        );
        // `--nat true` on the command line wins over the file's `false`.
        let config = Config::try_load_from([
            "vpnctl-node".as_ref(),
            "status".as_ref(),
            "--nat".as_ref(),
            "true".as_ref(),
            "--config".as_ref(),
            path.as_os_str(),
        ])
        .unwrap();
        assert!(config.nat);
        assert_eq!(config.listen_port, Some(4000));

        std::fs::write(&path, "no_such_setting = 1\n").unwrap();
        let err = Config::try_load_from([
            "vpnctl-node".as_ref(),
            "status".as_ref(),
            "--config".as_ref(),
            path.as_os_str(),
        ])
        .unwrap_err();
        assert!(matches!(err, CliError::Settings(_)), "{err:?}");
        let text = err.to_string();
        assert!(text.starts_with("settings file "), "{text}");
        assert!(text.contains("no_such_setting"), "{text}");
    }

    #[test]
    fn rejects_long_interface_names_and_bad_durations() {
        assert!(
            Config::try_load_from(["vpnctl-node", "--interface", "abcdefghijklmnop", "status"])
                .is_err()
        );
        assert_eq!(
            "500ms".parse::<Interval>().unwrap().0,
            Duration::from_millis(500)
        );
        assert_eq!(
            "1.5s".parse::<Interval>().unwrap().0,
            Duration::from_millis(1500)
        );
        assert_eq!(
            "2m".parse::<Interval>().unwrap().0,
            Duration::from_secs(120)
        );
        assert!("10 parsecs".parse::<Interval>().is_err());
        assert!("0s".parse::<Interval>().is_err());
        // What the settings merge writes reads back the same.
        let i: Interval = "1.5s".parse().unwrap();
        let json = serde_json::to_value(i).unwrap();
        assert_eq!(serde_json::from_value::<Interval>(json).unwrap(), i);
    }

    #[test]
    fn join_token_never_shows_in_debug() {
        let config = Config::try_load_from(["vpnctl-node", "join", "vpj_topsecret"]).unwrap();
        assert!(!format!("{config:?}").contains("topsecret"));
        let Command::Join { token, force, .. } = &config.command else {
            panic!("not a join: {:?}", config.command);
        };
        assert_eq!(token.expose(), "vpj_topsecret");
        assert!(!force);
    }
}
