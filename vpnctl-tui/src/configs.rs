//! Client configs written to files for the admin to hand over: mode 0600, never
//! overwriting unless asked, and after an evacuation the new configs of the users the
//! bot cannot reach (no Telegram id). Shared by the CLI and the dashboard.

use std::fs::{DirBuilder, OpenOptions, Permissions};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use vpnctl_api::body::NodeView;
use vpnctl_client::ApiClient;
use vpnctl_core::{ErrorCode, Evacuation, Moved, User};

/// Writes `text` (a config, with its private key) to `path` with mode 0600. An
/// existing file is an error unless `overwrite`, and then it is made 0600 too.
pub fn write_config(path: &Path, text: &str, overwrite: bool) -> std::io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).mode(0o600);
    if overwrite {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let mut file = options.open(path)?;
    file.set_permissions(Permissions::from_mode(0o600))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

/// What became of the moved devices whose users have no Telegram.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SavedConfigs {
    /// Written, with the file.
    pub written: Vec<(Moved, PathBuf)>,
    /// Not written, and why (own key, a file error).
    pub not_written: Vec<(Moved, String)>,
}

/// The moved devices whose users have no Telegram id: nobody tells them.
pub fn without_telegram<'a>(done: &'a Evacuation, users: &[User]) -> Vec<&'a Moved> {
    done.moved
        .iter()
        .filter(|m| {
            users
                .iter()
                .find(|u| u.id == m.user)
                .is_none_or(|u| u.telegram_id.is_none())
        })
        .collect()
}

/// Fetches the new config of every moved device whose user has no Telegram id and
/// writes it to `dir/<tunnel>.conf` (0600; `dir` is made 0700 if missing). A name
/// already taken goes to `dir/u<user>/<tunnel>.conf`; no file is ever overwritten.
/// Failures are listed, not fatal: the devices have moved already.
pub async fn save_moved(
    api: &ApiClient,
    done: &Evacuation,
    users: &[User],
    nodes: &[NodeView],
    dir: &Path,
) -> SavedConfigs {
    let mut saved = SavedConfigs::default();
    let moved = without_telegram(done, users);
    if moved.is_empty() {
        return saved;
    }
    if let Err(e) = DirBuilder::new().recursive(true).mode(0o700).create(dir) {
        saved.not_written = moved
            .into_iter()
            .map(|m| (m.clone(), format!("cannot create {}: {e}", dir.display())))
            .collect();
        return saved;
    }
    for m in moved {
        let node = nodes
            .iter()
            .find(|v| v.node.id == m.to)
            .map_or_else(|| format!("n{}", m.to), |v| v.node.name.clone());
        let file = format!(
            "{}.conf",
            vpnctl_core::render::tunnel_name(&node, &m.device)
        );
        let config = match api.peer_config(m.new_peer).await {
            Ok(config) => config,
            Err(e) if e.code() == Some(ErrorCode::PrivateKeyUnavailable) => {
                saved.not_written.push((
                    m.clone(),
                    "no config: the device brought its own key, so only its owner can update it"
                        .into(),
                ));
                continue;
            }
            Err(e) => {
                saved.not_written.push((m.clone(), e.to_string()));
                continue;
            }
        };
        let mut path = dir.join(&file);
        if path.exists() {
            let sub = dir.join(format!("u{}", m.user));
            if let Err(e) = DirBuilder::new().recursive(true).mode(0o700).create(&sub) {
                saved
                    .not_written
                    .push((m.clone(), format!("cannot create {}: {e}", sub.display())));
                continue;
            }
            path = sub.join(&file);
        }
        match write_config(&path, &config, false) {
            Ok(()) => saved.written.push((m.clone(), path)),
            Err(e) => saved
                .not_written
                .push((m.clone(), format!("{}: {e}", path.display()))),
        }
    }
    saved
}
