//! A check for a daemon's command line: every subcommand and every argument says what
//! it does, and every command its texts name in backticks (`` `vpnctld run` ``)
//! exists. Daemons call [`problems`] from a test.

/// What is wrong with the help of `cmd` (empty: nothing): subcommands without an
/// `about`, arguments without a help text, and `` `NAME SUB...` `` in any text (NAME
/// being the command's own name) that names no subcommand.
pub fn problems(mut cmd: clap::Command) -> Vec<String> {
    cmd.build();
    let mut found = Vec::new();
    let mut texts = Vec::new();
    collect(&cmd, cmd.get_name(), true, &mut found, &mut texts);
    let prefix = format!("{} ", cmd.get_name());
    for text in &texts {
        for quoted in text.split('`').skip(1).step_by(2) {
            let Some(rest) = quoted.strip_prefix(&prefix) else {
                continue;
            };
            let words: Vec<&str> = rest
                .split_whitespace()
                .take_while(|w| w.chars().all(|c| c.is_ascii_lowercase() || c == '-'))
                .filter(|w| !w.starts_with('-'))
                .collect();
            let mut at = &cmd;
            for word in &words {
                match at.find_subcommand(word) {
                    Some(sub) => at = sub,
                    None => {
                        found.push(format!("{text:?} names `{quoted}`, which does not exist"));
                        break;
                    }
                }
            }
        }
    }
    found
}

fn collect(
    cmd: &clap::Command,
    path: &str,
    root: bool,
    found: &mut Vec<String>,
    texts: &mut Vec<String>,
) {
    let about = cmd.get_about().map(ToString::to_string).unwrap_or_default();
    if about.trim().is_empty() && !root {
        found.push(format!("`{path}` has no description"));
    }
    texts.push(about);
    texts.extend(cmd.get_long_about().map(ToString::to_string));
    for arg in cmd.get_arguments() {
        let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
        if help.trim().is_empty() {
            found.push(format!(
                "`{path}`: argument {} has no description",
                arg.get_id()
            ));
        }
        texts.push(help);
        texts.extend(arg.get_long_help().map(ToString::to_string));
    }
    // clap's generated `help` subcommand repeats the others.
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        collect(
            sub,
            &format!("{path} {}", sub.get_name()),
            false,
            found,
            texts,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, Command};

    #[test]
    fn finds_missing_texts_and_commands_that_do_not_exist() {
        let good = Command::new("tool")
            .about("A tool.")
            .arg(
                Arg::new("x")
                    .long("x")
                    .help("Sets x; see `tool run --fast`."),
            )
            .subcommand(Command::new("run").about("Runs it."));
        assert_eq!(problems(good), Vec::<String>::new());

        let bad = Command::new("tool")
            .arg(Arg::new("x").long("x"))
            .subcommand(Command::new("run").about("Like `tool start`."))
            .subcommand(Command::new("stop"));
        let found = problems(bad);
        assert_eq!(found.len(), 3, "{found:#?}");
        assert!(found.iter().any(|p| p.contains("argument x")));
        assert!(found.iter().any(|p| p == "`tool stop` has no description"));
        assert!(found.iter().any(|p| p.contains("`tool start`")));
    }
}
