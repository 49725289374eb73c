//! The help overlay (every key and command) and the login screen.

use crate::app::{App, LoginField};
use crate::commands::COMMANDS;
use crate::sanitize::sanitize_line;
use ratatui::buffer::Buffer;
use ratatui::layout::{Position, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::widgets::{Block, Clear, Widget};

/// Every key of the chat screen, with what it does.
pub const KEYS: &[(&str, &str)] = &[
    ("Enter", "send the message"),
    ("Alt+Enter, Ctrl+J", "new line in the message"),
    ("Tab, Shift+Tab", "complete a nickname or /command"),
    ("Up, Down", "earlier / later messages you typed"),
    ("Left, Right, Home, End", "move the cursor"),
    ("Ctrl+Left, Ctrl+Right", "move by word"),
    ("Ctrl+W, Alt+Backspace", "delete the word before the cursor"),
    ("Ctrl+U, Ctrl+K", "delete to start / end of line"),
    ("Ctrl+N, Ctrl+P", "next / previous conversation"),
    ("Alt+1 … Alt+9, click", "show that conversation"),
    ("PgUp, PgDn, wheel", "scroll the messages"),
    ("Esc, Ctrl+End", "back to the newest message"),
    ("F2", "show / hide who is online"),
    ("F1", "this help (Esc closes it)"),
    ("Ctrl+C, Ctrl+D", "quit"),
];

/// Draws the help window over the middle of `area`.
pub fn draw_help(area: Rect, buf: &mut Buffer) {
    let rows = KEYS.len() + COMMANDS.len() + 5;
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
    let key_style = Style::new()
        .fg(Color::LightCyan)
        .add_modifier(Modifier::BOLD);
    let mut y = inner.y;
    let mut line = |left: &str, right: &str, style: Style, buf: &mut Buffer| {
        if y < inner.bottom() {
            buf.set_stringn(inner.x + 1, y, left, 24, style);
            let x = inner.x + 26;
            if x < inner.right() {
                buf.set_stringn(x, y, right, usize::from(inner.right() - x), Style::new());
            }
            y += 1;
        }
    };
    for (key, what) in KEYS {
        line(key, what, key_style, buf);
    }
    line("", "", Style::new(), buf);
    for (name, args, what) in COMMANDS {
        line(&format!("{name} {args}"), what, key_style, buf);
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
