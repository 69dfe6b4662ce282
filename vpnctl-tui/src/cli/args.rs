//! The command line's shape: every subcommand and flag, with the help texts `--help`
//! shows. No behaviour here: the handlers are in the sibling modules.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use vpnctl_core::units::{self, SizeError};
use vpnctl_core::{NodeId, PeerId, QuotaPeriod, UserId};

#[derive(Debug, Parser)]
#[command(
    name = "vpnctl",
    version,
    about = "vpnctl admin: live dashboard, scriptable subcommands and a zero-setup demo",
    after_help = "Start here: `vpnctl demo` runs a whole VPN (control plane + 3 simulated nodes) with the dashboard on top."
)]
pub struct Config {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// Machine-readable JSON output (subcommands).
    #[arg(long, global = true)]
    pub json: bool,
    /// Write logs to this file (never to the terminal the dashboard draws on).
    #[arg(long, global = true, env = "VPNCTL_LOG_FILE")]
    pub log_file: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Where the API is and how to authenticate.
#[derive(Debug, Clone, Default, Args)]
pub struct ConnectionArgs {
    /// API base URL, e.g. https://vpn.example.com:7443 (plain http only on loopback).
    #[arg(long, global = true, env = "VPNCTL_API")]
    pub api: Option<String>,
    /// Admin API token (`vpt_...`).
    #[arg(long, global = true, env = "VPNCTL_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// SHA-256 fingerprint of the server certificate (hex), required for https.
    #[arg(long, global = true, env = "VPNCTL_FINGERPRINT")]
    pub fingerprint: Option<String>,
    /// A `vpnctl-connect:...` connection string (from `vpnctld init`) instead of the three above.
    #[arg(long, global = true, env = "VPNCTL_CONNECT", hide_env_values = true)]
    pub connect: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The live dashboard (the default without a subcommand).
    Dashboard,
    /// Everything in one process: control plane, three simulated nodes, seeded data,
    /// and the dashboard on top. Zero setup.
    Demo {
        /// Keep the demo's store in this directory (default: a temporary one).
        #[arg(long)]
        data: Option<PathBuf>,
        /// Generate this many extra peers (to see the dashboard at scale).
        #[arg(long, default_value_t = 0)]
        peers: usize,
    },
    /// Users: list, add, extend, disable, enable, quota.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Invites: create, list.
    #[command(subcommand)]
    Invites(InvitesCommand),
    /// Nodes: list, add, drain, disable, activate, evacuate, join-token.
    #[command(subcommand)]
    Nodes(NodesCommand),
    /// Peers: list, config.
    #[command(subcommand)]
    Peers(PeersCommand),
    /// API tokens: list, create, revoke.
    #[command(subcommand)]
    Tokens(TokensCommand),
}

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Every token (never its secret).
    List,
    /// A new token; its secret is printed this once.
    Create {
        /// What it may do: `admin` (everything) or `bot` (what the Telegram bot needs).
        #[arg(long, value_enum)]
        scope: TokenScope,
        /// Who or what holds it, e.g. `alice` or `telegram-bot`.
        #[arg(long)]
        label: String,
    },
    /// Revokes a token at once: requests with it get 401.
    Revoke {
        /// The token's id (`vpnctl tokens list`).
        id: u64,
    },
}

/// The scopes an admin hands out; node tokens come from enrollment.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum TokenScope {
    Admin,
    Bot,
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    List,
    Add {
        name: String,
        /// Days of access from now (default: unlimited).
        #[arg(long)]
        days: Option<u32>,
        #[arg(long)]
        devices: Option<u32>,
        #[arg(long)]
        telegram_id: Option<i64>,
        #[arg(long)]
        admin: bool,
    },
    /// Extend access by some days.
    Extend {
        id: UserId,
        #[arg(long, default_value_t = 30)]
        days: u32,
    },
    Disable {
        id: UserId,
    },
    Enable {
        id: UserId,
    },
    /// Set or remove a traffic quota (both directions together, per period). A user
    /// over it is suspended until the period resets.
    Quota {
        /// User name or id (`alice`, `u12`, `12`).
        user: String,
        /// `50GB`, `500MiB`, `1.5TB` (kB/MB/GB/TB are powers of 1000, KiB/MiB/GiB/TiB
        /// of 1024), or `none` to remove the quota.
        #[arg(allow_hyphen_values = true, value_parser = parse_quota_size)]
        size: QuotaSize,
        /// How often it resets: daily, weekly or monthly (calendar months, UTC)
        /// [default: the user's current period, else monthly].
        #[arg(long)]
        period: Option<QuotaPeriod>,
    },
}

/// The `size` of `vpnctl users quota`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaSize {
    /// Remove the quota.
    None,
    Bytes(u64),
}

/// `none`, or a size for [`units::parse`].
pub fn parse_quota_size(text: &str) -> Result<QuotaSize, SizeError> {
    if text.trim().eq_ignore_ascii_case("none") {
        Ok(QuotaSize::None)
    } else {
        units::parse(text).map(QuotaSize::Bytes)
    }
}

#[derive(Debug, Subcommand)]
pub enum InvitesCommand {
    List,
    /// Creates an invite and prints its deep link (shown once).
    Create {
        #[arg(long)]
        label: Option<String>,
        #[arg(long, default_value_t = 1)]
        uses: u32,
        /// Days of access it grants (default 30).
        #[arg(long, default_value_t = 30)]
        days: u32,
        #[arg(long, default_value_t = 3)]
        devices: u32,
        /// Also print the link as a QR code.
        #[arg(long)]
        qr: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum NodesCommand {
    List,
    Add {
        name: String,
        /// Region code, e.g. de-fra.
        #[arg(long)]
        region: String,
        /// Region display name (default: the code).
        #[arg(long)]
        region_name: Option<String>,
        /// host:port clients connect to.
        #[arg(long)]
        endpoint: String,
        /// IPv4 pool, e.g. 10.8.0.0/16.
        #[arg(long)]
        pool: String,
    },
    /// Keep serving its peers, take no new ones.
    Drain {
        id: NodeId,
    },
    Disable {
        id: NodeId,
    },
    Activate {
        id: NodeId,
    },
    /// Move every device off the node (new peers elsewhere; each user gets the new
    /// config from the bot) and set it to draining. Asks first: pass --yes in scripts.
    Evacuate {
        /// Node name or id (`fra-1`, `n2`, `2`).
        node: String,
        /// Where to: a node (name or id), else a region code [default: healthy nodes,
        /// same region first, least loaded first].
        #[arg(long, value_name = "NODE|REGION")]
        to: Option<String>,
        /// Do not ask. Without it, evacuate refuses unless it can ask at a terminal.
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// A single-use join token and the command that enrolls the node (shown once).
    JoinToken {
        id: NodeId,
    },
    /// Deletes a node. With peers on it only with --force, which revokes them (their
    /// configs stop working: evacuate first to move them).
    Delete {
        /// Node name or id (`fra-1`, `n2`, `2`).
        node: String,
        /// Also revoke the node's peers.
        #[arg(long)]
        force: bool,
        /// Do not ask. Without it, delete refuses unless it can ask at a terminal.
        #[arg(long, short = 'y')]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum PeersCommand {
    List {
        #[arg(long)]
        user: Option<UserId>,
        #[arg(long)]
        node: Option<NodeId>,
    },
    /// The peer's wg-quick config (contains its private key).
    Config {
        id: PeerId,
        /// Print it as a QR code for the WireGuard mobile apps.
        #[arg(long)]
        qr: bool,
    },
}
