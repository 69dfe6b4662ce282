//! The admin's journey as `docs/operations.md` tells it, for the install-to-browse
//! test (`tests/install_to_browse.rs`): the guide's command blocks marked with
//! `<!-- journey: HOST -->` (an HTML comment, invisible when the guide is read) are
//! the commands the test runs, on the host the marker names, in the order they
//! appear. A command that changes in the guide changes in the test.
//!
//! Commands are split into words here, shell-like but without a shell: single and
//! double quotes group, `#` starts a comment, nothing is expanded. The test never
//! hands a line to a shell.

/// One marked block of the guide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// Where it runs: `install`, `control-plane`, `admin`, `admin-node`, `vps`,
    /// `client`.
    pub host: String,
    /// Its commands, each split into words; comments and blank lines dropped.
    pub commands: Vec<Vec<String>>,
}

/// Why the guide could not be read as a journey.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuideError(pub String);

impl std::fmt::Display for GuideError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The marked blocks of `markdown`, in order. A marker must be followed (after blank
/// lines at most) by a fenced block.
pub fn journey(markdown: &str) -> Result<Vec<Block>, GuideError> {
    let mut blocks = Vec::new();
    let mut lines = markdown.lines().enumerate().peekable();
    while let Some((n, line)) = lines.next() {
        let Some(host) = line
            .trim()
            .strip_prefix("<!-- journey:")
            .and_then(|rest| rest.strip_suffix("-->"))
        else {
            continue;
        };
        let host = host.trim().to_owned();
        while lines.peek().is_some_and(|(_, l)| l.trim().is_empty()) {
            lines.next();
        }
        match lines.next() {
            Some((_, fence)) if fence.trim_start().starts_with("```") => {}
            _ => {
                return Err(GuideError(format!(
                    "line {}: journey marker {host:?} is not followed by a code block",
                    n + 1
                )));
            }
        }
        let mut commands = Vec::new();
        loop {
            let Some((m, text)) = lines.next() else {
                return Err(GuideError(format!(
                    "line {}: the code block of {host:?} never ends",
                    n + 1
                )));
            };
            if text.trim_start().starts_with("```") {
                break;
            }
            let words =
                split_words(text).map_err(|e| GuideError(format!("line {}: {e}", m + 1)))?;
            if !words.is_empty() {
                commands.push(words);
            }
        }
        blocks.push(Block { host, commands });
    }
    Ok(blocks)
}

/// Splits a command line into words: whitespace separates, `'…'` and `"…"` group
/// (no escapes inside), an unquoted `#` at a word's start ends the line.
pub fn split_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '#' if !in_word => break,
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' | '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some(q) if q == c => break,
                        Some(other) => word.push(other),
                        None => return Err(format!("unclosed {c} in {line:?}")),
                    }
                }
            }
            other => {
                in_word = true;
                word.push(other);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_quotes_and_comments() {
        assert_eq!(
            split_words("vpnctl-node join 'vpnctl-join:abc'   # comment").unwrap(),
            ["vpnctl-node", "join", "vpnctl-join:abc"]
        );
        assert_eq!(
            split_words(r#"export VPNCTL_CONNECT="a b""#).unwrap(),
            ["export", "VPNCTL_CONNECT=a b"]
        );
        assert_eq!(
            split_words("  # only a comment").unwrap(),
            Vec::<String>::new()
        );
        assert!(split_words("echo 'open").is_err());
    }

    #[test]
    fn marked_blocks_in_order() {
        let md = "text\n<!-- journey: admin -->\n\n```sh\nvpnctl users add a   # x\n\nvpnctl users list\n```\n```sh\nnot marked\n```\n<!-- journey: client -->\n```sh\nwg-quick up ./a.conf\n```\n";
        let blocks = journey(md).unwrap();
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0].host, "admin");
        assert_eq!(
            blocks[0].commands,
            [
                vec!["vpnctl", "users", "add", "a"],
                vec!["vpnctl", "users", "list"]
            ]
        );
        assert_eq!(blocks[1].commands, [vec!["wg-quick", "up", "./a.conf"]]);
        assert!(journey("<!-- journey: x -->\ntext\n").is_err());
    }

    #[test]
    fn the_guide_has_the_journey() {
        let guide = include_str!("../../docs/operations.md");
        let blocks = journey(guide).expect("docs/operations.md reads as a journey");
        let hosts: Vec<&str> = blocks.iter().map(|b| b.host.as_str()).collect();
        for host in [
            "install",
            "control-plane",
            "admin",
            "admin-node",
            "vps",
            "client",
        ] {
            assert!(hosts.contains(&host), "no {host} block in {hosts:?}");
        }
    }
}
