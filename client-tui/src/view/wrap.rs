//! Wrapping text into bubble lines by display width: a pure function of text and width.
//!
//! Works on grapheme clusters, so a CJK character (two columns), an emoji with modifiers or a
//! letter with a combining accent is never split. Lines break at spaces; a word longer than the
//! line (a URL, a 200-character word) is broken between graphemes instead of overflowing.

use std::cell::RefCell;
use std::rc::Rc;
use unicode_segmentation::UnicodeSegmentation;
use unicode_width::UnicodeWidthStr;

/// One wrapped line and its width in columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedLine {
    pub text: String,
    pub width: u16,
}

/// The wrapped lines of one entry for the width it was last drawn at.
///
/// A memo of [`wrap_text`], so a frame only wraps entries that are new or whose width changed.
#[derive(Debug, Clone, Default)]
pub struct WrapCache(RefCell<Option<(u16, Rc<[WrappedLine]>)>>);

impl WrapCache {
    /// The lines for `width`, computed by `wrap` when not cached for that width.
    pub fn get(&self, width: u16, wrap: impl FnOnce() -> Vec<WrappedLine>) -> Rc<[WrappedLine]> {
        if let Some((w, lines)) = &*self.0.borrow()
            && *w == width
        {
            return Rc::clone(lines);
        }
        let lines: Rc<[WrappedLine]> = wrap().into();
        *self.0.borrow_mut() = Some((width, Rc::clone(&lines)));
        lines
    }

    /// Whether lines are cached (for any width).
    pub fn is_cached(&self) -> bool {
        self.0.borrow().is_some()
    }

    /// Forgets the cached lines (after the text changed).
    pub fn clear(&self) {
        *self.0.borrow_mut() = None;
    }
}

/// Wraps `text` into lines of at most `width` columns. `\n` starts a new line; spaces at a
/// wrap point are dropped. Never returns an empty list.
pub fn wrap_text(text: &str, width: usize) -> Vec<WrappedLine> {
    let width = width.max(1);
    let mut out = Vec::new();
    for paragraph in text.split('\n') {
        wrap_paragraph(paragraph, width, &mut out);
    }
    out
}

struct LineBuilder<'a> {
    out: &'a mut Vec<WrappedLine>,
    text: String,
    width: usize,
    /// Whether a line of this paragraph was already flushed (so leading spaces are a wrap).
    continued: bool,
}

impl LineBuilder<'_> {
    fn flush(&mut self) {
        let trimmed = self.text.trim_end_matches(' ');
        let width = self.width - (self.text.len() - trimmed.len());
        self.out.push(WrappedLine {
            text: trimmed.to_owned(),
            width: u16::try_from(width).unwrap_or(u16::MAX),
        });
        self.text.clear();
        self.width = 0;
        self.continued = true;
    }

    fn push(&mut self, s: &str, w: usize) {
        self.text.push_str(s);
        self.width += w;
    }
}

fn wrap_paragraph(paragraph: &str, max: usize, out: &mut Vec<WrappedLine>) {
    let mut line = LineBuilder {
        out,
        text: String::new(),
        width: 0,
        continued: false,
    };
    for token in paragraph.split_word_bounds() {
        let w = token.width();
        let is_space = token.chars().all(char::is_whitespace);
        if is_space {
            if line.width == 0 && line.continued {
                continue;
            }
            if line.width + w <= max {
                line.push(token, w);
            } else {
                line.flush();
            }
        } else if line.width + w <= max {
            line.push(token, w);
        } else if w <= max && line.width > 0 {
            line.flush();
            line.push(token, w);
        } else {
            // Longer than a line: fill the current line, then break between graphemes.
            for g in token.graphemes(true) {
                let gw = g.width();
                if line.width + gw > max && line.width > 0 {
                    line.flush();
                }
                line.push(g, gw);
            }
        }
    }
    line.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(text: &str, width: usize) -> Vec<String> {
        wrap_text(text, width).into_iter().map(|l| l.text).collect()
    }

    #[test]
    fn words_wrap_at_spaces() {
        assert_eq!(texts("the quick brown fox", 10), ["the quick", "brown fox"]);
        assert_eq!(texts("a\n\nb", 10), ["a", "", "b"]);
        assert_eq!(texts("", 10), [""]);
    }

    #[test]
    fn cjk_wraps_by_display_width() {
        let lines = wrap_text("你好世界你好", 5);
        assert_eq!(
            lines.iter().map(|l| l.text.as_str()).collect::<Vec<_>>(),
            ["你好", "世界", "你好"]
        );
        assert!(lines.iter().all(|l| l.width == 4));
    }

    #[test]
    fn emoji_and_combining_marks_stay_whole() {
        let lines = texts("👋🏽👋🏽👋🏽 e\u{301}e\u{301}e\u{301}", 4);
        assert_eq!(lines, ["👋🏽👋🏽", "👋🏽", "e\u{301}e\u{301}e\u{301}"]);
    }

    #[test]
    fn a_long_word_breaks_without_overflowing() {
        let word = "x".repeat(200);
        let lines = wrap_text(&format!("see {word}"), 30);
        assert!(lines.iter().all(|l| l.width <= 30), "{lines:?}");
        let joined: String = lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(joined, format!("see {word}"));
        let url = "https://example.com/a/very/long/path?with=query&and=more";
        assert!(wrap_text(url, 12).iter().all(|l| l.width <= 12));
    }

    #[test]
    fn a_wide_character_in_a_one_column_line_still_shows() {
        assert_eq!(texts("你好", 1), ["你", "好"]);
    }
}
