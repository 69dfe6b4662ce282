//! Every text the bot sends, in English and Russian. Nothing user-visible is
//! written inline in the handlers.

use vpnctl_core::Locale;

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
    pub load_percent: u32,
    pub available: bool,
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
        active: bool,
        until: Option<String>,
        days_left: Option<i64>,
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
}

fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n;
    let mut unit = 0;
    while value >= 1024 * 10 && unit + 1 < UNITS.len() {
        value /= 1024;
        unit += 1;
    }
    format!("{value} {}", UNITS[unit])
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
            (Self::Status { active, until, days_left, devices }, l) => status(*active, until.as_deref(), *days_left, devices, l),
            (Self::Servers { servers }, En) => {
                if servers.is_empty() {
                    return "No servers yet.".into();
                }
                let mut s = String::from("Servers:");
                for srv in *servers {
                    s.push_str(&format!(
                        "\n• {} ({}) — load {}%{}",
                        srv.name, srv.region, srv.load_percent,
                        if srv.available { "" } else { ", not available" }
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
                        if srv.available { "" } else { ", недоступен" }
                    ));
                }
                s
            }
            (Self::ServerButton { server, yours }, En) => format!(
                "{} · {} · {}%{}",
                server.region, server.name, server.load_percent,
                if *yours { " · your device" } else { "" }
            ),
            (Self::ServerButton { server, yours }, Ru) => format!(
                "{} · {} · {}%{}",
                server.region, server.name, server.load_percent,
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
        }
    }
}

fn status(
    active: bool,
    until: Option<&str>,
    days_left: Option<i64>,
    devices: &[DeviceLine],
    l: Locale,
) -> String {
    let mut s = match (l, active) {
        (Locale::En, true) => "Access: active".to_owned(),
        (Locale::En, false) => "Access: ended".to_owned(),
        (Locale::Ru, true) => "Доступ: активен".to_owned(),
        (Locale::Ru, false) => "Доступ: закончился".to_owned(),
    };
    match (l, until, days_left) {
        (Locale::En, Some(u), Some(d)) => {
            s.push_str(&format!("\nUntil: {u} ({} days left)", d.max(0)));
        }
        (Locale::Ru, Some(u), Some(d)) => {
            s.push_str(&format!("\nДо: {u} (осталось дней: {})", d.max(0)));
        }
        (Locale::En, _, _) => s.push_str("\nUntil: unlimited"),
        (Locale::Ru, _, _) => s.push_str("\nДо: бессрочно"),
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
                bytes(d.tx_bytes),
                bytes(d.rx_bytes),
            ));
        }
    }
    s
}

/// `/nodes` for admins.
pub fn admin_nodes(nodes: &[vpnctl_client::api::NodeView], l: Locale) -> String {
    let mut s = match l {
        Locale::En => format!("Nodes: {}", nodes.len()),
        Locale::Ru => format!("Узлы: {}", nodes.len()),
    };
    for n in nodes {
        s.push_str(&format!(
            "\n• {} [{}] {} — {}, {:?}, peers {}/{}, connected {}",
            n.node.name,
            n.node.id,
            n.node.region.code,
            n.node.state,
            n.health.status,
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
            active: true,
            until: Some("2030-01-01".into()),
            days_left: Some(12),
            devices: &devices,
        }
        .render(Locale::En);
        assert!(text.contains("12 days left"), "{text}");
        assert!(text.contains("phone — fra-1"), "{text}");
        assert!(text.contains("30 s ago"), "{text}");
        assert!(text.contains("↓50 MiB"), "{text}");
    }
}
