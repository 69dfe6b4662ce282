//! The fake Bot API's Telegram Stars payments, driven over raw HTTP/1.1.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use vpnctl_testbed::telegram::{FakeTelegram, Payment};

/// POSTs `body` to `method` and returns the JSON answer.
async fn post(tg: &FakeTelegram, method: &str, content_type: &str, body: &[u8]) -> Value {
    let addr = tg
        .url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let mut stream = TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /bottoken/{method} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP answer");
    serde_json::from_slice(&answer[split + 4..]).unwrap()
}

async fn post_json(tg: &FakeTelegram, method: &str, body: Value) -> Value {
    post(tg, method, "application/json", body.to_string().as_bytes()).await
}

/// The updates queued from `offset` on.
async fn updates(tg: &FakeTelegram, offset: i64) -> Vec<Value> {
    let answer = post_json(tg, "getUpdates", json!({"offset": offset, "timeout": 0})).await;
    answer["result"].as_array().unwrap().clone()
}

#[tokio::test]
async fn invoices_prices_as_array_string_and_form() {
    let tg = FakeTelegram::start().await;
    let sent = post_json(
        &tg,
        "sendInvoice",
        json!({"chat_id": 42, "title": "Month", "description": "30 days", "payload": "order-1",
               "currency": "XTR", "prices": [{"label": "Month", "amount": 100},
                                             {"label": "Extra", "amount": 50}]}),
    )
    .await;
    assert_eq!(sent["ok"], json!(true), "{sent}");
    let message = &sent["result"];
    assert!(message["message_id"].as_i64().unwrap() > 0);
    assert_eq!(message["chat"]["id"], json!(42));
    assert_eq!(
        message["invoice"],
        json!({"title": "Month", "description": "30 days", "start_parameter": "",
               "currency": "XTR", "total_amount": 150})
    );

    let boundary = "XyZ";
    let mut multipart = String::new();
    for (name, value) in [
        ("chat_id", "43"),
        ("title", "Year"),
        ("description", "365 days"),
        ("payload", "order-2"),
        ("currency", "XTR"),
        ("prices", r#"[{"label":"Year","amount":1000}]"#),
    ] {
        multipart.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        ));
    }
    multipart.push_str(&format!("--{boundary}--\r\n"));
    let sent = post(
        &tg,
        "sendInvoice",
        &format!("multipart/form-data; boundary={boundary}"),
        multipart.as_bytes(),
    )
    .await;
    assert_eq!(
        sent["result"]["invoice"]["total_amount"],
        json!(1000),
        "{sent}"
    );

    let form = "chat_id=44&title=Week+pass&description=7%20days&payload=order-3&currency=XTR\
                &prices=%5B%7B%22label%22%3A%22Week%22%2C%22amount%22%3A25%7D%5D";
    let sent = post(
        &tg,
        "sendInvoice",
        "application/x-www-form-urlencoded",
        form.as_bytes(),
    )
    .await;
    assert_eq!(sent["result"]["invoice"]["title"], json!("Week pass"));
    assert_eq!(
        sent["result"]["invoice"]["total_amount"],
        json!(25),
        "{sent}"
    );

    let link = post_json(
        &tg,
        "createInvoiceLink",
        json!({"title": "Sub", "description": "monthly", "payload": "order-4", "currency": "XTR",
               "prices": [{"label": "Sub", "amount": 75}], "subscription_period": 2_592_000}),
    )
    .await;
    assert_eq!(link["result"], json!("https://t.me/$fake_invoice_1"));

    let invoices = tg.invoices();
    let summary: Vec<_> = invoices
        .iter()
        .map(|i| {
            (
                i.chat_id,
                i.payload.as_str(),
                i.currency.as_str(),
                i.total,
                i.subscription_period,
                i.link,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (Some(42), "order-1", "XTR", 150, None, false),
            (Some(43), "order-2", "XTR", 1000, None, false),
            (Some(44), "order-3", "XTR", 25, None, false),
            (None, "order-4", "XTR", 75, Some(2_592_000), true),
        ]
    );
    assert_eq!(invoices[0].title, "Month");
    let calls = tg.calls();
    assert_eq!(calls.len(), 4);
    assert_eq!(calls[0].method, "sendinvoice");
    assert_eq!(calls[0].chat_id, Some(42));
    assert_eq!(
        calls[0].message_id,
        message["message_id"].as_i64().map(|m| m as i32)
    );
    assert_eq!(calls[3].method, "createinvoicelink");
}

#[tokio::test]
async fn sendinvoice_counts_against_message_limits_links_do_not() {
    let tg = FakeTelegram::start().await;
    tg.enforce_limits(30, Duration::from_secs(5));
    let invoice = json!({"chat_id": 7, "title": "t", "description": "d", "payload": "p",
                         "currency": "XTR", "prices": [{"label": "x", "amount": 1}]});
    assert_eq!(
        post_json(&tg, "sendInvoice", invoice.clone()).await["ok"],
        json!(true)
    );
    let again = post_json(&tg, "sendInvoice", invoice.clone()).await;
    assert_eq!(again["error_code"], json!(429), "{again}");
    assert_eq!(tg.rate_limited(), 1);
    let mut link = invoice;
    link.as_object_mut().unwrap().remove("chat_id");
    assert_eq!(
        post_json(&tg, "createInvoiceLink", link).await["ok"],
        json!(true)
    );
    assert_eq!(tg.invoices().len(), 2);
}

#[tokio::test]
async fn pre_checkout_payment_refund_and_subscription() {
    let tg = FakeTelegram::start().await;

    // Pre-checkout: the update, then the bot's answer.
    let mark = tg.mark();
    let query = tg.pre_checkout_in(42, "ru", "order-1", "XTR", 150);
    let queued = updates(&tg, 0).await;
    assert_eq!(queued.len(), 1);
    let pcq = &queued[0]["pre_checkout_query"];
    assert_eq!(pcq["id"], json!(query));
    assert_eq!(pcq["from"]["id"], json!(42));
    assert_eq!(pcq["from"]["language_code"], json!("ru"));
    assert_eq!(pcq["currency"], json!("XTR"));
    assert_eq!(pcq["total_amount"], json!(150));
    assert_eq!(pcq["invoice_payload"], json!("order-1"));
    let other = tg.pre_checkout(43, "order-2", "XTR", 10);
    assert_ne!(other, query);

    let answered = post_json(
        &tg,
        "answerPreCheckoutQuery",
        json!({"pre_checkout_query_id": query, "ok": true}),
    )
    .await;
    assert_eq!(answered, json!({"ok": true, "result": true}));
    let call = tg
        .pre_checkout_answer(mark, &query, Duration::from_secs(5))
        .await;
    assert_eq!(call.bool_param("ok"), Some(true));
    assert_eq!(call.str_param("error_message"), None);

    // A successful payment, delivered twice.
    let mut payment = Payment::stars("order-1", 150, "charge-1");
    payment.subscription_expiration = Some(1_900_000_000);
    payment.recurring = true;
    payment.first_recurring = true;
    let update = tg.successful_payment(42, &payment);
    let first_id = update["update_id"].as_i64().unwrap();
    let paid = &update["message"]["successful_payment"];
    assert_eq!(
        *paid,
        json!({"currency": "XTR", "total_amount": 150, "invoice_payload": "order-1",
               "telegram_payment_charge_id": "charge-1", "provider_payment_charge_id": "",
               "subscription_expiration_date": 1_900_000_000_i64,
               "is_recurring": true, "is_first_recurring": true})
    );
    assert_eq!(update["message"]["chat"]["id"], json!(42));
    let plain = tg.successful_payment(42, &Payment::stars("order-9", 5, "charge-9"));
    let plain = plain["message"]["successful_payment"].as_object().unwrap();
    assert!(!plain.contains_key("subscription_expiration_date"));
    assert!(!plain.contains_key("is_recurring"));
    assert!(!plain.contains_key("is_first_recurring"));

    tg.redeliver(&update);
    let queued = updates(&tg, first_id).await;
    let again = queued.last().unwrap();
    assert!(again["update_id"].as_i64().unwrap() > first_id);
    assert_eq!(again["message"], update["message"]);

    // Refunds: once, then CHARGE_ALREADY_REFUNDED; unknown or someone else's
    // charges are not found.
    assert!(!tg.refunded("charge-1"));
    let refund = json!({"user_id": 42, "telegram_payment_charge_id": "charge-1"});
    let first = post_json(&tg, "refundStarPayment", refund.clone()).await;
    assert_eq!(first, json!({"ok": true, "result": true}));
    assert!(tg.refunded("charge-1"));
    let second = post_json(&tg, "refundStarPayment", refund).await;
    assert_eq!(
        second,
        json!({"ok": false, "error_code": 400,
               "description": "Bad Request: CHARGE_ALREADY_REFUNDED"})
    );
    for (user, charge) in [(42, "nope"), (43, "charge-9")] {
        let answer = post_json(
            &tg,
            "refundStarPayment",
            json!({"user_id": user, "telegram_payment_charge_id": charge}),
        )
        .await;
        assert_eq!(
            answer["description"],
            json!("Bad Request: CHARGE_NOT_FOUND"),
            "{answer}"
        );
    }
    assert!(!tg.refunded("charge-9"));
    let refunds = tg
        .calls()
        .iter()
        .filter(|c| c.method == "refundstarpayment")
        .count();
    assert_eq!(refunds, 4);

    // A refund outside the bot.
    let refunded = tg.refunded_payment(42, "charge-9", "order-9", 5);
    assert_eq!(
        refunded["message"]["refunded_payment"],
        json!({"currency": "XTR", "total_amount": 5, "invoice_payload": "order-9",
               "telegram_payment_charge_id": "charge-9"})
    );
    assert!(tg.refunded("charge-9"));
    let late = post_json(
        &tg,
        "refundStarPayment",
        json!({"user_id": "42", "telegram_payment_charge_id": "charge-9"}),
    )
    .await;
    assert_eq!(
        late["description"],
        json!("Bad Request: CHARGE_ALREADY_REFUNDED")
    );

    // Subscriptions.
    assert_eq!(tg.subscription_canceled("charge-1"), None);
    let edit = post_json(
        &tg,
        "editUserStarSubscription",
        json!({"user_id": 42, "telegram_payment_charge_id": "charge-1", "is_canceled": true}),
    )
    .await;
    assert_eq!(edit, json!({"ok": true, "result": true}));
    assert_eq!(tg.subscription_canceled("charge-1"), Some(true));
    post_json(
        &tg,
        "editUserStarSubscription",
        json!({"user_id": 42, "telegram_payment_charge_id": "charge-1", "is_canceled": false}),
    )
    .await;
    assert_eq!(tg.subscription_canceled("charge-1"), Some(false));
}
