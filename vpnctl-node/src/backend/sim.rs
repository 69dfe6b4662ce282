//! In-memory WireGuard for `vpnctl demo` and tests of code above the backend.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, SystemTime};

use vpnctl_core::keys::PublicKey;
use vpnctl_core::reconcile::{self, PeerChange, PeerSpec};

use super::{BackendError, DeviceState, InterfaceSpec, LivePeer, PeerStats, WgBackend};
use crate::iface::IfaceName;

/// WireGuard re-handshakes a session every 2 minutes while traffic flows.
const REKEY: Duration = Duration::from_secs(120);
/// Longest step that [`SimBackend::tick`] simulates at once (a paused demo must not
/// produce a burst of traffic).
const MAX_STEP: Duration = Duration::from_secs(60);

/// A simulated WireGuard device. Peer changes go through
/// [`vpnctl_core::reconcile::apply`], so it behaves like a device that accepts every
/// change; [`SimBackend::tick`] makes plausible sessions: about 70 % of peers are
/// "online", handshake every two minutes from a stable documentation-range endpoint and
/// move a steady, per-peer amount of traffic.
#[derive(Debug)]
pub struct SimBackend {
    iface: IfaceName,
    identity: Option<(PublicKey, u16)>,
    peers: Vec<PeerSpec>,
    stats: HashMap<PublicKey, PeerStats>,
    last_tick: Option<SystemTime>,
}

impl SimBackend {
    pub fn new(iface: IfaceName) -> Self {
        Self {
            iface,
            identity: None,
            peers: Vec::new(),
            stats: HashMap::new(),
            last_tick: None,
        }
    }

    /// Advances the simulation to `now`: handshakes and byte counters of online peers.
    /// Deterministic for the same sequence of `now` values.
    pub fn tick(&mut self, now: SystemTime) {
        let step = self
            .last_tick
            .and_then(|last| now.duration_since(last).ok())
            .unwrap_or_default()
            .min(MAX_STEP);
        self.last_tick = Some(now);
        for peer in &self.peers {
            let seed = seed(&peer.public_key);
            if seed % 100 >= 70 {
                continue; // offline peer: never handshakes
            }
            let stats = self.stats.entry(peer.public_key).or_default();
            let due = stats
                .last_handshake
                .is_none_or(|at| now.duration_since(at).is_ok_and(|d| d >= REKEY));
            if due {
                stats.last_handshake = Some(now);
                stats.endpoint = Some(endpoint(seed));
            }
            // 1–64 KiB/s down, a quarter of that up.
            let rate = 1024 * (1 + (seed >> 8) % 64);
            let millis = u64::try_from(step.as_millis()).unwrap_or(u64::MAX);
            let down = rate.saturating_mul(millis) / 1000;
            stats.tx_bytes = stats.tx_bytes.saturating_add(down);
            stats.rx_bytes = stats
                .rx_bytes
                .saturating_add(down / 4 + 148 * u64::from(due));
        }
    }

    fn require_up(&self) -> Result<(), BackendError> {
        if self.identity.is_some() {
            Ok(())
        } else {
            Err(BackendError::NotRunning(self.iface.clone()))
        }
    }
}

fn seed(key: &PublicKey) -> u64 {
    // FNV-1a: stable across runs and platforms, unlike `DefaultHasher`.
    key.as_bytes().iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn endpoint(seed: u64) -> SocketAddr {
    let host = u8::try_from(1 + (seed >> 16) % 254).unwrap_or(1);
    let port = u16::try_from(20_000 + (seed >> 24) % 40_000).unwrap_or(51_820);
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(203, 0, 113, host)), port)
}

impl WgBackend for SimBackend {
    fn iface(&self) -> &IfaceName {
        &self.iface
    }

    fn ensure(&mut self, spec: &InterfaceSpec) -> Result<(), BackendError> {
        self.identity = Some((spec.private_key.public_key(), spec.listen_port));
        Ok(())
    }

    fn read(&self) -> Result<DeviceState, BackendError> {
        let (public_key, listen_port) = self
            .identity
            .ok_or_else(|| BackendError::NotRunning(self.iface.clone()))?;
        Ok(DeviceState {
            public_key: Some(public_key),
            listen_port: Some(listen_port),
            peers: self
                .peers
                .iter()
                .map(|spec| LivePeer {
                    spec: spec.clone(),
                    stats: self
                        .stats
                        .get(&spec.public_key)
                        .cloned()
                        .unwrap_or_default(),
                })
                .collect(),
        })
    }

    fn apply(&mut self, changes: &[PeerChange]) -> Result<(), BackendError> {
        self.require_up()?;
        reconcile::apply(&mut self.peers, changes);
        for change in changes {
            if let PeerChange::Remove(key) = change {
                self.stats.remove(key);
            }
        }
        Ok(())
    }

    fn teardown(&mut self) -> Result<(), BackendError> {
        self.identity = None;
        self.peers.clear();
        self.stats.clear();
        self.last_tick = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vpnctl_core::keys::{KeyPair, PrivateKey};

    fn up() -> SimBackend {
        let mut sim = SimBackend::new(IfaceName::new("sim0").unwrap());
        sim.ensure(&InterfaceSpec {
            private_key: PrivateKey::generate(),
            listen_port: 51820,
            transport: None,
        })
        .unwrap();
        sim
    }

    fn peer(i: u8) -> PeerSpec {
        PeerSpec::new(
            KeyPair::generate().public,
            None,
            [format!("10.8.0.{i}/32").parse().unwrap()],
            None,
        )
    }

    #[test]
    fn refuses_work_before_ensure_and_after_teardown() {
        let mut sim = SimBackend::new(IfaceName::new("sim0").unwrap());
        assert!(matches!(sim.read(), Err(BackendError::NotRunning(_))));
        assert!(sim.apply(&[PeerChange::Add(peer(2))]).is_err());
        let mut sim = up();
        sim.teardown().unwrap();
        assert!(sim.read().is_err());
    }

    #[test]
    fn applies_changes_and_simulates_sessions() {
        let mut sim = up();
        let peers: Vec<PeerSpec> = (2..102).map(peer).collect();
        let changes: Vec<PeerChange> = peers.iter().cloned().map(PeerChange::Add).collect();
        sim.apply(&changes).unwrap();
        assert_eq!(sim.read().unwrap().peers.len(), 100);

        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        sim.tick(t0);
        sim.tick(t0 + Duration::from_secs(10));
        let state = sim.read().unwrap();
        let online: Vec<&LivePeer> = state
            .peers
            .iter()
            .filter(|p| p.stats.last_handshake.is_some())
            .collect();
        // About 70 % online; with 100 random keys anything from 40 to 95 is plausible.
        assert!((40..=95).contains(&online.len()), "{}", online.len());
        for p in &online {
            assert_eq!(p.stats.last_handshake, Some(t0));
            assert!(p.stats.tx_bytes >= 10 * 1024, "{}", p.stats.tx_bytes);
            assert!(p.stats.rx_bytes > 0);
            assert!(p.stats.endpoint.is_some());
        }
        // A rekey after two minutes.
        sim.tick(t0 + Duration::from_secs(130));
        let later = sim.read().unwrap();
        let again = later.peer(&online[0].spec.public_key).unwrap();
        assert_eq!(
            again.stats.last_handshake,
            Some(t0 + Duration::from_secs(130))
        );
        assert!(again.stats.tx_bytes > online[0].stats.tx_bytes);

        // Removing a peer drops its stats; the plan against the sim is then empty.
        let gone = peers[0].public_key;
        sim.apply(&[PeerChange::Remove(gone)]).unwrap();
        let state = sim.read().unwrap();
        assert!(state.peer(&gone).is_none());
        assert!(reconcile::plan(&peers[1..], &state.specs()).is_empty());
    }
}
