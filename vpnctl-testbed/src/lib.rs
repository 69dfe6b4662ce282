//! Test support for real WireGuard in network namespaces (userspace `wireguard-go`,
//! because CI machines have no WireGuard kernel module).
//!
//! Every resource is an RAII guard that cleans up in `Drop`, also when the test panics:
//! [`Netns`] kills whatever still runs inside it and deletes it (which destroys its veth
//! and tun devices), [`ChildGuard`] kills a spawned process, [`WgQuick`] runs
//! `wg-quick down`, [`UapiGuard`] removes the machine-wide UAPI socket files.
//!
//! Names are unique per process and per call ([`Names`]), so tests in one binary and
//! several test binaries can run in parallel. Names embed the pid of the test process,
//! which lets [`require_root_and_tools`] sweep what a killed earlier run left behind.
//! Heavy tests that measure time can serialize with [`serial`].
//!
//! [`telegram::FakeTelegram`] is a fake Telegram Bot API on loopback, for the bot's
//! own tests and for whole-system tests that run the real bot. [`internet`] is what a
//! tunnel browses: a DNS server for a test zone (dnsmasq), a web server, `curl`.
//!
//! With the `control-plane` feature, `control_plane::ControlPlane` is a real
//! `vpnctld` in the test process (plain HTTP or pinned TLS, temp store, optional
//! manual clock and policy, stop/restart on the same address), with helpers that
//! register and enroll nodes the way `vpnctl nodes add` and `vpnctl-node join` do.
//! [`RootLink`] connects the test's own (root) namespace to a node namespace, so that
//! a node daemon inside it reaches a control plane listening on the root side.
//!
//! Commands are always built from argument arrays (`std::process::Command`), never
//! from a shell string.
//!
//! Addresses used by tests come from the documentation ranges 192.0.2.0/24,
//! 198.51.100.0/24 and 203.0.113.0/24 and exist only inside the namespaces.

mod awgquick;
#[cfg(feature = "control-plane")]
pub mod control_plane;
pub mod internet;
mod names;
mod netns;
mod ping;
mod process;
#[cfg(feature = "control-plane")]
pub mod scale;
pub mod telegram;
mod wgquick;

pub use awgquick::{AWG_UAPI_DIR, AwgQuick, AwgUapiGuard};
pub use names::Names;
pub use netns::{Netns, RootLink, veth};
pub use ping::{ContinuousPing, PingStats, ping, ping_stats};
pub use process::{ChildGuard, UapiGuard, run, run_ok};
pub use wgquick::WgQuick;

use std::fs::File;
use std::path::Path;
use std::process::Command;

/// Directory of the machine-wide WireGuard UAPI sockets (not per namespace).
pub const UAPI_DIR: &str = "/var/run/wireguard";

/// Tools the namespace tests run; `scripts/install-test-deps.sh` installs them.
pub const REQUIRED_TOOLS: &[&str] = &[
    "ip",
    "wg",
    "wg-quick",
    "wireguard-go",
    "amneziawg-go",
    "ping",
    "nft",
    "kill",
    "dnsmasq",
    "curl",
];

/// Panics with an actionable message unless the process is root and every tool in
/// [`REQUIRED_TOOLS`] is on `PATH`. Tests call this first: a CI machine without the
/// prerequisites must fail, never skip silently. Also sweeps namespaces and UAPI
/// sockets that earlier, killed test runs left behind.
pub fn require_root_and_tools() {
    let uid = Command::new("id").arg("-u").output();
    let is_root = matches!(&uid, Ok(out) if String::from_utf8_lossy(&out.stdout).trim() == "0");
    assert!(
        is_root,
        "vpnctl namespace tests must run as root (they create network namespaces and \
         WireGuard interfaces); run them as root, e.g. in CI"
    );
    let missing: Vec<&str> = REQUIRED_TOOLS
        .iter()
        .copied()
        .filter(|t| !on_path(t))
        .collect();
    assert!(
        missing.is_empty(),
        "missing tools for the namespace tests: {missing:?}; run `bash scripts/install-test-deps.sh` as root"
    );
    let ns_ok = Command::new("ip").args(["netns", "list"]).output();
    assert!(
        matches!(&ns_ok, Ok(out) if out.status.success()),
        "`ip netns list` failed: network namespaces are not usable here"
    );
    assert!(
        Path::new("/dev/net/tun").exists(),
        "/dev/net/tun is missing: wireguard-go cannot create its interface"
    );
    names::sweep_stale();
}

fn on_path(tool: &str) -> bool {
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&path).any(|dir| dir.join(tool).is_file())
}

/// Holds the machine-wide test lock while alive; see [`serial`].
#[derive(Debug)]
pub struct SerialGuard {
    file: File,
}

impl Drop for SerialGuard {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

/// Takes a machine-wide exclusive lock (an `flock` on a file in the temp dir), so
/// heavy tests (timing measurements, 10,000-peer devices) do not run at the same time
/// as each other, across threads and across test binaries. The descriptor is
/// close-on-exec, so spawned daemons never inherit the lock.
pub fn serial() -> SerialGuard {
    let path = std::env::temp_dir().join("vpnctl-testbed.lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("open lock file {}: {e}", path.display()));
    file.lock()
        .unwrap_or_else(|e| panic!("lock {}: {e}", path.display()));
    SerialGuard { file }
}

/// This process's resident memory (`VmRSS` of `/proc/self/status`), in bytes.
pub fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status");
    kb * 1024
}
