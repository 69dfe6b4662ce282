//! A hand-written fake Telegram Bot API on 127.0.0.1: queues updates for
//! `getUpdates` (honouring `offset`), records every call (multipart files
//! included, with the time it arrived), and answers like Telegram does.
//!
//! Failures only on request: 429s ([`FakeTelegram::throttle`]), error answers
//! ([`FakeTelegram::fail`]: `ok: false` with code 500, as the Bot API sends them),
//! real HTTP 502s from a proxy in front ([`FakeTelegram::bad_gateway`]), and chats
//! whose user blocked the bot ([`FakeTelegram::block`]). With
//! [`FakeTelegram::enforce_limits`] it enforces Telegram's message limits the
//! strict way: at most `per_sec` messages in any one-second window overall and one
//! per `chat_gap` in a chat, else 429 with `retry_after`. Refused calls are
//! counted, not recorded.
//!
//! Payments in Telegram Stars, with the Bot API's JSON shapes: `sendInvoice`
//! (a message with an `invoice`) and `createInvoiceLink` are remembered
//! ([`FakeTelegram::invoices`]); tests push `pre_checkout_query` updates
//! ([`FakeTelegram::pre_checkout`]), `successful_payment` and `refunded_payment`
//! messages ([`FakeTelegram::successful_payment`],
//! [`FakeTelegram::refunded_payment`]) and duplicates of earlier updates
//! ([`FakeTelegram::redeliver`]). `refundStarPayment` only refunds a charge the
//! fake delivered to that user, once: otherwise it answers 400
//! `CHARGE_NOT_FOUND` or `CHARGE_ALREADY_REFUNDED` (such answers are recorded
//! like successful calls, as the request did reach the API).
//! `editUserStarSubscription` is remembered per charge
//! ([`FakeTelegram::subscription_canceled`]).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicI32, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::post;
use serde_json::{Value, json};
use tokio::sync::{Notify, oneshot};

/// A multipart file: field name, file name, bytes.
pub type FilePart = (String, Option<String>, Vec<u8>);

/// One request the bot made.
#[derive(Debug, Clone)]
pub struct Call {
    /// Lower-cased method, e.g. `senddocument`.
    pub method: String,
    /// The `chat_id` parameter, when it is a number.
    pub chat_id: Option<i64>,
    /// JSON body, or multipart / urlencoded text fields as strings.
    pub params: Value,
    /// Multipart files: field name, file name, bytes.
    pub files: Vec<FilePart>,
    /// The message id the fake answered with (for sends).
    pub message_id: Option<i32>,
    /// When the call arrived.
    pub at: Instant,
}

impl Call {
    /// The `text` (or else `caption`) parameter, empty when there is none.
    pub fn text(&self) -> String {
        self.params
            .get("text")
            .or_else(|| self.params.get("caption"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    }

    /// Whether the call asked for `protect_content`.
    pub fn protected(&self) -> bool {
        matches!(self.params.get("protect_content"), Some(Value::Bool(true)))
            || self.params.get("protect_content").and_then(Value::as_str) == Some("true")
    }

    /// Callback data of every inline button in the call's keyboard.
    pub fn buttons(&self) -> Vec<(String, String)> {
        let markup = match self.params.get("reply_markup") {
            Some(Value::String(s)) => serde_json::from_str(s).unwrap_or(Value::Null),
            Some(v) => v.clone(),
            None => Value::Null,
        };
        let mut out = Vec::new();
        if let Some(rows) = markup.get("inline_keyboard").and_then(Value::as_array) {
            for row in rows {
                for b in row.as_array().into_iter().flatten() {
                    out.push((
                        b["text"].as_str().unwrap_or_default().to_owned(),
                        b["callback_data"].as_str().unwrap_or_default().to_owned(),
                    ));
                }
            }
        }
        out
    }

    /// Parameter `key` as a string, whether it came as a JSON string, number or
    /// bool or as a multipart / urlencoded field.
    pub fn str_param(&self, key: &str) -> Option<String> {
        str_param(&self.params, key)
    }

    /// Parameter `key` as a bool, whether it came as a JSON bool or as the
    /// string `"true"` / `"false"`.
    pub fn bool_param(&self, key: &str) -> Option<bool> {
        bool_param(&self.params, key)
    }
}

fn str_param(params: &Value, key: &str) -> Option<String> {
    match params.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn int_param(params: &Value, key: &str) -> Option<i64> {
    let v = params.get(key)?;
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
}

fn bool_param(params: &Value, key: &str) -> Option<bool> {
    match params.get(key)? {
        Value::Bool(b) => Some(*b),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// The sum of `prices[].amount`; `prices` may be a JSON array or a string
/// holding one (as multipart and urlencoded requests send it).
fn prices_total(params: &Value) -> u32 {
    let prices = match params.get("prices") {
        Some(Value::String(s)) => serde_json::from_str(s).unwrap_or(Value::Null),
        Some(v) => v.clone(),
        None => Value::Null,
    };
    prices
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| int_param(p, "amount"))
        .fold(0u32, |sum, amount| {
            sum.saturating_add(u32::try_from(amount.max(0)).unwrap_or(u32::MAX))
        })
}

/// An invoice the bot sent (`sendInvoice`) or made a link for
/// (`createInvoiceLink`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invoice {
    /// The chat it was sent to; `None` for links (and non-numeric chat ids).
    pub chat_id: Option<i64>,
    /// The bot's `payload`.
    pub payload: String,
    /// `XTR` for Telegram Stars.
    pub currency: String,
    /// The sum of `prices[].amount`.
    pub total: u32,
    /// Seconds between subscription charges (links only).
    pub subscription_period: Option<u32>,
    /// Whether it came from `createInvoiceLink` rather than `sendInvoice`.
    pub link: bool,
    /// The invoice's `title`.
    pub title: String,
}

/// A payment to deliver as a `successful_payment` message
/// ([`FakeTelegram::successful_payment`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    /// The invoice's `payload`, echoed as `invoice_payload`.
    pub payload: String,
    /// `XTR` for Telegram Stars.
    pub currency: String,
    /// `total_amount`.
    pub total: u32,
    /// `telegram_payment_charge_id`, which `refundStarPayment` and
    /// `editUserStarSubscription` take.
    pub charge_id: String,
    /// `subscription_expiration_date` (Unix seconds), for subscriptions.
    pub subscription_expiration: Option<i64>,
    /// `is_recurring`: a subscription payment.
    pub recurring: bool,
    /// `is_first_recurring`: the first payment of a subscription.
    pub first_recurring: bool,
}

impl Payment {
    /// A one-off payment of `total` Stars (`XTR`).
    pub fn stars(payload: impl Into<String>, total: u32, charge_id: impl Into<String>) -> Self {
        Self {
            payload: payload.into(),
            currency: "XTR".to_owned(),
            total,
            charge_id: charge_id.into(),
            subscription_expiration: None,
            recurring: false,
            first_recurring: false,
        }
    }
}

/// What the fake knows about payments.
#[derive(Default)]
struct Payments {
    invoices: Vec<Invoice>,
    next_link: u32,
    next_query: u64,
    /// Charge id → the user it was delivered to via `successful_payment`.
    delivered: HashMap<String, i64>,
    refunded: HashSet<String>,
    /// Charge id → `is_canceled` of the last `editUserStarSubscription`.
    subscriptions: HashMap<String, bool>,
}

impl Payments {
    /// `refundStarPayment`: `Err` holds the Bot API's error answer.
    fn refund(&mut self, params: &Value) -> Result<Value, Value> {
        let user = int_param(params, "user_id");
        let charge = str_param(params, "telegram_payment_charge_id").unwrap_or_default();
        let bad = |what: &str| json!({"ok": false, "error_code": 400, "description": format!("Bad Request: {what}")});
        let delivered_to = self.delivered.get(&charge).copied();
        let known = match delivered_to {
            Some(to) => user == Some(to),
            None => self.refunded.contains(&charge),
        };
        if !known {
            return Err(bad("CHARGE_NOT_FOUND"));
        }
        if !self.refunded.insert(charge) {
            return Err(bad("CHARGE_ALREADY_REFUNDED"));
        }
        Ok(json!(true))
    }
}

#[derive(Default)]
struct Inner {
    updates: Mutex<Vec<Value>>,
    next_update: AtomicI64,
    next_message: AtomicI32,
    calls: Mutex<Vec<Call>>,
    new_update: Notify,
    new_call: Notify,
    /// method → retry_after answers still to give.
    throttle: Mutex<HashMap<String, u32>>,
    refused: AtomicI32,
    /// method → 500 answers still to give.
    failing: Mutex<HashMap<String, u32>>,
    failed: AtomicI32,
    /// Chats whose user blocked the bot, and how often they were written to.
    blocked: Mutex<HashMap<i64, u32>>,
    /// method → HTTP 502 answers still to give.
    bad_gateway: Mutex<HashMap<String, u32>>,
    limits: Mutex<Option<Limiter>>,
    rate_limited: AtomicI32,
    payments: Mutex<Payments>,
}

/// Telegram's message limits, enforced strictly on arrival.
#[derive(Debug)]
struct Limiter {
    per_sec: usize,
    chat_gap: Duration,
    /// Arrival times of the messages accepted in the last second.
    recent: VecDeque<Instant>,
    last_in_chat: HashMap<i64, Instant>,
}

impl Limiter {
    /// Accepts a message to `chat` now, or says how many seconds to wait.
    fn admit(&mut self, chat: Option<i64>, now: Instant) -> Result<(), u64> {
        let second = Duration::from_secs(1);
        while self
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= second)
        {
            self.recent.pop_front();
        }
        if self.recent.len() >= self.per_sec {
            let oldest = self.recent.front().copied().unwrap_or(now);
            let wait = second.saturating_sub(now.duration_since(oldest));
            return Err(wait.as_secs_f64().ceil().max(1.0) as u64);
        }
        if let Some(chat) = chat
            && let Some(last) = self.last_in_chat.get(&chat)
            && now.duration_since(*last) < self.chat_gap
        {
            let wait = self.chat_gap - now.duration_since(*last);
            return Err(wait.as_secs_f64().ceil().max(1.0) as u64);
        }
        self.recent.push_back(now);
        if let Some(chat) = chat {
            self.last_in_chat.insert(chat, now);
        }
        Ok(())
    }
}

/// Messages, as Telegram's limits count them: every `send*` (`sendInvoice`
/// included) but chat actions. Other payment methods are not messages.
fn is_message(method: &str) -> bool {
    (method.starts_with("send") && method != "sendchataction")
        || matches!(method, "forwardmessage" | "copymessage")
}

/// The fake Bot API server; it stops when the last clone is dropped.
#[derive(Clone)]
pub struct FakeTelegram {
    /// The base URL to give the bot as its Bot API server.
    pub url: String,
    inner: Arc<Inner>,
    _stop: Arc<oneshot::Sender<()>>,
}

impl std::fmt::Debug for FakeTelegram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeTelegram")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// The bot's own user id, as `getMe` answers it.
pub const BOT_ID: i64 = 7_000_000;

fn chat_json(id: i64) -> Value {
    if id > 0 {
        json!({"id": id, "type": "private", "first_name": format!("User{id}")})
    } else {
        json!({"id": id, "type": "group", "title": "Some group"})
    }
}

fn user_json(id: i64, lang: &str) -> Value {
    json!({"id": id, "is_bot": false, "first_name": format!("User{id}"), "language_code": lang})
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .try_into()
        .unwrap()
}

impl FakeTelegram {
    /// Serves the fake on an ephemeral port of 127.0.0.1.
    pub async fn start() -> Self {
        let inner = Arc::new(Inner {
            next_update: AtomicI64::new(1),
            next_message: AtomicI32::new(1),
            ..Inner::default()
        });
        let app = Router::new()
            .route("/{token}/{method}", post(handle))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        Self {
            url,
            inner,
            _stop: Arc::new(tx),
        }
    }

    /// Queues `update` under the next update id and returns it as queued.
    fn push(&self, mut update: Value) -> Value {
        let id = self.inner.next_update.fetch_add(1, Ordering::SeqCst);
        update["update_id"] = json!(id);
        self.inner.updates.lock().unwrap().push(update.clone());
        self.inner.new_update.notify_waiters();
        update
    }

    /// A text message from user `user` in chat `chat` (private when equal).
    pub fn text_in(&self, user: i64, chat: i64, text: &str, lang: &str) {
        let mut message = json!({
            "message_id": self.inner.next_message.fetch_add(1, Ordering::SeqCst),
            "date": now(),
            "chat": chat_json(chat),
            "from": user_json(user, lang),
            "text": text,
        });
        if text.starts_with('/') {
            let len = text.find(' ').unwrap_or(text.len());
            message["entities"] = json!([{"type": "bot_command", "offset": 0, "length": len}]);
        }
        self.push(json!({ "message": message }));
    }

    /// A text message from `user` in their private chat, in English.
    pub fn text(&self, user: i64, text: &str) {
        self.text_in(user, user, text, "en");
    }

    /// A sticker from `user` in their private chat.
    pub fn sticker(&self, user: i64) {
        self.push(json!({"message": {
            "message_id": self.inner.next_message.fetch_add(1, Ordering::SeqCst),
            "date": now(),
            "chat": chat_json(user),
            "from": user_json(user, "en"),
            "sticker": {"file_id": "stk", "file_unique_id": "stku", "type": "regular",
                        "width": 512, "height": 512, "is_animated": false, "is_video": false}
        }}));
    }

    /// A button press on message `message_id` in `chat`.
    pub fn press(&self, user: i64, chat: i64, message_id: i32, data: &str) {
        let cb = self.inner.next_update.load(Ordering::SeqCst);
        self.push(json!({"callback_query": {
            "id": format!("cb{cb}"),
            "from": user_json(user, "en"),
            "chat_instance": "ci",
            "data": data,
            "message": {
                "message_id": message_id,
                "date": now(),
                "chat": chat_json(chat),
                "from": {"id": BOT_ID, "is_bot": true, "first_name": "vpnctl", "username": "test_bot"},
                "text": "keyboard"
            }
        }}));
    }

    /// The next `n` answers to `method` are 429 with `retry_after`.
    pub fn throttle(&self, method: &str, n: u32) {
        self.inner
            .throttle
            .lock()
            .unwrap()
            .insert(method.to_lowercase(), n);
    }

    /// How many calls were answered 429 because of [`FakeTelegram::throttle`].
    pub fn refused(&self) -> i32 {
        self.inner.refused.load(Ordering::SeqCst)
    }

    /// The next `n` answers to `method` are 500 Internal Server Error.
    pub fn fail(&self, method: &str, n: u32) {
        self.inner
            .failing
            .lock()
            .unwrap()
            .insert(method.to_lowercase(), n);
    }

    /// The next `n` answers to `method` are an HTTP 502 with an HTML body, as a
    /// proxy in front of the Bot API sends them.
    pub fn bad_gateway(&self, method: &str, n: u32) {
        self.inner
            .bad_gateway
            .lock()
            .unwrap()
            .insert(method.to_lowercase(), n);
    }

    /// From now on, messages beyond `per_sec` in any second overall, or closer
    /// than `chat_gap` in one chat, get 429 with `retry_after`.
    pub fn enforce_limits(&self, per_sec: usize, chat_gap: Duration) {
        *self.inner.limits.lock().unwrap() = Some(Limiter {
            per_sec,
            chat_gap,
            recent: VecDeque::new(),
            last_in_chat: HashMap::new(),
        });
    }

    /// How many messages were refused for going over the enforced limits.
    pub fn rate_limited(&self) -> i32 {
        self.inner.rate_limited.load(Ordering::SeqCst)
    }

    /// How many calls were answered with a 500.
    pub fn failed(&self) -> i32 {
        self.inner.failed.load(Ordering::SeqCst)
    }

    /// From now on, sends to `chat` get 403 "bot was blocked by the user".
    pub fn block(&self, chat: i64) {
        self.inner.blocked.lock().unwrap().insert(chat, 0);
    }

    /// How many sends to the blocked `chat` were refused.
    pub fn blocked_attempts(&self, chat: i64) -> u32 {
        self.inner
            .blocked
            .lock()
            .unwrap()
            .get(&chat)
            .copied()
            .unwrap_or(0)
    }

    /// The number of calls so far, to wait for calls after it.
    pub fn mark(&self) -> usize {
        self.inner.calls.lock().unwrap().len()
    }

    /// Every recorded call, in order of arrival.
    pub fn calls(&self) -> Vec<Call> {
        self.inner.calls.lock().unwrap().clone()
    }

    /// Waits for the first call after `mark` that matches `pred`.
    pub async fn wait_after(
        &self,
        mark: usize,
        timeout: Duration,
        pred: impl Fn(&Call) -> bool,
    ) -> Call {
        let deadline = Instant::now() + timeout;
        loop {
            let notified = self.inner.new_call.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(c) = self.inner.calls.lock().unwrap()[mark..]
                .iter()
                .find(|c| pred(c))
            {
                return c.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "timed out waiting for a call; calls: {:#?}",
                &self.calls()[mark..]
            );
            let _ = tokio::time::timeout(left, notified).await;
        }
    }

    /// Waits for the next message (or document/photo) sent to `chat` after `mark`.
    pub async fn reply(&self, mark: usize, chat: i64, method: &str) -> Call {
        let method = method.to_lowercase();
        self.wait_after(mark, Duration::from_secs(10), |c| {
            c.chat_id == Some(chat) && c.method == method
        })
        .await
    }

    /// A `pre_checkout_query` from `user` (English) for an invoice with
    /// `payload`; returns the query id the bot must answer.
    pub fn pre_checkout(&self, user: i64, payload: &str, currency: &str, total: u32) -> String {
        self.pre_checkout_in(user, "en", payload, currency, total)
    }

    /// [`FakeTelegram::pre_checkout`] from a user with language `lang`.
    pub fn pre_checkout_in(
        &self,
        user: i64,
        lang: &str,
        payload: &str,
        currency: &str,
        total: u32,
    ) -> String {
        let id = {
            let mut payments = self.inner.payments.lock().unwrap();
            payments.next_query += 1;
            format!("pcq{}", payments.next_query)
        };
        self.push(json!({"pre_checkout_query": {
            "id": id,
            "from": user_json(user, lang),
            "currency": currency,
            "total_amount": total,
            "invoice_payload": payload,
        }}));
        id
    }

    /// Waits for the `answerPreCheckoutQuery` call for `query_id` after `mark`.
    pub async fn pre_checkout_answer(
        &self,
        mark: usize,
        query_id: &str,
        timeout: Duration,
    ) -> Call {
        self.wait_after(mark, timeout, |c| {
            c.method == "answerprecheckoutquery"
                && c.str_param("pre_checkout_query_id").as_deref() == Some(query_id)
        })
        .await
    }

    /// A `successful_payment` message from `user` in their private chat; the
    /// charge can then be refunded once. Returns the update as queued (with its
    /// `update_id`), for [`FakeTelegram::redeliver`].
    pub fn successful_payment(&self, user: i64, payment: &Payment) -> Value {
        let mut paid = json!({
            "currency": payment.currency,
            "total_amount": payment.total,
            "invoice_payload": payment.payload,
            "telegram_payment_charge_id": payment.charge_id,
            // Stars payments go through no provider.
            "provider_payment_charge_id": if payment.currency == "XTR" {
                String::new()
            } else {
                format!("provider_{}", payment.charge_id)
            },
        });
        if let Some(expiration) = payment.subscription_expiration {
            paid["subscription_expiration_date"] = json!(expiration);
        }
        if payment.recurring {
            paid["is_recurring"] = json!(true);
        }
        if payment.first_recurring {
            paid["is_first_recurring"] = json!(true);
        }
        self.inner
            .payments
            .lock()
            .unwrap()
            .delivered
            .insert(payment.charge_id.clone(), user);
        self.push(json!({"message": {
            "message_id": self.inner.next_message.fetch_add(1, Ordering::SeqCst),
            "date": now(),
            "chat": chat_json(user),
            "from": user_json(user, "en"),
            "successful_payment": paid,
        }}))
    }

    /// Queues a copy of an earlier `update` under a new update id, as when
    /// Telegram delivers an update again.
    pub fn redeliver(&self, update: &Value) {
        let mut update = update.clone();
        if let Some(fields) = update.as_object_mut() {
            fields.remove("update_id");
        }
        self.push(update);
    }

    /// A `refunded_payment` message from `user` in their private chat, as
    /// Telegram sends when a Stars payment is refunded outside the bot; the
    /// charge counts as refunded from now on. Returns the update as queued.
    pub fn refunded_payment(&self, user: i64, charge_id: &str, payload: &str, total: u32) -> Value {
        self.inner
            .payments
            .lock()
            .unwrap()
            .refunded
            .insert(charge_id.to_owned());
        self.push(json!({"message": {
            "message_id": self.inner.next_message.fetch_add(1, Ordering::SeqCst),
            "date": now(),
            "chat": chat_json(user),
            "from": user_json(user, "en"),
            "refunded_payment": {
                "currency": "XTR",
                "total_amount": total,
                "invoice_payload": payload,
                "telegram_payment_charge_id": charge_id,
            },
        }}))
    }

    /// The invoices sent and invoice links made, in order.
    pub fn invoices(&self) -> Vec<Invoice> {
        self.inner.payments.lock().unwrap().invoices.clone()
    }

    /// Whether charge `charge` was refunded (by the bot or outside it).
    pub fn refunded(&self, charge: &str) -> bool {
        self.inner
            .payments
            .lock()
            .unwrap()
            .refunded
            .contains(charge)
    }

    /// `is_canceled` of the last `editUserStarSubscription` for `charge`, if any.
    pub fn subscription_canceled(&self, charge: &str) -> Option<bool> {
        self.inner
            .payments
            .lock()
            .unwrap()
            .subscriptions
            .get(charge)
            .copied()
    }
}

/// An `application/x-www-form-urlencoded` body as string fields.
fn parse_form(body: &[u8]) -> Value {
    fn decode(s: &[u8]) -> String {
        let mut out = Vec::with_capacity(s.len());
        let mut i = 0;
        while i < s.len() {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match (s[i], hex) {
                (b'+', _) => out.push(b' '),
                (b'%', Some(byte)) => {
                    out.push(byte);
                    i += 2;
                }
                (b, _) => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    let mut params = serde_json::Map::new();
    for pair in body.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
        let (key, value) = match pair.iter().position(|b| *b == b'=') {
            Some(eq) => (&pair[..eq], &pair[eq + 1..]),
            None => (pair, &[][..]),
        };
        params.insert(decode(key), Value::String(decode(value)));
    }
    Value::Object(params)
}

fn parse_multipart(content_type: &str, body: &[u8]) -> (Value, Vec<FilePart>) {
    let boundary = content_type
        .split(';')
        .find_map(|p| p.trim().strip_prefix("boundary="))
        .unwrap_or_default()
        .trim_matches('"');
    let delimiter = format!("--{boundary}");
    let mut params = serde_json::Map::new();
    let mut files = Vec::new();
    let d = delimiter.as_bytes();
    let mut starts = Vec::new();
    let mut i = 0;
    while i + d.len() <= body.len() {
        if &body[i..i + d.len()] == d {
            starts.push(i);
            i += d.len();
        } else {
            i += 1;
        }
    }
    for pair in starts.windows(2) {
        let part = &body[pair[0] + d.len()..pair[1]];
        let part = part.strip_prefix(b"\r\n").unwrap_or(part);
        let part = part.strip_suffix(b"\r\n").unwrap_or(part);
        let Some(split) = part.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let headers = String::from_utf8_lossy(&part[..split]).to_string();
        let content = part[split + 4..].to_vec();
        let field = |key: &str| {
            headers.split(';').find_map(|h| {
                h.trim()
                    .strip_prefix(&format!("{key}="))
                    .map(|v| v.trim_matches('"').to_owned())
            })
        };
        let name = field("name").unwrap_or_default();
        match field("filename") {
            Some(file_name) => files.push((name, Some(file_name), content)),
            None => {
                params.insert(
                    name,
                    Value::String(String::from_utf8_lossy(&content).into_owned()),
                );
            }
        }
    }
    (Value::Object(params), files)
}

fn ok(result: Value) -> Response {
    Json(json!({"ok": true, "result": result})).into_response()
}

fn refuse(answer: Value) -> Response {
    Json(answer).into_response()
}

async fn handle(
    State(inner): State<Arc<Inner>>,
    Path((_token, method)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let arrived = Instant::now();
    let method = method.to_lowercase();
    // Opt-in trace of method names only (bodies may hold configs or codes).
    if std::env::var_os("FAKE_TG_TRACE").is_some() {
        eprintln!("fake tg <- {method}");
    }
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let (params, files) = if content_type.starts_with("multipart/form-data") {
        parse_multipart(&content_type, &body)
    } else if content_type.starts_with("application/x-www-form-urlencoded") {
        (parse_form(&body), Vec::new())
    } else if body.is_empty() {
        (json!({}), Vec::new())
    } else {
        (
            serde_json::from_slice(&body).unwrap_or(json!({})),
            Vec::new(),
        )
    };

    if method == "getupdates" {
        let offset = params
            .get("offset")
            .and_then(|v| {
                v.as_i64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            })
            .unwrap_or(0);
        let deadline = Instant::now() + Duration::from_millis(250);
        loop {
            let notified = inner.new_update.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut queue = inner.updates.lock().unwrap();
                queue.retain(|u| u["update_id"].as_i64().unwrap_or(0) >= offset);
                if !queue.is_empty() {
                    if std::env::var_os("FAKE_TG_TRACE").is_some() {
                        eprintln!("fake tg -> {} updates from {offset}", queue.len());
                    }
                    let batch: Vec<Value> = queue.iter().take(100).cloned().collect();
                    return ok(Value::Array(batch));
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return ok(json!([]));
            }
            let _ = tokio::time::timeout(left, notified).await;
        }
    }

    {
        let mut throttle = inner.throttle.lock().unwrap();
        if let Some(n) = throttle.get_mut(&method)
            && *n > 0
        {
            *n -= 1;
            inner.refused.fetch_add(1, Ordering::SeqCst);
            return refuse(json!({
                "ok": false, "error_code": 429,
                "description": "Too Many Requests: retry after 1",
                "parameters": {"retry_after": 1}
            }));
        }
    }

    {
        let mut failing = inner.failing.lock().unwrap();
        if let Some(n) = failing.get_mut(&method)
            && *n > 0
        {
            *n -= 1;
            inner.failed.fetch_add(1, Ordering::SeqCst);
            return refuse(json!({
                "ok": false, "error_code": 500, "description": "Internal Server Error"
            }));
        }
    }

    {
        let mut bad = inner.bad_gateway.lock().unwrap();
        if let Some(n) = bad.get_mut(&method)
            && *n > 0
        {
            *n -= 1;
            inner.failed.fetch_add(1, Ordering::SeqCst);
            return (
                StatusCode::BAD_GATEWAY,
                [("content-type", "text/html")],
                "<html><body><h1>502 Bad Gateway</h1></body></html>",
            )
                .into_response();
        }
    }

    let chat_id = params.get("chat_id").and_then(|v| {
        v.as_i64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
    });
    if let Some(chat) = chat_id
        && method.starts_with("send")
        && let Some(n) = inner.blocked.lock().unwrap().get_mut(&chat)
    {
        *n += 1;
        return refuse(json!({
            "ok": false, "error_code": 403,
            "description": "Forbidden: bot was blocked by the user"
        }));
    }
    if is_message(&method)
        && let Some(limiter) = inner.limits.lock().unwrap().as_mut()
        && let Err(retry_after) = limiter.admit(chat_id, arrived)
    {
        inner.rate_limited.fetch_add(1, Ordering::SeqCst);
        return refuse(json!({
            "ok": false, "error_code": 429,
            "description": format!("Too Many Requests: retry after {retry_after}"),
            "parameters": {"retry_after": retry_after}
        }));
    }
    let bot = json!({"id": BOT_ID, "is_bot": true, "first_name": "vpnctl", "username": "test_bot"});
    let mut message_id = None;
    // An error answer (`ok: false`) to give instead of `result`.
    let mut error = None;
    let result = match method.as_str() {
        "getme" => json!({
            "id": BOT_ID, "is_bot": true, "first_name": "vpnctl", "username": "test_bot",
            "can_join_groups": true, "can_read_all_group_messages": false,
            "supports_inline_queries": false, "can_connect_to_business": false,
            "has_main_web_app": false
        }),
        "sendmessage" | "senddocument" | "sendphoto" | "editmessagetext" => {
            let id = if method == "editmessagetext" {
                params
                    .get("message_id")
                    .and_then(Value::as_i64)
                    .and_then(|v| i32::try_from(v).ok())
                    .unwrap_or(0)
            } else {
                inner.next_message.fetch_add(1, Ordering::SeqCst)
            };
            message_id = Some(id);
            let mut m = json!({
                "message_id": id,
                "date": now(),
                "chat": chat_json(chat_id.unwrap_or(0)),
                "from": bot,
            });
            match method.as_str() {
                "senddocument" => {
                    let (_, name, bytes) = files.first().cloned().unwrap_or_default();
                    m["document"] = json!({"file_id": format!("doc{id}"), "file_unique_id": format!("docu{id}"),
                        "file_name": name, "file_size": bytes.len()});
                }
                "sendphoto" => {
                    m["photo"] = json!([{"file_id": format!("ph{id}"), "file_unique_id": format!("phu{id}"),
                        "width": 512, "height": 512}]);
                }
                _ => m["text"] = params.get("text").cloned().unwrap_or(json!("")),
            }
            m
        }
        "sendinvoice" => {
            let id = inner.next_message.fetch_add(1, Ordering::SeqCst);
            message_id = Some(id);
            let text = |key| str_param(&params, key).unwrap_or_default();
            let invoice = Invoice {
                chat_id,
                payload: text("payload"),
                currency: text("currency"),
                total: prices_total(&params),
                subscription_period: None,
                link: false,
                title: text("title"),
            };
            let m = json!({
                "message_id": id,
                "date": now(),
                "chat": chat_json(chat_id.unwrap_or(0)),
                "from": bot,
                "invoice": {
                    "title": invoice.title,
                    "description": text("description"),
                    "start_parameter": text("start_parameter"),
                    "currency": invoice.currency,
                    "total_amount": invoice.total,
                },
            });
            inner.payments.lock().unwrap().invoices.push(invoice);
            m
        }
        "createinvoicelink" => {
            let text = |key| str_param(&params, key).unwrap_or_default();
            let mut payments = inner.payments.lock().unwrap();
            payments.next_link += 1;
            let link = format!("https://t.me/$fake_invoice_{}", payments.next_link);
            payments.invoices.push(Invoice {
                chat_id: None,
                payload: text("payload"),
                currency: text("currency"),
                total: prices_total(&params),
                subscription_period: int_param(&params, "subscription_period")
                    .and_then(|s| u32::try_from(s).ok()),
                link: true,
                title: text("title"),
            });
            json!(link)
        }
        "refundstarpayment" => match inner.payments.lock().unwrap().refund(&params) {
            Ok(result) => result,
            Err(answer) => {
                error = Some(answer);
                Value::Null
            }
        },
        "edituserstarsubscription" => {
            if let Some(charge) = str_param(&params, "telegram_payment_charge_id") {
                let canceled = bool_param(&params, "is_canceled").unwrap_or(false);
                inner
                    .payments
                    .lock()
                    .unwrap()
                    .subscriptions
                    .insert(charge, canceled);
            }
            json!(true)
        }
        "getwebhookinfo" => {
            json!({"url": "", "has_custom_certificate": false, "pending_update_count": 0})
        }
        _ => json!(true),
    };
    inner.calls.lock().unwrap().push(Call {
        method,
        chat_id,
        params,
        files,
        message_id,
        at: arrived,
    });
    inner.new_call.notify_waiters();
    match error {
        Some(answer) => refuse(answer),
        None => ok(result),
    }
}
