//! `vpnctl-bot`: parse settings, install tracing, run the bot until Ctrl-C.

use anyhow::Context as _;
use clap::Parser as _;
use vpnctl_bot::Config;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,vpnctl_bot=info".into()),
        )
        .init();
    // A settings file replaces the command line, so look for it first.
    let config = match FileArg::parse().config {
        Some(path) => {
            Config::from_file(&path).with_context(|| format!("loading {}", path.display()))?
        }
        None => Config::parse(),
    };
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    vpnctl_bot::run(config, shutdown).await?;
    Ok(())
}

/// Only `--config`, read before the full parse (which needs the other settings).
#[derive(clap::Parser)]
#[command(
    ignore_errors = true,
    disable_help_flag = true,
    disable_version_flag = true
)]
struct FileArg {
    #[arg(long, env = "VPNCTL_BOT_CONFIG")]
    config: Option<std::path::PathBuf>,
}
