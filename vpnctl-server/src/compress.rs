//! gzip of large JSON answers for clients that ask for it (rule in
//! [`vpnctl_api::gzip`]). The answers it compresses (pages, lists) are whole in
//! memory already; compressing runs on the blocking pool. Never compressed: an
//! answer with a secret (the gate marks those `Cache-Control: no-store`; a node's
//! desired state holds its peers' preshared keys next to keys users chose, the
//! setting BREACH guesses secrets in) and anything but a success.

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
    let mut resp = next.run(req).await;
    let headers = resp.headers();
    if !resp.status().is_success()
        || headers.contains_key(header::CONTENT_ENCODING)
        || headers
            .get_all(header::CACHE_CONTROL)
            .iter()
            .any(|v| v.to_str().is_ok_and(|v| v.contains("no-store")))
    {
        return resp;
    }
    let content_type = headers
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
    // What goes out depends on the request's Accept-Encoding, compressed or not.
    resp.headers_mut()
        .append(header::VARY, HeaderValue::from_static("accept-encoding"));
    if !wants {
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
    Response::from_parts(parts, Body::from(packed))
}
