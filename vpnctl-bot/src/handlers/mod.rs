//! The handler tree ([`schema`]) and what every endpoint shares: the per-update
//! context [`Ctx`], and the wording of control-plane failures. Endpoints only parse,
//! call the API client, and pick a [`Text`]:
//!
//! - [`commands`]: `/start`, `/get_config`, `/regen`, `/status`, `/servers`,
//!   `/help`, `/language`;
//! - [`buttons`]: one function per inline button action;
//! - [`input`]: everything else users send (pasted invite links, group chats,
//!   unknown commands, long texts);
//! - [`admin`]: `/nodes`, `/users`, `/invite`;
//! - [`payments`]: `/buy`, invoices, checkout, payments, `/paysupport`, `/terms`.
//!
//! Core decides, the bot words: who may have devices is `Access::of`, which node
//! takes them is `Placement::of`, how many devices is `devices::may_add_device`;
//! failures are told apart by their `ErrorCode`, never by their text.

pub mod admin;
pub mod buttons;
pub mod commands;
pub mod input;
pub mod payments;

use std::collections::HashMap;

use teloxide::dispatching::{HandlerExt, UpdateFilterExt};
use teloxide::prelude::*;
use teloxide::types::{ChatAction, ChatId, InlineKeyboardMarkup, Me, MessageId};
use teloxide::utils::command::BotCommands;
use tracing::warn;
use vpnctl_api::ErrorCode;
use vpnctl_api::body::{DeviceLive, NodeBrief, PeerQuery};
use vpnctl_client::ClientError;
use vpnctl_core::{Access, Locale, NodeId, Peer, PeerId, Placement, Timestamp, User};

use crate::BotError;
use crate::i18n::{ServerLine, Text, command_descriptions};
use crate::pacer::Class;
use crate::services::Services;

pub type HandlerResult = Result<(), BotError>;

/// Longer texts are refused before any parsing, counted in characters (Telegram
/// allows 4096).
pub const MAX_TEXT: usize = 1024;

/// Rows of one kind in a keyboard (Telegram allows 100 buttons in all).
pub(crate) const MAX_ROWS: usize = 40;

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
    /// Buy or renew access.
    Buy,
    /// Your monthly subscription.
    Subscription,
    /// Help with a payment.
    Paysupport,
    /// Terms of sale.
    Terms,
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
    command_descriptions(l)
        .into_iter()
        .map(|(c, description)| teloxide::types::BotCommand::new(c, description))
        .collect()
}

/// What one update's endpoint works with: the services, the chat it answers in,
/// the reader's language, and the bot itself.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub s: Services,
    pub chat: ChatId,
    pub l: Locale,
    pub me: Me,
}

/// The whole update handler tree.
pub fn schema() -> teloxide::dispatching::UpdateHandler<BotError> {
    let messages = Update::filter_message()
        .branch(
            dptree::filter(|m: Message| m.successful_payment().is_some()).endpoint(payments::paid),
        )
        .branch(dptree::filter(|m: Message| !m.chat.is_private()).endpoint(input::group_message))
        .branch(
            dptree::filter(|m: Message| m.text().is_some_and(|t| t.chars().count() > MAX_TEXT))
                .endpoint(input::too_long),
        )
        .branch(
            dptree::filter(|m: Message, s: Services| s.policy.is_admin(m.from.as_ref()))
                .filter_command::<AdminCommand>()
                .endpoint(admin::command),
        )
        .branch(
            dptree::entry()
                .filter_command::<Command>()
                .endpoint(commands::command),
        )
        .branch(
            dptree::filter(|m: Message| m.text().is_some_and(|t| t.starts_with('/')))
                .endpoint(input::unknown_command),
        )
        .branch(Message::filter_text().endpoint(input::free_text))
        .endpoint(input::not_text);
    dptree::entry()
        .map_async(|u: Update, s: Services, me: Me| async move {
            let l = s.locale(u.from()).await;
            let chat = u
                .chat()
                .map(|c| c.id)
                .or_else(|| u.from().map(|f| ChatId::from(f.id)))
                .unwrap_or(ChatId(0));
            Ctx { s, chat, l, me }
        })
        .branch(messages)
        .branch(Update::filter_callback_query().endpoint(buttons::callback))
        .branch(Update::filter_pre_checkout_query().endpoint(payments::pre_checkout))
}

impl Ctx {
    /// Sends `text` as a reply.
    pub async fn say(&self, text: Text<'_>) -> HandlerResult {
        let request = self.s.tg.raw().send_message(self.chat, text.render(self.l));
        self.s.tg.send(self.chat, Class::Reply, request).await?;
        Ok(())
    }

    /// Sends `text` with an inline keyboard.
    pub async fn offer(&self, text: Text<'_>, keyboard: InlineKeyboardMarkup) -> HandlerResult {
        let request = self
            .s
            .tg
            .raw()
            .send_message(self.chat, text.render(self.l))
            .reply_markup(keyboard);
        self.s.tg.send(self.chat, Class::Reply, request).await?;
        Ok(())
    }

    /// Replaces a keyboard message's text (and so removes its keyboard). A failure
    /// here is cosmetic: logged.
    pub async fn edit(&self, message: MessageId, text: Text<'_>) {
        let request = self
            .s
            .tg
            .raw()
            .edit_message_text(self.chat, message, text.render(self.l));
        if let Err(e) = request.await {
            warn!(error = %e, "could not edit a keyboard message");
        }
    }

    /// Replaces a keyboard message's text and keyboard.
    pub async fn edit_offer(
        &self,
        message: MessageId,
        text: Text<'_>,
        keyboard: InlineKeyboardMarkup,
    ) -> HandlerResult {
        self.s
            .tg
            .raw()
            .edit_message_text(self.chat, message, text.render(self.l))
            .reply_markup(keyboard)
            .await?;
        Ok(())
    }

    /// Tells the user what a failed API call means.
    pub async fn fail(&self, e: &ClientError) -> HandlerResult {
        warn!(error = %e, "control plane call failed");
        self.say(api_failure(e)).await
    }

    /// The user's account, by their Telegram id.
    pub async fn user(&self, telegram_id: i64) -> Result<Option<User>, ClientError> {
        self.s.api.bot.user_by_telegram(telegram_id).await
    }

    /// The account of `telegram_id` with its devices and the nodes (`None`: no
    /// account), showing `action` in the chat while the control plane answers.
    pub async fn account(
        &self,
        telegram_id: i64,
        action: ChatAction,
        which: Nodes,
    ) -> Result<Option<Account>, ClientError> {
        let api = &self.s.api.bot;
        let fetch = async {
            let Some(user) = api.user_by_telegram(telegram_id).await? else {
                return Ok(None);
            };
            let account = match which {
                Nodes::All => {
                    let peers = api
                        .peers(PeerQuery {
                            user: Some(user.id),
                            node: None,
                            ..PeerQuery::default()
                        })
                        .await?;
                    Account {
                        user,
                        peers,
                        nodes: api.node_briefs().await?,
                        live: HashMap::new(),
                    }
                }
                Nodes::Mine => {
                    let devices = api.user_devices(user.id).await?;
                    let mut account = Account {
                        user,
                        peers: Vec::with_capacity(devices.len()),
                        nodes: Vec::new(),
                        live: HashMap::new(),
                    };
                    for d in devices {
                        if let Some(live) = d.live {
                            account.live.insert(d.peer.id, live);
                        }
                        if !account.nodes.iter().any(|n| n.id == d.node.id) {
                            account.nodes.push(d.node);
                        }
                        account.peers.push(d.peer);
                    }
                    account
                }
            };
            Ok(Some(account))
        };
        if action == ChatAction::Typing {
            self.s.tg.typing_if_slow(self.chat, fetch).await
        } else {
            self.s.tg.working(self.chat, action, fetch).await
        }
    }
}

/// A user's account as a handler reads it.
#[derive(Debug)]
pub struct Account {
    pub user: User,
    pub peers: Vec<Peer>,
    /// The nodes in brief: the fleet, or the user's (see [`Nodes`]).
    pub nodes: Vec<NodeBrief>,
    /// The devices' latest counters ([`Nodes::Mine`] only).
    pub live: HashMap<PeerId, DeviceLive>,
}

/// Which nodes [`Ctx::account`] reads with the user and their devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nodes {
    /// The whole fleet in brief: for offering servers.
    All,
    /// Only the nodes the user's devices are on (none for none), with the
    /// devices' counters, in one per-user read: /status and /regen.
    Mine,
}

/// Unwraps an API result, or tells the user what went wrong and returns.
macro_rules! api {
    ($ctx:expr, $call:expr) => {
        match $call.await {
            Ok(v) => v,
            Err(e) => return $ctx.fail(&e).await,
        }
    };
}
pub(crate) use api;

/// What a failed API call means to the user, by its code.
pub fn api_failure(e: &ClientError) -> Text<'static> {
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
        _ if e.is_transient() => Text::Unavailable,
        _ => Text::Failed,
    }
}

/// Why the user may not have devices now, in words; `None` when they may.
pub fn access_problem(user: &User) -> Option<Text<'static>> {
    match Access::of(user, Timestamp::now()) {
        Access::Active { .. } => None,
        Access::Disabled => Some(Text::AccountDisabled),
        Access::Lapsed { .. } => Some(Text::AccessEnded),
        Access::Suspended { resumes, .. } => Some(Text::QuotaUsedUp {
            until: Some(resumes),
        }),
    }
}

/// Core's judgement of a node for new devices.
pub fn placement(v: &NodeBrief) -> Placement {
    Placement::of_brief(v)
}

pub fn server_line(v: &NodeBrief) -> ServerLine {
    let placement = placement(v);
    ServerLine {
        name: v.name.clone(),
        region: v.region.name.clone(),
        load_percent: placement.load_percent(),
        availability: placement.availability,
        transport: v.transport,
    }
}

pub fn node_name(nodes: &[NodeBrief], id: NodeId) -> String {
    nodes
        .iter()
        .find(|n| n.id == id)
        .map_or_else(|| id.to_string(), |n| n.name.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn failures_are_told_apart_by_code() {
        let api = |code| ClientError::Api {
            status: 409,
            error: vpnctl_api::ApiError::new(code, "whatever the server says"),
        };
        assert!(matches!(
            api_failure(&api(ErrorCode::AccessExpired)),
            Text::AccessEnded
        ));
        assert!(matches!(
            api_failure(&api(ErrorCode::PoolExhausted)),
            Text::NoServers
        ));
        assert!(matches!(
            api_failure(&api(ErrorCode::Internal)),
            Text::Unavailable
        ));
        assert!(matches!(
            api_failure(&api(ErrorCode::Conflict)),
            Text::Failed
        ));
        let down = ClientError::Unreachable {
            url: "http://127.0.0.1:1".into(),
            reason: "refused".into(),
        };
        assert!(matches!(api_failure(&down), Text::Unavailable));
    }
}
