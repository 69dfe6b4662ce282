//! AmneziaWG: `amneziawg-go -f <iface>` driven over its UAPI socket
//! `/var/run/amneziawg/<iface>.sock`, with the node's AWG parameters as extra
//! device keys; and [`TransportBackend`], which runs a node on whichever transport
//! its desired state names.
//!
//! Peers go through the same [`PeerChange`] deltas as on WireGuard: never a
//! `replace_peers`. A parameter change is a device-level `set` (the interface and
//! its peers stay; sessions re-handshake with the new parameters).

use std::ffi::OsString;
use std::path::PathBuf;

use vpnctl_core::reconcile::PeerChange;
use vpnctl_core::transport::{AwgParams, Transport, TransportKind};

use super::daemon::Daemon;
use super::uapi;
use super::{BackendError, DeviceState, InterfaceSpec, WgBackend};
use crate::iface::IfaceName;

/// Where amneziawg-go puts its UAPI sockets. Machine-wide, like wireguard-go's.
pub const AWG_UAPI_DIR: &str = "/var/run/amneziawg";

/// The UAPI device lines of `params`: every key amneziawg-go knows, so that a
/// generation change also clears what the new one lacks (`s3=0`, an empty `i2=`).
pub fn awg_lines(params: &AwgParams) -> String {
    let mut out = String::new();
    for (key, value) in [
        ("jc", params.jc.to_string()),
        ("jmin", params.jmin.to_string()),
        ("jmax", params.jmax.to_string()),
        ("s1", params.s1.to_string()),
        ("s2", params.s2.to_string()),
        ("s3", params.s3.to_string()),
        ("s4", params.s4.to_string()),
        ("h1", params.h1.to_string()),
        ("h2", params.h2.to_string()),
        ("h3", params.h3.to_string()),
        ("h4", params.h4.to_string()),
    ] {
        out.push_str(&format!("{key}={value}\n"));
    }
    for n in 0..5 {
        let spec = if params.generation.has_signature_packets() {
            params.i.get(n).map_or("", String::as_str)
        } else {
            ""
        };
        out.push_str(&format!("i{}={spec}\n", n + 1));
    }
    out
}

/// What `get=1` must show for `params`: amneziawg-go prints only values that are set
/// (non-zero numbers, present signature packets).
fn expected_extra(params: &AwgParams) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = awg_lines(params)
        .lines()
        .filter_map(|l| l.split_once('='))
        .filter(|(_, v)| !v.is_empty() && *v != "0")
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    out.sort();
    out
}

/// `amneziawg-go` started and owned by this backend (or adopted when its socket
/// already answers, so a restarted node daemon keeps live sessions).
#[derive(Debug)]
pub struct AwgBackend {
    daemon: Daemon,
}

impl AwgBackend {
    pub fn new(iface: IfaceName) -> Self {
        Self {
            daemon: Daemon::new(iface, "amneziawg-go", AWG_UAPI_DIR, "amneziawg-go"),
        }
    }

    /// The program (and leading arguments) that starts the daemon; `-f <iface>` is
    /// appended. Default: `amneziawg-go`.
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

    pub fn socket_path(&self) -> PathBuf {
        self.daemon.socket_path()
    }

    pub fn child_pid(&self) -> Option<u32> {
        self.daemon.child_pid()
    }

    pub fn socket_answers(&self) -> bool {
        self.daemon.socket_answers()
    }

    fn err(&self, op: &'static str, e: std::io::Error) -> BackendError {
        BackendError::from_io(&self.daemon.iface, op, e)
    }
}

impl WgBackend for AwgBackend {
    fn iface(&self) -> &IfaceName {
        &self.daemon.iface
    }

    fn ensure(&mut self, spec: &InterfaceSpec) -> Result<(), BackendError> {
        self.daemon.ensure_running()?;
        let live = uapi::get(&self.socket_path()).map_err(|e| self.err("read", e))?;
        let mut body = String::new();
        if live.state.public_key != Some(spec.private_key.public_key())
            || live.state.listen_port != Some(spec.listen_port)
        {
            body.push_str(&uapi::identity_lines(&spec.private_key, spec.listen_port));
        }
        if let Some(Transport::Amneziawg(params)) = &spec.transport {
            let mut extra = live.extra.clone();
            extra.sort();
            if extra != expected_extra(params) {
                body.push_str(&awg_lines(params));
            }
        }
        if body.is_empty() {
            return Ok(());
        }
        uapi::set(&self.socket_path(), &body).map_err(|e| self.err("interface setup", e))
    }

    fn read(&self) -> Result<DeviceState, BackendError> {
        self.daemon.require_running()?;
        uapi::get(&self.socket_path())
            .map(|d| d.state)
            .map_err(|e| self.err("read", e))
    }

    fn apply(&mut self, changes: &[PeerChange]) -> Result<(), BackendError> {
        if changes.is_empty() {
            return Ok(());
        }
        self.daemon.require_running()?;
        uapi::set(&self.socket_path(), &uapi::peer_lines(changes))
            .map_err(|e| self.err("peer update", e))
    }

    fn teardown(&mut self) -> Result<(), BackendError> {
        self.daemon.teardown();
        Ok(())
    }

    fn leave_running(&mut self) {
        self.daemon.leave_running();
    }
}

/// A node's interface on either transport: plain WireGuard through the configured
/// backend, AmneziaWG through [`AwgBackend`], chosen by the transport of the spec
/// `ensure` gets. Switching tears the other one down first (one tun device per
/// name); a spec without a transport (nothing known yet) keeps what runs, and an
/// amneziawg-go already serving the interface is adopted.
#[allow(missing_debug_implementations)]
pub struct TransportBackend {
    plain: Box<dyn WgBackend>,
    awg: AwgBackend,
    active: TransportKind,
}

impl TransportBackend {
    pub fn new(plain: Box<dyn WgBackend>, awg: AwgBackend) -> Self {
        let active = if awg.socket_answers() {
            TransportKind::Amneziawg
        } else {
            TransportKind::Wireguard
        };
        Self { plain, awg, active }
    }

    pub fn active(&self) -> TransportKind {
        self.active
    }

    fn current(&self) -> &dyn WgBackend {
        match self.active {
            TransportKind::Wireguard => &*self.plain,
            TransportKind::Amneziawg => &self.awg,
        }
    }

    fn current_mut(&mut self) -> &mut dyn WgBackend {
        match self.active {
            TransportKind::Wireguard => &mut *self.plain,
            TransportKind::Amneziawg => &mut self.awg,
        }
    }
}

impl WgBackend for TransportBackend {
    fn iface(&self) -> &IfaceName {
        self.plain.iface()
    }

    fn ensure(&mut self, spec: &InterfaceSpec) -> Result<(), BackendError> {
        let want = spec.transport.as_ref().map_or(self.active, Transport::kind);
        if want != self.active {
            tracing::info!(iface = %self.iface(), from = %self.active, to = %want, "switching transport");
            self.current_mut().teardown()?;
            self.active = want;
        }
        self.current_mut().ensure(spec)
    }

    fn read(&self) -> Result<DeviceState, BackendError> {
        self.current().read()
    }

    fn apply(&mut self, changes: &[PeerChange]) -> Result<(), BackendError> {
        self.current_mut().apply(changes)
    }

    fn teardown(&mut self) -> Result<(), BackendError> {
        self.current_mut().teardown()
    }

    fn leave_running(&mut self) {
        self.plain.leave_running();
        self.awg.leave_running();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vpnctl_core::transport::{AwgGeneration, generate};

    #[test]
    fn lines_clear_what_a_generation_lacks() {
        let p = generate(AwgGeneration::V1_0, 1280);
        let lines = awg_lines(&p);
        assert!(
            lines.contains("s3=0\n") && lines.contains("i1=\n"),
            "{lines}"
        );
        let extra = expected_extra(&p);
        assert!(extra.iter().all(|(k, _)| k != "s3" && k != "i1"));
        assert_eq!(extra.len(), 9);
        let p = generate(AwgGeneration::V2_0, 1280);
        assert!(awg_lines(&p).contains(&format!("h1={}\n", p.h1)));
        assert!(expected_extra(&p).iter().any(|(k, _)| k == "i1"));
    }
}
