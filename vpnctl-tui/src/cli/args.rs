//! The command line's shape: every subcommand and flag, with the help texts `--help`
//! shows. No behaviour here: the handlers are in the sibling modules.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use vpnctl_core::units::{self, SizeError};
use vpnctl_core::{QuotaPeriod, Timestamp};

use crate::when::{self, WhenError};

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
        /// Generate this many extra peers (to see the dashboard at scale; at most
        /// 196,452, what the demo's three /16 pools hold).
        #[arg(long, default_value_t = 0)]
        peers: usize,
    },
    /// Users: list, show, add, access, extend, disable, enable, quota, delete.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Invites: list, create, revoke.
    #[command(subcommand)]
    Invites(InvitesCommand),
    /// Nodes: list, add, drain, disable, activate, join-token, evacuate, delete.
    #[command(subcommand)]
    Nodes(NodesCommand),
    /// Peers (one device's tunnel on one node): list, issue, config, rotate, revoke.
    #[command(subcommand)]
    Peers(PeersCommand),
    /// API tokens: list, create, revoke.
    #[command(subcommand)]
    Tokens(TokensCommand),
    /// What users can buy in the bot with Telegram Stars: list, add, retire.
    #[command(subcommand)]
    Plans(PlansCommand),
    /// Payments in Telegram Stars: list, show, refund, revenue.
    #[command(subcommand)]
    Payments(PaymentsCommand),
    /// Sends a text to many users through the bot: `--to active|lapsed|all|region R`.
    /// Shows how many it reaches and asks first (--yes in scripts).
    Broadcast(BroadcastArgs),
    /// Broadcasts sent: list (with how far each got), cancel a running one.
    #[command(subcommand)]
    Broadcasts(BroadcastsCommand),
    /// The audit log: recent events, or (--follow) each new one as it happens.
    Events(EventsArgs),
    /// Move in from an existing server: its clients become users and peers of a node
    /// with their own keys and addresses, so no client config changes.
    #[command(subcommand)]
    Import(ImportCommand),
    /// An encrypted backup of the whole control plane, taken while it keeps serving
    /// (restore it with `vpnctld restore`).
    Backup(BackupArgs),
    /// A new age identity for backups: writes the identity file (0600) and prints
    /// the recipient to back up to.
    BackupKey {
        /// Where to write the identity file (it must not exist).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// A wg-quick server config (`/etc/wireguard/wg0.conf`): each [Peer] becomes a
    /// user named by the comment above it.
    WgQuick(ImportArgs),
    /// wg-easy 14's data file (`wg0.json`): names, enabled state, expiry and the
    /// clients' private keys (sealed), so users can get their config again.
    WgEasy {
        #[command(flatten)]
        args: ImportArgs,
        /// wg-easy's WG_PORT, the port its clients connect to.
        #[arg(long, value_name = "PORT", default_value_t = vpnctl_core::legacy::WG_EASY_DEFAULT_PORT)]
        port: u16,
    },
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The file to import.
    pub file: PathBuf,
    /// The node (name or id) that takes over; add it first with `vpnctl nodes add`
    /// with the old server's endpoint and pool, and join it with `--adopt-key`.
    #[arg(long, value_name = "NODE")]
    pub node: String,
    /// Only show what would be created and any conflict; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
#[group(id = "backup_key", required = true, multiple = false)]
pub struct BackupKeyArgs {
    /// A file whose first line is the passphrase.
    #[arg(long, value_name = "FILE", group = "backup_key")]
    pub passphrase_file: Option<PathBuf>,
    /// An age recipient (`age1...`, from `vpnctl backup-key`).
    #[arg(long, value_name = "AGE1...", group = "backup_key")]
    pub recipient: Option<String>,
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Where to write the backup (0600; replaced atomically).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    #[command(flatten)]
    pub key: BackupKeyArgs,
}

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Every token (never its secret).
    List,
    /// A new token; its secret is printed this once.
    Create {
        /// What it may do: `admin` (everything), `bot` (what the Telegram bot needs) or
        /// `metrics` (`/metrics` only, for Prometheus).
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
    /// Everything: for admins and their scripts.
    Admin,
    /// What the Telegram bot needs.
    Bot,
    /// `/metrics` only: for Prometheus and other scrapers.
    Metrics,
}

/// A new end of access: a date, a date-time, or a span from now.
#[derive(Debug, Clone, Copy, Default, Args)]
#[group(multiple = false)]
pub struct AccessEnd {
    /// End of access: a date (`2027-01-31`, meaning 00:00 UTC) or a date-time with a
    /// zone (`2027-01-31T18:00Z`, `2027-01-31T18:00+03:00`).
    #[arg(long, value_name = "WHEN", value_parser = parse_when)]
    pub until: Option<Timestamp>,
    /// Access for this many days from now.
    #[arg(long, value_name = "N")]
    pub days: Option<u32>,
    /// Access for this many hours from now.
    #[arg(long, value_name = "N")]
    pub hours: Option<u32>,
}

impl AccessEnd {
    /// The end these flags give, relative to `now`; `None` when none was given.
    pub fn at(&self, now: Timestamp) -> Option<Timestamp> {
        self.until
            .or_else(|| self.days.map(|d| now.plus_days(i64::from(d))))
            .or_else(|| self.hours.map(|h| now.plus_seconds(i64::from(h) * 3_600)))
    }
}

fn parse_when(text: &str) -> Result<Timestamp, WhenError> {
    when::parse_until(text)
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Every user: id, name, role, access state, end of access, quota; filtered on
    /// the server.
    List {
        /// Only users whose name contains this (ignoring case).
        #[arg(long)]
        name: Option<String>,
        /// Only users whose access is now: active, lapsed, suspended (traffic quota
        /// used up) or disabled.
        #[arg(long, value_name = "STATE")]
        access: Option<vpnctl_api::body::AccessState>,
    },
    /// One user: access, quota and traffic, devices.
    Show {
        /// User name or id (`alice`, `u12`, `12`).
        user: String,
    },
    /// Adds a user (who gets devices with `vpnctl peers issue`).
    Add {
        /// Display name.
        name: String,
        #[command(flatten)]
        access: AccessEnd,
        /// How many devices the user may have [default: the server's policy].
        #[arg(long)]
        devices: Option<u32>,
        /// The user's Telegram id, so the bot knows them and sends them their configs.
        #[arg(long)]
        telegram_id: Option<i64>,
        /// Make the user an admin (in the bot's admin commands).
        #[arg(long)]
        admin: bool,
    },
    /// Sets when access ends (`--until`, `--days`, `--hours`), or `--unlimited`.
    Access {
        /// User name or id (`alice`, `u12`, `12`).
        user: String,
        #[command(flatten)]
        end: AccessEnd,
        /// Access without an end.
        #[arg(long, conflicts_with_all = ["until", "days", "hours"])]
        unlimited: bool,
    },
    /// Extends access by some days from its current end (or from now, if it ended).
    Extend {
        /// User name or id (`alice`, `u12`, `12`).
        user: String,
        /// Days to add.
        #[arg(long, default_value_t = 30)]
        days: u32,
    },
    /// Turns the user off: their devices stop working until enabled again.
    Disable {
        /// User name or id (`alice`, `u12`, `12`).
        user: String,
    },
    /// Turns a disabled user on again.
    Enable {
        /// User name or id (`alice`, `u12`, `12`).
        user: String,
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
    /// Deletes a user and revokes all their devices. Asks first: pass --yes in scripts.
    Delete {
        /// User name or id (`alice`, `u12`, `12`).
        user: String,
        /// Do not ask. Without it, delete refuses unless it can ask at a terminal.
        #[arg(long, short = 'y')]
        yes: bool,
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
    /// Every invite (never its code): uses left, expiry, state.
    List,
    /// Creates an invite and prints its deep link (shown once).
    Create {
        /// What the invite is for, e.g. `friends`.
        #[arg(long)]
        label: Option<String>,
        /// How many people may use it.
        #[arg(long, default_value_t = 1)]
        uses: u32,
        /// Days of access it grants.
        #[arg(long, default_value_t = 30)]
        days: u32,
        /// Devices it grants.
        #[arg(long, default_value_t = 3)]
        devices: u32,
        /// Grant a plan's days, devices and quota instead (a trial: `plan3`; see
        /// `vpnctl plans list`).
        #[arg(long, conflicts_with_all = ["days", "devices"])]
        plan: Option<String>,
        /// Also print the link as a QR code.
        #[arg(long)]
        qr: bool,
    },
    /// Revokes an invite: its link stops working.
    Revoke {
        /// The invite's id (`i3`, `3`; `vpnctl invites list`).
        invite: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum NodesCommand {
    /// Every node: core's mark for new devices, health, devices, revisions, endpoint.
    List,
    /// Registers a node; then `vpnctl nodes join-token NODE` to enroll its daemon.
    Add {
        /// Node name, e.g. `de-fra-1`.
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
        /// IPv6 pool for the tunnel (a /64 to /120, e.g. fd00:8::/64); without one,
        /// IPv6 is routed into the tunnel and dropped there (no leak).
        #[arg(long, value_name = "NET")]
        ipv6_pool: Option<String>,
        #[command(flatten)]
        settings: NodeSettings,
    },
    /// Changes a node's settings; only the flags given change. MTU, DNS and routes
    /// reach the node's interface at once and configs issued from then on (existing
    /// devices keep theirs until re-issued).
    Set {
        /// Node name or id (`de-fra-1`, `n2`, `2`).
        node: String,
        /// host:port clients connect to.
        #[arg(long)]
        endpoint: Option<String>,
        #[command(flatten)]
        settings: NodeSettings,
    },
    /// Keep serving its peers, take no new ones.
    Drain {
        /// Node name or id (`de-fra-1`, `n2`, `2`).
        node: String,
    },
    /// Serve nobody: its peers are removed from the interface (not revoked).
    Disable {
        /// Node name or id (`de-fra-1`, `n2`, `2`).
        node: String,
    },
    /// Back to normal service after drain or disable.
    Activate {
        /// Node name or id (`de-fra-1`, `n2`, `2`).
        node: String,
    },
    /// Move every device off the node (new peers elsewhere) and set it to draining.
    /// Users with Telegram get the new config from the bot; with --configs-dir the
    /// new configs of the others are written there. Asks first: pass --yes in scripts.
    Evacuate {
        /// Node name or id (`de-fra-1`, `n2`, `2`).
        node: String,
        /// Where to: a node (name or id), else a region code [default: healthy nodes,
        /// same region first, least loaded first].
        #[arg(long, value_name = "NODE|REGION")]
        to: Option<String>,
        /// Write the new configs of moved devices whose users have no Telegram here,
        /// one `<tunnel>.conf` (0600) each; never overwrites a file.
        #[arg(long, value_name = "DIR")]
        configs_dir: Option<PathBuf>,
        /// Do not ask. Without it, evacuate refuses unless it can ask at a terminal.
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// A single-use join token and the command that enrolls the node (shown once).
    JoinToken {
        /// Node name or id (`de-fra-1`, `n2`, `2`).
        node: String,
    },
    /// Deletes a node. With peers on it only with --force, which revokes them (their
    /// configs stop working: evacuate first to move them).
    Delete {
        /// Node name or id (`de-fra-1`, `n2`, `2`).
        node: String,
        /// Also revoke the node's peers.
        #[arg(long)]
        force: bool,
        /// Do not ask. Without it, delete refuses unless it can ask at a terminal.
        #[arg(long, short = 'y')]
        yes: bool,
    },
}

/// Settings of a node that `nodes add` and `nodes set` share.
#[derive(Debug, Clone, Default, Args)]
pub struct NodeSettings {
    /// MTU of the interface and of client configs, 1280-9000 [default: 1280, which
    /// fits mobile networks].
    #[arg(long)]
    pub mtu: Option<u16>,
    /// Resolvers written into client configs, comma-separated [default: the node's
    /// gateway, where the node daemon answers].
    #[arg(long, value_delimiter = ',', value_name = "IP")]
    pub dns: Option<Vec<std::net::IpAddr>>,
    /// Routes client configs send into the tunnel, comma-separated, e.g. a split
    /// tunnel `10.0.0.0/8` [default: everything, `0.0.0.0/0, ::/0`].
    #[arg(long, value_delimiter = ',', value_name = "NET")]
    pub allowed_ips: Option<Vec<ipnet::IpNet>>,
    /// Devices the node takes [default: 0, the pool's size].
    #[arg(long)]
    pub capacity: Option<u32>,
    /// Keepalive written into client configs, seconds (0: off) [default: 25].
    #[arg(long, value_name = "SECS")]
    pub keepalive: Option<u16>,
    /// wireguard, or amneziawg for networks that block WireGuard (clients then need
    /// the AmneziaWG app); on `set`, every client needs a new config (users with
    /// Telegram are sent theirs) [default on add: wireguard].
    #[arg(long, value_name = "KIND")]
    pub transport: Option<vpnctl_api::transport::TransportKind>,
    /// AmneziaWG generation, 1.0, 1.5 or 2.0 (see docs/awg.md for the apps each
    /// needs); fresh parameters are generated [default: 1.0].
    #[arg(long, value_name = "GEN")]
    pub awg_generation: Option<vpnctl_api::transport::AwgGeneration>,
}

impl NodeSettings {
    /// The transport asked for: `--transport`, or amneziawg when only a generation
    /// is given.
    pub fn transport_choice(&self) -> Option<vpnctl_api::transport::TransportChoice> {
        use vpnctl_api::transport::{TransportChoice, TransportKind};
        match (self.transport, self.awg_generation) {
            (Some(TransportKind::Wireguard), _) => Some(TransportChoice::Wireguard),
            (Some(TransportKind::Amneziawg), generation) | (None, generation @ Some(_)) => {
                Some(TransportChoice::Amneziawg {
                    generation,
                    params: None,
                })
            }
            (None, None) => None,
        }
    }
}

/// Where a config goes: stdout (the default), a file, and/or a QR on the terminal.
#[derive(Debug, Clone, Default, Args)]
pub struct ConfigOutput {
    /// Print the config as a QR code for the WireGuard mobile apps.
    #[arg(long)]
    pub qr: bool,
    /// Write the config to this file (mode 0600) instead of printing it.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Overwrite the --out file if it exists.
    #[arg(long, requires = "out")]
    pub force: bool,
}

#[derive(Debug, Subcommand)]
pub enum PeersCommand {
    /// Peers, optionally of one user, on one node or region, of users in one access
    /// state, by device name, tunnel address or public key; filtered on the server.
    List {
        /// Only this user's (name or id).
        #[arg(long)]
        user: Option<String>,
        /// Only those on this node (name or id).
        #[arg(long)]
        node: Option<String>,
        /// Only those on a node of this region (its code, e.g. `de-fra`).
        #[arg(long)]
        region: Option<String>,
        /// Only those whose user's access is now: active, lapsed, suspended or
        /// disabled (e.g. the devices of users whose access ended).
        #[arg(long, value_name = "STATE")]
        access: Option<vpnctl_api::body::AccessState>,
        /// Only devices whose name contains this, ignoring case (e.g. `iphone`).
        #[arg(long, value_name = "TEXT")]
        device: Option<String>,
        /// The peer holding this tunnel address (e.g. `10.8.3.7` from a node's
        /// logs); on every node whose pool has it, or on --node.
        #[arg(long, value_name = "IP")]
        address: Option<std::net::IpAddr>,
        /// The peer with this public key (e.g. from `wg show` on a node).
        #[arg(long, value_name = "BASE64")]
        key: Option<vpnctl_core::PublicKey>,
    },
    /// Gives a user a new device on a node, or on the node core prefers in a region,
    /// and hands over its config (stdout, --out FILE or --qr).
    Issue {
        /// User name or id (`alice`, `u12`, `12`).
        user: String,
        /// A node (name or id), or a region code: then the node core's placement
        /// prefers there (healthy first, least loaded first).
        #[arg(value_name = "NODE|REGION")]
        target: String,
        /// Device name [default: device1, device2, … the first the user has not used].
        #[arg(long)]
        device: Option<String>,
        #[command(flatten)]
        output: ConfigOutput,
    },
    /// The peer's wg-quick config (contains its private key).
    Config {
        /// Peer id (`p12`, `12`) or `user/device` (`alice/phone`).
        peer: String,
        #[command(flatten)]
        output: ConfigOutput,
    },
    /// New keys for a peer (the old config stops working) and its new config.
    /// Asks first: pass --yes in scripts.
    Rotate {
        /// Peer id (`p12`, `12`) or `user/device` (`alice/phone`).
        peer: String,
        #[command(flatten)]
        output: ConfigOutput,
        /// Do not ask. Without it, rotate refuses unless it can ask at a terminal.
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Revokes a peer: its device loses access and its address is freed. Asks first:
    /// pass --yes in scripts.
    Revoke {
        /// Peer id (`p12`, `12`) or `user/device` (`alice/phone`).
        peer: String,
        /// Do not ask. Without it, revoke refuses unless it can ask at a terminal.
        #[arg(long, short = 'y')]
        yes: bool,
    },
}

/// `vpnctl events`.
#[derive(Debug, Clone, Args)]
pub struct EventsArgs {
    /// How many of the most recent events to list.
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    /// Then keep printing each new event as it happens (Ctrl-C ends). With --json,
    /// one JSON object per line.
    #[arg(long, short = 'f')]
    pub follow: bool,
}

#[derive(Debug, Subcommand)]
pub enum PlansCommand {
    /// The plans on sale (with --all, the retired ones too).
    List {
        /// Also the retired plans.
        #[arg(long)]
        all: bool,
    },
    /// Puts a plan on sale in the bot (/buy, "Renew").
    Add {
        /// Its name in English (the invoice title; at most 32 characters).
        name: String,
        /// Its name in Russian [default: the English name].
        #[arg(long)]
        name_ru: Option<String>,
        /// Days of access one purchase adds.
        #[arg(long)]
        days: u32,
        /// Price in Telegram Stars (not for a --trial).
        #[arg(long, required_unless_present = "trial")]
        stars: Option<u32>,
        /// Devices the buyer may have.
        #[arg(long, default_value_t = 3)]
        devices: u32,
        /// A traffic quota that comes with it (`100GB`; default: none).
        #[arg(long, value_parser = crate::cli::parse_quota_size)]
        quota: Option<QuotaSize>,
        /// How often the quota resets.
        #[arg(long, default_value = "monthly")]
        quota_period: QuotaPeriod,
        /// Sold as a monthly Telegram Stars subscription that renews itself (then
        /// --days must be 30).
        #[arg(long)]
        recurring: bool,
        /// A trial: not sold, granted by invites (`vpnctl invites create --plan`).
        #[arg(long, conflicts_with_all = ["stars", "recurring"])]
        trial: bool,
    },
    /// Takes a plan off sale; open invoices for it are refused at checkout, what
    /// was paid stays paid.
    Retire {
        /// The plan's id (`plan2`, `2`; `vpnctl plans list`).
        plan: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum PaymentsCommand {
    /// Payments, newest first.
    List {
        /// Only this user's (name or id).
        #[arg(long)]
        user: Option<String>,
        /// At most this many.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// One payment in full.
    Show {
        /// The payment's id (`pay3`, `3`).
        payment: String,
    },
    /// Returns a payment's Stars through the bot (`refundStarPayment`) and takes
    /// the days it bought back. Asks first: pass --yes in scripts.
    Refund {
        /// The payment's id (`pay3`, `3`).
        payment: String,
        /// Do not ask. Without it, refund refuses unless it can ask at a terminal.
        #[arg(long, short = 'y')]
        yes: bool,
        /// How long to wait for the bot to carry it out.
        #[arg(long, default_value_t = 30)]
        wait_secs: u64,
    },
    /// Stars taken and refunded per day and plan.
    Revenue {
        /// The last this many days, today included.
        #[arg(long, default_value_t = 30)]
        days: u32,
    },
}

#[derive(Debug, Args)]
pub struct BroadcastArgs {
    /// Who gets it: `active` (access works now), `lapsed` (access ended), `all`
    /// (everyone not disabled) or `region R` (users with a device on a node of
    /// region code R). Only users with Telegram.
    #[arg(long, num_args = 1..=2, value_names = ["WHO", "REGION"], required = true)]
    pub to: Vec<String>,
    /// The text, as users will read it (words may be given unquoted).
    pub text: Vec<String>,
    /// Show how many users it would reach, send nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask.
    #[arg(long, short = 'y')]
    pub yes: bool,
}

#[derive(Debug, Subcommand)]
pub enum BroadcastsCommand {
    /// The recent broadcasts, newest first, with how many messages the bot handled.
    List,
    /// Stops a broadcast: users not reached yet are not reached.
    Cancel {
        /// The broadcast's id (`vpnctl broadcasts list`).
        id: u64,
    },
}
