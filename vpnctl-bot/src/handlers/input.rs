//! What users send that is not one of our commands: invite links and codes pasted
//! as text, group chats, unknown commands, commands meant for other bots, long texts
//! and stickers.

use teloxide::prelude::*;
use teloxide::utils::command::{BotCommands, parse_command};

use super::{AdminCommand, Command, Ctx, HandlerResult, MAX_TEXT, commands};
use crate::i18n::Text;

/// Looks like an invite code: what `t.me/<bot>?start=` allows.
pub fn looks_like_code(text: &str) -> bool {
    (16..=64).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// What a pasted text says about an invite.
#[derive(Debug, PartialEq, Eq)]
pub enum Pasted {
    /// An invite code, typed or inside a link to this bot.
    Code(String),
    /// A link that opens another bot.
    OtherBot(String),
    Nothing,
}

/// Finds an invite in a pasted text: the code itself, `https://t.me/<bot>?start=<code>`
/// (also without the scheme, or `telegram.me`), or `tg://resolve?domain=<bot>&start=<code>`.
pub fn pasted_invite(text: &str, me: &str) -> Pasted {
    let text = text.trim();
    if looks_like_code(text) {
        return Pasted::Code(text.to_owned());
    }
    let with_scheme = if text.contains("://") {
        text.to_owned()
    } else {
        format!("https://{text}")
    };
    let Ok(url) = reqwest::Url::parse(&with_scheme) else {
        return Pasted::Nothing;
    };
    let param = |name: &str| {
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    let bot = match (url.scheme(), url.host_str()) {
        ("http" | "https", Some("t.me" | "telegram.me" | "www.t.me" | "www.telegram.me")) => url
            .path_segments()
            .and_then(|mut s| s.next())
            .map(str::to_owned),
        ("tg", Some("resolve")) => param("domain"),
        _ => None,
    };
    let (Some(bot), Some(code)) = (bot, param("start")) else {
        return Pasted::Nothing;
    };
    if !bot.eq_ignore_ascii_case(me) {
        return Pasted::OtherBot(bot);
    }
    if looks_like_code(&code) {
        Pasted::Code(code)
    } else {
        // A link to us with a broken code: say the invite is not valid.
        Pasted::Code(String::new())
    }
}

/// Plain text in a private chat: an invite (code or link) works like the deep
/// link; anything else gets a pointer to /help.
pub async fn free_text(msg: Message, ctx: Ctx) -> HandlerResult {
    let text = msg.text().unwrap_or_default();
    match pasted_invite(text, ctx.me.username()) {
        Pasted::Code(code) if code.is_empty() => ctx.say(Text::InviteInvalid).await,
        Pasted::Code(code) => commands::start(&ctx, &msg, &code).await,
        Pasted::OtherBot(bot) => ctx.say(Text::OtherBotsLink { bot: &bot }).await,
        Pasted::Nothing => ctx.say(Text::NotUnderstood).await,
    }
}

/// Whether `text` is one of our commands, addressed to us (or to nobody).
fn is_our_command(text: &str, me: &str) -> bool {
    Command::parse(text, me).is_ok() || AdminCommand::parse(text, me).is_ok()
}

/// In groups only our own commands get an answer (that the bot works in private
/// chats); chatter and commands for other bots are none of its business.
pub async fn group_message(msg: Message, ctx: Ctx) -> HandlerResult {
    if msg
        .text()
        .is_some_and(|t| is_our_command(t, ctx.me.username()))
    {
        ctx.say(Text::PrivateOnly).await?;
    }
    Ok(())
}

/// A command we do not know; silence if it was meant for another bot.
pub async fn unknown_command(msg: Message, ctx: Ctx) -> HandlerResult {
    let text = msg.text().unwrap_or_default();
    if parse_command(text, ctx.me.username()).is_none() {
        return Ok(());
    }
    ctx.say(Text::UnknownCommand).await
}

pub async fn too_long(ctx: Ctx) -> HandlerResult {
    ctx.say(Text::TooLong { max: MAX_TEXT }).await
}

pub async fn not_text(ctx: Ctx) -> HandlerResult {
    ctx.say(Text::NotUnderstood).await
}

#[cfg(test)]
mod tests {
    use super::*;

    const CODE: &str = "AbCdEfGhIjKlMnOpQrStUv_-12";

    #[test]
    fn invite_code_shape() {
        assert!(looks_like_code(CODE));
        assert!(!looks_like_code("hello"));
        assert!(!looks_like_code("a code with spaces in it!"));
        assert!(!looks_like_code(&"a".repeat(65)));
    }

    #[test]
    fn pasted_links_give_their_code() {
        for text in [
            format!("https://t.me/test_bot?start={CODE}"),
            format!("  t.me/Test_Bot?start={CODE}\n"),
            format!("http://telegram.me/test_bot?start={CODE}"),
            format!("tg://resolve?domain=test_bot&start={CODE}"),
            CODE.to_owned(),
        ] {
            assert_eq!(
                pasted_invite(&text, "test_bot"),
                Pasted::Code(CODE.into()),
                "{text}"
            );
        }
        assert_eq!(
            pasted_invite(&format!("https://t.me/other_bot?start={CODE}"), "test_bot"),
            Pasted::OtherBot("other_bot".into())
        );
        assert_eq!(
            pasted_invite("https://t.me/test_bot?start=../x", "test_bot"),
            Pasted::Code(String::new())
        );
        for nothing in [
            "hello there",
            "https://example.com/?start=x",
            "t.me/test_bot",
            "",
        ] {
            assert_eq!(
                pasted_invite(nothing, "test_bot"),
                Pasted::Nothing,
                "{nothing}"
            );
        }
    }

    #[test]
    fn commands_for_other_bots_are_not_ours() {
        assert!(is_our_command("/get_config", "test_bot"));
        assert!(is_our_command("/get_config@test_bot", "test_bot"));
        assert!(!is_our_command("/get_config@other_bot", "test_bot"));
        assert!(!is_our_command("/weather", "test_bot"));
    }
}
