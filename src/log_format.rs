//! How log fields are written: every control character in a field (or in
//! a message, which may quote what a client sent) is escaped, so a user
//! name or an MQTT topic with a line break cannot forge a log line, and
//! terminal escape sequences never reach an operator's terminal.

use std::fmt::{self, Write};
use tracing_subscriber::field::MakeExt;

/// A writer that passes text through with control characters escaped
/// (`\n` as `\n`, others as `\u{…}`).
pub struct ControlEscaper<W>(pub W);

impl<W: Write> Write for ControlEscaper<W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut rest = s;
        while let Some(at) = rest.find(char::is_control) {
            self.0.write_str(&rest[..at])?;
            let c = rest[at..].chars().next().unwrap_or_default();
            match c {
                '\n' => self.0.write_str("\\n")?,
                '\r' => self.0.write_str("\\r")?,
                '\t' => self.0.write_str("\\t")?,
                other => write!(self.0, "\\u{{{:x}}}", u32::from(other))?,
            }
            rest = &rest[at + c.len_utf8()..];
        }
        self.0.write_str(rest)
    }
}

/// The field formatter for `tracing_subscriber::fmt().fmt_fields(…)`:
/// `message` first as it is, the others as `name=value`, space-separated,
/// all escaped.
pub fn escaped_fields(
) -> impl for<'a> tracing_subscriber::fmt::FormatFields<'a> + Send + Sync + 'static {
    tracing_subscriber::fmt::format::debug_fn(|writer, field, value| {
        let mut escaped = ControlEscaper(writer);
        if field.name() == "message" {
            write!(escaped, "{value:?}")
        } else {
            write!(escaped, "{}={value:?}", field.name())
        }
    })
    .delimited(" ")
}

#[cfg(test)]
mod tests {
    use super::ControlEscaper;
    use std::fmt::Write;

    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        let mut out = String::new();
        write!(
            ControlEscaper(&mut out),
            "admin\n2026-12-05T00:00:00Z  INFO forged\r\t\u{1b}[31mé"
        )
        .unwrap();
        assert_eq!(
            out,
            "admin\\n2026-12-05T00:00:00Z  INFO forged\\r\\t\\u{1b}[31mé"
        );
    }
}
