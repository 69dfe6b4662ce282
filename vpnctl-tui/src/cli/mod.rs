//! The command line: one [`Config`] for the dashboard, the demo and the scriptable
//! subcommands, and [`run`] which carries them out. Output goes to the writer it is
//! given (stdout in the binary), so tests read exactly what a script would.
//!
//! [`args`] is the command line's shape; one module per resource carries its
//! subcommands out.

mod args;
mod backup;
mod billing;
mod escaped;
mod events;
mod import;
mod invites;
mod nodes;
mod peers;
pub mod resolve;
mod tokens;
mod users;

use std::io::{BufRead as _, IsTerminal as _, Write};

use serde::Serialize;
use vpnctl_client::{ApiClient, ClientError, ConnectionString, Fingerprint};
use vpnctl_core::{Secret, Timestamp};

#[cfg(feature = "demo")]
use crate::demo::{Demo, DemoError, DemoOptions};
use crate::runtime::{self, describe};
pub use args::*;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(
        "no API to talk to: pass --api URL --token TOKEN [--fingerprint HEX] or --connect STRING, or set VPNCTL_API and VPNCTL_TOKEN (or VPNCTL_CONNECT); to try vpnctl without a server run `vpnctl demo`"
    )]
    NoConnection,
    #[error("{0}")]
    Usage(String),
    /// A name or id that matches nothing the API lists (like the API's 404).
    #[error("{0}")]
    NotFound(String),
    /// Nothing can do what was asked now (e.g. no node in a region takes devices).
    #[error("{0}")]
    Refused(String),
    /// The admin answered no.
    #[error("aborted: nothing changed")]
    Aborted,
    /// The command ran but did not do everything (what it did is printed).
    #[error("{0}")]
    Incomplete(String),
    /// An import found conflicts (printed) and changed nothing.
    #[error("{0}")]
    Conflicts(String),
    #[error("{}", describe(.0))]
    Api(#[from] ClientError),
    #[cfg(feature = "demo")]
    #[error("{0}")]
    Demo(#[from] DemoError),
    #[error("terminal: {0}")]
    Io(#[from] std::io::Error),
}

impl CliError {
    /// Whoever read the output stopped reading (`vpnctl peers list | head`): they
    /// have what they wanted, so this is no failure to explain.
    pub fn is_closed_output(&self) -> bool {
        matches!(self, Self::Io(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }

    /// 2: bad usage or settings; 3: the API is unreachable; 4: the API said no (or the
    /// name given matches nothing); 1: other, also a command that did only part of its
    /// work or that the admin declined.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::NoConnection | Self::Usage(_) => 2,
            Self::Api(ClientError::Config(_) | ClientError::Token(_)) => 2,
            Self::Api(ClientError::Unreachable { .. } | ClientError::Timeout { .. }) => 3,
            Self::Api(ClientError::Api { .. })
            | Self::NotFound(_)
            | Self::Refused(_)
            | Self::Conflicts(_) => 4,
            _ => 1,
        }
    }
}

impl ConnectionArgs {
    /// The API client these settings describe.
    pub fn client(&self) -> Result<ApiClient, CliError> {
        if let Some(text) = &self.connect {
            let connection = ConnectionString::parse(text.trim()).map_err(ClientError::from)?;
            return Ok(ApiClient::from_connection(&connection)?);
        }
        let Some(api) = &self.api else {
            return Err(CliError::NoConnection);
        };
        let Some(token) = &self.token else {
            return Err(CliError::Usage(
                "--api needs --token (or VPNCTL_TOKEN): the API token of an admin".into(),
            ));
        };
        let pin = self
            .fingerprint
            .as_deref()
            .map(|f| {
                f.parse::<Fingerprint>().map_err(|_| {
                    CliError::Usage(format!(
                        "--fingerprint {f:?} is not a SHA-256 fingerprint (64 hex digits)"
                    ))
                })
            })
            .transpose()?;
        Ok(ApiClient::new(api, Some(Secret::new(token.clone())), pin)?)
    }
}

pub(crate) fn json(out: &mut dyn Write, value: &impl Serialize) -> Result<(), CliError> {
    serde_json::to_writer_pretty(&mut *out, value)
        .map_err(|e| CliError::Io(std::io::Error::from(e)))?;
    writeln!(out)?;
    Ok(())
}

/// A JSON array written element by element, so that a list of any length prints
/// page by page in bounded memory. The text is what [`json`] prints for the whole
/// list.
pub(crate) struct JsonArray {
    empty: bool,
}

impl JsonArray {
    pub(crate) fn start(out: &mut dyn Write) -> Result<Self, CliError> {
        write!(out, "[")?;
        Ok(Self { empty: true })
    }

    pub(crate) fn push(
        &mut self,
        out: &mut dyn Write,
        value: &impl Serialize,
    ) -> Result<(), CliError> {
        let text = serde_json::to_string_pretty(value)
            .map_err(|e| CliError::Io(std::io::Error::from(e)))?;
        writeln!(out, "{}", if self.empty { "" } else { "," })?;
        self.empty = false;
        for (i, line) in text.lines().enumerate() {
            if i > 0 {
                writeln!(out)?;
            }
            write!(out, "  {line}")?;
        }
        Ok(())
    }

    pub(crate) fn finish(self, out: &mut dyn Write) -> Result<(), CliError> {
        if self.empty {
            writeln!(out, "]")?;
        } else {
            writeln!(out, "\n]")?;
        }
        out.flush()?;
        Ok(())
    }
}

pub(crate) fn date(t: Option<Timestamp>, none: &str) -> String {
    t.map_or_else(|| none.to_owned(), Timestamp::to_date)
}

/// Asks the admin a yes/no question; `None` when nobody can be asked.
pub type Ask<'a> = dyn FnMut(&str) -> Option<bool> + Send + 'a;

/// Goes on when `yes` was passed or the admin answers yes; else aborts, or refuses
/// (usage error) when nobody can be asked, saying what `--yes` would do.
pub(crate) fn confirm(
    ask: &mut Ask<'_>,
    yes: bool,
    question: &str,
    without_yes: impl FnOnce() -> String,
) -> Result<(), CliError> {
    if yes {
        return Ok(());
    }
    match ask(question) {
        Some(true) => Ok(()),
        Some(false) => Err(CliError::Aborted),
        None => Err(CliError::Usage(without_yes())),
    }
}

/// Asks on stderr and reads the answer from stdin, if stdin is a terminal.
pub fn ask_on_terminal(question: &str) -> Option<bool> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return None;
    }
    eprint!("{question} [y/N] ");
    let mut answer = String::new();
    stdin.lock().read_line(&mut answer).ok()?;
    Some(matches!(answer.trim().to_lowercase().as_str(), "y" | "yes"))
}

/// Runs what the command line asks for. Dashboard and demo take over the terminal;
/// destructive subcommands ask on the terminal (see [`run_with`]).
pub async fn run(config: Config, out: &mut dyn Write) -> Result<(), CliError> {
    run_with(config, out, &mut ask_on_terminal).await
}

/// [`run`], with `ask` answering the confirmation questions (tests answer for the admin).
pub async fn run_with(
    config: Config,
    out: &mut dyn Write,
    ask: &mut Ask<'_>,
) -> Result<(), CliError> {
    let mut escaped = escaped::Escaped::new(out);
    let out: &mut dyn Write = &mut escaped;
    let result = run_escaped(config, out, ask).await;
    // The command's own error first: a closed output must not hide it.
    let flushed = out.flush();
    result?;
    Ok(flushed?)
}

async fn run_escaped(
    config: Config,
    out: &mut dyn Write,
    ask: &mut Ask<'_>,
) -> Result<(), CliError> {
    let as_json = config.json;
    match config.command {
        None | Some(Command::Dashboard) => {
            let api = config.connection.client()?;
            // Fail before taking over the terminal when the API is clearly wrong.
            api.healthz().await?;
            let title = format!("vpnctl {}", api.base_url());
            runtime::run_dashboard(api, &title).await?;
            Ok(())
        }
        #[cfg(not(feature = "demo"))]
        Some(Command::Demo { .. }) => Err(CliError::Usage(
            "this vpnctl was built without the demo (cargo feature `demo`): install one built with it, e.g. `cargo install --path vpnctl-tui`, or point this one at a control plane with --api/--token or --connect".into(),
        )),
        #[cfg(feature = "demo")]
        Some(Command::Demo { data, peers }) => {
            let demo = Demo::start(DemoOptions {
                data,
                extra_peers: peers,
                report_secs: None,
            })
            .await?;
            let result = runtime::run_dashboard(demo.api.clone(), "vpnctl demo").await;
            demo.stop().await;
            result?;
            Ok(())
        }
        Some(Command::Users(cmd)) => {
            users::run(&config.connection.client()?, cmd, as_json, out, ask).await
        }
        Some(Command::Invites(cmd)) => {
            invites::run(&config.connection.client()?, cmd, as_json, out).await
        }
        Some(Command::Nodes(cmd)) => {
            nodes::run(&config.connection.client()?, cmd, as_json, out, ask).await
        }
        Some(Command::Peers(cmd)) => {
            peers::run(&config.connection.client()?, cmd, as_json, out, ask).await
        }
        Some(Command::Events(args)) => {
            events::run(&config.connection.client()?, &args, as_json, out).await
        }
        Some(Command::Tokens(cmd)) => tokens::run(&config.connection.client()?, cmd, as_json, out).await,
        Some(Command::Plans(cmd)) => {
            billing::plans(&config.connection.client()?, cmd, as_json, out).await
        }
        Some(Command::Payments(cmd)) => {
            billing::payments(&config.connection.client()?, cmd, as_json, out, ask).await
        }
        Some(Command::Broadcast(args)) => {
            billing::broadcast(&config.connection.client()?, args, as_json, out, ask).await
        }
        Some(Command::Broadcasts(cmd)) => {
            billing::broadcasts(&config.connection.client()?, cmd, as_json, out).await
        }
        Some(Command::Import(cmd)) => {
            import::run(&config.connection.client()?, cmd, as_json, out).await
        }
        Some(Command::Backup(args)) => {
            backup::run(&config.connection.client()?, &args, as_json, out).await
        }
        Some(Command::BackupKey { out: file }) => backup::generate_key(&file, as_json, out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn command_line_is_consistent() {
        Config::command().debug_assert();
    }

    #[test]
    fn missing_connection_is_a_usage_error() {
        let err = ConnectionArgs::default().client().unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("vpnctl demo"));
        let err = ConnectionArgs {
            api: Some("http://127.0.0.1:1".into()),
            ..ConnectionArgs::default()
        }
        .client()
        .unwrap_err();
        assert!(err.to_string().contains("--token"));
    }

    #[test]
    fn plain_http_to_a_remote_host_is_refused() {
        let err = ConnectionArgs {
            api: Some("http://192.0.2.1:7443".into()),
            token: Some("vpt_x".into()),
            ..ConnectionArgs::default()
        }
        .client()
        .unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }
}
