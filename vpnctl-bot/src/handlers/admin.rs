//! Admin commands (only for `--admin-id` users): `/nodes`, `/users`, `/invite`.

use teloxide::prelude::*;
use tracing::info;
use vpnctl_api::body::CreateInvite;
use vpnctl_core::{Grant, Role, Timestamp};

use super::{AdminCommand, Ctx, HandlerResult, api};
use crate::i18n::{Text, admin_nodes, admin_users};
use crate::pacer::Class;

pub async fn command(cmd: AdminCommand, ctx: Ctx) -> HandlerResult {
    match cmd {
        AdminCommand::Nodes => nodes(&ctx).await,
        AdminCommand::Users => users(&ctx).await,
        AdminCommand::Invite(args) => invite(&ctx, &args).await,
    }
}

async fn send(ctx: &Ctx, text: String) -> HandlerResult {
    let request = ctx.s.tg.raw().send_message(ctx.chat, text);
    ctx.s.tg.send(ctx.chat, Class::Reply, request).await?;
    Ok(())
}

async fn nodes(ctx: &Ctx) -> HandlerResult {
    let nodes = api!(
        ctx,
        ctx.s.tg.typing_if_slow(ctx.chat, ctx.s.api.bot.nodes())
    );
    send(ctx, admin_nodes(&nodes, ctx.l)).await
}

async fn users(ctx: &Ctx) -> HandlerResult {
    let Some(admin) = &ctx.s.api.admin else {
        return ctx.say(Text::NotConfigured).await;
    };
    let users = api!(ctx, ctx.s.tg.typing_if_slow(ctx.chat, admin.users()));
    send(ctx, admin_users(&users, ctx.l)).await
}

/// `/invite [days|0|unlimited] [devices]`: a single-use deep link, valid a week.
async fn invite(ctx: &Ctx, args: &str) -> HandlerResult {
    let Some(admin) = &ctx.s.api.admin else {
        return ctx.say(Text::NotConfigured).await;
    };
    let mut words = args.split_whitespace();
    let days = match words.next() {
        None => Some(30),
        Some("0" | "unlimited") => None,
        Some(d) => match d.parse::<u32>() {
            Ok(d) if d <= 3650 => Some(d),
            _ => return ctx.say(Text::UnknownCommand).await,
        },
    };
    let devices = match words.next().map(str::parse::<u32>) {
        None => 3,
        Some(Ok(n)) if (1..=20).contains(&n) => n,
        Some(_) => return ctx.say(Text::UnknownCommand).await,
    };
    let new = CreateInvite {
        plan: None,
        label: Some("telegram admin".into()),
        uses: Some(1),
        expires_at: Some(Timestamp::now().plus_days(7)),
        grant: Some(Grant {
            access_days: days,
            device_limit: devices,
            role: Role::User,
        }),
    };
    let created = api!(
        ctx,
        ctx.s.tg.typing_if_slow(ctx.chat, admin.create_invite(&new))
    );
    info!(invite = %created.invite.id, "invite created from Telegram");
    let link = created
        .link
        .clone()
        .unwrap_or_else(|| format!("https://t.me/{}?start={}", ctx.me.username(), created.code));
    let text = Text::InviteCreated {
        link: &link,
        days,
        devices,
    }
    .render(ctx.l);
    // The link is a credential: it must not be forwarded by accident.
    let request = ctx
        .s
        .tg
        .raw()
        .send_message(ctx.chat, text)
        .protect_content(true);
    ctx.s.tg.send(ctx.chat, Class::Reply, request).await?;
    Ok(())
}
