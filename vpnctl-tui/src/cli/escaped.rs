//! The command line's output writer: text from the API (node errors, health
//! reasons, names) reaches the admin's terminal with its control characters shown as
//! `\u{..}` escapes, never executed. Newlines and tabs pass; so does JSON output,
//! which escapes control characters itself.

use std::io::{self, Write};

/// Writes through to `inner`, escaping C0 controls (except `\n` and `\t`), DEL and
/// C1 controls (`U+0080..=U+009F`, two bytes in UTF-8).
#[derive(Debug)]
pub struct Escaped<W> {
    inner: W,
    /// The last byte written was `0xC2`, the first byte of a C1 control or of a
    /// printable character; held back until the next byte says which.
    held_c2: bool,
}

impl<W: Write> Escaped<W> {
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            held_c2: false,
        }
    }
}

impl<W: Write> Write for Escaped<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut start = 0;
        for (i, &b) in buf.iter().enumerate() {
            if self.held_c2 {
                self.held_c2 = false;
                if (0x80..=0x9f).contains(&b) {
                    write!(self.inner, "\\u{{{b:x}}}")?;
                } else {
                    self.inner.write_all(&[0xc2, b])?;
                }
                start = i + 1;
                continue;
            }
            let control = (b < 0x20 && b != b'\n' && b != b'\t') || b == 0x7f;
            if control || b == 0xc2 {
                self.inner.write_all(&buf[start..i])?;
                if control {
                    write!(self.inner, "\\u{{{b:x}}}")?;
                } else {
                    self.held_c2 = true;
                }
                start = i + 1;
            }
        }
        self.inner.write_all(&buf[start..])?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.held_c2 {
            self.held_c2 = false;
            self.inner.write_all(&[0xc2])?;
        }
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(text: &str) -> String {
        let mut out = Vec::new();
        {
            let mut w = Escaped::new(&mut out);
            // In pieces, as write! would send them.
            for piece in text.split_inclusive('x') {
                w.write_all(piece.as_bytes()).unwrap();
            }
            w.flush().unwrap();
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn controls_are_shown_not_executed() {
        assert_eq!(escaped("plain\ttext\n"), "plain\ttext\n");
        assert_eq!(
            escaped("a\u{1b}[2J\rb\u{7f}c\u{9b}d é ¢x"),
            "a\\u{1b}[2J\\u{d}b\\u{7f}c\\u{9b}d é ¢x"
        );
    }
}
