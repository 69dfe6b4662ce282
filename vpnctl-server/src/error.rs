//! Errors at the HTTP boundary: every failure becomes a JSON [`ApiError`] with a
//! status code, and server faults are logged, not shown.
//!
//! Core errors map by kind: NotFound → 404, InvalidInput → 422, Conflict → 409,
//! Refused (a rule of the service forbids it now: device limit, expiry, node state…)
//! → 409, except an unknown/used/expired join secret → 403, Internal → 500 with a
//! generic message. Malformed requests (bad JSON, wrong types, bad paths or queries,
//! oversized bodies) get axum's 4xx status with a JSON body instead of plain text.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use vpnctl_api::{ApiError, ErrorCode};
use vpnctl_core::ErrorKind;

/// A failed request: status plus the [`ApiError`] body.
#[derive(Debug)]
pub struct ApiFailure {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: String,
}

impl ApiFailure {
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn unauthorized(message: &str) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, ErrorCode::Forbidden, message)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorCode::BadRequest, message)
    }

    /// A well-formed request whose values are refused (422).
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::Invalid,
            message,
        )
    }

    pub fn not_found(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    /// A server fault: logs `detail` and answers with a generic message.
    pub fn internal(detail: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            "internal error; see the server log",
        )
    }

    fn from_rejection(status: StatusCode, code: ErrorCode, text: String) -> Self {
        if status.is_server_error() {
            return Self::internal(&text);
        }
        Self::new(status, code, text)
    }
}

impl From<vpnctl_core::Error> for ApiFailure {
    fn from(e: vpnctl_core::Error) -> Self {
        let status = match e.kind() {
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::InvalidInput => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::Refused if matches!(e, vpnctl_core::Error::JoinSecretInvalid) => {
                StatusCode::FORBIDDEN
            }
            ErrorKind::Refused => StatusCode::CONFLICT,
            ErrorKind::Internal => return Self::internal(&e),
        };
        Self {
            status,
            code: e.code(),
            message: e.to_string(),
        }
    }
}

impl From<vpnctl_api::InvalidInput> for ApiFailure {
    fn from(e: vpnctl_api::InvalidInput) -> Self {
        vpnctl_core::Error::from(e).into()
    }
}

impl From<JsonRejection> for ApiFailure {
    fn from(r: JsonRejection) -> Self {
        let code = match &r {
            JsonRejection::JsonSyntaxError(_) => ErrorCode::BadRequest,
            JsonRejection::JsonDataError(_) => ErrorCode::Invalid,
            JsonRejection::MissingJsonContentType(_) => ErrorCode::UnsupportedMediaType,
            _ if r.status() == StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::PayloadTooLarge,
            _ => ErrorCode::BadRequest,
        };
        Self::from_rejection(r.status(), code, r.body_text())
    }
}

impl From<QueryRejection> for ApiFailure {
    fn from(r: QueryRejection) -> Self {
        Self::from_rejection(r.status(), ErrorCode::BadRequest, r.body_text())
    }
}

impl From<PathRejection> for ApiFailure {
    fn from(r: PathRejection) -> Self {
        // A path that does not parse names nothing that exists.
        let status = match r.status() {
            s if s.is_server_error() => s,
            _ => StatusCode::BAD_REQUEST,
        };
        Self::from_rejection(status, ErrorCode::BadRequest, r.body_text())
    }
}

impl IntoResponse for ApiFailure {
    fn into_response(self) -> Response {
        let unauthorized = self.status == StatusCode::UNAUTHORIZED;
        let body = ApiError::new(self.code, self.message);
        let mut response = (self.status, axum::Json(body)).into_response();
        if unauthorized {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// Runs a blocking core call on the blocking pool and maps its error.
pub async fn blocking<T, F>(f: F) -> Result<T, ApiFailure>
where
    T: Send + 'static,
    F: FnOnce() -> vpnctl_core::Result<T> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result.map_err(ApiFailure::from),
        Err(join) => Err(ApiFailure::internal(&join)),
    }
}
