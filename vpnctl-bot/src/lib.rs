//! vpnctl-bot: the Telegram frontend of vpnctl.
//!
//! End users get, check and rotate their WireGuard configs; admins get alerts and a
//! few commands. The bot holds no state beyond dialogue state: everything else comes
//! from vpnctld through [`vpnctl_client::ApiClient`].
//!
//! [`schema`] is the dptree handler tree; [`BotApp`] wires the Telegram client
//! (teloxide's `Throttle` innermost), the services, the update listener and the
//! [`notifications::Courier`] that delivers the control plane's notifications.

pub mod alerts;
pub mod callback;
pub mod config;
pub mod handlers;
pub mod i18n;
mod listener;
pub mod notifications;
pub mod ratelimit;
pub mod services;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt as _;
use teloxide::adaptors::Throttle;
use teloxide::adaptors::throttle::{Limits as TgLimits, Settings as ThrottleSettings};
use teloxide::error_handlers::ErrorHandler;
use teloxide::prelude::*;
use teloxide::update_listeners::Polling;
use tracing::{error, info, warn};
use vpnctl_client::{ApiClient, ClientError, Fingerprint};
use vpnctl_core::{Locale, Secret};

pub use alerts::Alerts;
pub use config::{Config, ConfigError, SecretText, UpdateMode};
pub use handlers::schema;
use listener::UntilShutdown;
pub use services::{Api, Limits, Session, Settings};

/// The Telegram client every handler uses: rate limits are applied innermost, and
/// `retry_after` answers are waited out and retried by `Throttle`.
pub type TgBot = Throttle<Bot>;

/// What can stop the bot or fail a handler.
#[derive(Debug, thiserror::Error)]
pub enum BotError {
    #[error("Telegram: {0}")]
    Telegram(#[from] teloxide::RequestError),
    #[error("control plane: {0}")]
    Api(#[from] ClientError),
    #[error("settings: {0}")]
    Config(#[from] ConfigError),
}

/// The bot, built and ready to run.
#[derive(Debug)]
pub struct BotApp {
    bot: TgBot,
    config: Config,
    api: Api,
    settings: Settings,
    limits: Limits,
    session: Session,
}

fn telegram_client() -> Result<reqwest::Client, BotError> {
    teloxide::net::default_reqwest_settings()
        .no_proxy()
        .build()
        .map_err(|e| BotError::Config(ConfigError::Invalid(format!("HTTP client: {e}"))))
}

impl BotApp {
    /// Builds the Telegram and API clients (no network traffic yet).
    pub fn new(config: Config) -> Result<Self, BotError> {
        config.validate()?;
        let mut bot = Bot::with_client(config.telegram_token.expose(), telegram_client()?);
        if let Some(url) = &config.telegram_api_url {
            let url = reqwest::Url::parse(url)
                .map_err(|e| ConfigError::Invalid(format!("telegram_api_url {url:?}: {e}")))?;
            bot = bot.set_api_url(url);
        }
        let limits = TgLimits {
            messages_per_sec_chat: config.messages_per_sec_chat,
            messages_per_min_chat: config.messages_per_min_chat,
            messages_per_min_channel_or_supergroup: config.messages_per_min_chat,
            messages_per_sec_overall: config.messages_per_sec_overall,
        };
        let bot = Throttle::spawn_with_settings(bot, ThrottleSettings::default().limits(limits));
        let fingerprint = config
            .api_fingerprint
            .as_deref()
            .map(str::parse::<Fingerprint>)
            .transpose()
            .map_err(|e| ConfigError::Invalid(format!("api_fingerprint: {e}")))?;
        let client = ApiClient::new(
            &config.api_url,
            Some(Secret::new(config.api_token.expose().to_owned())),
            fingerprint,
        )?
        .with_timeout(Duration::from_secs(15));
        let admin = config
            .admin_api_token
            .as_ref()
            .map(|t| client.with_token(Secret::new(t.expose().to_owned())));
        let api = Api { bot: client, admin };
        Ok(Self {
            settings: Settings::from_config(&config),
            limits: Limits::from_config(&config),
            session: Session::default(),
            bot,
            config,
            api,
        })
    }

    /// The entry point the control plane side calls to alert the admin chats.
    pub fn alerts(&self) -> Alerts {
        Alerts::new(self.bot.clone(), &self.config.admin_ids)
    }

    /// Registers the command lists, then handles updates and delivers notifications
    /// until `shutdown` resolves.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), BotError> {
        let Self {
            bot,
            config,
            api,
            settings,
            limits,
            session,
        } = self;
        let shutdown = shutdown.boxed().shared();
        // The courier stops with the bot, or when the dispatcher ends on its own.
        let (dispatched, dispatcher_ended) = tokio::sync::oneshot::channel::<()>();
        let courier_stop = futures_util::future::select(shutdown.clone(), dispatcher_ended)
            .map(|_| ())
            .boxed()
            .shared();
        let courier = notifications::Courier::new(
            bot.clone(),
            api.bot.clone(),
            Alerts::new(bot.clone(), &config.admin_ids),
            settings.clone(),
        );
        let mut courier = tokio::spawn(courier.run(courier_stop));
        register_commands(&bot).await;
        let mut dispatcher = Dispatcher::builder(bot.clone(), schema())
            .dependencies(dptree::deps![api, settings, limits, session])
            .default_handler(|_| async {})
            .error_handler(Arc::new(QuietErrors))
            .build();
        info!(mode = ?config.mode, "vpnctl-bot running");
        match config.mode {
            UpdateMode::Polling => {
                let listener = Polling::builder(bot)
                    .timeout(Duration::from_secs(10))
                    .delete_webhook()
                    .await
                    .build();
                dispatcher
                    .dispatch_with_listener(
                        UntilShutdown::new(listener, shutdown),
                        LoggingErrorHandler::with_custom_text("getUpdates failed"),
                    )
                    .await;
            }
            UpdateMode::Webhook => {
                let (Some(url), Some(listen)) = (&config.webhook_url, config.webhook_listen) else {
                    return Err(ConfigError::Invalid("webhook needs url and listen".into()).into());
                };
                let url = reqwest::Url::parse(url)
                    .map_err(|e| ConfigError::Invalid(format!("webhook_url: {e}")))?;
                let mut options = teloxide::update_listeners::webhooks::Options::new(listen, url);
                if let Some(secret) = &config.webhook_secret {
                    options = options.secret_token(secret.expose().to_owned());
                }
                // Without a configured secret, teloxide generates one: requests without
                // Telegram's `X-Telegram-Bot-Api-Secret-Token` are refused either way.
                let listener = teloxide::update_listeners::webhooks::axum(bot, options).await?;
                dispatcher
                    .dispatch_with_listener(
                        UntilShutdown::new(listener, shutdown),
                        LoggingErrorHandler::with_custom_text("webhook failed"),
                    )
                    .await;
            }
        }
        drop(dispatched);
        // A delivery in flight may finish; whatever it did not acknowledge comes again.
        if tokio::time::timeout(COURIER_GRACE, &mut courier)
            .await
            .is_err()
        {
            courier.abort();
        }
        info!("vpnctl-bot stopped");
        Ok(())
    }
}

/// How long a notification delivery in flight may take to finish at shutdown.
const COURIER_GRACE: Duration = Duration::from_secs(3);

/// Builds the bot from `config` and runs it until `shutdown` resolves.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), BotError> {
    BotApp::new(config)?.run(shutdown).await
}

async fn register_commands(bot: &TgBot) {
    for (l, code) in [(Locale::En, None), (Locale::Ru, Some("ru"))] {
        let mut req = bot.set_my_commands(handlers::command_list(l));
        if let Some(code) = code {
            req = req.language_code(code);
        }
        if let Err(e) = req.await {
            warn!(error = %e, "setMyCommands failed");
        }
    }
}

/// Logs handler errors without their payloads (they may hold config text).
#[derive(Debug, Clone, Copy)]
struct QuietErrors;

impl ErrorHandler<BotError> for QuietErrors {
    fn handle_error(
        self: Arc<Self>,
        error: BotError,
    ) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(async move {
            match &error {
                BotError::Telegram(teloxide::RequestError::InvalidJson { source, .. }) => {
                    error!(error = %source, "Telegram answered with unexpected JSON");
                }
                other => error!(error = %other, "handler failed"),
            }
        })
    }
}
