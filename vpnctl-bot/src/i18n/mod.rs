//! Every text the bot sends, in English and Russian. Nothing user-visible is
//! written inline in the handlers.

use vpnctl_core::{Access, Availability, Health, Locale, QuotaPeriod};

/// One device line of `/status`.
#[derive(Debug, Clone)]
pub struct DeviceLine {
    pub device: String,
    pub server: String,
    /// Seconds since the last handshake, if the node reported one.
    pub handshake_ago: Option<i64>,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
}

/// One server line of `/servers` and the `/get_config` keyboard.
#[derive(Debug, Clone)]
pub struct ServerLine {
    pub name: String,
    pub region: String,
    pub load_percent: u8,
    /// Core's mark: whether and how the server takes new devices.
    pub availability: Availability,
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
    /// When the period (and the quota) resets, as a date.
    pub resets: String,
    pub suspended: bool,
}

/// A message (or button label) to show; [`Text::render`] picks the language.
#[derive(Debug, Clone)]
pub enum Text<'a> {
    Help {
        admin: bool,
    },
    Welcome {
        until: Option<String>,
        devices: u32,
    },
    AlreadyMember,
    HowToGetAccess,
    InviteInvalid,
    InviteExpired,
    InviteUsedUp,
    TooManyAttempts,
    NoAccount,
    AccessEnded,
    AccountDisabled,
    ChooseServer,
    NoServers,
    PreparingConfig {
        server: &'a str,
    },
    ConfigCaption {
        server: &'a str,
    },
    ImportHelp,
    DeletedAfter {
        minutes: u64,
    },
    DeviceLimit {
        limit: u32,
    },
    ReplaceButton {
        device: &'a str,
        server: &'a str,
    },
    CancelButton,
    Cancelled,
    ChooseDeviceToRotate,
    NoDevices,
    ConfirmRotate {
        device: &'a str,
        server: &'a str,
    },
    RotateButton,
    Rotated,
    RateLimited {
        minutes: u64,
    },
    Status {
        access: Access,
        days_left: Option<u32>,
        usage: Option<&'a UsageLine>,
        devices: &'a [DeviceLine],
    },
    Servers {
        servers: &'a [ServerLine],
    },
    ServerButton {
        server: &'a ServerLine,
        yours: bool,
    },
    ChooseLanguage,
    LanguageSet,
    PrivateOnly,
    UnknownCommand,
    NotUnderstood,
    TooLong,
    ButtonInvalid,
    ButtonUsed,
    Unavailable,
    Failed,
    NoPrivateKey,
    NotConfigured,
    InviteCreated {
        link: &'a str,
        days: Option<u32>,
        devices: u32,
    },
    Alert {
        text: &'a str,
    },
    /// The traffic quota is used up (an API refusal); `until` when known.
    QuotaUsedUp {
        until: Option<String>,
    },
    // Notifications to users.
    AccessEndsSoon {
        until: String,
        days_left: u32,
    },
    AccessEndedOn {
        until: String,
    },
    QuotaWarning {
        used: u64,
        limit: u64,
        resets: String,
    },
    QuotaExceeded {
        used: u64,
        limit: u64,
        resets: String,
    },
    QuotaRestored,
    /// A device was moved to another server; `config_follows` when the new config
    /// is sent right after, else the user is pointed to /get_config.
    DeviceMoved {
        device: &'a str,
        from: &'a str,
        to: &'a str,
        region: &'a str,
        config_follows: bool,
    },
    // Notifications to admins.
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
}

/// A human size in decimal units with one decimal: `8.0 GB`, `8,0 ГБ`.
pub fn size(n: u64, l: Locale) -> String {
    vpnctl_core::units::traffic(n, l)
}

/// "1 день", "2 дня", "5 дней".
fn days_ru(n: u32) -> String {
    let word = match (n % 10, n % 100) {
        (1, m) if m != 11 => "день",
        (2..=4, m) if !(12..=14).contains(&m) => "дня",
        _ => "дней",
    };
    format!("{n} {word}")
}

fn days_en(n: u32) -> String {
    if n == 1 {
        "1 day".into()
    } else {
        format!("{n} days")
    }
}

fn health_en(h: Health) -> &'static str {
    match h {
        Health::Unknown => "unknown",
        Health::Up => "up",
        Health::Degraded => "degraded",
        Health::Down => "down",
    }
}

fn health_ru(h: Health) -> &'static str {
    match h {
        Health::Unknown => "неизвестно",
        Health::Up => "работает",
        Health::Degraded => "работает с перебоями",
        Health::Down => "не работает",
    }
}

fn ago(secs: Option<i64>, l: Locale) -> String {
    let Some(s) = secs else {
        return match l {
            Locale::En => "never".into(),
            Locale::Ru => "не было".into(),
        };
    };
    let s = s.max(0);
    let (n, en, ru) = if s < 120 {
        (s, "s", "с")
    } else if s < 7200 {
        (s / 60, "min", "мин")
    } else if s < 172_800 {
        (s / 3600, "h", "ч")
    } else {
        (s / 86_400, "d", "дн")
    };
    match l {
        Locale::En => format!("{n} {en} ago"),
        Locale::Ru => format!("{n} {ru} назад"),
    }
}

impl Text<'_> {
    /// The text in language `l`.
    #[allow(clippy::too_many_lines)]
    pub fn render(&self, l: Locale) -> String {
        use Locale::{En, Ru};
        match (self, l) {
            (Self::Help { admin }, En) => {
                let mut s = String::from(
                    "vpnctl VPN bot\n\n/get_config — get a WireGuard config for a server\n/status — your access and devices\n/regen — replace a device's key\n/servers — servers and their load\n/language — English / Русский\n/start CODE — activate an invite",
                );
                if *admin {
                    s.push_str("\n\nAdmin:\n/nodes — nodes and health\n/users — users\n/invite [days] [devices] — create an invite link");
                }
                s
            }
            (Self::Help { admin }, Ru) => {
                let mut s = String::from(
                    "Бот VPN vpnctl\n\n/get_config — получить конфигурацию WireGuard\n/status — доступ и устройства\n/regen — заменить ключ устройства\n/servers — серверы и их загрузка\n/language — English / Русский\n/start КОД — активировать приглашение",
                );
                if *admin {
                    s.push_str("\n\nАдминистратор:\n/nodes — узлы и их состояние\n/users — пользователи\n/invite [дни] [устройства] — создать приглашение");
                }
                s
            }
            (Self::Welcome { until, devices }, En) => format!(
                "Welcome! Your access is active{}. Devices: up to {devices}.\nSend /get_config to get your VPN config.",
                until.as_ref().map(|u| format!(" until {u}")).unwrap_or_default()
            ),
            (Self::Welcome { until, devices }, Ru) => format!(
                "Добро пожаловать! Доступ активен{}. Устройств: до {devices}.\nОтправьте /get_config, чтобы получить конфигурацию VPN.",
                until.as_ref().map(|u| format!(" до {u}")).unwrap_or_default()
            ),
            (Self::AlreadyMember, En) => "You already have an account. /get_config sends your config, /status shows your access.".into(),
            (Self::AlreadyMember, Ru) => "У вас уже есть аккаунт. /get_config пришлёт конфигурацию, /status покажет доступ.".into(),
            (Self::HowToGetAccess, En) => "This VPN is by invitation. Ask the administrator for an invite link, or send me your invite code here.".into(),
            (Self::HowToGetAccess, Ru) => "Этот VPN работает по приглашениям. Попросите у администратора ссылку-приглашение или пришлите код приглашения сюда.".into(),
            (Self::InviteInvalid, En) => "This invite code is not valid. Check it or ask for a new one.".into(),
            (Self::InviteInvalid, Ru) => "Этот код приглашения недействителен. Проверьте его или попросите новый.".into(),
            (Self::InviteExpired, En) => "This invite has expired. Ask the administrator for a new one.".into(),
            (Self::InviteExpired, Ru) => "Срок действия приглашения истёк. Попросите у администратора новое.".into(),
            (Self::InviteUsedUp, En) => "This invite has already been used. Ask the administrator for a new one.".into(),
            (Self::InviteUsedUp, Ru) => "Это приглашение уже использовано. Попросите у администратора новое.".into(),
            (Self::TooManyAttempts, En) => "Too many attempts. Try again later.".into(),
            (Self::TooManyAttempts, Ru) => "Слишком много попыток. Попробуйте позже.".into(),
            (Self::NoAccount, En) => "You have no account yet. Open your invite link or send /start CODE.".into(),
            (Self::NoAccount, Ru) => "У вас ещё нет аккаунта. Откройте ссылку-приглашение или отправьте /start КОД.".into(),
            (Self::AccessEnded, En) => "Your access has ended. Contact the administrator to extend it.".into(),
            (Self::AccessEnded, Ru) => "Ваш доступ закончился. Обратитесь к администратору, чтобы продлить его.".into(),
            (Self::AccountDisabled, En) => "Your account is disabled. Contact the administrator.".into(),
            (Self::AccountDisabled, Ru) => "Ваш аккаунт отключён. Обратитесь к администратору.".into(),
            (Self::ChooseServer, En) => "Choose a server:".into(),
            (Self::ChooseServer, Ru) => "Выберите сервер:".into(),
            (Self::NoServers, En) => "No server is available right now. Try again later.".into(),
            (Self::NoServers, Ru) => "Сейчас нет доступных серверов. Попробуйте позже.".into(),
            (Self::PreparingConfig { server }, En) => format!("Server: {server}. Your config follows."),
            (Self::PreparingConfig { server }, Ru) => format!("Сервер: {server}. Ваша конфигурация ниже."),
            (Self::ConfigCaption { server }, En) => format!("WireGuard config — {server}"),
            (Self::ConfigCaption { server }, Ru) => format!("Конфигурация WireGuard — {server}"),
            (Self::ImportHelp, En) => "How to connect:\n• Windows: install WireGuard, click “Import tunnel(s) from file”, choose the .conf file, then “Activate”.\n• iPhone/iPad: install WireGuard from the App Store, tap “+” → “Create from QR code” and scan the picture (or open the .conf file with WireGuard).".into(),
            (Self::ImportHelp, Ru) => "Как подключиться:\n• Windows: установите WireGuard, нажмите «Импорт туннелей из файла», выберите файл .conf, затем «Подключить».\n• iPhone/iPad: установите WireGuard из App Store, нажмите «+» → «Создать из QR-кода» и отсканируйте картинку (или откройте файл .conf в WireGuard).".into(),
            (Self::DeletedAfter { minutes }, En) => format!("For your safety the config and QR code will be deleted from this chat in {minutes} min. /get_config sends them again."),
            (Self::DeletedAfter { minutes }, Ru) => format!("Для безопасности конфигурация и QR-код будут удалены из чата через {minutes} мин. /get_config пришлёт их снова."),
            (Self::DeviceLimit { limit }, En) => format!("You already have {limit} device(s), your limit. Replace one of them with a new device on this server?"),
            (Self::DeviceLimit { limit }, Ru) => format!("У вас уже {limit} устройств(а) — это ваш предел. Заменить одно из них новым устройством на этом сервере?"),
            (Self::ReplaceButton { device, server }, En) => format!("Replace {device} ({server})"),
            (Self::ReplaceButton { device, server }, Ru) => format!("Заменить {device} ({server})"),
            (Self::CancelButton, En) => "Cancel".into(),
            (Self::CancelButton, Ru) => "Отмена".into(),
            (Self::Cancelled, En) => "Cancelled.".into(),
            (Self::Cancelled, Ru) => "Отменено.".into(),
            (Self::ChooseDeviceToRotate, En) => "Which device's key should be replaced?".into(),
            (Self::ChooseDeviceToRotate, Ru) => "Ключ какого устройства заменить?".into(),
            (Self::NoDevices, En) => "You have no devices yet. /get_config creates one.".into(),
            (Self::NoDevices, Ru) => "У вас ещё нет устройств. /get_config создаст его.".into(),
            (Self::ConfirmRotate { device, server }, En) => format!("Replace the key of {device} ({server})? The old config stops working at once; you will get a new one."),
            (Self::ConfirmRotate { device, server }, Ru) => format!("Заменить ключ {device} ({server})? Старая конфигурация сразу перестанет работать; вы получите новую."),
            (Self::RotateButton, En) => "Yes, replace the key".into(),
            (Self::RotateButton, Ru) => "Да, заменить ключ".into(),
            (Self::Rotated, En) => "Key replaced. Import the new config below; the old one no longer works.".into(),
            (Self::Rotated, Ru) => "Ключ заменён. Импортируйте новую конфигурацию ниже; старая больше не работает.".into(),
            (Self::RateLimited { minutes }, En) => format!("Too many requests. Try again in {minutes} min."),
            (Self::RateLimited { minutes }, Ru) => format!("Слишком много запросов. Попробуйте через {minutes} мин."),
            (Self::Status { access, days_left, usage, devices }, l) => status(*access, *days_left, *usage, devices, l),
            (Self::Servers { servers }, En) => {
                if servers.is_empty() {
                    return "No servers yet.".into();
                }
                let mut s = String::from("Servers:");
                for srv in *servers {
                    s.push_str(&format!(
                        "\n• {} ({}) — load {}%{}",
                        srv.name, srv.region, srv.load_percent,
                        mark(srv.availability, ", ", En)
                    ));
                }
                s
            }
            (Self::Servers { servers }, Ru) => {
                if servers.is_empty() {
                    return "Серверов пока нет.".into();
                }
                let mut s = String::from("Серверы:");
                for srv in *servers {
                    s.push_str(&format!(
                        "\n• {} ({}) — загрузка {}%{}",
                        srv.name, srv.region, srv.load_percent,
                        mark(srv.availability, ", ", Ru)
                    ));
                }
                s
            }
            (Self::ServerButton { server, yours }, En) => format!(
                "{} · {} · {}%{}{}",
                server.region, server.name, server.load_percent,
                mark(server.availability, " · ", En),
                if *yours { " · your device" } else { "" }
            ),
            (Self::ServerButton { server, yours }, Ru) => format!(
                "{} · {} · {}%{}{}",
                server.region, server.name, server.load_percent,
                mark(server.availability, " · ", Ru),
                if *yours { " · ваше устройство" } else { "" }
            ),
            (Self::ChooseLanguage, _) => "Choose your language / Выберите язык:".into(),
            (Self::LanguageSet, En) => "Language: English.".into(),
            (Self::LanguageSet, Ru) => "Язык: русский.".into(),
            (Self::PrivateOnly, En) => "For your safety I only work in a private chat. Write to me directly.".into(),
            (Self::PrivateOnly, Ru) => "Для безопасности я работаю только в личном чате. Напишите мне напрямую.".into(),
            (Self::UnknownCommand, En) => "Unknown command. /help lists what I can do.".into(),
            (Self::UnknownCommand, Ru) => "Неизвестная команда. /help покажет, что я умею.".into(),
            (Self::NotUnderstood, En) => "I only understand commands. /help lists them.".into(),
            (Self::NotUnderstood, Ru) => "Я понимаю только команды. /help покажет их список.".into(),
            (Self::TooLong, En) => "That message is too long. /help lists the commands.".into(),
            (Self::TooLong, Ru) => "Сообщение слишком длинное. /help покажет список команд.".into(),
            (Self::ButtonInvalid, En) => "This button is not valid.".into(),
            (Self::ButtonInvalid, Ru) => "Эта кнопка недействительна.".into(),
            (Self::ButtonUsed, En) => "This button was already used.".into(),
            (Self::ButtonUsed, Ru) => "Эта кнопка уже использована.".into(),
            (Self::Unavailable, En) => "The VPN service is temporarily unavailable. Please try again in a few minutes.".into(),
            (Self::Unavailable, Ru) => "Сервис VPN временно недоступен. Попробуйте через несколько минут.".into(),
            (Self::Failed, En) => "Something went wrong. Please try again later.".into(),
            (Self::Failed, Ru) => "Что-то пошло не так. Попробуйте позже.".into(),
            (Self::NoPrivateKey, En) => "This device uses its own key, so I cannot send its config. Use /regen to get a new one.".into(),
            (Self::NoPrivateKey, Ru) => "Это устройство использует собственный ключ, поэтому я не могу прислать его конфигурацию. /regen выдаст новую.".into(),
            (Self::NotConfigured, En) => "This is not configured on this bot.".into(),
            (Self::NotConfigured, Ru) => "Это не настроено в боте.".into(),
            (Self::InviteCreated { link, days, devices }, En) => format!(
                "Invite link (single use, {}, {devices} device(s)):\n{link}",
                days.map_or_else(|| "unlimited access".to_owned(), |d| format!("{d} days"))
            ),
            (Self::InviteCreated { link, days, devices }, Ru) => format!(
                "Ссылка-приглашение (одноразовая, {}, устройств: {devices}):\n{link}",
                days.map_or_else(|| "бессрочно".to_owned(), |d| format!("{d} дн."))
            ),
            (Self::Alert { text }, En) => format!("⚠️ Alert: {text}"),
            (Self::Alert { text }, Ru) => format!("⚠️ Оповещение: {text}"),
            (Self::QuotaUsedUp { until: Some(u) }, En) => format!("Your traffic quota is used up. VPN access resumes on {u}, when the quota resets."),
            (Self::QuotaUsedUp { until: Some(u) }, Ru) => format!("Ваша квота трафика исчерпана. Доступ к VPN возобновится {u}, когда квота обновится."),
            (Self::QuotaUsedUp { until: None }, En) => "Your traffic quota is used up. VPN access resumes when the quota resets; /status shows when.".into(),
            (Self::QuotaUsedUp { until: None }, Ru) => "Ваша квота трафика исчерпана. Доступ к VPN возобновится, когда квота обновится; /status покажет когда.".into(),
            (Self::AccessEndsSoon { until, days_left }, En) => format!(
                "⏳ Your VPN access ends in {}, on {until}. Ask the administrator to extend it.",
                days_en(*days_left)
            ),
            (Self::AccessEndsSoon { until, days_left }, Ru) => format!(
                "⏳ Ваш доступ к VPN закончится через {}, {until}. Попросите администратора продлить его.",
                days_ru(*days_left)
            ),
            (Self::AccessEndedOn { until }, En) => format!("Your VPN access ended on {until}; your devices no longer connect. Ask the administrator to extend it."),
            (Self::AccessEndedOn { until }, Ru) => format!("Ваш доступ к VPN закончился {until}; устройства больше не подключаются. Попросите администратора продлить его."),
            (Self::QuotaWarning { used, limit, resets }, En) => format!(
                "You have used {} of your {} traffic quota. It resets on {resets}.",
                size(*used, En), size(*limit, En)
            ),
            (Self::QuotaWarning { used, limit, resets }, Ru) => format!(
                "Вы использовали {} из {} вашей квоты трафика. Квота обновится {resets}.",
                size(*used, Ru), size(*limit, Ru)
            ),
            (Self::QuotaExceeded { used, limit, resets }, En) => format!(
                "Your traffic quota of {} is used up ({} used). VPN access is suspended until {resets}, when the quota resets.",
                size(*limit, En), size(*used, En)
            ),
            (Self::QuotaExceeded { used, limit, resets }, Ru) => format!(
                "Ваша квота трафика {} исчерпана (использовано {}). Доступ к VPN приостановлен до {resets}, когда квота обновится.",
                size(*limit, Ru), size(*used, Ru)
            ),
            (Self::QuotaRestored, En) => "Your traffic quota has been reset: VPN access works again.".into(),
            (Self::QuotaRestored, Ru) => "Ваша квота трафика обновилась: доступ к VPN снова работает.".into(),
            (Self::DeviceMoved { device, from, to, region, config_follows }, En) => format!(
                "Server {from} was taken out of service, so your device {device} was moved to server {to} ({region}). The old config no longer works. {}",
                if *config_follows {
                    "Import the new config below."
                } else {
                    "Send /get_config to get the new one."
                }
            ),
            (Self::DeviceMoved { device, from, to, region, config_follows }, Ru) => format!(
                "Сервер {from} выведен из работы, поэтому ваше устройство {device} перенесено на сервер {to} ({region}). Старая конфигурация больше не работает. {}",
                if *config_follows {
                    "Импортируйте новую конфигурацию ниже."
                } else {
                    "Отправьте /get_config, чтобы получить новую."
                }
            ),
            (Self::NodeHealthChanged { name, from, to, reason }, En) => {
                let (mark, what) = match to {
                    Health::Up => ("🟢", "recovered".to_owned()),
                    Health::Degraded => ("🟠", "is degraded".to_owned()),
                    Health::Down => ("🔴", "is down".to_owned()),
                    Health::Unknown => ("⚪", "is in an unknown state".to_owned()),
                };
                format!("{mark} Node {name} {what} (was {}): {reason}", health_en(*from))
            }
            (Self::NodeHealthChanged { name, from, to, reason }, Ru) => format!(
                "{} Узел {name}: {} (было: {}): {reason}",
                match to {
                    Health::Up => "🟢",
                    Health::Degraded => "🟠",
                    Health::Down => "🔴",
                    Health::Unknown => "⚪",
                },
                health_ru(*to),
                health_ru(*from)
            ),
            (Self::NodeDrift { name, removed }, En) => format!("⚠️ Node {name}: removed {removed} peer(s) from its interface that were not in the desired state (drift)."),
            (Self::NodeDrift { name, removed }, Ru) => format!("⚠️ Узел {name}: с интерфейса удалено пиров не из желаемого состояния: {removed} (расхождение)."),
            (Self::NodeEvacuated { name, moved, failed }, En) => format!(
                "🚚 Node {name} evacuated: {moved} device(s) moved{}; the node is now draining.",
                if *failed > 0 { format!(", {failed} could not be moved") } else { String::new() }
            ),
            (Self::NodeEvacuated { name, moved, failed }, Ru) => format!(
                "🚚 Узел {name} освобождён: перенесено устройств: {moved}{}; узел больше не принимает новые.",
                if *failed > 0 { format!(", не удалось перенести: {failed}") } else { String::new() }
            ),
        }
    }
}

/// How a server's availability reads after its name ("" when it simply works).
fn mark(a: Availability, sep: &str, l: Locale) -> String {
    let word = match (a, l) {
        (Availability::Up, _) => return String::new(),
        (Availability::Degraded, Locale::En) => "⚠️ unstable",
        (Availability::Degraded, Locale::Ru) => "⚠️ работает с перебоями",
        (Availability::Full, Locale::En) => "full",
        (Availability::Full, Locale::Ru) => "мест нет",
        (_, Locale::En) => "not available",
        (_, Locale::Ru) => "недоступен",
    };
    format!("{sep}{word}")
}

fn status(
    access: Access,
    days_left: Option<u32>,
    usage: Option<&UsageLine>,
    devices: &[DeviceLine],
    l: Locale,
) -> String {
    let date = |t: vpnctl_core::Timestamp| t.to_date();
    let mut s = match (access, l) {
        (Access::Active { until: None }, Locale::En) => {
            "Access: active\nUntil: unlimited".to_owned()
        }
        (Access::Active { until: None }, Locale::Ru) => "Доступ: активен\nДо: бессрочно".to_owned(),
        (Access::Active { until: Some(u) }, Locale::En) => format!(
            "Access: active\nUntil: {} ({} days left)",
            date(u),
            days_left.unwrap_or(0)
        ),
        (Access::Active { until: Some(u) }, Locale::Ru) => format!(
            "Доступ: активен\nДо: {} (осталось дней: {})",
            date(u),
            days_left.unwrap_or(0)
        ),
        (Access::Lapsed { ended }, Locale::En) => format!("Access: ended on {}", date(ended)),
        (Access::Lapsed { ended }, Locale::Ru) => format!("Доступ: закончился {}", date(ended)),
        (Access::Disabled, Locale::En) => "Access: turned off by the administrator".to_owned(),
        (Access::Disabled, Locale::Ru) => "Доступ: отключён администратором".to_owned(),
        (Access::Suspended { resumes, until }, Locale::En) => format!(
            "Access: paused until {} (traffic limit reached)\nUntil: {}",
            date(resumes),
            until.map_or_else(|| "unlimited".to_owned(), date)
        ),
        (Access::Suspended { resumes, until }, Locale::Ru) => format!(
            "Доступ: приостановлен до {} (лимит трафика исчерпан)\nДо: {}",
            date(resumes),
            until.map_or_else(|| "бессрочно".to_owned(), date)
        ),
    };
    if let Some(u) = usage {
        s.push_str(&usage_lines(u, l));
    }
    if devices.is_empty() {
        s.push_str(match l {
            Locale::En => "\nDevices: none yet (/get_config)",
            Locale::Ru => "\nУстройства: пока нет (/get_config)",
        });
    } else {
        s.push_str(match l {
            Locale::En => "\nDevices:",
            Locale::Ru => "\nУстройства:",
        });
        for d in devices {
            let (hs, traffic) = match l {
                Locale::En => ("last handshake", "traffic"),
                Locale::Ru => ("последнее рукопожатие", "трафик"),
            };
            s.push_str(&format!(
                "\n• {} — {}; {hs}: {}; {traffic}: ↓{} ↑{}",
                d.device,
                d.server,
                ago(d.handshake_ago, l),
                // The node's rx is what the device sent; show the device's view.
                size(d.tx_bytes, l),
                size(d.rx_bytes, l),
            ));
        }
    }
    s
}

fn usage_lines(u: &UsageLine, l: Locale) -> String {
    let mut s = String::new();
    let period = match (l, u.period) {
        (Locale::En, QuotaPeriod::Daily) => "today",
        (Locale::En, QuotaPeriod::Weekly) => "this week",
        (Locale::En, QuotaPeriod::Monthly) => "this month",
        (Locale::Ru, QuotaPeriod::Daily) => "за сегодня",
        (Locale::Ru, QuotaPeriod::Weekly) => "за эту неделю",
        (Locale::Ru, QuotaPeriod::Monthly) => "за этот месяц",
    };
    let used = size(u.period_bytes, l);
    let resets = &u.resets;
    s.push_str(&match (l, u.limit) {
        (Locale::En, Some(limit)) => format!(
            "\nTraffic {period}: {used} of {} (resets on {resets})",
            size(limit, l)
        ),
        (Locale::Ru, Some(limit)) => format!(
            "\nТрафик {period}: {used} из {} (обновится {resets})",
            size(limit, l)
        ),
        (Locale::En, None) => format!("\nTraffic {period}: {used}"),
        (Locale::Ru, None) => format!("\nТрафик {period}: {used}"),
    });
    s.push_str(&match l {
        Locale::En => format!("\nTraffic in total: {}", size(u.total_bytes, l)),
        Locale::Ru => format!("\nТрафик за всё время: {}", size(u.total_bytes, l)),
    });
    if u.suspended {
        s.push_str(&match l {
            Locale::En => format!("\nSuspended: traffic quota used up until {resets}"),
            Locale::Ru => format!("\nПриостановлен: квота трафика исчерпана до {resets}"),
        });
    }
    s
}

/// `/nodes` for admins.
pub fn admin_nodes(nodes: &[vpnctl_api::body::NodeView], l: Locale) -> String {
    let mut s = match l {
        Locale::En => format!("Nodes: {}", nodes.len()),
        Locale::Ru => format!("Узлы: {}", nodes.len()),
    };
    for n in nodes {
        s.push_str(&format!(
            "\n• {} [{}] {} — {}, {}, peers {}/{}, connected {}",
            n.node.name,
            n.node.id,
            n.node.region.code,
            n.node.state,
            if n.health.status == Health::Up || n.health.reason.is_empty() {
                n.health.status.to_string()
            } else {
                format!("{} ({})", n.health.status, n.health.reason)
            },
            n.peers,
            n.node.capacity,
            n.health.peers_connected,
        ));
    }
    truncate(s)
}

/// `/users` for admins.
pub fn admin_users(users: &[vpnctl_core::User], l: Locale) -> String {
    let mut s = match l {
        Locale::En => format!("Users: {}", users.len()),
        Locale::Ru => format!("Пользователи: {}", users.len()),
    };
    for u in users {
        s.push_str(&format!(
            "\n• {} [{}] tg:{} {:?} until {} devices {}",
            u.name,
            u.id,
            u.telegram_id
                .map_or_else(|| "-".to_owned(), |t| t.to_string()),
            u.state,
            u.until
                .map_or_else(|| "∞".to_owned(), vpnctl_core::Timestamp::to_date),
            u.device_limit,
        ));
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

    #[test]
    fn both_languages_differ() {
        for t in [
            Text::HowToGetAccess,
            Text::PrivateOnly,
            Text::Unavailable,
            Text::ImportHelp,
        ] {
            assert_ne!(t.render(Locale::En), t.render(Locale::Ru));
        }
    }

    #[test]
    fn status_lists_devices() {
        let devices = [DeviceLine {
            device: "phone".into(),
            server: "fra-1".into(),
            handshake_ago: Some(30),
            rx_bytes: 2048,
            tx_bytes: 50 * 1024 * 1024,
        }];
        let text = Text::Status {
            access: Access::Active {
                until: Some(vpnctl_core::Timestamp(1_893_456_000)),
            },
            days_left: Some(12),
            usage: None,
            devices: &devices,
        }
        .render(Locale::En);
        assert!(text.contains("12 days left"), "{text}");
        assert!(text.contains("phone — fra-1"), "{text}");
        assert!(text.contains("30 s ago"), "{text}");
        assert!(text.contains("↓52.4 MB"), "{text}");
        assert!(!text.contains("Traffic"), "{text}");
    }

    #[test]
    fn russian_day_counts_agree() {
        let cases = [
            (1, "1 день"),
            (2, "2 дня"),
            (5, "5 дней"),
            (11, "11 дней"),
            (21, "21 день"),
            (24, "24 дня"),
            (112, "112 дней"),
        ];
        for (n, want) in cases {
            assert_eq!(days_ru(n), want);
        }
    }

    #[test]
    fn status_shows_usage_quota_and_suspension() {
        let usage = UsageLine {
            period: QuotaPeriod::Monthly,
            period_bytes: 8_000_000_000,
            total_bytes: 12_500_000_000,
            limit: Some(10_000_000_000),
            resets: "2030-02-01".into(),
            suspended: true,
        };
        let status = |l| {
            Text::Status {
                access: Access::Active { until: None },
                days_left: None,
                usage: Some(&usage),
                devices: &[],
            }
            .render(l)
        };
        let en = status(Locale::En);
        assert!(
            en.contains("Traffic this month: 8.0 GB of 10.0 GB (resets on 2030-02-01)"),
            "{en}"
        );
        assert!(en.contains("Traffic in total: 12.5 GB"), "{en}");
        assert!(
            en.contains("Suspended: traffic quota used up until 2030-02-01"),
            "{en}"
        );
        let ru = status(Locale::Ru);
        assert!(ru.contains("8,0 ГБ из 10,0 ГБ"), "{ru}");
        assert!(ru.contains("до 2030-02-01"), "{ru}");
    }

    #[test]
    fn notifications_are_worded_per_language() {
        let soon = Text::AccessEndsSoon {
            until: "2030-01-03".into(),
            days_left: 2,
        };
        assert!(
            soon.render(Locale::En)
                .contains("ends in 2 days, on 2030-01-03")
        );
        assert!(soon.render(Locale::Ru).contains("через 2 дня, 2030-01-03"));
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
        let up = Text::NodeHealthChanged {
            name: "fra1",
            from: Health::Down,
            to: Health::Up,
            reason: "ok",
        }
        .render(Locale::En);
        assert!(up.contains("fra1 recovered (was down)"), "{up}");
    }
}
