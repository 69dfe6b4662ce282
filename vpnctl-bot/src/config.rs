//! The bot's one config struct: command line, environment, or a TOML file.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use clap::Parser;
use serde::Deserialize;

/// A secret string (Telegram or API token): `Debug` prints `***`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum UpdateMode {
    /// `getUpdates` long polling (works behind NAT, no public address needed).
    #[default]
    Polling,
    /// Telegram posts updates to `webhook_url`; requests must carry `webhook_secret`.
    Webhook,
}

/// vpnctl-bot settings. A TOML file given with `--config` replaces the command line
/// settings (every field below is also a TOML key).
#[derive(Debug, Clone, Parser, Deserialize)]
#[command(name = "vpnctl-bot", version, about = "vpnctl Telegram bot")]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// A TOML file with these settings.
    #[arg(long, env = "VPNCTL_BOT_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,

    /// The Telegram bot token from @BotFather.
    #[arg(long, env = "TELOXIDE_TOKEN", hide_env_values = true)]
    pub telegram_token: SecretText,

    /// Telegram Bot API base URL (a local Bot API server, or a fake one in tests).
    #[arg(long, env = "VPNCTL_BOT_TELEGRAM_API_URL")]
    #[serde(default)]
    pub telegram_api_url: Option<String>,

    /// vpnctld base URL, e.g. `https://vpn.example.com:7443`.
    #[arg(long, env = "VPNCTL_API_URL")]
    pub api_url: String,

    /// An API token with the bot scope.
    #[arg(long, env = "VPNCTL_BOT_API_TOKEN", hide_env_values = true)]
    pub api_token: SecretText,

    /// SHA-256 fingerprint of vpnctld's certificate (needed for https).
    #[arg(long, env = "VPNCTL_API_FINGERPRINT")]
    #[serde(default)]
    pub api_fingerprint: Option<String>,

    /// An admin-scope API token for the admin commands (/users, /invite) and for
    /// allowlisted sign-ups; without it those answer "not configured".
    #[arg(long, env = "VPNCTL_BOT_ADMIN_API_TOKEN", hide_env_values = true)]
    #[serde(default)]
    pub admin_api_token: Option<SecretText>,

    /// Telegram user ids that get the admin commands and alerts.
    #[arg(long = "admin-id", env = "VPNCTL_BOT_ADMIN_IDS", value_delimiter = ',')]
    #[serde(default)]
    pub admin_ids: Vec<i64>,

    /// Telegram user ids that may sign up with a plain /start (no invite).
    #[arg(
        long = "allow-id",
        env = "VPNCTL_BOT_ALLOWED_IDS",
        value_delimiter = ','
    )]
    #[serde(default)]
    pub allowed_ids: Vec<i64>,

    /// Seconds after which sent configs and QR codes are deleted from the chat (0: never).
    #[arg(long, env = "VPNCTL_BOT_DELETE_AFTER", default_value_t = 600)]
    #[serde(default = "default_delete_after")]
    pub delete_after_secs: u64,

    /// Configs (new or re-sent) one user may get per hour.
    #[arg(long, env = "VPNCTL_BOT_ISSUE_PER_HOUR", default_value_t = 10)]
    #[serde(default = "default_issue")]
    pub issue_per_hour: u32,

    /// Key rotations one user may do per hour.
    #[arg(long, env = "VPNCTL_BOT_ROTATE_PER_HOUR", default_value_t = 5)]
    #[serde(default = "default_rotate")]
    pub rotate_per_hour: u32,

    /// Invite code attempts one Telegram user may make per hour.
    #[arg(long, env = "VPNCTL_BOT_REDEEM_PER_HOUR", default_value_t = 10)]
    #[serde(default = "default_redeem")]
    pub redeem_per_hour: u32,

    /// Telegram's limit of messages per second in one chat (Throttle).
    #[arg(long, env = "VPNCTL_BOT_MSGS_PER_SEC_CHAT", default_value_t = 1)]
    #[serde(default = "default_per_sec_chat")]
    pub messages_per_sec_chat: u32,

    /// Telegram's limit of messages per minute in one chat (Throttle).
    #[arg(long, env = "VPNCTL_BOT_MSGS_PER_MIN_CHAT", default_value_t = 20)]
    #[serde(default = "default_per_min_chat")]
    pub messages_per_min_chat: u32,

    /// Telegram's overall limit of messages per second (Throttle).
    #[arg(long, env = "VPNCTL_BOT_MSGS_PER_SEC", default_value_t = 30)]
    #[serde(default = "default_per_sec")]
    pub messages_per_sec_overall: u32,

    /// How updates arrive.
    #[arg(long, value_enum, env = "VPNCTL_BOT_MODE", default_value_t = UpdateMode::Polling)]
    #[serde(default)]
    pub mode: UpdateMode,

    /// Public HTTPS URL Telegram posts updates to (webhook mode).
    #[arg(long, env = "VPNCTL_BOT_WEBHOOK_URL")]
    #[serde(default)]
    pub webhook_url: Option<String>,

    /// Local address the webhook server listens on (webhook mode).
    #[arg(long, env = "VPNCTL_BOT_WEBHOOK_LISTEN")]
    #[serde(default)]
    pub webhook_listen: Option<SocketAddr>,

    /// Telegram's `secret_token`: webhook requests without it are refused.
    #[arg(long, env = "VPNCTL_BOT_WEBHOOK_SECRET", hide_env_values = true)]
    #[serde(default)]
    pub webhook_secret: Option<SecretText>,
}

const fn default_delete_after() -> u64 {
    600
}
const fn default_issue() -> u32 {
    10
}
const fn default_rotate() -> u32 {
    5
}
const fn default_redeem() -> u32 {
    10
}
const fn default_per_sec_chat() -> u32 {
    1
}
const fn default_per_min_chat() -> u32 {
    20
}
const fn default_per_sec() -> u32 {
    30
}

/// Reading the settings failed.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("parsing {path}: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("{0}")]
    Invalid(String),
}

impl Config {
    /// The minimal settings (tests and embedders); everything else at its default.
    pub fn new(telegram_token: &str, api_url: &str, api_token: &str) -> Self {
        Self::parse_from([
            "vpnctl-bot",
            "--telegram-token",
            telegram_token,
            "--api-url",
            api_url,
            "--api-token",
            api_token,
        ])
    }

    /// Reads a TOML settings file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config: Self = toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source: Box::new(source),
        })?;
        config.config = Some(path.to_owned());
        Ok(config)
    }

    /// Checks the combinations clap and serde cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.mode == UpdateMode::Webhook
            && (self.webhook_url.is_none() || self.webhook_listen.is_none())
        {
            return Err(ConfigError::Invalid(
                "webhook mode needs webhook_url and webhook_listen".into(),
            ));
        }
        if self.messages_per_sec_chat == 0 || self.messages_per_sec_overall == 0 {
            return Err(ConfigError::Invalid(
                "message limits must be above 0".into(),
            ));
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
        Config::command().debug_assert();
    }

    #[test]
    fn toml_file_and_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bot.toml");
        std::fs::write(
            &path,
            "telegram_token = \"123:abc\"\napi_url = \"http://127.0.0.1:7443\"\napi_token = \"vpt_x\"\nadmin_ids = [42]\n",
        )
        .unwrap();
        let config = Config::from_file(&path).unwrap();
        assert_eq!(config.admin_ids, vec![42]);
        assert_eq!(config.delete_after_secs, 600);
        assert_eq!(config.mode, UpdateMode::Polling);
        config.validate().unwrap();
        assert!(!format!("{config:?}").contains("123:abc"));
    }

    #[test]
    fn webhook_needs_url() {
        let mut config = Config::new("1:a", "http://127.0.0.1:1", "t");
        config.mode = UpdateMode::Webhook;
        assert!(config.validate().is_err());
    }
}
