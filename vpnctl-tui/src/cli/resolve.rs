//! Names or ids, the same way for every command: users and nodes by id (`12`, `u12`,
//! `n12`) or exact name, peers by id (`p12`) or `user/device`. Nothing found is
//! exit 4 (like the API's 404); several found is a usage error listing them.

use futures_util::TryStreamExt as _;
use vpnctl_api::body::{NodeView, PeerQuery, UserQuery};
use vpnctl_client::ApiClient;
use vpnctl_core::{NodeId, Peer, PeerId, User, UserId};

use super::CliError;

/// The one item `text` names, among `items`.
fn one<'a, T>(
    items: impl IntoIterator<Item = &'a T>,
    text: &str,
    what: &str,
    matches: impl Fn(&T) -> bool,
    label: impl Fn(&T) -> String,
) -> Result<&'a T, CliError> {
    let found: Vec<&T> = items.into_iter().filter(|i| matches(i)).collect();
    match found.as_slice() {
        [one] => Ok(one),
        [] => Err(CliError::NotFound(format!(
            "no {what} named or numbered {text:?}; `vpnctl {what}s list` shows them"
        ))),
        several => Err(CliError::Usage(format!(
            "{text:?} matches several {what}s ({}): give the id",
            several
                .iter()
                .map(|i| label(i))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// The user `text` names among `users`.
pub fn user_in<'a>(users: &'a [User], text: &str) -> Result<&'a User, CliError> {
    let id = text.trim().parse::<UserId>().ok();
    one(
        users,
        text,
        "user",
        |u| u.name == text || Some(u.id) == id,
        |u| format!("u{} {}", u.id, u.name),
    )
}

/// The user `text` names (an id, `u12`, or an exact name): point reads, the name
/// searched on the server, so resolving costs the same with 10 users or 100,000.
pub async fn user(api: &ApiClient, text: &str) -> Result<User, CliError> {
    let mut found: Vec<User> = Vec::new();
    if let Ok(id) = text.trim().parse::<UserId>() {
        match api.user(id).await {
            Ok(user) => found.push(user),
            Err(e) if e.status() == Some(404) => {}
            Err(e) => return Err(e.into()),
        }
    }
    // The server searches by substring; keep exact names.
    let mut pages = std::pin::pin!(api.users_pages(UserQuery {
        name: Some(text.to_owned()),
        ..UserQuery::default()
    }));
    while let Some(users) = pages.try_next().await? {
        found.extend(users.into_iter().filter(|u| u.name == text));
    }
    found.sort_by_key(|u| u.id);
    found.dedup_by_key(|u| u.id);
    user_in(&found, text).cloned()
}

/// The node `text` names among `nodes`, or `None` when none does (for arguments
/// that may also be a region code).
pub fn node_in_or_none<'a>(
    nodes: &'a [NodeView],
    text: &str,
) -> Result<Option<&'a NodeView>, CliError> {
    match node_in(nodes, text) {
        Ok(v) => Ok(Some(v)),
        Err(CliError::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The node `text` names among `nodes`.
pub fn node_in<'a>(nodes: &'a [NodeView], text: &str) -> Result<&'a NodeView, CliError> {
    let id = text.trim().parse::<NodeId>().ok();
    one(
        nodes,
        text,
        "node",
        |v| v.node.name == text || Some(v.node.id) == id,
        |v| format!("n{} {}", v.node.id, v.node.name),
    )
}

/// The node `text` names.
pub async fn node(api: &ApiClient, text: &str) -> Result<NodeView, CliError> {
    let nodes = api.nodes().await?;
    node_in(&nodes, text).cloned()
}

/// The peer `text` names: `p12`/`12`, or `user/device` (the user by name or id).
pub async fn peer(api: &ApiClient, text: &str) -> Result<Peer, CliError> {
    if let Some((user_text, device)) = text.split_once('/') {
        let user = user(api, user_text).await?;
        let peers = api
            .peers(PeerQuery {
                user: Some(user.id),
                node: None,
                ..PeerQuery::default()
            })
            .await?;
        let node_names = if peers.iter().filter(|p| p.device == device).count() > 1 {
            api.nodes().await?
        } else {
            Vec::new()
        };
        return one(
            &peers,
            text,
            "peer",
            |p| p.device == device,
            |p| {
                let node = node_names
                    .iter()
                    .find(|v| v.node.id == p.node)
                    .map_or_else(|| format!("n{}", p.node), |v| v.node.name.clone());
                format!("p{} on {node}", p.id)
            },
        )
        .cloned();
    }
    let id = text.trim().parse::<PeerId>().map_err(|_| {
        CliError::Usage(format!(
            "{text:?} is neither a peer id (`p12`, `12`) nor `user/device` (`alice/phone`)"
        ))
    })?;
    match api.peer(id).await {
        Ok(peer) => Ok(peer),
        Err(e) if e.status() == Some(404) => Err(CliError::NotFound(format!(
            "no peer p{id}; `vpnctl peers list` shows them"
        ))),
        Err(e) => Err(e.into()),
    }
}
