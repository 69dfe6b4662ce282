//! vpnctld, the vpnctl control plane: a versioned HTTP/JSON API over
//! [`vpnctl_core::Vpnctl`] for the Telegram bot, the admin TUI and the node daemons,
//! the node long-poll feed, the outbox long-poll for the bot, `/metrics`, and the
//! lifecycle loop (expiry, reminders, quota resets, node probes and health, alert
//! webhook; see [`scheduler`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), vpnctl_server::ServerError> {
//! use vpnctl_server::{ServerConfig, run};
//! let config = ServerConfig::new("/var/lib/vpnctl".into(), "127.0.0.1:7443".parse().unwrap());
//! run(config, vpnctl_daemon::shutdown_signal()).await
//! # }
//! ```

pub mod backups;
mod billing;
mod compress;
pub mod config;
mod error;
mod extract;
mod gate;
pub mod limits;
pub mod listener;
pub mod metrics;
mod move_in;
pub mod routes;
pub mod scheduler;
mod state;
pub mod tls;
pub mod webhook;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use vpnctl_api::{ConnectionString, Fingerprint};
use vpnctl_core::{Scope, Secret, Vpnctl};

pub use config::{CONFIG_FILE, Command, Config, ServerConfig};
pub use error::ApiFailure;
pub use limits::Limits;
pub use state::{AppState, PublicInfo};
pub use webhook::WebhookUrl;

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    #[error("configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Settings(#[from] vpnctl_daemon::SettingsError),
    #[error("store: {0}")]
    Store(#[from] vpnctl_core::Error),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("{0}")]
    Io(String),
    #[error(
        "refusing to serve plain HTTP on {0}: it is not a loopback address; serve TLS (the default)"
    )]
    PlainHttpOffHost(SocketAddr),
    #[error("{} is already initialised (it has a database); refusing to overwrite it", .0.display())]
    AlreadyInitialised(PathBuf),
}

/// Bounds of the lifecycle loop's interval: expiry is enforced within a minute;
/// tests may run it every few milliseconds.
const MIN_SWEEP_INTERVAL: Duration = Duration::from_millis(10);
const MAX_SWEEP_INTERVAL: Duration = Duration::from_secs(config::MAX_SWEEP_INTERVAL_SECS);

/// A bound, not yet serving control plane. Tests bind to `127.0.0.1:0`, read
/// [`Server::base_url`], and serve with a shutdown future of their own.
pub struct Server {
    bound: listener::Listener,
    local_addr: SocketAddr,
    state: AppState,
    shutdown: watch::Sender<bool>,
    sweep_interval: Duration,
    probe_timeout: Duration,
    webhook: Option<webhook::Webhook>,
    data: PathBuf,
    backups: Option<backups::Schedule>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr)
            .field("public", self.state.public())
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Opens the store in `config.data` with `config.policy` and binds the listener.
    pub async fn bind(config: ServerConfig) -> Result<Self, ServerError> {
        let dir = config.data.clone();
        let policy = config.policy.clone();
        let vpn = tokio::task::spawn_blocking(move || Vpnctl::open_dir_with(&dir, policy))
            .await
            .map_err(|e| ServerError::Io(e.to_string()))??;
        Self::bind_with(config, vpn).await
    }

    /// Binds over an already open service (embedding, the demo, tests with a
    /// manual clock): the service's own policy applies, not `config.policy`. TLS
    /// material is still read from `config.data`.
    pub async fn bind_with(config: ServerConfig, vpn: Vpnctl) -> Result<Self, ServerError> {
        if !config.tls && !config.listen.ip().is_loopback() {
            return Err(ServerError::PlainHttpOffHost(config.listen));
        }
        config.limits.validate().map_err(ServerError::Config)?;
        let sweep_interval = config
            .sweep_interval
            .clamp(MIN_SWEEP_INTERVAL, MAX_SWEEP_INTERVAL);
        let webhook = config
            .alert_webhook
            .clone()
            .map(|url| webhook::Webhook::new(url, sweep_interval))
            .transpose()
            .map_err(ServerError::Config)?;
        let tls = if config.tls {
            Some(tls::load(&config.data)?)
        } else {
            None
        };
        let tcp = TcpListener::bind(config.listen)
            .await
            .map_err(|e| ServerError::Io(format!("binding {}: {e}", config.listen)))?;
        let local_addr = tcp
            .local_addr()
            .map_err(|e| ServerError::Io(e.to_string()))?;
        let (bound, fingerprint, scheme) = match tls {
            Some((server_config, fingerprint)) => (
                listener::Listener::Tls(
                    tcp,
                    tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(server_config)),
                ),
                Some(fingerprint),
                "https",
            ),
            None => (listener::Listener::Plain(tcp), None, "http"),
        };
        let url = config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("{scheme}://{local_addr}"))
            .trim_end_matches('/')
            .to_owned();
        let (shutdown, shutdown_rx) = watch::channel(false);
        let state = AppState::new(
            vpn,
            PublicInfo {
                url,
                fingerprint,
                bot_username: config.bot_username.clone(),
            },
            shutdown_rx,
            config.limits.clone(),
        );
        Ok(Self {
            bound,
            local_addr,
            state,
            shutdown,
            sweep_interval,
            probe_timeout: config.probe_timeout,
            webhook,
            data: config.data.clone(),
            backups: config.backups.clone(),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The API base URL as put into join tokens.
    pub fn base_url(&self) -> &str {
        &self.state.public().url
    }

    pub fn fingerprint(&self) -> Option<Fingerprint> {
        self.state.public().fingerprint
    }

    pub fn vpnctl(&self) -> &Vpnctl {
        self.state.vpn()
    }

    /// Serves until `shutdown` resolves; then open long-polls and event streams end at
    /// once and in-flight requests finish.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        let Self {
            bound,
            local_addr,
            state,
            shutdown: shutdown_tx,
            sweep_interval,
            probe_timeout,
            webhook,
            data,
            backups,
        } = self;
        tracing::info!(
            addr = %local_addr,
            url = %state.public().url,
            tls = state.public().fingerprint.is_some(),
            sweep_interval_ms = u64::try_from(sweep_interval.as_millis()).unwrap_or(u64::MAX),
            alert_webhook = webhook.as_ref().map(webhook::Webhook::host),
            "vpnctld serving"
        );
        let lifecycle = tokio::spawn(
            scheduler::Lifecycle {
                state: state.clone(),
                interval: sweep_interval,
                probe_timeout,
                webhook,
            }
            .run(),
        );
        let backup_dir = backups.as_ref().map(|s| s.dir.clone());
        let scheduled = backups.map(|schedule| {
            tokio::spawn(backups::run(state.vpn().clone(), data.clone(), schedule))
        });
        let app =
            routes::router(state.clone()).merge(move_in::router(state.clone(), data, backup_dir));
        let signal = async move {
            shutdown.await;
            tracing::info!("shutting down");
            let _ = shutdown_tx.send(true);
        };
        let limits = state.limits().clone();
        let served = listener::serve(bound, app, limits, signal).await;
        lifecycle.abort();
        if let Some(task) = scheduled {
            task.abort();
        }
        tracing::info!("vpnctld stopped serving");
        served.map_err(|e| ServerError::Io(format!("serving: {e}")))
    }
}

/// Binds and serves until `shutdown` resolves.
pub async fn run(
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    Server::bind(config).await?.serve(shutdown).await
}

/// What `vpnctld init` sets up.
#[derive(Debug, Clone)]
pub struct InitOptions {
    pub data: PathBuf,
    pub listen: SocketAddr,
    pub public_url: Option<String>,
}

/// The result of `vpnctld init`: show it once. `Debug` hides the token.
#[derive(Debug)]
pub struct Initialized {
    pub url: String,
    pub fingerprint: Fingerprint,
    pub admin_token: Secret,
    pub config_file: PathBuf,
}

impl Initialized {
    /// `vpnctl-connect:...` for the admin TUI/CLI. Contains the token.
    pub fn connection_string(&self) -> ConnectionString {
        ConnectionString {
            url: self.url.clone(),
            fingerprint: Some(self.fingerprint),
            token: self.admin_token.clone(),
        }
    }

    /// Writes the one-time summary (token included) to `out`.
    pub fn write_summary(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        writeln!(out, "vpnctld initialised.")?;
        writeln!(out, "  API URL:               {}", self.url)?;
        writeln!(out, "  certificate SHA-256:   {}", self.fingerprint)?;
        writeln!(
            out,
            "  config file:           {}",
            self.config_file.display()
        )?;
        writeln!(out)?;
        writeln!(out, "Admin token (shown only this once; store it safely):")?;
        writeln!(out, "  {}", self.admin_token.expose())?;
        writeln!(out, "Admin connection string (for `vpnctl`):")?;
        writeln!(out, "  {}", self.connection_string().encode())?;
        writeln!(out)?;
        writeln!(
            out,
            "Start the server with: vpnctld run --config {}",
            self.config_file.display()
        )
    }
}

fn host_of(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next()?;
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    (!host.is_empty()).then(|| host.to_owned())
}

/// Creates the data directory (0700), the store, a self-signed certificate for the
/// public URL's host and the listen address, a config file, and the first admin token.
pub fn init(opts: &InitOptions) -> Result<Initialized, ServerError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let dir = &opts.data;
    if dir.join(vpnctl_core::service::DB_FILE).exists() {
        return Err(ServerError::AlreadyInitialised(dir.clone()));
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .and_then(|()| std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)))
        .map_err(|e| ServerError::Io(format!("creating {}: {e}", dir.display())))?;
    let vpn = Vpnctl::open_dir(dir)?;

    let url = opts
        .public_url
        .clone()
        .unwrap_or_else(|| format!("https://{}", opts.listen))
        .trim_end_matches('/')
        .to_owned();
    let mut names = vec!["localhost".to_owned()];
    if let Some(host) = host_of(&url) {
        names.push(host);
    }
    let ip = opts.listen.ip();
    if !ip.is_unspecified() {
        names.push(ip.to_string());
    }
    names.push(IpAddr::from([127, 0, 0, 1]).to_string());
    names.sort();
    names.dedup();
    let fingerprint = tls::generate(dir, names)?;

    let config_file = dir.join(config::CONFIG_FILE);
    write_config(&config_file, dir, opts.listen, &url)?;
    let (_, admin_token) = vpn.create_token(Scope::Admin, "admin (init)")?;
    Ok(Initialized {
        url,
        fingerprint,
        admin_token,
        config_file,
    })
}

fn write_config(
    path: &Path,
    data: &Path,
    listen: SocketAddr,
    url: &str,
) -> Result<(), ServerError> {
    #[derive(serde::Serialize)]
    struct File<'a> {
        data: &'a Path,
        listen: SocketAddr,
        public_url: &'a str,
    }
    let text = toml::to_string(&File {
        data,
        listen,
        public_url: url,
    })
    .map_err(|e| ServerError::Config(e.to_string()))?;
    std::fs::write(path, text)
        .map_err(|e| ServerError::Io(format!("writing {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_of_urls() {
        assert_eq!(
            host_of("https://vpn.example.com:7443").as_deref(),
            Some("vpn.example.com")
        );
        assert_eq!(
            host_of("https://[2001:db8::1]:7443/x").as_deref(),
            Some("2001:db8::1")
        );
        assert_eq!(host_of("https://10.0.0.1").as_deref(), Some("10.0.0.1"));
    }
}
