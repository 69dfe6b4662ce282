//! The routes of moving in and backing up, kept apart from `routes.rs`:
//! `POST /v1/nodes/{id}/import` (admin: an old server's clients become the node's
//! peers, or a dry run says what would happen) and `POST /v1/backup` (admin: an
//! encrypted snapshot, answered with `Cache-Control: no-store`), and `GET
//! /v1/backups/{file}` (admin, bot: a scheduled backup, which the bot sends to the
//! admins' chat; it is encrypted to the admin's key or passphrase, never the bot's).

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Extension, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use vpnctl_api::ErrorCode;
use vpnctl_api::import::{BackupRequest, ImportReport, ImportRequest};
use vpnctl_api::routes;
use vpnctl_core::NodeId;
use vpnctl_core::backup::BackupKey;

use crate::error::{ApiFailure, blocking};
use crate::extract::{Admin, Json, Path, Staff};
use crate::state::AppState;

/// An import carries one entry per client (~400 bytes): 16 MiB is ~40,000 clients.
pub const IMPORT_BODY_LIMIT: usize = 16 * 1024 * 1024;

/// The data directory, for the files a backup carries besides the store.
#[derive(Debug, Clone)]
struct DataDir(Arc<PathBuf>);

/// The scheduled backups' directory, when they are on.
#[derive(Debug, Clone)]
struct BackupDir(Option<Arc<PathBuf>>);

/// These routes over `state`, reading TLS material from `data` and scheduled
/// backups from `backup_dir`.
pub fn router(state: AppState, data: PathBuf, backup_dir: Option<PathBuf>) -> Router {
    Router::new()
        .route(routes::NODE_IMPORT.template(), post(import))
        .route(routes::BACKUP.template(), post(backup))
        .route(routes::BACKUP_FILE.template(), get(backup_file))
        .layer(DefaultBodyLimit::max(IMPORT_BODY_LIMIT))
        .layer(Extension(DataDir(Arc::new(data))))
        .layer(Extension(BackupDir(backup_dir.map(Arc::new))))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::gate::gate,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::metrics::track,
        ))
        .with_state(state)
}

async fn import(
    Admin(caller): Admin,
    State(st): State<AppState>,
    Path(id): Path<NodeId>,
    Json(body): Json<ImportRequest>,
) -> Result<Json<ImportReport>, ApiFailure> {
    let vpn = caller.vpn(&st);
    Ok(Json(blocking(move || vpn.import_peers(id, &body)).await?))
}

async fn backup(
    _: Admin,
    State(st): State<AppState>,
    Extension(DataDir(data)): Extension<DataDir>,
    Json(mut body): Json<BackupRequest>,
) -> Result<Response, ApiFailure> {
    let key = match (body.recipient.take(), body.passphrase.take()) {
        (Some(recipient), None) => BackupKey::recipient(&recipient),
        (None, Some(mut passphrase)) => {
            let key = BackupKey::passphrase(&passphrase);
            zeroize::Zeroize::zeroize(&mut passphrase);
            key
        }
        _ => {
            return Err(ApiFailure::invalid(
                "give exactly one of \"recipient\" (age1...) and \"passphrase\"",
            ));
        }
    }
    .map_err(|e| ApiFailure::invalid(e.to_string()))?;
    let vpn = st.vpn().clone();
    let made = tokio::task::spawn_blocking(move || crate::backups::make(&vpn, &data, &key))
        .await
        .map_err(|e| ApiFailure::internal(&e))?;
    let (name, blob) = made.map_err(|e| ApiFailure::internal(&e))?;
    Ok(attachment(&name, blob))
}

async fn backup_file(
    _: Staff,
    Extension(BackupDir(dir)): Extension<BackupDir>,
    Path(name): Path<String>,
) -> Result<Response, ApiFailure> {
    let not_found =
        || ApiFailure::not_found(ErrorCode::NotFound, format!("no scheduled backup {name:?}"));
    let Some(dir) = dir else {
        return Err(not_found());
    };
    let file = name.clone();
    let read = tokio::task::spawn_blocking(move || crate::backups::read(&dir, &file))
        .await
        .map_err(|e| ApiFailure::internal(&e))?
        .map_err(|e| ApiFailure::internal(&e))?;
    let Some(blob) = read else {
        return Err(not_found());
    };
    Ok(attachment(&name, blob))
}

/// An encrypted backup as a download that no cache keeps.
fn attachment(name: &str, blob: Vec<u8>) -> Response {
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{name}\""))
        .unwrap_or_else(|_| HeaderValue::from_static("attachment"));
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        blob,
    )
        .into_response()
}
