//! Inline buttons: [`callback`] checks the press, then one function per action.
//!
//! A button that issues, replaces, rotates or re-sends works once, and fails only
//! for reasons that last. While a press is being handled, a second one waits
//! ("working on it"). A passing failure (control plane down, Telegram 5xx) leaves
//! the keyboard as it was: the same button works again. Once a lasting change is
//! made (a device issued, revoked or rotated) the keyboard is marked used in the
//! durable state, so neither a double tap nor a restart issues twice; if a later
//! step fails, the message says to send /get_config. The keyboard message is edited
//! to say what happened only after it happened, so that nothing said later
//! contradicts it.

use teloxide::prelude::*;
use teloxide::types::{ChatAction, InlineKeyboardButton, InlineKeyboardMarkup, MessageId};
use tracing::{info, warn};
use vpnctl_api::ErrorCode;
use vpnctl_api::body::{IssuePeerRequest, IssuedPeerView, NodeBrief, PatchUser};
use vpnctl_client::ClientError;
use vpnctl_core::devices::may_add_device;
use vpnctl_core::{Locale, NodeId, Peer, PeerId, User};

use super::{
    Account, Ctx, HandlerResult, MAX_ROWS, Nodes, access_problem, api_failure, node_name, placement,
};
use crate::callback::Action;
use crate::delivery::{ConfigFile, tunnel_file_name};
use crate::i18n::Text;
use crate::pacer::Class;
use crate::services::telegram_id;

/// One press of a keyboard message.
#[derive(Debug, Clone, Copy)]
struct Press {
    message: MessageId,
    telegram_id: i64,
}

impl Press {
    /// The keyboard did its work (or can never do it): it is used for good.
    async fn used(self, ctx: &Ctx) {
        if let Err(e) = ctx
            .s
            .state
            .mark_button_used(ctx.chat.0, self.message.0)
            .await
        {
            warn!(error = %e, "could not remember a used keyboard");
        }
    }

    /// Used for good, and the keyboard replaced by `text`.
    async fn close(self, ctx: &Ctx, text: Text<'_>) -> HandlerResult {
        self.used(ctx).await;
        ctx.edit(self.message, text).await;
        Ok(())
    }
}

/// Checks a button press, then runs its action.
pub async fn callback(q: CallbackQuery, ctx: Ctx) -> HandlerResult {
    let bot = ctx.s.tg.raw();
    let action = q.data.as_deref().and_then(Action::parse);
    let (Some(action), Some(message), Some(tg)) =
        (action, q.message.as_ref(), telegram_id(&q.from))
    else {
        bot.answer_callback_query(q.id.clone())
            .text(Text::ButtonInvalid.render(ctx.l))
            .await?;
        return Ok(());
    };
    if !message.chat().is_private() {
        bot.answer_callback_query(q.id.clone())
            .text(Text::PrivateOnly.render(ctx.l))
            .await?;
        return Ok(());
    }
    let press = Press {
        message: message.id(),
        telegram_id: tg,
    };
    if let Action::About(transport) = action {
        // A heading row: it explains and leaves the keyboard usable.
        bot.answer_callback_query(q.id.clone())
            .text(Text::TransportAbout { transport }.render(ctx.l))
            .show_alert(true)
            .await?;
        return Ok(());
    }
    // Choosing a language or a device to rotate can be repeated; the rest works once.
    let once = !matches!(
        action,
        Action::Rotate(_)
            | Action::Language(_)
            | Action::Plans
            | Action::Buy(_)
            | Action::Renewal { .. }
    );
    let _guard = if once {
        let Some(guard) = ctx.s.session.take_keyboard(ctx.chat, press.message) else {
            bot.answer_callback_query(q.id.clone())
                .text(Text::ButtonBusy.render(ctx.l))
                .await?;
            return Ok(());
        };
        let used = ctx
            .s
            .state
            .button_used(ctx.chat.0, press.message.0)
            .await
            .unwrap_or_else(|e| {
                warn!(error = %e, "could not read used keyboards");
                false
            });
        if used {
            bot.answer_callback_query(q.id.clone())
                .text(Text::ButtonUsed.render(ctx.l))
                .await?;
            return Ok(());
        }
        Some(guard)
    } else {
        None
    };
    bot.answer_callback_query(q.id.clone()).await?;
    match action {
        Action::Language(l) => choose_language(&ctx, press, l).await,
        Action::Cancel => press.close(&ctx, Text::Cancelled).await,
        Action::Node(node) => new_device(&ctx, press, node).await,
        Action::Resend(peer) => resend(&ctx, press, peer).await,
        Action::Replace { node, peer } => replace(&ctx, press, node, peer).await,
        Action::Rotate(peer) => confirm_rotation(&ctx, press, peer).await,
        Action::RotateConfirmed(peer) => rotate(&ctx, press, peer).await,
        Action::About(_) => Ok(()),
        Action::Plans => super::payments::renew(&ctx, press.telegram_id).await,
        Action::Buy(plan) => super::payments::invoice(&ctx, press.telegram_id, plan).await,
        Action::Renewal { order, cancel } => {
            super::payments::renewal(&ctx, press.telegram_id, press.message, order, cancel).await
        }
    }
}

/// How a control-plane failure ends a press: a passing one leaves the keyboard as
/// it was and says to press again; a lasting one closes it with the reason.
async fn failed(ctx: &Ctx, press: Press, e: &ClientError) -> HandlerResult {
    warn!(error = %e, "control plane call failed");
    if e.is_transient() {
        ctx.say(Text::TryAgain).await
    } else {
        press.close(ctx, api_failure(e)).await
    }
}

/// Unwraps an API result inside a button action, or ends the press.
macro_rules! step {
    ($ctx:expr, $press:expr, $call:expr) => {
        match $call.await {
            Ok(v) => v,
            Err(e) => return failed($ctx, $press, &e).await,
        }
    };
}

/// The presser's account, devices and nodes (the fleet, or their own: see
/// [`Nodes`]), with access checked; `None` once the press has been answered.
async fn member(ctx: &Ctx, press: Press, which: Nodes) -> Result<Option<Account>, crate::BotError> {
    match ctx
        .account(press.telegram_id, ChatAction::Typing, which)
        .await
    {
        Ok(Some(account)) => {
            if let Some(problem) = access_problem(&account.user) {
                press.close(ctx, problem).await?;
                return Ok(None);
            }
            Ok(Some(account))
        }
        Ok(None) => {
            press.close(ctx, Text::NoAccount).await?;
            Ok(None)
        }
        Err(e) => {
            failed(ctx, press, &e).await?;
            Ok(None)
        }
    }
}

/// The per-user limit on configs; `false` once the user was told to wait.
async fn within_limit(
    ctx: &Ctx,
    limiter: &crate::ratelimit::RateLimiter,
    tg: i64,
) -> Result<bool, crate::BotError> {
    match limiter.check(tg) {
        Ok(()) => Ok(true),
        Err(wait) => {
            ctx.say(Text::RateLimited { wait }).await?;
            Ok(false)
        }
    }
}

/// The node a button names, if it still takes new devices; else the keyboard is
/// closed with the reason.
async fn offered_node<'a>(
    ctx: &Ctx,
    press: Press,
    nodes: &'a [NodeBrief],
    id: NodeId,
) -> Result<Option<&'a NodeBrief>, crate::BotError> {
    match nodes.iter().find(|n| n.id == id) {
        Some(n) if placement(n).availability.is_offered() => return Ok(Some(n)),
        Some(gone) => {
            let server = &gone.name;
            press.close(ctx, Text::ServerGone { server }).await?;
        }
        None => press.close(ctx, Text::ButtonInvalid).await?,
    }
    Ok(None)
}

/// ➕ (or 🔄 at the limit): a new device on a server.
async fn new_device(ctx: &Ctx, press: Press, node_id: NodeId) -> HandlerResult {
    let Some(Account {
        user, peers, nodes, ..
    }) = member(ctx, press, Nodes::All).await?
    else {
        return Ok(());
    };
    let Some(node) = offered_node(ctx, press, &nodes, node_id).await? else {
        return Ok(());
    };
    let devices = u64::try_from(peers.len()).unwrap_or(u64::MAX);
    if !may_add_device(&user, devices) {
        return offer_replacement(ctx, press, &user, &peers, &nodes, node).await;
    }
    if !within_limit(ctx, &ctx.s.limits.issue, press.telegram_id).await? {
        return Ok(());
    }
    let issued = match issue(ctx, &user, &peers, node).await {
        Ok(issued) => issued,
        // Another device was added meanwhile: offer to replace one.
        Err(e) if e.code() == Some(ErrorCode::DeviceLimit) => {
            return offer_replacement(ctx, press, &user, &peers, &nodes, node).await;
        }
        Err(e) => return failed(ctx, press, &e).await,
    };
    press.used(ctx).await;
    send_issued(ctx, press, issued, node).await
}

/// Issues a device on `node` for `user`, who has `peers`.
async fn issue(
    ctx: &Ctx,
    user: &User,
    peers: &[Peer],
    node: &NodeBrief,
) -> Result<IssuedPeerView, ClientError> {
    let req = IssuePeerRequest {
        user: user.id,
        node: node.id,
        device: vpnctl_core::devices::next_device_name(peers),
        public_key: None,
    };
    let issued = ctx
        .s
        .tg
        .working(
            ctx.chat,
            ChatAction::UploadDocument,
            ctx.s.api.bot.issue_peer(&req),
        )
        .await?;
    info!(user = %user.id, peer = %issued.peer.id, node = %node.id, "config issued");
    Ok(issued)
}

/// Sends a device just issued on `node`.
async fn send_issued(
    ctx: &Ctx,
    press: Press,
    issued: IssuedPeerView,
    node: &NodeBrief,
) -> HandlerResult {
    let device = issued.peer.device.clone();
    let Some(config) = issued.config else {
        ctx.edit(press.message, Text::NoPrivateKey).await;
        return Ok(());
    };
    let server = &node.name;
    let ready = Ready {
        peer: issued.peer.id,
        device: &device,
        server,
        file_name: tunnel_file_name(issued.tunnel_name.as_deref(), server, &device, &config),
        config,
    };
    let done = Text::ConfigFollows {
        device: &device,
        server,
    };
    deliver(
        ctx,
        press,
        ready,
        done,
        Text::IssuedNotSent { device: &device },
    )
    .await
}

/// At the device limit: the keyboard becomes "which device should the new one
/// replace?".
async fn offer_replacement(
    ctx: &Ctx,
    press: Press,
    user: &User,
    peers: &[Peer],
    nodes: &[NodeBrief],
    node: &NodeBrief,
) -> HandlerResult {
    let mut rows: Vec<_> = peers
        .iter()
        .take(MAX_ROWS)
        .map(|p| {
            let label = Text::ReplaceButton {
                device: &p.device,
                server: &node_name(nodes, p.node),
            }
            .render(ctx.l);
            vec![InlineKeyboardButton::callback(
                label,
                Action::Replace {
                    node: node.id,
                    peer: p.id,
                }
                .encode(),
            )]
        })
        .collect();
    rows.push(vec![InlineKeyboardButton::callback(
        Text::CancelButton.render(ctx.l),
        Action::Cancel.encode(),
    )]);
    let text = Text::DeviceLimit {
        limit: user.device_limit,
        server: &node.name,
    };
    ctx.edit_offer(press.message, text, InlineKeyboardMarkup::new(rows))
        .await
}

/// A config that exists now, to be sent.
struct Ready<'a> {
    peer: PeerId,
    device: &'a str,
    server: &'a str,
    file_name: String,
    config: String,
}

/// Fetches the QR code of a config that exists now and sends both; then the
/// keyboard says `done`. A failure is told with `not_sent`.
async fn deliver(
    ctx: &Ctx,
    press: Press,
    ready: Ready<'_>,
    done: Text<'_>,
    not_sent: Text<'_>,
) -> HandlerResult {
    let qr = ctx
        .s
        .tg
        .working(
            ctx.chat,
            ChatAction::UploadDocument,
            crate::delivery::fetch_qr(&ctx.s.api.bot, ready.peer),
        )
        .await;
    let qr_png = match qr {
        Ok(png) => png,
        Err(e) => {
            warn!(error = %e, "could not fetch a QR code");
            ctx.edit(press.message, not_sent).await;
            return Ok(());
        }
    };
    let awg_config = vpnctl_core::render::needs_amneziawg(&ready.config);
    let file = ConfigFile {
        file_name: ready.file_name,
        text: ready.config,
        qr_png,
        caption: Text::ConfigCaption {
            device: ready.device,
            server: ready.server,
            awg: awg_config,
        }
        .render(ctx.l),
    };
    if let Err(e) = ctx
        .s
        .send_config(ctx.chat, Class::Reply, ctx.l, &file)
        .await
    {
        warn!(error = %e, "could not send a config");
        ctx.edit(press.message, not_sent).await;
        return Ok(());
    }
    ctx.edit(press.message, done).await;
    Ok(())
}

/// 📄: an existing device's config again. Nothing changes, so any failure leaves
/// the button as it was.
async fn resend(ctx: &Ctx, press: Press, peer_id: PeerId) -> HandlerResult {
    let Some(Account { peers, nodes, .. }) = member(ctx, press, Nodes::Mine).await? else {
        return Ok(());
    };
    let Some(peer) = peers.iter().find(|p| p.id == peer_id) else {
        return press.close(ctx, Text::ButtonInvalid).await;
    };
    if !within_limit(ctx, &ctx.s.limits.issue, press.telegram_id).await? {
        return Ok(());
    }
    let api = &ctx.s.api.bot;
    let fetched = ctx
        .s
        .tg
        .working(ctx.chat, ChatAction::UploadDocument, async {
            Ok::<_, ClientError>((
                api.peer_config(peer.id).await?,
                crate::delivery::fetch_qr(api, peer.id).await?,
            ))
        })
        .await;
    let (config, qr_png) = step!(ctx, press, async { fetched });
    let server = node_name(&nodes, peer.node);
    let awg_config = vpnctl_core::render::needs_amneziawg(&config);
    let file = ConfigFile {
        file_name: tunnel_file_name(None, &server, &peer.device, &config),
        text: config,
        qr_png,
        caption: Text::ConfigCaption {
            device: &peer.device,
            server: &server,
            awg: awg_config,
        }
        .render(ctx.l),
    };
    if let Err(e) = ctx
        .s
        .send_config(ctx.chat, Class::Reply, ctx.l, &file)
        .await
    {
        warn!(error = %e, "could not send a config");
        return ctx.say(Text::TryAgain).await;
    }
    press
        .close(
            ctx,
            Text::ConfigFollows {
                device: &peer.device,
                server: &server,
            },
        )
        .await
}

/// 🔄 Replace: revoke one device, issue a new one on the chosen server.
async fn replace(ctx: &Ctx, press: Press, node_id: NodeId, peer_id: PeerId) -> HandlerResult {
    let Some(Account {
        user, peers, nodes, ..
    }) = member(ctx, press, Nodes::All).await?
    else {
        return Ok(());
    };
    let Some(old) = peers.iter().find(|p| p.id == peer_id) else {
        return press.close(ctx, Text::ButtonInvalid).await;
    };
    let Some(node) = offered_node(ctx, press, &nodes, node_id).await? else {
        return Ok(());
    };
    if !within_limit(ctx, &ctx.s.limits.issue, press.telegram_id).await? {
        return Ok(());
    }
    match ctx.s.api.bot.revoke_peer(old.id).await {
        // Already gone is what was wanted.
        Ok(_) => {}
        Err(e) if e.code() == Some(ErrorCode::NotFound) => {}
        Err(e) => return failed(ctx, press, &e).await,
    }
    press.used(ctx).await;
    info!(user = %user.id, peer = %old.id, "device replaced");
    let remaining: Vec<Peer> = peers.iter().filter(|p| p.id != old.id).cloned().collect();
    let issued = match issue(ctx, &user, &remaining, node).await {
        Ok(issued) => issued,
        Err(e) => {
            warn!(error = %e, "replacement device not issued");
            ctx.edit(
                press.message,
                Text::RemovedNotIssued {
                    device: &old.device,
                },
            )
            .await;
            return Ok(());
        }
    };
    send_issued(ctx, press, issued, node).await
}

/// 🔑 in /regen's list: ask to confirm.
async fn confirm_rotation(ctx: &Ctx, press: Press, peer_id: PeerId) -> HandlerResult {
    let Some(Account { peers, nodes, .. }) = member(ctx, press, Nodes::Mine).await? else {
        return Ok(());
    };
    let Some(peer) = peers.iter().find(|p| p.id == peer_id) else {
        return ctx.say(Text::ButtonInvalid).await;
    };
    let server = node_name(&nodes, peer.node);
    let keyboard = InlineKeyboardMarkup::new([
        [InlineKeyboardButton::callback(
            Text::RotateButton.render(ctx.l),
            Action::RotateConfirmed(peer.id).encode(),
        )],
        [InlineKeyboardButton::callback(
            Text::CancelButton.render(ctx.l),
            Action::Cancel.encode(),
        )],
    ]);
    ctx.offer(
        Text::ConfirmRotate {
            device: &peer.device,
            server: &server,
        },
        keyboard,
    )
    .await
}

/// "Yes, replace the key": rotate, then send the new config.
async fn rotate(ctx: &Ctx, press: Press, peer_id: PeerId) -> HandlerResult {
    let Some(Account {
        user, peers, nodes, ..
    }) = member(ctx, press, Nodes::Mine).await?
    else {
        return Ok(());
    };
    let Some(peer) = peers.iter().find(|p| p.id == peer_id) else {
        return press.close(ctx, Text::ButtonInvalid).await;
    };
    if !within_limit(ctx, &ctx.s.limits.rotate, press.telegram_id).await? {
        return Ok(());
    }
    let rotated = step!(
        ctx,
        press,
        ctx.s.tg.working(
            ctx.chat,
            ChatAction::UploadDocument,
            ctx.s.api.bot.rotate_peer(peer.id, None)
        )
    );
    press.used(ctx).await;
    info!(user = %user.id, peer = %peer.id, "key rotated");
    let server = node_name(&nodes, peer.node);
    let Some(config) = rotated.config else {
        ctx.edit(press.message, Text::NoPrivateKey).await;
        return Ok(());
    };
    let ready = Ready {
        peer: peer.id,
        device: &peer.device,
        server: &server,
        file_name: tunnel_file_name(
            rotated.tunnel_name.as_deref(),
            &server,
            &peer.device,
            &config,
        ),
        config,
    };
    let done = Text::Rotated {
        device: &peer.device,
        server: &server,
    };
    let not_sent = Text::RotatedNotSent {
        device: &peer.device,
    };
    deliver(ctx, press, ready, done, not_sent).await
}

/// English / Русский: remembered durably, and stored with the account when the
/// admin token allows.
async fn choose_language(ctx: &Ctx, press: Press, new: Locale) -> HandlerResult {
    let tg = press.telegram_id;
    if let Err(e) = ctx.s.state.set_language(tg, new).await {
        warn!(error = %e, "could not remember the chosen language");
    }
    if let Some(admin) = &ctx.s.api.admin
        && let Ok(Some(user)) = ctx.user(tg).await
    {
        let patch = PatchUser {
            locale: Some(new),
            ..Default::default()
        };
        match admin.update_user(user.id, &patch).await {
            Ok(_) => ctx.s.session.remember_stored(tg, Some(new)),
            Err(e) => warn!(error = %e, "could not store the chosen language"),
        }
    }
    let now_in = Ctx {
        l: new,
        ..ctx.clone()
    };
    now_in.edit(press.message, Text::LanguageSet).await;
    Ok(())
}
