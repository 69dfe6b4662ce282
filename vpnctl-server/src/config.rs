//! vpnctld's settings: one struct read from flags, `VPNCTLD_*` environment variables
//! and an optional TOML file (`--config`); flags and environment win over the file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Parser, Subcommand};
use serde::Deserialize;

use crate::ServerError;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:7443";
pub const DEFAULT_DATA: &str = "/var/lib/vpnctl";
/// Name of the TOML file `vpnctld init` writes into the data directory.
pub const CONFIG_FILE: &str = "vpnctld.toml";

#[derive(Debug, Clone, Default, Parser, Deserialize)]
#[command(
    name = "vpnctld",
    version,
    about = "vpnctl control plane: HTTP/JSON API for the bot, the admin TUI and the node daemons"
)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    #[command(subcommand)]
    #[serde(skip)]
    pub command: Option<Command>,

    /// TOML file with these settings (keys as the long flags, with `_`).
    #[arg(long, env = "VPNCTLD_CONFIG", global = true, value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,

    /// Data directory: database, key file, TLS certificate [default: /var/lib/vpnctl].
    #[arg(long, env = "VPNCTLD_DATA", global = true, value_name = "DIR")]
    pub data: Option<PathBuf>,

    /// Address to listen on [default: 127.0.0.1:7443].
    #[arg(long, env = "VPNCTLD_LISTEN", global = true, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,

    /// The API URL nodes and admins use (put into join tokens) [default: from --listen].
    #[arg(long, env = "VPNCTLD_PUBLIC_URL", global = true, value_name = "URL")]
    pub public_url: Option<String>,

    /// Serve TLS [default: true]. `false` is only allowed on a loopback address.
    #[arg(long, env = "VPNCTLD_TLS", global = true, value_name = "BOOL")]
    pub tls: Option<bool>,

    /// Telegram bot username, for invite deep links.
    #[arg(long, env = "VPNCTLD_BOT_USERNAME", global = true, value_name = "NAME")]
    pub bot_username: Option<String>,

    /// Seconds between access-expiry sweeps [default: 10].
    #[arg(
        long,
        env = "VPNCTLD_EXPIRY_INTERVAL_SECS",
        global = true,
        value_name = "SECS"
    )]
    pub expiry_interval_secs: Option<u64>,

    /// A node whose last report is older than this many seconds is stale [default: 90].
    #[arg(
        long,
        env = "VPNCTLD_NODE_STALE_SECS",
        global = true,
        value_name = "SECS"
    )]
    pub node_stale_secs: Option<u64>,

    /// Log filter (tracing `EnvFilter` syntax) [default: info; RUST_LOG also works].
    #[arg(long, env = "VPNCTLD_LOG", global = true, value_name = "FILTER")]
    pub log: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Create the data directory, store, TLS certificate and the first admin token
    /// (printed once).
    Init,
    /// Serve the API (the default).
    Run,
}

impl Config {
    /// Reads `--config` (if given) under the flags: what a flag or variable sets wins.
    pub fn load(self) -> Result<Self, ServerError> {
        let Some(path) = self.config.clone() else {
            return Ok(self);
        };
        let file = Self::from_file(&path)?;
        Ok(self.over(file))
    }

    pub fn from_file(path: &Path) -> Result<Self, ServerError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ServerError::Config(format!("reading {}: {e}", path.display())))?;
        toml::from_str(&text).map_err(|e| ServerError::Config(format!("{}: {e}", path.display())))
    }

    /// `self`'s settings where present, else `file`'s.
    #[must_use]
    pub fn over(self, file: Self) -> Self {
        Self {
            command: self.command,
            config: self.config,
            data: self.data.or(file.data),
            listen: self.listen.or(file.listen),
            public_url: self.public_url.or(file.public_url),
            tls: self.tls.or(file.tls),
            bot_username: self.bot_username.or(file.bot_username),
            expiry_interval_secs: self.expiry_interval_secs.or(file.expiry_interval_secs),
            node_stale_secs: self.node_stale_secs.or(file.node_stale_secs),
            log: self.log.or(file.log),
        }
    }

    /// The settings `vpnctld run` serves with, defaults filled in.
    pub fn server(&self) -> Result<ServerConfig, ServerError> {
        let listen = match self.listen {
            Some(addr) => addr,
            None => DEFAULT_LISTEN.parse().expect("valid default"),
        };
        let interval = self.expiry_interval_secs.unwrap_or(10);
        if interval == 0 {
            return Err(ServerError::Config(
                "expiry_interval_secs must be > 0".into(),
            ));
        }
        Ok(ServerConfig {
            data: self.data.clone().unwrap_or_else(|| DEFAULT_DATA.into()),
            listen,
            public_url: self.public_url.clone(),
            tls: self.tls.unwrap_or(true),
            bot_username: self.bot_username.clone(),
            expiry_interval: Duration::from_secs(interval),
            node_stale_after: Duration::from_secs(self.node_stale_secs.unwrap_or(90)),
        })
    }
}

/// Resolved settings of a running server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub data: PathBuf,
    pub listen: SocketAddr,
    /// `None`: `http(s)://<bound address>`.
    pub public_url: Option<String>,
    /// Plain HTTP is refused on a non-loopback address.
    pub tls: bool,
    pub bot_username: Option<String>,
    pub expiry_interval: Duration,
    pub node_stale_after: Duration,
}

impl ServerConfig {
    /// Defaults for a data directory and address (TLS on).
    pub fn new(data: PathBuf, listen: SocketAddr) -> Self {
        Self {
            data,
            listen,
            public_url: None,
            tls: true,
            bot_username: None,
            expiry_interval: Duration::from_secs(10),
            node_stale_after: Duration::from_secs(90),
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn cli_is_consistent() {
        Config::command().debug_assert();
    }

    #[test]
    fn flags_override_file() {
        let cli = Config::parse_from(["vpnctld", "run", "--listen", "127.0.0.1:9000"]);
        assert_eq!(cli.command, Some(Command::Run));
        let file: Config = toml::from_str(
            "listen = \"0.0.0.0:1\"\ndata = \"/srv/vpn\"\nbot_username = \"my_bot\"\n",
        )
        .unwrap();
        let merged = cli.over(file).server().unwrap();
        assert_eq!(merged.listen, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(merged.data, PathBuf::from("/srv/vpn"));
        assert_eq!(merged.bot_username.as_deref(), Some("my_bot"));
        assert!(merged.tls);
        assert!(toml::from_str::<Config>("nonsense = 1").is_err());
    }
}
