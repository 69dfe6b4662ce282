//! Every text with sample values, in both languages: what docs/bot.md lists for a
//! native speaker to read. `cargo test -p vpnctl-bot texts_are_listed` fails when
//! the list there is out of date; `UPDATE_BOT_TEXTS=1` rewrites it.

use std::time::Duration;

use vpnctl_core::api::billing::CheckoutRefusal;
use vpnctl_core::transport::TransportKind;
use vpnctl_core::{Access, Availability, Health, Locale, QuotaPeriod, Timestamp};

use super::{DeviceLine, ServerLine, Text, UsageLine, command_descriptions};

/// The name of a text: an exhaustive match, so that a new variant cannot be
/// added without a name here (and then a sample in [`catalogue`]).
pub fn name(t: &Text<'_>) -> &'static str {
    match t {
        Text::Help { .. } => "Help",
        Text::Welcome { .. } => "Welcome",
        Text::AlreadyMember => "AlreadyMember",
        Text::HowToGetAccess => "HowToGetAccess",
        Text::InviteInvalid => "InviteInvalid",
        Text::InviteExpired => "InviteExpired",
        Text::InviteUsedUp => "InviteUsedUp",
        Text::OtherBotsLink { .. } => "OtherBotsLink",
        Text::TooManyAttempts => "TooManyAttempts",
        Text::NoAccount => "NoAccount",
        Text::MembersOnly => "MembersOnly",
        Text::AccessEnded => "AccessEnded",
        Text::AccountDisabled => "AccountDisabled",
        Text::QuotaUsedUp { .. } => "QuotaUsedUp",
        Text::ChooseServer { .. } => "ChooseServer",
        Text::ChooseAtLimit { .. } => "ChooseAtLimit",
        Text::NewDeviceButton { .. } => "NewDeviceButton",
        Text::ReplaceOnButton { .. } => "ReplaceOnButton",
        Text::ResendButton { .. } => "ResendButton",
        Text::NoServers => "NoServers",
        Text::ServerGone { .. } => "ServerGone",
        Text::ConfigFollows { .. } => "ConfigFollows",
        Text::ConfigCaption { .. } => "ConfigCaption",
        Text::QrCaption { .. } => "QrCaption",
        Text::DeviceLimit { .. } => "DeviceLimit",
        Text::ReplaceButton { .. } => "ReplaceButton",
        Text::CancelButton => "CancelButton",
        Text::Cancelled => "Cancelled",
        Text::ChooseDeviceToRotate => "ChooseDeviceToRotate",
        Text::RotateDeviceButton { .. } => "RotateDeviceButton",
        Text::NoDevices => "NoDevices",
        Text::ConfirmRotate { .. } => "ConfirmRotate",
        Text::RotateButton => "RotateButton",
        Text::Rotated { .. } => "Rotated",
        Text::RateLimited { .. } => "RateLimited",
        Text::Status { .. } => "Status",
        Text::Servers { .. } => "Servers",
        Text::ChooseLanguage => "ChooseLanguage",
        Text::LanguageButton { .. } => "LanguageButton",
        Text::LanguageSet => "LanguageSet",
        Text::PrivateOnly => "PrivateOnly",
        Text::UnknownCommand => "UnknownCommand",
        Text::NotUnderstood => "NotUnderstood",
        Text::TooLong { .. } => "TooLong",
        Text::ButtonInvalid => "ButtonInvalid",
        Text::ButtonUsed => "ButtonUsed",
        Text::ButtonBusy => "ButtonBusy",
        Text::TryAgain => "TryAgain",
        Text::Unavailable => "Unavailable",
        Text::Failed => "Failed",
        Text::NoPrivateKey => "NoPrivateKey",
        Text::NotConfigured => "NotConfigured",
        Text::IssuedNotSent { .. } => "IssuedNotSent",
        Text::RemovedNotIssued { .. } => "RemovedNotIssued",
        Text::RotatedNotSent { .. } => "RotatedNotSent",
        Text::InviteCreated { .. } => "InviteCreated",
        Text::Alert { .. } => "Alert",
        Text::AccessEndsSoon { .. } => "AccessEndsSoon",
        Text::AccessEndedOn { .. } => "AccessEndedOn",
        Text::QuotaWarning { .. } => "QuotaWarning",
        Text::QuotaExceeded { .. } => "QuotaExceeded",
        Text::QuotaRestored => "QuotaRestored",
        Text::DeviceMoved { .. } => "DeviceMoved",
        Text::NodeHealthChanged { .. } => "NodeHealthChanged",
        Text::NodeDrift { .. } => "NodeDrift",
        Text::NodeEvacuated { .. } => "NodeEvacuated",
        Text::TransportHeading { .. } => "TransportHeading",
        Text::TransportAbout { .. } => "TransportAbout",
        Text::BackupFile { .. } => "BackupFile",
        Text::ConfigChanged { .. } => "ConfigChanged",
        Text::NodeTransportChanged { .. } => "NodeTransportChanged",
        Text::ChoosePlan => "ChoosePlan",
        Text::NoPlans => "NoPlans",
        Text::PlanButton { .. } => "PlanButton",
        Text::RenewButton => "RenewButton",
        Text::InvoiceDescription { .. } => "InvoiceDescription",
        Text::CheckoutRefused { .. } => "CheckoutRefused",
        Text::CheckoutUnavailable => "CheckoutUnavailable",
        Text::PaymentPending => "PaymentPending",
        Text::Receipt { .. } => "Receipt",
        Text::Refunded { .. } => "Refunded",
        Text::PaySupport => "PaySupport",
        Text::NoSubscription => "NoSubscription",
        Text::SubscriptionInfo { .. } => "SubscriptionInfo",
        Text::CancelRenewalButton => "CancelRenewalButton",
        Text::ResumeRenewalButton => "ResumeRenewalButton",
        Text::RenewalChanged { .. } => "RenewalChanged",
        Text::Operator { .. } => "Operator",
        Text::Terms => "Terms",
        Text::PaymentNotice { .. } => "PaymentNotice",
        Text::RefundNotice { .. } => "RefundNotice",
        Text::RefundFailedNotice { .. } => "RefundFailedNotice",
        Text::PaymentNotApplied { .. } => "PaymentNotApplied",
    }
}

/// How many texts there are; kept beside [`name`].
pub const TEXTS: usize = 93;

/// Every text (several samples for some), rendered: (name, English, Russian).
#[allow(clippy::too_many_lines)]
pub fn catalogue() -> Vec<(String, String, String)> {
    let now = Timestamp(1_798_804_800); // 2027-01-01T12:00:00Z
    let up = ServerLine {
        name: "fra1".into(),
        region: "Frankfurt".into(),
        load_percent: 12,
        availability: Availability::Up,
        transport: TransportKind::Wireguard,
    };
    let servers = [
        up.clone(),
        ServerLine {
            name: "ams1".into(),
            region: "Amsterdam".into(),
            load_percent: 40,
            availability: Availability::Degraded,
            transport: TransportKind::Wireguard,
        },
        ServerLine {
            name: "waw1".into(),
            region: "Warsaw".into(),
            load_percent: 100,
            availability: Availability::Full,
            transport: TransportKind::Wireguard,
        },
        ServerLine {
            name: "hel1".into(),
            region: "Helsinki".into(),
            load_percent: 3,
            availability: Availability::Down,
            transport: TransportKind::Wireguard,
        },
        ServerLine {
            name: "par1".into(),
            region: "Paris".into(),
            load_percent: 60,
            availability: Availability::Draining,
            transport: TransportKind::Wireguard,
        },
    ];
    let devices = [
        DeviceLine {
            device: "device1".into(),
            server: "fra1".into(),
            connected_ago: Some(300),
            rx_bytes: 1_000_000,
            tx_bytes: 52_400_000,
            transport: TransportKind::Wireguard,
        },
        DeviceLine {
            device: "device2".into(),
            server: "ams1".into(),
            connected_ago: None,
            rx_bytes: 0,
            tx_bytes: 0,
            transport: TransportKind::Wireguard,
        },
    ];
    let usage = UsageLine {
        period: QuotaPeriod::Monthly,
        period_bytes: 1_000_000_000,
        total_bytes: 12_500_000_000,
        limit: Some(4_000_000_000),
        resets: Timestamp(1_801_483_200),
    };
    let plain_usage = UsageLine {
        limit: None,
        ..usage.clone()
    };
    let samples: Vec<Text<'_>> = vec![
        Text::Help { admin: false },
        Text::Help { admin: true },
        Text::Welcome {
            until: Some(now.plus_days(30)),
            devices: 3,
        },
        Text::Welcome {
            until: None,
            devices: 1,
        },
        Text::AlreadyMember,
        Text::HowToGetAccess,
        Text::InviteInvalid,
        Text::InviteExpired,
        Text::InviteUsedUp,
        Text::OtherBotsLink { bot: "other_bot" },
        Text::TooManyAttempts,
        Text::NoAccount,
        Text::MembersOnly,
        Text::AccessEnded,
        Text::AccountDisabled,
        Text::QuotaUsedUp {
            until: Some(Timestamp(1_801_483_200)),
        },
        Text::QuotaUsedUp { until: None },
        Text::ChooseServer {
            devices: 2,
            limit: 3,
            resend: true,
        },
        Text::ChooseServer {
            devices: 0,
            limit: 5,
            resend: false,
        },
        Text::ChooseAtLimit { limit: 3 },
        Text::NewDeviceButton { server: &up },
        Text::NewDeviceButton {
            server: &servers[1],
        },
        Text::ReplaceOnButton { server: &up },
        Text::ResendButton {
            device: "device1",
            server: "fra1",
        },
        Text::NoServers,
        Text::ServerGone { server: "fra1" },
        Text::ConfigFollows {
            device: "device2",
            server: "fra1",
        },
        Text::ConfigCaption {
            device: "device2",
            server: "fra1",
            awg: false,
        },
        Text::ConfigCaption {
            device: "device2",
            server: "fra1",
            awg: true,
        },
        Text::QrCaption {
            delete_after: Some(Duration::from_secs(600)),
            awg: false,
        },
        Text::QrCaption {
            delete_after: None,
            awg: false,
        },
        Text::QrCaption {
            delete_after: Some(Duration::from_secs(600)),
            awg: true,
        },
        Text::TransportHeading {
            transport: TransportKind::Wireguard,
        },
        Text::TransportHeading {
            transport: TransportKind::Amneziawg,
        },
        Text::TransportAbout {
            transport: TransportKind::Wireguard,
        },
        Text::BackupFile {
            file: "vpnctl-20270115T080000Z.backup.age",
            part: 1,
            parts: 1,
            bytes: 2_400_000,
        },
        Text::BackupFile {
            file: "vpnctl-20270115T080000Z.backup.age",
            part: 2,
            parts: 3,
            bytes: 120_000_000,
        },
        Text::TransportAbout {
            transport: TransportKind::Amneziawg,
        },
        Text::DeviceLimit {
            limit: 2,
            server: "fra1",
        },
        Text::ReplaceButton {
            device: "device1",
            server: "ams1",
        },
        Text::CancelButton,
        Text::Cancelled,
        Text::ChooseDeviceToRotate,
        Text::RotateDeviceButton {
            device: "device1",
            server: "fra1",
        },
        Text::NoDevices,
        Text::ConfirmRotate {
            device: "device1",
            server: "fra1",
        },
        Text::RotateButton,
        Text::Rotated {
            device: "device1",
            server: "fra1",
        },
        Text::RateLimited {
            wait: Duration::from_secs(21 * 60),
        },
        Text::Status {
            access: Access::Active {
                until: Some(now.plus_days(22)),
            },
            now,
            usage: Some(&usage),
            devices: &devices,
            limit: 3,
        },
        Text::Status {
            access: Access::Active { until: None },
            now,
            usage: Some(&plain_usage),
            devices: &[],
            limit: 1,
        },
        Text::Status {
            access: Access::Active {
                until: Some(now.plus_seconds(3600)),
            },
            now,
            usage: None,
            devices: &devices[..1],
            limit: 1,
        },
        Text::Status {
            access: Access::Suspended {
                resumes: Timestamp(1_801_483_200),
                until: Some(now.plus_days(90)),
            },
            now,
            usage: Some(&usage),
            devices: &devices[..1],
            limit: 2,
        },
        Text::Status {
            access: Access::Lapsed {
                ended: now.plus_days(-1),
            },
            now,
            usage: None,
            devices: &devices[..1],
            limit: 2,
        },
        Text::Status {
            access: Access::Disabled,
            now,
            usage: None,
            devices: &[],
            limit: 2,
        },
        Text::Servers { servers: &servers },
        Text::Servers { servers: &[] },
        Text::ChooseLanguage,
        Text::LanguageButton {
            language: Locale::En,
        },
        Text::LanguageButton {
            language: Locale::Ru,
        },
        Text::LanguageSet,
        Text::PrivateOnly,
        Text::UnknownCommand,
        Text::NotUnderstood,
        Text::TooLong { max: 1024 },
        Text::ButtonInvalid,
        Text::ButtonUsed,
        Text::ButtonBusy,
        Text::TryAgain,
        Text::Unavailable,
        Text::Failed,
        Text::NoPrivateKey,
        Text::NotConfigured,
        Text::IssuedNotSent { device: "device2" },
        Text::RemovedNotIssued { device: "device1" },
        Text::RotatedNotSent { device: "device1" },
        Text::InviteCreated {
            link: "https://t.me/vpn_bot?start=AbCdEfGhIjKlMnOpQrStUv",
            days: Some(30),
            devices: 2,
        },
        Text::InviteCreated {
            link: "https://t.me/vpn_bot?start=AbCdEfGhIjKlMnOpQrStUv",
            days: None,
            devices: 1,
        },
        Text::Alert {
            text: "node fra1 is down",
        },
        Text::AccessEndsSoon {
            until: now.plus_days(3),
            now,
            renew: false,
        },
        Text::AccessEndsSoon {
            until: now.plus_days(1),
            now,
            renew: true,
        },
        Text::AccessEndsSoon {
            until: now.plus_seconds(8),
            now,
            renew: false,
        },
        Text::AccessEndedOn {
            until: now,
            renew: false,
        },
        Text::AccessEndedOn {
            until: now,
            renew: true,
        },
        Text::QuotaWarning {
            used: 3_400_000_000,
            limit: 4_000_000_000,
            resets: Timestamp(1_801_483_200),
        },
        Text::QuotaExceeded {
            used: 4_100_000_000,
            limit: 4_000_000_000,
            resets: Timestamp(1_801_483_200),
        },
        Text::QuotaRestored,
        Text::DeviceMoved {
            device: "device1",
            from: "fra1",
            to: "ams1",
            region: "Amsterdam",
            config_follows: true,
        },
        Text::DeviceMoved {
            device: "device1",
            from: "fra1",
            to: "ams1",
            region: "Amsterdam",
            config_follows: false,
        },
        Text::NodeHealthChanged {
            name: "fra1",
            from: Health::Up,
            to: Health::Down,
            reason: "no report for 95 s",
        },
        Text::NodeHealthChanged {
            name: "fra1",
            from: Health::Down,
            to: Health::Up,
            reason: "ok",
        },
        Text::NodeDrift {
            name: "fra1",
            removed: 2,
        },
        Text::NodeEvacuated {
            name: "fra1",
            moved: 21,
            failed: 2,
        },
        Text::ConfigChanged {
            device: "device1",
            server: "fra1",
            transport: TransportKind::Amneziawg,
            config_follows: true,
        },
        Text::ConfigChanged {
            device: "device1",
            server: "fra1",
            transport: TransportKind::Amneziawg,
            config_follows: false,
        },
        Text::NodeTransportChanged {
            name: "fra1",
            transport: TransportKind::Amneziawg,
            devices: 12,
        },
        Text::ChoosePlan,
        Text::NoPlans,
        Text::PlanButton {
            name: "Month",
            days: 30,
            stars: 150,
        },
        Text::RenewButton,
        Text::InvoiceDescription {
            days: 30,
            devices: 3,
            quota: None,
        },
        Text::InvoiceDescription {
            days: 1,
            devices: 1,
            quota: Some(vpnctl_core::Quota {
                bytes: 100_000_000_000,
                period: QuotaPeriod::Monthly,
            }),
        },
        Text::CheckoutRefused {
            refusal: CheckoutRefusal::Expired,
        },
        Text::CheckoutRefused {
            refusal: CheckoutRefusal::AlreadyPaid,
        },
        Text::CheckoutRefused {
            refusal: CheckoutRefusal::PlanRetired,
        },
        Text::CheckoutRefused {
            refusal: CheckoutRefusal::PriceChanged,
        },
        Text::CheckoutRefused {
            refusal: CheckoutRefusal::OtherUser,
        },
        Text::CheckoutRefused {
            refusal: CheckoutRefusal::UserDisabled,
        },
        Text::CheckoutRefused {
            refusal: CheckoutRefusal::UnknownOrder,
        },
        Text::CheckoutUnavailable,
        Text::PaymentPending,
        Text::Receipt {
            plan: "Month",
            stars: 150,
            days: 30,
            until: Some(now.plus_days(45)),
        },
        Text::Refunded {
            stars: 150,
            until: Some(now.plus_days(15)),
        },
        Text::NoSubscription,
        Text::SubscriptionInfo {
            plan: "Month",
            stars: 150,
            until: Some(now.plus_days(30)),
            cancelled: false,
        },
        Text::SubscriptionInfo {
            plan: "Month",
            stars: 150,
            until: Some(now.plus_days(30)),
            cancelled: true,
        },
        Text::CancelRenewalButton,
        Text::ResumeRenewalButton,
        Text::RenewalChanged {
            plan: "Month",
            until: Some(now.plus_days(30)),
            cancelled: true,
        },
        Text::RenewalChanged {
            plan: "Month",
            until: Some(now.plus_days(30)),
            cancelled: false,
        },
        Text::PaySupport,
        Text::Operator {
            text: "Write to @example_support about payments.",
        },
        Text::Terms,
        Text::PaymentNotice {
            user: "Anna",
            plan: "Month",
            stars: 150,
        },
        Text::RefundNotice {
            user: "Anna",
            stars: 150,
        },
        Text::RefundFailedNotice {
            payment: 17,
            reason: "Bad Request: BALANCE_TOO_LOW",
        },
        Text::PaymentNotApplied {
            user: 123_456_789,
            stars: 150,
            charge: "stxAbC123",
            reason: "order 99 does not exist",
        },
    ];
    let mut out: Vec<(String, String, String)> = samples
        .iter()
        .map(|t| {
            (
                name(t).to_owned(),
                t.render(Locale::En),
                t.render(Locale::Ru),
            )
        })
        .collect();
    let (en, ru) = (
        command_descriptions(Locale::En),
        command_descriptions(Locale::Ru),
    );
    for ((command, en), (_, ru)) in en.iter().zip(&ru) {
        out.push((
            format!("command /{command}"),
            (*en).to_owned(),
            (*ru).to_owned(),
        ));
    }
    out
}

/// The catalogue as docs/bot.md shows it.
pub fn markdown() -> String {
    let mut s = String::new();
    for (name, en, ru) in catalogue() {
        s.push_str(&format!("**{name}**\n\n```text\n"));
        for (tag, text) in [("en", en), ("ru", ru)] {
            for (i, line) in text.lines().enumerate() {
                let lead = if i == 0 { tag } else { "  " };
                s.push_str(&format!("{lead} │ {line}\n"));
            }
        }
        s.push_str("```\n\n");
    }
    s
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    const BEGIN: &str = "<!-- texts:begin -->\n";
    const END: &str = "<!-- texts:end -->";

    #[test]
    fn every_text_has_a_sample() {
        let names: HashSet<String> = catalogue()
            .into_iter()
            .map(|(n, _, _)| n)
            .filter(|n| !n.starts_with("command "))
            .collect();
        assert_eq!(names.len(), TEXTS, "a text without a sample: {names:?}");
    }

    #[test]
    fn russian_and_english_differ_where_words_are_shown() {
        for (name, en, ru) in catalogue() {
            let same_by_design = matches!(
                name.as_str(),
                "ChooseLanguage"
                    | "LanguageButton"
                    | "ResendButton"
                    | "RotateDeviceButton"
                    // The operator's own words, in whatever language they wrote.
                    | "Operator"
            );
            if !same_by_design {
                assert_ne!(en, ru, "{name} is not translated");
            }
        }
    }

    #[test]
    fn texts_are_listed_in_the_docs() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/bot.md");
        let doc = std::fs::read_to_string(path).unwrap();
        let (Some(start), Some(end)) = (doc.find(BEGIN), doc.find(END)) else {
            panic!("docs/bot.md has no {BEGIN:?} … {END:?} section");
        };
        let listed = &doc[start + BEGIN.len()..end];
        let current = markdown();
        if listed != current {
            if std::env::var_os("UPDATE_BOT_TEXTS").is_some() {
                let updated = format!("{}{current}{}", &doc[..start + BEGIN.len()], &doc[end..]);
                std::fs::write(path, updated).unwrap();
            } else {
                panic!(
                    "docs/bot.md lists other texts than the bot shows; run with UPDATE_BOT_TEXTS=1 to rewrite the list"
                );
            }
        }
    }
}
