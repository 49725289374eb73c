//! The message pane: bubbles, own on the right, others on the left under their name and time.
//!
//! Only the entries that reach the visible rows are laid out: the pane is filled from the
//! newest entry upwards, and each entry's wrapped lines come from its cache, so a frame costs
//! the same with ten messages or ten thousand.

use super::wrap::{WrappedLine, wrap_text};
use super::{clock, date, name_color};
use crate::app::{App, ChatLine, Conversation, Delivery, EntryKind};
use crate::sanitize::{sanitize, sanitize_line};
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use std::rc::Rc;
use unicode_width::UnicodeWidthStr;

/// Messages further apart than this start a new group (with its own header).
const GROUP_GAP_MS: i64 = 5 * 60 * 1000;

fn own_bubble() -> Style {
    Style::new().bg(Color::Blue).fg(Color::White)
}

fn other_bubble() -> Style {
    Style::new().bg(Color::Indexed(237)).fg(Color::White)
}

fn dim() -> Style {
    Style::new().fg(Color::DarkGray)
}

/// The widest a bubble's text may be in a pane `pane_width` columns wide: a bubble (text plus
/// one column of padding each side) takes at most two thirds of the pane.
pub fn bubble_text_width(pane_width: u16) -> u16 {
    let pane = pane_width.max(4);
    let bubble = (pane * 2 / 3).max(12).min(pane - 2);
    bubble - 2
}

fn notice_width(pane_width: u16) -> u16 {
    pane_width.saturating_sub(4).max(1)
}

/// The wrapped lines of entry `i` in a pane `pane_width` wide (cached).
pub fn wrapped(conv: &Conversation, i: usize, pane_width: u16) -> Rc<[WrappedLine]> {
    let entry = &conv.entries[i];
    match &entry.kind {
        EntryKind::Message(line) => {
            let width = bubble_text_width(pane_width);
            entry
                .wrapped
                .get(width, || message_lines(line, usize::from(width)))
        }
        EntryKind::Notice(text) => {
            let width = notice_width(pane_width);
            entry.wrapped.get(width, || {
                wrap_text(&sanitize(text, true), usize::from(width))
            })
        }
    }
}

/// What a tombstone shows.
pub const DELETED: &str = "message deleted";
/// What follows the text of an edited message.
pub const EDITED: &str = "(edited)";

/// The lines of a message bubble: the quote of what it answers (one line, cut to fit), then
/// the text with `(edited)` after it, or the tombstone.
fn message_lines(line: &ChatLine, width: usize) -> Vec<WrappedLine> {
    let mut out = Vec::new();
    if let Some(quote) = &line.reply_to {
        let quoted = if quote.text.is_empty() {
            DELETED
        } else {
            &quote.text
        };
        let text = format!("↳ {}: {}", quote.from, sanitize_line(quoted));
        out.push(cut_to_width(&text, width));
    }
    let body = if line.deleted {
        DELETED.to_owned()
    } else if line.edited {
        format!("{} {EDITED}", sanitize(&line.text, true))
    } else {
        sanitize(&line.text, true).into_owned()
    };
    out.extend(wrap_text(&body, width));
    out
}

/// `text` on one line of at most `width` columns, ending in `…` when cut.
fn cut_to_width(text: &str, width: usize) -> WrappedLine {
    use unicode_segmentation::UnicodeSegmentation;
    if text.width() <= width {
        return WrappedLine {
            text: text.to_owned(),
            width: text.width() as u16,
        };
    }
    let mut out = String::new();
    let mut used = 0;
    for g in text.graphemes(true) {
        let w = g.width();
        if used + w + 1 > width {
            break;
        }
        out.push_str(g);
        used += w;
    }
    out.push('…');
    WrappedLine {
        text: out,
        width: (used + 1) as u16,
    }
}

/// Whether entry `i` is a message that starts a group (and so has a header).
pub fn starts_group(conv: &Conversation, i: usize) -> bool {
    let EntryKind::Message(cur) = &conv.entries[i].kind else {
        return false;
    };
    let Some(prev) = i.checked_sub(1).map(|p| &conv.entries[p].kind) else {
        return true;
    };
    match prev {
        EntryKind::Notice(_) => true,
        EntryKind::Message(prev) => {
            prev.from != cur.from
                || prev.own != cur.own
                || matches!((prev.ts, cur.ts), (Some(a), Some(b)) if b - a > GROUP_GAP_MS)
                || matches!((prev.ts, cur.ts), (Some(a), Some(b)) if day(a) != day(b))
        }
    }
}

/// Blank rows above entry `i`: one between groups and around notices.
fn gap_before(conv: &Conversation, i: usize) -> usize {
    if i == 0 {
        return 0;
    }
    let after_message = matches!(conv.entries[i - 1].kind, EntryKind::Message(_));
    match conv.entries[i].kind {
        EntryKind::Message(_) => usize::from(starts_group(conv, i)),
        EntryKind::Notice(_) => usize::from(after_message),
    }
}

/// Rows entry `i` takes in a pane `pane_width` wide.
pub fn entry_height(conv: &Conversation, i: usize, pane_width: u16) -> usize {
    gap_before(conv, i) + usize::from(starts_group(conv, i)) + wrapped(conv, i, pane_width).len()
}

/// Rows the whole conversation takes (used to limit scrolling; lays out every entry once).
pub fn total_height(conv: &Conversation, pane_width: u16) -> usize {
    (0..conv.entries.len())
        .map(|i| entry_height(conv, i, pane_width))
        .sum()
}

/// Draws `conv` into `area`, newest at the bottom, `conv.scroll` rows up from the end.
pub fn draw_messages(app: &App, conv: &Conversation, area: Rect, buf: &mut Buffer) {
    if area.height == 0 || area.width < 4 {
        return;
    }
    if conv.entries.is_empty() {
        let hint = "No messages yet. Type below and press Enter; F1 lists the keys.";
        let row = i64::from(area.height / 2);
        put_centered(buf, area, row, hint, dim());
        return;
    }
    let height = i64::from(area.height);
    let scroll = i64::try_from(conv.scroll).unwrap_or(i64::MAX / 2);
    let mut bottom = height + scroll;
    let mut placed = Vec::new();
    for i in (0..conv.entries.len()).rev() {
        if bottom <= 0 {
            break;
        }
        let rows = entry_height(conv, i, area.width) as i64;
        bottom -= rows;
        placed.push((i, bottom));
    }
    // Scrolled past the oldest entry: keep the oldest at the top instead of a blank pane.
    let shift = if bottom > 0 { bottom.min(scroll) } else { 0 };
    for (i, top) in placed {
        let top = top - shift;
        if top < height {
            draw_entry(app, conv, i, area, top, buf);
        }
    }
    if conv.scroll > 0 {
        let marker = if conv.new_below > 0 {
            let s = if conv.new_below == 1 { "" } else { "s" };
            format!(" ↓ {} new message{s} (Esc) ", conv.new_below)
        } else {
            " ↓ more below (Esc) ".to_owned()
        };
        let style = Style::new().add_modifier(Modifier::REVERSED);
        put_centered(buf, area, height - 1, &marker, style);
    }
}

/// Draws entry `i` with its first row at `top` (relative to `area`, may be negative).
fn draw_entry(app: &App, conv: &Conversation, i: usize, area: Rect, top: i64, buf: &mut Buffer) {
    let lines = wrapped(conv, i, area.width);
    let mut row = top + gap_before(conv, i) as i64;
    match &conv.entries[i].kind {
        EntryKind::Notice(_) => {
            for line in lines.iter() {
                put_centered(buf, area, row, &line.text, dim());
                row += 1;
            }
        }
        EntryKind::Message(msg) => {
            if starts_group(conv, i) {
                draw_header(app, conv, i, area, row, buf);
                row += 1;
            }
            let look = Look {
                selected: msg.id.is_some() && msg.id == app.selected,
                own_nick: app.nick_str(),
            };
            draw_bubble(msg, &lines, look, area, row, buf);
        }
    }
}

/// The day of a time in UTC; only compared, so the local offset does not matter much here.
fn day(ts_ms: i64) -> i64 {
    ts_ms.div_euclid(86_400_000)
}

/// The time of the previous message with one, looking back a little way.
fn previous_ts(conv: &Conversation, i: usize) -> Option<i64> {
    conv.entries[..i]
        .iter()
        .rev()
        .take(50)
        .find_map(|e| match &e.kind {
            EntryKind::Message(m) => m.ts,
            EntryKind::Notice(_) => None,
        })
}

fn draw_header(app: &App, conv: &Conversation, i: usize, area: Rect, row: i64, buf: &mut Buffer) {
    let EntryKind::Message(msg) = &conv.entries[i].kind else {
        return;
    };
    // The date too when the day changed since the previous message (or there is none).
    let time = msg.ts.map(|ts| {
        let local = |t: i64| (t.div_euclid(1000) + i64::from(app.utc_offset)).div_euclid(86_400);
        let same_day = previous_ts(conv, i).is_some_and(|p| local(p) == local(ts));
        if same_day {
            clock(ts, app.utc_offset)
        } else {
            format!("{} {}", date(ts, app.utc_offset), clock(ts, app.utc_offset))
        }
    });
    if msg.own {
        let text = time.map_or_else(|| "you".to_owned(), |t| format!("you · {t}"));
        let x = area.width.saturating_sub(text.width() as u16 + 1);
        put(buf, area, row, x, &text, dim());
    } else {
        let name = sanitize_line(msg.from.as_str());
        let style = Style::new()
            .fg(name_color(msg.from.as_str()))
            .add_modifier(Modifier::BOLD);
        put(buf, area, row, 1, &name, style);
        if let Some(time) = time {
            let x = 1 + name.width() as u16 + 2;
            put(buf, area, row, x, &time, dim());
        }
    }
}

/// What else decides how a bubble looks.
#[derive(Debug, Clone, Copy)]
struct Look<'a> {
    /// Chosen with Ctrl+Up/Down.
    selected: bool,
    /// Mentions of this name stand out more.
    own_nick: &'a str,
}

fn draw_bubble(
    msg: &ChatLine,
    lines: &[WrappedLine],
    look: Look<'_>,
    area: Rect,
    first_row: i64,
    buf: &mut Buffer,
) {
    let text_width = lines.iter().map(|l| l.width).max().unwrap_or(0);
    let bubble_width = text_width + 2;
    let (x, style) = if msg.own {
        let style = match msg.delivery {
            Delivery::Failed(_) => Style::new().bg(Color::Red).fg(Color::White),
            _ => own_bubble(),
        };
        (area.width.saturating_sub(bubble_width + 1), style)
    } else {
        (1, other_bubble())
    };
    let style = if look.selected {
        style.bg(Color::Yellow).fg(Color::Black)
    } else {
        style
    };
    if look.selected {
        // A mark beside the bubble too, for terminals (and eyes) without colour.
        let (mark_x, mark) = if msg.own {
            (area.width.saturating_sub(1), "◀")
        } else {
            (0, "▶")
        };
        let mark_style = Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD);
        put(buf, area, first_row, mark_x, mark, mark_style);
    }
    let quoted = usize::from(msg.reply_to.is_some());
    let faint = style.add_modifier(Modifier::ITALIC | Modifier::DIM);
    for (n, line) in lines.iter().enumerate() {
        let row = first_row + n as i64;
        let pad = usize::from(text_width - line.width.min(text_width));
        let text = format!(" {}{} ", line.text, " ".repeat(pad));
        let is_body = n >= quoted;
        let line_style = if !is_body || msg.deleted {
            faint
        } else {
            style
        };
        put(buf, area, row, x, &text, line_style);
        if !is_body || msg.deleted {
            continue;
        }
        for (start, end) in crate::app::mention_spans(&line.text) {
            let col = x + 1 + line.text[..start].width() as u16;
            let name = &line.text[start..end];
            let me = name[1..].eq_ignore_ascii_case(look.own_nick);
            let mention = if me {
                Style::new().bg(Color::LightYellow).fg(Color::Black)
            } else {
                style.fg(Color::LightYellow)
            };
            put(
                buf,
                area,
                row,
                col,
                name,
                mention.add_modifier(Modifier::BOLD),
            );
        }
        if msg.edited && n + 1 == lines.len() && line.text.ends_with(EDITED) {
            let col = x + 1 + line.width.saturating_sub(EDITED.len() as u16);
            put(buf, area, row, col, EDITED, faint);
        }
    }
    let mark = match msg.delivery {
        Delivery::Pending if msg.own => Some(("…", dim())),
        Delivery::Failed(_) => Some(("✗", Style::new().fg(Color::Red))),
        _ => None,
    };
    if let (Some((mark, style)), Some(mark_x)) = (mark, x.checked_sub(2)) {
        put(
            buf,
            area,
            first_row + lines.len() as i64 - 1,
            mark_x,
            mark,
            style,
        );
    }
}

/// Writes `text` at column `x` of row `row` of `area`, when that row is visible.
fn put(buf: &mut Buffer, area: Rect, row: i64, x: u16, text: &str, style: Style) {
    if row < 0 || row >= i64::from(area.height) || x >= area.width {
        return;
    }
    let width = usize::from(area.width - x);
    buf.set_stringn(area.x + x, area.y + row as u16, text, width, style);
}

fn put_centered(buf: &mut Buffer, area: Rect, row: i64, text: &str, style: Style) {
    let width = text.width() as u16;
    let x = area.width.saturating_sub(width) / 2;
    put(buf, area, row, x, text, style);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bubbles_take_at_most_two_thirds_of_the_pane() {
        assert_eq!(bubble_text_width(120), 78);
        assert_eq!(bubble_text_width(40), 24);
        assert_eq!(bubble_text_width(10), 6);
    }
}
