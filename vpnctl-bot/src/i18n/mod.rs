//! Every text the bot shows, in English and Russian: messages, captions, button
//! labels, the command list. Handlers never write a user-visible word themselves;
//! they pick a [`Text`] and [`Text::render`] words it in the reader's language.
//!
//! [`catalogue`] renders every text with sample values: docs/bot.md lists them for
//! a native speaker's review, and a test keeps that list current.

pub mod catalogue;
pub mod words;

use std::time::Duration;

use vpnctl_core::api::billing::CheckoutRefusal;
use vpnctl_core::transport::TransportKind;
use vpnctl_core::{Access, Availability, Health, Locale, Quota, QuotaPeriod, Timestamp};

use words::{
    DAYS, DAYS_FOR, DEVICES, DEVICES_UP_TO, STRAY_PEERS, ago, date, days_between, span, time_of_day,
};

/// One device line of `/status`.
#[derive(Debug, Clone)]
pub struct DeviceLine {
    pub device: String,
    pub server: String,
    /// Seconds since the device last connected (its last handshake), if the node
    /// reported one.
    pub connected_ago: Option<i64>,
    /// As the node counts them: `rx` is what the device sent.
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    /// The server's transport: which app the device needs.
    pub transport: TransportKind,
}

/// One server of `/servers` and of the `/get_config` keyboard.
#[derive(Debug, Clone)]
pub struct ServerLine {
    pub name: String,
    pub region: String,
    /// How full the server is: its devices against its capacity (core's figure).
    pub load_percent: u8,
    /// Core's mark: whether and how the server takes new devices.
    pub availability: Availability,
    pub transport: TransportKind,
}

/// The traffic lines of `/status`.
#[derive(Debug, Clone)]
pub struct UsageLine {
    /// The period `period_bytes` counts (calendar month without a quota).
    pub period: QuotaPeriod,
    pub period_bytes: u64,
    pub total_bytes: u64,
    /// The quota in bytes, if the user has one.
    pub limit: Option<u64>,
    /// When the period (and the quota) resets.
    pub resets: Timestamp,
}

/// A text to show; [`Text::render`] picks the language.
#[derive(Debug, Clone)]
pub enum Text<'a> {
    Help {
        admin: bool,
    },
    Welcome {
        until: Option<Timestamp>,
        devices: u32,
    },
    AlreadyMember,
    HowToGetAccess,
    InviteInvalid,
    InviteExpired,
    InviteUsedUp,
    /// A pasted invite link that opens another bot.
    OtherBotsLink {
        bot: &'a str,
    },
    TooManyAttempts,
    NoAccount,
    MembersOnly,
    AccessEnded,
    AccountDisabled,
    /// The traffic quota is used up; `until` when known.
    QuotaUsedUp {
        until: Option<Timestamp>,
    },
    /// The `/get_config` keyboard below the device limit.
    ChooseServer {
        devices: u64,
        limit: u32,
        resend: bool,
    },
    /// The `/get_config` keyboard at the device limit.
    ChooseAtLimit {
        limit: u32,
    },
    NewDeviceButton {
        server: &'a ServerLine,
    },
    ReplaceOnButton {
        server: &'a ServerLine,
    },
    ResendButton {
        device: &'a str,
        server: &'a str,
    },
    NoServers,
    /// A pressed server button whose server no longer takes devices.
    ServerGone {
        server: &'a str,
    },
    /// The keyboard, edited once the config is ready.
    ConfigFollows {
        device: &'a str,
        server: &'a str,
    },
    ConfigCaption {
        device: &'a str,
        server: &'a str,
        awg: bool,
    },
    /// The QR code's caption: how to import (into the WireGuard or the AmneziaWG
    /// app), and when both are deleted.
    QrCaption {
        delete_after: Option<Duration>,
        awg: bool,
    },
    /// The heading above a transport's servers in the `/get_config` keyboard.
    TransportHeading {
        transport: TransportKind,
    },
    /// The caption of a scheduled backup (or of one of its parts) in the admin chat.
    BackupFile {
        file: &'a str,
        /// From 1.
        part: u32,
        parts: u32,
        bytes: u64,
    },
    /// A pressed transport heading: when to choose it and which app it needs.
    TransportAbout {
        transport: TransportKind,
    },
    DeviceLimit {
        limit: u32,
        server: &'a str,
    },
    ReplaceButton {
        device: &'a str,
        server: &'a str,
    },
    CancelButton,
    Cancelled,
    ChooseDeviceToRotate,
    RotateDeviceButton {
        device: &'a str,
        server: &'a str,
    },
    NoDevices,
    ConfirmRotate {
        device: &'a str,
        server: &'a str,
    },
    RotateButton,
    Rotated {
        device: &'a str,
        server: &'a str,
    },
    RateLimited {
        wait: Duration,
    },
    Status {
        access: Access,
        now: Timestamp,
        usage: Option<&'a UsageLine>,
        devices: &'a [DeviceLine],
        limit: u32,
    },
    Servers {
        servers: &'a [ServerLine],
    },
    ChooseLanguage,
    LanguageButton {
        language: Locale,
    },
    LanguageSet,
    PrivateOnly,
    UnknownCommand,
    NotUnderstood,
    TooLong {
        max: usize,
    },
    ButtonInvalid,
    ButtonUsed,
    ButtonBusy,
    /// A button failed for a reason that passes: press it again.
    TryAgain,
    /// A command failed for a reason that passes.
    Unavailable,
    Failed,
    NoPrivateKey,
    NotConfigured,
    /// A new device exists but its config could not be sent.
    IssuedNotSent {
        device: &'a str,
    },
    /// Replacing: the old device is gone, the new one could not be made.
    RemovedNotIssued {
        device: &'a str,
    },
    /// The key was replaced but the new config could not be sent.
    RotatedNotSent {
        device: &'a str,
    },
    InviteCreated {
        link: &'a str,
        days: Option<u32>,
        devices: u32,
    },
    Alert {
        text: &'a str,
    },
    // Notifications to users.
    /// With `renew`, plans are on sale and a "Renew" button follows.
    AccessEndsSoon {
        until: Timestamp,
        now: Timestamp,
        renew: bool,
    },
    AccessEndedOn {
        until: Timestamp,
        renew: bool,
    },
    QuotaWarning {
        used: u64,
        limit: u64,
        resets: Timestamp,
    },
    QuotaExceeded {
        used: u64,
        limit: u64,
        resets: Timestamp,
    },
    QuotaRestored,
    /// A device was moved to another server. With `config_follows` it is the new
    /// config document's caption; without, it points to /get_config.
    DeviceMoved {
        device: &'a str,
        from: &'a str,
        to: &'a str,
        region: &'a str,
        config_follows: bool,
    },
    /// A device's server changed its transport or AmneziaWG settings. With
    /// `config_follows` it is the new config's caption; without, it points to
    /// /get_config.
    ConfigChanged {
        device: &'a str,
        server: &'a str,
        transport: TransportKind,
        config_follows: bool,
    },
    // Notifications to admins.
    NodeTransportChanged {
        name: &'a str,
        transport: TransportKind,
        devices: u32,
    },
    NodeHealthChanged {
        name: &'a str,
        from: Health,
        to: Health,
        reason: &'a str,
    },
    NodeDrift {
        name: &'a str,
        removed: u32,
    },
    NodeEvacuated {
        name: &'a str,
        moved: u32,
        failed: u32,
    },
    // Buying access.
    ChoosePlan,
    NoPlans,
    PlanButton {
        name: &'a str,
        days: u32,
        stars: u32,
    },
    RenewButton,
    /// The invoice's description (Telegram allows 255 characters).
    InvoiceDescription {
        days: u32,
        devices: u32,
        quota: Option<Quota>,
    },
    /// Why Telegram's checkout is refused (shown by Telegram in its payment form).
    CheckoutRefused {
        refusal: CheckoutRefusal,
    },
    /// The checkout could not be judged in time: nothing is charged, try again.
    CheckoutUnavailable,
    /// The payment arrived but is not applied yet; it will be.
    PaymentPending,
    Receipt {
        plan: &'a str,
        stars: u32,
        days: u32,
        until: Option<Timestamp>,
    },
    Refunded {
        stars: u32,
        until: Option<Timestamp>,
    },
    /// `/subscription` without one.
    NoSubscription,
    /// One Stars subscription in `/subscription`.
    SubscriptionInfo {
        plan: &'a str,
        stars: u32,
        until: Option<Timestamp>,
        cancelled: bool,
    },
    CancelRenewalButton,
    ResumeRenewalButton,
    /// The subscription's renewal was cancelled (or resumed) with Telegram.
    RenewalChanged {
        plan: &'a str,
        until: Option<Timestamp>,
        cancelled: bool,
    },
    /// `/paysupport` when the operator set no text.
    PaySupport,
    /// A text the operator wrote (their /paysupport or /terms), as written.
    Operator {
        text: &'a str,
    },
    /// `/terms` when the operator set no text.
    Terms,
    // Buying, to admins.
    PaymentNotice {
        user: &'a str,
        plan: &'a str,
        stars: u32,
    },
    RefundNotice {
        user: &'a str,
        stars: u32,
    },
    RefundFailedNotice {
        payment: u64,
        reason: &'a str,
    },
    /// A payment that cannot be applied (its order is unknown): needs a person.
    PaymentNotApplied {
        user: i64,
        stars: u32,
        charge: &'a str,
        reason: &'a str,
    },
}

/// "per month", "в месяц".
fn per_period(p: QuotaPeriod, l: Locale) -> &'static str {
    match (l, p) {
        (Locale::En, QuotaPeriod::Daily) => "per day",
        (Locale::En, QuotaPeriod::Weekly) => "per week",
        (Locale::En, QuotaPeriod::Monthly) => "per month",
        (Locale::Ru, QuotaPeriod::Daily) => "в день",
        (Locale::Ru, QuotaPeriod::Weekly) => "в неделю",
        (Locale::Ru, QuotaPeriod::Monthly) => "в месяц",
    }
}

/// A size in decimal units with one decimal: `8.0 GB`, `8,0 ГБ`.
pub fn size(n: u64, l: Locale) -> String {
    vpnctl_core::units::traffic(n, l)
}

fn health(h: Health, l: Locale) -> &'static str {
    match (h, l) {
        (Health::Unknown, Locale::En) => "unknown",
        (Health::Up, Locale::En) => "up",
        (Health::Degraded, Locale::En) => "degraded",
        (Health::Down, Locale::En) => "down",
        (Health::Unknown, Locale::Ru) => "неизвестно",
        (Health::Up, Locale::Ru) => "работает",
        (Health::Degraded, Locale::Ru) => "работает с перебоями",
        (Health::Down, Locale::Ru) => "не работает",
    }
}

fn health_mark(h: Health) -> &'static str {
    match h {
        Health::Up => "🟢",
        Health::Degraded => "🟠",
        Health::Down => "🔴",
        Health::Unknown => "⚪",
    }
}

/// How a server's availability reads after its load ("" when it simply works).
fn availability(a: Availability, l: Locale) -> &'static str {
    match (a, l) {
        (Availability::Up, _) => "",
        (Availability::Degraded, Locale::En) => "⚠️ unstable",
        (Availability::Degraded, Locale::Ru) => "⚠️ работает с перебоями",
        (Availability::Full, Locale::En) => "no room for new devices",
        (Availability::Full, Locale::Ru) => "мест нет",
        (Availability::Down | Availability::Unknown, Locale::En) => "not available now",
        (Availability::Down | Availability::Unknown, Locale::Ru) => "сейчас недоступен",
        (
            Availability::Draining | Availability::Disabled | Availability::NotEnrolled,
            Locale::En,
        ) => "takes no new devices",
        (
            Availability::Draining | Availability::Disabled | Availability::NotEnrolled,
            Locale::Ru,
        ) => "новых устройств не принимает",
    }
}

/// "fra1 (Frankfurt), 12% full", with a mark when the server is not simply up.
fn server_label(s: &ServerLine, l: Locale) -> String {
    let load = match l {
        Locale::En => format!("{}% full", s.load_percent),
        Locale::Ru => format!("заполнен на {}%", s.load_percent),
    };
    let mark = availability(s.availability, l);
    let mark = if mark.is_empty() {
        String::new()
    } else {
        format!(", {mark}")
    };
    format!("{} ({}), {load}{mark}", s.name, s.region)
}

/// When access ends, from `now`, agreeing with the date shown: "today at 14:05
/// UTC", "tomorrow, 2 Jan 2027", "in 3 days, on 4 Jan 2027".
fn ends(until: Timestamp, now: Timestamp, l: Locale) -> String {
    match (days_between(now, until), l) {
        (..=0, Locale::En) => format!("today at {}", time_of_day(until)),
        (..=0, Locale::Ru) => format!("сегодня в {}", time_of_day(until)),
        (1, Locale::En) => format!("tomorrow, {}", date(until, l)),
        (1, Locale::Ru) => format!("завтра, {}", date(until, l)),
        (n, Locale::En) => format!(
            "in {}, on {}",
            DAYS.count(n.unsigned_abs(), l),
            date(until, l)
        ),
        (n, Locale::Ru) => format!(
            "через {}, {}",
            DAYS.count(n.unsigned_abs(), l),
            date(until, l)
        ),
    }
}

/// The access line of `/status`.
fn access_line(access: Access, now: Timestamp, l: Locale) -> String {
    match (access, l) {
        (Access::Active { until: None }, Locale::En) => "Access: active, no end date".into(),
        (Access::Active { until: None }, Locale::Ru) => "Доступ: открыт бессрочно".into(),
        (Access::Active { until: Some(u) }, _) => {
            let left = days_between(now, u);
            match (l, left) {
                (Locale::En, ..=0) => format!("Access: active until {} today", time_of_day(u)),
                (Locale::Ru, ..=0) => format!("Доступ: открыт до {} сегодня", time_of_day(u)),
                (Locale::En, n) => format!(
                    "Access: active until {} ({} left)",
                    date(u, l),
                    DAYS.count(n.unsigned_abs(), l)
                ),
                (Locale::Ru, n) => format!(
                    "Доступ: открыт до {} (ещё {})",
                    date(u, l),
                    DAYS.count(n.unsigned_abs(), l)
                ),
            }
        }
        (Access::Lapsed { ended }, Locale::En) => format!("Access: ended on {}", date(ended, l)),
        (Access::Lapsed { ended }, Locale::Ru) => format!("Доступ: закончился {}", date(ended, l)),
        (Access::Disabled, Locale::En) => "Access: turned off by the administrator".into(),
        (Access::Disabled, Locale::Ru) => "Доступ: отключён администратором".into(),
        (Access::Suspended { resumes, until }, Locale::En) => format!(
            "Access: paused until {}: the traffic limit is used up{}",
            date(resumes, l),
            until.map_or_else(String::new, |u| format!(
                " (access runs until {})",
                date(u, l)
            ))
        ),
        (Access::Suspended { resumes, until }, Locale::Ru) => format!(
            "Доступ: приостановлен до {} — лимит трафика исчерпан{}",
            date(resumes, l),
            until.map_or_else(String::new, |u| format!(
                " (доступ открыт до {})",
                date(u, l)
            ))
        ),
    }
}

fn status(
    access: Access,
    now: Timestamp,
    usage: Option<&UsageLine>,
    devices: &[DeviceLine],
    limit: u32,
    l: Locale,
) -> String {
    let mut s = access_line(access, now, l);
    if let Some(u) = usage {
        s.push_str(&usage_lines(u, l));
    }
    if devices.is_empty() {
        s.push_str(match l {
            Locale::En => "\nDevices: none yet (/get_config)",
            Locale::Ru => "\nУстройства: пока нет (/get_config)",
        });
        return s;
    }
    s.push_str(&match l {
        Locale::En => format!("\nDevices ({} of {limit}):", devices.len()),
        Locale::Ru => format!("\nУстройства ({} из {limit}):", devices.len()),
    });
    for d in devices {
        let connected = match (d.connected_ago, l) {
            (Some(secs), Locale::En) => format!("last connected {}", ago(secs, l)),
            (Some(secs), Locale::Ru) => format!("последнее подключение {}", ago(secs, l)),
            (None, Locale::En) => "not connected yet".into(),
            (None, Locale::Ru) => "ещё не подключалось".into(),
        };
        // The node's rx is what the device sent: show the device's view.
        s.push_str(&format!(
            "\n• {} — {} ({}): {connected}; ↓{} ↑{}",
            d.device,
            d.server,
            app(d.transport, l),
            size(d.tx_bytes, l),
            size(d.rx_bytes, l),
        ));
    }
    s
}

/// The app a device of this transport needs, as `/status` names it.
fn app(t: TransportKind, l: Locale) -> &'static str {
    match (t, l) {
        (TransportKind::Wireguard, Locale::En) => "WireGuard app",
        (TransportKind::Wireguard, Locale::Ru) => "приложение WireGuard",
        (TransportKind::Amneziawg, Locale::En) => "AmneziaWG app",
        (TransportKind::Amneziawg, Locale::Ru) => "приложение AmneziaWG",
    }
}

fn usage_lines(u: &UsageLine, l: Locale) -> String {
    let period = match (l, u.period) {
        (Locale::En, QuotaPeriod::Daily) => "today",
        (Locale::En, QuotaPeriod::Weekly) => "this week",
        (Locale::En, QuotaPeriod::Monthly) => "this month",
        (Locale::Ru, QuotaPeriod::Daily) => "за сегодня",
        (Locale::Ru, QuotaPeriod::Weekly) => "за эту неделю",
        (Locale::Ru, QuotaPeriod::Monthly) => "за этот месяц",
    };
    let used = size(u.period_bytes, l);
    let resets = date(u.resets, l);
    let total = size(u.total_bytes, l);
    match (l, u.limit) {
        (Locale::En, Some(limit)) => format!(
            "\nTraffic {period}: {used} of {} (resets on {resets})\nTraffic in total: {total}",
            size(limit, l)
        ),
        (Locale::Ru, Some(limit)) => format!(
            "\nТрафик {period}: {used} из {} (счётчик обнулится {resets})\nТрафик за всё время: {total}",
            size(limit, l)
        ),
        (Locale::En, None) => format!("\nTraffic {period}: {used}\nTraffic in total: {total}"),
        (Locale::Ru, None) => format!("\nТрафик {period}: {used}\nТрафик за всё время: {total}"),
    }
}

fn servers(servers: &[ServerLine], l: Locale) -> String {
    if servers.is_empty() {
        return match l {
            Locale::En => "No servers yet.".into(),
            Locale::Ru => "Серверов пока нет.".into(),
        };
    }
    let mut s = match l {
        Locale::En => String::from("Servers (the percentage is how full each one is):"),
        Locale::Ru => String::from("Серверы (процент — насколько сервер заполнен):"),
    };
    // Under one heading per transport when there is more than plain WireGuard.
    let grouped = servers
        .iter()
        .any(|srv| srv.transport != TransportKind::Wireguard);
    for transport in [TransportKind::Wireguard, TransportKind::Amneziawg] {
        let mut group = servers.iter().filter(|srv| srv.transport == transport);
        let Some(first) = group.next() else { continue };
        if grouped {
            s.push_str("\n\n");
            s.push_str(&Text::TransportHeading { transport }.render(l));
        }
        for srv in std::iter::once(first).chain(group) {
            s.push_str("\n• ");
            s.push_str(&server_label(srv, l));
        }
    }
    s
}

impl Text<'_> {
    /// The text in language `l`.
    #[allow(clippy::too_many_lines)]
    pub fn render(&self, l: Locale) -> String {
        use Locale::{En, Ru};
        match (self, l) {
            (Self::Help { admin }, En) => {
                let mut s = String::from(
                    "VPN bot\n\n/get_config — a WireGuard config for a new device, or an existing one's again\n/status — your access, traffic and devices\n/regen — replace a device's key\n/servers — servers and how full they are\n/buy — buy or renew access · /subscription — a monthly subscription\n/language — English / Русский\n/start CODE — activate an invite (or just paste the invite link)\n/paysupport — help with a payment · /terms — terms of sale",
                );
                if *admin {
                    s.push_str("\n\nAdmin:\n/nodes — nodes and their health\n/users — users\n/invite [days] [devices] — create a single-use invite link");
                }
                s
            }
            (Self::Help { admin }, Ru) => {
                let mut s = String::from(
                    "VPN-бот\n\n/get_config — конфигурация WireGuard для нового устройства или повторно для уже подключённого\n/status — доступ, трафик и устройства\n/regen — заменить ключ устройства\n/servers — серверы и их заполненность\n/buy — купить или продлить доступ · /subscription — ежемесячная подписка\n/language — English / Русский\n/start КОД — активировать приглашение (или просто пришлите ссылку-приглашение)\n/paysupport — помощь с оплатой · /terms — условия продажи",
                );
                if *admin {
                    s.push_str("\n\nАдминистратору:\n/nodes — узлы и их состояние\n/users — пользователи\n/invite [дни] [устройства] — создать одноразовую ссылку-приглашение");
                }
                s
            }
            (Self::Welcome { until, devices }, En) => format!(
                "Welcome! Your access is open {}. You can connect up to {}.\nSend /get_config to get your VPN config.",
                until.map_or_else(|| "with no end date".to_owned(), |u| format!("until {}", date(u, l))),
                DEVICES_UP_TO.count(u64::from(*devices), l)
            ),
            (Self::Welcome { until, devices }, Ru) => format!(
                "Добро пожаловать! Доступ открыт{}. Можно подключить до {}.\nОтправьте /get_config, чтобы получить конфигурацию VPN.",
                until.map_or_else(|| " бессрочно".to_owned(), |u| format!(" до {}", date(u, l))),
                DEVICES_UP_TO.count(u64::from(*devices), l)
            ),
            (Self::AlreadyMember, En) => "You already have an account. /get_config sends your config, /status shows your access.".into(),
            (Self::AlreadyMember, Ru) => "У вас уже есть аккаунт. /get_config пришлёт конфигурацию, /status покажет доступ.".into(),
            (Self::HowToGetAccess, En) => "This VPN is by invitation. Ask the administrator for an invite link, then open it or paste it here.".into(),
            (Self::HowToGetAccess, Ru) => "Этот VPN работает по приглашениям. Попросите у администратора ссылку-приглашение, затем откройте её или пришлите сюда.".into(),
            (Self::InviteInvalid, En) => "This invite is not valid. Check the link or ask for a new one.".into(),
            (Self::InviteInvalid, Ru) => "Это приглашение недействительно. Проверьте ссылку или попросите новую.".into(),
            (Self::InviteExpired, En) => "This invite has expired. Ask the administrator for a new one.".into(),
            (Self::InviteExpired, Ru) => "Срок действия приглашения истёк. Попросите у администратора новое.".into(),
            (Self::InviteUsedUp, En) => "This invite has already been used. Ask the administrator for a new one.".into(),
            (Self::InviteUsedUp, Ru) => "Это приглашение уже использовано. Попросите у администратора новое.".into(),
            (Self::OtherBotsLink { bot }, En) => format!("This link opens another bot (@{bot}), not me. Open it in Telegram, or ask for an invite to this bot."),
            (Self::OtherBotsLink { bot }, Ru) => format!("Эта ссылка ведёт к другому боту (@{bot}), а не ко мне. Откройте её в Telegram или попросите приглашение в этот бот."),
            (Self::TooManyAttempts, En) => "Too many attempts. Try again later.".into(),
            (Self::TooManyAttempts, Ru) => "Слишком много попыток. Попробуйте позже.".into(),
            (Self::NoAccount, En) => "You have no account yet. Open your invite link or paste it here.".into(),
            (Self::NoAccount, Ru) => "У вас ещё нет аккаунта. Откройте ссылку-приглашение или пришлите её сюда.".into(),
            (Self::MembersOnly, En) => "The server list is for members. Open your invite link or paste it here.".into(),
            (Self::MembersOnly, Ru) => "Список серверов доступен только участникам. Откройте ссылку-приглашение или пришлите её сюда.".into(),
            (Self::AccessEnded, En) => "Your access has ended. Ask the administrator to extend it.".into(),
            (Self::AccessEnded, Ru) => "Ваш доступ закончился. Попросите администратора продлить его.".into(),
            (Self::AccountDisabled, En) => "Your account is turned off. Contact the administrator.".into(),
            (Self::AccountDisabled, Ru) => "Ваш аккаунт отключён. Обратитесь к администратору.".into(),
            (Self::QuotaUsedUp { until: Some(u) }, En) => format!("Your traffic limit is used up. VPN access resumes on {}, when the limit renews.", date(*u, l)),
            (Self::QuotaUsedUp { until: Some(u) }, Ru) => format!("Ваш лимит трафика исчерпан. Доступ к VPN возобновится {}, когда лимит обновится.", date(*u, l)),
            (Self::QuotaUsedUp { until: None }, En) => "Your traffic limit is used up. VPN access resumes when the limit renews; /status shows when.".into(),
            (Self::QuotaUsedUp { until: None }, Ru) => "Ваш лимит трафика исчерпан. Доступ к VPN возобновится, когда лимит обновится; /status покажет когда.".into(),
            (Self::ChooseServer { devices, limit, resend }, En) => format!(
                "You have {devices} of {}.\n➕ a new device on that server: a new config{}\nThe percentage is how full a server is.",
                DEVICES.count(u64::from(*limit), l),
                if *resend { "\n📄 a device you already have: its config again" } else { "" }
            ),
            (Self::ChooseServer { devices, limit, resend }, Ru) => format!(
                "У вас {} из {limit}.\n➕ новое устройство на этом сервере: новая конфигурация{}\nПроцент — насколько сервер заполнен.",
                DEVICES.count(*devices, l),
                if *resend { "\n📄 уже подключённое устройство: его конфигурация ещё раз" } else { "" }
            ),
            (Self::ChooseAtLimit { limit }, En) => format!(
                "You have {}, the most your account allows.\n📄 a device you already have: its config again\n🔄 replace one of your devices with a new one on that server\nThe percentage is how full a server is.",
                DEVICES.count(u64::from(*limit), l)
            ),
            (Self::ChooseAtLimit { limit }, Ru) => format!(
                "У вас {} — больше ваш доступ не позволяет.\n📄 уже подключённое устройство: его конфигурация ещё раз\n🔄 заменить одно из ваших устройств новым на этом сервере\nПроцент — насколько сервер заполнен.",
                DEVICES.count(u64::from(*limit), l)
            ),
            (Self::NewDeviceButton { server }, _) => format!("➕ {}", server_label(server, l)),
            (Self::ReplaceOnButton { server }, _) => format!("🔄 {}", server_label(server, l)),
            (Self::ResendButton { device, server }, _) => format!("📄 {device} ({server})"),
            (Self::NoServers, En) => "No server takes new devices right now. Try again later.".into(),
            (Self::NoServers, Ru) => "Сейчас ни один сервер не принимает новые устройства. Попробуйте позже.".into(),
            (Self::ServerGone { server }, En) => format!("Server {server} takes no new devices now. /get_config shows the servers available now."),
            (Self::ServerGone { server }, Ru) => format!("Сервер {server} сейчас не принимает новые устройства. /get_config покажет доступные серверы."),
            (Self::ConfigFollows { device, server }, En) => format!("{device} on {server}: its config and QR code follow below."),
            (Self::ConfigFollows { device, server }, Ru) => format!("{device} на сервере {server}: конфигурация и QR-код ниже."),
            (Self::ConfigCaption { device, server, awg: false }, En) => format!("WireGuard config: {device} on {server}"),
            (Self::ConfigCaption { device, server, awg: false }, Ru) => format!("Конфигурация WireGuard: {device} на сервере {server}"),
            (Self::ConfigCaption { device, server, awg: true }, En) => format!("AmneziaWG config: {device} on {server} (for the AmneziaWG app, not WireGuard)"),
            (Self::ConfigCaption { device, server, awg: true }, Ru) => format!("Конфигурация AmneziaWG: {device} на сервере {server} (для приложения AmneziaWG, не WireGuard)"),
            (Self::TransportHeading { transport: TransportKind::Wireguard }, En) => "— WireGuard (the WireGuard app) —".into(),
            (Self::TransportHeading { transport: TransportKind::Wireguard }, Ru) => "— WireGuard (приложение WireGuard) —".into(),
            (Self::TransportHeading { transport: TransportKind::Amneziawg }, En) => "— AmneziaWG — if WireGuard does not connect on your network —".into(),
            (Self::TransportHeading { transport: TransportKind::Amneziawg }, Ru) => "— AmneziaWG — если WireGuard не подключается в вашей сети —".into(),
            (Self::BackupFile { file, part: 1, parts: 1, bytes }, En) => format!(
                "Backup {file} ({}), encrypted to your backup key or passphrase. Keep it somewhere safe. To restore: vpnctld restore --from {file} --data DIR --identity KEY (or --passphrase-file FILE).",
                size(*bytes, En)
            ),
            (Self::BackupFile { file, part: 1, parts: 1, bytes }, Ru) => format!(
                "Резервная копия {file} ({}), зашифрована вашим ключом или паролем для копий. Сохраните её в надёжном месте. Восстановление: vpnctld restore --from {file} --data DIR --identity KEY (или --passphrase-file FILE).",
                size(*bytes, Ru)
            ),
            (Self::BackupFile { file, part, parts, bytes }, En) => format!(
                "Backup {file} ({}), part {part} of {parts}. Join the parts in order before restoring: cat {file}.part1 … {file}.part{parts} > {file}",
                size(*bytes, En)
            ),
            (Self::BackupFile { file, part, parts, bytes }, Ru) => format!(
                "Резервная копия {file} ({}), часть {part} из {parts}. Перед восстановлением соедините части по порядку: cat {file}.part1 … {file}.part{parts} > {file}",
                size(*bytes, Ru)
            ),
            (Self::TransportAbout { transport: TransportKind::Wireguard }, En) => "WireGuard: try these first. Import the config into the official WireGuard app.".into(),
            (Self::TransportAbout { transport: TransportKind::Wireguard }, Ru) => "WireGuard: попробуйте сначала их. Конфигурацию импортируйте в официальное приложение WireGuard.".into(),
            (Self::TransportAbout { transport: TransportKind::Amneziawg }, En) => "AmneziaWG: for networks where WireGuard does not connect. It needs the AmneziaWG app (Windows, macOS, iOS, Android); the WireGuard app refuses these configs.".into(),
            (Self::TransportAbout { transport: TransportKind::Amneziawg }, Ru) => "AmneziaWG: для сетей, где WireGuard не подключается. Нужно приложение AmneziaWG (Windows, macOS, iOS, Android); приложение WireGuard такие конфигурации не принимает.".into(),
            (Self::QrCaption { delete_after, awg: true }, En) => {
                let mut s = String::from("How to connect (AmneziaWG app; the WireGuard app cannot open this config):\n• Windows: install AmneziaWG, click “Import tunnel(s) from file”, choose the .conf file above, then “Activate”.\n• iPhone/iPad and Android: install AmneziaWG (App Store / Google Play), tap “+” → “Create from QR code” and scan this picture from another screen, or open the .conf file above and share it to AmneziaWG.");
                if let Some(after) = delete_after {
                    s.push_str(&format!("\n\nFor your safety both will be deleted from this chat in {}. Save the file now; /get_config sends them again.", span(*after, l)));
                }
                s
            }
            (Self::QrCaption { delete_after, awg: true }, Ru) => {
                let mut s = String::from("Как подключиться (приложение AmneziaWG; приложение WireGuard эту конфигурацию не откроет):\n• Windows: установите AmneziaWG, нажмите «Импорт туннелей из файла», выберите файл .conf выше, затем «Подключить».\n• iPhone/iPad и Android: установите AmneziaWG (App Store / Google Play), нажмите «+» → «Создать из QR-кода» и отсканируйте эту картинку с другого экрана или откройте файл .conf выше и поделитесь им с AmneziaWG.");
                if let Some(after) = delete_after {
                    s.push_str(&format!("\n\nДля безопасности оба сообщения будут удалены из чата через {}. Сохраните файл сейчас; /get_config пришлёт их снова.", span(*after, l)));
                }
                s
            }
            (Self::QrCaption { delete_after, awg: false }, En) => {
                let mut s = String::from("How to connect:\n• Windows: install WireGuard, click “Import tunnel(s) from file”, choose the .conf file above, then “Activate”.\n• iPhone/iPad: install WireGuard from the App Store, tap “+” → “Create from QR code” and scan this picture from another screen, or open the .conf file above and share it to WireGuard.");
                if let Some(after) = delete_after {
                    s.push_str(&format!("\n\nFor your safety both will be deleted from this chat in {}. Save the file now; /get_config sends them again.", span(*after, l)));
                }
                s
            }
            (Self::QrCaption { delete_after, awg: false }, Ru) => {
                let mut s = String::from("Как подключиться:\n• Windows: установите WireGuard, нажмите «Импорт туннелей из файла», выберите файл .conf выше, затем «Подключить».\n• iPhone/iPad: установите WireGuard из App Store, нажмите «+» → «Создать из QR-кода» и отсканируйте эту картинку с другого экрана или откройте файл .conf выше и поделитесь им с WireGuard.");
                if let Some(after) = delete_after {
                    s.push_str(&format!("\n\nДля безопасности оба сообщения будут удалены из чата через {}. Сохраните файл сейчас; /get_config пришлёт их снова.", span(*after, l)));
                }
                s
            }
            (Self::DeviceLimit { limit, server }, En) => format!("You already have {}, the most your account allows. Which one should a new device on {server} replace?", DEVICES.count(u64::from(*limit), l)),
            (Self::DeviceLimit { limit, server }, Ru) => format!("У вас уже {} — больше ваш доступ не позволяет. Какое из них заменить новым устройством на сервере {server}?", DEVICES.count(u64::from(*limit), l)),
            (Self::ReplaceButton { device, server }, En) => format!("🔄 Replace {device} ({server})"),
            (Self::ReplaceButton { device, server }, Ru) => format!("🔄 Заменить {device} ({server})"),
            (Self::CancelButton, En) => "Cancel".into(),
            (Self::CancelButton, Ru) => "Отмена".into(),
            (Self::Cancelled, En) => "Cancelled.".into(),
            (Self::Cancelled, Ru) => "Отменено.".into(),
            (Self::ChooseDeviceToRotate, En) => "Which device's key should be replaced?".into(),
            (Self::ChooseDeviceToRotate, Ru) => "Ключ какого устройства заменить?".into(),
            (Self::RotateDeviceButton { device, server }, _) => format!("🔑 {device} ({server})"),
            (Self::NoDevices, En) => "You have no devices yet. /get_config creates one.".into(),
            (Self::NoDevices, Ru) => "У вас ещё нет устройств. /get_config подключит первое.".into(),
            (Self::ConfirmRotate { device, server }, En) => format!("Replace the key of {device} ({server})? Its current config stops working at once; you get a new one."),
            (Self::ConfirmRotate { device, server }, Ru) => format!("Заменить ключ устройства {device} ({server})? Его текущая конфигурация сразу перестанет работать; вы получите новую."),
            (Self::RotateButton, En) => "Yes, replace the key".into(),
            (Self::RotateButton, Ru) => "Да, заменить ключ".into(),
            (Self::Rotated { device, server }, En) => format!("The key of {device} ({server}) was replaced: import the new config below; the old one no longer works."),
            (Self::Rotated { device, server }, Ru) => format!("Ключ устройства {device} ({server}) заменён: импортируйте новую конфигурацию ниже, старая больше не работает."),
            (Self::RateLimited { wait }, En) => format!("Too many requests. Try again in {}.", span(*wait, l)),
            (Self::RateLimited { wait }, Ru) => format!("Слишком много запросов. Попробуйте через {}.", span(*wait, l)),
            (Self::Status { access, now, usage, devices, limit }, l) => status(*access, *now, *usage, devices, *limit, l),
            (Self::Servers { servers: list }, l) => servers(list, l),
            (Self::ChooseLanguage, _) => "Choose your language / Выберите язык:".into(),
            (Self::LanguageButton { language: En }, _) => "English".into(),
            (Self::LanguageButton { language: Ru }, _) => "Русский".into(),
            (Self::LanguageSet, En) => "Language: English.".into(),
            (Self::LanguageSet, Ru) => "Язык: русский.".into(),
            (Self::PrivateOnly, En) => "For your safety I only work in a private chat. Write to me directly.".into(),
            (Self::PrivateOnly, Ru) => "Для безопасности я работаю только в личном чате. Напишите мне напрямую.".into(),
            (Self::UnknownCommand, En) => "Unknown command. /help lists what I can do.".into(),
            (Self::UnknownCommand, Ru) => "Неизвестная команда. /help покажет, что я умею.".into(),
            (Self::NotUnderstood, En) => "I only understand commands and invite links. /help lists the commands.".into(),
            (Self::NotUnderstood, Ru) => "Я понимаю только команды и ссылки-приглашения. /help покажет список команд.".into(),
            (Self::TooLong { max }, En) => format!("That message is too long (at most {max} characters). /help lists the commands."),
            (Self::TooLong { max }, Ru) => format!("Сообщение слишком длинное (не больше {max} символов). /help покажет список команд."),
            (Self::ButtonInvalid, En) => "This button is not valid.".into(),
            (Self::ButtonInvalid, Ru) => "Эта кнопка недействительна.".into(),
            (Self::ButtonUsed, En) => "This button was already used.".into(),
            (Self::ButtonUsed, Ru) => "Эта кнопка уже использована.".into(),
            (Self::ButtonBusy, En) => "Working on it…".into(),
            (Self::ButtonBusy, Ru) => "Уже выполняю…".into(),
            (Self::TryAgain, En) => "The VPN service is temporarily unavailable. Press the same button again in a minute.".into(),
            (Self::TryAgain, Ru) => "Сервис VPN временно недоступен. Нажмите ту же кнопку ещё раз через минуту.".into(),
            (Self::Unavailable, En) => "The VPN service is temporarily unavailable. Please try again in a few minutes.".into(),
            (Self::Unavailable, Ru) => "Сервис VPN временно недоступен. Попробуйте через несколько минут.".into(),
            (Self::Failed, En) => "Something went wrong. Please try again later.".into(),
            (Self::Failed, Ru) => "Что-то пошло не так. Попробуйте позже.".into(),
            (Self::NoPrivateKey, En) => "This device uses its own key, so I cannot send its config. /regen replaces the key and sends a new config.".into(),
            (Self::NoPrivateKey, Ru) => "Это устройство использует собственный ключ, поэтому я не могу прислать его конфигурацию. /regen заменит ключ и пришлёт новую.".into(),
            (Self::NotConfigured, En) => "This is not set up on this bot.".into(),
            (Self::NotConfigured, Ru) => "Это не настроено в боте.".into(),
            (Self::IssuedNotSent { device }, En) => format!("Your new device {device} is ready, but I could not send its config just now. Send /get_config to get it."),
            (Self::IssuedNotSent { device }, Ru) => format!("Новое устройство {device} готово, но прислать его конфигурацию сейчас не получилось. Отправьте /get_config, чтобы получить её."),
            (Self::RemovedNotIssued { device }, En) => format!("{device} was removed, but the new device could not be created just now. Send /get_config to try again."),
            (Self::RemovedNotIssued { device }, Ru) => format!("Устройство {device} удалено, но создать новое сейчас не получилось. Отправьте /get_config, чтобы попробовать снова."),
            (Self::RotatedNotSent { device }, En) => format!("The key of {device} was replaced and its old config no longer works, but I could not send the new one just now. Send /get_config to get it."),
            (Self::RotatedNotSent { device }, Ru) => format!("Ключ устройства {device} заменён, старая конфигурация больше не работает, но прислать новую сейчас не получилось. Отправьте /get_config, чтобы получить её."),
            (Self::InviteCreated { link, days, devices }, En) => format!(
                "Invite link (single use): {}, up to {}:\n{link}",
                days.map_or_else(|| "access with no end date".to_owned(), |d| format!("{} of access", DAYS.count(u64::from(d), l))),
                DEVICES_UP_TO.count(u64::from(*devices), l)
            ),
            (Self::InviteCreated { link, days, devices }, Ru) => format!(
                "Ссылка-приглашение (одноразовая): {}, до {}:\n{link}",
                days.map_or_else(|| "бессрочный доступ".to_owned(), |d| format!("доступ на {}", DAYS_FOR.count(u64::from(d), l))),
                DEVICES_UP_TO.count(u64::from(*devices), l)
            ),
            (Self::Alert { text }, En) => format!("⚠️ Alert: {text}"),
            (Self::Alert { text }, Ru) => format!("⚠️ Оповещение: {text}"),
            (Self::AccessEndsSoon { until, now, renew }, En) => format!(
                "⏳ Your VPN access ends {}. {}",
                ends(*until, *now, l),
                if *renew { "Renew it below or with /buy." } else { "Ask the administrator to extend it." }
            ),
            (Self::AccessEndsSoon { until, now, renew }, Ru) => format!(
                "⏳ Ваш доступ к VPN закончится {}. {}",
                ends(*until, *now, l),
                if *renew { "Продлите его кнопкой ниже или командой /buy." } else { "Попросите администратора продлить его." }
            ),
            (Self::AccessEndedOn { until, renew }, En) => format!(
                "Your VPN access ended on {}; your devices no longer connect. {}",
                date(*until, l),
                if *renew { "Renew it below or with /buy: they connect again at once." } else { "Ask the administrator to extend it." }
            ),
            (Self::AccessEndedOn { until, renew }, Ru) => format!(
                "Ваш доступ к VPN закончился {}; устройства больше не подключаются. {}",
                date(*until, l),
                if *renew { "Продлите его кнопкой ниже или командой /buy — устройства сразу подключатся снова." } else { "Попросите администратора продлить его." }
            ),
            (Self::QuotaWarning { used, limit, resets }, En) => format!(
                "You have used {} of your {} traffic limit. It renews on {}.",
                size(*used, l), size(*limit, l), date(*resets, l)
            ),
            (Self::QuotaWarning { used, limit, resets }, Ru) => format!(
                "Вы израсходовали {} из {} вашего лимита трафика. Лимит обновится {}.",
                size(*used, l), size(*limit, l), date(*resets, l)
            ),
            (Self::QuotaExceeded { used, limit, resets }, En) => format!(
                "Your traffic limit of {} is used up ({} used). VPN access is paused until {}, when the limit renews.",
                size(*limit, l), size(*used, l), date(*resets, l)
            ),
            (Self::QuotaExceeded { used, limit, resets }, Ru) => format!(
                "Ваш лимит трафика {} исчерпан (израсходовано {}). Доступ к VPN приостановлен до {}, когда лимит обновится.",
                size(*limit, l), size(*used, l), date(*resets, l)
            ),
            (Self::QuotaRestored, En) => "Your traffic limit has renewed: VPN access works again.".into(),
            (Self::QuotaRestored, Ru) => "Ваш лимит трафика обновился: доступ к VPN снова работает.".into(),
            (Self::DeviceMoved { device, from, to, region, config_follows }, En) => format!(
                "Server {from} was taken out of service, so your device {device} was moved to server {to} ({region}). The old config no longer works. {}",
                if *config_follows {
                    "Import this file."
                } else {
                    "Send /get_config to get the new one."
                }
            ),
            (Self::DeviceMoved { device, from, to, region, config_follows }, Ru) => format!(
                "Сервер {from} выведен из работы, поэтому ваше устройство {device} перенесено на сервер {to} ({region}). Старая конфигурация больше не работает. {}",
                if *config_follows {
                    "Импортируйте этот файл."
                } else {
                    "Отправьте /get_config, чтобы получить новую."
                }
            ),
            (Self::ConfigChanged { device, server, transport, config_follows }, En) => format!(
                "Server {server} changed its connection settings (now {}), so the old config of {device} no longer connects. {}",
                app(*transport, l),
                if *config_follows { "Import this new file (your device keeps its key)." } else { "Send /get_config to get the new one." }
            ),
            (Self::ConfigChanged { device, server, transport, config_follows }, Ru) => format!(
                "Сервер {server} сменил настройки подключения (теперь {}), поэтому старая конфигурация устройства {device} больше не подключается. {}",
                app(*transport, l),
                if *config_follows { "Импортируйте этот новый файл (ключ устройства прежний)." } else { "Отправьте /get_config, чтобы получить новую." }
            ),
            (Self::NodeTransportChanged { name, transport, devices }, En) => format!(
                "🔧 Node {name} now runs {}: {} need new configs; users with Telegram are being sent theirs, others need theirs re-issued.",
                transport, DEVICES.count(u64::from(*devices), l)
            ),
            (Self::NodeTransportChanged { name, transport, devices }, Ru) => format!(
                "🔧 Узел {name} теперь работает по {}: {} нужны новые конфигурации; пользователям с Telegram они отправляются, остальным их нужно выдать заново.",
                transport, DEVICES.count(u64::from(*devices), l)
            ),
            (Self::NodeHealthChanged { name, from, to, reason }, En) => {
                let what = match to {
                    Health::Up => "recovered",
                    Health::Degraded => "is degraded",
                    Health::Down => "is down",
                    Health::Unknown => "is in an unknown state",
                };
                format!("{} Node {name} {what} (was {}): {reason}", health_mark(*to), health(*from, l))
            }
            (Self::NodeHealthChanged { name, from, to, reason }, Ru) => format!(
                "{} Узел {name}: {} (было: {}): {reason}",
                health_mark(*to),
                health(*to, l),
                health(*from, l)
            ),
            (Self::NodeDrift { name, removed }, En) => format!("⚠️ Node {name} removed {} from its interface: they were not in its desired state (drift).", STRAY_PEERS.count(u64::from(*removed), l)),
            (Self::NodeDrift { name, removed }, Ru) => format!("⚠️ Узел {name} убрал с интерфейса {}: их не было в желаемом состоянии (расхождение).", STRAY_PEERS.count(u64::from(*removed), l)),
            (Self::NodeEvacuated { name, moved, failed }, En) => format!(
                "🚚 Node {name} evacuated: {} moved{}; the node takes no new devices now.",
                DEVICES.count(u64::from(*moved), l),
                if *failed > 0 { format!(", {} could not be moved", DEVICES.count(u64::from(*failed), l)) } else { String::new() }
            ),
            (Self::NodeEvacuated { name, moved, failed }, Ru) => format!(
                "🚚 Узел {name} освобождён: перенесено {}{}; новые устройства узел больше не принимает.",
                DEVICES.count(u64::from(*moved), l),
                if *failed > 0 { format!(", не удалось перенести {}", DEVICES.count(u64::from(*failed), l)) } else { String::new() }
            ),
            (Self::ChoosePlan, En) => "Choose a plan. You pay in Telegram Stars; the days are added to your current access.".into(),
            (Self::ChoosePlan, Ru) => "Выберите тариф. Оплата в Telegram Stars; дни добавляются к текущему доступу.".into(),
            (Self::NoPlans, En) => "Nothing is on sale right now. Ask the administrator.".into(),
            (Self::NoPlans, Ru) => "Сейчас ничего не продаётся. Обратитесь к администратору.".into(),
            (Self::PlanButton { name, days, stars }, _) => {
                format!("{name} · {} · {stars} ⭐", DAYS.count(u64::from(*days), l))
            }
            (Self::RenewButton, En) => "⭐ Renew".into(),
            (Self::RenewButton, Ru) => "⭐ Продлить".into(),
            (Self::InvoiceDescription { days, devices, quota }, En) => format!(
                "VPN access for {}, up to {}{}.",
                DAYS_FOR.count(u64::from(*days), l),
                DEVICES_UP_TO.count(u64::from(*devices), l),
                quota.map_or_else(String::new, |q| format!(", {} {}", size(q.bytes, l), per_period(q.period, l)))
            ),
            (Self::InvoiceDescription { days, devices, quota }, Ru) => format!(
                "Доступ к VPN на {}, до {}{}.",
                DAYS_FOR.count(u64::from(*days), l),
                DEVICES_UP_TO.count(u64::from(*devices), l),
                quota.map_or_else(String::new, |q| format!(", {} {}", size(q.bytes, l), per_period(q.period, l)))
            ),
            (Self::CheckoutRefused { refusal }, En) => match refusal {
                CheckoutRefusal::Expired => "This invoice has expired. Send /buy for a new one.",
                CheckoutRefusal::AlreadyPaid => "This invoice is paid already. See /status.",
                CheckoutRefusal::PlanRetired => "This plan is no longer sold. Send /buy to see the current ones.",
                CheckoutRefusal::PriceChanged => "The price has changed. Send /buy for a new invoice.",
                CheckoutRefusal::OtherUser => "This invoice was made for someone else. Send /buy for your own.",
                CheckoutRefusal::UserDisabled => "Your account is disabled. Contact the administrator.",
                CheckoutRefusal::UnknownOrder | CheckoutRefusal::WrongCurrency => "This invoice is not valid. Send /buy for a new one.",
            }
            .into(),
            (Self::CheckoutRefused { refusal }, Ru) => match refusal {
                CheckoutRefusal::Expired => "Срок действия счёта истёк. Отправьте /buy, чтобы получить новый.",
                CheckoutRefusal::AlreadyPaid => "Этот счёт уже оплачен. Подробности — /status.",
                CheckoutRefusal::PlanRetired => "Этот тариф больше не продаётся. Актуальные — /buy.",
                CheckoutRefusal::PriceChanged => "Цена изменилась. Отправьте /buy, чтобы получить новый счёт.",
                CheckoutRefusal::OtherUser => "Этот счёт выставлен другому пользователю. Отправьте /buy, чтобы получить свой.",
                CheckoutRefusal::UserDisabled => "Ваша учётная запись отключена. Обратитесь к администратору.",
                CheckoutRefusal::UnknownOrder | CheckoutRefusal::WrongCurrency => "Этот счёт недействителен. Отправьте /buy, чтобы получить новый.",
            }
            .into(),
            (Self::CheckoutUnavailable, En) => "The service cannot confirm this payment right now; nothing was charged. Please try again in a minute.".into(),
            (Self::CheckoutUnavailable, Ru) => "Сервис не может сейчас подтвердить оплату; деньги не списаны. Попробуйте ещё раз через минуту.".into(),
            (Self::PaymentPending, En) => "Payment received, thank you! It will be applied to your access in a few minutes; you will get a receipt.".into(),
            (Self::PaymentPending, Ru) => "Оплата получена, спасибо! Она будет зачислена в течение нескольких минут — придёт квитанция.".into(),
            (Self::Receipt { plan, stars, days, until }, En) => format!(
                "✅ Payment received: {plan}, {stars} ⭐ ({}). {}",
                DAYS.count(u64::from(*days), l),
                until.map_or_else(|| "Your access has no end date.".to_owned(), |u| format!("Your access is open until {}.", date(u, l)))
            ),
            (Self::Receipt { plan, stars, days, until }, Ru) => format!(
                "✅ Оплата получена: {plan}, {stars} ⭐ ({}). {}",
                DAYS.count(u64::from(*days), l),
                until.map_or_else(|| "Доступ бессрочный.".to_owned(), |u| format!("Доступ открыт до {}.", date(u, l)))
            ),
            (Self::Refunded { stars, until }, En) => format!(
                "↩️ {stars} ⭐ were refunded to you. {}",
                until.map_or_else(String::new, |u| format!("Your access now ends on {}.", date(u, l)))
            ),
            (Self::Refunded { stars, until }, Ru) => format!(
                "↩️ Вам возвращено {stars} ⭐. {}",
                until.map_or_else(String::new, |u| format!("Доступ теперь заканчивается {}.", date(u, l)))
            ),
            (Self::Operator { text }, _) => (*text).to_owned(),
            (Self::NoSubscription, En) => "You have no subscription. Plans marked monthly in /buy renew themselves every 30 days until you cancel.".into(),
            (Self::NoSubscription, Ru) => "У вас нет подписки. Ежемесячные тарифы в /buy продлеваются сами каждые 30 дней, пока вы их не отмените.".into(),
            (Self::SubscriptionInfo { plan, stars, until, cancelled }, En) => {
                let until = until.map_or_else(|| "—".to_owned(), |u| date(u, l));
                if *cancelled {
                    format!("{plan}, {stars} ⭐ a month: cancelled, paid until {until}.")
                } else {
                    format!("{plan}, {stars} ⭐ a month: renews on {until}.")
                }
            }
            (Self::SubscriptionInfo { plan, stars, until, cancelled }, Ru) => {
                let until = until.map_or_else(|| "—".to_owned(), |u| date(u, l));
                if *cancelled {
                    format!("{plan}, {stars} ⭐ в месяц: отменена, оплачено до {until}.")
                } else {
                    format!("{plan}, {stars} ⭐ в месяц: продлится {until}.")
                }
            }
            (Self::CancelRenewalButton, En) => "Cancel renewal".into(),
            (Self::CancelRenewalButton, Ru) => "Отменить продление".into(),
            (Self::ResumeRenewalButton, En) => "Resume renewal".into(),
            (Self::ResumeRenewalButton, Ru) => "Возобновить продление".into(),
            (Self::RenewalChanged { plan, until, cancelled }, En) => {
                let until = until.map_or_else(|| "—".to_owned(), |u| date(u, l));
                if *cancelled {
                    format!("{plan}: renewal cancelled. Your access runs until {until}; nothing more will be charged.")
                } else {
                    format!("{plan}: renewal resumed. It renews on {until}.")
                }
            }
            (Self::RenewalChanged { plan, until, cancelled }, Ru) => {
                let until = until.map_or_else(|| "—".to_owned(), |u| date(u, l));
                if *cancelled {
                    format!("{plan}: продление отменено. Доступ действует до {until}; больше списаний не будет.")
                } else {
                    format!("{plan}: продление возобновлено. Следующее — {until}.")
                }
            }
            (Self::PaySupport, En) => "Questions about a payment or a refund? Write to the administrator of this VPN; give the date and the amount.".into(),
            (Self::PaySupport, Ru) => "Вопросы об оплате или возврате? Напишите администратору этого VPN, укажите дату и сумму.".into(),
            (Self::Terms, En) => "You buy days of access to this VPN service for your own devices. Access starts at once and is added to what you have. Refunds are at the administrator's discretion: a refund takes the days it bought back.".into(),
            (Self::Terms, Ru) => "Вы покупаете дни доступа к этому VPN-сервису для своих устройств. Доступ начинается сразу и добавляется к текущему. Возврат — на усмотрение администратора: при возврате купленные дни снимаются.".into(),
            (Self::PaymentNotice { user, plan, stars }, En) => format!("💰 {user} paid {stars} ⭐ for {plan}."),
            (Self::PaymentNotice { user, plan, stars }, Ru) => format!("💰 {user} оплатил(а) {plan}: {stars} ⭐."),
            (Self::RefundNotice { user, stars }, En) => format!("↩️ {stars} ⭐ refunded to {user}."),
            (Self::RefundNotice { user, stars }, Ru) => format!("↩️ {user}: возвращено {stars} ⭐."),
            (Self::RefundFailedNotice { payment, reason }, En) => format!("⚠️ Telegram refused the refund of payment {payment}: {reason}"),
            (Self::RefundFailedNotice { payment, reason }, Ru) => format!("⚠️ Telegram отказал в возврате платежа {payment}: {reason}"),
            (Self::PaymentNotApplied { user, stars, charge, reason }, En) => format!(
                "A payment of {stars} ⭐ from Telegram user {user} could not be applied: {reason}. Charge id: {charge}"
            ),
            (Self::PaymentNotApplied { user, stars, charge, reason }, Ru) => format!(
                "Платёж {stars} ⭐ от пользователя Telegram {user} не удалось зачислить: {reason}. Идентификатор платежа: {charge}"
            ),
        }
    }
}

/// The command list registered with Telegram (`setMyCommands`): command, then
/// its description in `l`.
pub fn command_descriptions(l: Locale) -> [(&'static str, &'static str); 11] {
    let pick = |en, ru| if l == Locale::Ru { ru } else { en };
    [
        (
            "get_config",
            pick("Get a VPN config", "Получить конфигурацию VPN"),
        ),
        (
            "status",
            pick("Access, traffic and devices", "Доступ, трафик и устройства"),
        ),
        (
            "regen",
            pick("Replace a device's key", "Заменить ключ устройства"),
        ),
        (
            "servers",
            pick(
                "Servers and how full they are",
                "Серверы и их заполненность",
            ),
        ),
        (
            "buy",
            pick("Buy or renew access", "Купить или продлить доступ"),
        ),
        (
            "subscription",
            pick("Your monthly subscription", "Ваша ежемесячная подписка"),
        ),
        ("language", pick("Language / Язык", "Язык / Language")),
        ("help", pick("Help", "Помощь")),
        (
            "start",
            pick(
                "Start / activate an invite",
                "Начать / активировать приглашение",
            ),
        ),
        (
            "paysupport",
            pick("Help with a payment", "Помощь с оплатой"),
        ),
        ("terms", pick("Terms of sale", "Условия продажи")),
    ]
}

/// `/nodes` for admins.
pub fn admin_nodes(nodes: &[vpnctl_api::body::NodeView], l: Locale) -> String {
    let mut s = match l {
        Locale::En => format!("Nodes: {}", nodes.len()),
        Locale::Ru => format!("Узлы: {}", nodes.len()),
    };
    for n in nodes {
        let p = vpnctl_core::Placement::of(&n.node, n.health.status, n.peers);
        let health = if n.health.status == Health::Up || n.health.reason.is_empty() {
            health(n.health.status, l).to_owned()
        } else {
            format!("{} ({})", health(n.health.status, l), n.health.reason)
        };
        s.push_str(&match l {
            Locale::En => format!(
                "\n• {} [{}] {} — {}, {health}, devices {}/{}, connected {}",
                n.node.name,
                n.node.id,
                n.node.region.code,
                p.availability,
                p.peers,
                p.capacity,
                n.health.peers_connected,
            ),
            Locale::Ru => format!(
                "\n• {} [{}] {} — {}, {health}, устройства {}/{}, подключено {}",
                n.node.name,
                n.node.id,
                n.node.region.code,
                p.availability,
                p.peers,
                p.capacity,
                n.health.peers_connected,
            ),
        });
    }
    truncate(s)
}

/// `/users` for admins.
pub fn admin_users(users: &[vpnctl_core::User], l: Locale) -> String {
    let now = Timestamp::now();
    let mut s = match l {
        Locale::En => format!("Users: {}", users.len()),
        Locale::Ru => format!("Пользователи: {}", users.len()),
    };
    for u in users {
        let access = Access::of(u, now);
        let state = match (access, l) {
            (Access::Active { .. }, Locale::En) => "active",
            (Access::Active { .. }, Locale::Ru) => "активен",
            (Access::Disabled, Locale::En) => "turned off",
            (Access::Disabled, Locale::Ru) => "отключён",
            (Access::Lapsed { .. }, Locale::En) => "ended",
            (Access::Lapsed { .. }, Locale::Ru) => "доступ закончился",
            (Access::Suspended { .. }, Locale::En) => "paused (traffic)",
            (Access::Suspended { .. }, Locale::Ru) => "приостановлен (трафик)",
        };
        let until = access
            .until()
            .map_or_else(|| "∞".to_owned(), |t| date(t, l));
        let tg = u
            .telegram_id
            .map_or_else(|| "-".to_owned(), |t| t.to_string());
        s.push_str(&match l {
            Locale::En => format!(
                "\n• {} [{}] tg:{tg} {state}, until {until}, up to {}",
                u.name,
                u.id,
                DEVICES_UP_TO.count(u64::from(u.device_limit), l)
            ),
            Locale::Ru => format!(
                "\n• {} [{}] tg:{tg} {state}, до {until}, до {}",
                u.name,
                u.id,
                DEVICES_UP_TO.count(u64::from(u.device_limit), l)
            ),
        });
    }
    truncate(s)
}

/// Telegram's message limit is 4096 characters.
fn truncate(mut s: String) -> String {
    if s.chars().count() > 4000 {
        s = s.chars().take(3990).collect();
        s.push_str("\n…");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = Timestamp(1_798_804_800); // 2027-01-01T12:00:00Z

    #[test]
    fn status_lists_devices_in_plain_words() {
        let devices = [DeviceLine {
            device: "phone".into(),
            server: "fra-1".into(),
            connected_ago: Some(300),
            rx_bytes: 2048,
            tx_bytes: 50 * 1024 * 1024,
            transport: TransportKind::Wireguard,
        }];
        let status = |l| {
            Text::Status {
                access: Access::Active {
                    until: Some(NOW.plus_days(12)),
                },
                now: NOW,
                usage: None,
                devices: &devices,
                limit: 3,
            }
            .render(l)
        };
        let en = status(Locale::En);
        assert!(
            en.contains("active until 13 Jan 2027 (12 days left)"),
            "{en}"
        );
        assert!(en.contains("Devices (1 of 3)"), "{en}");
        assert!(
            en.contains("phone — fra-1 (WireGuard app): last connected 5 minutes ago"),
            "{en}"
        );
        assert!(en.contains("↓52.4 MB"), "{en}");
        assert!(!en.contains("handshake"), "{en}");
        let ru = status(Locale::Ru);
        assert!(ru.contains("открыт до 13.01.2027 (ещё 12 дней)"), "{ru}");
        assert!(ru.contains("последнее подключение 5 минут назад"), "{ru}");
        assert!(!ru.contains("рукопожат"), "{ru}");
    }

    #[test]
    fn states_never_contradict_themselves() {
        for l in [Locale::En, Locale::Ru] {
            let disabled = Text::Status {
                access: Access::Disabled,
                now: NOW,
                usage: None,
                devices: &[],
                limit: 3,
            }
            .render(l);
            assert!(
                !disabled.contains("left") && !disabled.contains("ещё"),
                "{disabled}"
            );
            let ended = Text::Status {
                access: Access::Lapsed { ended: NOW },
                now: NOW,
                usage: None,
                devices: &[],
                limit: 3,
            }
            .render(l);
            assert!(!ended.contains("left") && !ended.contains("ещё"), "{ended}");
        }
    }

    #[test]
    fn a_reminder_agrees_with_its_date() {
        let soon = |until: Timestamp, l| {
            Text::AccessEndsSoon {
                until,
                now: NOW,
                renew: false,
            }
            .render(l)
        };
        // 8 s left: today, not "in 1 day".
        let en = soon(NOW.plus_seconds(8), Locale::En);
        assert!(en.contains("ends today at 12:00 UTC"), "{en}");
        let ru = soon(NOW.plus_seconds(8), Locale::Ru);
        assert!(ru.contains("закончится сегодня в 12:00 UTC"), "{ru}");
        assert!(soon(NOW.plus_days(1), Locale::En).contains("ends tomorrow, 2 Jan 2027"));
        assert!(soon(NOW.plus_days(2), Locale::Ru).contains("через 2 дня, 03.01.2027"));
        assert!(soon(NOW.plus_days(21), Locale::Ru).contains("через 21 день, 22.01.2027"));
        assert!(soon(NOW.plus_days(5), Locale::En).contains("ends in 5 days, on 6 Jan 2027"));
    }

    #[test]
    fn usage_and_quota_lines() {
        let usage = UsageLine {
            period: QuotaPeriod::Monthly,
            period_bytes: 8_000_000_000,
            total_bytes: 12_500_000_000,
            limit: Some(10_000_000_000),
            resets: Timestamp(1_801_483_200), // 2027-02-01
        };
        let status = |l| {
            Text::Status {
                access: Access::Active { until: None },
                now: NOW,
                usage: Some(&usage),
                devices: &[],
                limit: 3,
            }
            .render(l)
        };
        let en = status(Locale::En);
        assert!(
            en.contains("Traffic this month: 8.0 GB of 10.0 GB (resets on 1 Feb 2027)"),
            "{en}"
        );
        assert!(en.contains("Traffic in total: 12.5 GB"), "{en}");
        let ru = status(Locale::Ru);
        assert!(
            ru.contains("8,0 ГБ из 10,0 ГБ (счётчик обнулится 01.02.2027)"),
            "{ru}"
        );
    }

    #[test]
    fn server_buttons_say_what_they_do_and_what_the_figure_means() {
        let line = ServerLine {
            name: "fra1".into(),
            region: "Frankfurt".into(),
            load_percent: 0,
            availability: Availability::Up,
            transport: TransportKind::Wireguard,
        };
        assert_eq!(
            Text::NewDeviceButton { server: &line }.render(Locale::En),
            "➕ fra1 (Frankfurt), 0% full"
        );
        assert_eq!(
            Text::NewDeviceButton { server: &line }.render(Locale::Ru),
            "➕ fra1 (Frankfurt), заполнен на 0%"
        );
        let menu = Text::ChooseServer {
            devices: 1,
            limit: 3,
            resend: true,
        }
        .render(Locale::En);
        assert!(
            menu.contains("➕ a new device") && menu.contains("📄") && menu.contains("how full"),
            "{menu}"
        );
        let ru = Text::ChooseServer {
            devices: 2,
            limit: 3,
            resend: true,
        }
        .render(Locale::Ru);
        assert!(ru.contains("У вас 2 устройства из 3"), "{ru}");
    }

    #[test]
    fn the_config_is_deleted_in_words_that_agree_with_the_number() {
        let ru = Text::QrCaption {
            delete_after: Some(Duration::from_secs(60)),
            awg: false,
        }
        .render(Locale::Ru);
        assert!(ru.contains("через 1 минуту"), "{ru}");
        let en = Text::QrCaption {
            delete_after: Some(Duration::from_secs(600)),
            awg: false,
        }
        .render(Locale::En);
        assert!(en.contains("in 10 minutes"), "{en}");
        assert!(
            !Text::QrCaption {
                delete_after: None,
                awg: false
            }
            .render(Locale::En)
            .contains("deleted")
        );
    }

    #[test]
    fn admin_notices_count_devices() {
        let en = Text::NodeEvacuated {
            name: "fra1",
            moved: 1,
            failed: 0,
        }
        .render(Locale::En);
        assert!(en.contains("1 device moved"), "{en}");
        let ru = Text::NodeEvacuated {
            name: "fra1",
            moved: 22,
            failed: 5,
        }
        .render(Locale::Ru);
        assert!(
            ru.contains("перенесено 22 устройства, не удалось перенести 5 устройств"),
            "{ru}"
        );
        let down = Text::NodeHealthChanged {
            name: "fra1",
            from: Health::Up,
            to: Health::Down,
            reason: "no report for 95 s",
        }
        .render(Locale::En);
        assert!(
            down.contains("fra1 is down") && down.contains("no report for 95 s"),
            "{down}"
        );
    }
}
