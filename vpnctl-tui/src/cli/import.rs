//! `vpnctl import wg-quick|wg-easy FILE --node NODE [--dry-run]`: the file is parsed
//! here (core's `legacy`), the server's private key stays here (only its public key
//! is sent), and the control plane plans and writes the import in one transaction.

use std::io::Write;

use vpnctl_client::ApiClient;
use vpnctl_core::api::import::ImportReport;
use vpnctl_core::legacy;

use super::{CliError, ImportArgs, ImportCommand, json, resolve};

pub(super) async fn run(
    api: &ApiClient,
    cmd: ImportCommand,
    as_json: bool,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let (args, parsed) = match cmd {
        ImportCommand::WgQuick(args) => {
            let text = read(&args)?;
            let parsed = legacy::parse_wg_quick(&text);
            (args, parsed)
        }
        ImportCommand::WgEasy { args, port } => {
            let text = read(&args)?;
            let parsed = legacy::parse_wg_easy(&text, port);
            (args, parsed)
        }
    };
    let server = parsed.map_err(|e| CliError::Usage(format!("{}: {e}", args.file.display())))?;
    let node = resolve::node(api, &args.node).await?;
    let report = api
        .import_peers(node.node.id, &server.request(args.dry_run))
        .await?;
    if as_json {
        json(out, &report)?;
    } else {
        print(out, &report, &node.node.name)?;
    }
    if report.conflicts.is_empty() {
        Ok(())
    } else {
        Err(CliError::Conflicts(format!(
            "{} conflict(s): nothing was imported",
            report.conflicts.len()
        )))
    }
}

fn read(args: &ImportArgs) -> Result<String, CliError> {
    std::fs::read_to_string(&args.file)
        .map_err(|e| CliError::Usage(format!("{}: {e}", args.file.display())))
}

fn print(out: &mut dyn Write, report: &ImportReport, node: &str) -> Result<(), CliError> {
    let verb = if report.applied {
        "imported"
    } else {
        "would import"
    };
    writeln!(
        out,
        "{verb} {} peer(s) into node {node}:",
        report.peers.len()
    )?;
    for p in &report.peers {
        let mut notes = Vec::new();
        if !p.enabled {
            notes.push("disabled".to_owned());
        }
        if let Some(until) = p.until {
            notes.push(format!("until {}", until.to_date()));
        }
        if p.private_key_kept {
            notes.push("config can be fetched again".to_owned());
        }
        if !p.preshared_key {
            notes.push("no preshared key".to_owned());
        }
        let ids = match (p.user, p.peer) {
            (Some(u), Some(peer)) => format!("user {u} peer {peer} "),
            _ => String::new(),
        };
        writeln!(
            out,
            "  {:<24} {:<15} {ids}{}{}",
            p.name,
            p.ipv4,
            p.public_key,
            if notes.is_empty() {
                String::new()
            } else {
                format!(" ({})", notes.join(", "))
            }
        )?;
    }
    if let Some(key) = report.node_public_key {
        writeln!(
            out,
            "node key {key}, listen port {}: join the node with `vpnctl-node join --adopt-key <the old server's config>`",
            report.listen_port
        )?;
    }
    if !report.conflicts.is_empty() {
        writeln!(out, "conflicts (nothing was imported):")?;
        for c in &report.conflicts {
            writeln!(out, "  {}: {}", c.source, c.message)?;
        }
    } else if !report.applied {
        writeln!(out, "dry run: nothing changed")?;
    }
    Ok(())
}
