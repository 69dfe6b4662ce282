//! One reconcile pass and the on-disk cache of the last applied desired state.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use serde::{Deserialize, Serialize};
use vpnctl_core::keys::PublicKey;
use vpnctl_core::reconcile::{PeerChange, PeerSpec, plan};
use vpnctl_core::wire::NodeDesired;

use crate::backend::{BackendError, DeviceState, WgBackend};

/// What one reconcile pass did.
#[derive(Debug, Default)]
pub struct ReconcileOutcome {
    /// The device as read at the start of the pass (before any change): its identity
    /// and the stats of its peers, so that a caller can report without reading again.
    pub live: DeviceState,
    /// Changes applied successfully, in order.
    pub applied: Vec<PeerChange>,
    /// Peers that were on the device but not in the desired state, and were removed:
    /// revoked peers and drift (peers someone added by hand).
    pub removed: Vec<PublicKey>,
    /// Changes the device refused; everything else was applied.
    pub failed: Vec<FailedChange>,
}

impl ReconcileOutcome {
    /// True when the device already matched the desired state.
    pub fn is_noop(&self) -> bool {
        self.applied.is_empty() && self.failed.is_empty()
    }

    pub fn added(&self) -> usize {
        self.applied
            .iter()
            .filter(|c| matches!(c, PeerChange::Add(_)))
            .count()
    }

    pub fn updated(&self) -> usize {
        self.applied
            .iter()
            .filter(|c| matches!(c, PeerChange::Update { .. }))
            .count()
    }
}

/// A change the device refused, with the reason.
#[derive(Debug)]
pub struct FailedChange {
    pub change: PeerChange,
    pub error: BackendError,
}

/// A pass that could not run at all (the device is unreachable).
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("reading the live device: {0}")]
    Read(#[source] BackendError),
    #[error("applying changes: {0}")]
    Apply(#[source] BackendError),
}

/// Reads the live device, plans the difference to `desired` and applies it as deltas
/// in one batch. An empty plan touches nothing. When the device rejects the batch, the
/// changes are retried one at a time so that one bad peer cannot hold up the others;
/// the refused ones are reported in [`ReconcileOutcome::failed`].
#[tracing::instrument(skip_all, fields(iface = %backend.iface(), desired = desired.len()))]
pub fn reconcile<B: WgBackend + ?Sized>(
    backend: &mut B,
    desired: &[PeerSpec],
) -> Result<ReconcileOutcome, ReconcileError> {
    let live = backend.read().map_err(ReconcileError::Read)?;
    let changes = plan(desired, &live.specs());
    if changes.is_empty() {
        tracing::debug!("device matches desired state");
        return Ok(ReconcileOutcome {
            live,
            ..ReconcileOutcome::default()
        });
    }
    let mut outcome = apply_changes(backend, changes)?;
    outcome.live = live;
    tracing::info!(
        added = outcome.added(),
        updated = outcome.updated(),
        removed = outcome.removed.len(),
        failed = outcome.failed.len(),
        "reconciled"
    );
    Ok(outcome)
}

/// Applies already planned changes in one batch, without reading the device: the
/// per-delta path of the daemon, which knows what it applied before. When the device
/// rejects the batch, the changes are retried one at a time and the refused ones are
/// reported in [`ReconcileOutcome::failed`]. [`ReconcileOutcome::live`] stays empty.
pub fn apply_changes<B: WgBackend + ?Sized>(
    backend: &mut B,
    changes: Vec<PeerChange>,
) -> Result<ReconcileOutcome, ReconcileError> {
    let mut outcome = ReconcileOutcome::default();
    if changes.is_empty() {
        return Ok(outcome);
    }
    for change in &changes {
        // `Display` of a change never shows a preshared key.
        tracing::debug!(%change, "applying");
    }
    match backend.apply(&changes) {
        Ok(()) => outcome.applied = changes,
        Err(BackendError::Rejected { .. }) => {
            for change in changes {
                match backend.apply(std::slice::from_ref(&change)) {
                    Ok(()) => outcome.applied.push(change),
                    Err(error @ BackendError::Rejected { .. }) => {
                        tracing::warn!(%change, %error, "device refused change");
                        outcome.failed.push(FailedChange { change, error });
                    }
                    Err(e) => return Err(ReconcileError::Apply(e)),
                }
            }
        }
        Err(e) => return Err(ReconcileError::Apply(e)),
    }
    outcome.removed = outcome
        .applied
        .iter()
        .filter_map(|c| match c {
            PeerChange::Remove(key) => Some(*key),
            _ => None,
        })
        .collect();
    Ok(outcome)
}

/// The desired state the node applied last, as kept on disk: the whole
/// [`NodeDesired`] (revision, enabled flag, interface spec and peers), so that a node
/// that restarts without its control plane can bring the interface up exactly as it
/// was ("fail static").
pub type AppliedState = NodeDesired;

#[derive(Serialize)]
struct CacheFileRef<'a> {
    format: u32,
    desired: &'a NodeDesired,
}

#[derive(Deserialize)]
struct CacheFile {
    desired: NodeDesired,
}

/// Version 1 held only the revision and the peers; version 2 holds the whole
/// [`NodeDesired`].
const CACHE_FORMAT: u32 = 2;

/// Why the cache could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cache {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("cache {path} is not a valid state file: {source}")]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("cache {path} has format {found}, this node understands {CACHE_FORMAT}")]
    Format { path: PathBuf, found: u32 },
}

/// The last applied desired state on disk: JSON, mode 0600 (it holds preshared keys),
/// replaced atomically (temp file in the same directory, fsync, rename, fsync of the
/// directory), so a crash leaves either the old or the new state, never a torn one.
/// With the control plane away, the node restores its interface from here ("fail
/// static").
#[derive(Debug, Clone)]
pub struct Cache {
    path: PathBuf,
}

static TEMP_SEQ: AtomicU32 = AtomicU32::new(0);

impl Cache {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io_err(&self, source: io::Error) -> CacheError {
        CacheError::Io {
            path: self.path.clone(),
            source,
        }
    }

    pub fn store(&self, state: &AppliedState) -> Result<(), CacheError> {
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let name = self
            .path
            .file_name()
            .map_or_else(|| "cache".into(), |n| n.to_string_lossy());
        let tmp = dir.join(format!(
            ".{name}.tmp.{}.{}",
            std::process::id(),
            TEMP_SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let result = self.write_temp(&tmp, state).and_then(|()| {
            std::fs::rename(&tmp, &self.path)?;
            File::open(dir)?.sync_all()
        });
        if let Err(e) = result {
            let _ = std::fs::remove_file(&tmp);
            return Err(self.io_err(e));
        }
        Ok(())
    }

    fn write_temp(&self, tmp: &Path, state: &AppliedState) -> io::Result<()> {
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(tmp)?;
        // The umask can only take bits away; make it exactly 0600 regardless.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        let mut out = BufWriter::new(file);
        let doc = CacheFileRef {
            format: CACHE_FORMAT,
            desired: state,
        };
        serde_json::to_writer(&mut out, &doc).map_err(io::Error::other)?;
        out.flush()?;
        out.get_ref().sync_all()
    }

    /// The stored state; `None` when there is no cache file yet.
    pub fn load(&self) -> Result<Option<AppliedState>, CacheError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io_err(e)),
        };
        #[derive(Deserialize)]
        struct Header {
            format: u32,
        }
        let header: Header =
            serde_json::from_slice(&bytes).map_err(|source| CacheError::Corrupt {
                path: self.path.clone(),
                source,
            })?;
        if header.format != CACHE_FORMAT {
            return Err(CacheError::Format {
                path: self.path.clone(),
                found: header.format,
            });
        }
        let file: CacheFile =
            serde_json::from_slice(&bytes).map_err(|source| CacheError::Corrupt {
                path: self.path.clone(),
                source,
            })?;
        Ok(Some(file.desired))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{InterfaceSpec, SimBackend};
    use crate::iface::IfaceName;
    use vpnctl_core::keys::{KeyPair, PresharedKey, PrivateKey};
    use vpnctl_core::model::NodeId;
    use vpnctl_core::wire::InterfaceSpec as WireInterface;

    fn state(revision: u64, peers: Vec<PeerSpec>) -> AppliedState {
        NodeDesired {
            node: NodeId(3),
            revision,
            enabled: true,
            interface: WireInterface {
                listen_port: 51820,
                address_v4: "10.8.0.1/16".parse().unwrap(),
                address_v6: Some("fd00:8::1/64".parse().unwrap()),
                mtu: 1420,
                transport: vpnctl_core::transport::Transport::Wireguard,
            },
            peers,
        }
    }

    fn peer(i: u8) -> PeerSpec {
        PeerSpec::new(
            KeyPair::generate().public,
            Some(PresharedKey::generate()),
            [format!("10.8.0.{i}/32").parse().unwrap()],
            Some(25),
        )
    }

    #[test]
    fn cache_round_trips_with_mode_0600_and_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path().join("state.json"));
        assert!(cache.load().unwrap().is_none());
        cache.store(&state(7, vec![peer(2), peer(3)])).unwrap();
        let replaced = state(8, vec![peer(4)]);
        cache.store(&replaced).unwrap();
        assert_eq!(cache.load().unwrap(), Some(replaced));
        let mode = std::fs::metadata(cache.path())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("state.json")]);
    }

    #[test]
    fn cache_refuses_garbage_and_unknown_formats() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path().join("state.json"));
        std::fs::write(cache.path(), b"{\"format\":1,\"revision\":").unwrap();
        assert!(matches!(cache.load(), Err(CacheError::Corrupt { .. })));
        std::fs::write(cache.path(), b"{\"format\":99,\"revision\":1,\"peers\":[]}").unwrap();
        assert!(matches!(
            cache.load(),
            Err(CacheError::Format { found: 99, .. })
        ));
        // A cache of the first format (revision and peers only) is refused, not misread.
        std::fs::write(cache.path(), b"{\"format\":1,\"revision\":1,\"peers\":[]}").unwrap();
        assert!(matches!(
            cache.load(),
            Err(CacheError::Format { found: 1, .. })
        ));
        let missing_dir = Cache::new(dir.path().join("no/such/dir/state.json"));
        let err = missing_dir.store(&state(1, vec![]));
        assert!(matches!(err, Err(CacheError::Io { .. })));
    }

    #[test]
    fn reconcile_applies_removes_strays_and_then_does_nothing() {
        let mut sim = SimBackend::new(IfaceName::new("sim0").unwrap());
        sim.ensure(&InterfaceSpec {
            private_key: PrivateKey::generate(),
            listen_port: 51820,
            transport: None,
        })
        .unwrap();
        let stray = peer(9);
        sim.apply(&[PeerChange::Add(stray.clone())]).unwrap();
        let desired = vec![peer(2), peer(3)];
        let outcome = reconcile(&mut sim, &desired).unwrap();
        assert_eq!(outcome.added(), 2);
        assert_eq!(outcome.removed, vec![stray.public_key]);
        assert!(outcome.failed.is_empty());
        let again = reconcile(&mut sim, &desired).unwrap();
        assert!(again.is_noop());
    }

    #[test]
    fn reconcile_fails_cleanly_when_the_device_is_down() {
        let mut sim = SimBackend::new(IfaceName::new("sim0").unwrap());
        assert!(matches!(
            reconcile(&mut sim, &[peer(2)]),
            Err(ReconcileError::Read(_))
        ));
    }
}
