//! The `/v1` routes. Each handler authenticates (except enrollment and `/healthz`),
//! checks the caller's scope, runs one blocking core call, and shapes the answer.
//!
//! Who may call what is [`vpnctl_api::routes::TABLE`], enforced by [`crate::gate`]
//! before any handler runs; the handlers' extractors (`Admin`, `Staff`,
//! `NodeAccess`) check again. Admin may do everything; the bot may read users and
//! nodes (never a client's endpoint), usage and traffic, redeem invites, manage peers
//! (issue, configs, rotate, revoke) and read and acknowledge the outbox; a node token
//! may only long-poll its own desired state and post its own report; a metrics token
//! may only scrape `/metrics`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::{Stream, StreamExt};
use serde::de::DeserializeOwned;
use tokio::sync::broadcast::error::RecvError;
use vpnctl_api::JoinToken;
use vpnctl_api::body::{
    AckNotifications, CreateInvite, CreateJoinToken, CreateToken, CreateUser, CreatedInvite,
    CreatedJoinToken, CreatedToken, DeleteNodeQuery, DesiredQuery, DeviceLive, DeviceView,
    EnrollRequest, EnrollResponse, EvacuateRequest, EventQuery, ExtendAccess, InviteQuery,
    IssuePeerRequest, IssuedPeerView, NodeBrief, NodeView, NotificationQuery, Page, PatchNode,
    PatchUser, PeerQuery, RedeemInvite, Redeemed, RegisterNode, RotatePeer, SetAccess,
    SetUserState, StoredReport, UserQuery,
};
use vpnctl_api::{ErrorCode, routes};
use vpnctl_core::auth::{ApiToken, TokenId};
use vpnctl_core::render::RenderError;
use vpnctl_core::wire::{DesiredUpdate, NodeReport};
use vpnctl_core::{
    Consumer, Endpoint, EvacuateTo, Evacuation, Event, Invite, InviteId, IssuePeer, IssuedPeer,
    NewInvite, NewNode, NewUser, Node, NodeId, NodeOverview, NodePatch, NodeState, Notification,
    Peer, PeerFilter, PeerId, PublicKey, Redeemer, Traffic, UsageView, User, UserFilter, UserId,
    UserPatch,
};

use crate::error::{ApiFailure, blocking};
use crate::extract::{Admin, Caller, Json, NodeAccess, Path, Query, Staff};
use crate::state::{AppState, NodeList};

type ApiResult<T> = Result<T, ApiFailure>;

/// Longest long-poll wait a node may ask for, and the default.
pub const MAX_WAIT_SECS: u64 = routes::DESIRED_MAX_WAIT_SECS;
pub const DEFAULT_WAIT_SECS: u64 = routes::DESIRED_WAIT_SECS;
/// Body limits: reports carry per-peer stats (~150 B each, 20k peers ≈ 3 MB).
pub const BODY_LIMIT: usize = 64 * 1024;
pub const REPORT_BODY_LIMIT: usize = 16 * 1024 * 1024;
const DEFAULT_JOIN_VALIDITY_SECS: i64 = 86_400;
const MAX_EVENTS: usize = 1000;
/// Notifications per answer: default and most.
pub const DEFAULT_NOTIFICATIONS: usize = 100;
pub const MAX_NOTIFICATIONS: usize = 1000;
/// Longest outbox long-poll.
pub const MAX_NOTIFICATION_WAIT_SECS: u64 = routes::NOTIFICATIONS_MAX_WAIT_SECS;
const QR_PIXELS: u32 = 512;
/// How often an idle event stream sends a comment (at most).
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The whole API.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route(routes::USERS.template(), get(list_users).post(create_user))
        .route(
            routes::USER.template(),
            get(get_user).patch(patch_user).delete(delete_user),
        )
        .route(
            routes::USER_STATE.template(),
            axum::routing::put(set_user_state),
        )
        .route(
            routes::USER_ACCESS.template(),
            axum::routing::put(set_access),
        )
        .route(routes::USER_ACCESS_EXTEND.template(), post(extend_access))
        .route(routes::USER_USAGE.template(), get(user_usage))
        .route(routes::USER_DEVICES.template(), get(user_devices))
        .route(
            routes::INVITES.template(),
            get(list_invites).post(create_invite),
        )
        .route(routes::INVITES_REDEEM.template(), post(redeem_invite))
        .route(routes::INVITE.template(), get(get_invite))
        .route(routes::INVITE_REVOKE.template(), post(revoke_invite))
        .route(
            routes::NODES.template(),
            get(list_nodes).post(register_node),
        )
        .route(routes::NODES_BRIEF.template(), get(list_node_briefs))
        .route(
            routes::NODE.template(),
            get(get_node).patch(patch_node).delete(delete_node),
        )
        .route(routes::NODE_DRAIN.template(), post(drain_node))
        .route(routes::NODE_EVACUATE.template(), post(evacuate_node))
        .route(routes::NODE_DISABLE.template(), post(disable_node))
        .route(routes::NODE_ACTIVATE.template(), post(activate_node))
        .route(routes::NODE_JOIN_TOKEN.template(), post(create_join_token))
        .route(routes::NODE_DESIRED.template(), get(desired))
        .route(
            routes::NODE_REPORT.template(),
            post(post_report)
                .get(get_report)
                .layer(DefaultBodyLimit::max(REPORT_BODY_LIMIT)),
        )
        .route(routes::PEERS.template(), get(list_peers).post(issue_peer))
        .route(routes::PEER.template(), get(get_peer).delete(revoke_peer))
        .route(routes::PEER_CONFIG.template(), get(peer_config))
        .route(routes::PEER_QR.template(), get(peer_qr))
        .route(routes::PEER_ROTATE.template(), post(rotate_peer))
        .route(routes::PEER_TRAFFIC.template(), get(peer_traffic))
        .route(routes::NOTIFICATIONS.template(), get(notifications))
        .route(
            routes::NOTIFICATIONS_ACK.template(),
            post(ack_notifications),
        )
        .route(
            routes::TOKENS.template(),
            get(list_tokens).post(create_token),
        )
        .route(
            routes::TOKEN.template(),
            axum::routing::delete(revoke_token),
        )
        .route(routes::EVENTS.template(), get(list_events))
        .route(routes::EVENTS_STREAM.template(), get(event_stream))
        .route(routes::ENROLL.template(), post(enroll))
        .route(routes::HEALTHZ.template(), get(healthz))
        .route(routes::METRICS.template(), get(metrics))
        .merge(crate::billing::router())
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::gate::gate,
        ))
        // Outside the gate: it sees the gate's `no-store` on answers with secrets,
        // and leaves those alone.
        .layer(axum::middleware::from_fn(crate::compress::gzip_large_json))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::metrics::track,
        ))
        .with_state(state)
}

/// Prometheus exposition; Prometheus sends a metrics token (`vpnctl tokens create
/// --scope metrics`) as a bearer token (`authorization: {credentials_file: ...}` in
/// its scrape config).
async fn metrics(caller: Caller, State(st): State<AppState>) -> ApiResult<Response> {
    caller.scraper()?;
    let state = st.clone();
    let text = blocking(move || crate::metrics::render(&state)).await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(vpnctl_daemon::metrics::CONTENT_TYPE),
        )],
        text,
    )
        .into_response())
}

async fn healthz() -> &'static str {
    "ok"
}

async fn no_route() -> ApiFailure {
    ApiFailure::not_found(ErrorCode::NoRoute, "no such API route")
}

async fn method_not_allowed() -> ApiFailure {
    ApiFailure::new(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::MethodNotAllowed,
        "this route does not take that method",
    )
}

/// A JSON body that may be empty (then `T::default()`).
fn optional_body<T: DeserializeOwned + Default>(body: &Bytes) -> ApiResult<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| {
        let status = if e.is_data() {
            StatusCode::UNPROCESSABLE_ENTITY
        } else {
            StatusCode::BAD_REQUEST
        };
        ApiFailure::new(status, ErrorCode::BadRequest, e.to_string())
    })
}

fn endpoint(text: &str) -> ApiResult<Endpoint> {
    text.parse::<Endpoint>().map_err(ApiFailure::from)
}

// ---------------------------------------------------------------- users

async fn list_users(
    _: Staff,
    State(st): State<AppState>,
    Query(q): Query<UserQuery>,
) -> ApiResult<Response> {
    let vpn = st.vpn().clone();
    page_response(move || match (q.telegram_id, q.ids) {
        (Some(tg), _) => vpn.user_by_telegram(tg).map(|u| Page {
            items: u.into_iter().collect(),
            next: None,
        }),
        (None, Some(ids)) => vpn
            .users_by_id(&ids.0)
            .map(|items| Page { items, next: None }),
        (None, None) => vpn.users_page(
            q.after,
            q.limit.unwrap_or(routes::PAGE_MAX),
            &UserFilter {
                name: q.name,
                access: q.access,
            },
        ),
    })
    .await
}

/// A page of a list as the response: its JSON array, with the next page's cursor in
/// a header. Read by `read` and written on the blocking pool: a full page is ~200 KB,
/// and writing it on a runtime thread would hold up every request waiting there.
pub(crate) async fn page_response<T, F>(read: F) -> ApiResult<Response>
where
    T: vpnctl_api::json::JsonRow,
    F: FnOnce() -> vpnctl_core::Result<Page<T>> + Send + 'static,
{
    let (body, next) = blocking(move || {
        let page = read()?;
        // Sized for a full page of peers (~200 bytes a row) up front: growing a
        // 200 KB body from axum's 128 bytes copied it a dozen times.
        let mut body = Vec::with_capacity(2 + page.items.len() * 256);
        Ok((
            vpnctl_api::json::write_rows(&page.items, &mut body).map(|()| body),
            page.next,
        ))
    })
    .await?;
    let body = body.map_err(|e| ApiFailure::internal(&e))?;
    let mut response = (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response();
    if let Some(next) = next {
        response.headers_mut().insert(
            axum::http::HeaderName::from_static(routes::NEXT_AFTER_HEADER),
            HeaderValue::from(next),
        );
    }
    Ok(response)
}

async fn get_user(
    _: Staff,
    State(st): State<AppState>,
    Path(id): Path<UserId>,
) -> ApiResult<Json<User>> {
    let vpn = st.vpn().clone();
    Ok(Json(blocking(move || vpn.user(id)).await?))
}

async fn create_user(
    Admin(caller): Admin,
    State(st): State<AppState>,
    Json(body): Json<CreateUser>,
) -> ApiResult<(StatusCode, Json<User>)> {
    let vpn = caller.vpn(&st);
    let new = NewUser {
        name: body.name,
        telegram_id: body.telegram_id,
        role: body.role.unwrap_or_default(),
        until: body.until,
        device_limit: body.device_limit,
        locale: body.locale.unwrap_or_default(),
    };
    let user = blocking(move || vpn.create_user(new)).await?;
    Ok((StatusCode::CREATED, Json(user)))
}

async fn patch_user(
    Admin(caller): Admin,
    State(st): State<AppState>,
    Path(id): Path<UserId>,
    Json(body): Json<PatchUser>,
) -> ApiResult<Json<User>> {
    if let Some(Some(quota)) = body.quota
        && quota.bytes == 0
    {
        return Err(ApiFailure::invalid(
            "quota.bytes must be at least 1 (send \"quota\": null to remove the quota)",
        ));
    }
    let vpn = caller.vpn(&st);
    let patch = UserPatch {
        name: body.name,
        telegram_id: body.telegram_id,
        role: body.role,
        device_limit: body.device_limit,
        locale: body.locale,
        quota: body.quota,
    };
    Ok(Json(blocking(move || vpn.update_user(id, patch)).await?))
}

async fn set_user_state(
    Admin(caller): Admin,
    State(st): State<AppState>,
    Path(id): Path<UserId>,
    Json(body): Json<SetUserState>,
) -> ApiResult<Json<User>> {
    let vpn = caller.vpn(&st);
    Ok(Json(
        blocking(move || vpn.set_user_state(id, body.state)).await?,
    ))
}

async fn set_access(
    Admin(caller): Admin,
    State(st): State<AppState>,
    Path(id): Path<UserId>,
    Json(body): Json<SetAccess>,
) -> ApiResult<Json<User>> {
    let vpn = caller.vpn(&st);
    Ok(Json(
        blocking(move || vpn.set_access(id, body.until)).await?,
    ))
}

async fn extend_access(
    Admin(caller): Admin,
    State(st): State<AppState>,
    Path(id): Path<UserId>,
    Json(body): Json<ExtendAccess>,
) -> ApiResult<Json<User>> {
    let vpn = caller.vpn(&st);
    Ok(Json(
        blocking(move || vpn.extend_access(id, body.days)).await?,
    ))
}

async fn user_usage(
    _: Staff,
    State(st): State<AppState>,
    Path(id): Path<UserId>,
) -> ApiResult<Json<UsageView>> {
    let vpn = st.vpn().clone();
    Ok(Json(blocking(move || vpn.usage(id)).await?))
}

/// The bot's /status: the user's devices, each with its node in brief and its
/// counters from the node's latest report (never the endpoint).
async fn user_devices(
    _: Staff,
    State(st): State<AppState>,
    Path(id): Path<UserId>,
) -> ApiResult<Json<Vec<DeviceView>>> {
    let vpn = st.vpn().clone();
    let devices = blocking(move || vpn.user_devices(id)).await?;
    let mut reports: Vec<(NodeId, Option<Arc<StoredReport>>)> = Vec::new();
    let mut out = Vec::with_capacity(devices.len());
    for (peer, node) in devices {
        let report = match reports.iter().find(|(n, _)| *n == node.id) {
            Some((_, r)) => r.clone(),
            None => {
                let r = st.report(node.id);
                reports.push((node.id, r.clone()));
                r
            }
        };
        let live = report.and_then(|r| {
            r.report
                .peers
                .iter()
                .find(|s| s.public_key == peer.public_key)
                .map(|s| DeviceLive {
                    last_handshake: s.last_handshake,
                    rx_bytes: s.rx_bytes,
                    tx_bytes: s.tx_bytes,
                    reported_at: r.received_at,
                })
        });
        out.push(DeviceView { peer, node, live });
    }
    Ok(Json(out))
}

async fn delete_user(
    Admin(caller): Admin,
    State(st): State<AppState>,
    Path(id): Path<UserId>,
) -> ApiResult<StatusCode> {
    let vpn = caller.vpn(&st);
    blocking(move || vpn.delete_user(id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------- invites

async fn list_invites(
    _: Admin,
    State(st): State<AppState>,
    Query(q): Query<InviteQuery>,
) -> ApiResult<Response> {
    let vpn = st.vpn().clone();
    let limit = q.limit.unwrap_or(routes::PAGE_MAX);
    page_response(move || vpn.invites_page(q.after, limit)).await
}

async fn get_invite(
    _: Admin,
    State(st): State<AppState>,
    Path(id): Path<InviteId>,
) -> ApiResult<Json<Invite>> {
    let vpn = st.vpn().clone();
    Ok(Json(blocking(move || vpn.invite(id)).await?))
}

async fn create_invite(
    Admin(caller): Admin,
    State(st): State<AppState>,
    Json(body): Json<CreateInvite>,
) -> ApiResult<(StatusCode, Json<CreatedInvite>)> {
    let vpn = caller.vpn(&st);
    if body.plan.is_some() && body.grant.is_some() {
        return Err(ApiFailure::bad_request(
            "give a grant or a plan (whose days, devices and quota the invite grants), not both",
        ));
    }
    let defaults = NewInvite::default();
    let new = NewInvite {
        label: body.label.unwrap_or(defaults.label),
        uses: body.uses.unwrap_or(defaults.uses),
        expires_at: body.expires_at,
        grant: body.grant.unwrap_or(defaults.grant),
        plan: body.plan,
    };
    let (invite, code) = blocking(move || vpn.create_invite(new)).await?;
    let link = st
        .public()
        .bot_username
        .as_deref()
        .map(|bot| code.telegram_link(bot));
    Ok((
        StatusCode::CREATED,
        Json(CreatedInvite {
            invite,
            code: code.expose().to_owned(),
            link,
        }),
    ))
}

async fn revoke_invite(
    Admin(caller): Admin,
    State(st): State<AppState>,
    Path(id): Path<InviteId>,
) -> ApiResult<Json<Invite>> {
    let vpn = caller.vpn(&st);
    Ok(Json(blocking(move || vpn.revoke_invite(id)).await?))
}

async fn redeem_invite(
    Staff(caller): Staff,
    State(st): State<AppState>,
    Json(body): Json<RedeemInvite>,
) -> ApiResult<Json<Redeemed>> {
    let vpn = caller.vpn(&st);
    let who = Redeemer {
        telegram_id: body.telegram_id,
        name: body.name,
        locale: body.locale.unwrap_or_default(),
    };
    let code = body.code;
    let r = blocking(move || vpn.redeem_invite(&code, who)).await?;
    Ok(Json(Redeemed {
        user: r.user,
        invite: r.invite,
        created: r.created,
    }))
}

// ---------------------------------------------------------------- nodes

fn node_view(st: &AppState, o: NodeOverview) -> NodeView {
    NodeView {
        health: o.health(),
        report: st.report_summary(o.node.id),
        node: o.node,
        peers: o.peers,
    }
}

/// Served from a cache while neither the store nor any report changed: a body made
/// once serves every poll in between (the key is read before the list, so a change
/// meanwhile only makes the next call build it again).
async fn list_nodes(_: Staff, State(st): State<AppState>) -> ApiResult<Response> {
    cached_node_list(st, NodeList::Full).await
}

/// The bot's server keyboard: every node in brief, cached like the full list.
async fn list_node_briefs(_: Staff, State(st): State<AppState>) -> ApiResult<Response> {
    cached_node_list(st, NodeList::Brief).await
}

async fn cached_node_list(st: AppState, list: NodeList) -> ApiResult<Response> {
    let key = st.node_list_key(list);
    let body = match st.cached_node_list(list, key) {
        Some(body) => body,
        None => {
            let vpn = st.vpn().clone();
            let nodes = blocking(move || vpn.node_overviews()).await?;
            let json = match list {
                NodeList::Full => {
                    let views: Vec<NodeView> =
                        nodes.into_iter().map(|o| node_view(&st, o)).collect();
                    serde_json::to_vec(&views)
                }
                NodeList::Brief => {
                    let briefs: Vec<NodeBrief> = nodes.iter().map(NodeOverview::brief).collect();
                    serde_json::to_vec(&briefs)
                }
            };
            let body = Bytes::from(json.map_err(|e| ApiFailure::internal(&e))?);
            st.cache_node_list(list, key, body.clone());
            body
        }
    };
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

async fn get_node(
    _: Staff,
    State(st): State<AppState>,
    Path(id): Path<NodeId>,
) -> ApiResult<Json<NodeView>> {
    let vpn = st.vpn().clone();
    let o = blocking(move || vpn.node_overview(id)).await?;
    Ok(Json(node_view(&st, o)))
}

async fn register_node(
    Admin(caller): Admin,
    State(st): State<AppState>,
    Json(body): Json<RegisterNode>,
) -> ApiResult<(StatusCode, Json<Node>)> {
    let vpn = caller.vpn(&st);
    let mut new = NewNode::new(
        &body.name,
        &body.region.code,
        endpoint(&body.endpoint)?,
        body.ipv4_pool,
    );
    new.region = body.region;
    new.listen_port = body.listen_port;
    new.public_key = body.public_key;
    new.ipv6_pool = body.ipv6_pool;
    if let Some(dns) = body.dns {
        new.dns = dns;
    }
    if let Some(mtu) = body.mtu {
        new.mtu = mtu;
    }
    if let Some(capacity) = body.capacity {
        new.capacity = capacity;
    }
    if let Some(ips) = body.client_allowed_ips {
        new.client_allowed_ips = ips;
    }
    if let Some(keepalive) = body.persistent_keepalive {
        new.persistent_keepalive = keepalive;
    }
    if let Some(choice) = &body.transport {
        new.transport = vpnctl_core::transport::resolve(choice, new.mtu)?;
    }
    let node = blocking(move || vpn.register_node(new)).await?;
    Ok((StatusCode::CREATED, Json(node)))
}

async fn patch_node(
    Admin(caller): Admin,
    State(st): State<AppState>,
    Path(id): Path<NodeId>,
    Json(body): Json<PatchNode>,
) -> ApiResult<Json<Node>> {
    let vpn = caller.vpn(&st);
    let transport = match &body.transport {
        Some(choice) => {
            let mtu = match body.mtu {
                Some(mtu) => mtu,
                None => {
                    let vpn = vpn.clone();
                    blocking(move || vpn.node(id)).await?.mtu
                }
            };
            Some(vpnctl_core::transport::resolve(choice, mtu)?)
        }
        None => None,
    };
    let patch = NodePatch {
        transport,
        region: body.region,
        endpoint: body.endpoint.as_deref().map(endpoint).transpose()?,
        listen_port: body.listen_port,
        public_key: body.public_key,
        dns: body.dns,
        mtu: body.mtu,
        capacity: body.capacity,
        client_allowed_ips: body.client_allowed_ips,
        persistent_keepalive: body.persistent_keepalive,
    };
    Ok(Json(blocking(move || vpn.update_node(id, patch)).await?))
}

async fn node_state(
    caller: &Caller,
    st: &AppState,
    id: NodeId,
    state: NodeState,
) -> ApiResult<Json<Node>> {
    caller.admin()?;
    let vpn = caller.vpn(st);
    Ok(Json(blocking(move || vpn.set_node_state(id, state)).await?))
}

async fn drain_node(
    Admin(caller): Admin,
    State(st): State<AppState>,
    Path(id): Path<NodeId>,
) -> ApiResult<Json<Node>> {
    node_state(&caller, &st, id, NodeState::Draining).await
}

/// Moves every device off the node (re-issued on healthy nodes; users with a
/// Telegram id are told) and sets it draining. 409 when no node can take them.
async fn evacuate_node(
    Admin(caller): Admin,
    State(st): State<AppState>,
    Path(id): Path<NodeId>,
    body: Bytes,
) -> ApiResult<Json<Evacuation>> {
    let body: EvacuateRequest = optional_body(&body)?;
    if let EvacuateTo::Region(code) = &body.to
        && code.trim().is_empty()
    {
        return Err(ApiFailure::invalid(
            "evacuate to a region needs a region code",
        ));
    }
    let vpn = caller.vpn(&st);
    let to = body.to;
    let done = blocking(move || vpn.evacuate(id, &to)).await?;
    tracing::info!(node = %id, moved = done.moved.len(), failed = done.failed.len(), "node evacuated");
    Ok(Json(done))
}

async fn disable_node(
    Admin(caller): Admin,
    State(st): State<AppState>,
    Path(id): Path<NodeId>,
) -> ApiResult<Json<Node>> {
    node_state(&caller, &st, id, NodeState::Disabled).await
}

async fn activate_node(
    Admin(caller): Admin,
    State(st): State<AppState>,
    Path(id): Path<NodeId>,
) -> ApiResult<Json<Node>> {
    node_state(&caller, &st, id, NodeState::Active).await
}

async fn delete_node(
    Admin(caller): Admin,
    State(st): State<AppState>,
    Path(id): Path<NodeId>,
    Query(q): Query<DeleteNodeQuery>,
) -> ApiResult<StatusCode> {
    let vpn = caller.vpn(&st);
    blocking(move || vpn.delete_node(id, q.force)).await?;
    st.forget_report(id);
    Ok(StatusCode::NO_CONTENT)
}

async fn create_join_token(
    Admin(caller): Admin,
    State(st): State<AppState>,
    Path(id): Path<NodeId>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<CreatedJoinToken>)> {
    let body: CreateJoinToken = optional_body(&body)?;
    let valid = body.valid_for_secs.unwrap_or(DEFAULT_JOIN_VALIDITY_SECS);
    let vpn = caller.vpn(&st);
    let (secret, now) = blocking(move || {
        let secret = vpn.create_join_secret(id, valid)?;
        Ok((secret, vpn.now()))
    })
    .await?;
    let join = JoinToken {
        url: st.public().url.clone(),
        fingerprint: st.public().fingerprint,
        secret,
    };
    Ok((
        StatusCode::CREATED,
        Json(CreatedJoinToken {
            join_token: join.encode(),
            expires_at: now.plus_seconds(valid),
        }),
    ))
}

/// The node protocol's long-poll: answers at once when the node is behind, else
/// waits for a commit that touches the node (or `wait`, or shutdown).
async fn desired(
    State(st): State<AppState>,
    NodeAccess(id): NodeAccess,
    Query(q): Query<DesiredQuery>,
) -> ApiResult<Json<DesiredUpdate>> {
    let wait = Duration::from_secs(q.wait.unwrap_or(DEFAULT_WAIT_SECS).min(MAX_WAIT_SECS));
    // Subscribe before reading so that a commit in between still wakes us.
    let mut revisions = st.feed().watch_node(id);
    let vpn = st.vpn().clone();
    let after = q.after;
    let update = match blocking(move || {
        vpn.node(id)?;
        vpn.node_update(id, after)
    })
    .await
    {
        Ok(update) => update,
        Err(e) => {
            // No channel for a node that does not exist.
            drop(revisions);
            st.feed().forget_unwatched(id);
            return Err(e);
        }
    };
    if !matches!(update, DesiredUpdate::UpToDate { .. }) || wait.is_zero() {
        return Ok(Json(update));
    }
    tokio::select! {
        _ = tokio::time::timeout(wait, revisions.wait_for(|rev| *rev > after)) => {}
        () = st.shutting_down() => {}
    }
    let vpn = st.vpn().clone();
    Ok(Json(blocking(move || vpn.node_update(id, after)).await?))
}

async fn post_report(
    State(st): State<AppState>,
    NodeAccess(id): NodeAccess,
    Json(report): Json<NodeReport>,
) -> ApiResult<StatusCode> {
    // Bounded and cleaned before anything keeps or logs it.
    let report = vpnctl_core::report::bounded(report);
    let vpn = st.vpn().clone();
    let (report, received_at) = blocking(move || {
        // Status, traffic accounting, quotas and drift alerts all live in core.
        vpn.acting_as(vpnctl_core::Actor::Node(id))
            .record_report(id, &report)?;
        Ok((report, vpn.now()))
    })
    .await?;
    tracing::debug!(node = %id, applied = report.applied_revision, peers = report.peers.len(), "node report");
    st.store_report(
        id,
        StoredReport {
            received_at,
            report,
        },
    );
    Ok(StatusCode::NO_CONTENT)
}

async fn get_report(
    _: Admin,
    State(st): State<AppState>,
    Path(id): Path<NodeId>,
) -> ApiResult<Response> {
    let vpn = st.vpn().clone();
    blocking(move || vpn.node(id)).await?;
    // Serialized from the shared report: no copy of its peers per request.
    let report = st.report(id).map(|r| {
        serde_json::to_vec(&*r)
            .map(|body| ([(header::CONTENT_TYPE, "application/json")], body).into_response())
            .map_err(|e| ApiFailure::internal(&e))
    });
    report.transpose()?.ok_or_else(|| {
        ApiFailure::not_found(
            ErrorCode::NoReport,
            format!("node {id} has not reported since the server started"),
        )
    })
}

async fn enroll(
    State(st): State<AppState>,
    Json(body): Json<EnrollRequest>,
) -> ApiResult<Json<EnrollResponse>> {
    let vpn = st.vpn().clone();
    let public_key: PublicKey = body.public_key;
    let secret = zeroize::Zeroizing::new(body.join_secret);
    let (node, token) =
        blocking(move || vpn.enroll_node(&secret, public_key, body.listen_port)).await?;
    tracing::info!(node = %node.id, name = %node.name, "node enrolled");
    Ok(Json(EnrollResponse {
        node,
        token: token.expose().to_owned(),
    }))
}

// ---------------------------------------------------------------- peers

async fn list_peers(
    _: Staff,
    State(st): State<AppState>,
    Query(q): Query<PeerQuery>,
) -> ApiResult<Response> {
    let vpn = st.vpn().clone();
    let filter = PeerFilter {
        user: q.user,
        node: q.node,
        region: q.region,
        access: q.access,
        device: q.device,
        address: q.address,
        public_key: q.public_key,
    };
    let limit = q.limit.unwrap_or(routes::PAGE_MAX);
    page_response(move || match q.ids {
        Some(ids) => vpn
            .peers_by_id(&ids.0)
            .map(|items| Page { items, next: None }),
        None => vpn.peers_page(filter, q.after, limit),
    })
    .await
}

async fn get_peer(
    _: Staff,
    State(st): State<AppState>,
    Path(id): Path<PeerId>,
) -> ApiResult<Json<Peer>> {
    let vpn = st.vpn().clone();
    Ok(Json(blocking(move || vpn.peer(id)).await?))
}

fn issued_view(issued: IssuedPeer) -> IssuedPeerView {
    IssuedPeerView {
        peer: issued.peer,
        tunnel_name: issued.config.as_ref().map(|c| c.tunnel_name().to_owned()),
        config: issued.config.as_ref().map(|c| c.expose_text().to_owned()),
    }
}

async fn issue_peer(
    Staff(caller): Staff,
    State(st): State<AppState>,
    Json(body): Json<IssuePeerRequest>,
) -> ApiResult<(StatusCode, Json<IssuedPeerView>)> {
    let vpn = caller.vpn(&st);
    let req = IssuePeer {
        user: body.user,
        node: body.node,
        device: body.device,
        public_key: body.public_key,
    };
    let issued = blocking(move || vpn.issue_peer(req)).await?;
    Ok((StatusCode::CREATED, Json(issued_view(issued))))
}

async fn peer_config(
    _: Staff,
    State(st): State<AppState>,
    Path(id): Path<PeerId>,
) -> ApiResult<Response> {
    let vpn = st.vpn().clone();
    let config = blocking(move || vpn.peer_config(id)).await?;
    let disposition =
        HeaderValue::from_str(&format!("attachment; filename=\"{}\"", config.file_name()))
            .unwrap_or_else(|_| HeaderValue::from_static("attachment"));
    // `Cache-Control: no-store` comes from the route table (a secret).
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            ),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        config.expose_text().to_owned(),
    )
        .into_response())
}

async fn peer_qr(
    _: Staff,
    State(st): State<AppState>,
    Path(id): Path<PeerId>,
) -> ApiResult<Response> {
    let vpn = st.vpn().clone();
    let png = blocking(move || {
        let config = vpn.peer_config(id)?;
        Ok(config.qr_png(QR_PIXELS))
    })
    .await?
    .map_err(|e| match e {
        // The config is too long for a QR code: the caller sends the file alone.
        RenderError::Qr(_) => ApiFailure::bad_request(e.to_string()),
        RenderError::Png(_) => ApiFailure::internal(&e),
    })?;
    Ok((
        [(header::CONTENT_TYPE, HeaderValue::from_static("image/png"))],
        png,
    )
        .into_response())
}

async fn rotate_peer(
    Staff(caller): Staff,
    State(st): State<AppState>,
    Path(id): Path<PeerId>,
    body: Bytes,
) -> ApiResult<Json<IssuedPeerView>> {
    let body: RotatePeer = optional_body(&body)?;
    let vpn = caller.vpn(&st);
    let issued = blocking(move || vpn.rotate_peer(id, body.public_key)).await?;
    Ok(Json(issued_view(issued)))
}

async fn revoke_peer(
    Staff(caller): Staff,
    State(st): State<AppState>,
    Path(id): Path<PeerId>,
) -> ApiResult<Json<Peer>> {
    let vpn = caller.vpn(&st);
    Ok(Json(blocking(move || vpn.revoke_peer(id)).await?))
}

async fn peer_traffic(
    _: Staff,
    State(st): State<AppState>,
    Path(id): Path<PeerId>,
) -> ApiResult<Json<Traffic>> {
    let vpn = st.vpn().clone();
    Ok(Json(blocking(move || vpn.peer_traffic(id)).await?))
}

// ---------------------------------------------------------------- notifications

/// The bot consumer's unacknowledged notifications, oldest first (admins read the
/// same queue). With `wait_secs`, an empty answer waits until one is queued, the
/// wait ends (at most [`MAX_NOTIFICATION_WAIT_SECS`]) or the server shuts down.
async fn notifications(
    _: Staff,
    State(st): State<AppState>,
    Query(q): Query<NotificationQuery>,
) -> ApiResult<Json<Vec<Notification>>> {
    let limit = match q.limit {
        Some(0) => {
            return Err(ApiFailure::bad_request(format!(
                "limit must be 1..={MAX_NOTIFICATIONS}"
            )));
        }
        Some(n) => n.min(MAX_NOTIFICATIONS),
        None => DEFAULT_NOTIFICATIONS,
    };
    let wait = Duration::from_secs(q.wait_secs.unwrap_or(0).min(MAX_NOTIFICATION_WAIT_SECS));
    let deadline = tokio::time::Instant::now() + wait;
    // Subscribe before reading so that a notification queued in between still
    // wakes us.
    let mut queued = st.feed().watch_notifications();
    loop {
        queued.borrow_and_update();
        let vpn = st.vpn().clone();
        let found = blocking(move || vpn.notifications(Consumer::Bot, limit)).await?;
        if !found.is_empty() || tokio::time::Instant::now() >= deadline {
            return Ok(Json(found));
        }
        tokio::select! {
            changed = tokio::time::timeout_at(deadline, queued.changed()) => {
                // Timed out, or the service is gone: answer with what there is.
                if !matches!(changed, Ok(Ok(()))) {
                    let vpn = st.vpn().clone();
                    return Ok(Json(blocking(move || vpn.notifications(Consumer::Bot, limit)).await?));
                }
            }
            () = st.shutting_down() => return Ok(Json(Vec::new())),
        }
    }
}

/// Marks the bot consumer's notifications up to `upto` as handled. `upto` may not
/// pass the newest notification: that would silently drop those queued later.
async fn ack_notifications(
    _: Staff,
    State(st): State<AppState>,
    Json(body): Json<AckNotifications>,
) -> ApiResult<Json<serde_json::Value>> {
    let vpn = st.vpn().clone();
    let upto = body.upto;
    // Ok(cursor) or Err(newest acknowledgeable id).
    let outcome = blocking(move || {
        // A client only ever sees the page after the cursor, so the end of that page
        // (or, with nothing pending, the cursor itself) is as far as it may ack.
        let pending = vpn.notifications(Consumer::Bot, MAX_NOTIFICATIONS)?;
        if let Some(last) = pending.last() {
            if upto > last.id {
                return Ok(Err(last.id));
            }
            return vpn.ack_notifications(Consumer::Bot, upto).map(Ok);
        }
        // Moving the cursor by 0 reads it.
        let cursor = vpn.ack_notifications(Consumer::Bot, 0)?;
        Ok(if upto > cursor {
            Err(cursor)
        } else {
            Ok(cursor)
        })
    })
    .await?;
    match outcome {
        Ok(cursor) => Ok(Json(serde_json::json!({ "cursor": cursor }))),
        Err(newest) => Err(ApiFailure::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::Invalid,
            format!("upto {upto} is beyond the newest notification delivered ({newest})"),
        )),
    }
}

// ---------------------------------------------------------------- tokens

async fn list_tokens(_: Admin, State(st): State<AppState>) -> ApiResult<Json<Vec<ApiToken>>> {
    let vpn = st.vpn().clone();
    Ok(Json(blocking(move || vpn.tokens()).await?))
}

async fn create_token(
    Admin(caller): Admin,
    State(st): State<AppState>,
    Json(body): Json<CreateToken>,
) -> ApiResult<(StatusCode, Json<CreatedToken>)> {
    let vpn = caller.vpn(&st);
    let (token, secret) = blocking(move || vpn.create_token(body.scope, &body.label)).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            token,
            secret: secret.expose().to_owned(),
        }),
    ))
}

async fn revoke_token(
    Admin(caller): Admin,
    State(st): State<AppState>,
    Path(id): Path<TokenId>,
) -> ApiResult<Json<ApiToken>> {
    let vpn = caller.vpn(&st);
    Ok(Json(blocking(move || vpn.revoke_token(id)).await?))
}

// ---------------------------------------------------------------- events

async fn list_events(
    _: Admin,
    State(st): State<AppState>,
    Query(q): Query<EventQuery>,
) -> ApiResult<Response> {
    let vpn = st.vpn().clone();
    let limit = q.limit.unwrap_or(100).min(MAX_EVENTS);
    if q.after.is_some() && q.before.is_some() {
        return Err(ApiFailure::bad_request(
            "give `after` (read forwards) or `before` (read backwards), not both",
        ));
    }
    page_response(move || {
        let items = match q.before {
            Some(before) => vpn.events_before(before, limit)?,
            None => vpn.events_after(q.after.unwrap_or(0), limit)?,
        };
        Ok(Page { items, next: None })
    })
    .await
}

fn sse_event(event: &Event) -> SseEvent {
    SseEvent::default()
        .id(event.seq.to_string())
        .json_data(event)
        .unwrap_or_else(|_| SseEvent::default().comment("unserializable event"))
}

/// Live events for the dashboard: the events after `after` (if given), then every
/// new event, each once, in order and without a gap. An `after` beyond the newest
/// event ever committed, or a `log` that is not this store's, is a 409: the store
/// was restored from a backup, and the events that come next reuse numbers the
/// client has seen. A burst larger than the
/// broadcast buffer (an evacuation of 2,000 devices is 4,000 events in one commit),
/// a subscriber that fell behind, or a backlog longer than one read is filled from
/// the store before the next live event is sent.
async fn event_stream(
    _: Admin,
    State(st): State<AppState>,
    Query(q): Query<EventQuery>,
) -> ApiResult<(
    HeaderMap,
    Sse<impl Stream<Item = Result<SseEvent, Infallible>>>,
)> {
    let rx = st.feed().subscribe_events();
    let vpn = st.vpn().clone();
    // Subscribed first, read second: an event committed in between comes twice
    // and is sent once. Without `after` the stream starts after the newest event
    // committed now, so it is gapless from its first event on too (the members of
    // one group commit are broadcast in any order).
    // One trip to the blocking pool: the log's identity, its newest event, and what
    // follows `after`.
    let (log, newest, backlog) = {
        let (vpn, after) = (vpn.clone(), q.after);
        blocking(move || {
            let backlog = match after {
                Some(after) => vpn.events_after(after, MAX_EVENTS)?,
                None => Vec::new(),
            };
            Ok((vpn.event_log_id()?, vpn.last_event_seq()?, backlog))
        })
        .await?
    };
    if q.log.is_some_and(|l| l != log) {
        // Followed a store that is gone: its numbers name other events here.
        return Err(restored(format!(
            "the event log is not the one log={} named: the store was restored from a \
             backup; read the log again from its end",
            q.log.unwrap_or_default()
        )));
    }
    let after = match q.after {
        // Numbers already seen would be given again to other events.
        Some(after) if after > newest => {
            return Err(restored(format!(
                "the event log ends at {newest}, before after={after}: the store went \
                 back (restored from a backup); read the log again from its end"
            )));
        }
        Some(after) => after,
        None => newest,
    };
    let live = futures_util::stream::unfold(
        EventFollower {
            rx,
            vpn,
            last: after,
            more: backlog.len() == MAX_EVENTS,
            pending: backlog.into(),
            held: None,
        },
        |mut follower| async move {
            let event = follower.next().await?;
            Some((event, follower))
        },
    );
    let shutdown = st.clone();
    let longest = st.limits().event_stream_max();
    let stream = live.map(|e| Ok(sse_event(&e))).take_until(async move {
        // The client reconnects with `after=` and misses nothing.
        tokio::select! {
            () = shutdown.shutting_down() => {}
            () = tokio::time::sleep(longest) => {}
        }
    });
    // A comment at least this often keeps the stream from looking idle.
    let keep_alive = (st.limits().idle_timeout() / 2).clamp(Duration::from_secs(1), KEEP_ALIVE);
    let mut headers = HeaderMap::new();
    headers.insert(routes::STREAM_AFTER_HEADER, HeaderValue::from(after));
    headers.insert(routes::STREAM_LOG_HEADER, HeaderValue::from(log));
    Ok((
        headers,
        Sse::new(stream).keep_alive(KeepAlive::new().interval(keep_alive)),
    ))
}

/// The 409 of a stream asked to resume in a log this store does not continue.
fn restored(message: String) -> ApiFailure {
    ApiFailure::new(StatusCode::CONFLICT, ErrorCode::Conflict, message)
}

/// What one event stream has sent: the next event is the one after `last`, from
/// `pending` (read from the
/// store) or from the broadcast of new commits; `held` is a live event that came
/// after a gap, sent once the gap is filled; `more` says the last read from the
/// store was full, so more may be stored after it.
struct EventFollower {
    rx: tokio::sync::broadcast::Receiver<Event>,
    vpn: vpnctl_core::Vpnctl,
    last: u64,
    pending: std::collections::VecDeque<Event>,
    held: Option<Event>,
    more: bool,
}

impl EventFollower {
    /// The next event; `None` when the feed closed or the store failed (the client
    /// reconnects with `after=` and misses nothing).
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                if event.seq <= self.last {
                    continue;
                }
                self.last = event.seq;
                return Some(event);
            }
            if self.more {
                let next = self.read_after(self.last).await?;
                self.pending.extend(next);
                continue;
            }
            let event = match self.held.take() {
                Some(event) => event,
                None => match self.rx.recv().await {
                    Ok(event) => event,
                    Err(RecvError::Lagged(_)) => {
                        let missed = self.read_after(self.last).await?;
                        self.pending.extend(missed);
                        continue;
                    }
                    Err(RecvError::Closed) => return None,
                },
            };
            match self.last {
                last if event.seq <= last => {}
                // Events between the last sent and this one went past (a burst
                // longer than the buffer, a backlog longer than one read): read them
                // from the store first.
                last if event.seq > last + 1 => {
                    let missed = self.read_after(last).await?;
                    if missed.is_empty() {
                        // Nothing is stored in between (pruned): go on from here.
                        self.last = event.seq;
                        return Some(event);
                    }
                    self.pending.extend(missed);
                    self.held = Some(event);
                }
                _ => {
                    self.last = event.seq;
                    return Some(event);
                }
            }
        }
    }

    async fn read_after(&mut self, last: u64) -> Option<Vec<Event>> {
        let vpn = self.vpn.clone();
        let events = blocking(move || vpn.events_after(last, MAX_EVENTS))
            .await
            .ok()?;
        self.more = events.len() == MAX_EVENTS;
        Some(events)
    }
}
