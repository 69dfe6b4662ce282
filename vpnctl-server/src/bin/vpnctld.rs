//! `vpnctld`: parse the settings, install logging, then `init` or `run`.

use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser as _;
use vpnctl_server::{Command, Config, InitOptions};

fn main() -> ExitCode {
    vpnctl_daemon::exit_code("vpnctld", run())
}

fn run() -> anyhow::Result<()> {
    let config = Config::parse().load()?;
    vpnctl_daemon::logging::init(config.log.as_deref(), "info")?;

    let server = config.server()?;
    match config.command.unwrap_or(Command::Run) {
        Command::Init => {
            let done = vpnctl_server::init(&InitOptions {
                data: server.data,
                listen: server.listen,
                public_url: server.public_url,
            })?;
            let mut out = std::io::stdout().lock();
            done.write_summary(&mut out)?;
            out.flush()?;
            Ok(())
        }
        Command::Restore {
            from,
            passphrase_file,
            identity,
        } => {
            let done = vpnctl_server::backups::restore(&vpnctl_server::backups::RestoreOptions {
                from,
                data: server.data.clone(),
                passphrase_file,
                identity,
            })?;
            // The restored settings file now names this directory: run with it.
            let next = if done.files.iter().any(|f| f == vpnctl_server::CONFIG_FILE) {
                format!(
                    "--config {}",
                    server.data.join(vpnctl_server::CONFIG_FILE).display()
                )
            } else {
                format!("--data {}", server.data.display())
            };
            let mut out = std::io::stdout().lock();
            writeln!(
                out,
                "restored the backup of {} into {}: {} tables, {} rows, files: {}\nnext: vpnctld run {next}",
                done.created_at,
                server.data.display(),
                done.tables,
                done.rows,
                if done.files.is_empty() {
                    "none".to_owned()
                } else {
                    done.files.join(", ")
                },
            )?;
            out.flush()?;
            Ok(())
        }
        Command::Run => {
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(vpnctl_server::run(server, vpnctl_daemon::shutdown_signal()))?;
            Ok(())
        }
    }
}
