//! `vpnctld`: parse the config, install tracing, then `init` or `run`.

use std::io::Write as _;

use anyhow::Context as _;
use clap::Parser as _;
use tracing_subscriber::EnvFilter;
use vpnctl_server::{Command, Config, InitOptions};

fn main() -> anyhow::Result<()> {
    let config = Config::parse().load()?;
    let filter = match &config.log {
        Some(filter) => EnvFilter::try_new(filter).context("--log")?,
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();

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
        Command::Run => {
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(vpnctl_server::run(server, shutdown_signal()))?;
            Ok(())
        }
    }
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
