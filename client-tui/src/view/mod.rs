//! `view`: draws the [`App`] and nothing else. What is on screen is a function of the state.
//!
//! - [`bubbles`]: the message pane (bubbles, grouping, scrolling, the new-messages marker).
//! - [`wrap`]: wrapping text by display width, with a per-entry cache.
//! - [`status`]: the status bar, the conversation list, the title and the online list.
//! - [`help`]: the help overlay and the login screen.

pub mod bubbles;
pub mod help;
pub mod status;
pub mod wrap;

use crate::app::{App, Compose, Overlay, Screen};
use crate::sanitize::sanitize_line;
use ratatui::Frame;
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Position, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::widgets::{Paragraph, Wrap};

/// Width of the conversation list, including its separator column.
pub const SIDEBAR_WIDTH: u16 = 20;
/// Width of the online list, including its separator column.
pub const USERS_WIDTH: u16 = 18;
/// The first row of the conversation list holding a conversation (row 0 is its heading).
pub const SIDEBAR_FIRST_ROW: usize = 1;
/// Below this width the conversation list is hidden; the title names the conversation.
const SIDEBAR_MIN_TERMINAL_WIDTH: u16 = 60;
/// The most rows the message box grows to before it scrolls.
const INPUT_MAX_ROWS: usize = 6;
/// What is written before the message box.
pub const PROMPT: &str = "> ";

/// Where each part of the chat screen goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Areas {
    pub sidebar: Option<Rect>,
    pub title: Rect,
    pub messages: Rect,
    pub users: Option<Rect>,
    pub input: Rect,
    pub status: Rect,
}

/// The layout for the app's terminal size (as `update` needs it for mouse and scrolling).
pub fn areas(app: &App) -> Areas {
    areas_in(app, Rect::new(0, 0, app.size.0, app.size.1))
}

/// The message pane for the app's terminal size.
pub fn message_area(app: &App) -> Rect {
    areas(app).messages
}

/// The layout of the chat screen inside `area`.
pub fn areas_in(app: &App, area: Rect) -> Areas {
    let input_width = usize::from(area.width.saturating_sub(PROMPT.len() as u16 + 1));
    let most_rows = usize::from(area.height / 3).clamp(1, INPUT_MAX_ROWS);
    let rows = app.input.layout(input_width).0.len().clamp(1, most_rows);
    let [body, input, status] = Layout::vertical([
        Constraint::Min(1),
        Constraint::Length(rows as u16 + 1),
        Constraint::Length(1),
    ])
    .areas(area);
    let sidebar_w = if area.width >= SIDEBAR_MIN_TERMINAL_WIDTH {
        SIDEBAR_WIDTH
    } else {
        0
    };
    let users_w = if app.show_users && area.width >= 40 {
        USERS_WIDTH
    } else {
        0
    };
    let [sidebar, main, users] = Layout::horizontal([
        Constraint::Length(sidebar_w),
        Constraint::Min(1),
        Constraint::Length(users_w),
    ])
    .areas(body);
    let [title, messages] =
        Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(main);
    Areas {
        sidebar: (sidebar_w > 0).then_some(sidebar),
        title,
        messages,
        users: (users_w > 0).then_some(users),
        input,
        status,
    }
}

/// The smallest terminal the screens are drawn in; below it a note asks for more room.
pub const MIN_SIZE: (u16, u16) = (24, 8);

/// Draws the whole screen.
pub fn draw(app: &App, frame: &mut Frame) {
    let area = frame.area();
    if area.width < MIN_SIZE.0 || area.height < MIN_SIZE.1 {
        let note = Paragraph::new("chat-tui: enlarge the terminal").wrap(Wrap { trim: true });
        frame.render_widget(note, area);
        return;
    }
    if let Screen::Login { error } = &app.screen {
        let cursor = help::draw_login(app, error.as_deref(), area, frame.buffer_mut());
        frame.set_cursor_position(cursor);
        return;
    }
    let areas = areas_in(app, area);
    let buf = frame.buffer_mut();
    if let Some(sidebar) = areas.sidebar {
        status::draw_sidebar(app, sidebar, buf);
    }
    status::draw_title(app, areas.title, buf);
    bubbles::draw_messages(app, app.active_conv(), areas.messages, buf);
    if let Some(users) = areas.users {
        status::draw_users(app, users, buf);
    }
    let cursor = draw_input(app, areas.input, buf);
    status::draw_status(app, areas.status, buf);
    match app.overlay {
        Overlay::Help => help::draw_help(area, frame.buffer_mut()),
        Overlay::Search => help::draw_search(app, area, frame.buffer_mut()),
        Overlay::None => frame.set_cursor_position(cursor),
    }
}

/// The message box: a rule with the conversation's name, then the text after a prompt.
fn draw_input(app: &App, area: Rect, buf: &mut Buffer) -> Position {
    let dim = Style::new().fg(Color::DarkGray);
    let rule = "─".repeat(usize::from(area.width));
    buf.set_string(area.x, area.y, rule, dim);
    let to = sanitize_line(&app.active_conv().key.to_string()).into_owned();
    let label = match &app.compose {
        Compose::New => format!(" to {to} "),
        Compose::Reply(quote) => {
            let text: String = sanitize_line(&quote.text).chars().take(40).collect();
            format!(" to {to} · reply to {}: {text} · Esc cancels ", quote.from)
        }
        Compose::Edit(_) => format!(" to {to} · editing your message · Esc cancels "),
    };
    buf.set_stringn(
        area.x + 1,
        area.y,
        &label,
        usize::from(area.width.saturating_sub(2)),
        dim,
    );
    let text_x = area.x + PROMPT.len() as u16;
    let width = usize::from(area.width.saturating_sub(PROMPT.len() as u16 + 1));
    let (rows, (cursor_row, cursor_col)) = app.input.layout(width);
    let visible = usize::from(area.height.saturating_sub(1)).max(1);
    let first = (cursor_row + 1).saturating_sub(visible);
    buf.set_string(
        area.x,
        area.y + 1,
        PROMPT,
        Style::new().add_modifier(Modifier::BOLD),
    );
    for (i, row) in rows.iter().skip(first).take(visible).enumerate() {
        buf.set_string(text_x, area.y + 1 + i as u16, row, Style::new());
    }
    Position::new(
        text_x + cursor_col as u16,
        area.y + 1 + (cursor_row - first) as u16,
    )
}

/// `HH:MM` of a server time (ms since the epoch) at `utc_offset` seconds east of UTC.
pub fn clock(ts_ms: i64, utc_offset: i32) -> String {
    let secs = ts_ms.div_euclid(1000) + i64::from(utc_offset);
    let of_day = secs.rem_euclid(86_400);
    format!("{:02}:{:02}", of_day / 3600, of_day % 3600 / 60)
}

/// `YYYY-MM-DD` of a server time (ms since the epoch) at `utc_offset` seconds east of UTC.
pub fn date(ts_ms: i64, utc_offset: i32) -> String {
    let secs = ts_ms.div_euclid(1000) + i64::from(utc_offset);
    match time::OffsetDateTime::from_unix_timestamp(secs) {
        Ok(t) => format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day()),
        Err(_) => "????-??-??".to_owned(),
    }
}

/// The colour of a nickname: the same for the same name on every run and build (FNV-1a).
pub fn name_color(name: &str) -> Color {
    const PALETTE: [Color; 10] = [
        Color::Red,
        Color::Green,
        Color::Yellow,
        Color::Blue,
        Color::Magenta,
        Color::Cyan,
        Color::LightRed,
        Color::LightGreen,
        Color::LightMagenta,
        Color::LightCyan,
    ];
    let mut hash: u32 = 0x811c_9dc5;
    for byte in name.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    PALETTE[hash as usize % PALETTE.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_shows_hours_and_minutes_in_the_offset() {
        assert_eq!(clock(1_764_032_400_000, 0), "01:00");
        assert_eq!(clock(1_764_032_400_000, 3600 * 9), "10:00");
        assert_eq!(clock(1_764_032_400_000, -3600 * 2), "23:00");
        assert_eq!(date(1_764_032_400_000, 0), "2025-11-25");
        assert_eq!(date(1_764_032_400_000, -3600 * 2), "2025-11-24");
    }

    #[test]
    fn name_colours_are_stable() {
        assert_eq!(name_color("alice"), name_color("alice"));
        assert_eq!(name_color("alice"), Color::LightCyan);
    }
}
