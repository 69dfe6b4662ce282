//! The handler tree ([`schema`]) and its endpoints. Endpoints only parse, call the
//! API client, and format through [`crate::i18n`].

use std::time::Duration;

use teloxide::dispatching::{HandlerExt, UpdateFilterExt};
use teloxide::prelude::*;
use teloxide::types::{
    ChatId, InlineKeyboardButton, InlineKeyboardMarkup, InputFile, Me, MessageId,
};
use teloxide::utils::command::BotCommands;
use tracing::{info, warn};
use vpnctl_api::ErrorCode;
use vpnctl_api::body::{
    CreateInvite, IssuePeerRequest, NodeView, PatchUser, PeerQuery, RedeemInvite,
};
use vpnctl_client::ClientError;
use vpnctl_core::{
    Access, Grant, Locale, NodeId, NodeState, Peer, PeerId, Placement, QuotaPeriod, Role,
    Timestamp, User,
};

use crate::callback::Action;
use crate::i18n::{DeviceLine, ServerLine, Text, UsageLine, admin_nodes, admin_users};
use crate::services::{Api, Limits, Session, Settings, telegram_id};
use crate::{BotError, TgBot};

pub type HandlerResult = Result<(), BotError>;

/// Longer texts are refused before any parsing (Telegram allows 4096).
pub const MAX_TEXT: usize = 1024;

/// Rows of one kind in a keyboard (Telegram allows 100 buttons in all).
const MAX_ROWS: usize = 40;

/// User commands.
#[derive(BotCommands, Clone, Debug)]
#[command(rename_rule = "snake_case")]
pub enum Command {
    /// Start; with an invite code, activate it.
    Start(String),
    /// Get a WireGuard config.
    GetConfig,
    /// Replace a device's key.
    Regen,
    /// Your access and devices.
    Status,
    /// Servers and their load.
    Servers,
    /// What the bot can do.
    Help,
    /// Choose the language.
    Language,
}

/// Commands only admin Telegram ids get.
#[derive(BotCommands, Clone, Debug)]
#[command(rename_rule = "lowercase")]
pub enum AdminCommand {
    Nodes,
    Users,
    Invite(String),
}

/// The command list registered with Telegram (`setMyCommands`).
pub fn command_list(l: Locale) -> Vec<teloxide::types::BotCommand> {
    let items: [(&str, &str, &str); 7] = [
        (
            "get_config",
            "Get a VPN config",
            "Получить конфигурацию VPN",
        ),
        ("status", "Access and devices", "Доступ и устройства"),
        (
            "regen",
            "Replace a device's key",
            "Заменить ключ устройства",
        ),
        ("servers", "Servers and load", "Серверы и загрузка"),
        ("language", "Language / Язык", "Язык / Language"),
        ("help", "Help", "Помощь"),
        (
            "start",
            "Start / activate an invite",
            "Начать / активировать приглашение",
        ),
    ];
    items
        .iter()
        .map(|(c, en, ru)| {
            teloxide::types::BotCommand::new(*c, if l == Locale::Ru { *ru } else { *en })
        })
        .collect()
}

/// The whole update handler tree.
pub fn schema() -> teloxide::dispatching::UpdateHandler<BotError> {
    let messages = Update::filter_message()
        .branch(dptree::filter(|m: Message| !m.chat.is_private()).endpoint(group_message))
        .branch(
            dptree::filter(|m: Message| m.text().is_some_and(|t| t.len() > MAX_TEXT))
                .endpoint(too_long),
        )
        .branch(
            dptree::filter(|m: Message, s: Settings| s.is_admin(m.from.as_ref()))
                .filter_command::<AdminCommand>()
                .endpoint(admin_command),
        )
        .branch(
            dptree::entry()
                .filter_command::<Command>()
                .endpoint(command),
        )
        .branch(
            dptree::filter(|m: Message| m.text().is_some_and(|t| t.starts_with('/')))
                .endpoint(unknown_command),
        )
        .branch(Message::filter_text().endpoint(free_text))
        .endpoint(not_text);
    dptree::entry()
        .map_async(|u: Update, s: Session, api: Api| async move {
            s.resolve_locale(&api, u.from()).await
        })
        .branch(messages)
        .branch(Update::filter_callback_query().endpoint(callback))
}

// ------------------------------------------------------------------ helpers

async fn say(bot: &TgBot, chat: ChatId, text: Text<'_>, l: Locale) -> HandlerResult {
    bot.send_message(chat, text.render(l)).await?;
    Ok(())
}

/// What a failed API call means to the user.
fn api_failure(e: &ClientError) -> Text<'static> {
    match e.code() {
        Some(ErrorCode::AccessExpired) => Text::AccessEnded,
        // The error body carries no date; /status shows when the quota resets.
        Some(ErrorCode::QuotaExhausted) => Text::QuotaUsedUp { until: None },
        Some(ErrorCode::UserDisabled) => Text::AccountDisabled,
        Some(ErrorCode::PrivateKeyUnavailable) => Text::NoPrivateKey,
        Some(ErrorCode::InviteNotFound | ErrorCode::InviteRevoked | ErrorCode::Invalid) => {
            Text::InviteInvalid
        }
        Some(ErrorCode::InviteExpired) => Text::InviteExpired,
        Some(ErrorCode::InviteUsedUp) => Text::InviteUsedUp,
        Some(
            ErrorCode::NodeDisabled
            | ErrorCode::NodeDraining
            | ErrorCode::NodeNotReady
            | ErrorCode::PoolExhausted,
        ) => Text::NoServers,
        Some(code) if code.is_transient() => Text::Unavailable,
        Some(_) => Text::Failed,
        None => match e {
            ClientError::Unreachable { .. } | ClientError::Timeout { .. } => Text::Unavailable,
            _ => Text::Failed,
        },
    }
}

async fn fail(bot: &TgBot, chat: ChatId, e: &ClientError, l: Locale) -> HandlerResult {
    warn!(error = %e, "control plane call failed");
    say(bot, chat, api_failure(e), l).await
}

/// Unwraps an API result or tells the user what went wrong and returns.
macro_rules! api {
    ($bot:expr, $chat:expr, $l:expr, $call:expr) => {
        match $call.await {
            Ok(v) => v,
            Err(e) => return fail(&$bot, $chat, &e, $l).await,
        }
    };
}

/// Why a user may not get configs, if they may not.
/// Why the user may not have devices now, in words; `None` when they may.
fn access_problem(user: &User) -> Option<Text<'static>> {
    match Access::of(user, Timestamp::now()) {
        Access::Active { .. } => None,
        Access::Disabled => Some(Text::AccountDisabled),
        Access::Lapsed { .. } => Some(Text::AccessEnded),
        Access::Suspended { resumes, .. } => Some(Text::QuotaUsedUp {
            until: Some(resumes.to_date()),
        }),
    }
}

fn rate_limited(wait: Duration) -> Text<'static> {
    Text::RateLimited {
        minutes: wait.as_secs().div_ceil(60).max(1),
    }
}

/// Core's judgement of a node for new devices.
fn placement(v: &NodeView) -> Placement {
    Placement::of(&v.node, v.health.status, v.peers)
}

fn server_line(v: &NodeView) -> ServerLine {
    let placement = placement(v);
    ServerLine {
        name: v.node.name.clone(),
        region: v.node.region.name.clone(),
        load_percent: placement.load_percent(),
        availability: placement.availability,
    }
}

pub(crate) fn tunnel_file_name(tunnel: Option<&str>, node: &str, device: &str) -> String {
    let name = tunnel
        .filter(|t| vpnctl_core::render::is_valid_tunnel_name(t))
        .map_or_else(
            || vpnctl_core::render::tunnel_name(node, device),
            str::to_owned,
        );
    format!("{name}.conf")
}

/// A device name the user has not used yet: `device1`, `device2`, ...
fn next_device_name(peers: &[Peer]) -> String {
    (1..)
        .map(|n| format!("device{n}"))
        .find(|name| !peers.iter().any(|p| &p.device == name))
        .unwrap_or_else(|| "device".into())
}

/// Sends the config file and its QR code, protected, and schedules their deletion.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn send_config(
    bot: &TgBot,
    chat: ChatId,
    settings: &Settings,
    l: Locale,
    server: &str,
    file_name: String,
    config: String,
    qr_png: Vec<u8>,
) -> HandlerResult {
    let mut help = Text::ImportHelp.render(l);
    if let Some(after) = settings.delete_after {
        help.push_str("\n\n");
        help.push_str(
            &Text::DeletedAfter {
                minutes: after.as_secs().div_ceil(60),
            }
            .render(l),
        );
    }
    // Both go out together: Throttle releases queued sends once per tick, so sending
    // them one after the other would add a tick to every config.
    let doc = bot
        .send_document(
            chat,
            InputFile::memory(config.into_bytes()).file_name(file_name),
        )
        .caption(Text::ConfigCaption { server }.render(l))
        .protect_content(true)
        .send();
    let photo = bot
        .send_photo(
            chat,
            InputFile::memory(qr_png).file_name("wireguard-qr.png"),
        )
        .caption(help)
        .protect_content(true)
        .send();
    let (doc, photo) = tokio::join!(doc, photo);
    let ids: Vec<MessageId> = [&doc, &photo]
        .into_iter()
        .filter_map(|r| r.as_ref().ok().map(|m| m.id))
        .collect();
    if let Some(after) = settings.delete_after {
        let bot = bot.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            for id in ids {
                if let Err(e) = bot.delete_message(chat, id).await {
                    warn!(error = %e, "could not delete a sent config");
                }
            }
        });
    }
    doc?;
    photo?;
    Ok(())
}

/// Fetches a peer's config and QR from the API and sends both.
async fn resend_peer(
    bot: &TgBot,
    api: &Api,
    chat: ChatId,
    settings: &Settings,
    l: Locale,
    peer: &Peer,
    node_name: &str,
) -> HandlerResult {
    let config = api!(bot, chat, l, api.bot.peer_config(peer.id));
    let qr = api!(bot, chat, l, api.bot.peer_qr_png(peer.id));
    let file = tunnel_file_name(None, node_name, &peer.device);
    send_config(bot, chat, settings, l, node_name, file, config, qr).await
}

/// Issues a new device on `node` and sends its config.
#[allow(clippy::too_many_arguments)]
async fn issue_and_send(
    bot: &TgBot,
    api: &Api,
    chat: ChatId,
    settings: &Settings,
    l: Locale,
    user: &User,
    peers: &[Peer],
    node: &NodeView,
) -> HandlerResult {
    let req = IssuePeerRequest {
        user: user.id,
        node: node.node.id,
        device: next_device_name(peers),
        public_key: None,
    };
    let issued = api!(bot, chat, l, api.bot.issue_peer(&req));
    info!(user = %user.id, peer = %issued.peer.id, node = %node.node.id, "config issued");
    let Some(config) = issued.config else {
        return say(bot, chat, Text::NoPrivateKey, l).await;
    };
    let qr = api!(bot, chat, l, api.bot.peer_qr_png(issued.peer.id));
    let file = tunnel_file_name(
        issued.tunnel_name.as_deref(),
        &node.node.name,
        &issued.peer.device,
    );
    send_config(bot, chat, settings, l, &node.node.name, file, config, qr).await
}

// ------------------------------------------------------------------ messages

async fn group_message(bot: TgBot, msg: Message, l: Locale) -> HandlerResult {
    // Only answer commands: ordinary group chatter is none of the bot's business.
    if msg.text().is_some_and(|t| t.starts_with('/')) {
        say(&bot, msg.chat.id, Text::PrivateOnly, l).await?;
    }
    Ok(())
}

async fn too_long(bot: TgBot, msg: Message, l: Locale) -> HandlerResult {
    say(&bot, msg.chat.id, Text::TooLong, l).await
}

async fn unknown_command(bot: TgBot, msg: Message, l: Locale) -> HandlerResult {
    say(&bot, msg.chat.id, Text::UnknownCommand, l).await
}

async fn not_text(bot: TgBot, msg: Message, l: Locale) -> HandlerResult {
    say(&bot, msg.chat.id, Text::NotUnderstood, l).await
}

/// Looks like an invite code: what `t.me/<bot>?start=` allows.
fn looks_like_code(text: &str) -> bool {
    (16..=64).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

async fn free_text(
    bot: TgBot,
    msg: Message,
    l: Locale,
    api: Api,
    settings: Settings,
    limits: Limits,
    session: Session,
) -> HandlerResult {
    // A code typed in (or pasted) instead of opening the deep link.
    let text = msg.text().unwrap_or_default().trim();
    if looks_like_code(text) {
        return start(&bot, &msg, l, &api, &settings, &limits, &session, text).await;
    }
    say(&bot, msg.chat.id, Text::NotUnderstood, l).await
}

// dptree injects each service separately, as the style guide asks.
#[allow(clippy::too_many_arguments)]
async fn command(
    bot: TgBot,
    msg: Message,
    cmd: Command,
    l: Locale,
    api: Api,
    settings: Settings,
    limits: Limits,
    session: Session,
) -> HandlerResult {
    match cmd {
        Command::Start(code) => {
            let code = code.trim();
            start(&bot, &msg, l, &api, &settings, &limits, &session, code).await
        }
        Command::GetConfig => get_config(&bot, &msg, l, &api).await,
        Command::Regen => regen(&bot, &msg, l, &api).await,
        Command::Status => status(&bot, &msg, l, &api).await,
        Command::Servers => servers(&bot, &msg, l, &api).await,
        Command::Help => {
            let admin = settings.is_admin(msg.from.as_ref());
            say(&bot, msg.chat.id, Text::Help { admin }, l).await
        }
        Command::Language => {
            let keyboard = InlineKeyboardMarkup::new([[
                InlineKeyboardButton::callback("English", Action::Language(Locale::En).encode()),
                InlineKeyboardButton::callback("Русский", Action::Language(Locale::Ru).encode()),
            ]]);
            bot.send_message(msg.chat.id, Text::ChooseLanguage.render(l))
                .reply_markup(keyboard)
                .await?;
            Ok(())
        }
    }
}

async fn current_user(api: &Api, msg: &Message) -> Result<Option<User>, ClientError> {
    let Some(id) = msg.from.as_ref().and_then(telegram_id) else {
        return Ok(None);
    };
    api.bot.user_by_telegram(id).await
}

#[allow(clippy::too_many_arguments)]
async fn start(
    bot: &TgBot,
    msg: &Message,
    l: Locale,
    api: &Api,
    settings: &Settings,
    limits: &Limits,
    session: &Session,
    code: &str,
) -> HandlerResult {
    let chat = msg.chat.id;
    let Some(from) = msg.from.as_ref() else {
        return Ok(());
    };
    let Some(tg) = telegram_id(from) else {
        return Ok(());
    };
    if code.is_empty() {
        if api!(bot, chat, l, api.bot.user_by_telegram(tg)).is_some() {
            return say(bot, chat, Text::AlreadyMember, l).await;
        }
        if settings.allowed_ids.contains(&tg) {
            let Some(admin) = &api.admin else {
                return say(bot, chat, Text::NotConfigured, l).await;
            };
            let new = vpnctl_api::body::CreateUser {
                name: display_name(from),
                telegram_id: Some(tg),
                locale: Some(l),
                ..Default::default()
            };
            let user = api!(bot, chat, l, admin.create_user(&new));
            info!(user = %user.id, "allowlisted user signed up");
            session.remember_stored(tg, Some(user.locale));
            return welcome(bot, chat, l, &user).await;
        }
        return say(bot, chat, Text::HowToGetAccess, l).await;
    }
    if !looks_like_code(code) {
        return say(bot, chat, Text::InviteInvalid, l).await;
    }
    if limits.redeem.check(tg).is_err() {
        return say(bot, chat, Text::TooManyAttempts, l).await;
    }
    let redeem = RedeemInvite {
        code: code.to_owned(),
        telegram_id: Some(tg),
        name: display_name(from),
        locale: Some(l),
    };
    let redeemed = api!(bot, chat, l, api.bot.redeem_invite(&redeem));
    info!(user = %redeemed.user.id, invite = %redeemed.invite.id, created = redeemed.created, "invite redeemed");
    session.remember_stored(tg, Some(redeemed.user.locale));
    welcome(bot, chat, l, &redeemed.user).await
}

async fn welcome(bot: &TgBot, chat: ChatId, l: Locale, user: &User) -> HandlerResult {
    let text = Text::Welcome {
        until: user.until.map(Timestamp::to_date),
        devices: user.device_limit,
    };
    say(bot, chat, text, l).await
}

fn display_name(user: &teloxide::types::User) -> String {
    let mut name = user.full_name();
    if name.trim().is_empty() {
        name = format!("tg{}", user.id.0);
    }
    name.chars()
        .filter(|c| !c.is_control())
        .take(60)
        .collect::<String>()
}

async fn get_config(bot: &TgBot, msg: &Message, l: Locale, api: &Api) -> HandlerResult {
    let chat = msg.chat.id;
    let Some(user) = api!(bot, chat, l, current_user(api, msg)) else {
        return say(bot, chat, Text::NoAccount, l).await;
    };
    if let Some(problem) = access_problem(&user) {
        return say(bot, chat, problem, l).await;
    }
    let nodes = api!(bot, chat, l, api.bot.nodes());
    let peers = api!(
        bot,
        chat,
        l,
        api.bot.peers(PeerQuery {
            user: Some(user.id),
            node: None
        })
    );
    // Telegram caps a keyboard at 100 buttons; a user has far fewer devices.
    let mut rows = Vec::new();
    for peer in peers.iter().take(MAX_ROWS) {
        if let Some(node) = nodes.iter().find(|n| n.node.id == peer.node)
            && node.node.state != NodeState::Disabled
            && peer.has_private_key
        {
            let line = server_line(node);
            let label = format!(
                "{} · {}",
                peer.device,
                Text::ServerButton {
                    server: &line,
                    yours: true
                }
                .render(l)
            );
            rows.push(vec![InlineKeyboardButton::callback(
                label,
                Action::Resend(peer.id).encode(),
            )]);
        }
    }
    // In core's order: healthy servers first, then the degraded ones (marked), the
    // less loaded first; those not offered (down, full, draining…) not at all.
    let mut offered: Vec<(&NodeView, Placement)> = nodes
        .iter()
        .map(|n| (n, placement(n)))
        .filter(|(_, p)| p.availability.is_offered())
        .collect();
    offered.sort_by(|(a, pa), (b, pb)| {
        pa.cmp_preference(pb)
            .then_with(|| a.node.name.cmp(&b.node.name))
    });
    for (node, _) in offered.into_iter().take(MAX_ROWS) {
        let line = server_line(node);
        rows.push(vec![InlineKeyboardButton::callback(
            format!(
                "+ {}",
                Text::ServerButton {
                    server: &line,
                    yours: false
                }
                .render(l)
            ),
            Action::Node(node.node.id).encode(),
        )]);
    }
    if rows.is_empty() {
        return say(bot, chat, Text::NoServers, l).await;
    }
    bot.send_message(chat, Text::ChooseServer.render(l))
        .reply_markup(InlineKeyboardMarkup::new(rows))
        .await?;
    Ok(())
}

async fn regen(bot: &TgBot, msg: &Message, l: Locale, api: &Api) -> HandlerResult {
    let chat = msg.chat.id;
    let Some(user) = api!(bot, chat, l, current_user(api, msg)) else {
        return say(bot, chat, Text::NoAccount, l).await;
    };
    if let Some(problem) = access_problem(&user) {
        return say(bot, chat, problem, l).await;
    }
    let peers = api!(
        bot,
        chat,
        l,
        api.bot.peers(PeerQuery {
            user: Some(user.id),
            node: None
        })
    );
    if peers.is_empty() {
        return say(bot, chat, Text::NoDevices, l).await;
    }
    let nodes = api!(bot, chat, l, api.bot.nodes());
    let rows: Vec<_> = peers
        .iter()
        .take(MAX_ROWS)
        .map(|p| {
            let server = node_name(&nodes, p.node);
            vec![InlineKeyboardButton::callback(
                format!("{} ({server})", p.device),
                Action::Rotate(p.id).encode(),
            )]
        })
        .collect();
    bot.send_message(chat, Text::ChooseDeviceToRotate.render(l))
        .reply_markup(InlineKeyboardMarkup::new(rows))
        .await?;
    Ok(())
}

fn node_name(nodes: &[NodeView], id: NodeId) -> String {
    nodes
        .iter()
        .find(|n| n.node.id == id)
        .map_or_else(|| id.to_string(), |n| n.node.name.clone())
}

async fn status(bot: &TgBot, msg: &Message, l: Locale, api: &Api) -> HandlerResult {
    let chat = msg.chat.id;
    let Some(user) = api!(bot, chat, l, current_user(api, msg)) else {
        return say(bot, chat, Text::NoAccount, l).await;
    };
    let now = Timestamp::now();
    let peers = api!(
        bot,
        chat,
        l,
        api.bot.peers(PeerQuery {
            user: Some(user.id),
            node: None
        })
    );
    let nodes = api!(bot, chat, l, api.bot.nodes());
    let devices: Vec<DeviceLine> = peers
        .iter()
        .map(|p| {
            let stats = nodes
                .iter()
                .find(|n| n.node.id == p.node)
                .and_then(|n| n.report.as_ref())
                .and_then(|r| r.report.peers.iter().find(|s| s.public_key == p.public_key));
            DeviceLine {
                device: p.device.clone(),
                server: node_name(&nodes, p.node),
                handshake_ago: stats
                    .and_then(|s| s.last_handshake)
                    .map(|h| now.seconds().saturating_sub(h.seconds())),
                rx_bytes: stats.map_or(0, |s| s.rx_bytes),
                tx_bytes: stats.map_or(0, |s| s.tx_bytes),
            }
        })
        .collect();
    let access = Access::of(&user, now);
    // Traffic is extra: without it /status still answers.
    let usage = match api.bot.usage(user.id).await {
        Ok(u) => Some(UsageLine {
            period: u.quota.map_or(QuotaPeriod::Monthly, |q| q.period),
            period_bytes: u.period_bytes,
            total_bytes: u.total.total(),
            limit: u.quota.map(|q| q.bytes),
            resets: u.period_end.to_date(),
            suspended: u.suspended,
        }),
        Err(e) => {
            warn!(error = %e, "could not read the user's traffic");
            None
        }
    };
    let text = Text::Status {
        access,
        days_left: access.days_left(now),
        usage: usage.as_ref(),
        devices: &devices,
    };
    say(bot, chat, text, l).await
}

async fn servers(bot: &TgBot, msg: &Message, l: Locale, api: &Api) -> HandlerResult {
    let chat = msg.chat.id;
    let nodes = api!(bot, chat, l, api.bot.nodes());
    let lines: Vec<ServerLine> = nodes
        .iter()
        .filter(|n| n.node.state != NodeState::Disabled)
        .map(server_line)
        .collect();
    say(bot, chat, Text::Servers { servers: &lines }, l).await
}

// ------------------------------------------------------------------ admin

async fn admin_command(
    bot: TgBot,
    msg: Message,
    cmd: AdminCommand,
    l: Locale,
    api: Api,
    me: Me,
) -> HandlerResult {
    let chat = msg.chat.id;
    match cmd {
        AdminCommand::Nodes => {
            let nodes = api!(bot, chat, l, api.bot.nodes());
            bot.send_message(chat, admin_nodes(&nodes, l)).await?;
        }
        AdminCommand::Users => {
            let Some(admin) = &api.admin else {
                return say(&bot, chat, Text::NotConfigured, l).await;
            };
            let users = api!(bot, chat, l, admin.users());
            bot.send_message(chat, admin_users(&users, l)).await?;
        }
        AdminCommand::Invite(args) => {
            let Some(admin) = &api.admin else {
                return say(&bot, chat, Text::NotConfigured, l).await;
            };
            let mut words = args.split_whitespace();
            let days = match words.next() {
                None => Some(30),
                Some("0" | "unlimited") => None,
                Some(d) => match d.parse::<u32>() {
                    Ok(d) if d <= 3650 => Some(d),
                    _ => return say(&bot, chat, Text::UnknownCommand, l).await,
                },
            };
            let devices = match words.next().map(str::parse::<u32>) {
                None => 3,
                Some(Ok(n)) if (1..=20).contains(&n) => n,
                Some(_) => return say(&bot, chat, Text::UnknownCommand, l).await,
            };
            let new = CreateInvite {
                label: Some("telegram admin".into()),
                uses: Some(1),
                expires_at: Some(Timestamp::now().plus_days(7)),
                grant: Some(Grant {
                    access_days: days,
                    device_limit: devices,
                    role: Role::User,
                }),
            };
            let created = api!(bot, chat, l, admin.create_invite(&new));
            info!(invite = %created.invite.id, "invite created from Telegram");
            let link = created.link.clone().unwrap_or_else(|| {
                format!(
                    "https://t.me/{}?start={}",
                    me.username.as_deref().unwrap_or("bot"),
                    created.code
                )
            });
            bot.send_message(
                chat,
                Text::InviteCreated {
                    link: &link,
                    days,
                    devices,
                }
                .render(l),
            )
            .protect_content(true)
            .await?;
        }
    }
    Ok(())
}

// ------------------------------------------------------------------ buttons

#[allow(clippy::too_many_lines)]
async fn callback(
    bot: TgBot,
    q: CallbackQuery,
    l: Locale,
    api: Api,
    settings: Settings,
    limits: Limits,
    session: Session,
) -> HandlerResult {
    let action = q.data.as_deref().and_then(Action::parse);
    let (Some(action), Some(message), Some(tg)) =
        (action, q.message.as_ref(), telegram_id(&q.from))
    else {
        bot.answer_callback_query(q.id.clone())
            .text(Text::ButtonInvalid.render(l))
            .await?;
        return Ok(());
    };
    let chat = message.chat().id;
    let message_id = message.id();
    if !message.chat().is_private() {
        bot.answer_callback_query(q.id.clone())
            .text(Text::PrivateOnly.render(l))
            .await?;
        return Ok(());
    }
    // Buttons that issue, replace or rotate work once per keyboard.
    let once = !matches!(action, Action::Rotate(_) | Action::Language(_));
    if once && !session.consume(chat, message_id) {
        bot.answer_callback_query(q.id.clone())
            .text(Text::ButtonUsed.render(l))
            .await?;
        return Ok(());
    }
    bot.answer_callback_query(q.id.clone()).await?;

    if let Action::Language(new) = action {
        session.set_locale(tg, new);
        if let Some(admin) = &api.admin
            && let Ok(Some(user)) = api.bot.user_by_telegram(tg).await
            && let Err(e) = admin
                .update_user(
                    user.id,
                    &PatchUser {
                        locale: Some(new),
                        ..Default::default()
                    },
                )
                .await
        {
            warn!(error = %e, "could not store the chosen language");
        }
        return edit(&bot, chat, message_id, Text::LanguageSet.render(new)).await;
    }
    if action == Action::Cancel {
        return edit(&bot, chat, message_id, Text::Cancelled.render(l)).await;
    }

    let Some(user) = api!(bot, chat, l, api.bot.user_by_telegram(tg)) else {
        return say(&bot, chat, Text::NoAccount, l).await;
    };
    if let Some(problem) = access_problem(&user) {
        return say(&bot, chat, problem, l).await;
    }
    let peers = api!(
        bot,
        chat,
        l,
        api.bot.peers(PeerQuery {
            user: Some(user.id),
            node: None
        })
    );
    let own = |id: PeerId| peers.iter().find(|p| p.id == id);

    match action {
        Action::Node(node_id) => {
            let nodes = api!(bot, chat, l, api.bot.nodes());
            let Some(node) = nodes.iter().find(|n| n.node.id == node_id) else {
                return say(&bot, chat, Text::ButtonInvalid, l).await;
            };
            if !placement(node).availability.is_offered() {
                return say(&bot, chat, Text::NoServers, l).await;
            }
            if peers.len() >= user.device_limit as usize {
                let mut rows: Vec<_> = peers
                    .iter()
                    .take(MAX_ROWS)
                    .map(|p| {
                        let server = node_name(&nodes, p.node);
                        vec![InlineKeyboardButton::callback(
                            Text::ReplaceButton {
                                device: &p.device,
                                server: &server,
                            }
                            .render(l),
                            Action::Replace {
                                node: node_id,
                                peer: p.id,
                            }
                            .encode(),
                        )]
                    })
                    .collect();
                rows.push(vec![InlineKeyboardButton::callback(
                    Text::CancelButton.render(l),
                    Action::Cancel.encode(),
                )]);
                bot.send_message(
                    chat,
                    Text::DeviceLimit {
                        limit: user.device_limit,
                    }
                    .render(l),
                )
                .reply_markup(InlineKeyboardMarkup::new(rows))
                .await?;
                return Ok(());
            }
            if let Err(wait) = limits.issue.check(tg) {
                return say(&bot, chat, rate_limited(wait), l).await;
            }
            edit(
                &bot,
                chat,
                message_id,
                Text::PreparingConfig {
                    server: &node.node.name,
                }
                .render(l),
            )
            .await?;
            issue_and_send(&bot, &api, chat, &settings, l, &user, &peers, node).await
        }
        Action::Resend(peer_id) => {
            let Some(peer) = own(peer_id) else {
                return say(&bot, chat, Text::ButtonInvalid, l).await;
            };
            if let Err(wait) = limits.issue.check(tg) {
                return say(&bot, chat, rate_limited(wait), l).await;
            }
            let nodes = api!(bot, chat, l, api.bot.nodes());
            let server = node_name(&nodes, peer.node);
            edit(
                &bot,
                chat,
                message_id,
                Text::PreparingConfig { server: &server }.render(l),
            )
            .await?;
            resend_peer(&bot, &api, chat, &settings, l, peer, &server).await
        }
        Action::Replace {
            node: node_id,
            peer: peer_id,
        } => {
            let Some(old) = own(peer_id) else {
                return say(&bot, chat, Text::ButtonInvalid, l).await;
            };
            let nodes = api!(bot, chat, l, api.bot.nodes());
            let Some(node) = nodes.iter().find(|n| n.node.id == node_id) else {
                return say(&bot, chat, Text::ButtonInvalid, l).await;
            };
            if !placement(node).availability.is_offered() {
                return say(&bot, chat, Text::NoServers, l).await;
            }
            if let Err(wait) = limits.issue.check(tg) {
                return say(&bot, chat, rate_limited(wait), l).await;
            }
            api!(bot, chat, l, api.bot.revoke_peer(old.id));
            info!(user = %user.id, peer = %old.id, "device replaced");
            edit(
                &bot,
                chat,
                message_id,
                Text::PreparingConfig {
                    server: &node.node.name,
                }
                .render(l),
            )
            .await?;
            let remaining: Vec<Peer> = peers.iter().filter(|p| p.id != old.id).cloned().collect();
            issue_and_send(&bot, &api, chat, &settings, l, &user, &remaining, node).await
        }
        Action::Rotate(peer_id) => {
            let Some(peer) = own(peer_id) else {
                return say(&bot, chat, Text::ButtonInvalid, l).await;
            };
            let nodes = api!(bot, chat, l, api.bot.nodes());
            let server = node_name(&nodes, peer.node);
            let keyboard = InlineKeyboardMarkup::new([
                [InlineKeyboardButton::callback(
                    Text::RotateButton.render(l),
                    Action::RotateConfirmed(peer.id).encode(),
                )],
                [InlineKeyboardButton::callback(
                    Text::CancelButton.render(l),
                    Action::Cancel.encode(),
                )],
            ]);
            bot.send_message(
                chat,
                Text::ConfirmRotate {
                    device: &peer.device,
                    server: &server,
                }
                .render(l),
            )
            .reply_markup(keyboard)
            .await?;
            Ok(())
        }
        Action::RotateConfirmed(peer_id) => {
            let Some(peer) = own(peer_id) else {
                return say(&bot, chat, Text::ButtonInvalid, l).await;
            };
            if let Err(wait) = limits.rotate.check(tg) {
                return say(&bot, chat, rate_limited(wait), l).await;
            }
            let rotated = api!(bot, chat, l, api.bot.rotate_peer(peer.id, None));
            info!(user = %user.id, peer = %peer.id, "key rotated");
            edit(&bot, chat, message_id, Text::Rotated.render(l)).await?;
            let Some(config) = rotated.config else {
                return say(&bot, chat, Text::NoPrivateKey, l).await;
            };
            let nodes = api!(bot, chat, l, api.bot.nodes());
            let server = node_name(&nodes, peer.node);
            let qr = api!(bot, chat, l, api.bot.peer_qr_png(peer.id));
            let file = tunnel_file_name(rotated.tunnel_name.as_deref(), &server, &peer.device);
            send_config(&bot, chat, &settings, l, &server, file, config, qr).await
        }
        Action::Language(_) | Action::Cancel => Ok(()),
    }
}

async fn edit(bot: &TgBot, chat: ChatId, message: MessageId, text: String) -> HandlerResult {
    // Replacing the text also removes the keyboard; a failure here is cosmetic.
    if let Err(e) = bot.edit_message_text(chat, message, text).await {
        warn!(error = %e, "could not edit a keyboard message");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invite_code_shape() {
        assert!(looks_like_code("AbCdEfGhIjKlMnOpQrStUv_-12"));
        assert!(!looks_like_code("hello"));
        assert!(!looks_like_code("a code with spaces in it!"));
        assert!(!looks_like_code(&"a".repeat(65)));
    }

    #[test]
    fn device_names_are_fresh() {
        assert_eq!(next_device_name(&[]), "device1");
    }

    #[test]
    fn command_lists_match_commands() {
        for l in [Locale::En, Locale::Ru] {
            let names: Vec<_> = command_list(l).into_iter().map(|c| c.command).collect();
            for c in Command::bot_commands() {
                assert!(
                    names.contains(&c.command.trim_start_matches('/').to_owned()),
                    "{}",
                    c.command
                );
            }
        }
    }
}
