//! End-to-end journeys: the real dispatcher, a fake Telegram Bot API on loopback,
//! a real vpnctld over a real redb store.

mod support;

use std::time::Duration;

use support::{Harness, decode_qr, now, report};
use vpnctl_client::api::PeerQuery;
use vpnctl_core::wire::PeerStats;
use vpnctl_core::{Timestamp, User};

const WAIT: Duration = Duration::from_secs(10);

async fn user_of(h: &Harness, tg: i64) -> User {
    h.admin
        .users()
        .await
        .unwrap()
        .into_iter()
        .find(|u| u.telegram_id == Some(tg))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invite_get_config_status_regen() {
    let h = Harness::start_with(|c| c.delete_after_secs = 600).await;
    let user = 1001;
    h.signed_up(user, 3).await;

    // /get_config → server keyboard → document + QR, both protected.
    let (doc, photo) = h.get_config(user, "n:").await;
    let (_, file_name, bytes) = &doc.files[0];
    let file_name = file_name.clone().unwrap();
    let stem = file_name.strip_suffix(".conf").expect(".conf file");
    assert!(
        vpnctl_core::render::is_valid_tunnel_name(stem),
        "{file_name}"
    );
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert!(text.contains("[Interface]") && text.contains("PrivateKey") && text.contains("[Peer]"));
    assert!(text.contains("Endpoint = vpn.example.com:51820"), "{text}");
    assert_eq!(
        decode_qr(&photo.files[0].2),
        text,
        "the QR code holds exactly the config"
    );
    assert!(doc.protected() && photo.protected());
    assert!(photo.text().contains("Windows") && photo.text().contains("iP"));
    assert!(
        h.tg.calls()
            .iter()
            .any(|c| c.chat_id == Some(user) && c.text().contains("deleted"))
    );

    // /status: active, days left, the device with the node's handshake and traffic.
    let u = user_of(&h, user).await;
    let peers = h
        .admin
        .peers(PeerQuery {
            user: Some(u.id),
            node: None,
        })
        .await
        .unwrap();
    assert_eq!(peers.len(), 1);
    let old_key = peers[0].public_key;
    report(
        &h.node_client,
        &h.node,
        &[PeerStats {
            public_key: old_key,
            endpoint: None,
            last_handshake: Some(Timestamp(now().seconds() - 30)),
            rx_bytes: 1 << 20,
            tx_bytes: 300 << 20,
        }],
    )
    .await;
    let status = h.ask(user, "/status").await.text();
    assert!(status.contains("Access: active"), "{status}");
    assert!(status.contains("days left"), "{status}");
    assert!(status.contains("device1 — fra1"), "{status}");
    assert!(
        status.contains("s ago") && status.contains("↓300 MiB"),
        "{status}"
    );
    assert!(h.desired_keys().await.contains(&old_key));

    // /regen → device → confirm → new config; the old key leaves the node.
    let list = h.ask(user, "/regen").await;
    let (_, data) = list
        .buttons()
        .into_iter()
        .find(|(_, d)| d.starts_with("g:"))
        .unwrap();
    let mark = h.tg.mark();
    h.tg.press(user, user, list.message_id.unwrap(), &data);
    let confirm = h.tg.reply(mark, user, "sendMessage").await;
    assert!(
        confirm.text().contains("old config stops working"),
        "{}",
        confirm.text()
    );
    let (_, yes) = confirm
        .buttons()
        .into_iter()
        .find(|(_, d)| d.starts_with("gc:"))
        .unwrap();
    let mark = h.tg.mark();
    h.tg.press(user, user, confirm.message_id.unwrap(), &yes);
    let new_doc = h.tg.reply(mark, user, "sendDocument").await;
    let new_photo = h.tg.reply(mark, user, "sendPhoto").await;
    let new_text = String::from_utf8(new_doc.files[0].2.clone()).unwrap();
    assert_ne!(new_text, text);
    assert_eq!(decode_qr(&new_photo.files[0].2), new_text);
    let keys = h.desired_keys().await;
    assert!(
        !keys.contains(&old_key),
        "the old key is gone from the node's desired state"
    );
    let new_key = h
        .admin
        .peers(PeerQuery {
            user: Some(u.id),
            node: None,
        })
        .await
        .unwrap()[0]
        .public_key;
    assert!(keys.contains(&new_key));

    // Pressing the confirmation again rotates nothing.
    let mark = h.tg.mark();
    h.tg.press(user, user, confirm.message_id.unwrap(), &yes);
    let answer =
        h.tg.wait_after(mark, WAIT, |c| c.method == "answercallbackquery")
            .await;
    assert!(answer.text().contains("already used"), "{answer:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !h.tg.calls()[mark..]
            .iter()
            .any(|c| c.method == "senddocument")
    );
    let again = h
        .admin
        .peers(PeerQuery {
            user: Some(u.id),
            node: None,
        })
        .await
        .unwrap();
    assert_eq!(again[0].public_key, new_key);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_registered_in_both_languages() {
    let h = Harness::start().await;
    let calls =
        h.tg.wait_after(0, WAIT, |c| {
            c.method == "setmycommands" && c.params.get("language_code").is_some()
        })
        .await;
    assert_eq!(calls.params["language_code"], "ru");
    let all: Vec<_> =
        h.tg.calls()
            .into_iter()
            .filter(|c| c.method == "setmycommands")
            .collect();
    assert_eq!(all.len(), 2);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_chat_is_refused() {
    let h = Harness::start().await;
    let user = 2001;
    h.signed_up(user, 3).await;
    let mark = h.tg.mark();
    h.tg.text_in(user, -5001, "/get_config", "en");
    let reply = h.tg.reply(mark, -5001, "sendMessage").await;
    assert!(reply.text().contains("private chat"), "{}", reply.text());
    // Ordinary group chatter gets no answer; a button pressed in a group issues nothing.
    let mark = h.tg.mark();
    h.tg.text_in(user, -5001, "hello all", "en");
    h.tg.press(user, -5001, 77, &format!("n:{}", h.node.id));
    let answer =
        h.tg.wait_after(mark, WAIT, |c| c.method == "answercallbackquery")
            .await;
    assert!(answer.text().contains("private chat"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !h.tg.calls()[mark..]
            .iter()
            .any(|c| c.method == "senddocument" || c.method == "sendmessage")
    );
    let u = user_of(&h, user).await;
    assert!(
        h.admin
            .peers(PeerQuery {
                user: Some(u.id),
                node: None
            })
            .await
            .unwrap()
            .is_empty()
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ended_access_and_bad_invites() {
    let h = Harness::start().await;
    let user = 3001;
    h.signed_up(user, 3).await;
    let u = user_of(&h, user).await;
    h.admin
        .set_access(u.id, Some(Timestamp(now().seconds() - 60)))
        .await
        .unwrap();
    let reply = h.ask(user, "/get_config").await;
    assert!(
        reply.text().contains("access has ended"),
        "{}",
        reply.text()
    );
    let status = h.ask(user, "/status").await.text();
    assert!(status.contains("Access: ended"), "{status}");

    // An invite used twice, an unknown code, an expired invite.
    let code = h.invite(Some(5), 1).await;
    assert!(
        h.ask(3002, &format!("/start {code}"))
            .await
            .text()
            .contains("Welcome")
    );
    let used = h.ask(3003, &format!("/start {code}")).await.text();
    assert!(
        used.contains("already been used") || used.contains("not valid"),
        "{used}"
    );
    let unknown = h
        .ask(3003, "/start AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
        .await
        .text();
    assert!(unknown.contains("not valid"), "{unknown}");
    let odd = h.ask(3003, "/start ../../etc/passwd").await.text();
    assert!(odd.contains("not valid"), "{odd}");
    let expiring = h
        .admin
        .create_invite(&vpnctl_client::api::CreateInvite {
            label: None,
            uses: Some(1),
            expires_at: Some(Timestamp(now().seconds() + 1)),
            grant: None,
        })
        .await
        .unwrap()
        .code;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let expired = h.ask(3004, &format!("/start {expiring}")).await.text();
    assert!(expired.contains("expired"), "{expired}");
    // Without a code: how to get access.
    assert!(h.ask(3005, "/start").await.text().contains("invitation"));
    // A code typed in as plain text works like the deep link.
    let typed = h.invite(Some(5), 1).await;
    assert!(h.ask(3006, &typed).await.text().contains("Welcome"));
    // No account: /get_config says so.
    assert!(
        h.ask(3005, "/get_config")
            .await
            .text()
            .contains("no account")
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_short_replies() {
    let mut h = Harness::start().await;
    let user = 4001;
    h.signed_up(user, 3).await;
    assert!(
        h.ask(user, "/frobnicate")
            .await
            .text()
            .contains("Unknown command")
    );
    assert!(
        h.ask(user, "hello there")
            .await
            .text()
            .contains("only understand commands")
    );
    assert!(
        h.ask(user, &"x".repeat(5000))
            .await
            .text()
            .contains("too long")
    );
    let mark = h.tg.mark();
    h.tg.sticker(user);
    assert!(
        h.tg.reply(mark, user, "sendMessage")
            .await
            .text()
            .contains("only understand commands")
    );

    // Forged buttons: garbage, a missing node, someone else's device.
    let other = 4002;
    h.signed_up(other, 3).await;
    h.get_config(other, "n:").await;
    let other_user = user_of(&h, other).await;
    let other_peer = h
        .admin
        .peers(PeerQuery {
            user: Some(other_user.id),
            node: None,
        })
        .await
        .unwrap()[0]
        .id;
    for (i, data) in [
        "garbage",
        "n:999999",
        &format!("s:{other_peer}"),
        &format!("gc:{other_peer}"),
        "n:-1",
    ]
    .iter()
    .enumerate()
    {
        let mark = h.tg.mark();
        h.tg.press(user, user, 9000 + i32::try_from(i).unwrap(), data);
        let answer =
            h.tg.wait_after(mark, WAIT, |c| {
                (c.method == "answercallbackquery" && c.text().contains("not valid"))
                    || (c.method == "sendmessage" && c.chat_id == Some(user))
            })
            .await;
        assert!(answer.text().contains("not valid"), "{data}: {answer:?}");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let u = user_of(&h, user).await;
    assert!(
        h.admin
            .peers(PeerQuery {
                user: Some(u.id),
                node: None
            })
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        !h.tg
            .calls()
            .iter()
            .any(|c| c.chat_id == Some(user) && c.method == "senddocument")
    );

    // The control plane goes away: a clear "try later", no crash.
    h.stop_server();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let reply = h.ask(user, "/status").await.text();
    assert!(reply.contains("temporarily unavailable"), "{reply}");
    assert!(h.ask(user, "/help").await.text().contains("/get_config"));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_limit_offers_replacement_and_double_taps_issue_once() {
    let h = Harness::start().await;
    let user = 5001;
    h.signed_up(user, 1).await;
    let keyboard = h.ask(user, "/get_config").await;
    let (_, data) = keyboard
        .buttons()
        .into_iter()
        .find(|(_, d)| d.starts_with("n:"))
        .unwrap();
    let mark = h.tg.mark();
    // A double tap: the same button twice.
    h.tg.press(user, user, keyboard.message_id.unwrap(), &data);
    h.tg.press(user, user, keyboard.message_id.unwrap(), &data);
    h.tg.reply(mark, user, "sendDocument").await;
    h.tg.wait_after(mark, WAIT, |c| c.text().contains("already used"))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        h.tg.calls()[mark..]
            .iter()
            .filter(|c| c.method == "senddocument")
            .count(),
        1
    );
    let u = user_of(&h, user).await;
    let first = h
        .admin
        .peers(PeerQuery {
            user: Some(u.id),
            node: None,
        })
        .await
        .unwrap();
    assert_eq!(first.len(), 1);

    // Re-fetching the same device issues nothing new.
    let (doc, _) = h.get_config(user, "s:").await;
    assert!(
        String::from_utf8(doc.files[0].2.clone())
            .unwrap()
            .contains("PrivateKey")
    );
    assert_eq!(
        h.admin
            .peers(PeerQuery {
                user: Some(u.id),
                node: None
            })
            .await
            .unwrap()
            .len(),
        1
    );

    // A new device at the limit: offered to replace the existing one.
    let keyboard = h.ask(user, "/get_config").await;
    let (_, data) = keyboard
        .buttons()
        .into_iter()
        .find(|(_, d)| d.starts_with("n:"))
        .unwrap();
    let mark = h.tg.mark();
    h.tg.press(user, user, keyboard.message_id.unwrap(), &data);
    let offer = h.tg.reply(mark, user, "sendMessage").await;
    assert!(offer.text().contains("limit"), "{}", offer.text());
    let (_, replace) = offer
        .buttons()
        .into_iter()
        .find(|(_, d)| d.starts_with("r:"))
        .unwrap();
    let mark = h.tg.mark();
    h.tg.press(user, user, offer.message_id.unwrap(), &replace);
    h.tg.reply(mark, user, "sendDocument").await;
    let now_peers = h
        .admin
        .peers(PeerQuery {
            user: Some(u.id),
            node: None,
        })
        .await
        .unwrap();
    assert_eq!(now_peers.len(), 1);
    assert_ne!(now_peers[0].id, first[0].id);
    assert!(!h.desired_keys().await.contains(&first[0].public_key));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_users_at_once() {
    let h = Harness::start().await;
    let users: Vec<i64> = (0..100).map(|i| 10_000 + i).collect();
    let mut codes = Vec::new();
    for _ in &users {
        codes.push(h.invite(Some(30), 2).await);
    }
    let mark = h.tg.mark();
    for (u, code) in users.iter().zip(&codes) {
        h.tg.text(*u, &format!("/start {code}"));
        h.tg.text(*u, "/get_config");
    }
    // Each user's keyboard, then everyone presses at once (and twice).
    let mut keyboards = Vec::new();
    for u in &users {
        let k =
            h.tg.wait_after(mark, Duration::from_secs(60), |c| {
                c.chat_id == Some(*u) && !c.buttons().is_empty()
            })
            .await;
        keyboards.push(k);
    }
    let mark = h.tg.mark();
    for (u, k) in users.iter().zip(&keyboards) {
        let (_, data) = k
            .buttons()
            .into_iter()
            .find(|(_, d)| d.starts_with("n:"))
            .unwrap();
        h.tg.press(*u, *u, k.message_id.unwrap(), &data);
        h.tg.press(*u, *u, k.message_id.unwrap(), &data);
    }
    for u in &users {
        h.tg.wait_after(mark, Duration::from_secs(60), |c| {
            c.chat_id == Some(*u) && c.method == "sendphoto"
        })
        .await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let calls = h.tg.calls();
    for u in &users {
        let docs = calls[mark..]
            .iter()
            .filter(|c| c.chat_id == Some(*u) && c.method == "senddocument")
            .count();
        assert_eq!(docs, 1, "user {u} got exactly one config");
    }
    let peers = h.admin.peers(PeerQuery::default()).await.unwrap();
    assert_eq!(peers.len(), 100);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured_and_configs_are_deleted() {
    let h = Harness::start_with(|c| c.delete_after_secs = 1).await;
    let user = 6001;
    h.signed_up(user, 2).await;
    h.tg.throttle("sendDocument", 1);
    let (doc, photo) = h.get_config(user, "n:").await;
    assert_eq!(
        h.tg.refused(),
        1,
        "Telegram said retry_after once and the bot retried"
    );
    let mark = h.tg.mark();
    for id in [doc.message_id.unwrap(), photo.message_id.unwrap()] {
        h.tg.wait_after(0, WAIT, |c| {
            c.method == "deletemessage" && c.params["message_id"] == id
        })
        .await;
    }
    assert!(
        h.tg.calls()
            .iter()
            .any(|c| c.text().contains("deleted from this chat in 1 min"))
    );
    assert!(mark > 0);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_per_user() {
    let h = Harness::start_with(|c| c.issue_per_hour = 1).await;
    let user = 7001;
    h.signed_up(user, 3).await;
    h.get_config(user, "n:").await;
    let keyboard = h.ask(user, "/get_config").await;
    let (_, data) = keyboard
        .buttons()
        .into_iter()
        .find(|(_, d)| d.starts_with("s:"))
        .unwrap();
    let mark = h.tg.mark();
    h.tg.press(user, user, keyboard.message_id.unwrap(), &data);
    let reply = h.tg.reply(mark, user, "sendMessage").await;
    assert!(
        reply.text().contains("Too many requests"),
        "{}",
        reply.text()
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn languages_follow_telegram_and_language_command() {
    let h = Harness::start().await;
    let user = 8001;
    let mark = h.tg.mark();
    h.tg.text_in(user, user, "/help", "ru");
    assert!(
        h.tg.reply(mark, user, "sendMessage")
            .await
            .text()
            .contains("получить конфигурацию")
    );
    let keyboard = h.ask(user, "/language").await;
    let mark = h.tg.mark();
    h.tg.press(user, user, keyboard.message_id.unwrap(), "l:ru");
    h.tg.wait_after(mark, WAIT, |c| {
        c.method == "editmessagetext" && c.text().contains("русский")
    })
    .await;
    // Now Russian even though the Telegram client says English.
    assert!(
        h.ask(user, "/frobnicate")
            .await
            .text()
            .contains("Неизвестная команда")
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_get_admin_commands_and_allowlist_signs_up() {
    let h = Harness::start_with(|c| {
        c.admin_ids = vec![9001];
        c.allowed_ids = vec![9100];
    })
    .await;
    let nodes = h.ask(9001, "/nodes").await.text();
    assert!(nodes.contains("fra1"), "{nodes}");
    let invite = h.ask(9001, "/invite 30 2").await;
    assert!(invite.text().contains("start="), "{}", invite.text());
    assert!(invite.protected());
    let code = invite
        .text()
        .split("start=")
        .nth(1)
        .unwrap()
        .trim()
        .to_owned();
    assert!(
        h.ask(9200, &format!("/start {code}"))
            .await
            .text()
            .contains("Welcome")
    );
    assert!(h.ask(9001, "/users").await.text().contains("User9200"));
    // Not an admin: admin commands do not exist.
    assert!(
        h.ask(9200, "/nodes")
            .await
            .text()
            .contains("Unknown command")
    );
    // Allowlisted id: plain /start creates the account.
    assert!(h.ask(9100, "/start").await.text().contains("Welcome"));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_reach_admin_chats() {
    let tg = support::FakeTelegram::start().await;
    let token = vpnctl_core::Secret::new("vpt_unused".into());
    let mut config = support::test_config(&tg, "http://127.0.0.1:9", &token);
    config.admin_ids = vec![111, 222];
    let app = vpnctl_bot::BotApp::new(config).unwrap();
    let alerts = app.alerts();
    let delivered = alerts
        .send("node fra1 is down", vpnctl_core::Locale::En)
        .await;
    assert_eq!(delivered, 2);
    for chat in [111, 222] {
        let c = tg.reply(0, chat, "sendMessage").await;
        assert!(c.text().contains("node fra1 is down"), "{c:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_mode_checks_the_secret_token() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let h = Harness::start_with(|c| {
        c.mode = vpnctl_bot::UpdateMode::Webhook;
        c.webhook_url = Some("https://bot.example.invalid/telegram".into());
        c.webhook_listen = Some(listen);
        c.webhook_secret = Some(vpnctl_bot::SecretText::new("s3cret-token"));
    })
    .await;
    let set = h.tg.wait_after(0, WAIT, |c| c.method == "setwebhook").await;
    assert_eq!(set.params["secret_token"], "s3cret-token");
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let update = |id: i64| {
        serde_json::json!({"update_id": id, "message": {
            "message_id": 1, "date": now().seconds(),
            "chat": {"id": 4242, "type": "private", "first_name": "W"},
            "from": {"id": 4242, "is_bot": false, "first_name": "W", "language_code": "en"},
            "text": "/help",
            "entities": [{"type": "bot_command", "offset": 0, "length": 5}]
        }})
    };
    let url = format!("http://{listen}/telegram");
    // The listener binds in the background: wait until it answers.
    let mut status = None;
    for _ in 0..100 {
        if let Ok(r) = http.post(&url).json(&update(1)).send().await {
            status = Some(r.status().as_u16());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, Some(401), "no secret token: refused");
    let wrong = http
        .post(&url)
        .header("X-Telegram-Bot-Api-Secret-Token", "wrong")
        .json(&update(2))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    let mark = h.tg.mark();
    let good = http
        .post(&url)
        .header("X-Telegram-Bot-Api-Secret-Token", "s3cret-token")
        .json(&update(3))
        .send()
        .await
        .unwrap();
    assert_eq!(good.status().as_u16(), 200);
    let reply = h.tg.reply(mark, 4242, "sendMessage").await;
    assert!(reply.text().contains("/get_config"));
    assert_eq!(
        h.tg.calls()
            .iter()
            .filter(|c| c.chat_id == Some(4242))
            .count(),
        1,
        "only the request with the right secret was handled"
    );
    h.stop().await;
}

/// teloxide's own shutdown signal can be lost when it arrives while the dispatcher
/// hands out an update or has only just started; the bot must stop anyway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stops_promptly_right_after_start_and_mid_update() {
    for round in 0..4 {
        let h = Harness::start().await;
        if round % 2 == 1 {
            h.tg.text_in(3001, 3001, "/help", "en");
        }
        let started = std::time::Instant::now();
        h.stop().await;
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "round {round}: stopping took {:?}",
            started.elapsed()
        );
    }
}
