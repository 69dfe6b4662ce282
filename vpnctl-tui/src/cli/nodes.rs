//! `vpnctl nodes`: registration, states, join tokens, evacuation, deletion.

use std::io::Write;
use std::path::Path;

use serde::Serialize;
use vpnctl_api::body::{NodeView, PatchNode, PeerQuery, RegisterNode};
use vpnctl_client::ApiClient;
use vpnctl_core::{EvacuateTo, Evacuation, Health, Node, NodeId, PeerId, Timestamp, UserId};

use super::{Ask, CliError, NodesCommand, confirm, json, resolve};
use crate::app::{health, placement};
use crate::configs::{self, SavedConfigs};
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
                    "{:<5} {:<12} {:<8} {:<9} {:<12} {:<9} peers {:<5} rev {}/{} {}{}",
                    format!("n{}", v.node.id),
                    v.node.name,
                    v.node.region.code,
                    v.node.transport.kind().as_str(),
                    placement(v).availability.as_str(),
                    health(v).as_str(),
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
            ipv6_pool,
            settings,
        } => {
            let ipv4_pool = pool
                .parse()
                .map_err(|e| CliError::Usage(format!("--pool {pool:?}: {e}")))?;
            let mut request = RegisterNode::new(&name, &region, &endpoint, ipv4_pool);
            request.transport = settings.transport_choice();
            if let Some(display) = region_name {
                request.region.name = display;
            }
            request.ipv6_pool = ipv6_pool
                .map(|p| {
                    p.parse()
                        .map_err(|e| CliError::Usage(format!("--ipv6-pool {p:?}: {e}")))
                })
                .transpose()?;
            request.mtu = settings.mtu;
            request.dns = settings.dns;
            request.client_allowed_ips = settings.allowed_ips;
            request.capacity = settings.capacity;
            request.persistent_keepalive = settings.keepalive;
            api.register_node(&request).await?
        }
        NodesCommand::Set {
            node,
            endpoint,
            settings,
        } => {
            let id = resolve::node(api, &node).await?.node.id;
            let transport = settings.transport_choice();
            let patch = PatchNode {
                endpoint,
                mtu: settings.mtu,
                dns: settings.dns,
                client_allowed_ips: settings.allowed_ips,
                capacity: settings.capacity,
                persistent_keepalive: settings.keepalive,
                transport,
                ..PatchNode::default()
            };
            api.update_node(id, &patch).await?
        }
        NodesCommand::Drain { node } => {
            api.drain_node(resolve::node(api, &node).await?.node.id)
                .await?
        }
        NodesCommand::Disable { node } => {
            api.disable_node(resolve::node(api, &node).await?.node.id)
                .await?
        }
        NodesCommand::Activate { node } => {
            api.activate_node(resolve::node(api, &node).await?.node.id)
                .await?
        }
        NodesCommand::Evacuate {
            node,
            to,
            configs_dir,
            yes,
        } => {
            let request = Evacuate {
                node: &node,
                to: to.as_deref(),
                configs_dir: configs_dir.as_deref(),
                yes,
            };
            return evacuate(api, &request, as_json, out, ask).await;
        }
        NodesCommand::Delete { node, force, yes } => {
            let view = resolve::node(api, &node).await?;
            let (target, peers) = (view.node, view.peers);
            let question = if force && peers > 0 {
                format!(
                    "Delete {} and revoke its {peers} devices? Their configs stop working.",
                    target.name
                )
            } else {
                format!("Delete {}?", target.name)
            };
            confirm(ask, yes, &question, || {
                format!(
                    "refusing to delete {} without --yes; confirm at a terminal or pass --yes",
                    target.name
                )
            })?;
            api.delete_node(target.id, force).await?;
            if as_json {
                return json(out, &serde_json::json!({ "deleted": target.id }));
            }
            writeln!(out, "deleted n{} {}", target.id, target.name)?;
            return Ok(());
        }
        NodesCommand::JoinToken { node } => {
            let id = resolve::node(api, &node).await?.node.id;
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
            "n{} {} {} {} {}",
            node.id,
            node.name,
            node.region.code,
            node.state,
            node.transport.kind()
        )?;
        if let Some(p) = node.transport.awg() {
            let params: Vec<String> = p
                .config_lines()
                .into_iter()
                .map(|(k, v)| format!("{k} = {v}"))
                .collect();
            writeln!(out, "AmneziaWG {}: {}", p.generation, params.join(", "))?;
        }
        Ok(())
    }
}

/// Where `--to` points: a node (name or id) first, else a region code.
fn evacuate_target(nodes: &[NodeView], source: &Node, text: &str) -> Result<EvacuateTo, CliError> {
    match resolve::node_in_or_none(nodes, text)? {
        Some(v) if v.node.id == source.id => Err(CliError::Usage(format!(
            "--to {text:?} is the node being evacuated"
        ))),
        Some(v) => Ok(EvacuateTo::Node(v.node.id)),
        None if nodes
            .iter()
            .any(|v| v.node.region.code.eq_ignore_ascii_case(text)) =>
        {
            Ok(EvacuateTo::Region(text.to_ascii_lowercase()))
        }
        None => Err(CliError::NotFound(format!(
            "--to {text:?} is neither a node (name or id) nor a region code (regions: {})",
            regions(nodes)
        ))),
    }
}

/// The region codes of `nodes`, sorted, for messages.
pub(super) fn regions(nodes: &[NodeView]) -> String {
    let mut regions: Vec<&str> = nodes.iter().map(|v| v.node.region.code.as_str()).collect();
    regions.sort_unstable();
    regions.dedup();
    if regions.is_empty() {
        return "none yet".into();
    }
    regions.join(", ")
}

/// What `vpnctl nodes evacuate` was asked.
struct Evacuate<'a> {
    node: &'a str,
    to: Option<&'a str>,
    configs_dir: Option<&'a Path>,
    yes: bool,
}

async fn evacuate(
    api: &ApiClient,
    request: &Evacuate<'_>,
    as_json: bool,
    out: &mut dyn Write,
    ask: &mut Ask<'_>,
) -> Result<(), CliError> {
    let nodes = api.nodes().await?;
    let source = resolve::node_in(&nodes, request.node)?.node.clone();
    let target = match request.to {
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
            ..PeerQuery::default()
        }),
        api.users()
    )?;
    let whereto = match &target {
        EvacuateTo::Auto => "healthy nodes".to_owned(),
        EvacuateTo::Region(code) => format!("healthy nodes in {code}"),
        EvacuateTo::Node(id) => name_of(*id),
    };
    let devices = u64::try_from(peers.len()).unwrap_or(u64::MAX);
    confirm(
        ask,
        request.yes,
        &crate::app::evacuation_question(devices, &source.name, &whereto),
        || {
            format!(
                "refusing to evacuate {} without --yes: it moves all {} devices to other nodes and each of their users gets a new config; confirm at a terminal or pass --yes",
                source.name,
                peers.len()
            )
        },
    )?;
    let done: Evacuation = api.evacuate_node(source.id, target).await?;
    let unreached = configs::without_telegram(&done, &users).len();
    let saved = match request.configs_dir {
        Some(dir) => configs::save_moved(api, &done, &users, &nodes, dir).await,
        None => SavedConfigs::default(),
    };
    if as_json {
        #[derive(Serialize)]
        struct File<'a> {
            user: UserId,
            device: &'a str,
            peer: PeerId,
            file: &'a Path,
        }
        #[derive(Serialize)]
        struct NotWritten<'a> {
            user: UserId,
            device: &'a str,
            peer: PeerId,
            why: &'a str,
        }
        #[derive(Serialize)]
        struct Out<'a> {
            #[serde(flatten)]
            done: &'a Evacuation,
            /// Moved devices whose users have no Telegram (the bot cannot tell them).
            without_telegram: usize,
            configs_written: Vec<File<'a>>,
            configs_not_written: Vec<NotWritten<'a>>,
        }
        json(
            out,
            &Out {
                done: &done,
                without_telegram: unreached,
                configs_written: saved
                    .written
                    .iter()
                    .map(|(m, file)| File {
                        user: m.user,
                        device: &m.device,
                        peer: m.new_peer,
                        file,
                    })
                    .collect(),
                configs_not_written: saved
                    .not_written
                    .iter()
                    .map(|(m, why)| NotWritten {
                        user: m.user,
                        device: &m.device,
                        peer: m.new_peer,
                        why,
                    })
                    .collect(),
            },
        )?;
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
        for (m, file) in &saved.written {
            writeln!(
                out,
                "  config u{} {} {}: {}",
                m.user,
                user_name(m.user),
                m.device,
                file.display()
            )?;
        }
        for (m, why) in &saved.not_written {
            writeln!(
                out,
                "  NO CONFIG u{} {} {}: {why}",
                m.user,
                user_name(m.user),
                m.device
            )?;
        }
        if unreached > 0 && request.configs_dir.is_none() {
            writeln!(
                out,
                "{unreached} moved devices belong to users without Telegram: give them their new configs (`vpnctl peers config <peer> --out FILE`, or evacuate with --configs-dir DIR)"
            )?;
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

#[cfg(test)]
mod tests {
    #[test]
    fn regions_are_named_once_in_order_or_none_yet() {
        assert_eq!(super::regions(&[]), "none yet");
    }
}
