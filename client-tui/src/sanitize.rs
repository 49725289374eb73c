//! Makes hostile text inert: control characters and escape sequences become visible placeholders.
//!
//! Everything a peer controls (message text, names, server error sentences) passes through
//! [`sanitize`] before it reaches a terminal, so an `ESC [ 2 J` in a message shows as `␛[2J`
//! instead of clearing the screen.

use std::borrow::Cow;

/// What a tab becomes: tabs have no fixed width in a bubble, so they are spaces.
const TAB: &str = "    ";

/// Returns `text` with every control character replaced by a visible placeholder.
///
/// - C0 controls (U+0000–U+001F) become their Control Pictures (`␛` for ESC, `␇` for BEL), and
///   DEL becomes `␡`; `\n` is kept only when `keep_newlines` is set (message bodies), and a tab
///   becomes four spaces.
/// - C1 controls (U+0080–U+009F, e.g. the 8-bit CSI U+009B) and the invisible bidirectional
///   overrides and isolates, which can reorder what is shown, become `�`.
///
/// Text without such characters is returned borrowed, so the common case does not allocate.
pub fn sanitize(text: &str, keep_newlines: bool) -> Cow<'_, str> {
    if !text.chars().any(|c| needs_placeholder(c, keep_newlines)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if !needs_placeholder(c, keep_newlines) {
            out.push(c);
            continue;
        }
        match c {
            '\t' => out.push_str(TAB),
            '\u{0}'..='\u{1f}' => {
                out.push(char::from_u32(0x2400 + c as u32).expect("control pictures exist"))
            }
            '\u{7f}' => out.push('␡'),
            _ => out.push('\u{FFFD}'),
        }
    }
    Cow::Owned(out)
}

/// A name or one-line text: newlines are shown as `␊` too.
pub fn sanitize_line(text: &str) -> Cow<'_, str> {
    sanitize(text, false)
}

fn needs_placeholder(c: char, keep_newlines: bool) -> bool {
    match c {
        '\n' => !keep_newlines,
        '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' => true,
        // Bidi embeddings, overrides and isolates, and the line/paragraph separators.
        '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{2028}' | '\u{2029}' => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_become_visible_placeholders() {
        assert_eq!(
            sanitize("\u{1b}[2J\u{1b}]0;pwned\u{7}red", true),
            "␛[2J␛]0;pwned␇red"
        );
        assert_eq!(sanitize("a\u{9b}31mb\u{7f}", true), "a\u{FFFD}31mb␡");
        assert_eq!(sanitize("\u{202e}evil", true), "\u{FFFD}evil");
    }

    #[test]
    fn newlines_are_kept_only_in_message_bodies() {
        assert_eq!(sanitize("a\nb\r", true), "a\nb␍");
        assert_eq!(sanitize_line("a\nb"), "a␊b");
        assert_eq!(sanitize("a\tb", true), "a    b");
    }

    #[test]
    fn ordinary_text_is_borrowed_unchanged() {
        let text = "你好 👋🏽 e\u{301} zwj 👩\u{200d}💻";
        assert!(matches!(sanitize(text, true), Cow::Borrowed(t) if t == text));
    }
}
