//! Moving in and backing up: `POST /v1/nodes/{id}/import`, `POST /v1/backup` and
//! `GET /v1/backups/{file}`.

use std::time::Duration;

use reqwest::Method;
use vpnctl_api::import::{BackupRequest, ImportReport, ImportRequest};
use vpnctl_api::model::NodeId;
use vpnctl_api::routes;

use crate::client::ApiClient;
use crate::error::ClientError;

/// How long a backup may take to make and download (a large store with a
/// passphrase's scrypt work).
const BACKUP_TIMEOUT: Duration = Duration::from_secs(600);

impl ApiClient {
    /// Imports (or with `dry_run` checks) the clients of an old server into `node`.
    pub async fn import_peers(
        &self,
        node: NodeId,
        request: &ImportRequest,
    ) -> Result<ImportReport, ClientError> {
        self.post(&routes::NODE_IMPORT.path(node), request).await
    }

    /// An encrypted backup of the whole control plane (an age file). Admin only.
    pub async fn backup(&self, request: &BackupRequest) -> Result<Vec<u8>, ClientError> {
        let path = routes::BACKUP.template();
        let req = self
            .request(Method::POST, path)
            .timeout(BACKUP_TIMEOUT)
            .json(request);
        let resp = self.send(path, req).await?;
        let url = self.url(path);
        resp.bytes()
            .await
            .map(|b| b.to_vec())
            .map_err(|e| ClientError::from_reqwest(&url, &e))
    }

    /// A scheduled backup by its file name (as announced to the admins; encrypted).
    /// Admin and bot.
    pub async fn backup_file(&self, name: &str) -> Result<Vec<u8>, ClientError> {
        let path = routes::BACKUP_FILE.path(name);
        let req = self.request(Method::GET, &path).timeout(BACKUP_TIMEOUT);
        let resp = self.send(&path, req).await?;
        let url = self.url(&path);
        resp.bytes()
            .await
            .map(|b| b.to_vec())
            .map_err(|e| ClientError::from_reqwest(&url, &e))
    }
}
