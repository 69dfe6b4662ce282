//! `vpnctl-bot`: read the settings (flags > environment > file), install logging,
//! run the bot until SIGTERM or Ctrl-C.

use vpnctl_bot::Settings;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Settings::load()?;
    vpnctl_daemon::logging::init(config.log.as_deref(), "info")?;
    vpnctl_bot::run(config, vpnctl_daemon::shutdown_signal()).await?;
    Ok(())
}
