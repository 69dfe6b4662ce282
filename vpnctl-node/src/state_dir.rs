//! The node's state directory (default `/var/lib/vpnctl-node`, mode 0700):
//!
//! - `node.key`: the WireGuard private key, generated here by `join`, mode 0600, in
//!   the base64 form of `wg genkey` (so `wg pubkey < node.key` works). It never leaves
//!   the node.
//! - `credentials.json`: what enrollment returned (API URL, certificate fingerprint,
//!   node id, node token), mode 0600.
//! - `cache.json`: the last applied desired state ([`crate::reconciler::Cache`]).

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use vpnctl_core::keys::PrivateKey;
use vpnctl_core::model::NodeId;

use crate::reconciler::Cache;

/// A bearer secret (join token, node token) as text. `Debug` and `Display` print
/// `***`; only [`Token::expose`] gives the text, for the one request that needs it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Token(String);

impl Token {
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// The secret text. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl FromStr for Token {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.trim().to_owned()))
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(***)")
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// What enrollment gave this node: where its control plane is, how to recognise it,
/// who the node is and how it proves that.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    pub api_url: String,
    /// The control plane's certificate fingerprint, pinned from the join token.
    pub fingerprint: String,
    pub node_id: NodeId,
    pub token: Token,
}

/// Why a state file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path} is not valid: {detail}")]
    Invalid { path: PathBuf, detail: String },
}

/// The files of one node in one directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn key_path(&self) -> PathBuf {
        self.root.join("node.key")
    }

    pub fn credentials_path(&self) -> PathBuf {
        self.root.join("credentials.json")
    }

    pub fn cache(&self) -> Cache {
        Cache::new(self.root.join("cache.json"))
    }

    /// Creates the directory (and its parents) and makes it 0700.
    pub fn create(&self) -> Result<(), StateError> {
        let io_err = |source| StateError::Io {
            path: self.root.clone(),
            source,
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.root)
            .map_err(io_err)?;
        std::fs::set_permissions(&self.root, std::fs::Permissions::from_mode(0o700)).map_err(io_err)
    }

    /// The node's private key; `None` before `join` made one.
    pub fn load_key(&self) -> Result<Option<PrivateKey>, StateError> {
        let path = self.key_path();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(StateError::Io { path, source }),
        };
        PrivateKey::from_base64(text.trim())
            .map(Some)
            .map_err(|e| StateError::Invalid {
                path,
                detail: e.to_string(),
            })
    }

    /// The existing key, or a fresh one written with mode 0600. A `join` retried after
    /// a failed enrollment keeps the key it announced the first time.
    pub fn load_or_generate_key(&self) -> Result<PrivateKey, StateError> {
        if let Some(key) = self.load_key()? {
            return Ok(key);
        }
        let key = PrivateKey::generate();
        let mut text = key.expose_base64();
        text.push('\n');
        write_private(&self.key_path(), text.as_bytes())?;
        Ok(key)
    }

    /// Writes `key` as the node key (0600), replacing any (`join --adopt-key`).
    pub fn store_key(&self, key: &PrivateKey) -> Result<(), StateError> {
        let mut text = zeroize::Zeroizing::new(key.expose_base64());
        text.push('\n');
        write_private(&self.key_path(), text.as_bytes())
    }

    /// The enrollment result; `None` before `join`.
    pub fn load_credentials(&self) -> Result<Option<Credentials>, StateError> {
        let path = self.credentials_path();
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(StateError::Io { path, source }),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StateError::Invalid {
                path,
                detail: e.to_string(),
            })
    }

    pub fn store_credentials(&self, credentials: &Credentials) -> Result<(), StateError> {
        let path = self.credentials_path();
        let json = serde_json::to_vec_pretty(credentials).map_err(|e| StateError::Invalid {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        write_private(&path, &json)
    }
}

/// Replaces `path` atomically with a file of mode 0600: temp file in the same
/// directory, fsync, rename, fsync of the directory.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map_or_else(|| "state".into(), |n| n.to_string_lossy());
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let write = || -> io::Result<()> {
        let _ = std::fs::remove_file(&tmp);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    };
    write().map_err(|source| {
        let _ = std::fs::remove_file(&tmp);
        StateError::Io {
            path: path.to_owned(),
            source,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn key_is_generated_once_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path().join("state"));
        state.create().unwrap();
        assert_eq!(mode(state.root()), 0o700);
        assert!(state.load_key().unwrap().is_none());
        let key = state.load_or_generate_key().unwrap();
        assert_eq!(mode(&state.key_path()), 0o600);
        let again = state.load_or_generate_key().unwrap();
        assert_eq!(key.public_key(), again.public_key());
        let text = std::fs::read_to_string(state.key_path()).unwrap();
        assert_eq!(text.trim().len(), 44, "wg genkey format");
    }

    #[test]
    fn credentials_round_trip_and_hide_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        let creds = Credentials {
            api_url: "https://127.0.0.1:8443".into(),
            fingerprint: "sha256:abcd".into(),
            node_id: NodeId(7),
            token: Token::new("vpt_secret"),
        };
        state.store_credentials(&creds).unwrap();
        assert_eq!(mode(&state.credentials_path()), 0o600);
        assert_eq!(state.load_credentials().unwrap(), Some(creds.clone()));
        assert!(!format!("{creds:?}").contains("vpt_secret"));
        std::fs::write(state.credentials_path(), b"{").unwrap();
        assert!(matches!(
            state.load_credentials(),
            Err(StateError::Invalid { .. })
        ));
    }
}
