//! `vpnctl-node`: parses the configuration, installs tracing and runs the subcommand.

use std::process::ExitCode;

use anyhow::Context as _;
use tracing_subscriber::EnvFilter;
use vpnctl_node::cli::{self, Config};
use vpnctl_node::http;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vpnctl-node: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let config = Config::load()?;
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let mut stdout = std::io::stdout();
    runtime.block_on(cli::execute(
        config,
        http::enroller(),
        http::connect,
        cli::shutdown_signal(),
        &mut stdout,
    ))?;
    Ok(())
}
