//! Snapshots of whole screens drawn into a `TestBackend`, with fixed times (UTC, 01:00).
//! Run with `INSTA_UPDATE=no`; accept intended changes with `cargo insta review`.

mod common;

use client_tui::app::App;
use client_tui::msg::{Msg, NetEvent};
use client_tui::update::update;
use client_tui::view;
use common::*;
use crossterm::event::KeyCode;
use insta::assert_snapshot;
use protocol::{ErrorCode, ServerFrame};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

fn draw(app: &mut App, width: u16, height: u16) -> Terminal<TestBackend> {
    update(app, Msg::Resized(width, height));
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("test terminal");
    terminal
        .draw(|frame| view::draw(app, frame))
        .expect("drawing never fails on a test backend");
    terminal
}

fn ack(app: &mut App, client_id: &str, id: u64) {
    frame(
        app,
        ServerFrame::Ack {
            client_id: client_id.into(),
            id,
            ts: T0 + id as i64 * 1000,
            offline: false,
        },
    );
}

/// The lobby seen by alice: others on the left, own on the right; CJK, emoji, a combining
/// accent, a multi-line message and a 200-character word; the last own message not yet acked.
fn conversation() -> App {
    let mut app = online_app("alice", &["bob", "张伟"]);
    app.active_conv_mut().entries.clear();
    frame(
        &mut app,
        room_message(1, "bob", "lobby", "hi alice! how was the trip?"),
    );
    frame(
        &mut app,
        room_message(2, "bob", "lobby", "did you see the mountains?"),
    );
    enter_line(&mut app, "great, thanks! and yes 🏔️");
    ack(&mut app, "c-1", 3);
    frame(
        &mut app,
        room_message(
            4,
            "张伟",
            "lobby",
            "你好！欢迎回来。这是一条很长的中文消息，用来检查双宽字符的换行是否正确。",
        ),
    );
    frame(
        &mut app,
        room_message(
            5,
            "bob",
            "lobby",
            "emoji 👋🎉🚀 café cafe\u{301} naïve\nsecond line",
        ),
    );
    let word: String = "0123456789".repeat(20);
    enter_line(&mut app, &format!("a long word: {word}"));
    app
}

#[test]
fn message_pane_at_120_columns() {
    let mut app = conversation();
    assert_snapshot!(draw(&mut app, 120, 30).backend());
}

#[test]
fn message_pane_at_40_columns() {
    let mut app = conversation();
    assert_snapshot!(draw(&mut app, 40, 30).backend());
}

#[test]
fn online_list_and_unread_counts() {
    let mut app = conversation();
    frame(&mut app, direct_message(6, "bob", "alice", "psst"));
    frame(
        &mut app,
        direct_message(7, "bob", "alice", "are you there?"),
    );
    key(&mut app, KeyCode::F(2));
    assert_snapshot!(draw(&mut app, 100, 16).backend());
}

#[test]
fn scrolled_up_with_new_messages_below() {
    let mut app = online_app("alice", &["bob"]);
    for id in 1..=30 {
        frame(
            &mut app,
            room_message(id, "bob", "lobby", &format!("message number {id}")),
        );
    }
    draw(&mut app, 70, 14);
    key(&mut app, KeyCode::PageUp);
    frame(
        &mut app,
        room_message(31, "bob", "lobby", "you missed this"),
    );
    frame(&mut app, room_message(32, "bob", "lobby", "and this"));
    assert_snapshot!(draw(&mut app, 70, 14).backend());
}

#[test]
fn hostile_text_shows_as_placeholders() {
    let mut app = online_app("alice", &["bob"]);
    frame(
        &mut app,
        room_message(
            1,
            "bob",
            "lobby",
            "\u{1b}[2J\u{1b}[31mred\u{1b}]0;pwned\u{7} \u{9b}6n \u{202e}evil\r\n\u{0}",
        ),
    );
    assert_snapshot!(draw(&mut app, 70, 10).backend());
}

#[test]
fn offline_with_queued_messages_then_back() {
    let mut app = online_app("alice", &["bob"]);
    net(
        &mut app,
        NetEvent::Disconnected {
            reason: "connection refused".into(),
            attempt: 3,
            retry_in_ms: 1500,
        },
    );
    enter_line(&mut app, "written while offline");
    assert_snapshot!("offline_queued", draw(&mut app, 80, 12).backend());
    net(&mut app, NetEvent::Connected);
    frame(&mut app, welcome("alice", vec![nick("alice"), nick("bob")]));
    ack(&mut app, "c-1", 9);
    assert_snapshot!("back_online", draw(&mut app, 80, 12).backend());
}

#[test]
fn login_screen_shows_the_refusal() {
    let mut app = new_app("alice");
    net(&mut app, NetEvent::Connected);
    frame(
        &mut app,
        ServerFrame::Error {
            code: ErrorCode::NickTaken,
            message: "the nickname alice is already online".into(),
            client_id: None,
        },
    );
    assert_snapshot!(draw(&mut app, 70, 14).backend());
}

#[test]
fn help_overlay_lists_every_key() {
    let mut app = conversation();
    key(&mut app, KeyCode::F(1));
    assert_snapshot!(draw(&mut app, 100, 30).backend());
}

#[test]
fn multi_line_input_grows_the_message_box() {
    let mut app = online_app("alice", &["bob"]);
    type_text(&mut app, "first line");
    key_mod(
        &mut app,
        KeyCode::Enter,
        crossterm::event::KeyModifiers::ALT,
    );
    type_text(
        &mut app,
        "second line, long enough to wrap in the box at this width",
    );
    assert_snapshot!(draw(&mut app, 50, 12).backend());
}

#[test]
fn only_the_visible_messages_are_laid_out() {
    let mut app = online_app("alice", &["bob"]);
    for id in 1..=10_000 {
        frame(
            &mut app,
            room_message(id, "bob", "lobby", &format!("message {id}")),
        );
    }
    let terminal = draw(&mut app, 120, 40);
    let laid_out = app
        .active_conv()
        .entries
        .iter()
        .filter(|e| e.wrapped.is_cached())
        .count();
    assert!(
        (30..=40).contains(&laid_out),
        "{laid_out} of 10000 entries were wrapped for one 40-row screen"
    );
    assert!(format!("{}", terminal.backend()).contains("message 10000"));
}

#[test]
fn the_wheel_scrolls_and_a_click_on_the_list_switches_conversation() {
    use crossterm::event::{KeyModifiers, MouseButton, MouseEvent, MouseEventKind};
    let mut app = online_app("alice", &["bob"]);
    for id in 1..=40 {
        frame(
            &mut app,
            room_message(id, "bob", "lobby", &format!("message {id}")),
        );
    }
    frame(&mut app, direct_message(41, "bob", "alice", "psst"));
    draw(&mut app, 100, 20);
    let mouse = |kind, column, row| {
        Msg::Mouse(MouseEvent {
            kind,
            column,
            row,
            modifiers: KeyModifiers::NONE,
        })
    };
    update(&mut app, mouse(MouseEventKind::ScrollUp, 50, 5));
    assert_eq!(app.active_conv().scroll, 3);
    update(&mut app, mouse(MouseEventKind::ScrollDown, 50, 5));
    assert_eq!(app.active_conv().scroll, 0);
    // Row 0 is the list's heading, row 1 the lobby, row 2 the direct chat with bob.
    update(
        &mut app,
        mouse(MouseEventKind::Down(MouseButton::Left), 5, 2),
    );
    assert_eq!(app.active, 1);
    assert_eq!(app.active_conv().unread, 0);
    assert_snapshot!(draw(&mut app, 100, 8).backend());
}

#[test]
fn tiny_terminals_are_drawn_without_panicking() {
    for (width, height) in [
        (1, 1),
        (3, 2),
        (10, 3),
        (20, 5),
        (24, 8),
        (25, 9),
        (59, 4),
        (61, 7),
        (61, 8),
        (200, 60),
    ] {
        let mut chat = conversation();
        chat.input
            .set("1\n2\n3\n4\n5\n6\n7\n8 and a line long enough to wrap at most widths");
        key(&mut chat, KeyCode::F(2));
        draw(&mut chat, width, height);
        key(&mut chat, KeyCode::F(1));
        draw(&mut chat, width, height);
        let mut login = new_app("alice");
        login.screen = client_tui::app::Screen::Login {
            error: Some("a reason".into()),
        };
        draw(&mut login, width, height);
    }
}

#[test]
fn the_conversation_list_scrolls_to_keep_the_shown_one_visible() {
    let mut app = online_app("alice", &["bob"]);
    for n in 0..12 {
        frame(
            &mut app,
            direct_message(n + 1, &format!("friend{n}"), "alice", "hi"),
        );
    }
    key_mod(
        &mut app,
        KeyCode::Char('p'),
        crossterm::event::KeyModifiers::CONTROL,
    );
    assert_eq!(app.active, 12);
    let terminal = draw(&mut app, 80, 10);
    assert_snapshot!(terminal.backend());
    // A click on the list's last row shows the conversation drawn there.
    use crossterm::event::{KeyModifiers, MouseButton, MouseEvent, MouseEventKind};
    update(
        &mut app,
        Msg::Mouse(MouseEvent {
            kind: MouseEventKind::Down(MouseButton::Left),
            column: 3,
            row: 6,
            modifiers: KeyModifiers::NONE,
        }),
    );
    assert_eq!(app.active, 12);
    update(
        &mut app,
        Msg::Mouse(MouseEvent {
            kind: MouseEventKind::Down(MouseButton::Left),
            column: 3,
            row: 1,
            modifiers: KeyModifiers::NONE,
        }),
    );
    assert_eq!(app.active, 7);
}

#[test]
fn bubbles_are_coloured_by_sender_and_at_most_two_thirds_of_the_pane() {
    use ratatui::style::Color;
    for (width, height) in [(40, 30), (120, 30)] {
        let mut app = conversation();
        let terminal = draw(&mut app, width, height);
        let pane = view::message_area(&app);
        let buf = terminal.backend().buffer();
        let mut own_rows = 0;
        let mut other_rows = 0;
        for y in pane.top()..pane.bottom() {
            let bg = |x: u16| buf[(x, y)].bg;
            let own: Vec<u16> = (pane.left()..pane.right())
                .filter(|&x| bg(x) == Color::Blue)
                .collect();
            let other: Vec<u16> = (pane.left()..pane.right())
                .filter(|&x| bg(x) == Color::Indexed(237))
                .collect();
            for (cells, own_side) in [(&own, true), (&other, false)] {
                let (Some(&first), Some(&last)) = (cells.first(), cells.last()) else {
                    continue;
                };
                let bubble = last - first + 1;
                assert!(
                    u32::from(bubble) * 3 <= u32::from(pane.width) * 2,
                    "a {bubble}-column bubble in a {}-column pane",
                    pane.width
                );
                if own_side {
                    own_rows += 1;
                    assert_eq!(
                        last,
                        pane.right() - 2,
                        "own bubbles end at the right margin"
                    );
                } else {
                    other_rows += 1;
                    assert_eq!(first, pane.left() + 1, "others' bubbles start at the left");
                }
            }
        }
        assert!(
            own_rows >= 2 && other_rows >= 4,
            "{own_rows} own and {other_rows} other rows"
        );
    }
}
