//! gzip of large JSON answers for clients that ask for it (rule in
//! [`vpnctl_api::gzip`]). The answers it compresses (pages, lists) are whole in
//! memory already; compressing runs on the blocking pool.

use axum::body::{Body, HttpBody};
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use vpnctl_api::gzip;

use crate::error::ApiFailure;

pub async fn gzip_large_json(req: Request, next: Next) -> Response {
    let wants = req
        .headers()
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .any(|v| v.to_str().is_ok_and(gzip::accepts));
    let resp = next.run(req).await;
    if !wants || resp.headers().contains_key(header::CONTENT_ENCODING) {
        return resp;
    }
    let content_type = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    // Only a body whose length is known: one already in memory, not a stream.
    let Some(len) = resp.body().size_hint().exact() else {
        return resp;
    };
    if !gzip::worth_compressing(content_type, len) {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(bytes) => bytes,
        Err(e) => return ApiFailure::internal(&e).into_response(),
    };
    let packed = match tokio::task::spawn_blocking(move || gzip::gzip(&bytes)).await {
        Ok(packed) => packed,
        Err(e) => return ApiFailure::internal(&e).into_response(),
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_ENCODING,
        HeaderValue::from_static(gzip::ENCODING),
    );
    parts
        .headers
        .append(header::VARY, HeaderValue::from_static("accept-encoding"));
    Response::from_parts(parts, Body::from(packed))
}
