//! `vpnctl`: parse the command line, send logs to a file (never to the terminal the
//! dashboard draws on), run.

use std::process::ExitCode;

use clap::Parser as _;
use vpnctl_tui::cli::{self, Config};

fn main() -> ExitCode {
    let config = Config::parse();
    if let Some(path) = &config.log_file {
        match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            Ok(file) => tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
                )
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(file))
                .init(),
            Err(e) => {
                eprintln!("vpnctl: cannot open log file {}: {e}", path.display());
                return ExitCode::from(2);
            }
        }
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("vpnctl: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Not locked for the whole run: the panic hook that restores the terminal must be
    // able to write to stdout from any thread.
    let mut stdout = std::io::stdout();
    match runtime.block_on(cli::run(config, &mut stdout)) {
        Ok(()) => ExitCode::SUCCESS,
        // Quietly, with the status of a tool that SIGPIPE ended (128 + 13), as `cat`
        // or `grep` into `head`: nothing to read about, but a backup or config piped
        // into a reader that died still does not look complete under `pipefail`.
        Err(e) if e.is_closed_output() => ExitCode::from(141),
        Err(e) => {
            eprintln!("vpnctl: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
