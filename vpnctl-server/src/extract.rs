//! axum's extractors with JSON rejections, and the authenticated caller.

use axum::extract::{FromRequest, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use vpnctl_core::auth::{ApiToken, Scope};
use vpnctl_core::{Actor, NodeId, Vpnctl};
use zeroize::Zeroizing;

use crate::error::{ApiFailure, blocking};
use crate::state::AppState;

/// `axum::Json` whose rejections are JSON [`ApiFailure`]s.
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiFailure))]
pub struct Json<T>(pub T);

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// `axum::extract::Query` with JSON rejections.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiFailure))]
pub struct Query<T>(pub T);

/// `axum::extract::Path` with JSON rejections.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiFailure))]
pub struct Path<T>(pub T);

/// Who is calling: the API token behind the `Authorization: Bearer vpt_...` header.
#[derive(Debug, Clone)]
pub struct Caller {
    pub token: ApiToken,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiFailure;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiFailure> {
        // The gate authenticated the request already.
        if let Some(caller) = parts.extensions.get::<Self>() {
            return Ok(caller.clone());
        }
        Self::authenticate(&parts.headers, state).await
    }
}

impl Caller {
    /// The caller behind the `Authorization: Bearer` header, or 401.
    pub async fn authenticate(headers: &HeaderMap, state: &AppState) -> Result<Self, ApiFailure> {
        let header = headers
            .get(AUTHORIZATION)
            .ok_or_else(|| ApiFailure::unauthorized("missing Authorization: Bearer token"))?;
        let secret = header
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|s| Zeroizing::new(s.trim().to_owned()))
            .ok_or_else(|| ApiFailure::unauthorized("expected Authorization: Bearer vpt_..."))?;
        let vpn = state.vpn().clone();
        let token = blocking(move || vpn.authenticate(&secret))
            .await?
            .ok_or_else(|| ApiFailure::unauthorized("unknown or revoked API token"))?;
        Ok(Self { token })
    }

    /// 403 for a route of the table this token's scope does not cover.
    pub fn refuse_for(&self, rule: &vpnctl_api::routes::Rule) -> ApiFailure {
        match (rule.access, self.token.scope) {
            (vpnctl_api::routes::Access::OwnNode, Scope::Node(_)) => {
                ApiFailure::forbidden("a node token may only access its own node")
            }
            _ => self.refuse(),
        }
    }

    pub fn is_admin(&self) -> bool {
        self.token.scope == Scope::Admin
    }

    /// Admin only.
    pub fn admin(&self) -> Result<(), ApiFailure> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(self.refuse())
        }
    }

    /// Admin or the Telegram bot.
    pub fn staff(&self) -> Result<(), ApiFailure> {
        match self.token.scope {
            Scope::Admin | Scope::Bot => Ok(()),
            Scope::Node(_) | Scope::Metrics => Err(self.refuse()),
        }
    }

    /// Admin or a metrics scraper.
    pub fn scraper(&self) -> Result<(), ApiFailure> {
        match self.token.scope {
            Scope::Admin | Scope::Metrics => Ok(()),
            Scope::Bot | Scope::Node(_) => Err(self.refuse()),
        }
    }

    /// The node itself (or an admin).
    pub fn node_or_admin(&self, node: NodeId) -> Result<(), ApiFailure> {
        match self.token.scope {
            Scope::Admin => Ok(()),
            Scope::Node(own) if own == node => Ok(()),
            Scope::Node(_) => Err(ApiFailure::forbidden(
                "a node token may only access its own node",
            )),
            Scope::Bot | Scope::Metrics => Err(self.refuse()),
        }
    }

    pub(crate) fn refuse(&self) -> ApiFailure {
        ApiFailure::forbidden(format!(
            "a {} token may not do this",
            match self.token.scope {
                Scope::Admin => "admin",
                Scope::Bot => "bot",
                Scope::Node(_) => "node",
                Scope::Metrics => "metrics",
            }
        ))
    }

    /// The service, with writes attributed to this caller in the event log.
    pub fn vpn(&self, state: &AppState) -> Vpnctl {
        state.vpn().acting_as(match self.token.scope {
            Scope::Admin => Actor::Admin(self.token.label.clone()),
            Scope::Bot => Actor::Bot,
            Scope::Node(id) => Actor::Node(id),
            // A metrics token writes nothing; attribute it like the system.
            Scope::Metrics => Actor::System,
        })
    }
}

/// A caller with an admin token; anyone else gets 403 before the body is read.
#[derive(Debug, Clone)]
pub struct Admin(pub Caller);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiFailure;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiFailure> {
        let caller = Caller::from_request_parts(parts, state).await?;
        caller.admin()?;
        Ok(Self(caller))
    }
}

/// A caller with an admin or bot token.
#[derive(Debug, Clone)]
pub struct Staff(pub Caller);

impl FromRequestParts<AppState> for Staff {
    type Rejection = ApiFailure;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiFailure> {
        let caller = Caller::from_request_parts(parts, state).await?;
        caller.staff()?;
        Ok(Self(caller))
    }
}

/// The node named by the `{id}` path segment, called by itself (or an admin).
#[derive(Debug, Clone)]
pub struct NodeAccess(pub NodeId);

impl FromRequestParts<AppState> for NodeAccess {
    type Rejection = ApiFailure;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiFailure> {
        let caller = Caller::from_request_parts(parts, state).await?;
        if matches!(caller.token.scope, Scope::Bot | Scope::Metrics) {
            return Err(caller.refuse());
        }
        let Path(node) = Path::<NodeId>::from_request_parts(parts, state).await?;
        caller.node_or_admin(node)?;
        Ok(Self(node))
    }
}
