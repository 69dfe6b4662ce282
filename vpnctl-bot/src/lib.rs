//! vpnctl-bot: the Telegram frontend of vpnctl.
//!
//! End users get, check and rotate their WireGuard configs; admins get alerts and a
//! few commands. Everything about users, devices and nodes comes from vpnctld
//! through [`vpnctl_client::ApiClient`]; the bot itself keeps only what must
//! survive a restart (scheduled deletions, used keyboards, chosen languages) in
//! [`state::BotState`].
//!
//! [`schema`] is the dptree handler tree; [`BotApp`] wires the Telegram client and
//! its [`pacer::Pacer`], the services, the update listener, the
//! [`notifications::Courier`] that delivers the control plane's notifications and
//! the [`deletions::Deletions`] runner.

pub mod alerts;
pub mod callback;
pub mod config;
pub mod deletions;
pub mod delivery;
pub mod handlers;
pub mod i18n;
mod listener;
pub mod notifications;
pub mod pacer;
pub mod ratelimit;
pub mod services;
pub mod state;
pub mod telegram;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt as _;
use teloxide::error_handlers::ErrorHandler;
use teloxide::prelude::*;
use teloxide::types::Me;
use teloxide::update_listeners::Polling;
use teloxide::{ApiError, RequestError};
use tracing::{error, info, warn};
use vpnctl_client::{ApiClient, ClientError, Fingerprint};
use vpnctl_core::{Locale, Secret};
use vpnctl_daemon::{Backoff, SettingsError};

pub use alerts::Alerts;
pub use config::{Config, SecretText, Settings, UpdateMode};
pub use handlers::schema;
use listener::UntilShutdown;
use notifications::Stop;
pub use services::{Api, Limits, Policy, Services, Session};

/// What can stop the bot or fail a handler.
#[derive(Debug, thiserror::Error)]
pub enum BotError {
    #[error("Telegram: {0}")]
    Telegram(#[from] RequestError),
    #[error("control plane: {0}")]
    Api(#[from] ClientError),
    #[error("settings: {0}")]
    Settings(#[from] SettingsError),
    #[error(transparent)]
    State(#[from] state::StateError),
}

/// How long Telegram calls at start are retried at most between attempts.
const START_BACKOFF: Backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));

/// How long a notification delivery in flight may take to finish at shutdown.
const COURIER_GRACE: Duration = Duration::from_secs(3);

/// The bot, built and ready to run.
#[derive(Debug)]
pub struct BotApp {
    bot: Bot,
    config: Config,
    services: Services,
}

fn telegram_client(config: &Config) -> Result<reqwest::Client, SettingsError> {
    let mut builder = teloxide::net::default_reqwest_settings();
    builder = match &config.telegram_proxy {
        // Only Telegram goes through the proxy; loopback and the control plane never.
        Some(proxy) => builder.proxy(
            reqwest::Proxy::all(proxy.expose())
                .map_err(|_| SettingsError::invalid("telegram_proxy", "not a proxy URL"))?,
        ),
        None => builder.no_proxy(),
    };
    builder
        .build()
        .map_err(|e| SettingsError::invalid("telegram HTTP client", e))
}

impl BotApp {
    /// Builds the Telegram and API clients and opens the state (no network traffic
    /// yet).
    pub fn new(config: Config) -> Result<Self, BotError> {
        config.validate()?;
        let mut bot = Bot::with_client(config.telegram_token.expose(), telegram_client(&config)?);
        if let Some(url) = &config.telegram_api_url {
            let url = reqwest::Url::parse(url)
                .map_err(|e| SettingsError::invalid("telegram_api_url", e))?;
            bot = bot.set_api_url(url);
        }
        let pacer = pacer::Pacer::new(pacer::Limits {
            per_sec_overall: config.messages_per_sec_overall,
            per_sec_chat: config.messages_per_sec_chat,
            per_min_group: config.messages_per_min_chat,
        });
        let fingerprint = config
            .api_fingerprint
            .as_deref()
            .map(str::parse::<Fingerprint>)
            .transpose()
            .map_err(|e| SettingsError::invalid("api_fingerprint", e))?;
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
        let state = state::BotState::open(config.state_dir.as_deref())?;
        if config.state_dir.is_none() {
            warn!(
                "no state directory: scheduled deletions of sent configs do not survive a restart"
            );
        }
        let services = Services {
            tg: telegram::Telegram::new(bot.clone(), Arc::new(pacer)),
            api: Api { bot: client, admin },
            policy: Policy::from_config(&config),
            limits: Limits::from_config(&config),
            session: Session::default(),
            deletions: deletions::Deletions::new(state.clone()),
            state,
        };
        Ok(Self {
            bot,
            config,
            services,
        })
    }

    /// Sends texts to the admin chats (for embedders).
    pub fn alerts(&self) -> Alerts {
        Alerts::new(self.services.tg.clone(), &self.config.admin_ids)
    }

    /// Runs until `shutdown` resolves: deletes what is due, delivers notifications,
    /// and (once Telegram answers `getMe`) handles updates. Telegram being away at
    /// start is waited out with a back-off; only a token Telegram refuses ends it.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), BotError> {
        let Self {
            bot,
            config,
            services,
        } = self;
        let shutdown: Stop = shutdown.boxed().shared();
        // The courier and the deletions stop with the bot, or when it ends on its own.
        let (ended_tx, ended) = tokio::sync::oneshot::channel::<()>();
        let stop: Stop = futures_util::future::select(shutdown.clone(), ended)
            .map(|_| ())
            .boxed()
            .shared();
        let deleting = tokio::spawn(services.deletions.clone().run(bot.clone(), stop.clone()));
        let held = tokio::spawn(handlers::payments::retry_held(
            services.clone(),
            stop.clone(),
        ));
        let courier = notifications::Courier::new(services.clone(), &config.admin_ids);
        let mut courier = tokio::spawn(courier.run(stop.clone()));

        let result = dispatch(&bot, &config, services, shutdown).await;

        drop(ended_tx);
        // A delivery in flight may finish; whatever it did not acknowledge comes again.
        if tokio::time::timeout(COURIER_GRACE, &mut courier)
            .await
            .is_err()
        {
            courier.abort();
            let _ = courier.await;
        }
        let _ = deleting.await;
        let _ = held.await;
        info!("vpnctl-bot stopped");
        result
    }
}

/// Waits for Telegram to answer `getMe`, then handles updates until `shutdown`.
async fn dispatch(
    bot: &Bot,
    config: &Config,
    services: Services,
    shutdown: Stop,
) -> Result<(), BotError> {
    let mut failures = 0;
    loop {
        let Some(me) = get_me(bot, &shutdown).await? else {
            return Ok(());
        };
        register_commands(bot).await;
        let mut dispatcher = Dispatcher::builder(bot.clone(), schema())
            .dependencies(dptree::deps![services.clone(), me])
            .default_handler(|_| async {})
            .error_handler(Arc::new(QuietErrors))
            .build();
        info!(mode = ?config.mode, "vpnctl-bot running");
        let dispatched = match config.mode {
            UpdateMode::Polling => {
                let listener = Polling::builder(bot.clone())
                    .timeout(Duration::from_secs(10))
                    .delete_webhook()
                    .await
                    .build();
                dispatcher
                    .try_dispatch_with_listener(
                        UntilShutdown::new(listener, shutdown.clone()),
                        LoggingErrorHandler::with_custom_text("getUpdates failed"),
                    )
                    .await
            }
            UpdateMode::Webhook => {
                let (Some(url), Some(listen)) = (&config.webhook_url, config.webhook_listen) else {
                    return Err(SettingsError::missing(
                        "webhook_url",
                        "webhook-url",
                        "VPNCTL_BOT_WEBHOOK_URL",
                    )
                    .into());
                };
                let url = reqwest::Url::parse(url)
                    .map_err(|e| SettingsError::invalid("webhook_url", e))?;
                let mut options = teloxide::update_listeners::webhooks::Options::new(listen, url);
                if let Some(secret) = &config.webhook_secret {
                    options = options.secret_token(secret.expose().to_owned());
                }
                // Without a configured secret, teloxide generates one: requests without
                // Telegram's `X-Telegram-Bot-Api-Secret-Token` are refused either way.
                match teloxide::update_listeners::webhooks::axum(bot.clone(), options).await {
                    Ok(listener) => {
                        dispatcher
                            .try_dispatch_with_listener(
                                UntilShutdown::new(listener, shutdown.clone()),
                                LoggingErrorHandler::with_custom_text("webhook failed"),
                            )
                            .await
                    }
                    Err(e) => Err(e),
                }
            }
        };
        match dispatched {
            Ok(()) => return Ok(()),
            Err(e) => {
                failures += 1;
                let wait = START_BACKOFF.delay(failures);
                warn!(error = %e, retry_in = ?wait, "could not start handling updates");
                if pause(&shutdown, wait).await {
                    return Ok(());
                }
            }
        }
    }
}

/// `getMe`, retried with a back-off until it answers; `None` if told to stop first.
/// A token Telegram refuses is final.
async fn get_me(bot: &Bot, shutdown: &Stop) -> Result<Option<Me>, BotError> {
    let mut failures = 0;
    loop {
        match bot.get_me().await {
            Ok(me) => return Ok(Some(me)),
            Err(e @ RequestError::Api(ApiError::InvalidToken)) => {
                error!(error = %e, "Telegram refuses the bot token");
                return Err(e.into());
            }
            Err(e) => {
                failures += 1;
                let wait = START_BACKOFF.delay(failures);
                warn!(error = %e, attempt = failures, retry_in = ?wait, "Telegram getMe failed");
                if pause(shutdown, wait).await {
                    return Ok(None);
                }
            }
        }
    }
}

async fn pause(stop: &Stop, wait: Duration) -> bool {
    tokio::select! {
        () = stop.clone() => true,
        () = tokio::time::sleep(wait) => false,
    }
}

/// Builds the bot from `config` and runs it until `shutdown` resolves.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), BotError> {
    BotApp::new(config)?.run(shutdown).await
}

async fn register_commands(bot: &Bot) {
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
                BotError::Telegram(RequestError::InvalidJson { source, .. }) => {
                    error!(error = %source, "Telegram answered with unexpected JSON");
                }
                other => error!(error = %other, "handler failed"),
            }
        })
    }
}
