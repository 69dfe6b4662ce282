//! [`ApiClient`]: one typed method per API route.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use futures_util::{Stream, TryStreamExt as _};
use reqwest::header::{ACCEPT, ACCEPT_ENCODING, AUTHORIZATION, CONTENT_ENCODING, HeaderValue};
use reqwest::{Method, RequestBuilder, Response, Url};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use vpnctl_api::auth::{ApiToken, Scope, Secret, TokenId};
use vpnctl_api::body::{
    AckNotifications, CreateInvite, CreateJoinToken, CreateToken, CreateUser, CreatedInvite,
    CreatedJoinToken, CreatedToken, DeleteNodeQuery, DesiredQuery, DeviceView, EnrollRequest,
    EnrollResponse, EvacuateRequest, EvacuateTo, Evacuation, EventQuery, ExtendAccess, InviteQuery,
    IssuePeerRequest, IssuedPeerView, NodeBrief, NodeView, NotificationQuery, Page, PatchNode,
    PatchUser, PeerQuery, RedeemInvite, Redeemed, RegisterNode, RotatePeer, SetAccess,
    SetUserState, StoredReport, UsageView, UserQuery,
};
use vpnctl_api::error::{ApiError, ErrorCode};
use vpnctl_api::fingerprint::Fingerprint;
use vpnctl_api::join::{ConnectionString, JoinToken};
use vpnctl_api::json::JsonRow;
use vpnctl_api::keys::PublicKey;
use vpnctl_api::lifecycle::{Notification, Traffic};
use vpnctl_api::model::{
    Event, Invite, InviteId, Node, NodeId, Peer, PeerId, User, UserId, UserState,
};
use vpnctl_api::routes;
use vpnctl_api::time::Timestamp;
use vpnctl_api::wire::{DesiredUpdate, NodeReport};

use crate::error::ClientError;
use crate::pin::PinnedVerifier;

/// The server's default long-poll wait, in seconds.
pub const DEFAULT_WAIT_SECS: u64 = routes::DESIRED_WAIT_SECS;
/// How much longer than the server's wait the client waits for a long-poll answer.
const LONG_POLL_MARGIN: Duration = Duration::from_secs(15);

/// A typed client of one vpnctld. Cheap to clone (clones share connections).
#[derive(Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    base: String,
    token: Option<Secret>,
    timeout: Duration,
    /// Ask for large JSON answers gzipped ([`vpnctl_api::gzip`]).
    gzip: bool,
}

/// A compressed answer that inflates beyond this is refused.
const GUNZIP_MAX: usize = 256 << 20;

impl fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiClient")
            .field("base", &self.base)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .finish_non_exhaustive()
    }
}

/// The code of an error answer without an API error body (a proxy in between, an
/// older server).
fn code_of_status(status: u16) -> ErrorCode {
    match status {
        400 => ErrorCode::BadRequest,
        401 => ErrorCode::Unauthorized,
        403 => ErrorCode::Forbidden,
        404 => ErrorCode::NotFound,
        405 => ErrorCode::MethodNotAllowed,
        413 => ErrorCode::PayloadTooLarge,
        429 => ErrorCode::RateLimited,
        502..=504 => ErrorCode::Unavailable,
        500..=599 => ErrorCode::Internal,
        _ => ErrorCode::Unknown,
    }
}

/// The bytes of a JSON answer, decompressed when the server sent them gzipped.
async fn json_body(url: &str, resp: Response) -> Result<bytes::Bytes, ClientError> {
    let gzipped = resp.headers().get(CONTENT_ENCODING).is_some_and(|v| {
        v.as_bytes()
            .eq_ignore_ascii_case(vpnctl_api::gzip::ENCODING.as_bytes())
    });
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| ClientError::from_reqwest(url, &e))?;
    if !gzipped {
        return Ok(bytes);
    }
    vpnctl_api::gzip::gunzip(&bytes, GUNZIP_MAX)
        .map(bytes::Bytes::from)
        .map_err(|e| ClientError::Protocol {
            url: url.to_owned(),
            reason: e.to_string(),
        })
}

fn is_loopback_host(url: &Url) -> bool {
    let host = url.host_str().unwrap_or("");
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok_and(|a| a.is_loopback())
}

/// How long an idle pooled connection is kept; see `vpnctl_server::Limits`.
pub const POOL_IDLE: Duration = Duration::from_secs(5);

impl ApiClient {
    /// A client of the API at `base_url` (e.g. `https://vpn.example.com:7443`).
    ///
    /// `https` needs `pin`: the one certificate fingerprint trusted (no CA is).
    /// `http` is refused unless the host is loopback.
    pub fn new(
        base_url: &str,
        token: Option<Secret>,
        pin: Option<Fingerprint>,
    ) -> Result<Self, ClientError> {
        let url = Url::parse(base_url)
            .map_err(|e| ClientError::Config(format!("API URL {base_url:?}: {e}")))?;
        let builder = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(10))
            // Below vpnctld's idle limits (keep-alive connections without a request
            // are closed after `header_read_timeout_secs`, 10 s by default): a pooled
            // connection the server already closed would fail the next request.
            .pool_idle_timeout(POOL_IDLE)
            .user_agent(concat!("vpnctl-client/", env!("CARGO_PKG_VERSION")));
        let builder = match url.scheme() {
            "https" => {
                let pin = pin.ok_or_else(|| {
                    ClientError::Config(
                        "an https URL needs the server certificate's fingerprint to pin".into(),
                    )
                })?;
                let tls = PinnedVerifier::client_config(pin)
                    .map_err(|e| ClientError::Config(format!("TLS setup: {e}")))?;
                builder.use_preconfigured_tls(tls).https_only(true)
            }
            "http" => {
                if !is_loopback_host(&url) {
                    return Err(ClientError::Config(format!(
                        "plain http is only allowed to a loopback host, not {:?}; use https",
                        url.host_str().unwrap_or("")
                    )));
                }
                builder
            }
            other => {
                return Err(ClientError::Config(format!(
                    "unsupported URL scheme {other:?}"
                )));
            }
        };
        let http = builder
            .build()
            .map_err(|e| ClientError::Config(format!("HTTP client: {e}")))?;
        Ok(Self {
            http,
            base: base_url.trim_end_matches('/').to_owned(),
            token,
            timeout: Duration::from_secs(30),
            // Over loopback the bytes cost nothing and compressing costs the
            // server's CPU; over any network they are the cost.
            gzip: !is_loopback_host(&url),
        })
    }

    /// Whether large JSON answers are asked for gzipped (by default: unless the
    /// server is on a loopback address).
    #[must_use]
    pub fn with_compression(mut self, on: bool) -> Self {
        self.gzip = on;
        self
    }

    /// A client for the server a join token names, without an API token (for
    /// [`ApiClient::enroll`]).
    pub fn for_join_token(join: &JoinToken) -> Result<Self, ClientError> {
        Self::new(&join.url, None, join.fingerprint)
    }

    /// A client from an admin connection string (`vpnctl-connect:...`).
    pub fn from_connection(connection: &ConnectionString) -> Result<Self, ClientError> {
        Self::new(
            &connection.url,
            Some(connection.token.clone()),
            connection.fingerprint,
        )
    }

    /// The same connection with another API token.
    #[must_use]
    pub fn with_token(&self, token: Secret) -> Self {
        Self {
            token: Some(token),
            ..self.clone()
        }
    }

    /// Timeout of ordinary requests (default 30 s; long-polls get their own).
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub(crate) fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let mut req = self
            .http
            .request(method, self.url(path))
            .timeout(self.timeout);
        if let Some(token) = &self.token
            && let Ok(mut value) = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
        {
            value.set_sensitive(true);
            req = req.header(AUTHORIZATION, value);
        }
        req
    }

    pub(crate) async fn send(
        &self,
        path: &str,
        req: RequestBuilder,
    ) -> Result<Response, ClientError> {
        let url = self.url(path);
        let resp = req
            .send()
            .await
            .map_err(|e| ClientError::from_reqwest(&url, &e))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let body = resp
            .bytes()
            .await
            .map_err(|e| ClientError::from_reqwest(&url, &e))?;
        let error = serde_json::from_slice::<ApiError>(&body).unwrap_or_else(|_| ApiError {
            code: code_of_status(status.as_u16()),
            message: String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
        });
        Err(ClientError::Api {
            status: status.as_u16(),
            error,
        })
    }

    pub(crate) async fn json<T: DeserializeOwned>(
        &self,
        path: &str,
        req: RequestBuilder,
    ) -> Result<T, ClientError> {
        let resp = self.send(path, self.compressed(req)).await?;
        let url = self.url(path);
        let body = json_body(&url, resp).await?;
        serde_json::from_slice(&body).map_err(|e| ClientError::Protocol {
            url,
            reason: format!("JSON: {e}"),
        })
    }

    /// `req` asking for a gzipped answer, when this client does.
    fn compressed(&self, req: RequestBuilder) -> RequestBuilder {
        if self.gzip {
            req.header(ACCEPT_ENCODING, vpnctl_api::gzip::ENCODING)
        } else {
            req
        }
    }

    pub(crate) async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.json(path, self.request(Method::GET, path)).await
    }

    async fn with_body<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        self.json(path, self.request(method, path).json(body)).await
    }

    pub(crate) async fn post<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        self.with_body(Method::POST, path, body).await
    }

    // ------------------------------------------------------------ health

    /// `GET /healthz` (no token needed).
    pub async fn healthz(&self) -> Result<(), ClientError> {
        let path = routes::HEALTHZ.template();
        self.send(path, self.request(Method::GET, path)).await?;
        Ok(())
    }

    // ------------------------------------------------------------ users

    /// Every user, page by page (each a bounded request).
    pub async fn users(&self) -> Result<Vec<User>, ClientError> {
        self.all_pages(UserQuery::default()).await
    }

    /// One page of users (`after`, `limit`, `name` of `query`).
    pub async fn users_page(&self, query: &UserQuery) -> Result<Page<User>, ClientError> {
        self.page(routes::USERS.template(), query).await
    }

    /// The pages of users `query` selects, each one bounded request, as they come:
    /// for printing or scanning any number of users in bounded memory.
    pub fn users_pages(
        &self,
        query: UserQuery,
    ) -> impl Stream<Item = Result<Vec<User>, ClientError>> + Send + '_ {
        self.pages(query)
    }

    /// Every item of a paged list, in one vector.
    async fn all_pages<Q: PagedQuery>(&self, query: Q) -> Result<Vec<Q::Item>, ClientError> {
        let mut pages = std::pin::pin!(self.pages(query));
        let mut all = Vec::new();
        while let Some(items) = pages.try_next().await? {
            all.extend(items);
        }
        Ok(all)
    }

    /// The pages of a paged list: `query`, then the pages after it (the
    /// `x-next-after` cursor put into the query) to the last.
    pub(crate) fn pages<Q: PagedQuery>(
        &self,
        query: Q,
    ) -> impl Stream<Item = Result<Vec<Q::Item>, ClientError>> + Send + '_ {
        futures_util::stream::try_unfold(Some(query), move |query| async move {
            let Some(mut query) = query else {
                return Ok(None);
            };
            let page: Page<Q::Item> = self.page(Q::PATH, &query).await?;
            let rest = page.next.map(|next| {
                query.set_cursor(next);
                query
            });
            Ok(Some((page.items, rest)))
        })
    }

    /// A GET of one page: the items and the `x-next-after` cursor.
    pub(crate) async fn page<Q: Serialize + ?Sized, T: JsonRow>(
        &self,
        path: &str,
        query: &Q,
    ) -> Result<Page<T>, ClientError> {
        let resp = self
            .send(
                path,
                self.compressed(self.request(Method::GET, path).query(query)),
            )
            .await?;
        let url = self.url(path);
        let next = match resp.headers().get(routes::NEXT_AFTER_HEADER) {
            None => None,
            Some(v) => Some(
                v.to_str()
                    .ok()
                    .and_then(|v| v.parse::<u64>().ok())
                    .ok_or_else(|| ClientError::Protocol {
                        url: url.clone(),
                        reason: format!("{} is not a number", routes::NEXT_AFTER_HEADER),
                    })?,
            ),
        };
        let body = json_body(&url, resp).await?;
        let items = T::read_rows(&body).map_err(|e| ClientError::Protocol {
            url,
            reason: format!("JSON: {e}"),
        })?;
        Ok(Page { items, next })
    }

    pub async fn user_by_telegram(&self, telegram_id: i64) -> Result<Option<User>, ClientError> {
        let path = routes::USERS.template();
        let users: Vec<User> = self
            .json(
                path,
                self.request(Method::GET, path).query(&UserQuery {
                    telegram_id: Some(telegram_id),
                    ..UserQuery::default()
                }),
            )
            .await?;
        Ok(users.into_iter().next())
    }

    pub async fn user(&self, id: UserId) -> Result<User, ClientError> {
        self.get(&routes::USER.path(id)).await
    }

    /// The users of `ids` that exist, in id order, in one request per
    /// [`routes::PAGE_MAX`] ids: what a list of peers needs to name their owners.
    pub async fn users_by_id(&self, ids: &[UserId]) -> Result<Vec<User>, ClientError> {
        let query = |chunk| UserQuery {
            ids: Some(vpnctl_api::body::IdList(chunk)),
            ..UserQuery::default()
        };
        self.by_id(routes::USERS.template(), ids, query, |u: &User| u.id)
            .await
    }

    pub async fn create_user(&self, new: &CreateUser) -> Result<User, ClientError> {
        self.post(routes::USERS.template(), new).await
    }

    pub async fn update_user(&self, id: UserId, patch: &PatchUser) -> Result<User, ClientError> {
        self.with_body(Method::PATCH, &routes::USER.path(id), patch)
            .await
    }

    pub async fn set_user_state(&self, id: UserId, state: UserState) -> Result<User, ClientError> {
        self.with_body(
            Method::PUT,
            &routes::USER_STATE.path(id),
            &SetUserState { state },
        )
        .await
    }

    pub async fn set_access(
        &self,
        id: UserId,
        until: Option<Timestamp>,
    ) -> Result<User, ClientError> {
        self.with_body(
            Method::PUT,
            &routes::USER_ACCESS.path(id),
            &SetAccess { until },
        )
        .await
    }

    pub async fn extend_access(&self, id: UserId, days: u32) -> Result<User, ClientError> {
        self.post(&routes::USER_ACCESS_EXTEND.path(id), &ExtendAccess { days })
            .await
    }

    pub async fn delete_user(&self, id: UserId) -> Result<(), ClientError> {
        let path = routes::USER.path(id);
        self.send(&path, self.request(Method::DELETE, &path))
            .await?;
        Ok(())
    }

    // ------------------------------------------------------------ invites

    /// Every invite, page by page (each a bounded request).
    pub async fn invites(&self) -> Result<Vec<Invite>, ClientError> {
        self.all_pages(InviteQuery::default()).await
    }

    /// The pages of invites, each one bounded request, as they come.
    pub fn invites_pages(
        &self,
    ) -> impl Stream<Item = Result<Vec<Invite>, ClientError>> + Send + '_ {
        self.pages(InviteQuery::default())
    }

    /// One page of invites (`after`, `limit`).
    pub async fn invites_page(&self, query: &InviteQuery) -> Result<Page<Invite>, ClientError> {
        self.page(routes::INVITES.template(), query).await
    }

    pub async fn invite(&self, id: InviteId) -> Result<Invite, ClientError> {
        self.get(&routes::INVITE.path(id)).await
    }

    /// Creates an invite; the answer carries its code, shown this once.
    pub async fn create_invite(&self, new: &CreateInvite) -> Result<CreatedInvite, ClientError> {
        self.post(routes::INVITES.template(), new).await
    }

    pub async fn revoke_invite(&self, id: InviteId) -> Result<Invite, ClientError> {
        self.post(&routes::INVITE_REVOKE.path(id), &serde_json::json!({}))
            .await
    }

    pub async fn redeem_invite(&self, redeem: &RedeemInvite) -> Result<Redeemed, ClientError> {
        self.post(routes::INVITES_REDEEM.template(), redeem).await
    }

    // ------------------------------------------------------------ nodes

    pub async fn nodes(&self) -> Result<Vec<NodeView>, ClientError> {
        self.get(routes::NODES.template()).await
    }

    /// Every node in brief: name, region, transport and what placement judges.
    pub async fn node_briefs(&self) -> Result<Vec<NodeBrief>, ClientError> {
        self.get(routes::NODES_BRIEF.template()).await
    }

    /// A user's devices with their nodes in brief and latest counters.
    pub async fn user_devices(&self, user: UserId) -> Result<Vec<DeviceView>, ClientError> {
        self.get(&routes::USER_DEVICES.path(user)).await
    }

    pub async fn node(&self, id: NodeId) -> Result<NodeView, ClientError> {
        self.get(&routes::NODE.path(id)).await
    }

    pub async fn register_node(&self, new: &RegisterNode) -> Result<Node, ClientError> {
        self.post(routes::NODES.template(), new).await
    }

    pub async fn update_node(&self, id: NodeId, patch: &PatchNode) -> Result<Node, ClientError> {
        self.with_body(Method::PATCH, &routes::NODE.path(id), patch)
            .await
    }

    /// Keeps serving the node's peers but takes no new ones.
    pub async fn drain_node(&self, id: NodeId) -> Result<Node, ClientError> {
        self.post(&routes::NODE_DRAIN.path(id), &serde_json::json!({}))
            .await
    }

    pub async fn disable_node(&self, id: NodeId) -> Result<Node, ClientError> {
        self.post(&routes::NODE_DISABLE.path(id), &serde_json::json!({}))
            .await
    }

    pub async fn activate_node(&self, id: NodeId) -> Result<Node, ClientError> {
        self.post(&routes::NODE_ACTIVATE.path(id), &serde_json::json!({}))
            .await
    }

    /// Deletes a node; with peers on it only when `force` (which revokes them).
    pub async fn delete_node(&self, id: NodeId, force: bool) -> Result<(), ClientError> {
        let path = routes::NODE.path(id);
        self.send(
            &path,
            self.request(Method::DELETE, &path)
                .query(&DeleteNodeQuery { force }),
        )
        .await?;
        Ok(())
    }

    /// Re-issues every device of the node on healthy nodes (`to` picks where) and
    /// sets the node to draining; each user gets their new config from the bot.
    pub async fn evacuate_node(
        &self,
        id: NodeId,
        to: EvacuateTo,
    ) -> Result<Evacuation, ClientError> {
        self.post(&routes::NODE_EVACUATE.path(id), &EvacuateRequest { to })
            .await
    }

    /// A single-use join token for the node daemon, and when it expires.
    pub async fn create_join_token(
        &self,
        id: NodeId,
        valid_for_secs: Option<i64>,
    ) -> Result<(JoinToken, Timestamp), ClientError> {
        let created: CreatedJoinToken = self
            .post(
                &routes::NODE_JOIN_TOKEN.path(id),
                &CreateJoinToken { valid_for_secs },
            )
            .await?;
        let token = JoinToken::parse(&created.join_token)?;
        Ok((token, created.expires_at))
    }

    /// Enrolls this node with a join token (no API token needed): the answer is the
    /// node's record and its own API token (shown once).
    pub async fn enroll(
        &self,
        join: &JoinToken,
        public_key: PublicKey,
        listen_port: Option<u16>,
    ) -> Result<(Node, Secret), ClientError> {
        let path = routes::ENROLL.template();
        let body = EnrollRequest {
            join_secret: join.secret.expose().to_owned(),
            public_key,
            listen_port,
        };
        let req = self
            .http
            .post(self.url(path))
            .timeout(self.timeout)
            .json(&body);
        let resp: EnrollResponse = self.json(path, req).await?;
        Ok((resp.node, Secret::new(resp.token)))
    }

    /// Long-polls the node's desired state after revision `after`: answers as soon as
    /// there is something newer, else after `wait` with `UpToDate`.
    pub async fn desired(
        &self,
        node: NodeId,
        after: u64,
        wait: Duration,
    ) -> Result<DesiredUpdate, ClientError> {
        let path = routes::NODE_DESIRED.path(node);
        let req = self
            .request(Method::GET, &path)
            .query(&DesiredQuery {
                after,
                wait: Some(wait.as_secs()),
            })
            .timeout(wait + LONG_POLL_MARGIN);
        self.json(&path, req).await
    }

    /// Sends the node's report.
    pub async fn report(&self, node: NodeId, report: &NodeReport) -> Result<(), ClientError> {
        let path = routes::NODE_REPORT.path(node);
        self.send(&path, self.request(Method::POST, &path).json(report))
            .await?;
        Ok(())
    }

    /// The node's latest report, if it sent one since the server started.
    pub async fn node_report(&self, node: NodeId) -> Result<Option<StoredReport>, ClientError> {
        match self.get(&routes::NODE_REPORT.path(node)).await {
            Ok(report) => Ok(Some(report)),
            Err(e) if e.code() == Some(ErrorCode::NoReport) => Ok(None),
            Err(e) => Err(e),
        }
    }

    // ------------------------------------------------------------ peers

    /// Every peer `filter` selects, page by page (each a bounded request).
    pub async fn peers(&self, filter: PeerQuery) -> Result<Vec<Peer>, ClientError> {
        self.all_pages(filter).await
    }

    /// The pages of peers `query` selects, each one bounded request, as they come.
    pub fn peers_pages(
        &self,
        query: PeerQuery,
    ) -> impl Stream<Item = Result<Vec<Peer>, ClientError>> + Send + '_ {
        self.pages(query)
    }

    /// One page of peers (`user`, `node`, `region`, `after`, `limit` of `query`).
    pub async fn peers_page(&self, query: &PeerQuery) -> Result<Page<Peer>, ClientError> {
        self.page(routes::PEERS.template(), query).await
    }

    pub async fn peer(&self, id: PeerId) -> Result<Peer, ClientError> {
        self.get(&routes::PEER.path(id)).await
    }

    /// The peers of `ids` that exist, in id order, in one request per
    /// [`routes::PAGE_MAX`] ids: what a client told which peers changed reads them
    /// again with (a revoked one is simply not there).
    pub async fn peers_by_id(&self, ids: &[PeerId]) -> Result<Vec<Peer>, ClientError> {
        let query = |chunk| PeerQuery {
            ids: Some(vpnctl_api::body::IdList(chunk)),
            ..PeerQuery::default()
        };
        self.by_id(routes::PEERS.template(), ids, query, |p: &Peer| p.id)
            .await
    }

    /// The rows of `ids` from the list at `path`, asked `PAGE_MAX` ids a request
    /// with `query`: those that exist, in id order (`id` reads it), once each.
    async fn by_id<I, T, Q>(
        &self,
        path: &str,
        ids: &[I],
        query: impl Fn(Vec<I>) -> Q,
        id: fn(&T) -> I,
    ) -> Result<Vec<T>, ClientError>
    where
        I: Copy + Ord,
        T: JsonRow,
        Q: Serialize,
    {
        let mut out: Vec<T> = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(routes::PAGE_MAX) {
            let rows: Page<T> = self.page(path, &query(chunk.to_vec())).await?;
            out.extend(rows.items);
        }
        // Each request's answer is in id order; so is the whole.
        out.sort_unstable_by_key(id);
        out.dedup_by_key(|r| id(r));
        Ok(out)
    }

    pub async fn issue_peer(&self, req: &IssuePeerRequest) -> Result<IssuedPeerView, ClientError> {
        self.post(routes::PEERS.template(), req).await
    }

    /// The peer's wg-quick config text. It contains the private key: never log it.
    pub async fn peer_config(&self, id: PeerId) -> Result<String, ClientError> {
        let path = routes::PEER_CONFIG.path(id);
        let resp = self.send(&path, self.request(Method::GET, &path)).await?;
        let url = self.url(&path);
        resp.text()
            .await
            .map_err(|e| ClientError::from_reqwest(&url, &e))
    }

    /// The peer's config as a QR code (PNG bytes).
    pub async fn peer_qr_png(&self, id: PeerId) -> Result<Vec<u8>, ClientError> {
        let path = routes::PEER_QR.path(id);
        let resp = self.send(&path, self.request(Method::GET, &path)).await?;
        let url = self.url(&path);
        resp.bytes()
            .await
            .map(|b| b.to_vec())
            .map_err(|e| ClientError::from_reqwest(&url, &e))
    }

    pub async fn rotate_peer(
        &self,
        id: PeerId,
        public_key: Option<PublicKey>,
    ) -> Result<IssuedPeerView, ClientError> {
        self.post(&routes::PEER_ROTATE.path(id), &RotatePeer { public_key })
            .await
    }

    /// Revokes the peer: it leaves its node and its address is freed.
    pub async fn revoke_peer(&self, id: PeerId) -> Result<Peer, ClientError> {
        let path = routes::PEER.path(id);
        self.json(&path, self.request(Method::DELETE, &path)).await
    }

    // ------------------------------------------------------------ tokens

    pub async fn tokens(&self) -> Result<Vec<ApiToken>, ClientError> {
        self.get(routes::TOKENS.template()).await
    }

    /// Creates an API token; the secret is shown this once.
    pub async fn create_token(
        &self,
        scope: Scope,
        label: &str,
    ) -> Result<(ApiToken, Secret), ClientError> {
        let created: CreatedToken = self
            .post(
                routes::TOKENS.template(),
                &CreateToken {
                    scope,
                    label: label.to_owned(),
                },
            )
            .await?;
        Ok((created.token, Secret::new(created.secret)))
    }

    pub async fn revoke_token(&self, id: TokenId) -> Result<ApiToken, ClientError> {
        let path = routes::TOKEN.path(id);
        self.json(&path, self.request(Method::DELETE, &path)).await
    }

    // ------------------------------------------------------------ lifecycle

    /// A user's traffic this period and overall, with their quota.
    pub async fn usage(&self, user: UserId) -> Result<UsageView, ClientError> {
        self.get(&routes::USER_USAGE.path(user)).await
    }

    /// A peer's accounted traffic.
    pub async fn peer_traffic(&self, peer: PeerId) -> Result<Traffic, ClientError> {
        self.get(&routes::PEER_TRAFFIC.path(peer)).await
    }

    /// The bot's unacknowledged notifications, oldest first; with `wait`, waits up
    /// to that long for the first one.
    pub async fn notifications(
        &self,
        limit: Option<usize>,
        wait: Option<Duration>,
    ) -> Result<Vec<Notification>, ClientError> {
        let path = routes::NOTIFICATIONS.template();
        let wait_secs = wait.map(|w| w.as_secs());
        let mut request = self
            .request(Method::GET, path)
            .query(&NotificationQuery { limit, wait_secs });
        if let Some(w) = wait {
            request = request.timeout(w + Duration::from_secs(10));
        }
        self.json(path, request).await
    }

    /// Acknowledges every notification up to `upto`; returns the new cursor.
    pub async fn ack_notifications(&self, upto: u64) -> Result<u64, ClientError> {
        #[derive(Deserialize)]
        struct Cursor {
            cursor: u64,
        }
        let c: Cursor = self
            .post(
                routes::NOTIFICATIONS_ACK.template(),
                &AckNotifications { upto },
            )
            .await?;
        Ok(c.cursor)
    }

    /// The Prometheus exposition of `/metrics`.
    pub async fn metrics(&self) -> Result<String, ClientError> {
        let path = routes::METRICS.template();
        let response = self.send(path, self.request(Method::GET, path)).await?;
        let url = self.url(path);
        response
            .text()
            .await
            .map_err(|e| ClientError::from_reqwest(&url, &e))
    }

    // ------------------------------------------------------------ events

    /// Events after sequence number `after` (oldest first), at most `limit`.
    pub async fn events(
        &self,
        after: Option<u64>,
        limit: Option<usize>,
    ) -> Result<Vec<Event>, ClientError> {
        let path = routes::EVENTS.template();
        self.json(
            path,
            self.request(Method::GET, path).query(&EventQuery {
                after,
                limit,
                ..EventQuery::default()
            }),
        )
        .await
    }

    /// The newest `limit` events before sequence number `before` (`None`: the newest
    /// of all), oldest first.
    pub async fn events_before(
        &self,
        before: Option<u64>,
        limit: Option<usize>,
    ) -> Result<Vec<Event>, ClientError> {
        let path = routes::EVENTS.template();
        self.json(
            path,
            self.request(Method::GET, path).query(&EventQuery {
                before: Some(before.unwrap_or(u64::MAX)),
                limit,
                ..EventQuery::default()
            }),
        )
        .await
    }

    /// The live event stream (Server-Sent Events): first the events after `after`
    /// (when given), then each new one as it is committed. Ends when the server shuts
    /// down or the connection breaks. An `after` beyond the newest event the server
    /// ever committed is a 409 ([`ErrorCode::Conflict`]): its store went back (a
    /// restore from a backup); read the log again from its end.
    pub async fn events_stream(
        &self,
        after: Option<u64>,
    ) -> Result<impl Stream<Item = Result<Event, ClientError>> + Send + 'static, ClientError> {
        Ok(self.events_stream_at(after, None).await?.1)
    }

    /// [`Self::events_stream`] in the log `log` (the identity a stream of it said,
    /// [`StreamStart::log`]; another store's is a 409: it was restored from a
    /// backup), with where the stream began ([`StreamStart`]).
    pub async fn events_stream_at(
        &self,
        after: Option<u64>,
        log: Option<u64>,
    ) -> Result<
        (
            StreamStart,
            impl Stream<Item = Result<Event, ClientError>> + Send + 'static,
        ),
        ClientError,
    > {
        let path = routes::EVENTS_STREAM.template();
        let mut req = self
            .http
            .get(self.url(path))
            .header(ACCEPT, "text/event-stream")
            .query(&EventQuery {
                after,
                log,
                ..EventQuery::default()
            });
        if let Some(token) = &self.token
            && let Ok(mut value) = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
        {
            value.set_sensitive(true);
            req = req.header(AUTHORIZATION, value);
        }
        let resp = self.send(path, req).await?;
        let number = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
        };
        let start = StreamStart {
            after: number(routes::STREAM_AFTER_HEADER).or(after),
            log: number(routes::STREAM_LOG_HEADER),
        };
        Ok((
            start,
            crate::sse::events(Box::pin(resp.bytes_stream()), self.url(path)),
        ))
    }
}

/// Where an event stream began, from its answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamStart {
    /// The event it sends the events after ([`routes::STREAM_AFTER_HEADER`]):
    /// `after=` when given, else the newest event when it opened (`None` from a
    /// server that does not say). A client that opened it without `after=` resumes
    /// from there, missing nothing in between.
    pub after: Option<u64>,
    /// The event log's identity ([`routes::STREAM_LOG_HEADER`]), made anew when the
    /// store is restored from a backup: resume with it, and a restore in between
    /// is a 409 rather than other events under numbers already seen.
    pub log: Option<u64>,
}

/// The query of a paged list: where the list is read, and how the `x-next-after`
/// cursor of one page goes into the query of the next.
pub(crate) trait PagedQuery: Serialize + Send + Sync + 'static {
    type Item: JsonRow + Send + 'static;
    const PATH: &'static str;
    fn set_cursor(&mut self, next: u64);
}

impl PagedQuery for UserQuery {
    type Item = User;
    const PATH: &'static str = routes::USERS.template();
    fn set_cursor(&mut self, next: u64) {
        self.after = Some(UserId(next));
    }
}

impl PagedQuery for InviteQuery {
    type Item = Invite;
    const PATH: &'static str = routes::INVITES.template();
    fn set_cursor(&mut self, next: u64) {
        self.after = Some(InviteId(next));
    }
}

impl PagedQuery for PeerQuery {
    type Item = Peer;
    const PATH: &'static str = routes::PEERS.template();
    fn set_cursor(&mut self, next: u64) {
        self.after = Some(PeerId(next));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compression_is_asked_for_unless_the_server_is_on_loopback() {
        let pin = Some(Fingerprint::of_der(b"cert"));
        for (url, gzip) in [
            ("http://127.0.0.1:7443", false),
            ("http://[::1]:7443", false),
            ("http://localhost:7443", false),
            ("https://127.0.0.1:7443", false),
            ("https://vpn.example.com:7443", true),
            ("https://192.0.2.10:7443", true),
            ("https://[2001:db8::1]:7443", true),
        ] {
            let client = ApiClient::new(url, None, pin).unwrap();
            assert_eq!(client.gzip, gzip, "{url}");
            assert!(!client.with_compression(false).gzip, "{url}");
        }
    }
}
