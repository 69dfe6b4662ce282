//! The one door every request passes before its handler: the route table of
//! [`vpnctl_api::routes::TABLE`] decides who may call what, and how long it may run.
//!
//! In order: a route missing from the table is refused (new routes must say who may
//! call them); an address past its unauthenticated-failure limit gets 429; a public
//! route runs (enrollment within its own per-address limit); otherwise the bearer
//! token is checked (401, counted against the address) and its scope against the
//! table (403). Plain routes run under the request timeout, long-polls under their
//! own wait, the event stream under its maximum duration (both applied by their
//! handlers). Answers of routes that carry a secret get `Cache-Control: no-store`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use vpnctl_api::ErrorCode;
use vpnctl_api::routes::{self, Access, Kind, Method, Rule};

use crate::error::ApiFailure;
use crate::extract::Caller;
use crate::state::AppState;

/// The table's line for this request, if its route is in the table.
fn rule_of(req: &Request) -> Result<Option<&'static Rule>, ApiFailure> {
    let Some(template) = req.extensions().get::<MatchedPath>() else {
        // No route: the fallback answers 404.
        return Ok(None);
    };
    let template = template.as_str();
    // HEAD is answered like GET.
    let method = match req.method().as_str() {
        "HEAD" => Some(Method::Get),
        other => Method::parse(other),
    };
    if let Some(rule) = method.and_then(|m| routes::rule_for(m, template)) {
        return Ok(Some(rule));
    }
    if routes::TABLE.iter().any(|r| r.route.template() == template) {
        return Err(ApiFailure::new(
            StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::MethodNotAllowed,
            "this route does not take that method",
        ));
    }
    tracing::error!(
        route = template,
        "route missing from vpnctl_api::routes::TABLE"
    );
    Err(ApiFailure::forbidden(
        "this route is not in the access table (vpnctl_api::routes::TABLE)",
    ))
}

fn client_ip(req: &Request) -> IpAddr {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip())
}

fn too_many(what: &str) -> Response {
    let mut response = ApiFailure::new(
        StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::RateLimited,
        format!("too many {what} from this address; retry in a minute"),
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
    response
}

/// The middleware.
pub async fn gate(State(st): State<AppState>, mut req: Request, next: Next) -> Response {
    let rule = match rule_of(&req) {
        Ok(Some(rule)) => rule,
        Ok(None) => return next.run(req).await,
        Err(refusal) => return refusal.into_response(),
    };
    let ip = client_ip(&req);
    let limiters = st.limiters();
    if rule.access == Access::Public {
        if rule.route == routes::ENROLL && !limiters.enroll.hit(ip) {
            return too_many("enrollments");
        }
        let response = run(&st, rule, req, next).await;
        // A wrong join secret is an unauthenticated failure like a wrong token.
        if matches!(
            response.status(),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
        ) {
            limiters.auth_failures.hit(ip);
        }
        return response;
    }
    if limiters.auth_failures.exceeded(ip) {
        return too_many("requests without a valid token");
    }
    let caller = match Caller::authenticate(req.headers(), &st).await {
        Ok(caller) => caller,
        Err(refusal) => {
            if refusal.status == StatusCode::UNAUTHORIZED && !limiters.auth_failures.hit(ip) {
                return too_many("requests without a valid token");
            }
            return refusal.into_response();
        }
    };
    let node = if rule.access == Access::OwnNode {
        rule.node_in(path_id(req.uri().path(), rule.route.template()).as_deref())
    } else {
        None
    };
    if !rule.access.allows(caller.token.scope, node) {
        return caller.refuse_for(rule).into_response();
    }
    req.extensions_mut().insert(caller);
    run(&st, rule, req, next).await
}

/// The `{id}` segment of `path` under `template` (`/v1/nodes/{id}/report`).
fn path_id(path: &str, template: &str) -> Option<String> {
    let at = template.split('/').position(|s| s == "{id}")?;
    path.split('/').nth(at).map(str::to_owned)
}

async fn run(st: &AppState, rule: &Rule, req: Request, next: Next) -> Response {
    let mut response = match rule.kind {
        Kind::Plain => {
            let limit = st.limits().request_timeout();
            match tokio::time::timeout(limit, next.run(req)).await {
                Ok(response) => response,
                Err(_) => timed_out(limit),
            }
        }
        Kind::LongPoll => {
            // Their own wait bounds them; this only catches a stuck read.
            let limit = st.limits().request_timeout()
                + Duration::from_secs(
                    routes::DESIRED_MAX_WAIT_SECS.max(routes::NOTIFICATIONS_MAX_WAIT_SECS),
                );
            match tokio::time::timeout(limit, next.run(req)).await {
                Ok(response) => response,
                Err(_) => timed_out(limit),
            }
        }
        // Bounded by the stream's maximum duration, in its handler.
        Kind::Stream => next.run(req).await,
    };
    if rule.secret {
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

fn timed_out(limit: Duration) -> Response {
    ApiFailure::new(
        StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::Unavailable,
        format!("the request took longer than {} s", limit.as_secs()),
    )
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_ids() {
        assert_eq!(
            path_id("/v1/nodes/12/report", "/v1/nodes/{id}/report").as_deref(),
            Some("12")
        );
        assert_eq!(path_id("/v1/nodes", "/v1/nodes"), None);
    }
}
