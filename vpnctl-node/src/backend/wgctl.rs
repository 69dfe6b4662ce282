//! Kernel and userspace backends over `wireguard-control`.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use vpnctl_core::keys::{PresharedKey, PublicKey};
use vpnctl_core::reconcile::{PeerChange, PeerSpec};
use wireguard_control::{
    Backend, Device, DeviceUpdate, InterfaceName, Key, PeerConfigBuilder, PeerInfo,
};

use super::daemon::Daemon;
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
    daemon: Daemon,
}

impl UserspaceBackend {
    pub fn new(iface: IfaceName) -> Self {
        Self {
            daemon: Daemon::new(
                iface.clone(),
                "wireguard-go",
                UAPI_DIR,
                "userspace WireGuard",
            ),
            wg: WgControl::new(iface, Backend::Userspace),
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
        self.daemon
            .set_launcher(program_and_args.into_iter().map(Into::into).collect());
        self
    }

    #[must_use]
    pub fn with_socket_timeout(mut self, timeout: Duration) -> Self {
        self.daemon.set_socket_timeout(timeout);
        self
    }

    pub fn socket_path(&self) -> PathBuf {
        self.daemon.socket_path()
    }

    /// Pid of the daemon this backend started, if it still owns one.
    pub fn child_pid(&self) -> Option<u32> {
        self.daemon.child_pid()
    }

    /// Gives up ownership: the daemon keeps running after this backend is gone.
    pub fn detach(mut self) {
        self.daemon.leave_running();
    }
}

impl WgBackend for UserspaceBackend {
    fn iface(&self) -> &IfaceName {
        &self.wg.iface
    }

    fn ensure(&mut self, spec: &InterfaceSpec) -> Result<(), BackendError> {
        self.daemon.ensure_running()?;
        let current = self.wg.read()?;
        self.wg.set_identity(spec, Some(&current))
    }

    fn read(&self) -> Result<DeviceState, BackendError> {
        self.daemon.require_running()?;
        self.wg.read()
    }

    fn apply(&mut self, changes: &[PeerChange]) -> Result<(), BackendError> {
        if changes.is_empty() {
            return Ok(());
        }
        self.daemon.require_running()?;
        self.wg.apply(changes)
    }

    fn teardown(&mut self) -> Result<(), BackendError> {
        self.daemon.teardown();
        Ok(())
    }

    fn leave_running(&mut self) {
        self.daemon.leave_running();
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
