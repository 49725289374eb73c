//! Keys, paste and mouse.

use super::{frames::log_in, submit};
use crate::app::{App, Completion, Compose, ConnState, LoginField, Overlay, Screen};
use crate::commands::completions;
use crate::msg::Cmd;
use crate::view;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers, MouseButton, MouseEvent, MouseEventKind};
use protocol::Nick;

/// Rows moved by one step of the mouse wheel.
const WHEEL_ROWS: usize = 3;

pub(super) fn on_key(app: &mut App, key: KeyEvent, cmds: &mut Vec<Cmd>) {
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    if ctrl && key.code == KeyCode::Char('c') {
        return cmds.push(Cmd::Quit);
    }
    if app.overlay == Overlay::Help {
        if matches!(
            key.code,
            KeyCode::Esc | KeyCode::F(1) | KeyCode::Enter | KeyCode::Char('q')
        ) {
            app.overlay = Overlay::None;
        }
        return;
    }
    if app.overlay == Overlay::Search {
        return super::features::search_key(app, key.code, cmds);
    }
    if matches!(app.screen, Screen::Login { .. }) {
        return login_key(app, key, cmds);
    }
    if key.code != KeyCode::Tab && key.code != KeyCode::BackTab {
        app.completion = None;
    }
    let alt = key.modifiers.contains(KeyModifiers::ALT);
    let shift = key.modifiers.contains(KeyModifiers::SHIFT);
    let page = usize::from(view::message_area(app).height.saturating_sub(2)).max(1);
    match key.code {
        KeyCode::Enter if alt || shift || ctrl => app.input.insert("\n"),
        KeyCode::Char('j') if ctrl => app.input.insert("\n"),
        KeyCode::Enter => {
            let text = app.input.take();
            if crate::commands::is_secret(&text) {
                app.input.forget_last();
            }
            submit(app, &text, cmds);
        }
        KeyCode::Tab => complete(app, true),
        KeyCode::BackTab => complete(app, false),
        KeyCode::F(1) => app.overlay = Overlay::Help,
        KeyCode::F(2) => app.show_users = !app.show_users,
        KeyCode::Esc => escape(app),
        KeyCode::Up if ctrl => super::features::select(app, -1),
        KeyCode::Down if ctrl => super::features::select(app, 1),
        KeyCode::Char('r') if ctrl => super::features::reply(app, None, cmds),
        KeyCode::PageUp => scroll_up(app, page, cmds),
        KeyCode::PageDown => scroll_down(app, page),
        KeyCode::Home if ctrl => scroll_up(app, usize::MAX, cmds),
        KeyCode::End if ctrl => scroll_to_bottom(app),
        KeyCode::Up if alt => cycle(app, -1),
        KeyCode::Down if alt => cycle(app, 1),
        KeyCode::Char('p') if ctrl => cycle(app, -1),
        KeyCode::Char('n') if ctrl => cycle(app, 1),
        KeyCode::Char(c @ '1'..='9') if alt => {
            app.switch_to(usize::from(c as u8 - b'1'));
        }
        KeyCode::Char('d') if ctrl && app.input.is_empty() => cmds.push(Cmd::Quit),
        KeyCode::Char(_) if !ctrl && !alt => {
            edit(&mut app.input, key);
            super::features::typed(app, cmds);
        }
        _ => edit(&mut app.input, key),
    }
}

/// Esc: cancel a reply or an edit, else the selection, else go back to the newest message.
fn escape(app: &mut App) {
    app.jump_to = None;
    match std::mem::replace(&mut app.compose, Compose::New) {
        Compose::Edit(_) => app.input.set(""),
        Compose::Reply(_) => {}
        Compose::New if app.selected.is_some() => app.selected = None,
        Compose::New => scroll_to_bottom(app),
    }
}

/// Keys of the login screen: edit the nickname, Enter to log in.
fn login_key(app: &mut App, key: KeyEvent, cmds: &mut Vec<Cmd>) {
    match key.code {
        KeyCode::Enter => {
            let typed = app.login_input.text().trim().to_owned();
            match Nick::parse(&typed) {
                Err(problem) => {
                    app.screen = Screen::Login {
                        error: Some(format!("{problem}")),
                    };
                }
                Ok(nick) => {
                    app.screen = Screen::Login { error: None };
                    app.nick = Some(nick.clone());
                    let password = app.login_password.text().to_owned();
                    app.password = (!password.is_empty()).then_some(password);
                    if app.conn == ConnState::Connected {
                        log_in(app, &nick, cmds);
                    }
                }
            }
        }
        KeyCode::Up | KeyCode::Down | KeyCode::Tab | KeyCode::BackTab => {
            app.login_field = match app.login_field {
                LoginField::Nick => LoginField::Password,
                LoginField::Password => LoginField::Nick,
            };
        }
        KeyCode::Char('j') if key.modifiers.contains(KeyModifiers::CONTROL) => {}
        _ => {
            let field = match app.login_field {
                LoginField::Nick => &mut app.login_input,
                LoginField::Password => &mut app.login_password,
            };
            if key.code == KeyCode::Esc {
                field.set("");
            } else {
                edit(field, key);
            }
        }
    }
}

/// The line editor's keys.
fn edit(input: &mut crate::input::LineEditor, key: KeyEvent) {
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    let alt = key.modifiers.contains(KeyModifiers::ALT);
    match key.code {
        KeyCode::Backspace if ctrl || alt => input.delete_word_before(),
        KeyCode::Backspace => input.backspace(),
        KeyCode::Delete => input.delete(),
        KeyCode::Left if ctrl || alt => input.word_left(),
        KeyCode::Right if ctrl || alt => input.word_right(),
        KeyCode::Left => input.left(),
        KeyCode::Right => input.right(),
        KeyCode::Home => input.home(),
        KeyCode::End => input.end(),
        KeyCode::Up => input.up(),
        KeyCode::Down => input.down(),
        KeyCode::Char('a') if ctrl => input.home(),
        KeyCode::Char('e') if ctrl => input.end(),
        KeyCode::Char('b') if alt => input.word_left(),
        KeyCode::Char('f') if alt => input.word_right(),
        KeyCode::Char('w') if ctrl => input.delete_word_before(),
        KeyCode::Char('h') if ctrl => input.backspace(),
        KeyCode::Char('u') if ctrl => input.delete_to_line_start(),
        KeyCode::Char('k') if ctrl => input.delete_to_line_end(),
        KeyCode::Char(c) if !ctrl && !alt => input.insert_char(c),
        _ => {}
    }
}

pub(super) fn on_paste(app: &mut App, text: &str) {
    match app.screen {
        Screen::Login { .. } => {
            let line = text.lines().next().unwrap_or("");
            match app.login_field {
                LoginField::Nick => app.login_input.insert(line),
                LoginField::Password => app.login_password.insert(line),
            }
        }
        Screen::Chat => app.input.insert(text),
    }
}

pub(super) fn on_mouse(app: &mut App, mouse: MouseEvent, cmds: &mut Vec<Cmd>) {
    if app.screen != Screen::Chat || app.overlay != Overlay::None {
        return;
    }
    let areas = view::areas(app);
    let inside = |r: ratatui::layout::Rect| {
        mouse.column >= r.x
            && mouse.column < r.right()
            && mouse.row >= r.y
            && mouse.row < r.bottom()
    };
    match mouse.kind {
        MouseEventKind::ScrollUp if inside(areas.messages) => scroll_up(app, WHEEL_ROWS, cmds),
        MouseEventKind::ScrollDown if inside(areas.messages) => scroll_down(app, WHEEL_ROWS),
        MouseEventKind::Down(MouseButton::Left) => {
            if let Some(list) = areas.sidebar.filter(|r| inside(*r)) {
                let row = usize::from(mouse.row - list.y);
                if let Some(index) = row.checked_sub(view::SIDEBAR_FIRST_ROW) {
                    app.switch_to(index + view::status::sidebar_first(app, list));
                }
            }
        }
        _ => {}
    }
}

/// Shows the next (`step` 1) or previous (`step` -1) conversation, wrapping around.
fn cycle(app: &mut App, step: isize) {
    let n = app.convs.len() as isize;
    let next = (app.active as isize + step).rem_euclid(n);
    app.switch_to(next as usize);
}

/// Scrolls towards older messages; at the top, asks the server for more.
fn scroll_up(app: &mut App, rows: usize, cmds: &mut Vec<Cmd>) {
    let area = view::message_area(app);
    let conv = &app.convs[app.active];
    let total = view::bubbles::total_height(conv, area.width);
    let max = total.saturating_sub(usize::from(area.height));
    let conv = app.active_conv_mut();
    conv.scroll = conv.scroll.saturating_add(rows).min(max);
    if conv.scroll == max {
        super::history::request_older(app, app.active, cmds);
    }
}

fn scroll_down(app: &mut App, rows: usize) {
    let conv = app.active_conv_mut();
    conv.scroll = conv.scroll.saturating_sub(rows);
    if conv.scroll == 0 {
        conv.new_below = 0;
    }
}

fn scroll_to_bottom(app: &mut App) {
    let conv = app.active_conv_mut();
    conv.scroll = 0;
    conv.new_below = 0;
}

/// Tab: completes the word at the cursor, cycling through candidates on repeated presses.
fn complete(app: &mut App, forward: bool) {
    if let Some(mut done) = app.completion.take() {
        let n = done.candidates.len();
        done.index = if forward {
            (done.index + 1) % n
        } else {
            (done.index + n - 1) % n
        };
        let end = app.input.cursor();
        app.input
            .replace_range(done.start..end, &done.candidates[done.index]);
        app.completion = Some(done);
        return;
    }
    let (start, word) = app.input.word_at_cursor();
    let at_line_start = start == 0;
    let members = app.active_conv().members.iter();
    let names = app
        .online
        .iter()
        .chain(members)
        .map(Nick::as_str)
        .filter(|n| Some(*n) != app.nick.as_ref().map(Nick::as_str));
    let candidates = completions(word, at_line_start, names);
    if candidates.is_empty() {
        return;
    }
    let end = app.input.cursor();
    app.input.replace_range(start..end, &candidates[0]);
    if candidates.len() > 1 {
        app.completion = Some(Completion {
            start,
            candidates,
            index: 0,
        });
    }
}
