//! Errors of the SDK. Domain refusals ([`Error`]) are separate from storage faults
//! ([`StorageError`]) so that a frontend can show the former to a user and log the
//! latter.

use vpnctl_api::{ErrorCode, InvalidInput};

use crate::keys::KeyError;
use crate::model::{InviteId, NodeId, PeerId, UserId};
use crate::time::Timestamp;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a frontend does with an error: the HTTP API maps these to status codes, the
/// bot to a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    NotFound,
    InvalidInput,
    Conflict,
    /// A rule of the service forbids it right now (limit, expiry, state).
    Refused,
    Internal,
}

/// Which kind of record an id names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entity {
    User,
    Node,
    Peer,
    Invite,
    Token,
    Plan,
    Order,
    Payment,
    Broadcast,
}

impl std::fmt::Display for Entity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::User => "user",
            Self::Node => "node",
            Self::Peer => "peer",
            Self::Invite => "invite",
            Self::Token => "token",
            Self::Plan => "plan",
            Self::Order => "order",
            Self::Payment => "payment",
            Self::Broadcast => "broadcast",
        })
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("{entity} {id} not found")]
    NotFound { entity: Entity, id: String },
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("{0}")]
    Conflict(String),
    #[error("address pool of node {node} is exhausted")]
    PoolExhausted { node: NodeId },
    #[error("device limit reached: user {user} may have {limit} device(s)")]
    DeviceLimit { user: UserId, limit: u32 },
    #[error("access of user {user} ended on {until}")]
    AccessExpired { user: UserId, until: Timestamp },
    #[error("user {user} is disabled")]
    UserDisabled { user: UserId },
    #[error("user {user} used up their traffic quota; it resets on {until}")]
    QuotaExhausted { user: UserId, until: Timestamp },
    #[error("invite not found")]
    InviteNotFound,
    #[error("invite {invite} has no uses left")]
    InviteUsedUp { invite: InviteId },
    #[error("invite {invite} expired on {expired}")]
    InviteExpired {
        invite: InviteId,
        expired: Timestamp,
    },
    #[error("invite {invite} was revoked")]
    InviteRevoked { invite: InviteId },
    #[error("node {node} is disabled")]
    NodeDisabled { node: NodeId },
    #[error("node {node} is draining and takes no new peers")]
    NodeDraining { node: NodeId },
    #[error("node {node} has not enrolled yet (no public key)")]
    NodeNotReady { node: NodeId },
    #[error(
        "the private key of peer {peer} is not stored; the config was shown once when it was issued"
    )]
    PrivateKeyUnavailable { peer: PeerId },
    #[error("the join token is unknown, used or expired; create a new one")]
    JoinSecretInvalid,
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::NotFound { .. } | Self::InviteNotFound => ErrorKind::NotFound,
            Self::Invalid { .. } | Self::Key(_) => ErrorKind::InvalidInput,
            Self::Conflict(_) => ErrorKind::Conflict,
            Self::PoolExhausted { .. }
            | Self::DeviceLimit { .. }
            | Self::AccessExpired { .. }
            | Self::UserDisabled { .. }
            | Self::QuotaExhausted { .. }
            | Self::InviteUsedUp { .. }
            | Self::InviteExpired { .. }
            | Self::InviteRevoked { .. }
            | Self::NodeDisabled { .. }
            | Self::NodeDraining { .. }
            | Self::NodeNotReady { .. }
            | Self::PrivateKeyUnavailable { .. }
            | Self::JoinSecretInvalid => ErrorKind::Refused,
            Self::Storage(_) => ErrorKind::Internal,
        }
    }

    /// A stable machine-readable code, e.g. `device_limit`.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::NotFound { .. } => ErrorCode::NotFound,
            Self::Invalid { .. } => ErrorCode::Invalid,
            Self::Key(_) => ErrorCode::MalformedKey,
            Self::Conflict(_) => ErrorCode::Conflict,
            Self::PoolExhausted { .. } => ErrorCode::PoolExhausted,
            Self::DeviceLimit { .. } => ErrorCode::DeviceLimit,
            Self::AccessExpired { .. } => ErrorCode::AccessExpired,
            Self::UserDisabled { .. } => ErrorCode::UserDisabled,
            Self::QuotaExhausted { .. } => ErrorCode::QuotaExhausted,
            Self::InviteNotFound => ErrorCode::InviteNotFound,
            Self::InviteUsedUp { .. } => ErrorCode::InviteUsedUp,
            Self::InviteExpired { .. } => ErrorCode::InviteExpired,
            Self::InviteRevoked { .. } => ErrorCode::InviteRevoked,
            Self::NodeDisabled { .. } => ErrorCode::NodeDisabled,
            Self::NodeDraining { .. } => ErrorCode::NodeDraining,
            Self::NodeNotReady { .. } => ErrorCode::NodeNotReady,
            Self::PrivateKeyUnavailable { .. } => ErrorCode::PrivateKeyUnavailable,
            Self::JoinSecretInvalid => ErrorCode::JoinTokenInvalid,
            Self::Storage(_) => ErrorCode::Internal,
        }
    }

    pub(crate) fn not_found(entity: Entity, id: impl ToString) -> Self {
        Self::NotFound {
            entity,
            id: id.to_string(),
        }
    }

    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            reason: reason.into(),
        }
    }
}

impl From<InvalidInput> for Error {
    fn from(e: InvalidInput) -> Self {
        Self::Invalid {
            field: e.field,
            reason: e.reason,
        }
    }
}

/// The store or its key file failed; nothing the caller asked for was written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    #[error("database: {0}")]
    Database(#[from] redb::Error),
    #[error("the database is already open in another process (only one vpnctld may own it)")]
    AlreadyOpen,
    #[error("corrupt record in table {table}: {reason}")]
    Corrupt { table: &'static str, reason: String },
    #[error(
        "database schema version {found} is newer than this vpnctl understands ({supported}); upgrade vpnctl"
    )]
    SchemaTooNew { found: u64, supported: u64 },
    #[error("key file {path}: {reason}")]
    KeyFile { path: String, reason: String },
    #[error("the key file does not match this database (it was created with another key file)")]
    KeyMismatch,
    #[error("decrypting a stored secret failed (wrong key file or corrupt record)")]
    Decrypt,
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

macro_rules! redb_errors {
    ($($t:ty),*) => {$(
        impl From<$t> for StorageError {
            fn from(e: $t) -> Self {
                Self::Database(e.into())
            }
        }
        impl From<$t> for Error {
            fn from(e: $t) -> Self {
                Self::Storage(e.into())
            }
        }
    )*};
}

redb_errors!(
    redb::StorageError,
    redb::TableError,
    redb::TransactionError,
    redb::CommitError,
    redb::SetDurabilityError
);

impl From<redb::DatabaseError> for StorageError {
    fn from(e: redb::DatabaseError) -> Self {
        match e {
            redb::DatabaseError::DatabaseAlreadyOpen => Self::AlreadyOpen,
            other => Self::Database(other.into()),
        }
    }
}
