//! vpnctl-node: the WireGuard side of the node daemon.
//!
//! - [`backend`]: the [`backend::WgBackend`] trait and its implementations —
//!   userspace (`wireguard-go` over its UAPI socket), kernel (netlink), both through
//!   `wireguard-control`, and an in-memory simulator for `vpnctl demo`.
//! - [`netconf`]: addresses, MTU, forwarding and NAT of the VPN exit.
//! - [`dns`]: the tunnel's resolver, a forwarder on the gateway addresses.
//! - [`reconciler`]: one reconcile pass (read live device → plan → apply deltas) and
//!   the on-disk cache of the last applied desired state.
//! - [`agent`]: the daemon loop over a [`agent::ControlPlane`]: restore from the cache,
//!   long-poll, apply deltas, drift checks, reports ([`sysstats`] for host load).
//! - [`metrics`]: the optional plain-HTTP `/healthz` and Prometheus `/metrics`
//!   listener the agent serves and writes to.
//! - [`cli`]: configuration and the `join` / `run` / `down` / `status` subcommands of
//!   the `vpnctl-node` binary, over the files of the [`state_dir`]; [`http`] is where
//!   the HTTP control plane client plugs in.
//!
//! Peers are only ever changed by deltas (add, remove, update): the interface is never
//! restarted and its peer set never replaced, so sessions of untouched peers survive
//! every change.

pub mod agent;
pub mod backend;
pub mod cli;
pub mod dns;
pub mod http;
pub mod iface;
pub mod metrics;
pub mod netconf;
pub mod reconciler;
pub mod state_dir;
pub mod sysstats;

pub use agent::{Agent, AgentConfig, ControlPlane, CpError};
pub use backend::{
    BackendError, BackendKind, DeviceState, InterfaceSpec, LivePeer, PeerStats, WgBackend,
};
pub use iface::IfaceName;
pub use reconciler::{Cache, ReconcileOutcome, reconcile};
