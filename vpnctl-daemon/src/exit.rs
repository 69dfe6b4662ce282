//! How a daemon's `main` ends.

use std::fmt::Display;
use std::process::ExitCode;

/// Success, or `NAME: error: cause: cause` on one line on stderr and exit status 1
/// (the same for every daemon, whatever `RUST_BACKTRACE` says).
pub fn exit_code<E: Display>(name: &str, result: Result<(), E>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}", error_line(name, &e));
            ExitCode::FAILURE
        }
    }
}

/// `NAME: error` with the alternate form (anyhow's `{:#}` prints the causes) and any
/// line breaks joined.
fn error_line<E: Display>(name: &str, e: &E) -> String {
    let text = format!("{e:#}");
    let text = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    format!("{name}: {text}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_with_the_name() {
        assert_eq!(
            error_line("vpnctld", &"settings file x.toml: bad\n  at line 2"),
            "vpnctld: settings file x.toml: bad at line 2"
        );
    }
}
