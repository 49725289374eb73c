//! The status bar, the conversation list, the conversation title and the online list.

use super::name_color;
use crate::app::{App, ConnState, ConvKey};
use crate::sanitize::sanitize_line;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use unicode_width::UnicodeWidthStr;

/// The connection state in words, with a symbol.
pub fn conn_text(conn: &ConnState) -> String {
    match conn {
        ConnState::Connecting { attempt: 0 } => "◌ connecting".to_owned(),
        ConnState::Connecting { attempt } => format!("◌ reconnecting (try {})", attempt + 1),
        ConnState::Connected => "○ connected".to_owned(),
        ConnState::LoggingIn => "◌ logging in".to_owned(),
        ConnState::Online => "● online".to_owned(),
        ConnState::Reconnecting {
            attempt,
            retry_in_ms,
            ..
        } => format!(
            "◌ reconnecting in {}s (try {})",
            retry_in_ms.div_ceil(1000),
            attempt + 1
        ),
    }
}

/// The bottom line: connection, server, nickname, online count, queued messages, help key.
pub fn draw_status(app: &App, area: Rect, buf: &mut Buffer) {
    let base = Style::new().bg(Color::Indexed(236)).fg(Color::White);
    buf.set_style(area, base);
    let conn_style = match app.conn {
        ConnState::Online => base.fg(Color::LightGreen),
        _ => base.fg(Color::LightYellow),
    };
    let mut parts = vec![(conn_text(&app.conn), conn_style)];
    // The server is the least needed part: left out when the bar is narrow.
    if area.width >= 70 {
        parts.push((sanitize_line(&app.server).into_owned(), base));
    }
    if !app.nick_str().is_empty() {
        parts.push((app.nick_str().to_owned(), base.add_modifier(Modifier::BOLD)));
    }
    if app.is_online() {
        parts.push((format!("{} online", app.online_total), base));
    }
    if !app.outbox.is_empty() {
        parts.push((
            format!("{} queued", app.outbox.len()),
            base.fg(Color::LightYellow),
        ));
    }
    if let Some(typing) = typing_text(app) {
        parts.push((typing, base.fg(Color::Gray).add_modifier(Modifier::ITALIC)));
    }
    let mut x = area.x + 1;
    for (i, (text, style)) in parts.iter().enumerate() {
        if i > 0 {
            buf.set_stringn(
                x,
                area.y,
                " │ ",
                usize::from(area.right().saturating_sub(x)),
                base,
            );
            x = x.saturating_add(3);
        }
        if x >= area.right() {
            break;
        }
        buf.set_stringn(x, area.y, text, usize::from(area.right() - x), *style);
        x = x.saturating_add(text.width() as u16);
    }
    let help = "F1 help ";
    let help_x = area.right().saturating_sub(help.len() as u16);
    if help_x > x + 1 {
        buf.set_string(help_x, area.y, help, base.fg(Color::Gray));
    }
}

/// "bob is typing…" for the conversation shown, or `None` when nobody is.
pub fn typing_text(app: &App) -> Option<String> {
    let names: Vec<String> = app
        .active_conv()
        .typing
        .iter()
        .map(|(n, _)| sanitize_line(n.as_str()).into_owned())
        .collect();
    match names.as_slice() {
        [] => None,
        [one] => Some(format!("{one} is typing…")),
        [a, b] => Some(format!("{a} and {b} are typing…")),
        _ => Some("several people are typing…".to_owned()),
    }
}

/// The first conversation the list shows: the list scrolls so the shown one is visible.
pub fn sidebar_first(app: &App, area: Rect) -> usize {
    let rows = usize::from(area.height)
        .saturating_sub(super::SIDEBAR_FIRST_ROW)
        .max(1);
    (app.active + 1).saturating_sub(rows)
}

/// The conversation list: `#room` and `@nick` with unread counts, the shown one highlighted.
pub fn draw_sidebar(app: &App, area: Rect, buf: &mut Buffer) {
    let dim = Style::new().fg(Color::DarkGray);
    let list_width = area.width.saturating_sub(1);
    for y in area.top()..area.bottom() {
        buf.set_string(area.right() - 1, y, "│", dim);
    }
    buf.set_string(
        area.x + 1,
        area.y,
        "Chats",
        dim.add_modifier(Modifier::BOLD),
    );
    let rows = usize::from(area.height).saturating_sub(super::SIDEBAR_FIRST_ROW);
    let first = sidebar_first(app, area);
    for (i, conv) in app.convs.iter().enumerate().skip(first).take(rows) {
        let y = area.y + (super::SIDEBAR_FIRST_ROW + i - first) as u16;
        let mut style = Style::new();
        if let ConvKey::Direct(nick) = &conv.key
            && app.is_online()
            && app.online.binary_search(nick).is_err()
        {
            style = dim;
        }
        if i == app.active {
            style = Style::new().add_modifier(Modifier::REVERSED | Modifier::BOLD);
            buf.set_style(Rect::new(area.x, y, list_width, 1), style);
        }
        let count = match conv.unread {
            0 => String::new(),
            // The server counts up to `MAX_UNREAD`.
            1..=999 => format!(" {}", conv.unread),
            _ => " 999+".to_owned(),
        };
        let name_room = usize::from(list_width).saturating_sub(1 + count.width());
        let name = sanitize_line(&conv.key.to_string()).into_owned();
        buf.set_stringn(area.x + 1, y, &name, name_room, style);
        if !count.is_empty() {
            let x = area.x + list_width - count.width() as u16;
            let count_style = if i == app.active {
                style
            } else {
                Style::new()
                    .fg(Color::LightYellow)
                    .add_modifier(Modifier::BOLD)
            };
            buf.set_string(x, y, &count, count_style);
        }
    }
}

/// The line above the messages: which conversation, and who is in it.
pub fn draw_title(app: &App, area: Rect, buf: &mut Buffer) {
    let conv = app.active_conv();
    let detail = match &conv.key {
        ConvKey::Room(_) if conv.member_total == 0 => String::new(),
        ConvKey::Room(_) if conv.member_total == 1 => " · 1 member".into(),
        ConvKey::Room(_) => format!(" · {} members", conv.member_total),
        ConvKey::Direct(nick) if app.online.binary_search(nick).is_ok() => " · online".into(),
        ConvKey::Direct(_) => " · offline".into(),
    };
    let others_unread: usize = app.convs.iter().map(|c| c.unread).sum();
    let bold = Style::new().add_modifier(Modifier::BOLD);
    let name = sanitize_line(&conv.key.to_string()).into_owned();
    buf.set_stringn(
        area.x + 1,
        area.y,
        &name,
        usize::from(area.width.saturating_sub(1)),
        bold,
    );
    let x = area.x + 1 + name.width() as u16;
    if x < area.right() {
        let dim = Style::new().fg(Color::DarkGray);
        buf.set_stringn(x, area.y, &detail, usize::from(area.right() - x), dim);
    }
    if others_unread > 0 {
        let text = match others_unread {
            1..=999 => format!("{others_unread} unread "),
            _ => "999+ unread ".to_owned(),
        };
        let ux = area.right().saturating_sub(text.width() as u16);
        if ux > x + detail.width() as u16 + 1 {
            buf.set_string(ux, area.y, text, Style::new().fg(Color::LightYellow));
        }
    }
}

/// The online list, each name in its colour, and "and N more" below the names when the server
/// counted more than it listed (or than fit).
pub fn draw_users(app: &App, area: Rect, buf: &mut Buffer) {
    let dim = Style::new().fg(Color::DarkGray);
    for y in area.top()..area.bottom() {
        buf.set_string(area.x, y, "│", dim);
    }
    let heading = format!("Online ({})", app.online_total);
    buf.set_stringn(
        area.x + 2,
        area.y,
        heading,
        usize::from(area.width.saturating_sub(2)),
        dim.add_modifier(Modifier::BOLD),
    );
    let rows = usize::from(area.height.saturating_sub(1));
    let more = |shown: usize| app.online_total.saturating_sub(shown);
    // The last row says how many are not shown, when some are not.
    let names = if more(app.online.len().min(rows)) > 0 {
        rows.saturating_sub(1).min(app.online.len())
    } else {
        rows
    };
    if more(names) > 0 && rows > 0 {
        buf.set_stringn(
            area.x + 2,
            area.y + 1 + names as u16,
            format!("and {} more", more(names)),
            usize::from(area.width.saturating_sub(2)),
            dim,
        );
    }
    for (i, nick) in app.online.iter().enumerate().take(names) {
        let style = Style::new().fg(name_color(nick.as_str()));
        buf.set_stringn(
            area.x + 2,
            area.y + 1 + i as u16,
            sanitize_line(nick.as_str()),
            usize::from(area.width.saturating_sub(2)),
            style,
        );
    }
}
