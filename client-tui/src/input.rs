//! The line editor of the message box: cursor movement, words, multi-line text and history.
//!
//! The text is one `String`; the cursor is a byte offset that always sits on a grapheme
//! boundary, so a CJK character, an emoji with a skin tone or an `e` with a combining accent is
//! one step of the cursor and one Backspace.

use unicode_segmentation::UnicodeSegmentation;
use unicode_width::UnicodeWidthStr;

/// The most lines kept in the input history.
const HISTORY_LEN: usize = 200;

/// A multi-line text field with a cursor and a history of submitted texts.
#[derive(Debug, Clone, Default)]
pub struct LineEditor {
    text: String,
    cursor: usize,
    history: Vec<String>,
    /// Position in `history` while browsing it with Up/Down; `None` when editing a new text.
    browsing: Option<usize>,
    /// The text being written before browsing started, given back by Down past the newest.
    draft: String,
}

impl LineEditor {
    /// An empty editor with no history.
    pub fn new() -> Self {
        Self::default()
    }

    /// The text as typed.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The cursor, as a byte offset into [`Self::text`].
    pub fn cursor(&self) -> usize {
        self.cursor
    }

    /// Whether nothing is typed.
    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    /// Replaces the text and puts the cursor at its end.
    pub fn set(&mut self, text: &str) {
        self.text = text.to_owned();
        self.cursor = self.text.len();
    }

    /// Replaces the bytes `range` with `with` and puts the cursor after the insertion.
    pub fn replace_range(&mut self, range: std::ops::Range<usize>, with: &str) {
        self.text.replace_range(range.clone(), with);
        self.cursor = range.start + with.len();
    }

    /// Takes the text out, leaving the editor empty, and remembers it in the history.
    pub fn take(&mut self) -> String {
        let text = std::mem::take(&mut self.text);
        self.cursor = 0;
        self.browsing = None;
        self.draft.clear();
        if !text.trim().is_empty() && self.history.last() != Some(&text) {
            self.history.push(text.clone());
            if self.history.len() > HISTORY_LEN {
                self.history.remove(0);
            }
        }
        text
    }

    /// Drops the newest history entry (a text that must not be recalled, like a password).
    pub fn forget_last(&mut self) {
        self.history.pop();
    }

    /// Inserts text at the cursor (a typed character or a paste). `\r\n` and `\r` become `\n`.
    pub fn insert(&mut self, text: &str) {
        let text = if text.contains('\r') {
            text.replace("\r\n", "\n").replace('\r', "\n")
        } else {
            text.to_owned()
        };
        self.text.insert_str(self.cursor, &text);
        self.cursor += text.len();
    }

    /// Inserts one character at the cursor.
    pub fn insert_char(&mut self, c: char) {
        self.text.insert(self.cursor, c);
        self.cursor += c.len_utf8();
    }

    /// Deletes the grapheme before the cursor.
    pub fn backspace(&mut self) {
        let start = self.prev_boundary(self.cursor);
        self.text.replace_range(start..self.cursor, "");
        self.cursor = start;
    }

    /// Deletes the grapheme under the cursor.
    pub fn delete(&mut self) {
        let end = self.next_boundary(self.cursor);
        self.text.replace_range(self.cursor..end, "");
    }

    /// Moves one grapheme left.
    pub fn left(&mut self) {
        self.cursor = self.prev_boundary(self.cursor);
    }

    /// Moves one grapheme right.
    pub fn right(&mut self) {
        self.cursor = self.next_boundary(self.cursor);
    }

    /// Moves to the start of the current line.
    pub fn home(&mut self) {
        self.cursor = self.line_start(self.cursor);
    }

    /// Moves to the end of the current line.
    pub fn end(&mut self) {
        self.cursor = self.line_end(self.cursor);
    }

    /// Moves to the start of the word before the cursor.
    pub fn word_left(&mut self) {
        self.cursor = self.word_start_before(self.cursor);
    }

    /// Moves past the end of the word after the cursor.
    pub fn word_right(&mut self) {
        let rest = &self.text[self.cursor..];
        let skipped_space = rest.len() - rest.trim_start().len();
        let word = rest[skipped_space..]
            .find(char::is_whitespace)
            .unwrap_or(rest.len() - skipped_space);
        self.cursor += skipped_space + word;
    }

    /// Deletes the word before the cursor (Ctrl+W, Alt+Backspace).
    pub fn delete_word_before(&mut self) {
        let start = self.word_start_before(self.cursor);
        self.text.replace_range(start..self.cursor, "");
        self.cursor = start;
    }

    /// Deletes from the start of the line to the cursor (Ctrl+U).
    pub fn delete_to_line_start(&mut self) {
        let start = self.line_start(self.cursor);
        self.text.replace_range(start..self.cursor, "");
        self.cursor = start;
    }

    /// Deletes from the cursor to the end of the line (Ctrl+K).
    pub fn delete_to_line_end(&mut self) {
        let end = self.line_end(self.cursor);
        self.text.replace_range(self.cursor..end, "");
    }

    /// Up: moves to the line above in a multi-line text, else shows the previous history entry.
    pub fn up(&mut self) {
        let start = self.line_start(self.cursor);
        if start > 0 {
            let column = self.text[start..self.cursor].width();
            let above = self.line_start(start - 1);
            self.cursor = self.offset_at_column(above, column);
            return;
        }
        let next = match self.browsing {
            None if self.history.is_empty() => return,
            None => {
                self.draft = self.text.clone();
                self.history.len() - 1
            }
            Some(0) => return,
            Some(i) => i - 1,
        };
        self.browsing = Some(next);
        self.set(&self.history[next].clone());
    }

    /// Down: moves to the line below in a multi-line text, else shows the next history entry,
    /// and after the newest one the text that was being written.
    pub fn down(&mut self) {
        let end = self.line_end(self.cursor);
        if end < self.text.len() {
            let column = self.text[self.line_start(self.cursor)..self.cursor].width();
            self.cursor = self.offset_at_column(end + 1, column);
            return;
        }
        match self.browsing {
            None => {}
            Some(i) if i + 1 < self.history.len() => {
                self.browsing = Some(i + 1);
                self.set(&self.history[i + 1].clone());
            }
            Some(_) => {
                self.browsing = None;
                let draft = std::mem::take(&mut self.draft);
                self.set(&draft);
            }
        }
    }

    /// The word being typed at the cursor: its start offset and text (for Tab completion).
    pub fn word_at_cursor(&self) -> (usize, &str) {
        let start = self.text[..self.cursor]
            .rfind(char::is_whitespace)
            .map_or(0, |i| {
                i + self.text[i..].chars().next().map_or(1, char::len_utf8)
            });
        (start, &self.text[start..self.cursor])
    }

    /// The text laid out in rows of at most `width` columns (breaking anywhere, as a terminal
    /// would), with the cursor's row and column. Rows never exceed `width`.
    pub fn layout(&self, width: usize) -> (Vec<String>, (usize, usize)) {
        let width = width.max(2);
        let mut rows = vec![String::new()];
        let mut row_width = 0;
        let mut cursor = (0, 0);
        let mut offset = 0;
        for g in self.text.graphemes(true) {
            if offset == self.cursor {
                cursor = (rows.len() - 1, row_width);
            }
            offset += g.len();
            if g == "\n" {
                rows.push(String::new());
                row_width = 0;
                continue;
            }
            let shown = crate::sanitize::sanitize_line(g);
            let w = shown.width();
            if row_width + w > width {
                rows.push(String::new());
                row_width = 0;
            }
            rows.last_mut()
                .expect("rows start non-empty")
                .push_str(&shown);
            row_width += w;
        }
        if offset == self.cursor {
            if row_width >= width {
                rows.push(String::new());
                row_width = 0;
            }
            cursor = (rows.len() - 1, row_width);
        }
        (rows, cursor)
    }

    fn prev_boundary(&self, at: usize) -> usize {
        self.text[..at]
            .grapheme_indices(true)
            .next_back()
            .map_or(0, |(i, _)| i)
    }

    fn next_boundary(&self, at: usize) -> usize {
        self.text[at..]
            .graphemes(true)
            .next()
            .map_or(at, |g| at + g.len())
    }

    fn line_start(&self, at: usize) -> usize {
        self.text[..at].rfind('\n').map_or(0, |i| i + 1)
    }

    fn line_end(&self, at: usize) -> usize {
        self.text[at..]
            .find('\n')
            .map_or(self.text.len(), |i| at + i)
    }

    fn word_start_before(&self, at: usize) -> usize {
        let before = self.text[..at].trim_end();
        before.rfind(char::is_whitespace).map_or(0, |i| {
            i + before[i..].chars().next().map_or(1, char::len_utf8)
        })
    }

    /// The offset in the line starting at `line_start` that is closest to display `column`.
    fn offset_at_column(&self, line_start: usize, column: usize) -> usize {
        let end = self.line_end(line_start);
        let mut width = 0;
        for (i, g) in self.text[line_start..end].grapheme_indices(true) {
            let w = g.width();
            if width + w > column {
                return line_start + i;
            }
            width += w;
        }
        end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(text: &str) -> LineEditor {
        let mut e = LineEditor::new();
        e.insert(text);
        e
    }

    #[test]
    fn cursor_moves_by_grapheme_over_cjk_emoji_and_accents() {
        let mut e = typed("a你👋🏽e\u{301}");
        e.backspace();
        assert_eq!(e.text(), "a你👋🏽");
        e.left();
        e.backspace();
        assert_eq!(e.text(), "a👋🏽");
        e.right();
        assert_eq!(e.cursor(), e.text().len());
    }

    #[test]
    fn words_are_deleted_and_skipped() {
        let mut e = typed("hello big  world");
        e.delete_word_before();
        assert_eq!(e.text(), "hello big  ");
        e.word_left();
        assert_eq!(e.cursor(), 6);
        e.word_right();
        assert_eq!(e.cursor(), 9);
        e.home();
        e.delete_to_line_end();
        assert_eq!(e.text(), "");
    }

    #[test]
    fn home_and_end_work_on_the_current_line_of_a_multi_line_text() {
        let mut e = typed("first\nsecond");
        e.home();
        assert_eq!(e.cursor(), 6);
        e.up();
        assert_eq!(e.cursor(), 0);
        e.end();
        assert_eq!(e.cursor(), 5);
        e.down();
        assert_eq!(e.cursor(), 11);
    }

    #[test]
    fn history_browses_back_and_returns_to_the_draft() {
        let mut e = LineEditor::new();
        for line in ["one", "two"] {
            e.insert(line);
            e.take();
        }
        e.insert("dra");
        e.up();
        assert_eq!(e.text(), "two");
        e.up();
        assert_eq!(e.text(), "one");
        e.up();
        assert_eq!(e.text(), "one");
        e.down();
        e.down();
        assert_eq!(e.text(), "dra");
    }

    #[test]
    fn pasted_carriage_returns_become_newlines() {
        let e = typed("a\r\nb\rc");
        assert_eq!(e.text(), "a\nb\nc");
    }

    #[test]
    fn layout_breaks_rows_at_the_width_and_finds_the_cursor() {
        let e = typed("abcde你好\nx");
        let (rows, cursor) = e.layout(4);
        assert_eq!(rows, ["abcd", "e你", "好", "x"]);
        assert_eq!(cursor, (3, 1));
        let (rows, cursor) = typed("abcd").layout(4);
        assert_eq!(rows, ["abcd", ""]);
        assert_eq!(cursor, (1, 0));
    }

    #[test]
    fn the_word_at_the_cursor_is_found_for_completion() {
        let e = typed("hi al");
        assert_eq!(e.word_at_cursor(), (3, "al"));
        assert_eq!(typed("/jo").word_at_cursor(), (0, "/jo"));
    }
}
