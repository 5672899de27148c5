//! Escaping for text from manifests on its way to a terminal.

use std::borrow::Cow;

/// `s` with its control characters escaped, so that text taken from manifests or from a server
/// cannot move the cursor, recolour or retitle the terminal it is shown on.
///
/// Control characters are C0 (including `\n` and `\t`, which would break a one-line message),
/// DEL and C1 (U+0080 to U+009F). Each is written as Rust writes it in a string literal: `\n`,
/// `\t`, `\r`, `\0`, or `\u{1b}` for the others. All other text, backslashes included, is left
/// as it is, so text without control characters is returned borrowed.
///
/// ```
/// use capstan_manifest::escape_controls;
///
/// assert_eq!(escape_controls("web"), "web");
/// assert_eq!(escape_controls("\u{1b}[31mweb\u{7}"), r"\u{1b}[31mweb\u{7}");
/// ```
pub fn escape_controls(s: &str) -> Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return Cow::Borrowed(s);
    }
    let mut escaped = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() {
            escaped.extend(c.escape_debug());
        } else {
            escaped.push(c);
        }
    }
    Cow::Owned(escaped)
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::escape_controls;

    #[test]
    fn text_without_controls_is_borrowed_unchanged() {
        let text = r"ünïcode web/api \u{1b} stays";
        assert!(matches!(escape_controls(text), Cow::Borrowed(same) if same == text));
    }

    #[test]
    fn c0_del_and_c1_controls_are_escaped() {
        assert_eq!(
            escape_controls("a\u{1b}b\u{7}c\nd\te\r\0f\u{7f}g\u{80}h\u{9f}i\u{a0}j"),
            r"a\u{1b}b\u{7}c\nd\te\r\0f\u{7f}g\u{80}h\u{9f}i".to_owned() + "\u{a0}j"
        );
    }
}
