//! vpnctld's settings: one struct read from flags, `VPNCTLD_*` environment variables
//! and an optional TOML file (`--config`), layered by [`vpnctl_daemon::settings`] the
//! same way as every daemon's: flags win over the environment, which wins over the
//! file; every field is optional and the defaults are applied by [`Config::server`].
//!
//! Health thresholds come from the file's `[health]` table (see
//! [`vpnctl_core::HealthPolicy`]); `expiry_interval_secs` and `node_stale_secs` are
//! still accepted as old names (of `sweep_interval_secs` and
//! `[health] report_down_secs`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Parser, Subcommand};
use serde::{Deserialize, Serialize};
use vpnctl_core::{HealthPolicy, Policy, ReminderDays};
use vpnctl_daemon::SettingsError;
use vpnctl_daemon::settings;

pub use crate::limits::Limits;
pub use crate::webhook::WebhookUrl;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:7443";
pub const DEFAULT_DATA: &str = "/var/lib/vpnctl";
/// Name of the TOML file `vpnctld init` writes into the data directory.
pub const CONFIG_FILE: &str = "vpnctld.toml";
pub const DEFAULT_SWEEP_INTERVAL_SECS: u64 = 10;
/// Expiry must be enforced within a minute, so the sweep never runs less often.
pub const MAX_SWEEP_INTERVAL_SECS: u64 = 60;
pub const DEFAULT_PROBE_TIMEOUT_MS: u64 = 2000;
pub const MAX_PROBE_TIMEOUT_MS: u64 = 30_000;
pub const DEFAULT_BACKUP_EVERY_HOURS: u64 = 24;
pub const DEFAULT_BACKUP_KEEP: usize = 7;

#[derive(Debug, Clone, Default, Parser, Serialize, Deserialize)]
#[command(
    name = "vpnctld",
    version,
    about = "vpnctl control plane: HTTP/JSON API for the bot, the admin TUI and the node daemons"
)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    #[command(subcommand)]
    #[serde(skip)]
    pub command: Option<Command>,

    /// TOML file with these settings (keys as the long flags, with `_`).
    #[arg(long, env = "VPNCTLD_CONFIG", global = true, value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,

    /// Data directory: database, key file, TLS certificate [default: /var/lib/vpnctl].
    #[arg(long, env = "VPNCTLD_DATA", global = true, value_name = "DIR")]
    pub data: Option<PathBuf>,

    /// Address to listen on [default: 127.0.0.1:7443].
    #[arg(long, env = "VPNCTLD_LISTEN", global = true, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,

    /// The API URL nodes and admins use (put into join tokens) [default: from --listen].
    #[arg(long, env = "VPNCTLD_PUBLIC_URL", global = true, value_name = "URL")]
    pub public_url: Option<String>,

    /// Serve TLS [default: true]. `false` is only allowed on a loopback address.
    #[arg(long, env = "VPNCTLD_TLS", global = true, value_name = "BOOL")]
    pub tls: Option<bool>,

    /// Telegram bot username, for invite deep links.
    #[arg(long, env = "VPNCTLD_BOT_USERNAME", global = true, value_name = "NAME")]
    pub bot_username: Option<String>,

    /// Seconds between lifecycle runs: expiry, reminders, quota resets, node probes,
    /// health judgement, webhook delivery [default: 10; clamped to 1..=60 so that
    /// access ends within a minute]. `expiry_interval_secs` is the old name.
    #[arg(
        long,
        env = "VPNCTLD_SWEEP_INTERVAL_SECS",
        global = true,
        value_name = "SECS"
    )]
    #[serde(alias = "expiry_interval_secs")]
    pub sweep_interval_secs: Option<u64>,

    /// Deprecated: the old name of `--sweep-interval-secs`.
    #[arg(
        long,
        env = "VPNCTLD_EXPIRY_INTERVAL_SECS",
        global = true,
        value_name = "SECS",
        hide = true
    )]
    #[serde(skip)]
    pub expiry_interval_secs: Option<u64>,

    /// Deprecated: sets `[health] report_down_secs` (a node whose last report is older
    /// is down).
    #[arg(
        long,
        env = "VPNCTLD_NODE_STALE_SECS",
        global = true,
        value_name = "SECS",
        hide = true
    )]
    pub node_stale_secs: Option<u64>,

    /// Milliseconds a TCP probe of a node's health port may take [default: 2000].
    #[arg(
        long,
        env = "VPNCTLD_PROBE_TIMEOUT_MS",
        global = true,
        value_name = "MS"
    )]
    pub probe_timeout_ms: Option<u64>,

    /// Days before the end of access on which users are reminded, comma-separated
    /// [default: 3,1].
    #[arg(
        long,
        env = "VPNCTLD_REMINDER_DAYS",
        global = true,
        value_name = "DAYS",
        value_delimiter = ','
    )]
    pub reminder_days: Option<Vec<u32>>,

    /// URL that receives admin alerts as JSON POSTs. It may carry a token: only its
    /// host is ever logged.
    #[arg(
        long,
        env = "VPNCTLD_ALERT_WEBHOOK_URL",
        global = true,
        value_name = "URL",
        hide_env_values = true
    )]
    pub alert_webhook_url: Option<WebhookUrl>,

    /// Node health thresholds: the `[health]` table of the config file only.
    #[arg(skip)]
    pub health: Option<HealthPolicy>,

    /// Connection caps, timeouts and rate limits of the API listener: the `[limits]`
    /// table of the config file only (see docs/operations.md).
    #[arg(skip)]
    pub limits: Option<Limits>,

    /// Log filter (tracing `EnvFilter` syntax) [default: info; RUST_LOG also works].
    #[arg(long, env = "VPNCTLD_LOG", global = true, value_name = "FILTER")]
    pub log: Option<String>,

    /// Directory for scheduled backups (encrypted; off when unset). Needs
    /// --backup-recipient or --backup-passphrase-file.
    #[arg(long, env = "VPNCTLD_BACKUP_DIR", global = true, value_name = "DIR")]
    pub backup_dir: Option<PathBuf>,

    /// Hours between scheduled backups [default: 24].
    #[arg(
        long,
        env = "VPNCTLD_BACKUP_EVERY_HOURS",
        global = true,
        value_name = "HOURS"
    )]
    pub backup_every_hours: Option<u64>,

    /// Scheduled backups kept; older ones are deleted [default: 7].
    #[arg(long, env = "VPNCTLD_BACKUP_KEEP", global = true, value_name = "N")]
    pub backup_keep: Option<usize>,

    /// Encrypt scheduled backups to this age recipient (`age1...`, from
    /// `vpnctl backup-key`).
    #[arg(
        long,
        env = "VPNCTLD_BACKUP_RECIPIENT",
        global = true,
        value_name = "AGE1..."
    )]
    pub backup_recipient: Option<String>,

    /// Encrypt scheduled backups with the passphrase in this file (its first line).
    #[arg(
        long,
        env = "VPNCTLD_BACKUP_PASSPHRASE_FILE",
        global = true,
        value_name = "FILE"
    )]
    pub backup_passphrase_file: Option<PathBuf>,

    /// Also send each scheduled backup to the admins' Telegram chat, through the
    /// bot (split into parts when larger than Telegram's file limit) [default: false].
    #[arg(
        long,
        env = "VPNCTLD_BACKUP_TELEGRAM",
        global = true,
        value_name = "BOOL"
    )]
    pub backup_telegram: Option<bool>,

    /// The store's page cache in MiB; memory use is bounded by it plus the
    /// requests in flight [default: 64].
    #[arg(
        long,
        env = "VPNCTLD_STORE_CACHE_MB",
        global = true,
        value_name = "MIB"
    )]
    pub store_cache_mb: Option<u64>,

    /// Events (the audit log) older than this many days are deleted, hourly; 0
    /// keeps them for ever [default: 180].
    #[arg(
        long,
        env = "VPNCTLD_EVENTS_KEEP_DAYS",
        global = true,
        value_name = "DAYS"
    )]
    pub events_keep_days: Option<u32>,

    /// At most this many events are kept, the oldest deleted first; 0: no limit
    /// [default: 1000000].
    #[arg(long, env = "VPNCTLD_EVENTS_KEEP_MAX", global = true, value_name = "N")]
    pub events_keep_max: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Create the data directory, store, TLS certificate and the first admin token
    /// (printed once).
    Init,
    /// Serve the API (the default).
    Run,
    /// Restore a backup (from `vpnctl backup` or a scheduled one) into --data DIR,
    /// which must be new or empty; then `vpnctld run` continues where it was taken.
    Restore {
        /// The backup file.
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
        /// A file whose first line is the backup's passphrase.
        #[arg(long, value_name = "FILE", conflicts_with = "identity")]
        passphrase_file: Option<PathBuf>,
        /// The age identity file whose recipient the backup was encrypted to.
        #[arg(long, value_name = "FILE")]
        identity: Option<PathBuf>,
    },
}

impl Config {
    /// Reads `--config` (if given) under the flags and the environment: what a flag or
    /// variable sets wins, the file fills the rest (see [`vpnctl_daemon::settings`]).
    pub fn load(mut self) -> Result<Self, SettingsError> {
        let command = self.command.take();
        let file = self.config.take();
        // The old flag counts as the new one, under it.
        if self.sweep_interval_secs.is_none() {
            self.sweep_interval_secs = self.expiry_interval_secs.take();
        }
        let mut merged = settings::layered(self, file.as_deref())?;
        merged.command = command;
        merged.config = file;
        Ok(merged)
    }

    /// The settings of a TOML file alone.
    pub fn from_file(path: &Path) -> Result<Self, SettingsError> {
        settings::read_file(path)
    }

    /// The settings `vpnctld run` serves with, defaults filled in and checked.
    pub fn server(&self) -> Result<ServerConfig, SettingsError> {
        let listen = match self.listen {
            Some(addr) => addr,
            None => DEFAULT_LISTEN.parse().expect("valid default"),
        };
        let asked = self
            .sweep_interval_secs
            .or(self.expiry_interval_secs)
            .unwrap_or(DEFAULT_SWEEP_INTERVAL_SECS);
        let interval = asked.clamp(1, MAX_SWEEP_INTERVAL_SECS);
        if interval != asked {
            tracing::warn!(
                asked,
                using = interval,
                "sweep_interval_secs must be 1..={MAX_SWEEP_INTERVAL_SECS}"
            );
        }
        let probe_ms = self.probe_timeout_ms.unwrap_or(DEFAULT_PROBE_TIMEOUT_MS);
        if !(1..=MAX_PROBE_TIMEOUT_MS).contains(&probe_ms) {
            return Err(SettingsError::invalid(
                "probe_timeout_ms",
                format!("{probe_ms} is not in 1..={MAX_PROBE_TIMEOUT_MS}"),
            ));
        }
        let mut health = self.health.clone().unwrap_or_default();
        if let Some(stale) = self.node_stale_secs {
            tracing::warn!("node_stale_secs is deprecated; set [health] report_down_secs");
            health.report_down_secs = i64::try_from(stale).unwrap_or(i64::MAX);
            health.report_late_secs = health.report_late_secs.min(health.report_down_secs);
        }
        health
            .validate()
            .map_err(|e| SettingsError::invalid("health", e))?;
        let reminders = match &self.reminder_days {
            Some(days) => reminder_days(days)?,
            None => ReminderDays::default(),
        };
        let limits = self.limits.clone().unwrap_or_default();
        limits
            .validate()
            .map_err(|e| SettingsError::invalid("limits", e))?;
        let backups = self.backup_schedule()?;
        Ok(ServerConfig {
            backups,
            limits,
            data: self.data.clone().unwrap_or_else(|| DEFAULT_DATA.into()),
            listen,
            public_url: self.public_url.clone(),
            tls: self.tls.unwrap_or(true),
            bot_username: self.bot_username.clone(),
            sweep_interval: Duration::from_secs(interval),
            probe_timeout: Duration::from_millis(probe_ms),
            alert_webhook: self.alert_webhook_url.clone(),
            policy: Policy {
                health,
                reminders,
                store_cache_bytes: self.store_cache_bytes()?,
                events_keep_days: self
                    .events_keep_days
                    .unwrap_or(vpnctl_core::operations::DEFAULT_EVENTS_KEEP_DAYS),
                events_keep_max: self
                    .events_keep_max
                    .unwrap_or(vpnctl_core::operations::DEFAULT_EVENTS_KEEP_MAX),
                ..Policy::default()
            },
        })
    }
}

impl Config {
    /// `store_cache_mb` in bytes, 1 MiB to 64 GiB.
    fn store_cache_bytes(&self) -> Result<usize, SettingsError> {
        let Some(mb) = self.store_cache_mb else {
            return Ok(vpnctl_core::operations::DEFAULT_STORE_CACHE_BYTES);
        };
        if !(1..=65_536).contains(&mb) {
            return Err(SettingsError::invalid(
                "store_cache_mb",
                format!("{mb} is not in 1..=65536"),
            ));
        }
        usize::try_from(mb << 20)
            .map_err(|_| SettingsError::invalid("store_cache_mb", "too large for this machine"))
    }

    /// Scheduled backups, when `backup_dir` is set.
    fn backup_schedule(&self) -> Result<Option<crate::backups::Schedule>, SettingsError> {
        use crate::backups::{Schedule, ScheduleKey};
        let Some(dir) = self.backup_dir.clone() else {
            if self.backup_telegram == Some(true) {
                return Err(SettingsError::invalid(
                    "backup_telegram",
                    "needs backup_dir: only scheduled backups go to Telegram",
                ));
            }
            return Ok(None);
        };
        let hours = self
            .backup_every_hours
            .unwrap_or(DEFAULT_BACKUP_EVERY_HOURS);
        if !(1..=24 * 365).contains(&hours) {
            return Err(SettingsError::invalid(
                "backup_every_hours",
                format!("{hours} is not in 1..=8760"),
            ));
        }
        let key = match (&self.backup_recipient, &self.backup_passphrase_file) {
            (Some(r), None) => {
                vpnctl_core::backup::BackupKey::recipient(r)
                    .map_err(|e| SettingsError::invalid("backup_recipient", e.to_string()))?;
                ScheduleKey::Recipient(r.clone())
            }
            (None, Some(file)) => ScheduleKey::PassphraseFile(file.clone()),
            _ => {
                return Err(SettingsError::invalid(
                    "backup_dir",
                    "set exactly one of backup_recipient and backup_passphrase_file",
                ));
            }
        };
        Ok(Some(Schedule {
            dir,
            every: Duration::from_secs(hours * 3600),
            keep: self.backup_keep.unwrap_or(DEFAULT_BACKUP_KEEP).max(1),
            key,
            telegram: self.backup_telegram.unwrap_or(false),
        }))
    }
}

/// Checks and orders reminder days: each 1..=365, at most 10, largest first.
fn reminder_days(days: &[u32]) -> Result<ReminderDays, SettingsError> {
    if days.len() > 10 || days.iter().any(|d| !(1..=365).contains(d)) {
        return Err(SettingsError::invalid(
            "reminder_days",
            "at most 10 values, each 1..=365",
        ));
    }
    let mut days = days.to_vec();
    days.sort_unstable_by(|a, b| b.cmp(a));
    days.dedup();
    Ok(ReminderDays(days))
}

/// Resolved settings of a running server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub data: PathBuf,
    pub listen: SocketAddr,
    /// `None`: `http(s)://<bound address>`.
    pub public_url: Option<String>,
    /// Plain HTTP is refused on a non-loopback address.
    pub tls: bool,
    pub bot_username: Option<String>,
    /// How often the lifecycle loop runs (sweep, probes, health, webhook); at most
    /// 60 s. Tests may go below a second.
    pub sweep_interval: Duration,
    /// How long a TCP probe of a node's health port may take.
    pub probe_timeout: Duration,
    /// Where admin alerts are POSTed; `None`: nowhere.
    pub alert_webhook: Option<WebhookUrl>,
    /// The policy [`crate::Server::bind`] opens the store with (health thresholds,
    /// reminder days). [`crate::Server::bind_with`] uses the given service's own.
    pub policy: Policy,
    /// The listener's connection caps, timeouts and rate limits.
    pub limits: Limits,
    /// Scheduled backups; `None`: off.
    pub backups: Option<crate::backups::Schedule>,
}

impl ServerConfig {
    /// Defaults for a data directory and address (TLS on).
    pub fn new(data: PathBuf, listen: SocketAddr) -> Self {
        Self {
            data,
            listen,
            public_url: None,
            tls: true,
            bot_username: None,
            sweep_interval: Duration::from_secs(DEFAULT_SWEEP_INTERVAL_SECS),
            probe_timeout: Duration::from_millis(DEFAULT_PROBE_TIMEOUT_MS),
            alert_webhook: None,
            policy: Policy::default(),
            limits: Limits::default(),
            backups: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn cli_is_consistent() {
        Config::command().debug_assert();
    }

    #[test]
    fn every_subcommand_and_flag_says_what_it_does() {
        let problems = vpnctl_daemon::help::problems(Config::command());
        assert!(problems.is_empty(), "{problems:#?}");
    }

    /// `vpnctld ARGS --config FILE` with `text` as the file.
    fn loaded(args: &[&str], text: &str) -> Result<Config, SettingsError> {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), text).unwrap();
        let mut argv = vec!["vpnctld"];
        argv.extend_from_slice(args);
        argv.extend(["--config", file.path().to_str().unwrap()]);
        Config::parse_from(argv).load()
    }

    #[test]
    fn flags_override_file() {
        let merged = loaded(
            &["run", "--listen", "127.0.0.1:9000"],
            "listen = \"0.0.0.0:1\"\ndata = \"/srv/vpn\"\nbot_username = \"my_bot\"\n",
        )
        .unwrap();
        assert_eq!(merged.command, Some(Command::Run));
        assert!(merged.config.is_some());
        let server = merged.server().unwrap();
        assert_eq!(server.listen, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(server.data, PathBuf::from("/srv/vpn"));
        assert_eq!(server.bot_username.as_deref(), Some("my_bot"));
        assert!(server.tls);
        let err = loaded(&[], "nonsense = 1").unwrap_err().to_string();
        assert!(err.starts_with("settings file "), "{err}");
        assert!(err.contains("nonsense"), "{err}");
    }

    #[test]
    fn store_cache_and_event_retention() {
        let none = Config::parse_from(["vpnctld"]).server().unwrap();
        assert_eq!(none.policy.store_cache_bytes, 64 << 20);
        assert_eq!(none.policy.events_keep_days, 180);
        assert_eq!(none.policy.events_keep_max, 1_000_000);
        let file = "store_cache_mb = 16\nevents_keep_days = 0\nevents_keep_max = 5000\n";
        let s = loaded(&[], file).unwrap().server().unwrap();
        assert_eq!(s.policy.store_cache_bytes, 16 << 20);
        assert_eq!(
            (s.policy.events_keep_days, s.policy.events_keep_max),
            (0, 5000)
        );
        let err = loaded(&["--store-cache-mb", "0"], "")
            .unwrap()
            .server()
            .unwrap_err()
            .to_string();
        assert!(err.contains("store_cache_mb"), "{err}");
    }

    #[test]
    fn lifecycle_settings_and_their_defaults() {
        let none = Config::parse_from(["vpnctld"]).server().unwrap();
        assert_eq!(none.sweep_interval, Duration::from_secs(10));
        assert_eq!(none.probe_timeout, Duration::from_millis(2000));
        assert!(none.alert_webhook.is_none());
        assert_eq!(none.policy.health, HealthPolicy::default());
        assert_eq!(none.policy.reminders, ReminderDays(vec![3, 1]));

        let file = r#"
sweep_interval_secs = 5
probe_timeout_ms = 500
reminder_days = [1, 7, 3]
alert_webhook_url = "https://hooks.example.com/T0K3N"

[health]
report_late_secs = 30
report_down_secs = 120
worse_after = 4
"#;
        let s = loaded(&[], file).unwrap().server().unwrap();
        assert_eq!(s.sweep_interval, Duration::from_secs(5));
        assert_eq!(s.probe_timeout, Duration::from_millis(500));
        assert_eq!(s.policy.reminders, ReminderDays(vec![7, 3, 1]));
        assert_eq!(s.policy.health.report_down_secs, 120);
        assert_eq!(s.policy.health.worse_after, 4);
        assert_eq!(s.limits, crate::Limits::default());
        assert_eq!(
            s.policy.health.better_after,
            HealthPolicy::default().better_after
        );
        assert!(!format!("{s:?}").contains("T0K3N"));
        assert_eq!(s.alert_webhook.unwrap().host(), "hooks.example.com");
        // A flag replaces one key of the file and keeps the file's others.
        let s = loaded(&["--reminder-days", "2"], file)
            .unwrap()
            .server()
            .unwrap();
        assert_eq!(s.policy.reminders, ReminderDays(vec![2]));
        assert_eq!(s.policy.health.worse_after, 4);

        // Old names still work; the interval is clamped to 1..=60.
        let old = loaded(&[], "expiry_interval_secs = 600\nnode_stale_secs = 20").unwrap();
        let s = old.server().unwrap();
        assert_eq!(s.sweep_interval, Duration::from_secs(60));
        assert_eq!(s.policy.health.report_down_secs, 20);
        assert!(s.policy.health.report_late_secs <= 20);
        let flags = loaded(&["--expiry-interval-secs", "0"], "sweep_interval_secs = 30").unwrap();
        assert_eq!(
            flags.server().unwrap().sweep_interval,
            Duration::from_secs(1),
            "the old flag still wins over the file"
        );
        let flags = Config::parse_from(["vpnctld", "--reminder-days", "5,2"]);
        assert_eq!(
            flags.server().unwrap().policy.reminders,
            ReminderDays(vec![5, 2])
        );

        // Bad values are refused with the key named.
        for (bad, key) in [
            (
                "[health]\nreport_late_secs = 100\nreport_down_secs = 50",
                "health",
            ),
            ("[health]\nworse_after = 0", "health"),
            ("reminder_days = [0]", "reminder_days"),
            ("probe_timeout_ms = 0", "probe_timeout_ms"),
            ("[limits]\nheader_read_timeout_secs = 0", "limits"),
        ] {
            let err = loaded(&[], bad).unwrap().server().unwrap_err().to_string();
            assert!(err.starts_with(&format!("setting {key}: ")), "{bad}: {err}");
        }
        let limits = loaded(&[], "[limits]\nmax_connections_per_address = 8\n")
            .unwrap()
            .server()
            .unwrap()
            .limits;
        assert_eq!(limits.max_connections_per_address, 8);
        assert_eq!(limits.enroll_per_minute, 10);
        for bad in [
            "[limits]\nnonsense = 1",
            "[health]\nnonsense = 1",
            "alert_webhook_url = \"ftp://x\"",
            "alert_webhook_url = \"not a url\"",
        ] {
            assert!(loaded(&[], bad).is_err(), "{bad}");
        }
    }
}
