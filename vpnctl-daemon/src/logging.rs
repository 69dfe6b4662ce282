//! Logs to stderr, one line per event, fit for journald and log files: colour codes
//! only when stderr is a terminal.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

/// Why logging could not start.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    #[error("log filter {filter:?}: {reason}")]
    Filter { filter: String, reason: String },
}

/// Installs the global subscriber. `filter` (a `--log` setting, tracing's
/// `EnvFilter` syntax) wins over `RUST_LOG`, which wins over `default`.
pub fn init(filter: Option<&str>, default: &str) -> Result<(), LoggingError> {
    let filter = match filter {
        Some(text) => EnvFilter::try_new(text).map_err(|e| LoggingError::Filter {
            filter: text.to_owned(),
            reason: e.to_string(),
        })?,
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default)),
    };
    let ansi = std::io::stderr().is_terminal();
    // A second init (tests) keeps the first subscriber.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .try_init();
    Ok(())
}
