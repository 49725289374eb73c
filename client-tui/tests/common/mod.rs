//! Helpers for driving the client through `update`, as the real event loop does.
#![allow(dead_code)]

use client_tui::app::App;
use client_tui::msg::{Cmd, Msg, NetEvent};
use client_tui::update::update;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use protocol::{ChatMessage, ClientFrame, Limits, Nick, RoomName, ServerFrame, Target};

/// 2025-11-25 01:00:00 UTC, so times in snapshots read 01:00.
pub const T0: i64 = 1_764_032_400_000;

pub fn nick(s: &str) -> Nick {
    Nick::parse(s).expect("a valid test nickname")
}

pub fn room(s: &str) -> RoomName {
    RoomName::parse(s).expect("a valid test room")
}

/// A client for `name`, before anything happened, with a fixed id prefix and UTC times.
pub fn new_app(name: &str) -> App {
    let mut app = App::new("ws://127.0.0.1:9527", Some(nick(name)), "c".into());
    app.size = (100, 30);
    app
}

/// A client logged in as `name` with `others` online, in the lobby.
pub fn online_app(name: &str, others: &[&str]) -> App {
    let mut app = new_app(name);
    net(&mut app, NetEvent::Connected);
    let mut users: Vec<Nick> = others.iter().map(|n| nick(n)).collect();
    users.push(nick(name));
    frame(&mut app, welcome(name, users));
    app
}

pub fn welcome(name: &str, users: Vec<Nick>) -> ServerFrame {
    ServerFrame::Welcome {
        nick: nick(name),
        rooms: vec![RoomName::lobby()],
        users_total: Some(users.len()),
        users,
        limits: Limits {
            max_text_bytes: 16_384,
        },
    }
}

pub fn net(app: &mut App, event: NetEvent) -> Vec<Cmd> {
    update(app, Msg::Net(event))
}

pub fn frame(app: &mut App, frame: ServerFrame) -> Vec<Cmd> {
    net(app, NetEvent::FrameReceived(frame))
}

pub fn disconnect(app: &mut App) -> Vec<Cmd> {
    net(
        app,
        NetEvent::Disconnected {
            reason: "connection reset".into(),
            attempt: 1,
            retry_in_ms: 250,
        },
    )
}

pub fn key(app: &mut App, code: KeyCode) -> Vec<Cmd> {
    key_mod(app, code, KeyModifiers::NONE)
}

pub fn key_mod(app: &mut App, code: KeyCode, modifiers: KeyModifiers) -> Vec<Cmd> {
    update(app, Msg::KeyPressed(KeyEvent::new(code, modifiers)))
}

/// Types `text` key by key.
pub fn type_text(app: &mut App, text: &str) {
    for c in text.chars() {
        let cmds = key(app, KeyCode::Char(c));
        // A full-screen client tells the conversation that the user is typing.
        let typing = |c: &Cmd| matches!(c, Cmd::Send(ClientFrame::Typing { .. }));
        assert!(
            cmds.iter().all(typing),
            "typing {c:?} did something: {cmds:?}"
        );
    }
}

/// Types `text` and presses Enter; returns what Enter did.
pub fn enter_line(app: &mut App, text: &str) -> Vec<Cmd> {
    type_text(app, text);
    key(app, KeyCode::Enter)
}

/// A message from `from` to a room.
pub fn room_message(id: u64, from: &str, room_name: &str, text: &str) -> ServerFrame {
    ServerFrame::Message(ChatMessage {
        id,
        ts: T0 + id as i64 * 1000,
        from: nick(from),
        target: Target::Room(room(room_name)),
        text: text.into(),
        reply_to: None,
        edited: None,
        deleted: false,
    })
}

/// A direct message from `from` to `to`.
pub fn direct_message(id: u64, from: &str, to: &str, text: &str) -> ServerFrame {
    ServerFrame::Message(ChatMessage {
        id,
        ts: T0 + id as i64 * 1000,
        from: nick(from),
        target: Target::User(nick(to)),
        text: text.into(),
        reply_to: None,
        edited: None,
        deleted: false,
    })
}

/// The frames among `cmds`.
pub fn sent(cmds: &[Cmd]) -> Vec<ClientFrame> {
    cmds.iter()
        .filter_map(|c| match c {
            Cmd::Send(f) => Some(f.clone()),
            _ => None,
        })
        .collect()
}

/// The `(client_id, text)` of every `send` among `cmds`.
pub fn sends(cmds: &[Cmd]) -> Vec<(String, String)> {
    sent(cmds)
        .into_iter()
        .filter_map(|f| match f {
            ClientFrame::Send {
                client_id, text, ..
            } => Some((client_id, text)),
            _ => None,
        })
        .collect()
}

/// The texts of the notices in conversation `index`.
pub fn notices(app: &App, index: usize) -> Vec<String> {
    app.convs[index]
        .entries
        .iter()
        .filter_map(|e| match &e.kind {
            client_tui::app::EntryKind::Notice(t) => Some(t.clone()),
            _ => None,
        })
        .collect()
}
