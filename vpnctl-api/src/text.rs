//! Text that came from outside (a node's report, a user's name) on its way to a log,
//! a terminal or a chat: control characters never pass.

use std::borrow::Cow;
use std::fmt::Write as _;

/// `text` with every control character (C0, DEL, C1: terminal escapes, carriage
/// returns, newlines) written as a visible `\u{..}` escape, for a terminal line.
pub fn escape_control(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// `text` on one line with control characters replaced by spaces and cut to at most
/// `max_chars` characters (the last one then `…`).
pub fn clean_line(text: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max_chars.saturating_mul(4)));
    let mut chars = text.chars().peekable();
    let mut count = 0;
    while let Some(c) = chars.next() {
        if count + 1 == max_chars && chars.peek().is_some() {
            out.push('…');
            break;
        }
        if count == max_chars {
            break;
        }
        out.push(if c.is_control() { ' ' } else { c });
        count += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_cleans() {
        assert_eq!(escape_control("plain"), "plain");
        assert_eq!(
            escape_control("a\u{1b}[2Jb\r\nc\u{9b}"),
            "a\\u{1b}[2Jb\\u{d}\\u{a}c\\u{9b}"
        );
        assert_eq!(clean_line("a\u{1b}[31mb\n", 10), "a [31mb ");
        assert_eq!(clean_line("abcdef", 4), "abc…");
        assert_eq!(clean_line("abcd", 4), "abcd");
        assert_eq!(clean_line("", 4), "");
        assert_eq!(clean_line("ééééé", 3).chars().count(), 3);
        assert_eq!(clean_line("abc", 0), "");
    }
}
