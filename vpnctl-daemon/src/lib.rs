//! What the three daemons (`vpnctld`, `vpnctl-node`, `vpnctl-bot`) share as
//! processes, so that they behave alike: settings layered the same way with the same
//! error messages ([`settings`]), logs fit for journald ([`logging`]), SIGTERM and
//! SIGINT as a graceful stop ([`shutdown_signal`]), one way to end on an error
//! ([`exit_code`]), one retry [`Backoff`], the
//! Prometheus exposition both `/metrics` endpoints use ([`metrics`]), and a check
//! that a command line documents itself ([`help::problems`]).
//!
//! Nothing here knows the domain; binaries call it from `main`, libraries take the
//! shutdown future as a parameter.

mod backoff;
mod exit;
pub mod help;
pub mod logging;
pub mod metrics;
pub mod settings;
mod signal;

pub use backoff::Backoff;
pub use exit::exit_code;
pub use settings::SettingsError;
pub use signal::shutdown_signal;
