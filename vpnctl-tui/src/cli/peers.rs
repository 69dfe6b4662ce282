//! `vpnctl peers`: devices and their configs.

use std::io::Write;

use vpnctl_api::body::PeerQuery;
use vpnctl_client::ApiClient;

use super::{CliError, PeersCommand, json};

pub(super) async fn run(
    api: &ApiClient,
    cmd: PeersCommand,
    as_json: bool,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    match cmd {
        PeersCommand::List { user, node } => {
            let peers = api.peers(PeerQuery { user, node }).await?;
            if as_json {
                return json(out, &peers);
            }
            for p in &peers {
                writeln!(
                    out,
                    "{:<7} {:<6} {:<5} {:<12} {}",
                    format!("p{}", p.id),
                    format!("u{}", p.user),
                    format!("n{}", p.node),
                    p.device,
                    p.ipv4
                )?;
            }
            Ok(())
        }
        PeersCommand::Config { id, qr } => {
            let config = api.peer_config(id).await?;
            if as_json {
                return json(out, &serde_json::json!({ "peer": id, "config": config }));
            }
            if qr {
                let text = vpnctl_core::render::qr_terminal(&config)
                    .map_err(|e| CliError::Usage(e.to_string()))?;
                writeln!(out, "{text}")?;
            } else {
                write!(out, "{config}")?;
            }
            Ok(())
        }
    }
}
