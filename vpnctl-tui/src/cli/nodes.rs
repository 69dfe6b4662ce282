//! `vpnctl nodes`: registration, states, join tokens, evacuation, deletion.

use std::io::Write;

use serde::Serialize;
use vpnctl_api::body::{NodeView, PeerQuery, RegisterNode};
use vpnctl_client::ApiClient;
use vpnctl_core::{EvacuateTo, Evacuation, Health, Node, NodeId, Region, Timestamp, UserId};

use super::{Ask, CliError, NodesCommand, json};
use crate::runtime;

pub(super) async fn run(
    api: &ApiClient,
    cmd: NodesCommand,
    as_json: bool,
    out: &mut dyn Write,
    ask: &mut Ask<'_>,
) -> Result<(), CliError> {
    let node = match cmd {
        NodesCommand::List => {
            let nodes = api.nodes().await?;
            if as_json {
                return json(out, &nodes);
            }
            for v in &nodes {
                writeln!(
                    out,
                    "{:<5} {:<12} {:<8} {:<8} {:<9} peers {:<5} rev {}/{} {}{}",
                    format!("n{}", v.node.id),
                    v.node.name,
                    v.node.region.code,
                    v.node.state.to_string(),
                    crate::app::health(v).as_str(),
                    v.peers,
                    v.health
                        .applied_revision
                        .map_or_else(|| "-".into(), |r| r.to_string()),
                    v.health.desired_revision,
                    v.node.endpoint,
                    if v.health.status == Health::Up || v.health.reason.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", v.health.reason)
                    }
                )?;
            }
            return Ok(());
        }
        NodesCommand::Add {
            name,
            region,
            region_name,
            endpoint,
            pool,
        } => {
            let ipv4_pool = pool
                .parse()
                .map_err(|e| CliError::Usage(format!("--pool {pool:?}: {e}")))?;
            api.register_node(&RegisterNode {
                name,
                region: Region {
                    name: region_name.unwrap_or_else(|| region.clone()),
                    code: region,
                },
                endpoint,
                ipv4_pool,
                listen_port: None,
                public_key: None,
                ipv6_pool: None,
                dns: None,
                mtu: None,
                capacity: None,
                client_allowed_ips: None,
                persistent_keepalive: None,
            })
            .await?
        }
        NodesCommand::Drain { id } => api.drain_node(id).await?,
        NodesCommand::Disable { id } => api.disable_node(id).await?,
        NodesCommand::Activate { id } => api.activate_node(id).await?,
        NodesCommand::Evacuate { node, to, yes } => {
            return evacuate(api, &node, to.as_deref(), yes, as_json, out, ask).await;
        }
        NodesCommand::Delete { node, force, yes } => {
            let nodes = api.nodes().await?;
            let (target, peers) = match matching_nodes(&nodes, &node).as_slice() {
                [n] => {
                    let peers = nodes
                        .iter()
                        .find(|v| v.node.id == n.id)
                        .map_or(0, |v| v.peers);
                    ((*n).clone(), peers)
                }
                [] => {
                    return Err(CliError::NotFound(format!(
                        "no node named or numbered {node:?}; `vpnctl nodes list` shows them"
                    )));
                }
                found => return Err(ambiguous(&node, found)),
            };
            if !yes {
                let question = if force && peers > 0 {
                    format!(
                        "Delete {} and revoke its {peers} devices? Their configs stop working.",
                        target.name
                    )
                } else {
                    format!("Delete {}?", target.name)
                };
                match ask(&question) {
                    Some(true) => {}
                    Some(false) => return Err(CliError::Aborted),
                    None => {
                        return Err(CliError::Usage(format!(
                            "refusing to delete {} without --yes; confirm at a terminal or pass --yes",
                            target.name
                        )));
                    }
                }
            }
            api.delete_node(target.id, force).await?;
            if as_json {
                return json(out, &serde_json::json!({ "deleted": target.id }));
            }
            writeln!(out, "deleted n{} {}", target.id, target.name)?;
            return Ok(());
        }
        NodesCommand::JoinToken { id } => {
            let (token, expires) = api.create_join_token(id, None).await?;
            let command = format!("vpnctl-node join {}", token.encode());
            if as_json {
                #[derive(Serialize)]
                struct Out {
                    join_token: String,
                    expires_at: Timestamp,
                    command: String,
                }
                return json(
                    out,
                    &Out {
                        join_token: token.encode(),
                        expires_at: expires,
                        command,
                    },
                );
            }
            writeln!(
                out,
                "on the new server run (single use, valid until {}):",
                expires.to_rfc3339()
            )?;
            writeln!(out, "{command}")?;
            return Ok(());
        }
    };
    if as_json {
        json(out, &node)
    } else {
        writeln!(
            out,
            "n{} {} {} {}",
            node.id, node.name, node.region.code, node.state
        )?;
        Ok(())
    }
}

/// The nodes `text` names: an id (`n2`, `2`) or an exact name.
fn matching_nodes<'a>(nodes: &'a [NodeView], text: &str) -> Vec<&'a Node> {
    let id = text.parse::<NodeId>().ok();
    nodes
        .iter()
        .map(|v| &v.node)
        .filter(|n| n.name == text || Some(n.id) == id)
        .collect()
}

fn ambiguous(text: &str, found: &[&Node]) -> CliError {
    CliError::Usage(format!(
        "{text:?} matches several nodes ({}): give the id",
        found
            .iter()
            .map(|n| format!("n{} {}", n.id, n.name))
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

/// Where `--to` points: a node (name or id) first, else a region code.
fn evacuate_target(nodes: &[NodeView], source: &Node, text: &str) -> Result<EvacuateTo, CliError> {
    match matching_nodes(nodes, text).as_slice() {
        [n] if n.id == source.id => Err(CliError::Usage(format!(
            "--to {text:?} is the node being evacuated"
        ))),
        [n] => Ok(EvacuateTo::Node(n.id)),
        [] if nodes.iter().any(|v| v.node.region.code == text) => {
            Ok(EvacuateTo::Region(text.to_owned()))
        }
        [] => {
            let mut regions: Vec<&str> =
                nodes.iter().map(|v| v.node.region.code.as_str()).collect();
            regions.sort_unstable();
            regions.dedup();
            Err(CliError::NotFound(format!(
                "--to {text:?} is neither a node (name or id) nor a region code (regions: {})",
                regions.join(", ")
            )))
        }
        found => Err(ambiguous(text, found)),
    }
}

async fn evacuate(
    api: &ApiClient,
    node: &str,
    to: Option<&str>,
    yes: bool,
    as_json: bool,
    out: &mut dyn Write,
    ask: &mut Ask<'_>,
) -> Result<(), CliError> {
    let nodes = api.nodes().await?;
    let source = match matching_nodes(&nodes, node).as_slice() {
        [n] => (*n).clone(),
        [] => {
            return Err(CliError::NotFound(format!(
                "no node named or numbered {node:?}; `vpnctl nodes list` shows them"
            )));
        }
        found => return Err(ambiguous(node, found)),
    };
    let target = match to {
        Some(text) => evacuate_target(&nodes, &source, text)?,
        None => EvacuateTo::Auto,
    };
    let name_of = |id: NodeId| {
        nodes
            .iter()
            .find(|v| v.node.id == id)
            .map_or_else(|| format!("n{id}"), |v| v.node.name.clone())
    };
    let (peers, users) = tokio::try_join!(
        api.peers(PeerQuery {
            user: None,
            node: Some(source.id),
        }),
        api.users()
    )?;
    if !yes {
        let whereto = match &target {
            EvacuateTo::Auto => "healthy nodes".to_owned(),
            EvacuateTo::Region(code) => format!("healthy nodes in {code}"),
            EvacuateTo::Node(id) => name_of(*id),
        };
        let question = format!(
            "Move all {} devices off {} to {whereto}? Users get new configs from the bot.",
            peers.len(),
            source.name
        );
        match ask(&question) {
            Some(true) => {}
            Some(false) => return Err(CliError::Aborted),
            None => {
                return Err(CliError::Usage(format!(
                    "refusing to evacuate {} without --yes: it moves all {} devices to other nodes and each of their users gets a new config; confirm at a terminal or pass --yes",
                    source.name,
                    peers.len()
                )));
            }
        }
    }
    let done: Evacuation = api.evacuate_node(source.id, target).await?;
    if as_json {
        json(out, &done)?;
    } else {
        let user_name = |id: UserId| {
            users
                .iter()
                .find(|u| u.id == id)
                .map_or("?", |u| u.name.as_str())
        };
        writeln!(out, "{}", runtime::evacuation_summary(&source.name, &done))?;
        for m in &done.moved {
            writeln!(
                out,
                "  moved  {:<7} {:<20} {:<16} -> {:<12} (p{} was p{})",
                format!("u{}", m.user),
                user_name(m.user),
                m.device,
                name_of(m.to),
                m.new_peer,
                m.old_peer
            )?;
        }
        for (peer, why) in &done.failed {
            let (user, device) = peers.iter().find(|p| p.id == *peer).map_or_else(
                || (String::from("?"), String::from("?")),
                |p| {
                    (
                        format!("u{} {}", p.user, user_name(p.user)),
                        p.device.clone(),
                    )
                },
            );
            writeln!(out, "  FAILED p{peer} {user} {device}: {why}")?;
        }
    }
    if done.failed.is_empty() {
        Ok(())
    } else {
        Err(CliError::Incomplete(format!(
            "{} of {} devices could not be moved off {}",
            done.failed.len(),
            done.failed.len() + done.moved.len(),
            source.name
        )))
    }
}
