//! The control plane over HTTP(S), as the binary uses it: [`enroller`] serves `join`
//! and [`connect`] makes the [`ControlPlane`] of `run` from the stored credentials.
//! Both go through `vpnctl-client`, which pins the control plane's certificate
//! fingerprint carried by the join token (no CA is trusted).

use std::time::Duration;

use vpnctl_client::{ApiClient, ClientError, Fingerprint, JoinToken};
use vpnctl_core::Secret;
use vpnctl_core::keys::PublicKey;
use vpnctl_core::model::NodeId;
use vpnctl_core::wire::{DesiredUpdate, NodeReport};

use crate::agent::{ControlPlane, CpError};
use crate::cli::Enroller;
use crate::state_dir::{Credentials, Token};

/// The control plane of one enrolled node.
#[derive(Debug, Clone)]
pub struct Http {
    client: ApiClient,
    node: NodeId,
}

/// Enrolls over HTTP(S) with a `vpnctl-join:` token.
#[derive(Debug, Clone, Copy, Default)]
pub struct HttpEnroller;

/// The enroller for `join`.
pub fn enroller() -> HttpEnroller {
    HttpEnroller
}

impl Http {
    /// The control plane of `node`, over a client that holds the node's own token
    /// (the demo's simulated nodes use this too).
    pub fn new(client: ApiClient, node: NodeId) -> Self {
        Self { client, node }
    }
}

/// The control plane for `run`, from the credentials `join` stored.
pub fn connect(credentials: &Credentials) -> Result<Http, CpError> {
    let pin = if credentials.fingerprint.is_empty() {
        None
    } else {
        Some(
            credentials
                .fingerprint
                .parse::<Fingerprint>()
                .map_err(|e| CpError::Other(format!("stored fingerprint: {e}")))?,
        )
    };
    let token = Secret::new(credentials.token.expose().to_owned());
    let client = ApiClient::new(&credentials.api_url, Some(token), pin).map_err(cp_error)?;
    Ok(Http::new(client, credentials.node_id))
}

fn cp_error(e: ClientError) -> CpError {
    match e {
        ClientError::Api { status, error } => CpError::Rejected {
            status,
            message: format!("{} [{}]", error.message, error.code),
        },
        e @ (ClientError::Unreachable { .. } | ClientError::Timeout { .. }) => {
            CpError::Unreachable(e.to_string())
        }
        // A pin mismatch or TLS failure may be a man in the middle or a moved server:
        // the node keeps serving (fail static) and keeps retrying.
        e @ (ClientError::PinMismatch { .. } | ClientError::Tls { .. }) => {
            CpError::Unreachable(e.to_string())
        }
        e => CpError::Other(e.to_string()),
    }
}

impl Enroller for HttpEnroller {
    async fn enroll(
        &self,
        join_token: &Token,
        public_key: PublicKey,
        listen_port: Option<u16>,
    ) -> Result<Credentials, CpError> {
        let join = JoinToken::parse(join_token.expose())
            .map_err(|e| CpError::Other(format!("join token: {e}")))?;
        let client = ApiClient::for_join_token(&join).map_err(cp_error)?;
        let (node, token) = client
            .enroll(&join, public_key, listen_port)
            .await
            .map_err(cp_error)?;
        Ok(Credentials {
            api_url: join.url.clone(),
            fingerprint: join.fingerprint.map(|f| f.to_hex()).unwrap_or_default(),
            node_id: node.id,
            token: Token::new(token.expose()),
        })
    }
}

impl ControlPlane for Http {
    async fn desired(&self, after: u64, wait: Duration) -> Result<DesiredUpdate, CpError> {
        self.client
            .desired(self.node, after, wait)
            .await
            .map_err(cp_error)
    }

    async fn report(&self, report: NodeReport) -> Result<(), CpError> {
        self.client
            .report(self.node, &report)
            .await
            .map_err(cp_error)
    }
}
