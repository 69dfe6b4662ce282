//! The user commands: one function each.

use teloxide::prelude::*;
use teloxide::types::{ChatAction, InlineKeyboardButton, InlineKeyboardMarkup};
use tracing::{info, warn};
use vpnctl_api::body::{CreateUser, NodeBrief, RedeemInvite};
use vpnctl_core::devices::may_add_device;
use vpnctl_core::transport::TransportKind;
use vpnctl_core::{Access, Availability, Locale, Placement, QuotaPeriod, Timestamp, User};

use super::input::looks_like_code;
use super::{
    Account, Command, Ctx, HandlerResult, MAX_ROWS, Nodes, access_problem, api, node_name,
    placement, server_line,
};
use crate::callback::Action;
use crate::i18n::{DeviceLine, ServerLine, Text, UsageLine};
use crate::services::telegram_id;

/// Routes a parsed user command.
pub async fn command(msg: Message, cmd: Command, ctx: Ctx) -> HandlerResult {
    match cmd {
        Command::Start(code) => start(&ctx, &msg, code.trim()).await,
        Command::GetConfig => get_config(&ctx, &msg).await,
        Command::Regen => regen(&ctx, &msg).await,
        Command::Status => status(&ctx, &msg).await,
        Command::Servers => servers(&ctx, &msg).await,
        Command::Help => help(&ctx, &msg).await,
        Command::Language => language(&ctx).await,
        Command::Buy => super::payments::buy(&ctx, &msg).await,
        Command::Subscription => super::payments::subscription(&ctx, &msg).await,
        Command::Paysupport => super::payments::pay_support(&ctx).await,
        Command::Terms => super::payments::terms(&ctx).await,
    }
}

async fn help(ctx: &Ctx, msg: &Message) -> HandlerResult {
    let admin = ctx.s.policy.is_admin(msg.from.as_ref());
    ctx.say(Text::Help { admin }).await
}

async fn language(ctx: &Ctx) -> HandlerResult {
    let button = |language| {
        InlineKeyboardButton::callback(
            Text::LanguageButton { language }.render(ctx.l),
            Action::Language(language).encode(),
        )
    };
    let keyboard = InlineKeyboardMarkup::new([[button(Locale::En), button(Locale::Ru)]]);
    ctx.offer(Text::ChooseLanguage, keyboard).await
}

/// `/start` without a code, with one, or an invite link or code pasted as text.
pub async fn start(ctx: &Ctx, msg: &Message, code: &str) -> HandlerResult {
    let Some(from) = msg.from.as_ref() else {
        return Ok(());
    };
    let Some(tg) = telegram_id(from) else {
        return Ok(());
    };
    if code.is_empty() {
        let existing = api!(ctx, ctx.s.tg.typing_if_slow(ctx.chat, ctx.user(tg)));
        if existing.is_some() {
            return ctx.say(Text::AlreadyMember).await;
        }
        if !ctx.s.policy.allowed_ids.contains(&tg) {
            return ctx.say(Text::HowToGetAccess).await;
        }
        let Some(admin) = &ctx.s.api.admin else {
            return ctx.say(Text::NotConfigured).await;
        };
        let new = CreateUser {
            name: display_name(from),
            telegram_id: Some(tg),
            locale: Some(ctx.l),
            ..Default::default()
        };
        let user = api!(
            ctx,
            ctx.s.tg.typing_if_slow(ctx.chat, admin.create_user(&new))
        );
        info!(user = %user.id, "allowlisted user signed up");
        ctx.s.session.remember_stored(tg, Some(user.locale));
        return welcome(ctx, &user).await;
    }
    if !looks_like_code(code) {
        return ctx.say(Text::InviteInvalid).await;
    }
    if ctx.s.limits.redeem.check(tg).is_err() {
        return ctx.say(Text::TooManyAttempts).await;
    }
    let redeem = RedeemInvite {
        code: code.to_owned(),
        telegram_id: Some(tg),
        name: display_name(from),
        locale: Some(ctx.l),
    };
    let redeemed = api!(
        ctx,
        ctx.s
            .tg
            .typing_if_slow(ctx.chat, ctx.s.api.bot.redeem_invite(&redeem))
    );
    info!(user = %redeemed.user.id, invite = %redeemed.invite.id, created = redeemed.created, "invite redeemed");
    ctx.s
        .session
        .remember_stored(tg, Some(redeemed.user.locale));
    welcome(ctx, &redeemed.user).await
}

async fn welcome(ctx: &Ctx, user: &User) -> HandlerResult {
    ctx.say(Text::Welcome {
        until: user.until,
        devices: user.device_limit,
    })
    .await
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

/// The user, their devices and the nodes, or `None` after telling them why not.
async fn member_view(
    ctx: &Ctx,
    msg: &Message,
    which: Nodes,
) -> Result<Option<Account>, crate::BotError> {
    let Some(tg) = msg.from.as_ref().and_then(telegram_id) else {
        return Ok(None);
    };
    match ctx.account(tg, ChatAction::Typing, which).await {
        Ok(Some(view)) => Ok(Some(view)),
        Ok(None) => {
            ctx.say(Text::NoAccount).await?;
            Ok(None)
        }
        Err(e) => {
            ctx.fail(&e).await?;
            Ok(None)
        }
    }
}

/// Servers that take new devices, in core's order: healthy first, then degraded
/// (marked), the less loaded first; those not offered (down, full, draining…) not
/// at all.
fn offered(nodes: &[NodeBrief]) -> Vec<&NodeBrief> {
    let mut offered: Vec<(&NodeBrief, Placement)> = nodes
        .iter()
        .map(|n| (n, placement(n)))
        .filter(|(_, p)| p.availability.is_offered())
        .collect();
    offered.sort_by(|(a, pa), (b, pb)| pa.cmp_preference(pb).then_with(|| a.name.cmp(&b.name)));
    offered.into_iter().map(|(n, _)| n).collect()
}

/// `/get_config`: devices whose config can be sent again, and the servers a new
/// device can go to, or, at the device limit, the servers a device can be replaced
/// on.
async fn get_config(ctx: &Ctx, msg: &Message) -> HandlerResult {
    let Some(Account {
        user, peers, nodes, ..
    }) = member_view(ctx, msg, Nodes::All).await?
    else {
        return Ok(());
    };
    if let Some(problem) = access_problem(&user) {
        return ctx.say(problem).await;
    }
    let devices = u64::try_from(peers.len()).unwrap_or(u64::MAX);
    let at_limit = !may_add_device(&user, devices);
    let mut rows = Vec::new();
    for peer in peers.iter().take(MAX_ROWS) {
        let serving = nodes
            .iter()
            .find(|n| n.id == peer.node)
            .is_some_and(|n| placement(n).availability != Availability::Disabled);
        if serving && peer.has_private_key {
            let label = Text::ResendButton {
                device: &peer.device,
                server: &node_name(&nodes, peer.node),
            }
            .render(ctx.l);
            rows.push(vec![InlineKeyboardButton::callback(
                label,
                Action::Resend(peer.id).encode(),
            )]);
        }
    }
    let resend = !rows.is_empty();
    let servers = offered(&nodes);
    // With AmneziaWG servers among them, the servers go under one heading per
    // transport, plain WireGuard first: AWG is for networks where it fails.
    let grouped = servers
        .iter()
        .any(|n| n.transport != TransportKind::Wireguard);
    for transport in [TransportKind::Wireguard, TransportKind::Amneziawg] {
        let group: Vec<_> = servers
            .iter()
            .filter(|n| n.transport == transport)
            .take(MAX_ROWS)
            .collect();
        if grouped && !group.is_empty() {
            rows.push(vec![InlineKeyboardButton::callback(
                Text::TransportHeading { transport }.render(ctx.l),
                Action::About(transport).encode(),
            )]);
        }
        for node in group {
            let line = server_line(node);
            let label = if at_limit {
                Text::ReplaceOnButton { server: &line }
            } else {
                Text::NewDeviceButton { server: &line }
            };
            rows.push(vec![InlineKeyboardButton::callback(
                label.render(ctx.l),
                Action::Node(node.id).encode(),
            )]);
        }
    }
    if rows.is_empty() {
        return ctx.say(Text::NoServers).await;
    }
    let text = if at_limit {
        Text::ChooseAtLimit {
            limit: user.device_limit,
        }
    } else {
        Text::ChooseServer {
            devices,
            limit: user.device_limit,
            resend,
        }
    };
    ctx.offer(text, InlineKeyboardMarkup::new(rows)).await
}

/// `/regen`: which device's key to replace.
async fn regen(ctx: &Ctx, msg: &Message) -> HandlerResult {
    let Some(Account {
        user, peers, nodes, ..
    }) = member_view(ctx, msg, Nodes::Mine).await?
    else {
        return Ok(());
    };
    if let Some(problem) = access_problem(&user) {
        return ctx.say(problem).await;
    }
    if peers.is_empty() {
        return ctx.say(Text::NoDevices).await;
    }
    let rows: Vec<_> = peers
        .iter()
        .take(MAX_ROWS)
        .map(|p| {
            let label = Text::RotateDeviceButton {
                device: &p.device,
                server: &node_name(&nodes, p.node),
            }
            .render(ctx.l);
            vec![InlineKeyboardButton::callback(
                label,
                Action::Rotate(p.id).encode(),
            )]
        })
        .collect();
    ctx.offer(Text::ChooseDeviceToRotate, InlineKeyboardMarkup::new(rows))
        .await
}

/// `/status`: access, traffic, devices.
async fn status(ctx: &Ctx, msg: &Message) -> HandlerResult {
    let Some(Account {
        user,
        peers,
        nodes,
        live,
    }) = member_view(ctx, msg, Nodes::Mine).await?
    else {
        return Ok(());
    };
    let now = Timestamp::now();
    // Last handshakes and counters come from the nodes' latest reports: a device
    // whose node has not reported since the server started shows none.
    let devices: Vec<DeviceLine> = peers
        .iter()
        .map(|p| {
            let stats = live.get(&p.id);
            DeviceLine {
                device: p.device.clone(),
                server: node_name(&nodes, p.node),
                connected_ago: stats
                    .and_then(|s| s.last_handshake)
                    .map(|h| now.seconds().saturating_sub(h.seconds())),
                rx_bytes: stats.map_or(0, |s| s.rx_bytes),
                tx_bytes: stats.map_or(0, |s| s.tx_bytes),
                transport: nodes
                    .iter()
                    .find(|n| n.id == p.node)
                    .map_or_else(Default::default, |n| n.transport),
            }
        })
        .collect();
    // Traffic is extra: without it /status still answers.
    let usage = match ctx.s.api.bot.usage(user.id).await {
        Ok(u) => Some(UsageLine {
            period: u.quota.map_or(QuotaPeriod::Monthly, |q| q.period),
            period_bytes: u.period_bytes,
            total_bytes: u.total.total(),
            limit: u.quota.map(|q| q.bytes),
            resets: u.period_end,
        }),
        Err(e) => {
            warn!(error = %e, "could not read the user's traffic");
            None
        }
    };
    let text = Text::Status {
        access: Access::of(&user, now),
        now,
        usage: usage.as_ref(),
        devices: &devices,
        limit: user.device_limit,
    };
    // "Renew" when there is something to buy.
    if user.state != vpnctl_core::UserState::Disabled && super::payments::on_sale(&ctx.s).await {
        return ctx
            .offer(text, super::payments::renew_keyboard(ctx.l))
            .await;
    }
    ctx.say(text).await
}

/// `/servers`: every server that is not switched off, with how full it is; for
/// members only unless the operator made it public.
async fn servers(ctx: &Ctx, msg: &Message) -> HandlerResult {
    if !ctx.s.policy.servers_public {
        let Some(tg) = msg.from.as_ref().and_then(telegram_id) else {
            return Ok(());
        };
        if api!(ctx, ctx.s.tg.typing_if_slow(ctx.chat, ctx.user(tg))).is_none() {
            return ctx.say(Text::MembersOnly).await;
        }
    }
    let nodes = api!(
        ctx,
        ctx.s
            .tg
            .typing_if_slow(ctx.chat, ctx.s.api.bot.node_briefs())
    );
    let lines: Vec<ServerLine> = nodes
        .iter()
        .map(server_line)
        .filter(|s| s.availability != Availability::Disabled)
        .collect();
    ctx.say(Text::Servers { servers: &lines }).await
}
