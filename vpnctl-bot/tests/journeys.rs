//! End-to-end journeys: the real dispatcher, a fake Telegram Bot API on loopback,
//! a real vpnctld over a real redb store.

mod support;

use std::time::Duration;

use support::{
    ApiProxy, Configs, Harness, SWEEP, decode_qr, enrolled_node_at, now, report, report_errors,
    second_node, wait_health,
};
use vpnctl_api::body::{IssuePeerRequest, PatchUser, PeerQuery};
use vpnctl_bot::notifications::MAX_ATTEMPTS;
use vpnctl_core::transport::TransportChoice;
use vpnctl_core::wire::PeerStats;
use vpnctl_core::{
    EvacuateTo, Health, HealthPolicy, KeyPair, Notification, Quota, QuotaPeriod, Recipient,
    Timestamp, User,
};

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

    // /get_config → server keyboard → document + QR, which can be saved (no
    // protect_content: the WireGuard apps on Windows and iOS need the file).
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
    assert!(!doc.protected() && !photo.protected());
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
            ..PeerQuery::default()
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
    assert!(status.contains("Access: active until"), "{status}");
    assert!(status.contains("(30 days left)"), "{status}");
    assert!(status.contains("device1 — fra1"), "{status}");
    assert!(
        status.contains("last connected just now") && status.contains("↓314.6 MB"),
        "{status}"
    );
    // The control plane accounted the report: 1 MiB + 300 MiB this month.
    assert!(status.contains("Traffic this month: 315.6 MB"), "{status}");
    assert!(h.desired_keys().await.contains(&old_key));

    // /regen → device → confirm → new config; the old key leaves the node.
    let (list, data) = h.keyboard(user, "/regen", "g:").await;
    let mark = h.tg.mark();
    h.tg.press(user, user, list.message_id.unwrap(), &data);
    let confirm = h.tg.reply(mark, user, "sendMessage").await;
    assert!(
        confirm.text().contains("current config stops working"),
        "{}",
        confirm.text()
    );
    let yes = support::button(&confirm, "gc:");
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
            ..PeerQuery::default()
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
            ..PeerQuery::default()
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
                node: None,
                ..PeerQuery::default()
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
        .create_invite(&vpnctl_api::body::CreateInvite {
            plan: None,
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
            ..PeerQuery::default()
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
                    || (c.method == "editmessagetext" && c.chat_id == Some(user))
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
                node: None,
                ..PeerQuery::default()
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
    h.stop_server().await;
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
    let (keyboard, data) = h.keyboard(user, "/get_config", "n:").await;
    let mark = h.tg.mark();
    // A double tap: the same button twice.
    h.tg.press(user, user, keyboard.message_id.unwrap(), &data);
    h.tg.press(user, user, keyboard.message_id.unwrap(), &data);
    h.tg.reply(mark, user, "sendDocument").await;
    h.tg.wait_after(mark, WAIT, |c| {
        c.method == "answercallbackquery"
            && (c.text().contains("already used") || c.text().contains("Working on it"))
    })
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
            ..PeerQuery::default()
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
                node: None,
                ..PeerQuery::default()
            })
            .await
            .unwrap()
            .len(),
        1
    );

    // At the limit /get_config offers only what is possible: the config again, or
    // replacing the device on a server; the keyboard becomes "which one?".
    let keyboard = h.ask(user, "/get_config").await;
    assert!(
        keyboard.text().contains("the most your account allows"),
        "{}",
        keyboard.text()
    );
    let labels: Vec<String> = keyboard.buttons().into_iter().map(|(l, _)| l).collect();
    assert!(labels.iter().all(|l| !l.starts_with('➕')), "{labels:?}");
    let (label, data) = keyboard
        .buttons()
        .into_iter()
        .find(|(_, d)| d.starts_with("n:"))
        .unwrap();
    assert!(label.starts_with('🔄'), "{label}");
    let mark = h.tg.mark();
    h.tg.press(user, user, keyboard.message_id.unwrap(), &data);
    let offer = h.tg.reply(mark, user, "editMessageText").await;
    assert!(
        offer.text().contains("the most your account allows"),
        "{}",
        offer.text()
    );
    assert_eq!(
        offer.message_id, keyboard.message_id,
        "the same message asks which one"
    );
    let replace = support::button(&offer, "r:");
    let mark = h.tg.mark();
    h.tg.press(user, user, offer.message_id.unwrap(), &replace);
    h.tg.reply(mark, user, "sendDocument").await;
    let now_peers = h
        .admin
        .peers(PeerQuery {
            user: Some(u.id),
            node: None,
            ..PeerQuery::default()
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
            .any(|c| c.text().contains("deleted from this chat in 1 second"))
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
    let (keyboard, data) = h.keyboard(user, "/get_config", "s:").await;
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
            .contains("конфигурация WireGuard")
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

/// Messages sent to `chat` whose text contains `needle`.
fn sent_to(h: &Harness, chat: i64, needle: &str) -> Vec<String> {
    h.tg.calls()
        .into_iter()
        .filter(|c| c.chat_id == Some(chat) && c.method == "sendmessage")
        .map(|c| c.text())
        .filter(|t| t.contains(needle))
        .collect()
}

/// Waits until the bot has acknowledged every notification.
async fn all_acknowledged(h: &Harness) {
    let deadline = std::time::Instant::now() + WAIT;
    while !h.unacknowledged().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "still unacknowledged: {:?}",
            h.unacknowledged()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The first day of next month (UTC), as the bot prints dates in English: when a
/// monthly quota resets. Computed with the `time` crate, not with vpnctl's own
/// calendar.
fn next_month() -> String {
    let today = time::OffsetDateTime::now_utc().date();
    let (year, month) = if today.month() == time::Month::December {
        (today.year() + 1, time::Month::January)
    } else {
        (today.year(), today.month().next())
    };
    let first = time::Date::from_calendar_date(year, month, 1).unwrap();
    en_date(first.midnight().assume_utc().unix_timestamp())
}

/// A date as an English reader expects it: `1 Jan 2027` (UTC).
fn en_date(secs: i64) -> String {
    let d = time::OffsetDateTime::from_unix_timestamp(secs).unwrap();
    let month = format!("{}", d.month());
    format!("{} {} {}", d.day(), &month[..3], d.year())
}

/// A date as a Russian reader expects it: `01.01.2027` (UTC).
fn ru_date(secs: i64) -> String {
    let d = time::OffsetDateTime::from_unix_timestamp(secs).unwrap();
    format!("{:02}.{:02}.{}", d.day(), u8::from(d.month()), d.year())
}

/// Signs `user` up with an invite of `days` days, speaking `lang` in Telegram.
async fn signed_up_for(h: &Harness, user: i64, days: u32, lang: &str) {
    let code = h.invite(Some(days), 2).await;
    let mark = h.tg.mark();
    h.tg.text_in(user, user, &format!("/start {code}"), lang);
    let welcome = h.tg.reply(mark, user, "sendMessage").await.text();
    assert!(
        welcome.contains("Welcome") || welcome.contains("Добро пожаловать"),
        "{welcome}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_reminder_arrives_once_in_each_users_language() {
    let h = Harness::start().await;
    let (ru, en) = (11_001, 11_002);
    signed_up_for(&h, ru, 2, "ru").await;
    signed_up_for(&h, en, 2, "en").await;
    // Access ends in two days: the control plane's sweep queues the 3-day reminder.
    let until_ru = ru_date(user_of(&h, ru).await.until.unwrap().seconds());
    let until_en = en_date(user_of(&h, en).await.until.unwrap().seconds());
    let got_ru =
        h.tg.wait_after(0, WAIT, |c| {
            c.chat_id == Some(ru) && c.method == "sendmessage" && c.text().contains("закончится")
        })
        .await
        .text();
    assert!(
        got_ru.contains(&format!("через 2 дня, {until_ru}")) && got_ru.contains("продлить"),
        "{got_ru}"
    );
    let got_en =
        h.tg.wait_after(0, WAIT, |c| {
            c.chat_id == Some(en) && c.method == "sendmessage" && c.text().contains("ends in")
        })
        .await
        .text();
    assert!(
        got_en.contains(&format!("ends in 2 days, on {until_en}")) && got_en.contains("extend"),
        "{got_en}"
    );
    // Acknowledged, and not sent again however many sweeps run.
    all_acknowledged(&h).await;
    tokio::time::sleep(SWEEP * 12).await;
    assert_eq!(sent_to(&h, ru, "закончится").len(), 1);
    assert_eq!(sent_to(&h, en, "ends in").len(), 1);
    assert!(
        sent_to(&h, ru, "ends in").is_empty(),
        "no English for the ru user"
    );
    assert!(sent_to(&h, en, "закончится").is_empty());
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_users_are_skipped_and_passing_failures_retried() {
    let h = Harness::start().await;
    let (blocked, flaky) = (11_101, 11_102);
    h.signed_up(blocked, 1).await;
    h.signed_up(flaky, 1).await;
    h.tg.block(blocked);
    // Telegram fails twice with a 500 before it works again.
    h.tg.fail("sendMessage", 2);
    // Noon, two days from now: "in 2 days" whatever the time of day now.
    let today = now().seconds() - now().seconds().rem_euclid(86_400);
    let soon = Timestamp(today + 2 * 86_400 + 12 * 3600);
    for tg in [blocked, flaky] {
        let u = user_of(&h, tg).await;
        h.admin.set_access(u.id, Some(soon)).await.unwrap();
    }
    h.tg.wait_after(0, Duration::from_secs(20), |c| {
        c.chat_id == Some(flaky) && c.text().contains("ends in 2 days")
    })
    .await;
    all_acknowledged(&h).await;
    assert_eq!(h.tg.failed(), 2, "both 500s were met and retried");
    assert_eq!(
        h.tg.blocked_attempts(blocked),
        1,
        "a blocked user is tried once, then skipped"
    );
    tokio::time::sleep(SWEEP * 8).await;
    assert_eq!(sent_to(&h, flaky, "ends in").len(), 1);
    assert_eq!(h.tg.blocked_attempts(blocked), 1);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_hear_when_a_node_goes_down_and_recovers() {
    let admin = 9_301;
    let user = 11_201;
    let h = Harness::start_full(
        |sc| {
            sc.policy.health = HealthPolicy {
                report_late_secs: 1,
                report_down_secs: 2,
                worse_after: 1,
                better_after: 1,
                ..HealthPolicy::default()
            };
        },
        |c| c.admin_ids = vec![admin],
    )
    .await;
    h.signed_up(user, 1).await;
    // The node stops reporting.
    let down =
        h.tg.wait_after(0, WAIT, |c| {
            c.chat_id == Some(admin) && c.text().contains("fra1 is down")
        })
        .await
        .text();
    assert!(down.contains("no report for"), "{down}");
    assert!(
        h.ask(user, "/get_config")
            .await
            .text()
            .contains("No server takes new devices"),
        "a down node is offered to nobody"
    );
    let servers = h.ask(user, "/servers").await.text();
    assert!(
        servers.contains("fra1 (Frankfurt)") && servers.contains("not available"),
        "{servers}"
    );
    assert!(
        sent_to(&h, user, "is down").is_empty(),
        "users get no admin alerts"
    );

    // It reports again.
    let mark = h.tg.mark();
    report(&h.node_client, &h.node, &[]).await;
    let up =
        h.tg.wait_after(mark, WAIT, |c| {
            c.chat_id == Some(admin) && c.text().contains("fra1 recovered")
        })
        .await
        .text();
    assert!(up.contains("was down"), "{up}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn degraded_nodes_are_marked_and_unreported_ones_unavailable() {
    let admin = 9_401;
    let user = 11_301;
    let h = Harness::start_full(
        |sc| {
            sc.policy.health = HealthPolicy {
                worse_after: 1,
                ..HealthPolicy::default()
            };
        },
        |c| c.admin_ids = vec![admin],
    )
    .await;
    // A second node that never reports: its health stays unknown.
    let (silent, _) = enrolled_node_at(
        &h.cp,
        "ams1",
        "b.example.net:51820",
        ("nl-ams", "Amsterdam"),
    )
    .await;
    report_errors(&h.node_client, &h.node, &[], &["wg: set peer failed"]).await;
    wait_health(&h.admin, &h.node, Health::Degraded).await;
    let alert =
        h.tg.wait_after(0, WAIT, |c| {
            c.chat_id == Some(admin) && c.text().contains("fra1 is degraded")
        })
        .await
        .text();
    assert!(alert.contains("wg: set peer failed"), "{alert}");

    h.signed_up(user, 2).await;
    let servers = h.ask(user, "/servers").await.text();
    let line = |name: &str| {
        servers
            .lines()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("no {name} in {servers}"))
            .to_owned()
    };
    assert!(line("fra1").contains("unstable"), "{servers}");
    assert!(line("ams1").contains("not available"), "{servers}");
    let keyboard = h.ask(user, "/get_config").await;
    let buttons = keyboard.buttons();
    assert!(
        buttons
            .iter()
            .any(|(label, data)| data == &format!("n:{}", h.node.id) && label.contains("unstable")),
        "{buttons:?}"
    );
    assert!(
        !buttons
            .iter()
            .any(|(_, data)| data == &format!("n:{}", silent.id)),
        "a node that never reported is not offered: {buttons:?}"
    );
    // A degraded node still serves: the config comes.
    let (doc, _) = h.get_config(user, &format!("n:{}", h.node.id)).await;
    assert!(
        String::from_utf8(doc.files[0].2.clone())
            .unwrap()
            .contains("[Peer]")
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evacuated_devices_get_their_new_config() {
    let admin = 9_501;
    let h = Harness::start_with(|c| c.admin_ids = vec![admin]).await;
    let b = second_node(&h).await;

    // One user with a config from the bot, one who brought their own key.
    let user = 11_401;
    h.signed_up(user, 2).await;
    let (old_doc, _) = h.get_config(user, &format!("n:{}", h.node.id)).await;
    let old_text = String::from_utf8(old_doc.files[0].2.clone()).unwrap();
    assert!(
        old_text.contains("Endpoint = vpn.example.com:51820"),
        "{old_text}"
    );
    let own = 11_402;
    h.signed_up(own, 2).await;
    let own_user = user_of(&h, own).await;
    h.admin
        .issue_peer(&IssuePeerRequest {
            user: own_user.id,
            node: h.node.id,
            device: "laptop".into(),
            public_key: Some(KeyPair::generate().public),
        })
        .await
        .unwrap();

    let mark = h.tg.mark();
    let evacuation = h
        .admin
        .evacuate_node(h.node.id, EvacuateTo::Auto)
        .await
        .unwrap();
    assert_eq!(evacuation.moved.len(), 2, "{evacuation:?}");
    assert!(evacuation.moved.iter().all(|m| m.to == b.id));

    // Two messages: the new config with the explanation as its caption, the QR.
    let doc = h.tg.reply(mark, user, "sendDocument").await;
    let explain = doc.text();
    assert!(
        explain.contains("fra1") && explain.contains("ams1") && explain.contains("Amsterdam"),
        "{explain}"
    );
    let photo = h.tg.reply(mark, user, "sendPhoto").await;
    let (_, file_name, bytes) = &doc.files[0];
    let file_name = file_name.clone().unwrap();
    assert!(
        vpnctl_core::render::is_valid_tunnel_name(file_name.strip_suffix(".conf").unwrap()),
        "{file_name}"
    );
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert!(text.contains("Endpoint = b.example.net:51820"), "{text}");
    assert_ne!(text, old_text);
    assert_eq!(
        decode_qr(&photo.files[0].2),
        text,
        "the QR code holds the new config"
    );
    assert!(!doc.protected() && !photo.protected());
    let peers = h
        .admin
        .peers(PeerQuery {
            user: Some(user_of(&h, user).await.id),
            node: None,
            ..PeerQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(peers.len(), 1);
    assert_eq!(peers[0].node, b.id);

    // Their own key: no config to send, so the text points to /get_config.
    let told = h.tg.reply(mark, own, "sendMessage").await.text();
    assert!(
        told.contains("ams1") && told.contains("/get_config"),
        "{told}"
    );
    let alert =
        h.tg.wait_after(mark, WAIT, |c| {
            c.chat_id == Some(admin) && c.text().contains("evacuated")
        })
        .await
        .text();
    assert!(
        alert.contains("fra1") && alert.contains("2 devices moved"),
        "{alert}"
    );
    all_acknowledged(&h).await;
    assert!(
        !h.tg.calls()[mark..]
            .iter()
            .any(|c| c.chat_id == Some(own) && c.method == "senddocument")
    );
    assert_eq!(
        h.tg.calls()[mark..]
            .iter()
            .filter(|c| c.chat_id == Some(user) && c.method == "senddocument")
            .count(),
        1
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_traffic_quota_and_suspension() {
    let h = Harness::start().await;
    let user = 11_501;
    h.signed_up(user, 2).await;
    h.get_config(user, "n:").await;
    let u = user_of(&h, user).await;
    h.admin
        .update_user(
            u.id,
            &PatchUser {
                quota: Some(Some(Quota {
                    bytes: 4_000_000_000,
                    period: QuotaPeriod::Monthly,
                })),
                ..PatchUser::default()
            },
        )
        .await
        .unwrap();
    let key = h
        .admin
        .peers(PeerQuery {
            user: Some(u.id),
            node: None,
            ..PeerQuery::default()
        })
        .await
        .unwrap()[0]
        .public_key;
    let counters = |rx: u64, tx: u64| {
        [PeerStats {
            public_key: key,
            endpoint: None,
            last_handshake: Some(Timestamp(now().seconds() - 30)),
            rx_bytes: rx,
            tx_bytes: tx,
        }]
    };
    let resets = next_month();

    report(&h.node_client, &h.node, &counters(400_000_000, 600_000_000)).await;
    let status = h.ask(user, "/status").await.text();
    assert!(
        status.contains(&format!(
            "Traffic this month: 1.0 GB of 4.0 GB (resets on {resets})"
        )),
        "{status}"
    );
    assert!(status.contains("Traffic in total: 1.0 GB"), "{status}");
    assert!(!status.contains("paused"), "{status}");

    // 85 % of the quota: a warning.
    report(
        &h.node_client,
        &h.node,
        &counters(1_400_000_000, 2_000_000_000),
    )
    .await;
    let warning =
        h.tg.wait_after(0, WAIT, |c| {
            c.chat_id == Some(user) && c.text().contains("You have used")
        })
        .await
        .text();
    assert!(
        warning.contains("3.4 GB of your 4.0 GB") && warning.contains(&resets),
        "{warning}"
    );

    // Over it: suspended, told so, and /status and /get_config say until when.
    report(
        &h.node_client,
        &h.node,
        &counters(2_000_000_000, 3_000_000_000),
    )
    .await;
    let exceeded =
        h.tg.wait_after(0, WAIT, |c| {
            c.chat_id == Some(user) && c.text().contains("is used up")
        })
        .await
        .text();
    assert!(
        exceeded.contains("4.0 GB") && exceeded.contains(&format!("paused until {resets}")),
        "{exceeded}"
    );
    let status = h.ask(user, "/status").await.text();
    assert!(
        status.contains("Traffic this month: 5.0 GB of 4.0 GB"),
        "{status}"
    );
    assert!(
        status.contains(&format!(
            "Access: paused until {resets}: the traffic limit is used up"
        )),
        "{status}"
    );
    let refused = h.ask(user, "/get_config").await.text();
    assert!(
        refused.contains("limit is used up") && refused.contains(&resets),
        "{refused}"
    );
    assert!(
        !h.desired_keys().await.contains(&key),
        "a suspended device leaves the node"
    );
    h.stop().await;
}

/// How long a notification that keeps failing takes to be given up: its attempts
/// with the courier's back-off between them (1 + 2 + 4 + 8 s), and some slack.
const GIVE_UP: Duration = Duration::from_secs(45);

fn addressed_to(n: &Notification) -> Option<i64> {
    match n.recipient {
        Recipient::User { telegram_id, .. } => Some(telegram_id),
        Recipient::Admins => None,
    }
}

/// Telegram fails every config sent for a moved device: after its attempts the user
/// is pointed to /get_config, and the admin alert queued behind it goes out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_telegram_keeps_failing_gives_way_to_the_alert_behind_it() {
    let admin = 9_601;
    let h = Harness::start_with(|c| c.admin_ids = vec![admin]).await;
    second_node(&h).await;
    let user = 11_601;
    h.signed_up(user, 2).await;
    h.get_config(user, &format!("n:{}", h.node.id)).await;
    h.tg.fail("sendDocument", 1000);
    h.tg.fail("sendPhoto", 1000);

    let mark = h.tg.mark();
    h.admin
        .evacuate_node(h.node.id, EvacuateTo::Auto)
        .await
        .unwrap();
    let hint =
        h.tg.wait_after(mark, GIVE_UP, |c| {
            c.chat_id == Some(user) && c.text().contains("/get_config")
        })
        .await
        .text();
    assert!(hint.contains("ams1"), "{hint}");
    h.tg.wait_after(mark, WAIT, |c| {
        c.chat_id == Some(admin) && c.text().contains("evacuated")
    })
    .await;
    all_acknowledged(&h).await;
    let failed = i32::try_from(MAX_ATTEMPTS).unwrap();
    assert_eq!(h.tg.failed(), failed, "the document, each attempt");
    let texts: Vec<String> = h.tg.calls()[mark..]
        .iter()
        .filter(|c| c.chat_id == Some(user) && c.method == "sendmessage")
        .map(support::Call::text)
        .collect();
    assert_eq!(texts.len(), 1, "only the pointer: {texts:?}");
    h.stop().await;
}

/// The control plane fails every fetch of a moved device's config: after its
/// attempts the explanation goes out with /get_config instead of the config, and
/// the admin alert queued behind it goes out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moved_device_whose_config_keeps_failing_gets_the_get_config_hint() {
    let admin = 9_701;
    let proxy = ApiProxy::start().await;
    let h = Harness::start_with(|c| {
        c.admin_ids = vec![admin];
        proxy.insert(c);
    })
    .await;
    second_node(&h).await;
    let user = 11_701;
    h.signed_up(user, 2).await;
    h.get_config(user, &format!("n:{}", h.node.id)).await;
    proxy.configs(Configs::Fail);

    let mark = h.tg.mark();
    h.admin
        .evacuate_node(h.node.id, EvacuateTo::Auto)
        .await
        .unwrap();
    let told =
        h.tg.wait_after(mark, GIVE_UP, |c| {
            c.chat_id == Some(user) && c.method == "sendmessage"
        })
        .await
        .text();
    assert!(
        told.contains("ams1") && told.contains("/get_config"),
        "{told}"
    );
    h.tg.wait_after(mark, WAIT, |c| {
        c.chat_id == Some(admin) && c.text().contains("evacuated")
    })
    .await;
    all_acknowledged(&h).await;
    assert_eq!(proxy.config_fetches(), MAX_ATTEMPTS, "bounded retries");
    assert!(
        !h.tg.calls()[mark..]
            .iter()
            .any(|c| c.chat_id == Some(user) && c.method == "senddocument")
    );
    assert_eq!(
        sent_to(&h, user, "ams1").len(),
        1,
        "told once, after the last attempt"
    );
    h.stop().await;
}

/// Two moved devices and an alert arrive in one batch; one device's config fetch
/// hangs. The bot is stopped and started again: only the notification that was in
/// flight is delivered again, not the one already delivered (whether or not the
/// control plane's cursor could pass it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_repeats_only_the_notification_in_flight() {
    let admin = 9_801;
    let proxy = ApiProxy::start().await;
    proxy.hold_notifications(true);
    let mut h = Harness::start_with(|c| {
        c.admin_ids = vec![admin];
        proxy.insert(c);
    })
    .await;
    second_node(&h).await;
    let users = [11_801, 11_802];
    for user in users {
        h.signed_up(user, 2).await;
        h.get_config(user, &format!("n:{}", h.node.id)).await;
    }
    proxy.configs(Configs::HoldAfterFirst);
    let mark = h.tg.mark();
    let evacuation = h
        .admin
        .evacuate_node(h.node.id, EvacuateTo::Auto)
        .await
        .unwrap();
    assert_eq!(evacuation.moved.len(), 2, "{evacuation:?}");
    proxy.hold_notifications(false);

    let doc =
        h.tg.wait_after(mark, WAIT, |c| c.method == "sendphoto")
            .await;
    let first = doc.chat_id.unwrap();
    let second = users.into_iter().find(|u| *u != first).unwrap();
    h.tg.wait_after(mark, WAIT, |c| {
        c.chat_id == Some(admin) && c.text().contains("evacuated")
    })
    .await;
    let deadline = std::time::Instant::now() + WAIT;
    while proxy.config_fetches() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the second config was never fetched"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The second delivery is in flight and will not finish: stop, as SIGTERM does.
    h.stop_bot().await;
    assert!(
        h.unacknowledged()
            .iter()
            .any(|n| addressed_to(n) == Some(second)),
        "the one in flight is not acknowledged"
    );

    proxy.configs(Configs::Pass);
    let mark = h.tg.mark();
    h.start_bot().await;
    let again = h.tg.reply(mark, second, "sendDocument").await;
    assert!(again.text().contains("ams1"), "{}", again.text());
    all_acknowledged(&h).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let calls = h.tg.calls();
    assert!(
        !calls[mark..]
            .iter()
            .any(|c| c.chat_id == Some(first) && c.method.starts_with("send")),
        "delivered before the restart, so not again"
    );
    assert!(
        !calls[mark..].iter().any(|c| c.chat_id == Some(admin)),
        "the alert was delivered before the restart"
    );
    h.stop().await;
}

/// An AmneziaWG node added as `vpnctl nodes add … --transport amneziawg` adds it:
/// `/get_config` lists it under its own heading after the WireGuard servers; the
/// heading explains and leaves the keyboard usable; its config carries the AWG keys,
/// is named for the AmneziaWG app, and its QR holds the same bytes; `/status` and
/// `/servers` name the transport.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amneziawg_servers_come_under_their_own_heading() {
    let user = 11_501;
    let h = Harness::start().await;
    let mut request = vpnctl_testbed::control_plane::nodes_add(
        "fra-awg",
        "de-fra",
        "awg.example.net:51821",
        "10.9.0.0/16",
    );
    request.transport = Some(TransportChoice::Amneziawg {
        generation: None,
        params: None,
    });
    let awg = h.cp.register(&request).await;
    let (awg, awg_client) = support::enroll(&h.cp, &awg).await;
    report(&awg_client, &awg, &[]).await;
    wait_health(&h.admin, &awg, Health::Up).await;
    h.signed_up(user, 2).await;

    let keyboard = h.ask(user, "/get_config").await;
    let buttons = keyboard.buttons();
    let data: Vec<&str> = buttons.iter().map(|(_, d)| d.as_str()).collect();
    assert_eq!(
        data,
        [
            "h:wg".to_owned(),
            format!("n:{}", h.node.id),
            "h:awg".to_owned(),
            format!("n:{}", awg.id)
        ],
        "{buttons:?}"
    );
    assert!(
        buttons[2].0.contains("if WireGuard does not connect"),
        "{buttons:?}"
    );
    let message = keyboard.message_id.unwrap();
    let mark = h.tg.mark();
    h.tg.press(user, user, message, "h:awg");
    let about =
        h.tg.wait_after(mark, WAIT, |c| c.method == "answercallbackquery")
            .await;
    assert!(about.text().contains("AmneziaWG app"), "{about:?}");

    // The keyboard still works after the heading was pressed.
    let mark = h.tg.mark();
    h.tg.press(user, user, message, &format!("n:{}", awg.id));
    let doc = h.tg.reply(mark, user, "sendDocument").await;
    let photo = h.tg.reply(mark, user, "sendPhoto").await;
    let (_, file_name, bytes) = &doc.files[0];
    let file_name = file_name.clone().unwrap();
    assert!(file_name.starts_with("awg-"), "{file_name}");
    let config = String::from_utf8(bytes.clone()).unwrap();
    for key in [
        "Jc = ", "Jmin = ", "Jmax = ", "S1 = ", "S2 = ", "H1 = ", "H4 = ",
    ] {
        assert!(config.contains(key), "no {key:?} in {config}");
    }
    assert!(
        config.contains("Endpoint = awg.example.net:51821"),
        "{config}"
    );
    assert_eq!(decode_qr(&photo.files[0].2), config);
    assert!(
        doc.text().contains("AmneziaWG") || photo.text().contains("AmneziaWG"),
        "the captions name the app"
    );

    let status = h.ask(user, "/status").await.text();
    assert!(status.contains("AmneziaWG app"), "{status}");
    let servers = h.ask(user, "/servers").await.text();
    let (wg_at, awg_at) = (
        servers.find("WireGuard app").expect("WireGuard heading"),
        servers
            .find("if WireGuard does not connect")
            .expect("AWG heading"),
    );
    let fra_awg = servers.find("fra-awg").unwrap();
    assert!(wg_at < awg_at && awg_at < fra_awg, "{servers}");
    h.stop().await;
}

/// vpnctld with scheduled backups and `backup_telegram` on: the first backup is
/// due at start; the bot fetches it and sends it to the admin chat, in order, in
/// parts no larger than `backup_part_bytes`; joined, the parts are the file in the
/// backup directory, and it opens with the admin's key. Nobody else gets it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_backups_reach_the_admin_chat_in_parts() {
    use vpnctl_core::backup::{self, RestoreKey};
    use vpnctl_server::backups::{Schedule, ScheduleKey};
    let admin = 9_601;
    let dir = tempfile::tempdir().unwrap();
    let backups = dir.path().join("backups");
    let (identity, recipient) = backup::generate_identity(now());
    let schedule = Schedule {
        dir: backups.clone(),
        every: Duration::from_secs(3600),
        keep: 3,
        key: ScheduleKey::Recipient(recipient),
        telegram: true,
    };
    let h = Harness::start_full(
        |sc| sc.backups = Some(schedule),
        |c| {
            c.admin_ids = vec![admin];
            c.backup_part_bytes = 1024;
        },
    )
    .await;
    let deadline = tokio::time::Instant::now() + WAIT;
    let file = loop {
        let found = vpnctl_server::backups::list(&backups).unwrap_or_default();
        if let Some(file) = found.first() {
            break file.clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "no backup written");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let name = file.file_name().unwrap().to_str().unwrap().to_owned();
    let expected = std::fs::read(&file).unwrap();
    let parts = expected.len().div_ceil(1024);
    assert!(
        parts >= 2,
        "the test wants a split: {} bytes",
        expected.len()
    );
    let last = format!("{name}.part{parts}");
    h.tg.wait_after(0, WAIT, |c| {
        c.method == "senddocument" && c.files.iter().any(|f| f.1.as_deref() == Some(&last))
    })
    .await;
    let docs: Vec<_> =
        h.tg.calls()
            .into_iter()
            .filter(|c| c.method == "senddocument")
            .collect();
    assert!(
        docs.iter().all(|c| c.chat_id == Some(admin)),
        "only the admin chat gets backups"
    );
    let names: Vec<String> = docs.iter().map(|c| c.files[0].1.clone().unwrap()).collect();
    let want: Vec<String> = (1..=parts).map(|i| format!("{name}.part{i}")).collect();
    assert_eq!(names, want, "every part once, in order");
    assert!(
        docs[0].text().contains(&format!("part 1 of {parts}")),
        "{}",
        docs[0].text()
    );
    assert!(docs[0].text().contains("cat "), "{}", docs[0].text());
    let joined: Vec<u8> = docs.iter().flat_map(|c| c.files[0].2.clone()).collect();
    assert_eq!(joined, expected, "the parts join into the file");
    let key = RestoreKey::identity_file(&identity, "backup.key").unwrap();
    assert!(
        backup::open(&joined, &key).is_ok(),
        "it opens with the admin's key"
    );

    // The bot's token may fetch scheduled backups by name only: nothing else.
    let bot = h.cp.bot();
    for bad in ["vpnctl.redb", "..%2Fvpnctl.redb", "vpnctl-1T2Z.backup.age"] {
        let e = bot.backup_file(bad).await.unwrap_err();
        assert_eq!(e.status(), Some(404), "{bad}: {e}");
    }
    h.stop().await;
}

/// /status and /regen read the user's devices in one per-user call (their nodes
/// in brief, their counters), never the fleet's list or a node's whole report;
/// /get_config, which offers servers, reads the fleet in brief.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reads_only_the_users_own_nodes() {
    let proxy = ApiProxy::start().await;
    let h = Harness::start_with(|c| proxy.insert(c)).await;
    second_node(&h).await;
    let user = 11_801;
    h.signed_up(user, 2).await;
    h.get_config(user, &format!("n:{}", h.node.id)).await;
    proxy.take_paths();
    let status = h.ask(user, "/status").await.text();
    assert!(status.contains("fra1"), "{status}");
    let paths = proxy.take_paths();
    let fleet_or_report = |paths: &[String]| {
        paths
            .iter()
            .any(|p| p.starts_with("/v1/nodes") || p.ends_with("/report"))
    };
    assert!(
        paths
            .iter()
            .any(|p| p.starts_with("/v1/users/") && p.ends_with("/devices")),
        "{paths:?}"
    );
    assert!(!fleet_or_report(&paths), "/status read nodes: {paths:?}");
    // /regen, its device button, the confirmation: the new config names the
    // server, read per user too.
    let (list, data) = h.keyboard(user, "/regen", "g:").await;
    let mark = h.tg.mark();
    h.tg.press(user, user, list.message_id.unwrap(), &data);
    let confirm = h.tg.reply(mark, user, "sendMessage").await;
    let yes = support::button(&confirm, "gc:");
    let mark = h.tg.mark();
    h.tg.press(user, user, confirm.message_id.unwrap(), &yes);
    let doc = h.tg.reply(mark, user, "sendDocument").await;
    assert!(
        doc.files[0]
            .1
            .as_deref()
            .is_some_and(|f| f.contains("fra1")),
        "{:?}",
        doc.files[0].1
    );
    let paths = proxy.take_paths();
    assert!(!fleet_or_report(&paths), "/regen read nodes: {paths:?}");
    h.ask(user, "/get_config").await;
    let paths = proxy.take_paths();
    assert!(paths.iter().any(|p| p == "/v1/nodes/brief"), "{paths:?}");
    assert!(!paths.iter().any(|p| p == "/v1/nodes"), "{paths:?}");
    h.stop().await;
}
