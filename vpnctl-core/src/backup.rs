//! Backups: an online, consistent snapshot of the whole store, encrypted with `age`
//! (a passphrase through scrypt, or an X25519 recipient key), and its restore into a
//! new data directory.
//!
//! A backup is one age file. Inside the encryption (and only there):
//!
//! ```text
//! "vpnctl backup\n" format(u32) created_at(i64) schema_version(u64) vault_key[32]
//! files:  count(u32) { name_len(u16) name len(u32) bytes }      e.g. tls.crt, tls.key
//! tables: count(u32) { name_len(u16) name rows(u64) { klen(u32) key vlen(u32) value } }
//! "end\n"
//! ```
//!
//! The tables are [`Store::dump`](crate::store::Store::dump): every row of every table
//! as redb stores it, read in one read transaction while writers go on. A restore
//! writes exactly these bytes into a new database, so users, peers, invites, tokens,
//! nodes, their revisions and change logs are identical and nodes continue with
//! deltas. The vault key travels inside the encryption; without it the sealed keys
//! in the tables could not be opened.
//!
//! Integers are little-endian. age authenticates every 64 KiB chunk and the end of
//! the stream, so a truncated or altered file is refused before anything is written;
//! a restore writes into a staging directory and renames it into place at the end.

use std::fmt;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use age::secrecy::{ExposeSecret as _, SecretString};
use zeroize::Zeroizing;

use crate::error::StorageError;
use crate::keys::KEY_LEN;
use crate::service::{DB_FILE, VAULT_FILE, Vpnctl};
use crate::store::{Dump, Store, TableDump};
use crate::time::Timestamp;
use crate::vault::Vault;

const MAGIC: &[u8] = b"vpnctl backup\n";
const FORMAT: u32 = 1;
const END: &[u8] = b"end\n";
/// Longest scrypt work factor a restore accepts (2^22: ~16 s, 4 GiB would be 2^25).
const MAX_WORK_FACTOR: u8 = 22;

/// Why a backup could not be made or restored. The messages say what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    #[error("this is not a vpnctl backup (not an age file)")]
    NotABackup,
    #[error("the backup is truncated or was altered: refusing it")]
    Damaged,
    #[error(
        "the passphrase does not open this backup (or its header was altered): nothing was written"
    )]
    WrongPassphrase,
    #[error("the identity does not open this backup (it was encrypted to another key)")]
    WrongIdentity,
    #[error("this backup is encrypted with a passphrase: restore it with --passphrase-file")]
    NeedsPassphrase,
    #[error("this backup is encrypted to a key: restore it with --identity FILE")]
    NeedsIdentity,
    #[error("its scrypt work factor 2^{0} is more than this build accepts (2^{MAX_WORK_FACTOR})")]
    TooMuchWork(u8),
    #[error("the backup decrypts but its contents are malformed: {0}")]
    Malformed(String),
    #[error("{} is not empty: restore into a new data directory", .0.display())]
    NotEmpty(PathBuf),
    #[error("not an age recipient (age1...): {0}")]
    BadRecipient(String),
    #[error("no age identity (AGE-SECRET-KEY-1...) in {0}")]
    BadIdentity(String),
    #[error("an empty passphrase")]
    EmptyPassphrase,
    #[error("encrypting: {0}")]
    Encrypt(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl From<crate::error::Error> for BackupError {
    fn from(e: crate::error::Error) -> Self {
        match e {
            crate::error::Error::Storage(s) => Self::Storage(s),
            other => Self::Io(std::io::Error::other(other.to_string())),
        }
    }
}

/// How a backup is encrypted.
pub enum BackupKey {
    /// A passphrase (age's scrypt recipient). `work_factor`: scrypt's log2(N);
    /// `None` lets age pick ~1 s of work on this machine.
    Passphrase {
        passphrase: SecretString,
        work_factor: Option<u8>,
    },
    /// An X25519 recipient (`age1...`): only its identity file opens the backup.
    Recipient(age::x25519::Recipient),
}

impl fmt::Debug for BackupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Passphrase { .. } => f.write_str("BackupKey::Passphrase(***)"),
            Self::Recipient(r) => write!(f, "BackupKey::Recipient({r})"),
        }
    }
}

impl BackupKey {
    /// A recipient from its `age1...` text.
    pub fn recipient(text: &str) -> Result<Self, BackupError> {
        age::x25519::Recipient::from_str(text.trim())
            .map(Self::Recipient)
            .map_err(|e| BackupError::BadRecipient(e.to_string()))
    }

    /// A passphrase with age's default work factor.
    pub fn passphrase(passphrase: &str) -> Result<Self, BackupError> {
        if passphrase.is_empty() {
            return Err(BackupError::EmptyPassphrase);
        }
        Ok(Self::Passphrase {
            passphrase: SecretString::from(passphrase.to_owned()),
            work_factor: None,
        })
    }
}

/// What opens a backup.
pub enum RestoreKey {
    Passphrase(SecretString),
    Identity(age::x25519::Identity),
}

impl fmt::Debug for RestoreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Passphrase(_) => "RestoreKey::Passphrase(***)",
            Self::Identity(_) => "RestoreKey::Identity(***)",
        })
    }
}

impl RestoreKey {
    pub fn passphrase(passphrase: &str) -> Self {
        Self::Passphrase(SecretString::from(passphrase.to_owned()))
    }

    /// The first `AGE-SECRET-KEY-1...` line of an identity file (as `age-keygen` and
    /// `vpnctl backup-key` write them; `#` lines are comments).
    pub fn identity_file(text: &str, path: &str) -> Result<Self, BackupError> {
        text.lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'))
            .and_then(|l| age::x25519::Identity::from_str(l).ok())
            .map(Self::Identity)
            .ok_or_else(|| BackupError::BadIdentity(path.to_owned()))
    }
}

/// A passphrase file's passphrase: its first line, without the line end.
pub fn passphrase_from_file_text(text: &str) -> Result<String, BackupError> {
    let line = text.lines().next().unwrap_or("").trim_end_matches('\r');
    if line.is_empty() {
        return Err(BackupError::EmptyPassphrase);
    }
    Ok(line.to_owned())
}

/// A new X25519 identity: the identity file's text (secret; write it 0600) and the
/// recipient (`age1...`, public) that backups are encrypted to.
pub fn generate_identity(now: Timestamp) -> (Zeroizing<String>, String) {
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    let text = Zeroizing::new(format!(
        "# created: {}\n# public key: {recipient}\n{}\n",
        now.to_rfc3339(),
        identity.to_string().expose_secret()
    ));
    (text, recipient)
}

/// A decrypted backup.
pub struct Contents {
    pub created_at: Timestamp,
    vault_key: Zeroizing<[u8; KEY_LEN]>,
    /// Files of the data directory besides the store (TLS certificate and key, the
    /// settings file).
    pub files: Vec<(String, Zeroizing<Vec<u8>>)>,
    pub dump: Dump,
}

impl fmt::Debug for Contents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Contents")
            .field("created_at", &self.created_at)
            .field(
                "files",
                &self.files.iter().map(|f| &f.0).collect::<Vec<_>>(),
            )
            .field("tables", &self.dump.tables.len())
            .field("rows", &self.dump.rows())
            .finish_non_exhaustive()
    }
}

/// What a restore wrote.
#[derive(Debug, Clone)]
pub struct Restored {
    pub created_at: Timestamp,
    pub tables: usize,
    pub rows: usize,
    pub files: Vec<String>,
}

impl Vpnctl {
    /// Every table as stored, from one read transaction (writers go on meanwhile).
    pub fn dump(&self) -> Result<Dump, StorageError> {
        self.store().dump()
    }

    /// A consistent snapshot of the store, with the vault key and `files` (name,
    /// bytes: what else of the data directory a restore needs), encrypted to `key`.
    /// Runs beside the writers: it holds one read transaction, never the write lock.
    pub fn backup(
        &self,
        key: &BackupKey,
        files: &[(String, Vec<u8>)],
    ) -> Result<Vec<u8>, BackupError> {
        let dump = self.dump()?;
        let mut plain = Zeroizing::new(Vec::with_capacity(dump_size(&dump) + 1024));
        encode(
            &mut plain,
            self.now(),
            &self.store().vault().export_key(),
            files,
            &dump,
        );
        drop(dump);
        encrypt(key, &plain)
    }
}

fn dump_size(dump: &Dump) -> usize {
    dump.tables
        .iter()
        .flat_map(|t| &t.rows)
        .map(|(k, v)| k.len() + v.len() + 8)
        .sum()
}

fn encode(
    out: &mut Vec<u8>,
    created_at: Timestamp,
    vault_key: &[u8; KEY_LEN],
    files: &[(String, Vec<u8>)],
    dump: &Dump,
) {
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT.to_le_bytes());
    out.extend_from_slice(&created_at.0.to_le_bytes());
    out.extend_from_slice(&dump.schema_version.to_le_bytes());
    out.extend_from_slice(vault_key);
    out.extend_from_slice(&len32(files.len()).to_le_bytes());
    for (name, bytes) in files {
        put_name(out, name);
        out.extend_from_slice(&len32(bytes.len()).to_le_bytes());
        out.extend_from_slice(bytes);
    }
    out.extend_from_slice(&len32(dump.tables.len()).to_le_bytes());
    for table in &dump.tables {
        put_name(out, &table.name);
        out.extend_from_slice(&(table.rows.len() as u64).to_le_bytes());
        for (k, v) in &table.rows {
            out.extend_from_slice(&len32(k.len()).to_le_bytes());
            out.extend_from_slice(k);
            out.extend_from_slice(&len32(v.len()).to_le_bytes());
            out.extend_from_slice(v);
        }
    }
    out.extend_from_slice(END);
}

fn len32(n: usize) -> u32 {
    u32::try_from(n).expect("a row, file or table count fits in u32")
}

fn put_name(out: &mut Vec<u8>, name: &str) {
    let len = u16::try_from(name.len()).expect("names are short");
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(name.as_bytes());
}

fn encrypt(key: &BackupKey, plain: &[u8]) -> Result<Vec<u8>, BackupError> {
    let encryptor = match key {
        BackupKey::Passphrase {
            passphrase,
            work_factor,
        } => {
            let mut recipient = age::scrypt::Recipient::new(passphrase.clone());
            if let Some(log_n) = work_factor {
                recipient.set_work_factor(*log_n);
            }
            age::Encryptor::with_recipients(std::iter::once(&recipient as &dyn age::Recipient))
        }
        BackupKey::Recipient(r) => {
            age::Encryptor::with_recipients(std::iter::once(r as &dyn age::Recipient))
        }
    }
    .map_err(|e| BackupError::Encrypt(e.to_string()))?;
    let mut out = Vec::with_capacity(plain.len() + plain.len() / 1000 + 512);
    let mut writer = encryptor.wrap_output(&mut out)?;
    writer.write_all(plain)?;
    writer.finish()?;
    Ok(out)
}

/// Decrypts and checks a backup; nothing is written.
pub fn open(blob: &[u8], key: &RestoreKey) -> Result<Contents, BackupError> {
    let decryptor = age::Decryptor::new_buffered(blob).map_err(|e| match e {
        age::DecryptError::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            if blob.starts_with(b"age-encryption.org/") {
                BackupError::Damaged
            } else {
                BackupError::NotABackup
            }
        }
        age::DecryptError::InvalidHeader | age::DecryptError::UnknownFormat => {
            if blob.starts_with(b"age-encryption.org/") {
                BackupError::Damaged
            } else {
                BackupError::NotABackup
            }
        }
        _ => BackupError::Damaged,
    })?;
    let scrypt = decryptor.is_scrypt();
    let reader = match key {
        RestoreKey::Passphrase(p) => {
            if !scrypt {
                return Err(BackupError::NeedsIdentity);
            }
            let mut identity = age::scrypt::Identity::new(p.clone());
            identity.set_max_work_factor(MAX_WORK_FACTOR);
            decryptor.decrypt(std::iter::once(&identity as &dyn age::Identity))
        }
        RestoreKey::Identity(identity) => {
            if scrypt {
                return Err(BackupError::NeedsPassphrase);
            }
            decryptor.decrypt(std::iter::once(identity as &dyn age::Identity))
        }
    };
    let mut reader = reader.map_err(|e| match (e, key) {
        (age::DecryptError::ExcessiveWork { required, .. }, _) => {
            BackupError::TooMuchWork(required)
        }
        (
            age::DecryptError::NoMatchingKeys
            | age::DecryptError::KeyDecryptionFailed
            | age::DecryptError::DecryptionFailed
            | age::DecryptError::InvalidMac,
            RestoreKey::Passphrase(_),
        ) => BackupError::WrongPassphrase,
        (age::DecryptError::NoMatchingKeys, RestoreKey::Identity(_)) => BackupError::WrongIdentity,
        _ => BackupError::Damaged,
    })?;
    let mut plain = Zeroizing::new(Vec::new());
    reader
        .read_to_end(&mut plain)
        .map_err(|_| BackupError::Damaged)?;
    decode(&plain)
}

/// A cursor over the plaintext that fails with [`BackupError::Malformed`].
struct Cursor<'a> {
    bytes: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], BackupError> {
        if self.bytes.len() < n {
            return Err(BackupError::Malformed(format!("it ends inside {what}")));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], BackupError> {
        Ok(self.take(N, what)?.try_into().expect("took N bytes"))
    }

    fn u16(&mut self, what: &str) -> Result<usize, BackupError> {
        Ok(usize::from(u16::from_le_bytes(self.array(what)?)))
    }

    fn u32(&mut self, what: &str) -> Result<usize, BackupError> {
        Ok(u32::from_le_bytes(self.array(what)?) as usize)
    }

    fn u64(&mut self, what: &str) -> Result<u64, BackupError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    fn name(&mut self, what: &str) -> Result<String, BackupError> {
        let len = self.u16(what)?;
        String::from_utf8(self.take(len, what)?.to_vec())
            .map_err(|_| BackupError::Malformed(format!("{what} is not UTF-8")))
    }
}

fn decode(plain: &[u8]) -> Result<Contents, BackupError> {
    let mut c = Cursor { bytes: plain };
    if c.take(MAGIC.len(), "the header")? != MAGIC {
        return Err(BackupError::Malformed("it is not a vpnctl backup".into()));
    }
    let format = c.u32("the header")?;
    if format != FORMAT as usize {
        return Err(BackupError::Malformed(format!(
            "backup format {format}; this build reads {FORMAT}"
        )));
    }
    let created_at = Timestamp(i64::from_le_bytes(c.array("the header")?));
    let schema_version = c.u64("the header")?;
    let vault_key = Zeroizing::new(c.array::<KEY_LEN>("the header")?);
    let mut files = Vec::new();
    for _ in 0..c.u32("the file list")? {
        let name = c.name("a file name")?;
        if name.contains('/') || name.starts_with('.') || name == DB_FILE || name == VAULT_FILE {
            return Err(BackupError::Malformed(format!("a file named {name:?}")));
        }
        let len = c.u32("a file")?;
        files.push((name, Zeroizing::new(c.take(len, "a file")?.to_vec())));
    }
    let mut tables = Vec::new();
    for _ in 0..c.u32("the table list")? {
        let name = c.name("a table name")?;
        let count = c.u64("a table")?;
        let mut rows = Vec::with_capacity(usize::try_from(count.min(1 << 20)).unwrap_or(0));
        for _ in 0..count {
            let klen = c.u32("a row")?;
            let k = c.take(klen, "a row")?.to_vec();
            let vlen = c.u32("a row")?;
            let v = c.take(vlen, "a row")?.to_vec();
            rows.push((k, v));
        }
        tables.push(TableDump { name, rows });
    }
    if c.take(END.len(), "the end marker")? != END || !c.bytes.is_empty() {
        return Err(BackupError::Malformed(
            "no end marker where it belongs".into(),
        ));
    }
    Ok(Contents {
        created_at,
        vault_key,
        files,
        dump: Dump {
            schema_version,
            tables,
        },
    })
}

/// Restores a backup into `dir`, which must not exist or be empty: decrypts and
/// checks everything first, writes a staging directory beside it (key file, store,
/// files), and renames that into place, so a failure leaves nothing behind.
pub fn restore(blob: &[u8], key: &RestoreKey, dir: &Path) -> Result<Restored, BackupError> {
    let contents = open(blob, key)?;
    restore_contents(&contents, dir)
}

/// [`restore`] of already opened contents.
pub fn restore_contents(contents: &Contents, dir: &Path) -> Result<Restored, BackupError> {
    if let Ok(mut entries) = fs::read_dir(dir)
        && entries.next().is_some()
    {
        return Err(BackupError::NotEmpty(dir.to_owned()));
    }
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&parent)?;
    let name = dir
        .file_name()
        .map_or_else(|| "data".into(), |n| n.to_string_lossy().into_owned());
    let staging = parent.join(format!(".{name}.restoring-{}", std::process::id()));
    let _ = fs::remove_dir_all(&staging);
    let result = write_staging(contents, &staging).and_then(|r| {
        fs::rename(&staging, dir)?;
        fs::File::open(&parent)?.sync_all()?;
        Ok(r)
    });
    if result.is_err() {
        let _ = fs::remove_dir_all(&staging);
    }
    result
}

fn write_staging(contents: &Contents, staging: &Path) -> Result<Restored, BackupError> {
    fs::DirBuilder::new().mode(0o700).create(staging)?;
    let vault = Vault::create_with_key(&staging.join(VAULT_FILE), &contents.vault_key)?;
    let store = Store::restore(&staging.join(DB_FILE), vault, &contents.dump)?;
    drop(store);
    for (name, bytes) in &contents.files {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(staging.join(name))?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    fs::File::open(staging)?.sync_all()?;
    Ok(Restored {
        created_at: contents.created_at,
        tables: contents.dump.tables.len(),
        rows: contents.dump.rows(),
        files: contents.files.iter().map(|(n, _)| n.clone()).collect(),
    })
}

/// Writes `bytes` to `path` atomically (temp file in the same directory, fsync,
/// rename), mode 0600: a backup file is never seen half-written.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map_or_else(|| "backup".into(), |n| n.to_string_lossy());
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let _ = fs::remove_file(&tmp);
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        fs::File::open(dir)?.sync_all()
    };
    write().inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let dump = Dump {
            schema_version: 2,
            tables: vec![TableDump {
                name: "users".into(),
                rows: vec![(vec![1, 2], vec![3, 4, 5])],
            }],
        };
        let mut out = Vec::new();
        encode(
            &mut out,
            Timestamp(1_800_000_000),
            &[7; KEY_LEN],
            &[("tls.crt".into(), b"cert".to_vec())],
            &dump,
        );
        out
    }

    #[test]
    fn plaintext_round_trips_and_every_cut_is_refused() {
        let plain = sample();
        let back = decode(&plain).unwrap();
        assert_eq!(back.created_at, Timestamp(1_800_000_000));
        assert_eq!(*back.vault_key, [7; KEY_LEN]);
        assert_eq!(back.files[0].0, "tls.crt");
        assert_eq!(back.dump.rows(), 1);
        for cut in 0..plain.len() {
            assert!(
                matches!(decode(&plain[..cut]), Err(BackupError::Malformed(_))),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn wrong_keys_truncation_and_tampering_are_told_apart() {
        let plain = sample();
        let key = BackupKey::Passphrase {
            passphrase: SecretString::from("correct horse".to_owned()),
            work_factor: Some(10),
        };
        let blob = encrypt(&key, &plain).unwrap();
        assert_eq!(
            open(&blob, &RestoreKey::passphrase("correct horse"))
                .unwrap()
                .dump
                .rows(),
            1
        );
        let err = |blob: &[u8], key: &RestoreKey| open(blob, key).unwrap_err();
        assert!(matches!(
            err(&blob, &RestoreKey::passphrase("wrong")),
            BackupError::WrongPassphrase
        ));
        let identity = age::x25519::Identity::generate();
        assert!(matches!(
            err(&blob, &RestoreKey::Identity(identity.clone())),
            BackupError::NeedsPassphrase
        ));
        assert!(matches!(
            err(
                &blob[..blob.len() - 1],
                &RestoreKey::passphrase("correct horse")
            ),
            BackupError::Damaged
        ));
        let mut tampered = blob.clone();
        let last = tampered.len() - 20;
        tampered[last] ^= 1;
        assert!(matches!(
            err(&tampered, &RestoreKey::passphrase("correct horse")),
            BackupError::Damaged
        ));
        assert!(matches!(
            err(b"hello", &RestoreKey::passphrase("x")),
            BackupError::NotABackup
        ));

        let to_key = encrypt(&BackupKey::Recipient(identity.to_public()), &plain).unwrap();
        assert!(open(&to_key, &RestoreKey::Identity(identity)).is_ok());
        assert!(matches!(
            err(
                &to_key,
                &RestoreKey::Identity(age::x25519::Identity::generate())
            ),
            BackupError::WrongIdentity
        ));
        assert!(matches!(
            err(&to_key, &RestoreKey::passphrase("x")),
            BackupError::NeedsIdentity
        ));
    }

    #[test]
    fn generated_identities_parse_back() {
        let (text, recipient) = generate_identity(Timestamp(1_800_000_000));
        assert!(recipient.starts_with("age1"));
        assert!(text.contains(&recipient));
        let RestoreKey::Identity(id) = RestoreKey::identity_file(&text, "f").unwrap() else {
            panic!("an identity");
        };
        assert_eq!(id.to_public().to_string(), recipient);
        assert!(BackupKey::recipient(&recipient).is_ok());
        assert!(BackupKey::recipient("age1nope").is_err());
        assert!(format!("{:?}", RestoreKey::identity_file(&text, "f").unwrap()).contains("***"));
    }
}
