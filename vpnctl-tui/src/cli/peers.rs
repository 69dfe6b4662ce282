//! `vpnctl peers`: devices and their configs: issue, config, rotate, revoke.

use std::io::Write;
use std::path::Path;

use futures_util::TryStreamExt as _;
use serde::Serialize;
use vpnctl_api::body::{IssuePeerRequest, NodeView, PeerQuery};
use vpnctl_client::ApiClient;
use vpnctl_core::{Peer, User};

use super::{Ask, CliError, ConfigOutput, JsonArray, PeersCommand, confirm, json, resolve};
use crate::app::{offered, placement};
use crate::configs::write_config;

pub(super) async fn run(
    api: &ApiClient,
    cmd: PeersCommand,
    as_json: bool,
    out: &mut dyn Write,
    ask: &mut Ask<'_>,
) -> Result<(), CliError> {
    match cmd {
        PeersCommand::List {
            user,
            node,
            region,
            access,
            device,
            address,
            key,
        } => {
            // The node list names nodes in the table and checks --node and --region;
            // JSON without them needs none of it.
            let nodes = if as_json && node.is_none() && region.is_none() {
                Vec::new()
            } else {
                api.nodes().await?
            };
            if let Some(code) = &region
                && !nodes
                    .iter()
                    .any(|v| v.node.region.code.eq_ignore_ascii_case(code))
            {
                return Err(CliError::NotFound(format!(
                    "no node is in region {code:?} (regions: {})",
                    super::nodes::regions(&nodes)
                )));
            }
            let node = node
                .as_deref()
                .map(|n| resolve::node_in(&nodes, n))
                .transpose()?;
            if let (Some(v), Some(code)) = (node, &region)
                && !v.node.region.code.eq_ignore_ascii_case(code)
            {
                return Err(CliError::Usage(format!(
                    "{} is in region {}, not {code}: pass one of --node and --region",
                    v.node.name, v.node.region.code
                )));
            }
            let query = PeerQuery {
                user: match user.as_deref() {
                    Some(u) => Some(resolve::user(api, u).await?.id),
                    None => None,
                },
                node: node.map(|v| v.node.id),
                region,
                access,
                device,
                address,
                public_key: key,
                ..PeerQuery::default()
            };
            // "Who is 10.8.3.7?", "whose key is this?": a few peers at most, and
            // none is an answer of its own (exit 4), as for a name.
            if address.is_some() || query.public_key.is_some() {
                let found = api.peers(query.clone()).await?;
                if found.is_empty() {
                    let what = match (address, &query.public_key) {
                        (Some(a), _) => format!("holds {a}"),
                        (None, Some(k)) => format!("has the key {k}"),
                        (None, None) => String::new(),
                    };
                    return Err(CliError::NotFound(format!(
                        "no peer {what}{}",
                        if query.user.is_some() || query.node.is_some() || query.region.is_some() {
                            " among those asked for"
                        } else {
                            ""
                        }
                    )));
                }
            }
            if as_json {
                // Page by page: any number of peers in bounded memory.
                let mut array = JsonArray::start(out)?;
                let mut pages = std::pin::pin!(api.peers_pages(query));
                while let Some(peers) = pages.try_next().await? {
                    for p in &peers {
                        array.push(out, p)?;
                    }
                }
                return array.finish(out);
            }
            // The table names users and nodes: page by page, each page's users
            // read by id (remembered for the next pages), never the whole table.
            let mut names = UserNames::default();
            let mut pages = std::pin::pin!(api.peers_pages(query));
            while let Some(peers) = pages.try_next().await? {
                names.read(api, &peers).await?;
                for p in &peers {
                    writeln!(
                        out,
                        "{:<7} {:<6} {:<16} {:<16} {:<12} {}",
                        format!("p{}", p.id),
                        format!("u{}", p.user),
                        names.get(p.user),
                        p.device,
                        node_name(&nodes, p),
                        p.ipv4
                    )?;
                }
            }
            Ok(())
        }
        PeersCommand::Issue {
            user,
            target,
            device,
            output,
        } => {
            refuse_existing_file(&output)?;
            let (user, nodes) = tokio::try_join!(resolve::user(api, &user), async {
                api.nodes().await.map_err(CliError::from)
            })?;
            let user = &user;
            let node = issue_target(&nodes, &target)?;
            let device = match device {
                Some(name) => name,
                None => {
                    let theirs = api
                        .peers(PeerQuery {
                            user: Some(user.id),
                            node: None,
                            ..PeerQuery::default()
                        })
                        .await?;
                    vpnctl_core::devices::next_device_name(&theirs)
                }
            };
            let issued = api
                .issue_peer(&IssuePeerRequest {
                    user: user.id,
                    node: node.node.id,
                    device,
                    public_key: None,
                })
                .await?;
            let config = match issued.config {
                Some(config) => config,
                None => api.peer_config(issued.peer.id).await?,
            };
            let done = Delivered {
                what: "issued",
                user,
                node: &node.node.name,
                peer: &issued.peer,
                config: &config,
            };
            deliver(&done, &output, as_json, out)
        }
        PeersCommand::Config { peer, output } => {
            refuse_existing_file(&output)?;
            let peer = resolve::peer(api, &peer).await?;
            let (config, user, node) = tokio::try_join!(
                api.peer_config(peer.id),
                api.user(peer.user),
                api.node(peer.node)
            )?;
            let done = Delivered {
                what: "config of",
                user: &user,
                node: &node.node.name,
                peer: &peer,
                config: &config,
            };
            deliver(&done, &output, as_json, out)
        }
        PeersCommand::Rotate { peer, output, yes } => {
            refuse_existing_file(&output)?;
            let peer = resolve::peer(api, &peer).await?;
            let (user, node) = tokio::try_join!(api.user(peer.user), api.node(peer.node))?;
            confirm(
                ask,
                yes,
                &format!(
                    "New keys for p{} ({} of {})? Its current config stops working.",
                    peer.id, peer.device, user.name
                ),
                || {
                    format!(
                        "refusing to rotate p{} without --yes; confirm at a terminal or pass --yes",
                        peer.id
                    )
                },
            )?;
            let rotated = api.rotate_peer(peer.id, None).await?;
            let config = match rotated.config {
                Some(config) => config,
                None => api.peer_config(rotated.peer.id).await?,
            };
            let done = Delivered {
                what: "rotated",
                user: &user,
                node: &node.node.name,
                peer: &rotated.peer,
                config: &config,
            };
            deliver(&done, &output, as_json, out)
        }
        PeersCommand::Revoke { peer, yes } => {
            let peer = resolve::peer(api, &peer).await?;
            let user = api.user(peer.user).await?;
            confirm(
                ask,
                yes,
                &format!(
                    "Revoke p{} ({} of {})? The device loses access.",
                    peer.id, peer.device, user.name
                ),
                || {
                    format!(
                        "refusing to revoke p{} without --yes; confirm at a terminal or pass --yes",
                        peer.id
                    )
                },
            )?;
            let revoked = api.revoke_peer(peer.id).await?;
            if as_json {
                return json(out, &revoked);
            }
            writeln!(
                out,
                "revoked p{} ({} of u{} {})",
                revoked.id, revoked.device, user.id, user.name
            )?;
            Ok(())
        }
    }
}

fn node_name(nodes: &[NodeView], p: &Peer) -> String {
    nodes
        .iter()
        .find(|v| v.node.id == p.node)
        .map_or_else(|| format!("n{}", p.node), |v| v.node.name.clone())
}

/// The node a `NODE|REGION` argument means: a node by name or id, else the node of
/// that region core's placement prefers among those it offers.
fn issue_target<'a>(nodes: &'a [NodeView], text: &str) -> Result<&'a NodeView, CliError> {
    if let Some(v) = resolve::node_in_or_none(nodes, text)? {
        return Ok(v);
    }
    let region: Vec<&NodeView> = nodes
        .iter()
        .filter(|v| v.node.region.code.eq_ignore_ascii_case(text))
        .collect();
    if region.is_empty() {
        return Err(CliError::NotFound(format!(
            "{text:?} is neither a node (name or id) nor a region code (regions: {})",
            super::nodes::regions(nodes)
        )));
    }
    offered(nodes)
        .into_iter()
        .find(|v| v.node.region.code.eq_ignore_ascii_case(text))
        .ok_or_else(|| {
            CliError::Refused(format!(
                "no node in {text} takes new devices now ({}); name a node to place it there anyway",
                region
                    .iter()
                    .map(|v| format!("{} {}", v.node.name, placement(v).availability))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
}

/// Checked before anything changes: an issued peer whose config cannot be written
/// would be a device nobody has.
fn refuse_existing_file(output: &ConfigOutput) -> Result<(), CliError> {
    match &output.out {
        Some(path) if !output.force && path.exists() => Err(CliError::Usage(format!(
            "{} exists: pass --force to overwrite it",
            path.display()
        ))),
        _ => Ok(()),
    }
}

/// A config to hand over.
struct Delivered<'a> {
    /// `issued`, `rotated`, `config of`.
    what: &'a str,
    user: &'a User,
    node: &'a str,
    peer: &'a Peer,
    config: &'a str,
}

/// Hands a config over where the admin asked: a file (0600), a QR, stdout (the
/// config alone, so that `> file` works). The private key leaves only in the config.
fn deliver(
    d: &Delivered<'_>,
    output: &ConfigOutput,
    as_json: bool,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let summary = format!(
        "{} p{} {}/{} on {} ({})",
        d.what, d.peer.id, d.user.name, d.peer.device, d.node, d.peer.ipv4
    );
    if let Some(path) = &output.out {
        write_config(path, d.config, output.force).map_err(|e| {
            CliError::Incomplete(format!(
                "{summary}, but {} could not be written ({e}); `vpnctl peers config p{} --out FILE` writes it",
                path.display(),
                d.peer.id
            ))
        })?;
    }
    let tunnel = vpnctl_core::render::tunnel_name(d.node, &d.peer.device);
    if as_json {
        #[derive(Serialize)]
        struct Out<'a> {
            peer: &'a Peer,
            tunnel_name: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            config: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            file: Option<&'a Path>,
        }
        return json(
            out,
            &Out {
                peer: d.peer,
                tunnel_name: &tunnel,
                config: output.out.is_none().then_some(d.config),
                file: output.out.as_deref(),
            },
        );
    }
    if let Some(path) = &output.out {
        writeln!(
            out,
            "{summary}: config written to {} (mode 0600; import it as {tunnel}.conf)",
            path.display()
        )?;
    }
    if output.qr {
        if output.out.is_none() {
            writeln!(out, "{summary}; scan with the WireGuard app:")?;
        }
        let qr = vpnctl_core::render::qr_terminal(d.config)
            .map_err(|e| CliError::Incomplete(format!("{summary}, but no QR: {e}")))?;
        writeln!(out, "{qr}")?;
    }
    if output.out.is_none() && !output.qr {
        write!(out, "{}", d.config)?;
    }
    Ok(())
}

/// Users' names for a listing, read by id as pages need them; bounded.
#[derive(Default)]
struct UserNames(std::collections::HashMap<vpnctl_core::UserId, String>);

impl UserNames {
    /// Names remembered at most (then forgotten, and read again as needed).
    const KEEP: usize = 10_000;

    /// Reads the names of `peers`' users not known yet.
    async fn read(&mut self, api: &ApiClient, peers: &[Peer]) -> Result<(), CliError> {
        let mut missing: Vec<_> = peers
            .iter()
            .map(|p| p.user)
            .filter(|u| !self.0.contains_key(u))
            .collect();
        missing.sort_unstable();
        missing.dedup();
        if self.0.len() + missing.len() > Self::KEEP {
            self.0.clear();
        }
        // One request for a page's users; one deleted meanwhile is remembered as
        // "?" so that later pages do not ask for it again.
        let found = api.users_by_id(&missing).await?;
        for id in missing {
            self.0.insert(id, "?".to_owned());
        }
        for user in found {
            self.0.insert(user.id, user.name);
        }
        Ok(())
    }

    fn get(&self, id: vpnctl_core::UserId) -> &str {
        self.0.get(&id).map_or("?", String::as_str)
    }
}
