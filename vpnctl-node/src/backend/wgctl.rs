//! Kernel and userspace backends over `wireguard-control`.

use std::ffi::OsString;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use vpnctl_core::keys::{PresharedKey, PublicKey};
use vpnctl_core::reconcile::{PeerChange, PeerSpec};
use wireguard_control::{
    Backend, Device, DeviceUpdate, InterfaceName, Key, PeerConfigBuilder, PeerInfo,
};

use super::{BackendError, DeviceState, InterfaceSpec, LivePeer, PeerStats, WgBackend};
use crate::iface::IfaceName;

/// Where `wireguard-go` puts its UAPI sockets. Machine-wide, not per network namespace.
const UAPI_DIR: &str = "/var/run/wireguard";

/// The code both backends share: conversions and batched requests.
#[derive(Debug)]
struct WgControl {
    iface: IfaceName,
    name: InterfaceName,
    backend: Backend,
}

impl WgControl {
    fn new(iface: IfaceName, backend: Backend) -> Self {
        let name = iface
            .as_str()
            .parse()
            .expect("IfaceName is always a valid wireguard-control InterfaceName");
        Self {
            iface,
            name,
            backend,
        }
    }

    fn get(&self) -> Result<Device, BackendError> {
        Device::get(&self.name, self.backend)
            .map_err(|e| BackendError::from_io(&self.iface, "read", e))
    }

    fn read(&self) -> Result<DeviceState, BackendError> {
        let device = self.get()?;
        let peers = device
            .peers
            .into_iter()
            .map(|p| live_peer(&self.iface, p))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(DeviceState {
            public_key: device.public_key.map(|k| PublicKey::from_bytes(k.0)),
            listen_port: device.listen_port,
            peers,
        })
    }

    /// Sets the private key and listen port where they differ from the live device.
    fn set_identity(
        &self,
        spec: &InterfaceSpec,
        current: Option<&DeviceState>,
    ) -> Result<(), BackendError> {
        let mut update = DeviceUpdate::new();
        let mut needed = false;
        let public = spec.private_key.public_key();
        if current.and_then(|c| c.public_key) != Some(public) {
            update = update.set_private_key(Key(*spec.private_key.expose_bytes()));
            needed = true;
        }
        if current.and_then(|c| c.listen_port) != Some(spec.listen_port) {
            update = update.set_listen_port(spec.listen_port);
            needed = true;
        }
        if needed {
            update
                .apply(&self.name, self.backend)
                .map_err(|e| BackendError::from_io(&self.iface, "interface setup", e))?;
        }
        Ok(())
    }

    fn apply(&self, changes: &[PeerChange]) -> Result<(), BackendError> {
        if changes.is_empty() {
            return Ok(());
        }
        let peers: Vec<PeerConfigBuilder> = changes.iter().map(peer_builder).collect();
        DeviceUpdate::new()
            .add_peers(&peers)
            .apply(&self.name, self.backend)
            .map_err(|e| BackendError::from_io(&self.iface, "peer update", e))
    }
}

fn wg_key(key: &PublicKey) -> Key {
    Key(*key.as_bytes())
}

fn psk_key(psk: Option<&PresharedKey>) -> Key {
    // The all-zero key removes a preshared key (as `wg set ... preshared-key /dev/null`).
    psk.map_or_else(Key::zero, |k| Key(*k.expose_bytes()))
}

fn with_allowed_ips(mut builder: PeerConfigBuilder, spec: &PeerSpec) -> PeerConfigBuilder {
    builder = builder.replace_allowed_ips();
    for net in &spec.allowed_ips {
        builder = builder.add_allowed_ip(net.addr(), net.prefix_len());
    }
    builder
}

/// One change as a `wireguard-control` peer section. Adds set every field, so an add
/// of a peer that appeared meanwhile still ends in exactly the desired spec; updates
/// touch only the marked fields (endpoint, session and counters stay).
fn peer_builder(change: &PeerChange) -> PeerConfigBuilder {
    match change {
        PeerChange::Remove(key) => PeerConfigBuilder::new(&wg_key(key)).remove(),
        PeerChange::Add(spec) => {
            let builder = PeerConfigBuilder::new(&wg_key(&spec.public_key))
                .set_preshared_key(psk_key(spec.preshared_key.as_ref()))
                .set_persistent_keepalive_interval(spec.persistent_keepalive.unwrap_or(0));
            with_allowed_ips(builder, spec)
        }
        PeerChange::Update {
            spec,
            preshared_key,
            allowed_ips,
            persistent_keepalive,
        } => {
            let mut builder = PeerConfigBuilder::new(&wg_key(&spec.public_key));
            if *preshared_key {
                builder = builder.set_preshared_key(psk_key(spec.preshared_key.as_ref()));
            }
            if *persistent_keepalive {
                builder = builder
                    .set_persistent_keepalive_interval(spec.persistent_keepalive.unwrap_or(0));
            }
            if *allowed_ips {
                builder = with_allowed_ips(builder, spec);
            }
            builder
        }
    }
}

fn live_peer(iface: &IfaceName, info: PeerInfo) -> Result<LivePeer, BackendError> {
    let config = info.config;
    let allowed_ips = config
        .allowed_ips
        .iter()
        .map(|ip| {
            IpNet::new(ip.address, ip.cidr).map_err(|_| BackendError::Invalid {
                iface: iface.clone(),
                detail: format!("device reported allowed IP {}/{}", ip.address, ip.cidr),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let preshared_key = config
        .preshared_key
        .filter(|k| k.0 != [0u8; 32])
        .map(|k| PresharedKey::from_bytes(k.0));
    let keepalive = config.persistent_keepalive_interval.filter(|&k| k != 0);
    Ok(LivePeer {
        spec: PeerSpec::new(
            PublicKey::from_bytes(config.public_key.0),
            preshared_key,
            allowed_ips,
            keepalive,
        ),
        stats: PeerStats {
            endpoint: config.endpoint,
            last_handshake: info.stats.last_handshake_time,
            rx_bytes: info.stats.rx_bytes,
            tx_bytes: info.stats.tx_bytes,
        },
    })
}

/// Userspace WireGuard: a `wireguard-go -f <iface>` child that this backend starts and
/// owns, configured through its UAPI socket `/var/run/wireguard/<iface>.sock`.
///
/// The daemon is started in the network namespace of the calling process (or wherever
/// a custom launcher such as `ip netns exec NS wireguard-go` puts it); the UAPI socket
/// is reachable from every namespace. An interface whose socket already answers is
/// adopted instead of started, so a restarted node daemon keeps live sessions.
/// Dropping the backend stops the child it started; [`UserspaceBackend::detach`]
/// leaves it running.
#[derive(Debug)]
pub struct UserspaceBackend {
    wg: WgControl,
    launcher: Vec<OsString>,
    child: Option<Child>,
    socket_timeout: Duration,
}

impl UserspaceBackend {
    pub fn new(iface: IfaceName) -> Self {
        Self {
            wg: WgControl::new(iface, Backend::Userspace),
            launcher: vec![OsString::from("wireguard-go")],
            child: None,
            socket_timeout: Duration::from_secs(5),
        }
    }

    /// The program (and leading arguments) that starts the daemon; `-f <iface>` is
    /// appended. Default: `wireguard-go`. Tests use `ip netns exec NS wireguard-go`.
    #[must_use]
    pub fn with_launcher<I, S>(mut self, program_and_args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        let launcher: Vec<OsString> = program_and_args.into_iter().map(Into::into).collect();
        assert!(!launcher.is_empty(), "launcher needs a program");
        self.launcher = launcher;
        self
    }

    #[must_use]
    pub fn with_socket_timeout(mut self, timeout: Duration) -> Self {
        self.socket_timeout = timeout;
        self
    }

    pub fn socket_path(&self) -> PathBuf {
        Path::new(UAPI_DIR).join(format!("{}.sock", self.wg.iface))
    }

    /// Pid of the daemon this backend started, if it still owns one.
    pub fn child_pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Gives up ownership: the daemon keeps running after this backend is gone.
    pub fn detach(mut self) {
        self.child = None;
    }

    fn socket_answers(&self) -> bool {
        UnixStream::connect(self.socket_path()).is_ok()
    }

    fn program(&self) -> String {
        self.launcher
            .iter()
            .map(|s| s.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn start(&mut self) -> Result<(), BackendError> {
        let iface = self.wg.iface.clone();
        // A socket file nobody listens on is left over from a killed daemon.
        remove_uapi_files(&iface);
        let mut cmd = Command::new(&self.launcher[0]);
        cmd.args(&self.launcher[1..])
            .arg("-f")
            .arg(iface.as_str())
            .stdin(Stdio::null())
            // Set by wireguard-go for its own daemonized child; with `-f` it only
            // silences the "use the kernel module" banner on stderr.
            .env("WG_PROCESS_FOREGROUND", "1")
            // wireguard-go logs to stdout; keep it off a TUI or a daemon's stdout.
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let child = cmd.spawn().map_err(|source| BackendError::Spawn {
            program: self.program(),
            iface: iface.clone(),
            source,
        })?;
        tracing::info!(iface = %iface, pid = child.id(), "started userspace WireGuard");
        self.child = Some(child);
        let deadline = Instant::now() + self.socket_timeout;
        loop {
            if self.socket_answers() {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(BackendError::Exited {
                    program: self.program(),
                    iface,
                    status,
                });
            }
            if Instant::now() >= deadline {
                self.stop_child();
                return Err(BackendError::SocketTimeout(iface));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn stop_child(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_process(&mut child);
        }
    }

    /// `wireguard-control` spawns a daemon itself when the socket is missing; we want
    /// to be the only one who starts it, so check first.
    fn require_running(&self) -> Result<(), BackendError> {
        if self.socket_path().exists() {
            Ok(())
        } else {
            Err(BackendError::NotRunning(self.wg.iface.clone()))
        }
    }
}

fn remove_uapi_files(iface: &IfaceName) {
    let dir = Path::new(UAPI_DIR);
    let _ = std::fs::remove_file(dir.join(format!("{iface}.sock")));
    let _ = std::fs::remove_file(dir.join(format!("{iface}.name")));
}

/// SIGTERM (wireguard-go then removes its interface and socket), up to 2 s, then
/// SIGKILL. `kill(1)` is used because the workspace forbids `unsafe` (no `libc::kill`).
pub(super) fn stop_process(child: &mut Child) {
    if matches!(child.try_wait(), Ok(None)) {
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if !matches!(child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
    }
    let _ = child.wait();
}

impl WgBackend for UserspaceBackend {
    fn iface(&self) -> &IfaceName {
        &self.wg.iface
    }

    fn ensure(&mut self, spec: &InterfaceSpec) -> Result<(), BackendError> {
        let child_exited = self
            .child
            .as_mut()
            .is_some_and(|c| !matches!(c.try_wait(), Ok(None)));
        if child_exited {
            self.stop_child();
        }
        if !self.socket_answers() {
            self.start()?;
        }
        let current = self.wg.read()?;
        self.wg.set_identity(spec, Some(&current))
    }

    fn read(&self) -> Result<DeviceState, BackendError> {
        self.require_running()?;
        self.wg.read()
    }

    fn apply(&mut self, changes: &[PeerChange]) -> Result<(), BackendError> {
        if changes.is_empty() {
            return Ok(());
        }
        self.require_running()?;
        self.wg.apply(changes)
    }

    fn teardown(&mut self) -> Result<(), BackendError> {
        if self.child.is_some() {
            self.stop_child();
        } else if self.socket_answers() {
            // Adopted daemon in our namespace: deleting its tun device makes it exit.
            let _ = Command::new("ip")
                .args(["link", "del", "dev", self.wg.iface.as_str()])
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        if !self.socket_answers() {
            remove_uapi_files(&self.wg.iface);
        }
        Ok(())
    }

    fn leave_running(&mut self) {
        if let Some(child) = self.child.take() {
            tracing::info!(iface = %self.wg.iface, pid = child.id(), "leaving userspace WireGuard running");
        }
    }
}

impl Drop for UserspaceBackend {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.stop_child();
            remove_uapi_files(&self.wg.iface);
        }
    }
}

/// In-kernel WireGuard over generic netlink (`wireguard-control`'s kernel backend).
/// `ensure` creates the link if it is missing.
#[derive(Debug)]
pub struct KernelBackend {
    wg: WgControl,
}

impl KernelBackend {
    pub fn new(iface: IfaceName) -> Self {
        Self {
            wg: WgControl::new(iface, Backend::Kernel),
        }
    }
}

impl WgBackend for KernelBackend {
    fn iface(&self) -> &IfaceName {
        &self.wg.iface
    }

    fn ensure(&mut self, spec: &InterfaceSpec) -> Result<(), BackendError> {
        let current = self.wg.read().ok();
        if current.is_none() {
            // Creates the link (`ip link add ... type wireguard`) and sets the identity.
            return self.wg.set_identity(spec, None);
        }
        self.wg.set_identity(spec, current.as_ref())
    }

    fn read(&self) -> Result<DeviceState, BackendError> {
        self.wg.read()
    }

    fn apply(&mut self, changes: &[PeerChange]) -> Result<(), BackendError> {
        self.wg.apply(changes)
    }

    fn teardown(&mut self) -> Result<(), BackendError> {
        match self.wg.get() {
            Ok(device) => device
                .delete()
                .map_err(|e| BackendError::from_io(&self.wg.iface, "delete", e)),
            Err(BackendError::NotRunning(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vpnctl_core::keys::KeyPair;

    fn spec() -> PeerSpec {
        PeerSpec::new(
            KeyPair::generate().public,
            None,
            [
                "10.8.0.2/32".parse().unwrap(),
                "fd00::2/128".parse().unwrap(),
            ],
            Some(25),
        )
    }

    #[test]
    fn add_sets_every_field_and_replaces_allowed_ips() {
        let s = spec();
        let b = peer_builder(&PeerChange::Add(s.clone()));
        let c = b.clone().into_peer_config();
        assert_eq!(c.public_key.0, *s.public_key.as_bytes());
        assert_eq!(c.preshared_key, Some(Key::zero()));
        assert_eq!(c.persistent_keepalive_interval, Some(25));
        assert_eq!(c.allowed_ips.len(), 2);
        assert_eq!(
            b,
            PeerConfigBuilder::new(&c.public_key)
                .set_preshared_key(Key::zero())
                .set_persistent_keepalive_interval(25)
                .replace_allowed_ips()
                .add_allowed_ips(&c.allowed_ips)
        );
    }

    #[test]
    fn update_touches_only_marked_fields() {
        let s = spec();
        let change = PeerChange::Update {
            spec: s.clone(),
            preshared_key: true,
            allowed_ips: false,
            persistent_keepalive: false,
        };
        let expected = PeerConfigBuilder::new(&wg_key(&s.public_key)).unset_preshared_key();
        assert_eq!(peer_builder(&change), expected);
        let remove = peer_builder(&PeerChange::Remove(s.public_key));
        assert_eq!(
            remove,
            PeerConfigBuilder::new(&wg_key(&s.public_key)).remove()
        );
    }
}
