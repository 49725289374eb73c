//! Snapshots of the chat features drawn into a `TestBackend` (fixed times, UTC 01:00): reply
//! quotes, `(edited)`, tombstones, mentions, the selection, the reply and edit boxes, typing in
//! the status line, the search results, unread counts from the server.
//! Run with `INSTA_UPDATE=no`; accept intended changes with `cargo insta review`.

mod common;

use client_tui::app::App;
use client_tui::msg::{Msg, NetEvent};
use client_tui::update::update;
use client_tui::view;
use common::*;
use crossterm::event::{KeyCode, KeyModifiers};
use insta::assert_snapshot;
use protocol::{ChatMessage, Quote, ServerFrame, Target};
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

/// The lobby as alice sees it: a question, a reply quoting it, an edited message, a deleted
/// one, and mentions of alice and of carol.
fn lobby() -> App {
    let mut app = new_app("alice");
    app.full_screen = true;
    net(&mut app, NetEvent::Connected);
    frame(
        &mut app,
        welcome("alice", vec![nick("alice"), nick("bob"), nick("carol")]),
    );
    app.active_conv_mut().entries.clear();
    frame(
        &mut app,
        room_message(1, "bob", "lobby", "who wants lunch?"),
    );
    let mut reply = ChatMessage::new(
        2,
        T0 + 2000,
        nick("carol"),
        Target::Room(room("lobby")),
        "me! @alice are you in?",
    );
    reply.reply_to = Some(Quote {
        id: 1,
        from: nick("bob"),
        text: "who wants lunch?".into(),
    });
    frame(&mut app, ServerFrame::Message(reply));
    frame(&mut app, room_message(3, "bob", "lobby", "pizza at 12"));
    frame(
        &mut app,
        ServerFrame::Edited {
            id: 3,
            target: Target::Room(room("lobby")),
            text: "pizza at 13, ask @carol".into(),
            ts: T0 + 4000,
        },
    );
    enter_line(&mut app, "oops, wrong chat");
    frame(
        &mut app,
        ServerFrame::Ack {
            client_id: "c-1".into(),
            id: 4,
            ts: T0 + 4000,
            offline: false,
        },
    );
    frame(
        &mut app,
        ServerFrame::Deleted {
            id: 4,
            target: Target::Room(room("lobby")),
        },
    );
    app
}

#[test]
fn replies_quote_edits_are_marked_and_deletions_leave_tombstones() {
    let mut app = lobby();
    assert_snapshot!(draw(&mut app, 100, 24).backend());
}

#[test]
fn replies_quote_at_40_columns() {
    let mut app = lobby();
    assert_snapshot!(draw(&mut app, 40, 24).backend());
}

#[test]
fn replying_to_the_selected_message_while_bob_types() {
    let mut app = lobby();
    key_mod(&mut app, KeyCode::Up, KeyModifiers::CONTROL);
    key_mod(&mut app, KeyCode::Up, KeyModifiers::CONTROL);
    key_mod(&mut app, KeyCode::Char('r'), KeyModifiers::CONTROL);
    type_text(&mut app, "count me in");
    frame(
        &mut app,
        ServerFrame::Typing {
            target: Target::Room(room("lobby")),
            nick: nick("bob"),
            for_ms: 6000,
        },
    );
    assert_snapshot!(draw(&mut app, 100, 24).backend());
}

#[test]
fn editing_the_last_own_message() {
    let mut app = lobby();
    enter_line(&mut app, "see you thre");
    frame(
        &mut app,
        ServerFrame::Ack {
            client_id: "c-2".into(),
            id: 5,
            ts: T0 + 5000,
            offline: false,
        },
    );
    enter_line(&mut app, "/edit");
    assert_snapshot!(draw(&mut app, 100, 24).backend());
}

#[test]
fn search_results_over_the_chat() {
    let mut app = lobby();
    enter_line(&mut app, "/search lunch");
    let results = vec![
        ChatMessage::new(
            9,
            T0 + 9000,
            nick("bob"),
            Target::Room(room("lobby")),
            "who wants lunch?",
        ),
        ChatMessage::new(
            7,
            T0 - 86_400_000,
            nick("bob"),
            Target::User(nick("alice")),
            "lunch tomorrow? 明天午饭",
        ),
    ];
    frame(
        &mut app,
        ServerFrame::SearchResults {
            text: "lunch".into(),
            results,
            before: None,
            older: None,
            failed: None,
        },
    );
    key(&mut app, KeyCode::Down);
    assert_snapshot!(draw(&mut app, 100, 20).backend());
}

#[test]
fn search_results_with_older_messages_still_to_search() {
    let mut app = lobby();
    enter_line(&mut app, "/search lunch");
    frame(
        &mut app,
        ServerFrame::SearchResults {
            text: "lunch".into(),
            results: vec![ChatMessage::new(
                9,
                T0 + 9000,
                nick("bob"),
                Target::Room(room("lobby")),
                "who wants lunch?",
            )],
            before: None,
            older: Some(9),
            failed: None,
        },
    );
    assert_snapshot!(draw(&mut app, 100, 12).backend());
}

#[test]
fn a_refused_search_over_the_chat() {
    let mut app = lobby();
    enter_line(&mut app, "/search lunch");
    frame(
        &mut app,
        ServerFrame::SearchResults {
            text: "lunch".into(),
            results: Vec::new(),
            before: None,
            older: None,
            failed: Some("too many searches are waiting; try again in a moment".into()),
        },
    );
    assert_snapshot!(draw(&mut app, 100, 12).backend());
}

#[test]
fn unread_counts_from_the_server_in_the_list_and_title() {
    let mut app = lobby();
    frame(
        &mut app,
        ServerFrame::Unread {
            target: Target::User(nick("bob")),
            count: 12,
            last_read: 3,
        },
    );
    frame(
        &mut app,
        ServerFrame::Joined {
            room: room("rust"),
            nick: nick("alice"),
        },
    );
    frame(
        &mut app,
        ServerFrame::Unread {
            target: Target::Room(room("rust")),
            // As many as the server counts: shown as "999+".
            count: protocol::MAX_UNREAD,
            last_read: 3,
        },
    );
    assert_snapshot!(draw(&mut app, 100, 12).backend());
}
