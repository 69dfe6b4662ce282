//! The command line: one [`Config`] for the dashboard, the demo and the scriptable
//! subcommands, and [`run`] which carries them out. Output goes to the writer it is
//! given (stdout in the binary), so tests read exactly what a script would.

use std::io::{BufRead as _, IsTerminal as _, Write};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use qrcode::render::unicode::Dense1x2;
use qrcode::{EcLevel, QrCode};
use serde::Serialize;
use vpnctl_api::body::{CreateInvite, CreateUser, NodeView, PatchUser, PeerQuery, RegisterNode};
use vpnctl_client::{ApiClient, ClientError, ConnectionString, Fingerprint};
use vpnctl_core::{
    EvacuateTo, Evacuation, Grant, Health, Node, NodeId, PeerId, Quota, QuotaPeriod, Region, Role,
    Secret, Timestamp, User, UserId, UserState,
};

use crate::app::UserStatus;
use crate::demo::{Demo, DemoError, DemoOptions};
use crate::runtime::{self, describe};
use vpnctl_core::units::{self, SizeError};

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

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(
        "no API to talk to: pass --api URL --token TOKEN [--fingerprint HEX] or --connect STRING, or set VPNCTL_API and VPNCTL_TOKEN (or VPNCTL_CONNECT); to try vpnctl without a server run `vpnctl demo`"
    )]
    NoConnection,
    #[error("{0}")]
    Usage(String),
    /// A name or id that matches nothing the API lists (like the API's 404).
    #[error("{0}")]
    NotFound(String),
    /// The admin answered no.
    #[error("aborted: nothing changed")]
    Aborted,
    /// The command ran but did not do everything (what it did is printed).
    #[error("{0}")]
    Incomplete(String),
    #[error("{}", describe(.0))]
    Api(#[from] ClientError),
    #[error("{0}")]
    Demo(#[from] DemoError),
    #[error("terminal: {0}")]
    Io(#[from] std::io::Error),
}

impl CliError {
    /// 2: bad usage or settings; 3: the API is unreachable; 4: the API said no (or the
    /// name given matches nothing); 1: other, also a command that did only part of its
    /// work or that the admin declined.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::NoConnection | Self::Usage(_) => 2,
            Self::Api(ClientError::Config(_) | ClientError::Token(_)) => 2,
            Self::Api(ClientError::Unreachable { .. } | ClientError::Timeout { .. }) => 3,
            Self::Api(ClientError::Api { .. }) | Self::NotFound(_) => 4,
            _ => 1,
        }
    }
}

impl ConnectionArgs {
    /// The API client these settings describe.
    pub fn client(&self) -> Result<ApiClient, CliError> {
        if let Some(text) = &self.connect {
            let connection = ConnectionString::parse(text.trim()).map_err(ClientError::from)?;
            return Ok(ApiClient::from_connection(&connection)?);
        }
        let Some(api) = &self.api else {
            return Err(CliError::NoConnection);
        };
        let Some(token) = &self.token else {
            return Err(CliError::Usage(
                "--api needs --token (or VPNCTL_TOKEN): the API token of an admin".into(),
            ));
        };
        let pin = self
            .fingerprint
            .as_deref()
            .map(|f| {
                f.parse::<Fingerprint>().map_err(|_| {
                    CliError::Usage(format!(
                        "--fingerprint {f:?} is not a SHA-256 fingerprint (64 hex digits)"
                    ))
                })
            })
            .transpose()?;
        Ok(ApiClient::new(api, Some(Secret::new(token.clone())), pin)?)
    }
}

fn json(out: &mut dyn Write, value: &impl Serialize) -> Result<(), CliError> {
    serde_json::to_writer_pretty(&mut *out, value)
        .map_err(|e| CliError::Io(std::io::Error::other(e)))?;
    writeln!(out)?;
    Ok(())
}

fn date(t: Option<Timestamp>, none: &str) -> String {
    t.map_or_else(|| none.to_owned(), Timestamp::to_date)
}

/// Asks the admin a yes/no question; `None` when nobody can be asked.
pub type Ask<'a> = dyn FnMut(&str) -> Option<bool> + Send + 'a;

/// Asks on stderr and reads the answer from stdin, if stdin is a terminal.
pub fn ask_on_terminal(question: &str) -> Option<bool> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return None;
    }
    eprint!("{question} [y/N] ");
    let mut answer = String::new();
    stdin.lock().read_line(&mut answer).ok()?;
    Some(matches!(answer.trim().to_lowercase().as_str(), "y" | "yes"))
}

/// Runs what the command line asks for. Dashboard and demo take over the terminal;
/// destructive subcommands ask on the terminal (see [`run_with`]).
pub async fn run(config: Config, out: &mut dyn Write) -> Result<(), CliError> {
    run_with(config, out, &mut ask_on_terminal).await
}

/// [`run`], with `ask` answering the confirmation questions (tests answer for the admin).
pub async fn run_with(
    config: Config,
    out: &mut dyn Write,
    ask: &mut Ask<'_>,
) -> Result<(), CliError> {
    let as_json = config.json;
    match config.command {
        None | Some(Command::Dashboard) => {
            let api = config.connection.client()?;
            // Fail before taking over the terminal when the API is clearly wrong.
            api.healthz().await?;
            let title = format!("vpnctl {}", api.base_url());
            runtime::run_dashboard(api, &title).await?;
            Ok(())
        }
        Some(Command::Demo { data, peers }) => {
            let demo = Demo::start(DemoOptions {
                data,
                extra_peers: peers,
                report_secs: None,
            })
            .await?;
            let result = runtime::run_dashboard(demo.api.clone(), "vpnctl demo").await;
            demo.stop().await;
            result?;
            Ok(())
        }
        Some(Command::Users(cmd)) => users(&config.connection.client()?, cmd, as_json, out).await,
        Some(Command::Invites(cmd)) => {
            invites(&config.connection.client()?, cmd, as_json, out).await
        }
        Some(Command::Nodes(cmd)) => {
            nodes(&config.connection.client()?, cmd, as_json, out, ask).await
        }
        Some(Command::Peers(cmd)) => peers(&config.connection.client()?, cmd, as_json, out).await,
        Some(Command::Tokens(cmd)) => tokens(&config.connection.client()?, cmd, as_json, out).await,
    }
}

async fn tokens(
    api: &ApiClient,
    cmd: TokensCommand,
    as_json: bool,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let print = |out: &mut dyn Write, t: &vpnctl_core::ApiToken| {
        writeln!(
            out,
            "{:<5} {:<8} {:<24} created {}",
            t.id,
            t.scope.to_string(),
            t.label,
            t.created_at.to_date()
        )
    };
    match cmd {
        TokensCommand::List => {
            let list = api.tokens().await?;
            if as_json {
                return json(out, &list);
            }
            for t in &list {
                print(out, t)?;
            }
        }
        TokensCommand::Create { scope, label } => {
            let scope = match scope {
                TokenScope::Admin => vpnctl_core::Scope::Admin,
                TokenScope::Bot => vpnctl_core::Scope::Bot,
            };
            let (token, secret) = api.create_token(scope, &label).await?;
            if as_json {
                #[derive(Serialize)]
                struct Out<'a> {
                    token: &'a vpnctl_core::ApiToken,
                    secret: &'a str,
                }
                return json(
                    out,
                    &Out {
                        token: &token,
                        secret: secret.expose(),
                    },
                );
            }
            print(out, &token)?;
            writeln!(out, "secret (shown once, store it like a password):")?;
            writeln!(out, "{}", secret.expose())?;
        }
        TokensCommand::Revoke { id } => {
            let token = api.revoke_token(vpnctl_core::TokenId(id)).await?;
            if as_json {
                return json(out, &token);
            }
            write!(out, "revoked ")?;
            print(out, &token)?;
        }
    }
    Ok(())
}

fn print_user(out: &mut dyn Write, u: &User) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<6} {:<20} {:<6} {:<9} until {:<10} quota {}",
        format!("u{}", u.id),
        u.name,
        format!("{:?}", u.role).to_lowercase(),
        UserStatus::of(u, Timestamp::now()).label(),
        date(u.until, "unlimited"),
        u.quota.map_or_else(
            || "none".into(),
            |q| format!("{} {}", units::display(q.bytes), q.period)
        )
    )
}

/// The one user `text` names: an id (`u12`, `12`) or an exact name.
async fn resolve_user(api: &ApiClient, text: &str) -> Result<User, CliError> {
    let id = text.parse::<UserId>().ok();
    let users = api.users().await?;
    let mut found: Vec<User> = users
        .into_iter()
        .filter(|u| u.name == text || Some(u.id) == id)
        .collect();
    match found.len() {
        0 => Err(CliError::NotFound(format!(
            "no user named or numbered {text:?}; `vpnctl users list` shows them"
        ))),
        1 => Ok(found.remove(0)),
        _ => Err(CliError::Usage(format!(
            "{text:?} matches several users ({}): give the id",
            found
                .iter()
                .map(|u| format!("u{} {}", u.id, u.name))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

async fn users(
    api: &ApiClient,
    cmd: UsersCommand,
    as_json: bool,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let user = match cmd {
        UsersCommand::List => {
            let users = api.users().await?;
            if as_json {
                return json(out, &users);
            }
            for u in &users {
                print_user(out, u)?;
            }
            return Ok(());
        }
        UsersCommand::Add {
            name,
            days,
            devices,
            telegram_id,
            admin,
        } => {
            let until = days.map(|d| Timestamp::now().plus_days(i64::from(d)));
            api.create_user(&CreateUser {
                name,
                telegram_id,
                role: admin.then_some(Role::Admin),
                until,
                device_limit: devices,
                locale: None,
            })
            .await?
        }
        UsersCommand::Extend { id, days } => api.extend_access(id, days).await?,
        UsersCommand::Disable { id } => api.set_user_state(id, UserState::Disabled).await?,
        UsersCommand::Enable { id } => api.set_user_state(id, UserState::Active).await?,
        UsersCommand::Quota { user, size, period } => {
            let user = resolve_user(api, &user).await?;
            let quota = match size {
                QuotaSize::None if period.is_some() => {
                    return Err(CliError::Usage(
                        "--period goes with a size; `none` removes the quota".into(),
                    ));
                }
                QuotaSize::None => None,
                QuotaSize::Bytes(bytes) => Some(Quota {
                    bytes,
                    period: period
                        .or(user.quota.map(|q| q.period))
                        .unwrap_or(QuotaPeriod::Monthly),
                }),
            };
            api.update_user(
                user.id,
                &PatchUser {
                    quota: Some(quota),
                    ..PatchUser::default()
                },
            )
            .await?
        }
    };
    if as_json {
        json(out, &user)
    } else {
        Ok(print_user(out, &user)?)
    }
}

async fn invites(
    api: &ApiClient,
    cmd: InvitesCommand,
    as_json: bool,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    match cmd {
        InvitesCommand::List => {
            let invites = api.invites().await?;
            if as_json {
                return json(out, &invites);
            }
            for i in &invites {
                writeln!(
                    out,
                    "{:<6} {:<20} uses {}/{} expires {}{}",
                    format!("i{}", i.id),
                    i.label,
                    i.uses_left,
                    i.uses_total,
                    date(i.expires_at, "never"),
                    if i.revoked { " revoked" } else { "" }
                )?;
            }
            Ok(())
        }
        InvitesCommand::Create {
            label,
            uses,
            days,
            devices,
            qr,
        } => {
            let created = api
                .create_invite(&CreateInvite {
                    label,
                    uses: Some(uses),
                    expires_at: None,
                    grant: Some(Grant {
                        access_days: Some(days),
                        device_limit: devices,
                        role: Role::User,
                    }),
                })
                .await?;
            // The link (or the bare code when the server knows no bot) is the point of
            // this command: it is printed this once and nowhere logged.
            let link = created.link.clone().unwrap_or_else(|| created.code.clone());
            if as_json {
                #[derive(Serialize)]
                struct Out<'a> {
                    invite: &'a vpnctl_core::Invite,
                    link: &'a str,
                }
                return json(
                    out,
                    &Out {
                        invite: &created.invite,
                        link: &link,
                    },
                );
            }
            writeln!(
                out,
                "invite i{} created; send this link (shown once):",
                created.invite.id
            )?;
            writeln!(out, "{link}")?;
            if qr {
                writeln!(out, "{}", runtime::qr_lines(&link))?;
            }
            Ok(())
        }
    }
}

async fn nodes(
    api: &ApiClient,
    cmd: NodesCommand,
    as_json: bool,
    out: &mut dyn Write,
    ask: &mut Ask<'_>,
) -> Result<(), CliError> {
    let node = match cmd {
        NodesCommand::List => {
            let nodes = api.nodes().await?;
            if as_json {
                return json(out, &nodes);
            }
            for v in &nodes {
                writeln!(
                    out,
                    "{:<5} {:<12} {:<8} {:<8} {:<9} peers {:<5} rev {}/{} {}{}",
                    format!("n{}", v.node.id),
                    v.node.name,
                    v.node.region.code,
                    v.node.state.to_string(),
                    crate::app::health(v).as_str(),
                    v.peers,
                    v.health
                        .applied_revision
                        .map_or_else(|| "-".into(), |r| r.to_string()),
                    v.health.desired_revision,
                    v.node.endpoint,
                    if v.health.status == Health::Up || v.health.reason.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", v.health.reason)
                    }
                )?;
            }
            return Ok(());
        }
        NodesCommand::Add {
            name,
            region,
            region_name,
            endpoint,
            pool,
        } => {
            let ipv4_pool = pool
                .parse()
                .map_err(|e| CliError::Usage(format!("--pool {pool:?}: {e}")))?;
            api.register_node(&RegisterNode {
                name,
                region: Region {
                    name: region_name.unwrap_or_else(|| region.clone()),
                    code: region,
                },
                endpoint,
                ipv4_pool,
                listen_port: None,
                public_key: None,
                ipv6_pool: None,
                dns: None,
                mtu: None,
                capacity: None,
                client_allowed_ips: None,
                persistent_keepalive: None,
            })
            .await?
        }
        NodesCommand::Drain { id } => api.drain_node(id).await?,
        NodesCommand::Disable { id } => api.disable_node(id).await?,
        NodesCommand::Activate { id } => api.activate_node(id).await?,
        NodesCommand::Evacuate { node, to, yes } => {
            return evacuate(api, &node, to.as_deref(), yes, as_json, out, ask).await;
        }
        NodesCommand::Delete { node, force, yes } => {
            let nodes = api.nodes().await?;
            let (target, peers) = match matching_nodes(&nodes, &node).as_slice() {
                [n] => {
                    let peers = nodes
                        .iter()
                        .find(|v| v.node.id == n.id)
                        .map_or(0, |v| v.peers);
                    ((*n).clone(), peers)
                }
                [] => {
                    return Err(CliError::NotFound(format!(
                        "no node named or numbered {node:?}; `vpnctl nodes list` shows them"
                    )));
                }
                found => return Err(ambiguous(&node, found)),
            };
            if !yes {
                let question = if force && peers > 0 {
                    format!(
                        "Delete {} and revoke its {peers} devices? Their configs stop working.",
                        target.name
                    )
                } else {
                    format!("Delete {}?", target.name)
                };
                match ask(&question) {
                    Some(true) => {}
                    Some(false) => return Err(CliError::Aborted),
                    None => {
                        return Err(CliError::Usage(format!(
                            "refusing to delete {} without --yes; confirm at a terminal or pass --yes",
                            target.name
                        )));
                    }
                }
            }
            api.delete_node(target.id, force).await?;
            if as_json {
                return json(out, &serde_json::json!({ "deleted": target.id }));
            }
            writeln!(out, "deleted n{} {}", target.id, target.name)?;
            return Ok(());
        }
        NodesCommand::JoinToken { id } => {
            let (token, expires) = api.create_join_token(id, None).await?;
            let command = format!("vpnctl-node join {}", token.encode());
            if as_json {
                #[derive(Serialize)]
                struct Out {
                    join_token: String,
                    expires_at: Timestamp,
                    command: String,
                }
                return json(
                    out,
                    &Out {
                        join_token: token.encode(),
                        expires_at: expires,
                        command,
                    },
                );
            }
            writeln!(
                out,
                "on the new server run (single use, valid until {}):",
                expires.to_rfc3339()
            )?;
            writeln!(out, "{command}")?;
            return Ok(());
        }
    };
    if as_json {
        json(out, &node)
    } else {
        writeln!(
            out,
            "n{} {} {} {}",
            node.id, node.name, node.region.code, node.state
        )?;
        Ok(())
    }
}

/// The nodes `text` names: an id (`n2`, `2`) or an exact name.
fn matching_nodes<'a>(nodes: &'a [NodeView], text: &str) -> Vec<&'a Node> {
    let id = text.parse::<NodeId>().ok();
    nodes
        .iter()
        .map(|v| &v.node)
        .filter(|n| n.name == text || Some(n.id) == id)
        .collect()
}

fn ambiguous(text: &str, found: &[&Node]) -> CliError {
    CliError::Usage(format!(
        "{text:?} matches several nodes ({}): give the id",
        found
            .iter()
            .map(|n| format!("n{} {}", n.id, n.name))
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

/// Where `--to` points: a node (name or id) first, else a region code.
fn evacuate_target(nodes: &[NodeView], source: &Node, text: &str) -> Result<EvacuateTo, CliError> {
    match matching_nodes(nodes, text).as_slice() {
        [n] if n.id == source.id => Err(CliError::Usage(format!(
            "--to {text:?} is the node being evacuated"
        ))),
        [n] => Ok(EvacuateTo::Node(n.id)),
        [] if nodes.iter().any(|v| v.node.region.code == text) => {
            Ok(EvacuateTo::Region(text.to_owned()))
        }
        [] => {
            let mut regions: Vec<&str> =
                nodes.iter().map(|v| v.node.region.code.as_str()).collect();
            regions.sort_unstable();
            regions.dedup();
            Err(CliError::NotFound(format!(
                "--to {text:?} is neither a node (name or id) nor a region code (regions: {})",
                regions.join(", ")
            )))
        }
        found => Err(ambiguous(text, found)),
    }
}

async fn evacuate(
    api: &ApiClient,
    node: &str,
    to: Option<&str>,
    yes: bool,
    as_json: bool,
    out: &mut dyn Write,
    ask: &mut Ask<'_>,
) -> Result<(), CliError> {
    let nodes = api.nodes().await?;
    let source = match matching_nodes(&nodes, node).as_slice() {
        [n] => (*n).clone(),
        [] => {
            return Err(CliError::NotFound(format!(
                "no node named or numbered {node:?}; `vpnctl nodes list` shows them"
            )));
        }
        found => return Err(ambiguous(node, found)),
    };
    let target = match to {
        Some(text) => evacuate_target(&nodes, &source, text)?,
        None => EvacuateTo::Auto,
    };
    let name_of = |id: NodeId| {
        nodes
            .iter()
            .find(|v| v.node.id == id)
            .map_or_else(|| format!("n{id}"), |v| v.node.name.clone())
    };
    let (peers, users) = tokio::try_join!(
        api.peers(PeerQuery {
            user: None,
            node: Some(source.id),
        }),
        api.users()
    )?;
    if !yes {
        let whereto = match &target {
            EvacuateTo::Auto => "healthy nodes".to_owned(),
            EvacuateTo::Region(code) => format!("healthy nodes in {code}"),
            EvacuateTo::Node(id) => name_of(*id),
        };
        let question = format!(
            "Move all {} devices off {} to {whereto}? Users get new configs from the bot.",
            peers.len(),
            source.name
        );
        match ask(&question) {
            Some(true) => {}
            Some(false) => return Err(CliError::Aborted),
            None => {
                return Err(CliError::Usage(format!(
                    "refusing to evacuate {} without --yes: it moves all {} devices to other nodes and each of their users gets a new config; confirm at a terminal or pass --yes",
                    source.name,
                    peers.len()
                )));
            }
        }
    }
    let done: Evacuation = api.evacuate_node(source.id, target).await?;
    if as_json {
        json(out, &done)?;
    } else {
        let user_name = |id: UserId| {
            users
                .iter()
                .find(|u| u.id == id)
                .map_or("?", |u| u.name.as_str())
        };
        writeln!(out, "{}", runtime::evacuation_summary(&source.name, &done))?;
        for m in &done.moved {
            writeln!(
                out,
                "  moved  {:<7} {:<20} {:<16} -> {:<12} (p{} was p{})",
                format!("u{}", m.user),
                user_name(m.user),
                m.device,
                name_of(m.to),
                m.new_peer,
                m.old_peer
            )?;
        }
        for (peer, why) in &done.failed {
            let (user, device) = peers.iter().find(|p| p.id == *peer).map_or_else(
                || (String::from("?"), String::from("?")),
                |p| {
                    (
                        format!("u{} {}", p.user, user_name(p.user)),
                        p.device.clone(),
                    )
                },
            );
            writeln!(out, "  FAILED p{peer} {user} {device}: {why}")?;
        }
    }
    if done.failed.is_empty() {
        Ok(())
    } else {
        Err(CliError::Incomplete(format!(
            "{} of {} devices could not be moved off {}",
            done.failed.len(),
            done.failed.len() + done.moved.len(),
            source.name
        )))
    }
}

async fn peers(
    api: &ApiClient,
    cmd: PeersCommand,
    as_json: bool,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    match cmd {
        PeersCommand::List { user, node } => {
            let peers = api.peers(PeerQuery { user, node }).await?;
            if as_json {
                return json(out, &peers);
            }
            for p in &peers {
                writeln!(
                    out,
                    "{:<7} {:<6} {:<5} {:<12} {}",
                    format!("p{}", p.id),
                    format!("u{}", p.user),
                    format!("n{}", p.node),
                    p.device,
                    p.ipv4
                )?;
            }
            Ok(())
        }
        PeersCommand::Config { id, qr } => {
            let config = api.peer_config(id).await?;
            if as_json {
                return json(out, &serde_json::json!({ "peer": id, "config": config }));
            }
            if qr {
                let code = QrCode::with_error_correction_level(config.as_bytes(), EcLevel::L)
                    .map_err(|e| CliError::Usage(format!("config too large for a QR: {e}")))?;
                let text = code
                    .render::<Dense1x2>()
                    .dark_color(Dense1x2::Light)
                    .light_color(Dense1x2::Dark)
                    .build();
                writeln!(out, "{text}")?;
            } else {
                write!(out, "{config}")?;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn command_line_is_consistent() {
        Config::command().debug_assert();
    }

    #[test]
    fn missing_connection_is_a_usage_error() {
        let err = ConnectionArgs::default().client().unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("vpnctl demo"));
        let err = ConnectionArgs {
            api: Some("http://127.0.0.1:1".into()),
            ..ConnectionArgs::default()
        }
        .client()
        .unwrap_err();
        assert!(err.to_string().contains("--token"));
    }

    #[test]
    fn plain_http_to_a_remote_host_is_refused() {
        let err = ConnectionArgs {
            api: Some("http://192.0.2.1:7443".into()),
            token: Some("vpt_x".into()),
            ..ConnectionArgs::default()
        }
        .client()
        .unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }
}
