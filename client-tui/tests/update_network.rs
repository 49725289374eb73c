//! `update` driven like the event loop drives it: login, sending and acks, the offline queue,
//! reconnects, resuming and history.

mod common;

use client_tui::app::{ConnState, ConvKey, Delivery, EntryKind, Screen};
use client_tui::msg::{Cmd, Msg, NetEvent};
use client_tui::update::update;
use common::*;
use crossterm::event::KeyCode;
use protocol::{ChatMessage, ClientFrame, Cursor, ErrorCode, RoomName, ServerFrame, Target};

fn own_delivery(app: &client_tui::app::App, index: usize) -> Vec<(String, Delivery)> {
    app.convs[index]
        .entries
        .iter()
        .filter_map(|e| match &e.kind {
            EntryKind::Message(l) if l.own => Some((l.text.clone(), l.delivery.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn a_named_client_logs_in_once_connected_and_lands_in_the_lobby() {
    let mut app = new_app("alice");
    let cmds = net(&mut app, NetEvent::Connected);
    assert_eq!(sent(&cmds), [ClientFrame::login("alice")]);
    assert_eq!(app.conn, ConnState::LoggingIn);
    frame(&mut app, welcome("alice", vec![nick("alice"), nick("bob")]));
    assert_eq!(app.conn, ConnState::Online);
    assert_eq!(app.active_conv().key, ConvKey::Room(RoomName::lobby()));
    assert_eq!(app.online, [nick("alice"), nick("bob")]);
}

#[test]
fn a_message_is_sent_with_a_client_id_and_marked_sent_by_its_ack() {
    let mut app = online_app("alice", &["bob"]);
    let cmds = enter_line(&mut app, "hello");
    assert_eq!(
        sent(&cmds),
        [ClientFrame::Send {
            client_id: "c-1".into(),
            target: Target::Room(RoomName::lobby()),
            text: "hello".into(),
            reply_to: None,
        }]
    );
    assert_eq!(own_delivery(&app, 0), [("hello".into(), Delivery::Pending)]);
    assert_eq!(app.outbox.len(), 1);
    assert!(app.input.is_empty());
    frame(
        &mut app,
        ServerFrame::Ack {
            client_id: "c-1".into(),
            id: 7,
            ts: T0,
            offline: false,
        },
    );
    assert_eq!(own_delivery(&app, 0), [("hello".into(), Delivery::Sent)]);
    assert!(app.outbox.is_empty());
}

#[test]
fn messages_typed_offline_are_sent_after_login_with_their_ids_and_unacked_ones_again() {
    let mut app = online_app("alice", &["bob"]);
    let first = sends(&enter_line(&mut app, "in flight"));
    assert_eq!(first, [("c-1".to_owned(), "in flight".to_owned())]);
    disconnect(&mut app);
    assert!(matches!(app.conn, ConnState::Reconnecting { .. }));
    assert!(sends(&enter_line(&mut app, "typed offline")).is_empty());
    assert!(sends(&enter_line(&mut app, "and another")).is_empty());
    assert_eq!(app.outbox.len(), 3);

    let cmds = net(&mut app, NetEvent::Connected);
    assert_eq!(sent(&cmds), [ClientFrame::login("alice")]);
    let cmds = frame(&mut app, welcome("alice", vec![nick("alice"), nick("bob")]));
    assert_eq!(
        sends(&cmds),
        [
            ("c-1".to_owned(), "in flight".to_owned()),
            ("c-2".to_owned(), "typed offline".to_owned()),
            ("c-3".to_owned(), "and another".to_owned()),
        ]
    );
    for (n, id) in ["c-1", "c-2", "c-3"].into_iter().enumerate() {
        frame(
            &mut app,
            ServerFrame::Ack {
                client_id: id.into(),
                id: n as u64 + 1,
                ts: T0,
                offline: false,
            },
        );
    }
    assert!(app.outbox.is_empty());
    assert_eq!(own_delivery(&app, 0).len(), 3, "each message shown once");
    disconnect(&mut app);
    net(&mut app, NetEvent::Connected);
    let cmds = frame(&mut app, welcome("alice", vec![nick("alice")]));
    assert!(
        sends(&cmds).is_empty(),
        "acknowledged messages are not resent"
    );
}

#[test]
fn a_refused_message_is_marked_failed_and_not_resent() {
    let mut app = online_app("alice", &[]);
    enter_line(&mut app, "/msg dave hi");
    frame(
        &mut app,
        ServerFrame::Error {
            code: ErrorCode::UserOffline,
            message: "dave is not online".into(),
            client_id: Some("c-1".into()),
        },
    );
    let dave = app
        .conv_index(&ConvKey::Direct(nick("dave")))
        .expect("the direct chat is open");
    assert_eq!(
        own_delivery(&app, dave),
        [("hi".into(), Delivery::Failed("dave is not online".into()))]
    );
    assert_eq!(notices(&app, dave), ["not sent: dave is not online"]);
    assert!(app.outbox.is_empty());
}

#[test]
fn a_left_frame_not_asked_for_keeps_the_conversation_and_its_history() {
    let mut app = online_app("alice", &["bob"]);
    frame(&mut app, room_message(1, "bob", "lobby", "before"));
    frame(
        &mut app,
        ServerFrame::Left {
            room: RoomName::lobby(),
            nick: nick("alice"),
        },
    );
    assert_eq!(app.active_conv().key, ConvKey::Room(RoomName::lobby()));
    assert!(
        app.active_conv()
            .entries
            .iter()
            .any(|e| matches!(&e.kind, EntryKind::Message(l) if l.text == "before"))
    );
}

#[test]
fn rooms_are_joined_again_after_a_reconnect() {
    let mut app = online_app("alice", &[]);
    enter_line(&mut app, "/join rust");
    frame(
        &mut app,
        ServerFrame::Joined {
            room: room("rust"),
            nick: nick("alice"),
        },
    );
    enter_line(&mut app, "queued?");
    disconnect(&mut app);
    net(&mut app, NetEvent::Connected);
    let cmds = frame(&mut app, welcome("alice", vec![nick("alice")]));
    let frames = sent(&cmds);
    assert_eq!(frames[0], ClientFrame::Join { room: room("rust") });
    assert!(
        matches!(&frames[1], ClientFrame::Send { target: Target::Room(r), .. } if r == &room("rust"))
    );
}

#[test]
fn a_refused_nickname_shows_the_reason_and_a_retry_logs_in() {
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
    assert_eq!(
        app.screen,
        Screen::Login {
            error: Some("the nickname alice is already online".into())
        }
    );
    assert_eq!(app.login_input.text(), "alice");
    type_text(&mut app, " x");
    key(&mut app, KeyCode::Enter);
    assert!(matches!(app.screen, Screen::Login { error: Some(ref e) } if e.contains("whitespace")));
    key(&mut app, KeyCode::Backspace);
    key(&mut app, KeyCode::Backspace);
    type_text(&mut app, "2");
    let cmds = key(&mut app, KeyCode::Enter);
    assert_eq!(sent(&cmds), [ClientFrame::login("alice2")]);
    frame(&mut app, welcome("alice2", vec![nick("alice2")]));
    assert_eq!(app.screen, Screen::Chat);
}

#[test]
fn after_a_reconnect_a_name_still_online_is_tried_again_until_it_is_free() {
    let mut app = online_app("alice", &["bob"]);
    disconnect(&mut app);
    net(&mut app, NetEvent::Connected);
    let taken = || ServerFrame::Error {
        code: ErrorCode::NickTaken,
        message: "the nickname alice is already online".into(),
        client_id: None,
    };
    let logins = |cmds: &[Cmd]| {
        sent(cmds)
            .iter()
            .filter(|f| matches!(f, ClientFrame::Login { nick, .. } if nick == "alice"))
            .count()
    };
    // Refused twice: each time the client waits two ticks, logs in again, and stays in the chat.
    for _ in 0..2 {
        assert_eq!(logins(&frame(&mut app, taken())), 0);
        assert_eq!(app.screen, Screen::Chat);
        assert_eq!(logins(&update(&mut app, Msg::Tick)), 0);
        assert_eq!(logins(&update(&mut app, Msg::Tick)), 1);
        // Nothing more while the answer is awaited.
        assert_eq!(logins(&update(&mut app, Msg::Tick)), 0);
    }
    assert!(
        notices(&app, app.active)
            .iter()
            .any(|n| n.contains("already online; trying again in 2 s")),
        "{:?}",
        notices(&app, app.active)
    );
    frame(&mut app, welcome("alice", vec![nick("alice"), nick("bob")]));
    assert_eq!(app.conn, ConnState::Online);
    assert_eq!(app.relogin, None);
}

#[test]
fn a_name_that_stays_taken_after_a_reconnect_goes_back_to_the_login_screen() {
    let mut app = online_app("alice", &[]);
    disconnect(&mut app);
    net(&mut app, NetEvent::Connected);
    let mut tries = 0;
    while app.screen == Screen::Chat {
        tries += 1;
        assert!(tries < 100, "the client never gave up");
        frame(
            &mut app,
            ServerFrame::Error {
                code: ErrorCode::NickTaken,
                message: "the nickname alice is already online".into(),
                client_id: None,
            },
        );
        update(&mut app, Msg::Tick);
        update(&mut app, Msg::Tick);
    }
    assert_eq!(tries, 16, "15 retries, then the login screen");
    assert!(
        matches!(app.screen, Screen::Login { error: Some(ref e) } if e.contains("already online"))
    );
}

#[test]
fn without_a_name_the_login_screen_waits_for_one() {
    let mut app = client_tui::app::App::new("ws://x", None, "c".into());
    assert!(sent(&net(&mut app, NetEvent::Connected)).is_empty());
    assert_eq!(app.conn, ConnState::Connected);
    type_text(&mut app, "张伟");
    let cmds = key(&mut app, KeyCode::Enter);
    assert_eq!(sent(&cmds), [ClientFrame::login("张伟")]);
}

#[test]
fn a_direct_message_opens_a_conversation_with_the_sender() {
    let mut app = online_app("alice", &["bob"]);
    let cmds = frame(&mut app, direct_message(9, "bob", "alice", "just you"));
    assert!(app.conv_index(&ConvKey::Direct(nick("bob"))).is_some());
    assert!(cmds.contains(&Cmd::Print("[01:00] @bob <bob> just you".into())));
    frame(
        &mut app,
        ServerFrame::Presence {
            nick: nick("bob"),
            online: false,
        },
    );
    assert_eq!(app.online, [nick("alice")]);
}

#[test]
fn plain_mode_quits_at_end_of_input_once_everything_is_acknowledged() {
    let mut app = online_app("alice", &[]);
    update(&mut app, Msg::LineEntered("last words".into()));
    assert!(!update(&mut app, Msg::InputEnded).contains(&Cmd::Quit));
    let cmds = frame(
        &mut app,
        ServerFrame::Ack {
            client_id: "c-1".into(),
            id: 1,
            ts: T0,
            offline: false,
        },
    );
    assert!(cmds.contains(&Cmd::Quit));
}

#[test]
fn printed_lines_are_sanitized() {
    let mut app = online_app("alice", &["bob"]);
    let cmds = frame(
        &mut app,
        room_message(1, "bob", "lobby", "\u{1b}[2Jgone\u{7}"),
    );
    assert!(cmds.contains(&Cmd::Print("[01:00] #lobby <bob> ␛[2Jgone␇".into())));
}

fn stored(id: u64, from: &str, target: Target, text: &str) -> ChatMessage {
    ChatMessage {
        id,
        ts: T0 + id as i64 * 1000,
        from: nick(from),
        target,
        text: text.into(),
        reply_to: None,
        edited: None,
        deleted: false,
    }
}

fn texts(app: &client_tui::app::App, key: &ConvKey) -> Vec<String> {
    let index = app.conv_index(key).expect("the conversation is open");
    app.convs[index]
        .entries
        .iter()
        .filter_map(|e| match &e.kind {
            EntryKind::Message(l) => Some(l.text.clone()),
            EntryKind::Notice(_) => None,
        })
        .collect()
}

#[test]
fn a_reconnect_resumes_each_conversation_after_its_last_message() {
    let mut app = online_app("alice", &["bob"]);
    frame(&mut app, room_message(5, "bob", "lobby", "in the lobby"));
    frame(&mut app, direct_message(9, "bob", "alice", "just us"));
    enter_line(&mut app, "/query carol");
    disconnect(&mut app);
    let cmds = net(&mut app, NetEvent::Connected);
    assert_eq!(
        sent(&cmds),
        [ClientFrame::Login {
            nick: "alice".into(),
            resume: vec![
                Cursor {
                    target: Target::Room(RoomName::lobby()),
                    after: 5
                },
                Cursor {
                    target: Target::User(nick("bob")),
                    after: 9
                },
            ],
            password: None,
        }],
        "a direct chat without messages has nothing to resume"
    );
}

#[test]
fn history_fills_the_gap_in_order_without_duplicates_and_before_pending_messages() {
    let mut app = online_app("alice", &["bob"]);
    frame(&mut app, room_message(5, "bob", "lobby", "five"));
    disconnect(&mut app);
    enter_line(&mut app, "pending");
    net(&mut app, NetEvent::Connected);
    frame(&mut app, welcome("alice", vec![nick("alice"), nick("bob")]));
    let lobby = ConvKey::Room(RoomName::lobby());
    frame(
        &mut app,
        ServerFrame::History {
            target: Target::Room(RoomName::lobby()),
            messages: vec![
                stored(5, "bob", Target::Room(RoomName::lobby()), "five"),
                stored(6, "bob", Target::Room(RoomName::lobby()), "six"),
                stored(7, "carol", Target::Room(RoomName::lobby()), "seven"),
            ],
            has_more: false,
        },
    );
    assert_eq!(texts(&app, &lobby), ["five", "six", "seven", "pending"]);
}

#[test]
fn an_ack_for_a_message_that_history_already_brought_leaves_one_copy() {
    let mut app = online_app("alice", &["bob"]);
    let first = sends(&enter_line(&mut app, "lost ack"));
    assert_eq!(first[0].0, "c-1");
    disconnect(&mut app);
    net(&mut app, NetEvent::Connected);
    let resent = sends(&frame(&mut app, welcome("alice", vec![nick("alice")])));
    assert_eq!(resent, first, "resent with the same client id");
    frame(
        &mut app,
        ServerFrame::History {
            target: Target::Room(RoomName::lobby()),
            messages: vec![stored(
                11,
                "alice",
                Target::Room(RoomName::lobby()),
                "lost ack",
            )],
            has_more: false,
        },
    );
    frame(
        &mut app,
        ServerFrame::Ack {
            client_id: "c-1".into(),
            id: 11,
            ts: T0,
            offline: false,
        },
    );
    assert_eq!(texts(&app, &ConvKey::Room(RoomName::lobby())), ["lost ack"]);
    assert!(app.outbox.is_empty());
}

#[test]
fn direct_messages_that_came_while_offline_open_their_conversation_unread() {
    let mut app = online_app("alice", &[]);
    let cmds = frame(
        &mut app,
        ServerFrame::History {
            target: Target::User(nick("bob")),
            messages: vec![
                stored(3, "bob", Target::User(nick("alice")), "are you there?"),
                stored(4, "bob", Target::User(nick("alice")), "ping"),
            ],
            has_more: true,
        },
    );
    let bob = ConvKey::Direct(nick("bob"));
    assert_eq!(texts(&app, &bob), ["are you there?", "ping"]);
    let index = app.conv_index(&bob).expect("open");
    assert_eq!(app.convs[index].unread, 2);
    assert_eq!(
        sent(&cmds),
        [ClientFrame::History {
            target: Target::User(nick("bob")),
            before: None,
            after: Some(4),
            limit: Some(200)
        }],
        "more are stored: the next page is asked for"
    );
}

#[test]
fn the_newest_messages_are_fetched_at_login_and_older_ones_at_the_top() {
    let mut app = new_app("alice");
    app.load_history = true;
    net(&mut app, NetEvent::Connected);
    let cmds = frame(&mut app, welcome("alice", vec![nick("alice")]));
    let lobby = Target::Room(RoomName::lobby());
    assert_eq!(
        sent(&cmds),
        [ClientFrame::History {
            target: lobby.clone(),
            before: None,
            after: None,
            limit: Some(50)
        }]
    );
    frame(&mut app, room_message(100, "bob", "lobby", "live"));
    let page: Vec<ChatMessage> = (51..=99)
        .map(|id| stored(id, "bob", lobby.clone(), &format!("old {id}")))
        .collect();
    let cmds = frame(
        &mut app,
        ServerFrame::History {
            target: lobby.clone(),
            messages: page,
            has_more: true,
        },
    );
    assert!(
        cmds.iter().all(|c| !matches!(c, Cmd::Print(_))),
        "old messages are not news"
    );
    assert_eq!(app.active_conv().unread, 0);
    let shown = texts(&app, &ConvKey::Room(RoomName::lobby()));
    assert_eq!((shown[0].as_str(), shown[49].as_str()), ("old 51", "live"));

    let mut asked = Vec::new();
    for _ in 0..20 {
        asked.extend(sent(&key(&mut app, KeyCode::PageUp)));
    }
    assert_eq!(
        asked,
        [ClientFrame::History {
            target: lobby.clone(),
            before: Some(51),
            after: None,
            limit: Some(50)
        }],
        "asked once, while the answer is on its way"
    );
    let scroll = app.active_conv().scroll;
    frame(
        &mut app,
        ServerFrame::History {
            target: lobby.clone(),
            messages: vec![stored(7, "carol", lobby.clone(), "the very first")],
            has_more: false,
        },
    );
    assert_eq!(
        app.active_conv().scroll,
        scroll,
        "the view stays where it was"
    );
    assert_eq!(
        texts(&app, &ConvKey::Room(RoomName::lobby()))[0],
        "the very first"
    );
    for _ in 0..20 {
        assert!(
            sent(&key(&mut app, KeyCode::PageUp)).is_empty(),
            "nothing older"
        );
    }
}

#[test]
fn a_direct_message_to_someone_offline_is_kept_for_them_and_says_so() {
    let mut app = online_app("alice", &[]);
    enter_line(&mut app, "/msg dave see you tomorrow");
    frame(
        &mut app,
        ServerFrame::Ack {
            client_id: "c-1".into(),
            id: 3,
            ts: T0,
            offline: true,
        },
    );
    let dave = app
        .conv_index(&ConvKey::Direct(nick("dave")))
        .expect("the direct chat is open");
    assert_eq!(
        own_delivery(&app, dave),
        [("see you tomorrow".into(), Delivery::Sent)]
    );
    assert_eq!(
        notices(&app, dave),
        ["dave is offline and gets it at the next login"]
    );
}

#[test]
fn the_reconnect_countdown_ticks_down() {
    let mut app = online_app("alice", &[]);
    net(
        &mut app,
        NetEvent::Disconnected {
            reason: "reset".into(),
            attempt: 3,
            retry_in_ms: 2500,
        },
    );
    update(&mut app, Msg::Tick);
    assert!(matches!(
        app.conn,
        ConnState::Reconnecting {
            retry_in_ms: 1500,
            ..
        }
    ));
}

#[test]
fn an_empty_room_resumes_from_the_start_only_when_history_is_shown() {
    let cursors = |load_history: bool| {
        let mut app = online_app("alice", &[]);
        app.load_history = load_history;
        disconnect(&mut app);
        match &sent(&net(&mut app, NetEvent::Connected))[..] {
            [ClientFrame::Login { resume, .. }] => resume.clone(),
            other => panic!("expected a login, got {other:?}"),
        }
    };
    assert_eq!(
        cursors(true),
        [Cursor {
            target: Target::Room(RoomName::lobby()),
            after: 0
        }]
    );
    assert!(
        cursors(false).is_empty(),
        "--plain does not replay a room's past"
    );
}

#[test]
fn a_registered_nickname_logs_in_with_its_password_and_a_wrong_one_is_asked_again() {
    let mut app = new_app("alice");
    app.password = Some("correct horse".into());
    let cmds = net(&mut app, NetEvent::Connected);
    assert!(matches!(
        &sent(&cmds)[..],
        [ClientFrame::Login { password: Some(p), .. }] if p == "correct horse"
    ));
    frame(
        &mut app,
        ServerFrame::Error {
            code: ErrorCode::WrongPassword,
            message: "wrong password for alice".into(),
            client_id: None,
        },
    );
    assert_eq!(
        app.screen,
        Screen::Login {
            error: Some("wrong password for alice".into())
        }
    );
    assert_eq!(app.login_field, client_tui::app::LoginField::Password);
    assert_eq!(app.login_input.text(), "alice");
    type_text(&mut app, "battery staple");
    let cmds = key(&mut app, KeyCode::Enter);
    assert!(matches!(
        &sent(&cmds)[..],
        [ClientFrame::Login { nick, password: Some(p), .. }]
            if nick == "alice" && p == "battery staple"
    ));
}

#[test]
fn register_protects_the_nickname_and_the_password_is_used_after_a_reconnect() {
    let mut app = online_app("alice", &[]);
    let cmds = enter_line(&mut app, "/register correct horse battery");
    assert_eq!(
        sent(&cmds),
        [ClientFrame::Register {
            password: "correct horse battery".into()
        }]
    );
    key(&mut app, KeyCode::Up);
    assert_eq!(
        app.input.text(),
        "",
        "a password is not kept in the input history"
    );
    frame(
        &mut app,
        ServerFrame::Registered {
            nick: nick("alice"),
        },
    );
    assert_eq!(
        notices(&app, 0).last().map(String::as_str),
        Some("alice is registered: logging in under it needs the password")
    );
    disconnect(&mut app);
    let cmds = net(&mut app, NetEvent::Connected);
    assert!(matches!(
        &sent(&cmds)[..],
        [ClientFrame::Login { password: Some(p), .. }] if p == "correct horse battery"
    ));
}
