//! `update`: a [`Msg`] changes the [`App`] and yields [`Cmd`]s. No I/O happens here, so every
//! behaviour (commands, completion, unread counts, the offline queue) is tested by calling it.
//!
//! - `keys`: keys, paste and mouse.
//! - `frames`: connection events and server frames.
//! - `history`: resuming after a reconnect and merging `history` frames.
//! - `features`: replies, edits and deletions, read markers, typing, search, mentions.
//! - `presence`: who is online and who is in each room: lists, counts, comings and goings.

mod features;
mod frames;
mod history;
mod keys;
mod presence;

use crate::app::{
    App, ChatLine, ConnState, ConvKey, Delivery, Entry, EntryKind, Outgoing, Overlay,
};
use crate::commands::{COMMANDS, Command, parse_command};
use crate::msg::{Cmd, Msg};
use crate::sanitize::{sanitize, sanitize_line};
use crate::view;
use protocol::{ClientFrame, Nick, Target};

/// Applies `msg` to `app` and returns what to do.
pub fn update(app: &mut App, msg: Msg) -> Vec<Cmd> {
    let mut cmds = Vec::new();
    match msg {
        Msg::KeyPressed(key) => keys::on_key(app, key, &mut cmds),
        Msg::Pasted(text) => keys::on_paste(app, &text),
        Msg::Mouse(mouse) => keys::on_mouse(app, mouse, &mut cmds),
        Msg::Resized(w, h) => app.size = (w, h),
        Msg::Net(event) => frames::on_net(app, event, &mut cmds),
        Msg::LineEntered(line) => submit(app, &line, &mut cmds),
        Msg::InputEnded => app.closing = true,
        Msg::Tick => {
            // The countdown in the status bar; the network task keeps the real time.
            if let ConnState::Reconnecting { retry_in_ms, .. } = &mut app.conn {
                *retry_in_ms = retry_in_ms.saturating_sub(1000);
            }
            features::on_tick(app);
            frames::relogin_tick(app, &mut cmds);
        }
    }
    features::after_update(app, &mut cmds);
    if app.closing
        && app.outbox.is_empty()
        && app.awaiting_replies == 0
        && !cmds.contains(&Cmd::Quit)
    {
        cmds.push(Cmd::Quit);
    }
    cmds
}

/// Handles a submitted text: a command, or a message to the conversation shown.
fn submit(app: &mut App, text: &str, cmds: &mut Vec<Cmd>) {
    let command = match parse_command(text) {
        Ok(command) => command,
        Err(problem) => return notice(app, app.active, &problem, cmds),
    };
    match command {
        Command::Say(text) => {
            if text.trim().is_empty() {
                return;
            }
            features::say(app, text, cmds);
        }
        Command::Reply(text) => features::reply(app, text, cmds),
        Command::Edit(text) => features::edit(app, text, cmds),
        Command::Delete => features::delete(app, cmds),
        Command::Search(text) => features::search(app, text, cmds),
        Command::SearchOlder => features::search_older(app, cmds),
        Command::Mentions => {
            let text = format!("@{}", app.nick_str());
            features::search(app, text, cmds);
        }
        Command::Msg { nick, text } => send_text(app, ConvKey::Direct(nick), text, cmds),
        Command::Query { nick, text } => {
            let key = ConvKey::Direct(nick.clone());
            let new = app.conv_index(&key).is_none();
            let index = app.open_conv(key);
            app.switch_to(index);
            if new {
                history::request_older(app, index, cmds);
            }
            if let Some(text) = text {
                send_text(app, ConvKey::Direct(nick), text, cmds);
            }
        }
        Command::Join(room) => {
            if let Some(index) = app.conv_index(&ConvKey::Room(room.clone())) {
                return app.switch_to(index);
            }
            if !app.is_online() {
                return notice(
                    app,
                    app.active,
                    "not connected: join once back online",
                    cmds,
                );
            }
            app.switch_to_room = Some(room.clone());
            request(app, ClientFrame::Join { room }, cmds);
        }
        Command::Part(room) => part(app, room, cmds),
        Command::Who(prefix) => {
            let room = match &app.active_conv().key {
                ConvKey::Room(room) => Some(room.clone()),
                ConvKey::Direct(_) => None,
            };
            if app.is_online() {
                app.asked_who += 1;
            }
            let who = ClientFrame::Who {
                room,
                prefix,
                after: None,
                limit: None,
            };
            request(app, who, cmds);
        }
        Command::Rooms => request(app, ClientFrame::Rooms, cmds),
        Command::Users => app.show_users = !app.show_users,
        Command::Register(password) => {
            if app.is_online() {
                app.pending_password = Some(password.clone());
            }
            request(app, ClientFrame::Register { password }, cmds);
        }
        Command::Help => {
            app.overlay = Overlay::Help;
            for (name, args, what) in COMMANDS {
                cmds.push(Cmd::Print(format!("{name} {args} - {what}")));
            }
        }
        Command::Quit => cmds.push(Cmd::Quit),
    }
}

/// Leaves a room (the one shown when `room` is `None`) or closes the direct chat shown.
fn part(app: &mut App, room: Option<protocol::RoomName>, cmds: &mut Vec<Cmd>) {
    let room = match (room, &app.active_conv().key) {
        (Some(room), _) => room,
        (None, ConvKey::Room(room)) => room.clone(),
        (None, ConvKey::Direct(_)) => {
            close_conv(app, app.active);
            return;
        }
    };
    if !app.is_online() {
        return notice(
            app,
            app.active,
            "not connected: leave once back online",
            cmds,
        );
    }
    if !app.parting.contains(&room) {
        app.parting.push(room.clone());
    }
    request(app, ClientFrame::Leave { room }, cmds);
}

/// Sends a request the server answers (so `--plain` waits for the answer before quitting).
fn request(app: &mut App, frame: ClientFrame, cmds: &mut Vec<Cmd>) {
    if !app.is_online() {
        return notice(app, app.active, "not connected", cmds);
    }
    app.awaiting_replies += 1;
    cmds.push(Cmd::Send(frame));
}

/// Removes conversation `index`, keeping at least one and showing a neighbour.
pub(crate) fn close_conv(app: &mut App, index: usize) {
    if index >= app.convs.len() {
        return;
    }
    app.convs.remove(index);
    if app.convs.is_empty() {
        app.convs.push(crate::app::Conversation::new(ConvKey::Room(
            protocol::RoomName::lobby(),
        )));
    }
    if app.active > index || app.active >= app.convs.len() {
        app.active = app.active.saturating_sub(1);
    }
    let active = app.active;
    app.switch_to(active);
}

/// Adds an own message to conversation `key` and sends it now, or when back online.
fn send_text(app: &mut App, key: ConvKey, text: String, cmds: &mut Vec<Cmd>) {
    send_reply(app, key, text, None, cmds);
}

/// Like [`send_text`], answering `reply_to` when given.
pub(crate) fn send_reply(
    app: &mut App,
    key: ConvKey,
    text: String,
    reply_to: Option<protocol::Quote>,
    cmds: &mut Vec<Cmd>,
) {
    let index = app.open_conv(key.clone());
    if let Some(limits) = &app.limits
        && text.len() > limits.max_text_bytes
    {
        let problem = format!(
            "message not sent: {} bytes, the server takes at most {}",
            text.len(),
            limits.max_text_bytes
        );
        return notice(app, index, &problem, cmds);
    }
    let client_id = app.next_client_id();
    let from = app
        .nick
        .clone()
        .unwrap_or_else(|| Nick::parse("me").expect("a valid nickname"));
    let outgoing = Outgoing {
        client_id: client_id.clone(),
        target: key.target(),
        text: text.clone(),
        reply_to: reply_to.as_ref().map(|q| q.id),
    };
    if app.is_online() {
        cmds.push(Cmd::Send(send_frame(&outgoing)));
    }
    app.outbox.push(outgoing);
    let line = ChatLine {
        from,
        own: true,
        text,
        ts: None,
        id: None,
        delivery: Delivery::Pending,
        client_id: Some(client_id),
        reply_to,
        edited: false,
        deleted: false,
    };
    let conv = &mut app.convs[index];
    conv.entries.push(Entry::message(line));
    // Sending is a sign the user wants to see the end of the conversation.
    conv.scroll = 0;
    conv.new_below = 0;
}

/// The `send` frame for a queued message.
pub(crate) fn send_frame(outgoing: &Outgoing) -> ClientFrame {
    ClientFrame::Send {
        client_id: outgoing.client_id.clone(),
        target: outgoing.target.clone(),
        text: outgoing.text.clone(),
        reply_to: outgoing.reply_to,
    }
}

/// Adds a notice to conversation `index` (and prints it in `--plain` mode).
pub(crate) fn notice(app: &mut App, index: usize, text: &str, cmds: &mut Vec<Cmd>) {
    let index = index.min(app.convs.len() - 1);
    cmds.push(Cmd::Print(format!(
        "[{}] * {}",
        sanitize_line(&app.convs[index].key.to_string()),
        sanitize_line(text)
    )));
    push_entry(app, index, Entry::notice(text), false);
}

/// Adds a message from the server to conversation `index`.
pub(crate) fn receive(app: &mut App, index: usize, line: ChatLine, cmds: &mut Vec<Cmd>) {
    print_line(app, index, &line, cmds);
    push_entry(app, index, Entry::message(line), true);
}

/// The `--plain` line of a message.
pub(crate) fn print_line(app: &App, index: usize, line: &ChatLine, cmds: &mut Vec<Cmd>) {
    let time = line
        .ts
        .map(|ts| view::clock(ts, app.utc_offset))
        .unwrap_or_default();
    let mut text = if line.deleted {
        format!("({})", view::bubbles::DELETED)
    } else {
        sanitize(&line.text, true).into_owned()
    };
    if text.contains('\n') {
        text = text.replace('\n', "\n    ");
    }
    if line.edited && !line.deleted {
        text.push_str(" (edited)");
    }
    let quote = line.reply_to.as_ref().map_or_else(String::new, |q| {
        let quoted: String = sanitize_line(&q.text).chars().take(40).collect();
        format!("(re {}: {quoted}) ", q.from)
    });
    cmds.push(Cmd::Print(format!(
        "[{time}] {} <{}> {quote}{text}",
        app.convs[index].key, line.from
    )));
}

/// Appends an entry; a message (`counts`) is unread when not shown; a scrolled-up view stays.
fn push_entry(app: &mut App, index: usize, entry: Entry, counts: bool) {
    let at = app.convs[index].entries.len();
    insert_entry(app, index, at, entry, counts, true);
}

/// Inserts an entry at `at`. A new message (`counts`) is unread when its conversation is not
/// shown, and one below a scrolled-up view (`below`) moves the scroll so the view stays still.
pub(crate) fn insert_entry(
    app: &mut App,
    index: usize,
    at: usize,
    entry: Entry,
    counts: bool,
    below: bool,
) {
    let width = view::message_area(app).width;
    let shown = index == app.active;
    let conv = &mut app.convs[index];
    conv.entries.insert(at, entry);
    if counts && !shown {
        conv.unread += 1;
    }
    if conv.scroll > 0 && below {
        conv.scroll += view::bubbles::entry_height(conv, at, width);
        if counts {
            conv.new_below += 1;
        }
    }
}

/// Finds the own message sent as `client_id`, newest first.
pub(crate) fn own_line_mut<'a>(app: &'a mut App, client_id: &str) -> Option<&'a mut ChatLine> {
    app.convs
        .iter_mut()
        .flat_map(|c| c.entries.iter_mut().rev())
        .find_map(|e| match &mut e.kind {
            EntryKind::Message(line) if line.client_id.as_deref() == Some(client_id) => Some(line),
            _ => None,
        })
}

/// The conversation a message belongs to, from this user's point of view.
pub(crate) fn conv_of(app: &App, from: &Nick, target: &Target) -> ConvKey {
    match target {
        Target::Room(room) => ConvKey::Room(room.clone()),
        Target::User(to) if app.nick.as_ref() == Some(from) => ConvKey::Direct(to.clone()),
        Target::User(_) => ConvKey::Direct(from.clone()),
    }
}
