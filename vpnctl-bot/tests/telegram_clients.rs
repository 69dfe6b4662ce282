//! Issue 12 as users meet it, against the fake Bot API and a real vpnctld: files
//! that can be saved, nothing lost on restart, no burnt buttons, clear wording,
//! pasted links, other bots' commands, typing indicators, Telegram's limits.

mod support;

use std::time::Duration;

use support::{ApiProxy, Harness, now};
use vpnctl_api::body::PeerQuery;
use vpnctl_core::{Timestamp, UserState};

const WAIT: Duration = Duration::from_secs(10);

async fn peers_of(h: &Harness, tg: i64) -> Vec<vpnctl_core::Peer> {
    let user = h
        .admin
        .users()
        .await
        .unwrap()
        .into_iter()
        .find(|u| u.telegram_id == Some(tg))
        .unwrap();
    h.admin
        .peers(PeerQuery {
            user: Some(user.id),
            node: None,
            ..PeerQuery::default()
        })
        .await
        .unwrap()
}

/// The `.conf` and the QR code can be saved and opened in the WireGuard app unless
/// the operator asks for `protect_content`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configs_can_be_saved_unless_the_operator_protects_them() {
    let h = Harness::start().await;
    h.signed_up(100, 2).await;
    let (doc, photo) = h.get_config(100, "n:").await;
    assert!(!doc.protected() && !photo.protected());
    assert!(photo.text().contains("in 10 minutes"), "{}", photo.text());
    h.stop().await;

    let h = Harness::start_with(|c| c.protect_configs = true).await;
    h.signed_up(101, 2).await;
    let (doc, photo) = h.get_config(101, "n:").await;
    assert!(doc.protected() && photo.protected());
    h.stop().await;
}

/// Deletions are durable: the bot stops (as on SIGTERM) with a deletion pending and
/// starts again after it fell due: it runs at once. Stopped and started before it
/// falls due, it runs on time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_deletion_survives_a_restart() {
    let mut h = Harness::start_with(|c| c.delete_after_secs = 2).await;
    let user = 200;
    h.signed_up(user, 3).await;

    // Overdue by the time the bot is back.
    let (doc, photo) = h.get_config(user, "n:").await;
    h.stop_bot().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let deleted = |id: i32| {
        move |c: &support::Call| c.method == "deletemessage" && c.params["message_id"] == id
    };
    assert!(
        !h.tg.calls().iter().any(deleted(doc.message_id.unwrap())),
        "nothing deletes while the bot is down"
    );
    let mark = h.tg.mark();
    h.start_bot().await;
    for id in [doc.message_id.unwrap(), photo.message_id.unwrap()] {
        h.tg.wait_after(mark, WAIT, deleted(id)).await;
    }

    // Restarted before it is due.
    let (doc, photo) = h.get_config(user, "n:").await;
    h.stop_bot().await;
    h.start_bot().await;
    for id in [doc.message_id.unwrap(), photo.message_id.unwrap()] {
        h.tg.wait_after(0, WAIT, deleted(id)).await;
    }
    h.stop().await;
}

/// `getMe` failing at start (error answers, then a proxy's HTTP 502) is retried
/// with a back-off; the bot then works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_me_failing_at_start_is_retried() {
    let mut h = Harness::start().await;
    h.stop_bot().await;
    h.tg.fail("getMe", 3);
    h.start_bot().await;
    assert_eq!(h.tg.failed(), 3);
    assert!(h.ask(300, "/help").await.text().contains("/get_config"));

    h.stop_bot().await;
    h.tg.bad_gateway("getMe", 1);
    // teloxide waits 10 s after any 5xx before it reads the body.
    let mark = h.tg.mark();
    let (stop, task) = support::spawn_bot(h.config.clone());
    h.tg.wait_after(mark, Duration::from_secs(40), |c| {
        c.method == "setmycommands"
    })
    .await;
    assert_eq!(h.tg.failed(), 4);
    assert!(h.ask(300, "/help").await.text().contains("/get_config"));
    let _ = stop.send(());
    task.await.unwrap();
    h.stop().await;
}

/// A button pressed while the control plane is down says to press it again, and
/// after it is back the same button works (a new device, and a key rotation).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_button_pressed_during_an_outage_works_after_it() {
    let proxy = ApiProxy::start().await;
    let h = Harness::start_with(|c| proxy.insert(c)).await;
    let user = 400;
    h.signed_up(user, 3).await;
    let (keyboard, data) = h.keyboard(user, "/get_config", "n:").await;
    let message = keyboard.message_id.unwrap();

    proxy.down(true);
    let mark = h.tg.mark();
    h.tg.press(user, user, message, &data);
    let told = h.tg.reply(mark, user, "sendMessage").await.text();
    assert!(told.contains("Press the same button again"), "{told}");
    assert!(
        !h.tg.calls()[mark..]
            .iter()
            .any(|c| c.method == "editmessagetext"),
        "the keyboard stays as it was"
    );
    proxy.down(false);
    let mark = h.tg.mark();
    h.tg.press(user, user, message, &data);
    h.tg.reply(mark, user, "sendDocument").await;
    h.tg.reply(mark, user, "sendPhoto").await;
    let edited = h.tg.reply(mark, user, "editMessageText").await.text();
    assert!(edited.contains("follow"), "{edited}");
    assert_eq!(peers_of(&h, user).await.len(), 1);

    // /regen's confirmation, pressed during an outage, then after it.
    let (list, rotate) = h.keyboard(user, "/regen", "g:").await;
    let mark = h.tg.mark();
    h.tg.press(user, user, list.message_id.unwrap(), &rotate);
    let confirm = h.tg.reply(mark, user, "sendMessage").await;
    let yes = support::button(&confirm, "gc:");
    let before = peers_of(&h, user).await[0].public_key;
    proxy.down(true);
    let mark = h.tg.mark();
    h.tg.press(user, user, confirm.message_id.unwrap(), &yes);
    let told = h.tg.reply(mark, user, "sendMessage").await.text();
    assert!(told.contains("Press the same button again"), "{told}");
    proxy.down(false);
    assert_eq!(peers_of(&h, user).await[0].public_key, before);
    let mark = h.tg.mark();
    h.tg.press(user, user, confirm.message_id.unwrap(), &yes);
    h.tg.reply(mark, user, "sendDocument").await;
    assert_ne!(peers_of(&h, user).await[0].public_key, before);
    // And now it is used.
    let mark = h.tg.mark();
    h.tg.press(user, user, confirm.message_id.unwrap(), &yes);
    let answer =
        h.tg.wait_after(mark, WAIT, |c| c.method == "answercallbackquery")
            .await;
    assert!(answer.text().contains("already used"), "{answer:?}");
    h.stop().await;
}

/// A server button for a server that stopped taking devices since the keyboard
/// was sent: the keyboard says so, and never "your config follows" first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_message_contradicts_an_earlier_one() {
    let h = Harness::start().await;
    let user = 500;
    h.signed_up(user, 3).await;
    let (keyboard, data) = h.keyboard(user, "/get_config", "n:").await;
    h.admin.drain_node(h.node.id).await.unwrap();
    let mark = h.tg.mark();
    h.tg.press(user, user, keyboard.message_id.unwrap(), &data);
    let edited = h.tg.reply(mark, user, "editMessageText").await.text();
    assert!(edited.contains("takes no new devices"), "{edited}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let texts: Vec<String> = h.tg.calls()[mark..]
        .iter()
        .filter(|c| c.chat_id == Some(user))
        .map(support::Call::text)
        .collect();
    assert!(!texts.iter().any(|t| t.contains("follow")), "{texts:?}");

    // A disabled account: /status says so, and no days left.
    let u = h
        .admin
        .users()
        .await
        .unwrap()
        .into_iter()
        .find(|u| u.telegram_id == Some(user))
        .unwrap();
    h.admin
        .set_user_state(u.id, UserState::Disabled)
        .await
        .unwrap();
    let status = h.ask(user, "/status").await.text();
    assert!(status.contains("turned off"), "{status}");
    assert!(
        !status.contains("left") && !status.contains("ended"),
        "{status}"
    );
    h.stop().await;
}

/// Russian readers get proper plural forms and dates; English readers theirs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn russian_plurals_and_dates() {
    let h = Harness::start().await;
    for (i, (days, words)) in [
        (1, "ещё 1 день"),
        (2, "ещё 2 дня"),
        (5, "ещё 5 дней"),
        (11, "ещё 11 дней"),
        (21, "ещё 21 день"),
        (22, "ещё 22 дня"),
        (25, "ещё 25 дней"),
    ]
    .into_iter()
    .enumerate()
    {
        let user = 600 + i64::try_from(i).unwrap();
        let code = h.invite(Some(days), 2).await;
        let mark = h.tg.mark();
        h.tg.text_in(user, user, &format!("/start {code}"), "ru");
        let welcome = h.tg.reply(mark, user, "sendMessage").await.text();
        assert!(welcome.contains("до 2 устройств"), "{welcome}");
        // The end of access: noon UTC, `days` calendar days ahead.
        let today = now().seconds() - now().seconds().rem_euclid(86_400);
        let until = Timestamp(today + i64::from(days) * 86_400 + 12 * 3600);
        let u = h
            .admin
            .users()
            .await
            .unwrap()
            .into_iter()
            .find(|u| u.telegram_id == Some(user))
            .unwrap();
        h.admin.set_access(u.id, Some(until)).await.unwrap();
        let mark = h.tg.mark();
        h.tg.text_in(user, user, "/status", "ru");
        // A short access may also bring its reminder: wait for the status itself.
        let status =
            h.tg.wait_after(mark, Duration::from_secs(10), |c| {
                c.chat_id == Some(user)
                    && c.method == "sendmessage"
                    && c.text().contains("Устройства")
            })
            .await
            .text();
        let date = time::OffsetDateTime::from_unix_timestamp(until.seconds()).unwrap();
        let ru_date = format!(
            "{:02}.{:02}.{}",
            date.day(),
            u8::from(date.month()),
            date.year()
        );
        assert!(
            status.contains(&format!("открыт до {ru_date} ({words})")),
            "{days}: {status}"
        );
        assert!(status.contains("Устройства: пока нет"), "{status}");
    }
    h.stop().await;
}

/// Invite links pasted whole work; a link to another bot is named as such.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invite_links_pasted_whole_work() {
    let h = Harness::start().await;
    for (user, link, answer) in [
        (700, "https://t.me/test_bot?start=", "Welcome"),
        (
            701,
            "https://t.me/other_bot?start=",
            "another bot (@other_bot)",
        ),
        (702, "t.me/test_bot?start=", "Welcome"),
    ] {
        let code = h.invite(Some(30), 2).await;
        let reply = h.ask(user, &format!("{link}{code}")).await.text();
        assert!(reply.contains(answer), "{link}: {reply}");
    }
    h.stop().await;
}

/// Commands for other bots get no answer, in groups and in private chats; our own
/// in a group get the "private chat only" answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_for_other_bots_are_ignored() {
    let h = Harness::start().await;
    let (user, group) = (800, -8001);
    let mark = h.tg.mark();
    h.tg.text_in(user, group, "/get_config@other_bot", "en");
    h.tg.text_in(user, group, "/weather", "en");
    h.tg.text_in(user, user, "/weather@other_bot", "en");
    h.tg.text_in(user, group, "/get_config@test_bot", "en");
    let reply = h.tg.reply(mark, group, "sendMessage").await;
    assert!(reply.text().contains("private chat"), "{}", reply.text());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let answers = h.tg.calls()[mark..]
        .iter()
        .filter(|c| c.method == "sendmessage")
        .count();
    assert_eq!(answers, 1, "only our own command got an answer");
    h.stop().await;
}

/// Lengths count characters: 600 Cyrillic letters (1,200 bytes) are read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lengths_count_characters() {
    let h = Harness::start().await;
    let reply = h.ask(900, &"я".repeat(600)).await.text();
    assert!(reply.contains("only understand"), "{reply}");
    let reply = h.ask(900, &"я".repeat(1100)).await.text();
    assert!(reply.contains("too long"), "{reply}");
    h.stop().await;
}

/// A slow control plane: "typing…" while the bot waits, "sending a file…" while a
/// config is prepared.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_control_plane_shows_typing() {
    let proxy = ApiProxy::start().await;
    let h = Harness::start_with(|c| proxy.insert(c)).await;
    let user = 1000;
    h.signed_up(user, 2).await;
    proxy.delay(Duration::from_millis(1500));
    let mark = h.tg.mark();
    h.tg.text(user, "/status");
    let action =
        h.tg.wait_after(mark, WAIT, |c| c.method == "sendchataction")
            .await;
    assert_eq!(action.params["action"], "typing");
    let status = h.tg.reply(mark, user, "sendMessage").await;
    assert!(status.text().contains("Access"), "{}", status.text());
    let calls = h.tg.calls();
    let position = |pred: &dyn Fn(&support::Call) -> bool| calls[mark..].iter().position(pred);
    assert!(
        position(&|c| c.method == "sendchataction") < position(&|c| c.method == "sendmessage"),
        "typing shows before the answer"
    );

    proxy.delay(Duration::ZERO);
    let (keyboard, data) = h.keyboard(user, "/get_config", "n:").await;
    let mark = h.tg.mark();
    h.tg.press(user, user, keyboard.message_id.unwrap(), &data);
    h.tg.reply(mark, user, "sendDocument").await;
    assert!(
        h.tg.calls()[mark..]
            .iter()
            .any(|c| c.method == "sendchataction" && c.params["action"] == "upload_document"),
        "sending a file… while the config is prepared"
    );
    h.stop().await;
}

/// /servers is for members unless the operator makes it public.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_only_for_members() {
    let h = Harness::start().await;
    let stranger = h.ask(1100, "/servers").await.text();
    assert!(stranger.contains("for members"), "{stranger}");
    assert!(!stranger.contains("fra1"), "{stranger}");
    h.signed_up(1101, 1).await;
    let member = h.ask(1101, "/servers").await.text();
    assert!(member.contains("fra1 (Frankfurt), 0% full"), "{member}");
    h.stop().await;

    let h = Harness::start_with(|c| c.servers_public = true).await;
    let stranger = h.ask(1100, "/servers").await.text();
    assert!(stranger.contains("fra1"), "{stranger}");
    h.stop().await;
}

/// A node registered exactly as `vpnctl nodes add` registers it (capacity, DNS,
/// MTU omitted): the bot offers it, with its load against the pool's size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_added_with_the_cli_defaults_is_offered() {
    let h = Harness::start().await;
    let node = support::register_like_the_cli(
        &h.cp,
        "waw1",
        "c.example.org:51820",
        ("pl-waw", "Warsaw"),
        "10.9.0.0/24",
    )
    .await;
    assert_eq!(node.capacity, 0, "as the CLI leaves it");
    let (node, client) = support::enroll(&h.cp, &node).await;
    support::report(&client, &node, &[]).await;
    support::wait_health(&h.admin, &node, vpnctl_core::Health::Up).await;

    let user = 1200;
    h.signed_up(user, 2).await;
    let keyboard = h.ask(user, "/get_config").await;
    let offered = keyboard
        .buttons()
        .into_iter()
        .find(|(_, d)| d == &format!("n:{}", node.id));
    let (label, _) =
        offered.unwrap_or_else(|| panic!("waw1 not offered: {:?}", keyboard.buttons()));
    assert_eq!(label, "➕ waw1 (Warsaw), 0% full");
    let (doc, _) = h.get_config(user, &format!("n:{}", node.id)).await;
    let text = String::from_utf8(doc.files[0].2.clone()).unwrap();
    assert!(text.contains("Endpoint = c.example.org:51820"), "{text}");
    let servers = h.ask(user, "/servers").await.text();
    assert!(servers.contains("waw1 (Warsaw), 0% full"), "{servers}");
    h.stop().await;
}

/// Notices to many chats go out concurrently within Telegram's limits, enforced by
/// the fake (30/s overall, 1/s per chat), each chat's messages in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mass_notices_keep_telegrams_limits_and_order() {
    let h = Harness::start_with(|c| {
        c.messages_per_sec_chat = 1;
        c.messages_per_min_chat = 20;
        c.messages_per_sec_overall = 30;
    })
    .await;
    let users: Vec<i64> = (0..40).map(|i| 20_000 + i).collect();
    support::users_with_devices(&h, &users).await;
    support::second_node(&h).await;
    h.tg.enforce_limits(30, Duration::from_secs(1));
    let mark = h.tg.mark();
    h.admin
        .evacuate_node(h.node.id, vpnctl_core::EvacuateTo::Auto)
        .await
        .unwrap();
    for u in &users {
        h.tg.wait_after(mark, Duration::from_secs(30), |c| {
            c.chat_id == Some(*u) && c.method == "sendphoto"
        })
        .await;
    }
    support::each_got_document_then_photo(&h.tg.calls()[mark..], &users);
    eprintln!("429s from the fake: {}", h.tg.rate_limited());
    h.stop().await;
}

/// The `vpnctl-bot` binary, set up through all three layers (a TOML file, the
/// environment, flags): SIGTERM stops it gracefully, and the deletions it had
/// scheduled run when it starts again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_daemon_and_its_deletions_survive() {
    let mut h = Harness::start().await;
    // The binary takes over from the in-process bot.
    h.stop_bot().await;
    let dir = tempfile::tempdir().unwrap();
    let settings = dir.path().join("bot.toml");
    std::fs::write(
        &settings,
        format!(
            "delete_after_secs = 2\nstate_dir = {:?}\nmessages_per_sec_overall = 1000\n",
            dir.path().join("state")
        ),
    )
    .unwrap();
    let daemon = || {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_vpnctl-bot"));
        cmd.args(["--config", settings.to_str().unwrap()])
            .args(["--telegram-api-url", &h.tg.url])
            .args(["--api-url", &h.api_url])
            .env("TELOXIDE_TOKEN", "123456:TEST")
            .env("VPNCTL_BOT_API_TOKEN", h.bot_token.expose())
            .env("VPNCTL_BOT_MSGS_PER_SEC_CHAT", "1000")
            .env_remove("VPNCTL_BOT_CONFIG")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        vpnctl_testbed::ChildGuard::spawn(&mut cmd).unwrap()
    };
    let stops = |mut bot: vpnctl_testbed::ChildGuard| async move {
        bot.signal("TERM");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = bot.child_mut().try_wait().unwrap() {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "SIGTERM did not stop the bot"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };

    let mark = h.tg.mark();
    let bot = daemon();
    h.wait_bot_up(mark).await;
    let user = 1300;
    h.signed_up(user, 2).await;
    let (doc, photo) = h.get_config(user, "n:").await;
    assert!(photo.text().contains("in 2 seconds"), "{}", photo.text());
    let status = stops(bot).await;
    assert!(status.success(), "a graceful stop: {status:?}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let deleted = |id: i32| {
        move |c: &support::Call| c.method == "deletemessage" && c.params["message_id"] == id
    };
    assert!(!h.tg.calls().iter().any(deleted(doc.message_id.unwrap())));

    let mark = h.tg.mark();
    let bot = daemon();
    for id in [doc.message_id.unwrap(), photo.message_id.unwrap()] {
        h.tg.wait_after(mark, WAIT, deleted(id)).await;
    }
    assert!(stops(bot).await.success());
    h.stop().await;
}

/// `--telegram-proxy`: every Telegram request goes through the proxy, and nothing
/// for the control plane does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telegram_goes_through_the_configured_proxy() {
    use std::sync::{Arc, Mutex};

    use axum::body::{Body, Bytes};
    use axum::extract::State;
    use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
    use axum::response::{IntoResponse, Response};

    type Seen = Arc<Mutex<Vec<String>>>;
    // A plain HTTP forward proxy: requests arrive in absolute form.
    async fn forward(
        State(seen): State<Seen>,
        method: Method,
        uri: Uri,
        headers: HeaderMap,
        body: Bytes,
    ) -> Response {
        seen.lock().unwrap().push(uri.path().to_owned());
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let mut request = http.request(method, uri.to_string()).body(body);
        for (name, value) in &headers {
            if name != header::HOST && name != header::CONTENT_LENGTH {
                request = request.header(name, value);
            }
        }
        let Ok(answer) = request.send().await else {
            return StatusCode::BAD_GATEWAY.into_response();
        };
        let status = answer.status();
        let bytes = answer.bytes().await.unwrap_or_default();
        Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(bytes))
            .unwrap()
    }
    let seen: Seen = Arc::default();
    let app = axum::Router::new()
        .fallback(forward)
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let h = Harness::start_with(|c| {
        c.telegram_proxy = Some(vpnctl_bot::SecretText::new(proxy));
    })
    .await;
    assert!(h.ask(1400, "/help").await.text().contains("/get_config"));
    let seen = seen.lock().unwrap().clone();
    assert!(seen.iter().any(|p| p.ends_with("/GetMe")), "{seen:?}");
    assert!(seen.iter().any(|p| p.ends_with("/SendMessage")), "{seen:?}");
    assert!(
        seen.iter().all(|p| p.starts_with("/bot")),
        "only Telegram goes through the proxy: {seen:?}"
    );
    h.stop().await;
}
