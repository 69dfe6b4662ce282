//! WireGuard access behind one trait.
//!
//! The trait is synchronous on purpose: `wireguard-control` is blocking (a UAPI unix
//! socket or a netlink socket), and every call is short (0.1–1 ms for a delta, tens of
//! ms to read a 10,000-peer device). The async daemon loop calls it through
//! `tokio::task::spawn_blocking` with the backend behind a `std::sync::Mutex`; a sync
//! trait keeps the implementations simple and the simulator usable without a runtime.
//!
//! Never `Debug`-print `wireguard_control` types (`Device`, `Key`, `DeviceUpdate`):
//! their `Debug` shows private and preshared keys in base64.

mod awg;
mod daemon;
mod sim;
pub mod uapi;
mod wgctl;

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use vpnctl_core::keys::{PrivateKey, PublicKey};
use vpnctl_core::reconcile::{PeerChange, PeerSpec};

use crate::iface::IfaceName;

pub use awg::{AWG_UAPI_DIR, AwgBackend, TransportBackend, awg_lines};
pub use sim::SimBackend;
pub use wgctl::{KernelBackend, UserspaceBackend};

/// What the node's own interface must be: its identity and where it listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceSpec {
    pub private_key: PrivateKey,
    pub listen_port: u16,
    /// The transport the desired state names; `None` before any is known (no
    /// snapshot, no cache yet): keep whatever runs.
    pub transport: Option<vpnctl_core::transport::Transport>,
}

/// Counters and session facts of one peer, as the device reports them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerStats {
    pub endpoint: Option<SocketAddr>,
    pub last_handshake: Option<SystemTime>,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
}

/// One peer read from the device: its configuration and its stats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LivePeer {
    pub spec: PeerSpec,
    pub stats: PeerStats,
}

/// The live device. The private key is never read out into this type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceState {
    pub public_key: Option<PublicKey>,
    pub listen_port: Option<u16>,
    pub peers: Vec<LivePeer>,
}

impl DeviceState {
    /// The peers as [`PeerSpec`]s, the "actual" side of a reconcile plan.
    pub fn specs(&self) -> Vec<PeerSpec> {
        self.peers.iter().map(|p| p.spec.clone()).collect()
    }

    pub fn peer(&self, key: &PublicKey) -> Option<&LivePeer> {
        self.peers.iter().find(|p| &p.spec.public_key == key)
    }
}

/// Access to one WireGuard interface.
pub trait WgBackend: Send {
    fn iface(&self) -> &IfaceName;

    /// Makes sure the interface exists with this private key and listen port.
    /// Idempotent: an existing interface with the same identity is left untouched
    /// (its peers and sessions stay).
    fn ensure(&mut self, spec: &InterfaceSpec) -> Result<(), BackendError>;

    /// Reads the live device: identity, peers and per-peer stats.
    fn read(&self) -> Result<DeviceState, BackendError>;

    /// Applies the changes as deltas, in order, batched into as few device requests as
    /// possible. Never replaces the peer set. On [`BackendError::Rejected`] some of the
    /// changes may have been applied; read the device again to know which.
    fn apply(&mut self, changes: &[PeerChange]) -> Result<(), BackendError>;

    /// Removes the interface (and stops the userspace daemon we started).
    fn teardown(&mut self) -> Result<(), BackendError>;

    /// Makes the interface outlive this backend value: dropping it afterwards leaves
    /// the interface (and a userspace daemon it started) running, so that the VPN keeps
    /// serving while the node daemon restarts. A kernel interface outlives its backend
    /// anyway, hence the no-op default.
    fn leave_running(&mut self) {}
}

impl<B: WgBackend + ?Sized> WgBackend for Box<B> {
    fn iface(&self) -> &IfaceName {
        (**self).iface()
    }
    fn ensure(&mut self, spec: &InterfaceSpec) -> Result<(), BackendError> {
        (**self).ensure(spec)
    }
    fn read(&self) -> Result<DeviceState, BackendError> {
        (**self).read()
    }
    fn apply(&mut self, changes: &[PeerChange]) -> Result<(), BackendError> {
        (**self).apply(changes)
    }
    fn teardown(&mut self) -> Result<(), BackendError> {
        (**self).teardown()
    }
    fn leave_running(&mut self) {
        (**self).leave_running();
    }
}

/// Which backend a node uses; the `backend = "..."` setting of the node config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// In-kernel WireGuard over netlink.
    #[default]
    Kernel,
    /// `wireguard-go` (or another UAPI implementation) started by the node.
    Userspace,
    /// In-memory simulator: no WireGuard at all (`vpnctl demo`).
    Sim,
}

impl BackendKind {
    /// A backend of this kind for `iface`, with default settings.
    pub fn open(self, iface: IfaceName) -> Box<dyn WgBackend> {
        match self {
            Self::Kernel => Box::new(KernelBackend::new(iface)),
            Self::Userspace => Box::new(UserspaceBackend::new(iface)),
            Self::Sim => Box::new(SimBackend::new(iface)),
        }
    }
}

impl FromStr for BackendKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "kernel" => Ok(Self::Kernel),
            "userspace" => Ok(Self::Userspace),
            "sim" => Ok(Self::Sim),
            _ => Err(format!(
                "unknown backend {s:?}: use kernel, userspace or sim"
            )),
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Kernel => "kernel",
            Self::Userspace => "userspace",
            Self::Sim => "sim",
        })
    }
}

/// Why a backend operation failed. The daemon reacts differently: `NotRunning` →
/// `ensure` again; `Rejected` → apply changes one by one to isolate the bad one;
/// the rest → report and retry later.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("WireGuard interface {0} is not running")]
    NotRunning(IfaceName),
    #[error("could not start {program} for {iface}: {source}")]
    Spawn {
        program: String,
        iface: IfaceName,
        source: io::Error,
    },
    #[error("{program} for {iface} exited before it was ready ({status})")]
    Exited {
        program: String,
        iface: IfaceName,
        status: std::process::ExitStatus,
    },
    #[error("timed out waiting for the UAPI socket of {0}")]
    SocketTimeout(IfaceName),
    #[error("WireGuard interface {iface} rejected the {op}: {source}")]
    Rejected {
        iface: IfaceName,
        op: &'static str,
        source: io::Error,
    },
    #[error("{op} on WireGuard interface {iface} failed: {source}")]
    Io {
        iface: IfaceName,
        op: &'static str,
        source: io::Error,
    },
    #[error("WireGuard interface {iface}: {detail}")]
    Invalid { iface: IfaceName, detail: String },
}

impl BackendError {
    fn from_io(iface: &IfaceName, op: &'static str, source: io::Error) -> Self {
        match source.kind() {
            io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => {
                Self::NotRunning(iface.clone())
            }
            io::ErrorKind::InvalidInput => Self::Rejected {
                iface: iface.clone(),
                op,
                source,
            },
            _ => Self::Io {
                iface: iface.clone(),
                op,
                source,
            },
        }
    }
}
