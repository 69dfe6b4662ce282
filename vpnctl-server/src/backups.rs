//! Backups of the control plane: what one contains besides the store (the TLS
//! certificate and key that nodes pin, the settings file), scheduled backups into a
//! directory with retention, and `vpnctld restore`.
//!
//! The snapshot and its encryption are core's ([`vpnctl_core::backup`]): one read
//! transaction, so the API keeps serving writes while a backup is taken.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use vpnctl_core::Vpnctl;
use vpnctl_core::backup::{self, BackupError, BackupKey, RestoreKey, Restored};
use vpnctl_core::time::Timestamp;

use crate::config::CONFIG_FILE;
use crate::tls::{CERT_FILE, KEY_FILE};

/// Files of the data directory a restore needs besides the store and key file.
pub const DATA_FILES: &[&str] = &[CERT_FILE, KEY_FILE, CONFIG_FILE];

/// Scheduled backup files are named `vpnctl-<UTC time>.backup.age`.
const PREFIX: &str = "vpnctl-";
const SUFFIX: &str = ".backup.age";

/// A scheduled backup's settings (`backup_dir`, `backup_every_hours`,
/// `backup_keep`, `backup_recipient` or `backup_passphrase_file`).
#[derive(Debug, Clone)]
pub struct Schedule {
    pub dir: PathBuf,
    pub every: Duration,
    /// Newest backups kept; older ones are deleted after each new one.
    pub keep: usize,
    pub key: ScheduleKey,
    /// Tell the admins' chats of each new backup, which the bot then fetches
    /// (`GET /v1/backups/{file}`) and sends them.
    pub telegram: bool,
}

/// How scheduled backups are encrypted.
#[derive(Debug, Clone)]
pub enum ScheduleKey {
    /// An age recipient (`age1...`).
    Recipient(String),
    /// A file whose first line is the passphrase (read at each backup).
    PassphraseFile(PathBuf),
}

impl ScheduleKey {
    fn key(&self) -> Result<BackupKey, BackupError> {
        match self {
            Self::Recipient(r) => BackupKey::recipient(r),
            Self::PassphraseFile(path) => {
                let text = zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
                    std::io::Error::other(format!("passphrase file {}: {e}", path.display()))
                })?);
                BackupKey::passphrase(&backup::passphrase_from_file_text(&text)?)
            }
        }
    }
}

/// The files of `data` a backup carries (those that exist).
pub fn data_files(data: &Path) -> std::io::Result<Vec<(String, Vec<u8>)>> {
    let mut files = Vec::new();
    for name in DATA_FILES {
        match std::fs::read(data.join(name)) {
            Ok(bytes) => files.push(((*name).to_owned(), bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(files)
}

/// A backup of `vpn` and the files of `data`, encrypted to `key`, with the file
/// name it should get.
pub fn make(vpn: &Vpnctl, data: &Path, key: &BackupKey) -> Result<(String, Vec<u8>), BackupError> {
    let files = data_files(data)?;
    let blob = vpn.backup(key, &files)?;
    Ok((file_name(vpn.now()), blob))
}

/// `vpnctl-20261203T081500Z.backup.age`.
pub fn file_name(at: Timestamp) -> String {
    let stamp: String = at
        .to_rfc3339()
        .chars()
        .filter(|c| !matches!(c, '-' | ':'))
        .collect();
    format!("{PREFIX}{stamp}{SUFFIX}")
}

/// Whether `name` is a scheduled backup's file name (nothing else of a directory
/// is ever served): `vpnctl-<UTC time>.backup.age`, the time in digits and `T`/`Z`.
pub fn is_file_name(name: &str) -> bool {
    name.strip_prefix(PREFIX)
        .and_then(|n| n.strip_suffix(SUFFIX))
        .is_some_and(|stamp| {
            !stamp.is_empty()
                && stamp.len() <= 32
                && stamp
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b == b'T' || b == b'Z')
        })
}

/// The scheduled backups in `dir`, oldest first.
pub fn list(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(is_file_name)
        })
        .collect();
    found.sort();
    Ok(found)
}

/// Takes one scheduled backup: writes it atomically (0600) into the directory and
/// deletes all but the newest `keep`. Returns the new file.
pub fn run_once(vpn: &Vpnctl, data: &Path, schedule: &Schedule) -> Result<PathBuf, BackupError> {
    {
        use std::os::unix::fs::DirBuilderExt as _;
        // Only the control plane's user reads its backups, encrypted as they are.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&schedule.dir)?;
    }
    let key = schedule.key.key()?;
    let (name, blob) = make(vpn, data, &key)?;
    let path = schedule.dir.join(name);
    backup::write_atomically(&path, &blob)?;
    let all = list(&schedule.dir)?;
    let keep = schedule.keep.max(1);
    for old in &all[..all.len().saturating_sub(keep)] {
        if let Err(e) = std::fs::remove_file(old) {
            tracing::warn!(file = %old.display(), error = %e, "could not delete an old backup");
        }
    }
    Ok(path)
}

/// How long until the next backup is due: none yet or the newest older than
/// `every` means now.
fn due_in(schedule: &Schedule) -> Duration {
    let newest = list(&schedule.dir)
        .ok()
        .and_then(|all| all.last().cloned())
        .and_then(|p| std::fs::metadata(p).ok())
        .and_then(|m| m.modified().ok());
    match newest {
        Some(at) => {
            let age = SystemTime::now().duration_since(at).unwrap_or_default();
            schedule.every.saturating_sub(age)
        }
        None => Duration::ZERO,
    }
}

/// Takes a backup whenever one is due, until the task is dropped. A failed backup
/// is logged and tried again after a minute (or `every`, if shorter).
pub async fn run(vpn: Vpnctl, data: PathBuf, schedule: Schedule) {
    let retry = schedule.every.min(Duration::from_secs(60));
    loop {
        let wait = due_in(&schedule);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
            continue;
        }
        let (v, d, s) = (vpn.clone(), data.clone(), schedule.clone());
        let started = std::time::Instant::now();
        match tokio::task::spawn_blocking(move || run_once(&v, &d, &s)).await {
            Ok(Ok(path)) => {
                let bytes = std::fs::metadata(&path).map_or(0, |m| m.len());
                tracing::info!(
                    file = %path.display(),
                    bytes,
                    ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                    "backup written"
                );
                if schedule.telegram {
                    announce(&vpn, &path, bytes).await;
                }
            }
            Ok(Err(e)) => {
                tracing::error!(dir = %schedule.dir.display(), error = %e, "scheduled backup failed");
                tokio::time::sleep(retry).await;
            }
            Err(e) => {
                tracing::error!(error = %e, "scheduled backup task failed");
                tokio::time::sleep(retry).await;
            }
        }
    }
}

/// Queues the admins' notice of a new backup (the bot sends the file).
async fn announce(vpn: &Vpnctl, path: &Path, bytes: u64) {
    let Some(file) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
        return;
    };
    let v = vpn.clone();
    match tokio::task::spawn_blocking(move || v.announce_backup(&file, bytes)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "could not queue the backup for Telegram"),
        Err(e) => tracing::error!(error = %e, "backup notice task failed"),
    }
}

/// A scheduled backup of `dir` by its file name, for `GET /v1/backups/{file}`;
/// `None` when the name is not a backup's or there is no such file.
pub fn read(dir: &Path, name: &str) -> std::io::Result<Option<Vec<u8>>> {
    if !is_file_name(name) {
        return Ok(None);
    }
    match std::fs::read(dir.join(name)) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// What `vpnctld restore` is given.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    pub from: PathBuf,
    /// The new data directory (must not exist or be empty).
    pub data: PathBuf,
    pub passphrase_file: Option<PathBuf>,
    pub identity: Option<PathBuf>,
}

/// `vpnctld restore`: checks the whole backup, then writes the data directory.
pub fn restore(options: &RestoreOptions) -> Result<Restored, BackupError> {
    let read = |path: &Path| {
        std::fs::read(path)
            .map_err(|e| BackupError::Io(std::io::Error::other(format!("{}: {e}", path.display()))))
    };
    let key = match (&options.passphrase_file, &options.identity) {
        (Some(file), None) => {
            let text = zeroize::Zeroizing::new(String::from_utf8_lossy(&read(file)?).into_owned());
            RestoreKey::passphrase(&backup::passphrase_from_file_text(&text)?)
        }
        (None, Some(file)) => {
            let text = zeroize::Zeroizing::new(String::from_utf8_lossy(&read(file)?).into_owned());
            RestoreKey::identity_file(&text, &file.display().to_string())?
        }
        _ => {
            return Err(BackupError::Io(std::io::Error::other(
                "give exactly one of --passphrase-file FILE and --identity FILE",
            )));
        }
    };
    let blob = read(&options.from)?;
    let done = backup::restore(&blob, &key, &options.data)?;
    if done.files.iter().any(|f| f == CONFIG_FILE) {
        point_settings_at(&options.data)?;
    }
    Ok(done)
}

/// The restored `vpnctld.toml` still names the data directory the backup was taken
/// from; run with it, vpnctld would serve that directory (or a new empty store
/// there) instead of the restored one. Its `data` is set to where it was restored.
fn point_settings_at(data: &Path) -> Result<(), BackupError> {
    let path = data.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&path)?;
    let mut table: toml::Table = text.parse().map_err(|e| {
        BackupError::Malformed(format!("the restored {CONFIG_FILE} is not TOML: {e}"))
    })?;
    let dir = std::path::absolute(data)?;
    let Some(dir_text) = dir.to_str() else {
        return Err(BackupError::Malformed(format!(
            "{} is not UTF-8: set `data` in {CONFIG_FILE} by hand",
            dir.display()
        )));
    };
    if table.get("data").and_then(toml::Value::as_str) == Some(dir_text) {
        return Ok(());
    }
    table.insert("data".to_owned(), toml::Value::String(dir_text.to_owned()));
    let text = toml::to_string(&table)
        .map_err(|e| BackupError::Malformed(format!("writing {CONFIG_FILE}: {e}")))?;
    backup::write_atomically(&path, text.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_sort_by_time() {
        let a = file_name(Timestamp(1_800_000_000));
        let b = file_name(Timestamp(1_800_000_001));
        assert_eq!(a, "vpnctl-20270115T080000Z.backup.age");
        assert!(a < b);
        assert!(is_file_name(&a));
    }

    #[test]
    fn only_backup_names_are_served() {
        for bad in [
            "",
            "vpnctl.redb",
            "vault.key",
            "tls.key",
            "vpnctl-.backup.age",
            "vpnctl-../../etc/passwd.backup.age",
            "vpnctl-2027/../x.backup.age",
            "vpnctl-20270115T080000Z.backup.age.tmp",
        ] {
            assert!(!is_file_name(bad), "{bad}");
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tls.key"), b"secret").unwrap();
        assert_eq!(read(dir.path(), "tls.key").unwrap(), None);
        assert_eq!(read(dir.path(), "vpnctl-1T2Z.backup.age").unwrap(), None);
        std::fs::write(dir.path().join("vpnctl-1T2Z.backup.age"), b"age").unwrap();
        assert_eq!(
            read(dir.path(), "vpnctl-1T2Z.backup.age").unwrap(),
            Some(b"age".to_vec())
        );
    }
}
