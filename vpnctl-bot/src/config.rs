//! The bot's settings: [`Settings`] is what flags, environment and a TOML file say
//! (layered by `vpnctl_daemon::settings`: flags > environment > file, every field
//! optional); [`Settings::resolve`] applies the defaults and checks the combinations,
//! giving the [`Config`] the bot runs with.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::Parser;
use serde::{Deserialize, Serialize};
use vpnctl_daemon::SettingsError;

/// A secret string (Telegram or API token, proxy URL with a password): `Debug`
/// prints `***`. It serializes in the clear only so that the settings layers can be
/// merged; it is never logged.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretText(String);

impl SecretText {
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// The secret itself: pass it on, never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl FromStr for SecretText {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

/// How updates reach the bot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum UpdateMode {
    /// `getUpdates` long polling (works behind NAT, no public address needed).
    #[default]
    Polling,
    /// Telegram posts updates to `webhook_url`; requests must carry `webhook_secret`.
    Webhook,
}

/// vpnctl-bot settings as given: command-line flags win over environment variables,
/// which win over the TOML file named by `--config` (every field below is also a
/// TOML key). Unset fields take their defaults in [`Settings::resolve`].
#[derive(Debug, Clone, Default, Parser, Serialize, Deserialize)]
#[command(name = "vpnctl-bot", version, about = "vpnctl Telegram bot")]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// A TOML file with these settings (flags and environment win over it).
    #[arg(long, env = "VPNCTL_BOT_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,

    /// The Telegram bot token from @BotFather.
    #[arg(long, env = "TELOXIDE_TOKEN", hide_env_values = true)]
    pub telegram_token: Option<SecretText>,

    /// Telegram Bot API base URL: a self-hosted Bot API server, or a relay where
    /// api.telegram.org is blocked [default: https://api.telegram.org].
    #[arg(long, env = "VPNCTL_BOT_TELEGRAM_API_URL")]
    pub telegram_api_url: Option<String>,

    /// HTTP(S) proxy for the Telegram connection only, e.g.
    /// `http://user:pass@proxy.example:3128` (the control plane is never proxied).
    #[arg(long, env = "VPNCTL_BOT_TELEGRAM_PROXY", hide_env_values = true)]
    pub telegram_proxy: Option<SecretText>,

    /// vpnctld base URL, e.g. `https://vpn.example.com:7443`.
    #[arg(long, env = "VPNCTL_API_URL")]
    pub api_url: Option<String>,

    /// An API token with the bot scope.
    #[arg(long, env = "VPNCTL_BOT_API_TOKEN", hide_env_values = true)]
    pub api_token: Option<SecretText>,

    /// SHA-256 fingerprint of vpnctld's certificate (needed for https).
    #[arg(long, env = "VPNCTL_API_FINGERPRINT")]
    pub api_fingerprint: Option<String>,

    /// An admin-scope API token for the admin commands (/users, /invite), for
    /// allowlisted sign-ups and for storing a user's language with the control
    /// plane; without it those answer "not configured".
    #[arg(long, env = "VPNCTL_BOT_ADMIN_API_TOKEN", hide_env_values = true)]
    pub admin_api_token: Option<SecretText>,

    /// Telegram user ids that get the admin commands and alerts.
    #[arg(long = "admin-id", env = "VPNCTL_BOT_ADMIN_IDS", value_delimiter = ',')]
    pub admin_ids: Option<Vec<i64>>,

    /// Telegram user ids that may sign up with a plain /start (no invite).
    #[arg(
        long = "allow-id",
        env = "VPNCTL_BOT_ALLOWED_IDS",
        value_delimiter = ','
    )]
    pub allowed_ids: Option<Vec<i64>>,

    /// Seconds after which sent configs and QR codes are deleted from the chat
    /// (0: never) [default: 600].
    #[arg(long, env = "VPNCTL_BOT_DELETE_AFTER")]
    pub delete_after_secs: Option<u64>,

    /// Send configs and QR codes with Telegram's `protect_content`: they cannot be
    /// forwarded or saved. Windows users then cannot import the file, iPhone users
    /// can only scan the QR code with a second device [default: false].
    #[arg(long, env = "VPNCTL_BOT_PROTECT_CONFIGS", num_args = 0..=1, default_missing_value = "true")]
    pub protect_configs: Option<bool>,

    /// /servers (names, regions, load) also for people without an account
    /// [default: false].
    #[arg(long, env = "VPNCTL_BOT_SERVERS_PUBLIC", num_args = 0..=1, default_missing_value = "true")]
    pub servers_public: Option<bool>,

    /// What /paysupport answers (Telegram expects bots that sell to have it): how
    /// to reach you about a payment [default: a generic text in the user's
    /// language].
    #[arg(long, env = "VPNCTL_BOT_PAY_SUPPORT_TEXT")]
    pub pay_support_text: Option<String>,

    /// What /terms answers: your terms of sale [default: a generic text in the
    /// user's language].
    #[arg(long, env = "VPNCTL_BOT_TERMS_TEXT")]
    pub terms_text: Option<String>,

    /// Scheduled backups that vpnctld announces (its `backup_telegram`) are sent to
    /// the admin chats in parts of at most this many bytes; Telegram's public Bot
    /// API takes files up to 50 MB [default: 49000000].
    #[arg(long, env = "VPNCTL_BOT_BACKUP_PART_BYTES")]
    pub backup_part_bytes: Option<u64>,

    /// Configs (new or re-sent) one user may get per hour [default: 10].
    #[arg(long, env = "VPNCTL_BOT_ISSUE_PER_HOUR")]
    pub issue_per_hour: Option<u32>,

    /// Key rotations one user may do per hour [default: 5].
    #[arg(long, env = "VPNCTL_BOT_ROTATE_PER_HOUR")]
    pub rotate_per_hour: Option<u32>,

    /// Invite code attempts one Telegram user may make per hour [default: 10].
    #[arg(long, env = "VPNCTL_BOT_REDEEM_PER_HOUR")]
    pub redeem_per_hour: Option<u32>,

    /// Telegram's limit of messages per second in one chat [default: 1].
    #[arg(long, env = "VPNCTL_BOT_MSGS_PER_SEC_CHAT")]
    pub messages_per_sec_chat: Option<u32>,

    /// Telegram's limit of messages per minute in one group chat [default: 20].
    #[arg(long, env = "VPNCTL_BOT_MSGS_PER_MIN_CHAT")]
    pub messages_per_min_chat: Option<u32>,

    /// Telegram's limit of messages per second in all chats together [default: 30].
    #[arg(long, env = "VPNCTL_BOT_MSGS_PER_SEC")]
    pub messages_per_sec_overall: Option<u32>,

    /// How updates arrive [default: polling].
    #[arg(long, value_enum, env = "VPNCTL_BOT_MODE")]
    pub mode: Option<UpdateMode>,

    /// Public HTTPS URL Telegram posts updates to (webhook mode).
    #[arg(long, env = "VPNCTL_BOT_WEBHOOK_URL")]
    pub webhook_url: Option<String>,

    /// Local address the webhook server listens on (webhook mode).
    #[arg(long, env = "VPNCTL_BOT_WEBHOOK_LISTEN")]
    pub webhook_listen: Option<SocketAddr>,

    /// Telegram's `secret_token`: webhook requests without it are refused.
    #[arg(long, env = "VPNCTL_BOT_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<SecretText>,

    /// Where the bot keeps what must survive a restart: scheduled deletions of sent
    /// configs, used buttons, chosen languages [default: /var/lib/vpnctl-bot].
    #[arg(long, env = "VPNCTL_BOT_STATE_DIR")]
    pub state_dir: Option<PathBuf>,

    /// Log filter in tracing's syntax, e.g. `info,vpnctl_bot=debug`
    /// [default: RUST_LOG, else info].
    #[arg(long, env = "VPNCTL_BOT_LOG")]
    pub log: Option<String>,
}

/// The bot's runtime configuration: every setting decided.
#[derive(Debug, Clone)]
pub struct Config {
    pub telegram_token: SecretText,
    pub telegram_api_url: Option<String>,
    pub telegram_proxy: Option<SecretText>,
    pub api_url: String,
    pub api_token: SecretText,
    pub api_fingerprint: Option<String>,
    pub admin_api_token: Option<SecretText>,
    pub admin_ids: Vec<i64>,
    pub allowed_ids: Vec<i64>,
    pub delete_after_secs: u64,
    pub protect_configs: bool,
    pub servers_public: bool,
    pub pay_support_text: Option<String>,
    pub terms_text: Option<String>,
    pub backup_part_bytes: u64,
    pub issue_per_hour: u32,
    pub rotate_per_hour: u32,
    pub redeem_per_hour: u32,
    pub messages_per_sec_chat: u32,
    pub messages_per_min_chat: u32,
    pub messages_per_sec_overall: u32,
    pub mode: UpdateMode,
    pub webhook_url: Option<String>,
    pub webhook_listen: Option<SocketAddr>,
    pub webhook_secret: Option<SecretText>,
    /// `None` keeps the bot's state in memory (embedders, tests): scheduled
    /// deletions are then lost on restart. The daemon always has a directory.
    pub state_dir: Option<PathBuf>,
    pub log: Option<String>,
}

/// Where the daemon keeps its state unless told otherwise (systemd's
/// `StateDirectory=vpnctl-bot`).
pub const DEFAULT_STATE_DIR: &str = "/var/lib/vpnctl-bot";
/// Under the public Bot API's 50 MB upload limit.
pub const DEFAULT_BACKUP_PART_BYTES: u64 = 49_000_000;

impl Settings {
    /// Flags and environment over the file named by `--config`, with defaults
    /// applied: what `main` runs with.
    pub fn load() -> Result<Config, SettingsError> {
        let cli = Self::parse();
        let file = cli.config.clone();
        vpnctl_daemon::settings::layered(cli, file.as_deref())?.resolve()
    }

    /// Applies the defaults to what is unset and checks the combinations.
    pub fn resolve(self) -> Result<Config, SettingsError> {
        let config = Config {
            telegram_token: self.telegram_token.ok_or_else(|| {
                SettingsError::missing("telegram_token", "telegram-token", "TELOXIDE_TOKEN")
            })?,
            telegram_api_url: self.telegram_api_url,
            telegram_proxy: self.telegram_proxy,
            api_url: self
                .api_url
                .ok_or_else(|| SettingsError::missing("api_url", "api-url", "VPNCTL_API_URL"))?,
            api_token: self.api_token.ok_or_else(|| {
                SettingsError::missing("api_token", "api-token", "VPNCTL_BOT_API_TOKEN")
            })?,
            api_fingerprint: self.api_fingerprint,
            admin_api_token: self.admin_api_token,
            admin_ids: self.admin_ids.unwrap_or_default(),
            allowed_ids: self.allowed_ids.unwrap_or_default(),
            delete_after_secs: self.delete_after_secs.unwrap_or(600),
            protect_configs: self.protect_configs.unwrap_or(false),
            servers_public: self.servers_public.unwrap_or(false),
            pay_support_text: self.pay_support_text,
            terms_text: self.terms_text,
            backup_part_bytes: self.backup_part_bytes.unwrap_or(DEFAULT_BACKUP_PART_BYTES),
            issue_per_hour: self.issue_per_hour.unwrap_or(10),
            rotate_per_hour: self.rotate_per_hour.unwrap_or(5),
            redeem_per_hour: self.redeem_per_hour.unwrap_or(10),
            messages_per_sec_chat: self.messages_per_sec_chat.unwrap_or(1),
            messages_per_min_chat: self.messages_per_min_chat.unwrap_or(20),
            messages_per_sec_overall: self.messages_per_sec_overall.unwrap_or(30),
            mode: self.mode.unwrap_or_default(),
            webhook_url: self.webhook_url,
            webhook_listen: self.webhook_listen,
            webhook_secret: self.webhook_secret,
            state_dir: Some(
                self.state_dir
                    .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR)),
            ),
            log: self.log,
        };
        config.validate()?;
        Ok(config)
    }
}

impl Config {
    /// The minimal settings (tests and embedders); everything else at its default,
    /// and the state kept in memory.
    pub fn new(telegram_token: &str, api_url: &str, api_token: &str) -> Self {
        let settings = Settings {
            telegram_token: Some(SecretText::new(telegram_token)),
            api_url: Some(api_url.to_owned()),
            api_token: Some(SecretText::new(api_token)),
            ..Settings::default()
        };
        let mut config = settings
            .resolve()
            .expect("the defaults are a valid configuration");
        config.state_dir = None;
        config
    }

    /// Checks the combinations clap and serde cannot.
    pub fn validate(&self) -> Result<(), SettingsError> {
        for (field, text) in [
            ("pay_support_text", &self.pay_support_text),
            ("terms_text", &self.terms_text),
        ] {
            if let Some(text) = text
                && (text.trim().is_empty() || text.chars().count() > 4096)
            {
                return Err(SettingsError::invalid(
                    field,
                    "must be 1..=4096 characters (one Telegram message)",
                ));
            }
        }
        if !(1024..=2_000_000_000).contains(&self.backup_part_bytes) {
            return Err(SettingsError::invalid(
                "backup_part_bytes",
                format!("{} is not in 1024..=2000000000", self.backup_part_bytes),
            ));
        }
        if self.mode == UpdateMode::Webhook && self.webhook_url.is_none() {
            return Err(SettingsError::missing(
                "webhook_url",
                "webhook-url",
                "VPNCTL_BOT_WEBHOOK_URL",
            ));
        }
        if self.mode == UpdateMode::Webhook && self.webhook_listen.is_none() {
            return Err(SettingsError::missing(
                "webhook_listen",
                "webhook-listen",
                "VPNCTL_BOT_WEBHOOK_LISTEN",
            ));
        }
        for (key, value) in [
            ("messages_per_sec_chat", self.messages_per_sec_chat),
            ("messages_per_min_chat", self.messages_per_min_chat),
            ("messages_per_sec_overall", self.messages_per_sec_overall),
        ] {
            if value == 0 {
                return Err(SettingsError::invalid(key, "must be above 0"));
            }
        }
        if let Some(url) = &self.telegram_api_url {
            reqwest::Url::parse(url).map_err(|e| SettingsError::invalid("telegram_api_url", e))?;
        }
        if let Some(proxy) = &self.telegram_proxy {
            // The reason may quote the URL, which may hold a password.
            reqwest::Proxy::all(proxy.expose())
                .map_err(|_| SettingsError::invalid("telegram_proxy", "not a proxy URL"))?;
        }
        Ok(())
    }

    pub fn delete_after(&self) -> Option<Duration> {
        (self.delete_after_secs > 0).then(|| Duration::from_secs(self.delete_after_secs))
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn clap_definition_is_valid() {
        Settings::command().debug_assert();
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), text).unwrap();
        f
    }

    fn layered(args: &[&str], text: &str) -> Result<Config, SettingsError> {
        let f = file(text);
        let mut argv = vec!["vpnctl-bot"];
        argv.extend_from_slice(args);
        let cli = Settings::try_parse_from(argv).unwrap();
        vpnctl_daemon::settings::layered(cli, Some(f.path()))?.resolve()
    }

    #[test]
    fn the_file_fills_what_flags_leave_and_defaults_come_last() {
        let config = layered(
            &["--admin-id", "7,8", "--delete-after-secs", "60"],
            "telegram_token = \"123:abc\"\napi_url = \"http://127.0.0.1:7443\"\napi_token = \"vpt_x\"\nadmin_ids = [42]\ndelete_after_secs = 30\nissue_per_hour = 3\n",
        )
        .unwrap();
        assert_eq!(config.admin_ids, vec![7, 8], "the flag wins");
        assert_eq!(config.delete_after_secs, 60, "the flag wins");
        assert_eq!(config.issue_per_hour, 3, "from the file");
        assert_eq!(config.rotate_per_hour, 5, "the default");
        assert_eq!(config.api_url, "http://127.0.0.1:7443");
        assert_eq!(config.mode, UpdateMode::Polling);
        assert!(!config.protect_configs);
        assert_eq!(
            config.state_dir.as_deref(),
            Some(std::path::Path::new(DEFAULT_STATE_DIR))
        );
        assert!(!format!("{config:?}").contains("123:abc"));
    }

    #[test]
    fn a_file_value_is_not_hidden_by_a_default() {
        // The old bot let clap's defaults replace the file; now only a flag does.
        let config = layered(
            &["--telegram-token", "1:a", "--api-token", "t"],
            "api_url = \"http://127.0.0.1:1\"\nmessages_per_sec_overall = 20\nprotect_configs = true\n",
        )
        .unwrap();
        assert_eq!(config.messages_per_sec_overall, 20);
        assert!(config.protect_configs);
    }

    #[test]
    fn boolean_flags_take_an_optional_value() {
        let on = Settings::try_parse_from(["b", "--protect-configs"]).unwrap();
        assert_eq!(on.protect_configs, Some(true));
        let off = Settings::try_parse_from(["b", "--protect-configs=false"]).unwrap();
        assert_eq!(off.protect_configs, Some(false));
        assert_eq!(
            Settings::try_parse_from(["b"]).unwrap().protect_configs,
            None
        );
    }

    #[test]
    fn missing_and_invalid_settings_say_where_to_set_them() {
        let err = layered(&[], "api_url = \"http://127.0.0.1:1\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("telegram_token") && err.contains("TELOXIDE_TOKEN"),
            "{err}"
        );
        let mut config = Config::new("1:a", "http://127.0.0.1:1", "t");
        config.mode = UpdateMode::Webhook;
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("webhook_url"), "{err}");
        let mut config = Config::new("1:a", "http://127.0.0.1:1", "t");
        config.messages_per_sec_overall = 0;
        assert!(config.validate().is_err());
        config.messages_per_sec_overall = 30;
        config.telegram_proxy = Some(SecretText::new("::not a url::"));
        let err = config.validate().unwrap_err().to_string();
        assert!(!err.contains("::not a url::"), "{err}");
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        let err = layered(&[], "telegram_tokn = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("telegram_tokn"), "{err}");
    }

    #[test]
    fn embedders_keep_state_in_memory() {
        let config = Config::new("1:a", "http://127.0.0.1:1", "t");
        assert_eq!(config.state_dir, None);
        assert_eq!(config.delete_after_secs, 600);
    }
}
