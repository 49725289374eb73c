//! Many users online: the client keeps the names the server listed plus its counts, applies
//! gathered presence and room changes, and says "and N more" where names are missing.

mod common;

use client_tui::app::{App, ConvKey};
use client_tui::msg::Msg;
use client_tui::update::update;
use client_tui::view;
use common::*;
use insta::assert_snapshot;
use protocol::{ClientFrame, Limits, Nick, RoomName, ServerFrame};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

/// alice, welcomed by a server with 5,000 online that listed only a few of them, in a lobby of
/// 4,999 of which the `users` frame listed the same few.
fn crowded() -> App {
    let mut app = new_app("alice");
    net(&mut app, client_tui::msg::NetEvent::Connected);
    let listed: Vec<Nick> = ["alice", "bob", "carol", "dave"].map(nick).to_vec();
    frame(
        &mut app,
        ServerFrame::Welcome {
            nick: nick("alice"),
            rooms: vec![RoomName::lobby()],
            users: listed.clone(),
            users_total: Some(5000),
            limits: Limits {
                max_text_bytes: 16_384,
            },
        },
    );
    frame(
        &mut app,
        ServerFrame::Users {
            room: Some(RoomName::lobby()),
            users: listed,
            total: Some(4999),
            has_more: true,
        },
    );
    app
}

fn draw(app: &mut App, width: u16, height: u16) -> Terminal<TestBackend> {
    update(app, Msg::Resized(width, height));
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("test terminal");
    terminal
        .draw(|frame| view::draw(app, frame))
        .expect("drawing never fails on a test backend");
    terminal
}

#[test]
fn the_counts_come_from_the_server_and_the_lists_from_its_names() {
    let app = crowded();
    assert_eq!((app.online.len(), app.online_total), (4, 5000));
    let lobby = app.active_conv();
    assert_eq!((lobby.members.len(), lobby.member_total), (4, 4999));
}

#[test]
fn gathered_presence_changes_update_the_list_the_count_and_open_chats() {
    let mut app = crowded();
    frame(&mut app, direct_message(1, "dave", "alice", "hi"));
    let dave = app
        .conv_index(&ConvKey::Direct(nick("dave")))
        .expect("chat with dave");
    frame(
        &mut app,
        ServerFrame::PresenceChanges {
            online: vec![nick("erin")],
            offline: vec![nick("bob"), nick("dave")],
            unlisted: 40,
            total: 4990,
        },
    );
    assert_eq!(app.online, ["alice", "carol", "erin"].map(nick));
    assert_eq!(app.online_total, 4990);
    assert_eq!(
        notices(&app, dave).last().map(String::as_str),
        Some("dave is offline")
    );
    // Listed again as offline (gone and back and gone within one interval): no second notice.
    let before = notices(&app, dave).len();
    frame(
        &mut app,
        ServerFrame::PresenceChanges {
            online: vec![],
            offline: vec![nick("dave")],
            unlisted: 0,
            total: 4990,
        },
    );
    assert_eq!(notices(&app, dave).len(), before);
}

#[test]
fn room_changes_update_the_members_without_a_notice_each() {
    let mut app = crowded();
    let before = notices(&app, 0).len();
    frame(
        &mut app,
        ServerFrame::RoomChanges {
            room: RoomName::lobby(),
            joined: vec![nick("erin")],
            left: vec![nick("carol")],
            unlisted: 0,
            total: 4999,
        },
    );
    let lobby = app.active_conv();
    assert_eq!(lobby.members, ["alice", "bob", "dave", "erin"].map(nick));
    assert_eq!(lobby.member_total, 4999);
    assert_eq!(notices(&app, 0).len(), before);
}

#[test]
fn who_with_a_prefix_searches_and_a_long_answer_ends_with_how_many_more() {
    let mut app = crowded();
    let cmds = enter_line(&mut app, "/who ca");
    assert_eq!(
        sent(&cmds),
        [ClientFrame::Who {
            room: Some(RoomName::lobby()),
            prefix: Some("ca".into()),
            after: None,
            limit: None,
        }]
    );
    frame(
        &mut app,
        ServerFrame::Users {
            room: Some(RoomName::lobby()),
            users: vec![nick("carol"), nick("carl")],
            total: Some(212),
            has_more: true,
        },
    );
    assert_eq!(
        notices(&app, 0).last().map(String::as_str),
        Some("in #lobby (212): carl, carol and 210 more")
    );
}

#[test]
fn the_online_list_says_how_many_more_there_are() {
    let mut app = crowded();
    key(&mut app, crossterm::event::KeyCode::F(2));
    assert_snapshot!(draw(&mut app, 80, 8).backend());
}
