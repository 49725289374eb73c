//! `update` driven through the chat features: replies, edits and deletions, server unread
//! counts and read markers, typing notices, search, mentions and the bell, the terminal title.

mod common;

use client_tui::app::{App, Compose, ConvKey, EntryKind, Overlay};
use client_tui::msg::{Cmd, Msg, NetEvent};
use client_tui::update::update;
use client_tui::view::status::typing_text;
use common::*;
use crossterm::event::{KeyCode, KeyModifiers};
use protocol::{ChatMessage, ClientFrame, Quote, ServerFrame, Target};

/// A full-screen client (read markers, title, bell) logged in as alice with bob online.
fn alice() -> App {
    let mut app = new_app("alice");
    app.full_screen = true;
    net(&mut app, client_tui::msg::NetEvent::Connected);
    frame(&mut app, welcome("alice", vec![nick("alice"), nick("bob")]));
    app
}

fn ctrl(app: &mut App, code: KeyCode) -> Vec<Cmd> {
    key_mod(app, code, KeyModifiers::CONTROL)
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

fn line(app: &App, index: usize, id: u64) -> client_tui::app::ChatLine {
    app.line(index, id).expect("the message is loaded").clone()
}

fn other_frames(cmds: &[Cmd]) -> Vec<ClientFrame> {
    sent(cmds)
        .into_iter()
        .filter(|f| !matches!(f, ClientFrame::Read { .. }))
        .collect()
}

#[test]
fn ctrl_up_selects_a_message_and_ctrl_r_answers_it_with_reply_to_and_a_quote() {
    let mut app = alice();
    frame(
        &mut app,
        room_message(41, "bob", "lobby", "who wants lunch?"),
    );
    frame(
        &mut app,
        room_message(42, "bob", "lobby", "pizza or noodles"),
    );
    ctrl(&mut app, KeyCode::Up);
    assert_eq!(app.selected, Some(42));
    ctrl(&mut app, KeyCode::Up);
    assert_eq!(app.selected, Some(41));
    ctrl(&mut app, KeyCode::Char('r'));
    let quote = Quote {
        id: 41,
        from: nick("bob"),
        text: "who wants lunch?".into(),
    };
    assert_eq!(app.compose, Compose::Reply(quote.clone()));
    let cmds = enter_line(&mut app, "me!");
    assert_eq!(
        other_frames(&cmds),
        [ClientFrame::Send {
            client_id: "c-1".into(),
            target: Target::Room(room("lobby")),
            text: "me!".into(),
            reply_to: Some(41),
        }]
    );
    assert_eq!(app.compose, Compose::New);
    assert_eq!(app.selected, None);
    let EntryKind::Message(own) = &app.active_conv().entries.last().expect("sent").kind else {
        panic!("the reply is a message");
    };
    assert_eq!(own.reply_to, Some(quote));
}

#[test]
fn reply_without_a_selection_says_how_to_select_and_sends_nothing() {
    let mut app = alice();
    frame(&mut app, room_message(41, "bob", "lobby", "hi"));
    let cmds = enter_line(&mut app, "/reply sure");
    assert!(other_frames(&cmds).is_empty());
    assert!(notices(&app, 0).iter().any(|n| n.contains("Ctrl+Up")));
    ctrl(&mut app, KeyCode::Up);
    let cmds = enter_line(&mut app, "/reply sure");
    assert!(matches!(
        other_frames(&cmds).as_slice(),
        [ClientFrame::Send { reply_to: Some(41), text, .. }] if text == "sure"
    ));
}

#[test]
fn ctrl_down_past_the_newest_and_esc_clear_the_selection() {
    let mut app = alice();
    frame(&mut app, room_message(41, "bob", "lobby", "hi"));
    ctrl(&mut app, KeyCode::Up);
    ctrl(&mut app, KeyCode::Down);
    assert_eq!(app.selected, None);
    ctrl(&mut app, KeyCode::Up);
    key(&mut app, KeyCode::Esc);
    assert_eq!(app.selected, None);
}

#[test]
fn edit_without_a_selection_takes_the_last_own_message_into_the_box_and_sends_edit() {
    let mut app = alice();
    enter_line(&mut app, "helo");
    ack(&mut app, "c-1", 50);
    frame(&mut app, room_message(51, "bob", "lobby", "hi"));
    enter_line(&mut app, "/edit");
    assert_eq!(app.compose, Compose::Edit(50));
    assert_eq!(app.input.text(), "helo");
    key(&mut app, KeyCode::Backspace);
    let cmds = enter_line(&mut app, "lo");
    assert_eq!(
        other_frames(&cmds),
        [ClientFrame::Edit {
            id: 50,
            text: "hello".into()
        }]
    );
    let edited = line(&app, 0, 50);
    assert!(edited.edited);
    assert_eq!(edited.text, "hello");
    assert_eq!(app.compose, Compose::New);
}

#[test]
fn esc_cancels_an_edit_and_empties_the_box() {
    let mut app = alice();
    enter_line(&mut app, "draft");
    ack(&mut app, "c-1", 50);
    enter_line(&mut app, "/edit");
    key(&mut app, KeyCode::Esc);
    assert_eq!(app.compose, Compose::New);
    assert!(app.input.is_empty());
}

#[test]
fn only_own_messages_are_edited_or_deleted() {
    let mut app = alice();
    frame(
        &mut app,
        room_message(41, "bob", "lobby", "mine, not yours"),
    );
    ctrl(&mut app, KeyCode::Up);
    let cmds = enter_line(&mut app, "/delete");
    assert!(other_frames(&cmds).is_empty());
    let cmds = enter_line(&mut app, "/edit changed");
    assert!(other_frames(&cmds).is_empty());
    let said = notices(&app, 0);
    assert!(
        said.iter()
            .any(|n| n.contains("only your own messages can be deleted"))
    );
    assert!(
        said.iter()
            .any(|n| n.contains("only your own messages can be edited"))
    );
}

#[test]
fn delete_sends_delete_and_leaves_a_tombstone() {
    let mut app = alice();
    enter_line(&mut app, "oops");
    ack(&mut app, "c-1", 50);
    ctrl(&mut app, KeyCode::Up);
    let cmds = enter_line(&mut app, "/delete");
    assert_eq!(other_frames(&cmds), [ClientFrame::Delete { id: 50 }]);
    let gone = line(&app, 0, 50);
    assert!(gone.deleted && gone.text.is_empty());
    assert_eq!(app.selected, None);
}

#[test]
fn incoming_edited_and_deleted_change_the_message_and_the_quotes_of_its_replies() {
    let mut app = alice();
    frame(&mut app, room_message(41, "bob", "lobby", "lunch at 12?"));
    let mut reply = ChatMessage::new(
        42,
        T0 + 42_000,
        nick("carol"),
        Target::Room(room("lobby")),
        "yes",
    );
    reply.reply_to = Some(Quote {
        id: 41,
        from: nick("bob"),
        text: "lunch at 12?".into(),
    });
    frame(&mut app, ServerFrame::Message(reply));
    frame(
        &mut app,
        ServerFrame::Edited {
            id: 41,
            target: Target::Room(room("lobby")),
            text: "lunch at 13?".into(),
            ts: T0 + 43_000,
        },
    );
    assert!(line(&app, 0, 41).edited);
    assert_eq!(line(&app, 0, 41).text, "lunch at 13?");
    let quote = line(&app, 0, 42).reply_to.expect("a reply");
    assert_eq!(quote.text, "lunch at 13?");
    frame(
        &mut app,
        ServerFrame::Deleted {
            id: 41,
            target: Target::Room(room("lobby")),
        },
    );
    assert!(line(&app, 0, 41).deleted);
    assert_eq!(line(&app, 0, 42).reply_to.expect("a reply").text, "");
}

#[test]
fn a_deleted_direct_message_is_found_whatever_to_names() {
    let mut app = alice();
    frame(&mut app, direct_message(43, "bob", "alice", "just you"));
    frame(
        &mut app,
        ServerFrame::Deleted {
            id: 43,
            target: Target::User(nick("alice")),
        },
    );
    let index = app
        .conv_index(&ConvKey::Direct(nick("bob")))
        .expect("the direct chat");
    assert!(line(&app, index, 43).deleted);
}

#[test]
fn unread_frames_set_the_counts_and_viewing_a_conversation_marks_it_read() {
    let mut app = alice();
    frame(&mut app, room_message(40, "bob", "lobby", "seen"));
    frame(
        &mut app,
        ServerFrame::Unread {
            target: Target::User(nick("bob")),
            count: 3,
            last_read: 41,
        },
    );
    let bob = app
        .conv_index(&ConvKey::Direct(nick("bob")))
        .expect("opened by its unread count");
    assert_eq!(app.convs[bob].unread, 3);
    for id in [42, 43, 44] {
        frame(&mut app, direct_message(id, "bob", "alice", "ping"));
    }
    assert_eq!(app.convs[bob].unread, 6, "live messages count on top");
    let cmds = key_mod(&mut app, KeyCode::Char('2'), KeyModifiers::ALT);
    assert_eq!(
        sent(&cmds)
            .into_iter()
            .filter(|f| matches!(f, ClientFrame::Read { .. }))
            .collect::<Vec<_>>(),
        [ClientFrame::Read {
            target: Target::User(nick("bob")),
            up_to: 44
        }]
    );
    assert_eq!(app.convs[bob].unread, 0);
    // Another session read it further: the server's count wins.
    frame(
        &mut app,
        ServerFrame::Unread {
            target: Target::Room(room("lobby")),
            count: 0,
            last_read: 40,
        },
    );
    assert_eq!(app.convs[0].unread, 0);
}

#[test]
fn a_direct_chat_opened_by_its_unread_count_fetches_its_messages_and_unknown_rooms_are_ignored() {
    let mut app = alice();
    app.load_history = true;
    let cmds = frame(
        &mut app,
        ServerFrame::Unread {
            target: Target::User(nick("carol")),
            count: 2,
            last_read: 7,
        },
    );
    assert_eq!(
        sent(&cmds),
        [ClientFrame::History {
            target: Target::User(nick("carol")),
            before: None,
            after: None,
            limit: Some(50)
        }]
    );
    frame(
        &mut app,
        ServerFrame::Unread {
            target: Target::Room(room("gone")),
            count: 5,
            last_read: 1,
        },
    );
    assert!(app.conv_index(&ConvKey::Room(room("gone"))).is_none());
}

#[test]
fn a_message_arriving_in_view_is_marked_read_at_once_but_not_when_scrolled_up() {
    let mut app = alice();
    let cmds = frame(&mut app, room_message(50, "bob", "lobby", "hi"));
    assert!(sent(&cmds).contains(&ClientFrame::Read {
        target: Target::Room(room("lobby")),
        up_to: 50
    }));
    for id in 51..80 {
        frame(&mut app, room_message(id, "bob", "lobby", "filler\nline"));
    }
    key(&mut app, KeyCode::PageUp);
    let cmds = frame(&mut app, room_message(80, "bob", "lobby", "below"));
    assert!(
        !sent(&cmds)
            .iter()
            .any(|f| matches!(f, ClientFrame::Read { .. }))
    );
    let cmds = key(&mut app, KeyCode::Esc);
    assert!(sent(&cmds).contains(&ClientFrame::Read {
        target: Target::Room(room("lobby")),
        up_to: 80
    }));
}

#[test]
fn typing_is_sent_at_most_every_few_seconds_and_not_for_commands() {
    let mut app = alice();
    let typing = |cmds: &[Cmd]| {
        sent(cmds)
            .iter()
            .filter(|f| matches!(f, ClientFrame::Typing { .. }))
            .count()
    };
    assert_eq!(typing(&key(&mut app, KeyCode::Char('h'))), 1);
    assert_eq!(typing(&key(&mut app, KeyCode::Char('i'))), 0);
    for _ in 0..3 {
        update(&mut app, Msg::Tick);
    }
    assert_eq!(typing(&key(&mut app, KeyCode::Char('!'))), 0);
    update(&mut app, Msg::Tick);
    assert_eq!(typing(&key(&mut app, KeyCode::Char('!'))), 1);
    app.input.set("");
    for _ in 0..4 {
        update(&mut app, Msg::Tick);
    }
    assert_eq!(typing(&key(&mut app, KeyCode::Char('/'))), 0);
}

#[test]
fn someone_typing_shows_in_the_status_line_until_it_runs_out_or_their_message_comes() {
    let mut app = alice();
    let typing = ServerFrame::Typing {
        target: Target::Room(room("lobby")),
        nick: nick("bob"),
        for_ms: 2000,
    };
    frame(&mut app, typing.clone());
    assert_eq!(typing_text(&app).as_deref(), Some("bob is typing…"));
    update(&mut app, Msg::Tick);
    assert!(typing_text(&app).is_some());
    update(&mut app, Msg::Tick);
    assert_eq!(typing_text(&app), None);
    frame(&mut app, typing);
    frame(&mut app, room_message(60, "bob", "lobby", "done"));
    assert_eq!(typing_text(&app), None);
}

fn result(id: u64, from: &str, target: Target, text: &str) -> ChatMessage {
    ChatMessage::new(id, T0 + id as i64 * 1000, nick(from), target, text)
}

#[test]
fn search_shows_results_and_enter_opens_the_conversation_around_a_message_not_loaded() {
    let mut app = alice();
    let cmds = enter_line(&mut app, "/search lunch");
    assert_eq!(
        other_frames(&cmds),
        [ClientFrame::Search {
            text: "lunch".into(),
            limit: Some(50),
            before: None
        }]
    );
    assert_eq!(app.overlay, Overlay::Search);
    let results = vec![
        result(90, "bob", Target::Room(room("lobby")), "lunch now?"),
        result(12, "bob", Target::User(nick("alice")), "lunch tomorrow"),
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
    let cmds = key(&mut app, KeyCode::Enter);
    assert_eq!(app.overlay, Overlay::None);
    assert_eq!(app.active_conv().key, ConvKey::Direct(nick("bob")));
    assert_eq!(app.selected, Some(12));
    assert_eq!(
        other_frames(&cmds),
        [
            ClientFrame::History {
                target: Target::User(nick("bob")),
                before: Some(13),
                after: None,
                limit: Some(26)
            },
            ClientFrame::History {
                target: Target::User(nick("bob")),
                before: None,
                after: Some(12),
                limit: Some(25)
            }
        ]
    );
    assert!(app.jump_to.is_some());
    let messages = (1..=12)
        .map(|id| result(id, "bob", Target::User(nick("alice")), "old"))
        .collect();
    frame(
        &mut app,
        ServerFrame::History {
            target: Target::User(nick("bob")),
            messages,
            has_more: false,
        },
    );
    assert_eq!(app.jump_to, None);
    assert!(app.line(app.active, 12).is_some());
}

#[test]
fn a_search_goes_on_in_older_messages_past_the_last_result_or_with_search_alone() {
    let mut app = alice();
    enter_line(&mut app, "/search lunch");
    frame(
        &mut app,
        ServerFrame::SearchResults {
            text: "lunch".into(),
            results: vec![result(90, "bob", Target::Room(room("lobby")), "lunch now?")],
            before: None,
            older: Some(90),
            failed: None,
        },
    );
    // Down on the last result asks for older ones, once.
    let cmds = key(&mut app, KeyCode::Down);
    let older = ClientFrame::Search {
        text: "lunch".into(),
        limit: Some(50),
        before: Some(90),
    };
    assert_eq!(other_frames(&cmds), [older]);
    assert!(other_frames(&key(&mut app, KeyCode::Down)).is_empty());
    frame(
        &mut app,
        ServerFrame::SearchResults {
            text: "lunch".into(),
            results: vec![result(12, "bob", Target::Room(room("lobby")), "lunch?")],
            before: Some(90),
            older: None,
            failed: None,
        },
    );
    let view = app.search.as_ref().expect("open");
    let ids: Vec<u64> = view.results.iter().flatten().map(|m| m.id).collect();
    assert_eq!((ids, view.older), (vec![90, 12], None));
    key(&mut app, KeyCode::Down);
    assert_eq!(app.search.as_ref().map(|v| v.selected), Some(1));
    // Nothing older to search: `/search` alone says so.
    key(&mut app, KeyCode::Esc);
    let cmds = enter_line(&mut app, "/search");
    assert!(other_frames(&cmds).is_empty());
    assert!(
        app.active_conv()
            .entries
            .iter()
            .any(|e| format!("{:?}", e.kind).contains("no older messages to search")),
        "a notice says why nothing happened"
    );
}

#[test]
fn a_search_the_server_refuses_says_so_instead_of_searching_on() {
    let mut app = alice();
    enter_line(&mut app, "/search lunch");
    let why = "too many searches are waiting; try again in a moment";
    let refused = |before| ServerFrame::SearchResults {
        text: "lunch".into(),
        results: Vec::new(),
        before,
        older: None,
        failed: Some(why.into()),
    };
    // An answer to another search (an older page asked before this one) is not this one's.
    frame(&mut app, refused(Some(7)));
    assert_eq!(app.search.as_ref().and_then(|v| v.failed.clone()), None);
    frame(&mut app, refused(None));
    let view = app.search.as_ref().expect("the search stays open");
    assert_eq!(view.failed.as_deref(), Some(why));
    assert_eq!(app.overlay, Overlay::Search);
    // Results that come anyway (the search of another session, say) still show.
    frame(
        &mut app,
        ServerFrame::SearchResults {
            text: "lunch".into(),
            results: vec![result(5, "bob", Target::Room(room("lobby")), "lunch?")],
            before: None,
            older: Some(5),
            failed: None,
        },
    );
    let view = app.search.as_ref().expect("the search stays open");
    assert_eq!(view.results.as_ref().map(|r| r.len()), Some(1));
    assert_eq!(view.failed, None);
    // An older page refused leaves the results, and ↓ tries again.
    let cmds = key(&mut app, KeyCode::Down);
    assert_eq!(other_frames(&cmds).len(), 1);
    frame(&mut app, refused(Some(5)));
    let view = app.search.as_ref().expect("the search stays open");
    assert_eq!(
        (view.results.as_ref().map(|r| r.len()), view.searching_older),
        (Some(1), false)
    );
    assert_eq!(other_frames(&key(&mut app, KeyCode::Down)).len(), 1);
    // A connection lost meanwhile ends the wait too.
    net(
        &mut app,
        NetEvent::Disconnected {
            reason: "reset".into(),
            attempt: 1,
            retry_in_ms: 500,
        },
    );
    assert!(!app.search.as_ref().expect("open").searching_older);
}

#[test]
fn esc_closes_the_results_and_mentions_searches_for_the_own_name() {
    let mut app = alice();
    let cmds = enter_line(&mut app, "/mentions");
    assert_eq!(
        other_frames(&cmds),
        [ClientFrame::Search {
            text: "@alice".into(),
            limit: Some(50),
            before: None
        }]
    );
    key(&mut app, KeyCode::Esc);
    assert_eq!(app.overlay, Overlay::None);
}

#[test]
fn a_mention_or_direct_message_out_of_view_rings_the_bell_and_notifies_only_when_asked() {
    let mut app = alice();
    let rings = |cmds: &[Cmd]| cmds.contains(&Cmd::Bell);
    assert!(!rings(&frame(
        &mut app,
        room_message(1, "bob", "lobby", "@alice hi")
    )));
    assert!(rings(&frame(
        &mut app,
        direct_message(2, "bob", "alice", "psst")
    )));
    enter_line(&mut app, "/join rust");
    frame(
        &mut app,
        ServerFrame::Joined {
            room: room("rust"),
            nick: nick("alice"),
        },
    );
    assert_eq!(app.active_conv().key, ConvKey::Room(room("rust")));
    assert!(rings(&frame(
        &mut app,
        room_message(3, "bob", "lobby", "ask @Alice")
    )));
    assert!(!rings(&frame(
        &mut app,
        room_message(4, "bob", "lobby", "mail a@alice.org")
    )));
    let cmds = frame(&mut app, room_message(5, "bob", "lobby", "@alice?"));
    assert!(!cmds.iter().any(|c| matches!(c, Cmd::Notify { .. })));
    app.notify = true;
    let cmds = frame(&mut app, room_message(6, "bob", "lobby", "@alice!"));
    assert!(cmds.contains(&Cmd::Notify {
        title: "bob in #lobby".into(),
        body: "@alice!".into()
    }));
}

#[test]
fn the_terminal_title_carries_the_unread_total() {
    let mut app = new_app("alice");
    app.full_screen = true;
    let cmds = net(&mut app, client_tui::msg::NetEvent::Connected);
    assert!(cmds.contains(&Cmd::SetTitle("chat-tui · alice".into())));
    frame(&mut app, welcome("alice", vec![nick("alice"), nick("bob")]));
    let cmds = frame(&mut app, direct_message(2, "bob", "alice", "psst"));
    assert!(cmds.contains(&Cmd::SetTitle("(1) chat-tui · alice".into())));
    let cmds = frame(&mut app, direct_message(3, "bob", "alice", "psst"));
    assert!(cmds.contains(&Cmd::SetTitle("(2) chat-tui · alice".into())));
    let cmds = update(&mut app, Msg::Tick);
    assert!(!cmds.iter().any(|c| matches!(c, Cmd::SetTitle(_))));
}

#[test]
fn a_history_frame_brings_edits_and_deletions_of_messages_already_shown() {
    let mut app = alice();
    frame(&mut app, room_message(41, "bob", "lobby", "typo"));
    frame(&mut app, room_message(42, "bob", "lobby", "secret"));
    let mut fixed = result(41, "bob", Target::Room(room("lobby")), "fixed");
    fixed.edited = Some(T0 + 50_000);
    let mut gone = result(42, "bob", Target::Room(room("lobby")), "");
    gone.deleted = true;
    frame(
        &mut app,
        ServerFrame::History {
            target: Target::Room(room("lobby")),
            messages: vec![fixed, gone],
            has_more: false,
        },
    );
    let first = line(&app, 0, 41);
    assert!(first.edited && first.text == "fixed");
    assert!(line(&app, 0, 42).deleted);
}

#[test]
fn plain_lines_show_the_quote_and_reprint_edited_and_deleted_messages() {
    let mut app = online_app("alice", &["bob"]);
    let prints = |cmds: &[Cmd]| -> Vec<String> {
        cmds.iter()
            .filter_map(|c| match c {
                Cmd::Print(line) => Some(line.clone()),
                _ => None,
            })
            .collect()
    };
    frame(
        &mut app,
        room_message(41, "bob", "lobby", "who wants lunch?"),
    );
    let mut reply = result(42, "carol", Target::Room(room("lobby")), "me");
    reply.reply_to = Some(Quote {
        id: 41,
        from: nick("bob"),
        text: "who wants lunch?".into(),
    });
    let cmds = frame(&mut app, ServerFrame::Message(reply));
    assert_eq!(
        prints(&cmds),
        ["[01:00] #lobby <carol> (re bob: who wants lunch?) me"]
    );
    let cmds = frame(
        &mut app,
        ServerFrame::Edited {
            id: 41,
            target: Target::Room(room("lobby")),
            text: "who wants pizza?".into(),
            ts: T0 + 50_000,
        },
    );
    assert_eq!(
        prints(&cmds),
        ["[01:00] #lobby <bob> who wants pizza? (edited)"]
    );
    let cmds = frame(
        &mut app,
        ServerFrame::Deleted {
            id: 41,
            target: Target::Room(room("lobby")),
        },
    );
    assert_eq!(prints(&cmds), ["[01:00] #lobby <bob> (message deleted)"]);
}
