//! `vpnctl-node`: parses the settings, installs logging and runs the subcommand.

use std::process::ExitCode;

use anyhow::Context as _;
use vpnctl_node::cli::{self, Config};
use vpnctl_node::http;

fn main() -> ExitCode {
    vpnctl_daemon::exit_code("vpnctl-node", run())
}

fn run() -> anyhow::Result<()> {
    let config = Config::load()?;
    vpnctl_daemon::logging::init(config.log.as_deref(), "info")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let mut stdout = std::io::stdout();
    runtime.block_on(cli::execute(
        config,
        http::enroller(),
        http::connect,
        vpnctl_daemon::shutdown_signal(),
        &mut stdout,
    ))?;
    Ok(())
}
