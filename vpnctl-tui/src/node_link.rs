//! The node agent's view of the control plane, over the HTTP API client: how the
//! demo's simulated nodes talk to the embedded vpnctld exactly as real nodes do.

use std::time::Duration;

use vpnctl_client::{ApiClient, ClientError};
use vpnctl_core::NodeId;
use vpnctl_core::wire::{DesiredUpdate, NodeReport};
use vpnctl_node::agent::{ControlPlane, CpError};

/// One enrolled node's connection: a client holding the node's own token.
#[derive(Debug, Clone)]
pub struct ApiControlPlane {
    client: ApiClient,
    node: NodeId,
}

impl ApiControlPlane {
    pub fn new(client: ApiClient, node: NodeId) -> Self {
        Self { client, node }
    }
}

fn cp_error(e: ClientError) -> CpError {
    match e {
        ClientError::Api { status, error } => CpError::Rejected {
            status,
            message: format!("{} [{}]", error.message, error.code),
        },
        e @ (ClientError::Unreachable { .. }
        | ClientError::Timeout { .. }
        | ClientError::PinMismatch { .. }
        | ClientError::Tls { .. }) => CpError::Unreachable(e.to_string()),
        e => CpError::Other(e.to_string()),
    }
}

impl ControlPlane for ApiControlPlane {
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
