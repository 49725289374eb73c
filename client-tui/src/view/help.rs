//! The help overlay (every key and command) and the login screen.

use crate::app::{App, LoginField};
use crate::commands::COMMANDS;
use crate::sanitize::sanitize_line;
use ratatui::buffer::Buffer;
use ratatui::layout::{Position, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::widgets::{Block, Clear, Widget};
use unicode_width::UnicodeWidthStr;

/// Every key of the chat screen, with what it does.
pub const KEYS: &[(&str, &str)] = &[
    ("Enter", "send the message"),
    ("Alt+Enter, Ctrl+J", "new line in the message"),
    ("Tab, Shift+Tab", "complete name, /command"),
    ("Up, Down", "your earlier messages"),
    ("Left, Right, Home, End", "move the cursor"),
    ("Ctrl+Left, Ctrl+Right", "move by word"),
    ("Ctrl+W, Alt+Backspace", "delete the word before"),
    ("Ctrl+U, Ctrl+K", "delete to start / end"),
    ("Ctrl+N, Ctrl+P", "next / previous chat"),
    ("Alt+1 … Alt+9, click", "show that conversation"),
    ("PgUp, PgDn, wheel", "scroll the messages"),
    ("Ctrl+Up, Ctrl+Down", "select a message"),
    ("Ctrl+R", "reply to the selection"),
    ("Esc", "cancel; or to newest"),
    ("Ctrl+End", "to the newest message"),
    ("F2", "show / hide online list"),
    ("F1", "this help (Esc closes)"),
    ("Ctrl+C, Ctrl+D", "quit"),
];

/// Draws the help window over the middle of `area`: keys then commands, or side by side when
/// they do not fit one above the other.
pub fn draw_help(area: Rect, buf: &mut Buffer) {
    let stacked = KEYS.len() + COMMANDS.len() + 3;
    let side_by_side = stacked > usize::from(area.height) && area.width >= 100;
    if side_by_side {
        let rows = (KEYS.len().max(COMMANDS.len()) + 2) as u16;
        let height = rows.min(area.height);
        let width = area.width.min(150);
        let rect = Rect::new(
            area.x + (area.width - width) / 2,
            area.y + (area.height - height) / 2,
            width,
            height,
        );
        Clear.render(rect, buf);
        let block = Block::bordered().title(" Help · Esc to close ");
        let inner = block.inner(rect);
        block.render(rect, buf);
        let commands = command_pairs();
        let keys: Vec<(String, &str)> = KEYS.iter().map(|(k, w)| ((*k).to_owned(), *w)).collect();
        let need = |pairs: &[(String, &str)]| {
            let key = pairs.iter().map(|(k, _)| k.width()).max().unwrap_or(0);
            let what = pairs.iter().map(|(_, w)| w.width()).max().unwrap_or(0);
            (key + what + 4) as u16
        };
        let right_width = inner.width - need(&keys).min(inner.width / 2);
        let left = Rect::new(inner.x, inner.y, inner.width - right_width, inner.height);
        let right = Rect::new(left.right(), inner.y, right_width, inner.height);
        draw_pairs(&keys, left, buf);
        draw_pairs(&commands, right, buf);
        return;
    }
    let rows = stacked + 2;
    let width = 72.min(area.width);
    let height = (rows as u16).min(area.height);
    let rect = Rect::new(
        area.x + (area.width - width) / 2,
        area.y + (area.height - height) / 2,
        width,
        height,
    );
    Clear.render(rect, buf);
    let block = Block::bordered().title(" Help · Esc to close ");
    let inner = block.inner(rect);
    block.render(rect, buf);
    let mut pairs: Vec<(String, &str)> = KEYS.iter().map(|(k, w)| ((*k).to_owned(), *w)).collect();
    pairs.push((String::new(), ""));
    pairs.extend(command_pairs());
    draw_pairs(&pairs, inner, buf);
}

fn command_pairs() -> Vec<(String, &'static str)> {
    COMMANDS
        .iter()
        .map(|(name, args, what)| (format!("{name} {args}"), *what))
        .collect()
}

/// One `key  what it does` line per pair, from the top of `inner`, as many as fit.
fn draw_pairs(pairs: &[(String, &str)], inner: Rect, buf: &mut Buffer) {
    let key_style = Style::new()
        .fg(Color::LightCyan)
        .add_modifier(Modifier::BOLD);
    let key_width = pairs.iter().map(|(k, _)| k.width()).max().unwrap_or(0);
    for (y, (left, right)) in (inner.y..inner.bottom()).zip(pairs) {
        buf.set_stringn(inner.x + 1, y, left, key_width, key_style);
        let x = inner.x + 1 + key_width as u16 + 2;
        if x < inner.right() {
            buf.set_stringn(x, y, right, usize::from(inner.right() - x), Style::new());
        }
    }
}

/// Draws the search results over the middle of `area`, the chosen one highlighted.
pub fn draw_search(app: &App, area: Rect, buf: &mut Buffer) {
    let Some(view) = &app.search else {
        return;
    };
    let width = 100.min(area.width);
    let height = area.height.saturating_sub(4).max(5).min(area.height);
    let rect = Rect::new(
        area.x + (area.width - width) / 2,
        area.y + (area.height - height) / 2,
        width,
        height,
    );
    Clear.render(rect, buf);
    let title = format!(
        " Search: {} · ↑↓ choose · Enter opens · Esc closes ",
        sanitize_line(&view.text)
    );
    let block = Block::bordered().title(title);
    let inner = block.inner(rect);
    block.render(rect, buf);
    let dim = Style::new().fg(Color::DarkGray);
    if let Some(why) = &view.failed {
        let text = format!("search failed: {}", sanitize_line(why));
        buf.set_stringn(inner.x + 1, inner.y, text, usize::from(inner.width), dim);
        return;
    }
    let Some(results) = &view.results else {
        buf.set_stringn(
            inner.x + 1,
            inner.y,
            "searching…",
            usize::from(inner.width),
            dim,
        );
        return;
    };
    // Below the results: whether older messages may match too.
    let hint = match (view.searching_older, view.older) {
        (true, _) => Some("searching older messages…"),
        (false, Some(_)) if results.is_empty() => {
            Some("nothing among the newest messages · ↓ searches older ones")
        }
        (false, Some(_)) => Some("↓ older messages may match too"),
        (false, None) => None,
    };
    if results.is_empty() {
        let text = hint.unwrap_or("no messages found");
        buf.set_stringn(inner.x + 1, inner.y, text, usize::from(inner.width), dim);
        return;
    }
    let rows = usize::from(inner.height)
        .saturating_sub(usize::from(hint.is_some()))
        .max(1);
    let first = (view.selected + 1).saturating_sub(rows);
    if let Some(hint) = hint {
        let shown = (results.len() - first).min(rows);
        let y = inner.y + shown as u16;
        if y < inner.bottom() {
            buf.set_stringn(inner.x + 1, y, hint, usize::from(inner.width), dim);
        }
    }
    for (row, (i, m)) in results
        .iter()
        .enumerate()
        .skip(first)
        .take(rows)
        .enumerate()
    {
        let y = inner.y + row as u16;
        let conv = crate::update::conv_of(app, &m.from, &m.target);
        let when = format!(
            "{} {}",
            super::date(m.ts, app.utc_offset),
            super::clock(m.ts, app.utc_offset)
        );
        let line = format!(
            "{:<12} {when}  {}: {}",
            sanitize_line(&conv.to_string()),
            m.from,
            sanitize_line(&m.text)
        );
        let style = if i == view.selected {
            Style::new().add_modifier(Modifier::REVERSED)
        } else {
            Style::new()
        };
        if i == view.selected {
            buf.set_style(Rect::new(inner.x, y, inner.width, 1), style);
        }
        buf.set_stringn(
            inner.x + 1,
            y,
            line,
            usize::from(inner.width.saturating_sub(2)),
            style,
        );
    }
}

/// Draws the login screen and returns where the cursor goes.
pub fn draw_login(app: &App, error: Option<&str>, area: Rect, buf: &mut Buffer) -> Position {
    let width = 56.min(area.width);
    let height = 9.min(area.height);
    let rect = Rect::new(
        area.x + (area.width - width) / 2,
        area.y + (area.height - height) / 2,
        width,
        height,
    );
    let block = Block::bordered().title(" chat-tui ");
    let inner = block.inner(rect);
    block.render(rect, buf);
    let room = usize::from(inner.width.saturating_sub(2));
    let dim = Style::new().fg(Color::DarkGray);
    let x = inner.x + 1;
    let mut line = |row: u16, at: u16, text: &str, width: usize, style: Style| {
        if row < inner.height {
            buf.set_stringn(at, inner.y + row, text, width, style);
        }
    };
    let server = format!("server: {}", sanitize_line(&app.server));
    line(0, x, &server, room, dim);
    let state = format!("status: {}", super::status::conn_text(&app.conn));
    line(1, x, &state, room, dim);
    let label = "nickname: ";
    line(3, x, label, room, Style::new().add_modifier(Modifier::BOLD));
    let field_x = x + label.len() as u16;
    let field_width = usize::from(inner.right().saturating_sub(field_x + 1));
    let (rows, (_, col)) = app.login_input.layout(field_width.max(2));
    let shown = rows.last().cloned().unwrap_or_default();
    line(3, field_x, &shown, field_width, Style::new());
    line(
        4,
        x,
        "password: ",
        room,
        Style::new().add_modifier(Modifier::BOLD),
    );
    let typed = app.login_password.text().chars().count();
    let masked = if typed == 0 && app.login_field == LoginField::Nick {
        "(only for a registered nickname)".to_owned()
    } else {
        "•".repeat(typed)
    };
    let mask_style = if typed == 0 { dim } else { Style::new() };
    line(4, field_x, &masked, field_width, mask_style);
    if let Some(error) = error {
        let style = Style::new().fg(Color::LightRed);
        line(5, x, &sanitize_line(error), room, style);
    } else if app.nick.is_some() {
        line(5, x, "logging in…", room, dim);
    }
    line(
        6,
        x,
        "Enter: log in · Tab: next box · Ctrl+C: quit",
        room,
        dim,
    );
    match app.login_field {
        LoginField::Nick => Position::new(field_x + col as u16, inner.y + 3),
        LoginField::Password => Position::new(field_x + typed.min(field_width) as u16, inner.y + 4),
    }
}
