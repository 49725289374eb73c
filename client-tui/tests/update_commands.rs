//! `update` driven like the event loop drives it: keys, `/commands`, completion, unread counts
//! and scrolling.

mod common;

use client_tui::app::{ConvKey, Overlay};
use client_tui::msg::{Cmd, Msg};
use client_tui::update::update;
use common::*;
use crossterm::event::{KeyCode, KeyModifiers};
use protocol::{ClientFrame, RoomInfo, RoomName, ServerFrame, Target};

#[test]
fn msg_sends_a_direct_message_without_leaving_the_conversation() {
    let mut app = online_app("alice", &["bob"]);
    let cmds = enter_line(&mut app, "/msg bob psst, over here");
    assert_eq!(
        sent(&cmds),
        [ClientFrame::Send {
            client_id: "c-1".into(),
            target: Target::User(nick("bob")),
            text: "psst, over here".into(),
            reply_to: None,
        }]
    );
    assert_eq!(app.active_conv().key, ConvKey::Room(RoomName::lobby()));
    assert!(app.conv_index(&ConvKey::Direct(nick("bob"))).is_some());
}

#[test]
fn query_opens_a_direct_chat_and_typed_text_goes_there() {
    let mut app = online_app("alice", &["bob"]);
    assert!(sent(&enter_line(&mut app, "/query bob")).is_empty());
    assert_eq!(app.active_conv().key, ConvKey::Direct(nick("bob")));
    let cmds = enter_line(&mut app, "hi bob");
    assert!(
        matches!(&sent(&cmds)[..], [ClientFrame::Send { target: Target::User(n), .. }] if n == &nick("bob"))
    );
    enter_line(&mut app, "/part");
    assert!(app.conv_index(&ConvKey::Direct(nick("bob"))).is_none());
    assert_eq!(app.active_conv().key, ConvKey::Room(RoomName::lobby()));
}

#[test]
fn join_asks_the_server_and_shows_the_room_once_joined() {
    let mut app = online_app("alice", &[]);
    let cmds = enter_line(&mut app, "/join #rust");
    assert_eq!(sent(&cmds), [ClientFrame::Join { room: room("rust") }]);
    assert_eq!(app.active_conv().key, ConvKey::Room(RoomName::lobby()));
    frame(
        &mut app,
        ServerFrame::Joined {
            room: room("rust"),
            nick: nick("alice"),
        },
    );
    assert_eq!(app.active_conv().key, ConvKey::Room(room("rust")));
    assert_eq!(app.convs.len(), 2);
    frame(
        &mut app,
        ServerFrame::Joined {
            room: room("rust"),
            nick: nick("carol"),
        },
    );
    frame(
        &mut app,
        ServerFrame::Left {
            room: room("rust"),
            nick: nick("carol"),
        },
    );
    assert_eq!(
        notices(&app, app.active),
        ["you joined #rust", "carol joined", "carol left"]
    );
    // Joining a room already open only switches to it.
    key_mod(&mut app, KeyCode::Char('n'), KeyModifiers::CONTROL);
    assert!(sent(&enter_line(&mut app, "/join rust")).is_empty());
    assert_eq!(app.active_conv().key, ConvKey::Room(room("rust")));
}

#[test]
fn part_leaves_the_room_and_closes_it_when_the_server_confirms() {
    let mut app = online_app("alice", &[]);
    enter_line(&mut app, "/join rust");
    let me_in = ServerFrame::Joined {
        room: room("rust"),
        nick: nick("alice"),
    };
    frame(&mut app, me_in);
    let cmds = enter_line(&mut app, "/part");
    assert_eq!(sent(&cmds), [ClientFrame::Leave { room: room("rust") }]);
    frame(
        &mut app,
        ServerFrame::Left {
            room: room("rust"),
            nick: nick("alice"),
        },
    );
    assert!(app.conv_index(&ConvKey::Room(room("rust"))).is_none());
    assert_eq!(app.active_conv().key, ConvKey::Room(RoomName::lobby()));
}

#[test]
fn who_asks_about_the_room_shown_and_prints_the_answer() {
    let mut app = online_app("alice", &["bob"]);
    let cmds = enter_line(&mut app, "/who");
    assert_eq!(sent(&cmds), [ClientFrame::who(Some(RoomName::lobby()))]);
    frame(
        &mut app,
        ServerFrame::Users {
            room: Some(RoomName::lobby()),
            users: vec![nick("bob"), nick("alice")],
            total: Some(2),
            has_more: false,
        },
    );
    assert_eq!(
        notices(&app, 0).last().map(String::as_str),
        Some("in #lobby (2): alice, bob")
    );
    assert_eq!(app.active_conv().members, [nick("alice"), nick("bob")]);
    // A `users` frame nobody asked for (after a join) updates the members silently.
    let before = notices(&app, 0).len();
    frame(
        &mut app,
        ServerFrame::Users {
            room: Some(RoomName::lobby()),
            users: vec![nick("alice")],
            total: Some(1),
            has_more: false,
        },
    );
    assert_eq!(notices(&app, 0).len(), before);
}

#[test]
fn rooms_lists_the_rooms_with_their_member_counts() {
    let mut app = online_app("alice", &[]);
    assert_eq!(sent(&enter_line(&mut app, "/rooms")), [ClientFrame::Rooms]);
    frame(
        &mut app,
        ServerFrame::Rooms {
            rooms: vec![
                RoomInfo {
                    name: RoomName::lobby(),
                    members: 3,
                    joined: true,
                },
                RoomInfo {
                    name: room("rust"),
                    members: 1,
                    joined: false,
                },
            ],
        },
    );
    assert_eq!(
        notices(&app, 0).last().map(String::as_str),
        Some("rooms: #lobby (3, joined), #rust (1)")
    );
}

#[test]
fn help_users_quit_and_unknown_commands() {
    let mut app = online_app("alice", &[]);
    enter_line(&mut app, "/help");
    assert_eq!(app.overlay, Overlay::Help);
    key(&mut app, KeyCode::Esc);
    assert_eq!(app.overlay, Overlay::None);
    enter_line(&mut app, "/users");
    assert!(app.show_users);
    key(&mut app, KeyCode::F(2));
    assert!(!app.show_users);
    enter_line(&mut app, "/nope");
    assert_eq!(
        notices(&app, 0).last().map(String::as_str),
        Some("unknown command /nope; /help lists them")
    );
    let cmds = enter_line(&mut app, "//nope is text");
    assert_eq!(sends(&cmds)[0].1, "/nope is text");
    assert!(enter_line(&mut app, "/quit").contains(&Cmd::Quit));
    assert!(key_mod(&mut app, KeyCode::Char('c'), KeyModifiers::CONTROL).contains(&Cmd::Quit));
}

#[test]
fn tab_completes_commands_and_cycles_through_nicknames() {
    let mut app = online_app("alice", &["bob", "bea", "carol"]);
    type_text(&mut app, "/jo");
    key(&mut app, KeyCode::Tab);
    assert_eq!(app.input.text(), "/join ");
    app.input.take();
    type_text(&mut app, "b");
    key(&mut app, KeyCode::Tab);
    assert_eq!(app.input.text(), "bea: ");
    key(&mut app, KeyCode::Tab);
    assert_eq!(app.input.text(), "bob: ");
    key(&mut app, KeyCode::Tab);
    assert_eq!(app.input.text(), "bea: ");
    app.input.take();
    type_text(&mut app, "/msg ca");
    key(&mut app, KeyCode::Tab);
    assert_eq!(app.input.text(), "/msg carol ");
    app.input.take();
    type_text(&mut app, "al");
    key(&mut app, KeyCode::Tab);
    assert_eq!(app.input.text(), "al", "one's own name is not offered");
}

#[test]
fn unread_counts_grow_in_other_conversations_and_clear_when_shown() {
    let mut app = online_app("alice", &["bob"]);
    enter_line(&mut app, "/join rust");
    frame(
        &mut app,
        ServerFrame::Joined {
            room: room("rust"),
            nick: nick("alice"),
        },
    );
    frame(&mut app, room_message(1, "bob", "lobby", "one"));
    frame(&mut app, room_message(2, "bob", "lobby", "two"));
    frame(&mut app, room_message(3, "bob", "rust", "shown"));
    frame(&mut app, direct_message(4, "bob", "alice", "psst"));
    let lobby = app
        .conv_index(&ConvKey::Room(RoomName::lobby()))
        .expect("lobby");
    let rust = app.conv_index(&ConvKey::Room(room("rust"))).expect("rust");
    let bob = app.conv_index(&ConvKey::Direct(nick("bob"))).expect("dm");
    assert_eq!(
        [
            app.convs[lobby].unread,
            app.convs[rust].unread,
            app.convs[bob].unread
        ],
        [2, 0, 1]
    );
    key_mod(&mut app, KeyCode::Char('1'), KeyModifiers::ALT);
    assert_eq!(app.active, lobby);
    assert_eq!(app.convs[lobby].unread, 0);
    key_mod(&mut app, KeyCode::Char('p'), KeyModifiers::CONTROL);
    assert_eq!(
        app.active, bob,
        "Ctrl+P wraps around to the last conversation"
    );
    assert_eq!(app.convs[bob].unread, 0);
}

#[test]
fn a_message_arriving_while_scrolled_up_keeps_the_view_and_counts_as_new() {
    let mut app = online_app("alice", &["bob"]);
    for id in 1..=60 {
        frame(
            &mut app,
            room_message(id, "bob", "lobby", &format!("message {id}")),
        );
    }
    key(&mut app, KeyCode::PageUp);
    let scrolled = app.active_conv().scroll;
    assert!(scrolled > 0);
    frame(&mut app, room_message(61, "bob", "lobby", "new one"));
    assert_eq!(app.active_conv().new_below, 1);
    assert_eq!(app.active_conv().scroll, scrolled + 1);
    key(&mut app, KeyCode::Esc);
    assert_eq!(
        (app.active_conv().scroll, app.active_conv().new_below),
        (0, 0)
    );
    for _ in 0..100 {
        key(&mut app, KeyCode::PageUp);
    }
    let top = app.active_conv().scroll;
    key(&mut app, KeyCode::PageUp);
    assert_eq!(
        app.active_conv().scroll,
        top,
        "scrolling stops at the oldest message"
    );
}

#[test]
fn alt_enter_makes_a_multi_line_message() {
    let mut app = online_app("alice", &[]);
    type_text(&mut app, "line one");
    key_mod(&mut app, KeyCode::Enter, KeyModifiers::ALT);
    type_text(&mut app, "line two");
    let cmds = key(&mut app, KeyCode::Enter);
    assert_eq!(sends(&cmds)[0].1, "line one\nline two");
    key(&mut app, KeyCode::Up);
    assert_eq!(
        app.input.text(),
        "line one\nline two",
        "Up recalls the last message"
    );
}

#[test]
fn a_paste_with_newlines_stays_one_message() {
    let mut app = online_app("alice", &[]);
    update(&mut app, Msg::Pasted("a\r\nb".into()));
    let cmds = key(&mut app, KeyCode::Enter);
    assert_eq!(sends(&cmds)[0].1, "a\nb");
}
