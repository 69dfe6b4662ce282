//! Admin alerts to an HTTP endpoint (a chat bridge, an incident tool): every
//! notification for [`Recipient::Admins`] is POSTed as JSON, one per request, with a
//! human `text` field added. Delivery is at least once: the webhook's outbox cursor
//! ([`Consumer::Webhook`]) only moves past a notification after a 2xx answer (or when
//! it is for a user, which the webhook skips). A failure stops the round and the
//! next attempt waits ([`vpnctl_daemon::Backoff`]: doubling from one sweep interval up
//! to five minutes, with jitter).
//!
//! The URL may carry a secret (a token in the path or query), so it is never logged
//! or printed whole: [`WebhookUrl`]'s `Debug`/`Display` show scheme and host only,
//! and request errors are stripped of their URL before they are logged.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;
use vpnctl_core::{Consumer, Message, Notification, Recipient, Vpnctl};
use vpnctl_daemon::Backoff;

use crate::error::blocking;

/// Longest wait between failed attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// One POST may take this long.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Notifications read from the outbox at a time.
const BATCH: usize = 100;

/// An `http(s)` URL whose printed forms hide everything after the host.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookUrl(reqwest::Url);

impl WebhookUrl {
    /// `host[:port]`, for logs.
    pub fn host(&self) -> String {
        let host = self.0.host_str().unwrap_or("?");
        match self.0.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        }
    }

    /// The full URL, secret included: for the request only.
    pub fn expose(&self) -> &reqwest::Url {
        &self.0
    }
}

impl FromStr for WebhookUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        // The parse error never quotes the input, which may hold a token.
        let url = reqwest::Url::parse(s.trim()).map_err(|e| format!("not a URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("the alert webhook URL must be http:// or https://".into());
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err("the alert webhook URL has no host".into());
        }
        Ok(Self(url))
    }
}

impl fmt::Display for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}/***", self.0.scheme(), self.host())
    }
}

impl fmt::Debug for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WebhookUrl({self})")
    }
}

/// The whole URL, secret included: only for merging settings layers
/// ([`vpnctl_daemon::settings::layered`]); never serialize it into anything shown.
impl Serialize for WebhookUrl {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for WebhookUrl {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The JSON body of one POST: the notification as the API shows it, plus `text`.
#[derive(Debug, Serialize)]
pub struct Alert<'a> {
    #[serde(flatten)]
    pub notification: &'a Notification,
    pub text: String,
}

/// A one-line English summary of an admin notification.
pub fn alert_text(message: &Message) -> String {
    match message {
        Message::NodeHealth {
            name,
            from,
            to,
            reason,
            ..
        } => format!("vpnctl: node {name} is {to} (was {from}): {reason}"),
        Message::NodeDrift { name, removed, .. } => format!(
            "vpnctl: node {name} removed {removed} peer(s) that were not in its desired state"
        ),
        Message::NodeEvacuated {
            name,
            moved,
            failed,
            ..
        } => format!("vpnctl: node {name} evacuated: {moved} device(s) moved, {failed} failed"),
        Message::BackupTaken { file, bytes } => {
            format!("vpnctl: scheduled backup {file} written ({bytes} bytes)")
        }
        Message::PaymentReceived {
            payment,
            user,
            user_name,
            plan,
            stars,
            ..
        } => format!(
            "vpnctl: {user_name} (u{user}) paid {stars} stars for {} (payment {payment})",
            plan.en
        ),
        Message::RefundRequested { payment, stars, .. } => {
            format!("vpnctl: refund of payment {payment} ({stars} stars) requested")
        }
        Message::PaymentRefunded {
            payment,
            user_name,
            stars,
            ..
        } => format!("vpnctl: {stars} stars of payment {payment} refunded to {user_name}"),
        Message::RefundFailed { payment, reason } => {
            format!("vpnctl: Telegram refused the refund of payment {payment}: {reason}")
        }
        other => format!("vpnctl: {other:?}"),
    }
}

/// What one delivery round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delivered {
    pub sent: u32,
    /// User notifications passed over.
    pub skipped: u32,
    /// Alerts the receiver rejected for good (a 4xx): logged and passed over.
    pub refused: u32,
    pub failed: bool,
}

/// The webhook sender and its retry state.
#[derive(Debug)]
pub struct Webhook {
    url: WebhookUrl,
    http: reqwest::Client,
    backoff: Backoff,
    failures: u32,
    retry_at: Option<Instant>,
}

impl Webhook {
    pub fn new(url: WebhookUrl, base_backoff: Duration) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            // A redirect would send the alert (and maybe the token) somewhere else.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("vpnctld/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| e.without_url().to_string())?;
        Ok(Self {
            url,
            http,
            backoff: Backoff::new(base_backoff.max(Duration::from_millis(10)), MAX_BACKOFF),
            failures: 0,
            retry_at: None,
        })
    }

    pub fn host(&self) -> String {
        self.url.host()
    }

    /// Sends what the outbox holds for the webhook, until done, a failure, or
    /// `budget` is spent (the rest waits for the next round).
    pub async fn deliver(&mut self, vpn: &Vpnctl, budget: Duration) -> Delivered {
        let mut out = Delivered::default();
        if self.retry_at.is_some_and(|at| Instant::now() < at) {
            return out;
        }
        let deadline = Instant::now() + budget;
        loop {
            let reader = vpn.clone();
            let batch = match blocking(move || reader.notifications(Consumer::Webhook, BATCH)).await
            {
                Ok(batch) => batch,
                Err(e) => {
                    tracing::error!(code = %e.code, "reading the outbox for the webhook failed");
                    return out;
                }
            };
            let full = batch.len() == BATCH;
            let mut handled = None;
            let mut stop = false;
            for n in &batch {
                if Instant::now() >= deadline {
                    stop = true;
                    break;
                }
                if n.recipient != Recipient::Admins {
                    out.skipped += 1;
                    handled = Some(n.id);
                    continue;
                }
                match self.post(n).await {
                    Ok(()) => {
                        out.sent += 1;
                        handled = Some(n.id);
                        self.failures = 0;
                        self.retry_at = None;
                    }
                    Err(Failure::Refused(why)) => {
                        // The receiver will never take this one (400, 404, 413…):
                        // retrying would hold back every later alert.
                        tracing::warn!(
                            host = %self.url.host(),
                            notification = n.id,
                            error = %why,
                            "alert webhook refused an alert; skipping it"
                        );
                        out.refused += 1;
                        handled = Some(n.id);
                    }
                    Err(Failure::Retry(why)) => {
                        self.failures = self.failures.saturating_add(1);
                        let wait = self.backoff.delay(self.failures);
                        self.retry_at = Some(Instant::now() + wait);
                        tracing::warn!(
                            host = %self.url.host(),
                            notification = n.id,
                            failures = self.failures,
                            retry_in_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                            error = %why,
                            "alert webhook delivery failed"
                        );
                        out.failed = true;
                        stop = true;
                        break;
                    }
                }
            }
            if let Some(upto) = handled
                && !ack(vpn, Consumer::Webhook, upto).await
            {
                return out;
            }
            if stop || !full {
                return out;
            }
        }
    }

    async fn post(&self, n: &Notification) -> Result<(), Failure> {
        let body = Alert {
            notification: n,
            text: alert_text(&n.message),
        };
        let response = self
            .http
            .post(self.url.expose().clone())
            .json(&body)
            .send()
            .await
            .map_err(|e| Failure::Retry(e.without_url().to_string()))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else if status.is_client_error()
            && status != reqwest::StatusCode::REQUEST_TIMEOUT
            && status != reqwest::StatusCode::TOO_MANY_REQUESTS
        {
            Err(Failure::Refused(format!("answered {status}")))
        } else {
            Err(Failure::Retry(format!("answered {status}")))
        }
    }
}

/// Why a POST did not land.
enum Failure {
    /// Worth another try later (network, 5xx, 408, 429).
    Retry(String),
    /// The receiver rejects this alert for good (other 4xx).
    Refused(String),
}

/// Without a webhook nobody reads its queue: move its cursor to the end so that the
/// outbox can be pruned once the bot has read it too.
pub async fn discard(vpn: &Vpnctl) {
    loop {
        let reader = vpn.clone();
        let batch = match blocking(move || reader.notifications(Consumer::Webhook, 1000)).await {
            Ok(batch) => batch,
            Err(e) => {
                tracing::error!(code = %e.code, "reading the webhook's outbox failed");
                return;
            }
        };
        let Some(last) = batch.last() else { return };
        if !ack(vpn, Consumer::Webhook, last.id).await || batch.len() < 1000 {
            // A failed acknowledgement would read the same batch forever.
            return;
        }
    }
}

/// Whether the acknowledgement was stored.
async fn ack(vpn: &Vpnctl, consumer: Consumer, upto: u64) -> bool {
    let writer = vpn.clone();
    match blocking(move || writer.ack_notifications(consumer, upto)).await {
        Ok(_) => true,
        Err(e) => {
            tracing::error!(code = %e.code, ?consumer, "acknowledging notifications failed");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_never_print_their_secret_parts() {
        let url: WebhookUrl = "https://hooks.example.com:8443/T0K3N/x?key=s3cret"
            .parse()
            .unwrap();
        for shown in [format!("{url}"), format!("{url:?}"), url.host()] {
            assert!(
                !shown.contains("T0K3N") && !shown.contains("s3cret"),
                "{shown}"
            );
            assert!(shown.contains("hooks.example.com"), "{shown}");
        }
        assert_eq!(url.host(), "hooks.example.com:8443");
        assert!("ftp://example.com/x".parse::<WebhookUrl>().is_err());
        assert!("not a url".parse::<WebhookUrl>().is_err());
        let err = "https://exa mple.com/T0K3N"
            .parse::<WebhookUrl>()
            .unwrap_err();
        assert!(!err.contains("T0K3N"), "{err}");
    }

    #[test]
    fn retries_wait_from_one_interval_up_to_five_minutes() {
        let hook = Webhook::new(
            "https://hooks.example.com/x".parse().unwrap(),
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(hook.backoff.ceiling(1), Duration::from_secs(10));
        assert_eq!(hook.backoff.ceiling(2), Duration::from_secs(20));
        assert_eq!(hook.backoff.ceiling(4), Duration::from_secs(80));
        assert_eq!(hook.backoff.ceiling(10), MAX_BACKOFF);
        assert_eq!(hook.backoff.ceiling(u32::MAX), MAX_BACKOFF);
    }

    #[test]
    fn alert_bodies_carry_the_notification_and_a_text() {
        let n = Notification {
            id: 7,
            at: vpnctl_core::Timestamp(1_000),
            recipient: Recipient::Admins,
            message: Message::NodeHealth {
                node: vpnctl_core::NodeId(3),
                name: "fra-1".into(),
                from: vpnctl_core::Health::Up,
                to: vpnctl_core::Health::Down,
                reason: "no report for 95 s".into(),
            },
        };
        let body = serde_json::to_value(Alert {
            notification: &n,
            text: alert_text(&n.message),
        })
        .unwrap();
        assert_eq!(body["id"], 7);
        assert_eq!(body["kind"], "node_health");
        assert_eq!(body["to"], "down");
        assert_eq!(body["name"], "fra-1");
        assert_eq!(
            body["text"],
            "vpnctl: node fra-1 is down (was up): no report for 95 s"
        );
    }
}
