//! Stored messages: `resume` cursors at login, the newest messages when a conversation opens,
//! older ones when scrolled to the top, and `history` frames merged in id order without
//! duplicates (also when an ack was lost and history brought the message first).

use super::{insert_entry, print_line};
use crate::app::{App, ChatLine, ConvKey, Conversation, Delivery, Entry, EntryKind};
use crate::msg::Cmd;
use protocol::{ChatMessage, ClientFrame, Cursor, MsgId, Target};

/// The most messages asked for at once when a `history` answer says more are stored.
const PAGE: u32 = 200;
/// Messages fetched when a conversation opens, and per step when scrolling back.
const OLDER_PAGE: u32 = 50;

/// For a client that was logged in before: the last message id it has of each conversation.
/// A room without messages resumes from 0 when history is shown (it was fetched when the room
/// opened, so everything stored came later); in `--plain` mode it is left out, so a script
/// does not print the room's past (the room is joined again all the same).
pub(super) fn resume_cursors(app: &App) -> Vec<Cursor> {
    if app.sessions == 0 {
        return Vec::new();
    }
    app.convs
        .iter()
        .filter_map(|conv| {
            let after = match (&conv.key, newest_id(conv)) {
                (_, Some(after)) => after,
                (ConvKey::Room(_), None) if app.load_history => 0,
                _ => return None,
            };
            Some(Cursor {
                target: conv.key.target(),
                after,
            })
        })
        .collect()
}

fn ids(conv: &Conversation) -> impl Iterator<Item = MsgId> + '_ {
    conv.entries.iter().filter_map(|e| match &e.kind {
        EntryKind::Message(line) => line.id,
        EntryKind::Notice(_) => None,
    })
}

fn newest_id(conv: &Conversation) -> Option<MsgId> {
    ids(conv).max()
}

fn oldest_id(conv: &Conversation) -> Option<MsgId> {
    ids(conv).min()
}

/// Asks for the messages before the oldest one shown in conversation `index` (or the newest,
/// when it has none), unless asked already or there are none.
pub(super) fn request_older(app: &mut App, index: usize, cmds: &mut Vec<Cmd>) {
    let conv = &mut app.convs[index];
    if !app.load_history || conv.loading_older || conv.oldest_reached {
        return;
    }
    if app.conn != crate::app::ConnState::Online {
        return;
    }
    conv.loading_older = true;
    cmds.push(Cmd::Send(ClientFrame::History {
        target: conv.key.target(),
        before: oldest_id(conv),
        after: None,
        limit: Some(OLDER_PAGE),
    }));
}

/// Whether conversation `index` already holds message `id`.
fn holds(app: &App, index: usize, id: MsgId) -> bool {
    app.convs[index]
        .entries
        .iter()
        .rev()
        .any(|e| matches!(&e.kind, EntryKind::Message(l) if l.id == Some(id)))
}

/// The server stored the message sent as `client_id`. When a `history` frame brought the same
/// message first (its ack was lost in a disconnect), the pending copy is dropped. Returns the
/// conversation of the message.
pub(super) fn on_ack(app: &mut App, client_id: &str, id: MsgId, ts: i64) -> Option<usize> {
    app.outbox.retain(|o| o.client_id != client_id);
    for index in 0..app.convs.len() {
        let entries = &app.convs[index].entries;
        let Some(at) = entries.iter().rposition(
            |e| matches!(&e.kind, EntryKind::Message(l) if l.client_id.as_deref() == Some(client_id)),
        ) else {
            continue;
        };
        if holds(app, index, id) {
            app.convs[index].entries.remove(at);
            return Some(index);
        }
        if let EntryKind::Message(line) = &mut app.convs[index].entries[at].kind {
            line.id = Some(id);
            line.ts = Some(ts);
            line.delivery = Delivery::Sent;
        }
        return Some(index);
    }
    None
}

/// Where message `id` goes: after the last message with a smaller id, and never after an own
/// message still waiting for its ack.
fn position_for(conv: &Conversation, id: MsgId) -> usize {
    let after_smaller = conv
        .entries
        .iter()
        .rposition(|e| matches!(&e.kind, EntryKind::Message(l) if l.id.is_some_and(|x| x < id)))
        .map_or(0, |i| i + 1);
    let first_pending = conv
        .entries
        .iter()
        .position(|e| matches!(&e.kind, EntryKind::Message(l) if l.delivery == Delivery::Pending))
        .unwrap_or(conv.entries.len());
    after_smaller.min(first_pending)
}

/// Brings a shown message up to date with a stored copy (edited or deleted meanwhile).
fn refresh(app: &mut App, index: usize, m: &ChatMessage) {
    let Some(entry) = app.line_mut(index, m.id) else {
        return;
    };
    if let EntryKind::Message(line) = &mut entry.kind
        && (line.text != m.text || line.deleted != m.deleted)
    {
        line.text.clone_from(&m.text);
        line.edited = m.edited.is_some();
        line.deleted = m.deleted;
        entry.wrapped.clear();
    }
}

/// Stored messages of one conversation, oldest first. An answer to a request for older
/// messages goes on top; others (what a resumed login missed, direct messages that came while
/// offline) are new messages, counted unread, and the next page is asked for when there is more.
pub(super) fn on_history(
    app: &mut App,
    target: Target,
    messages: Vec<ChatMessage>,
    has_more: bool,
    cmds: &mut Vec<Cmd>,
) {
    let key = match &target {
        Target::Room(room) => ConvKey::Room(room.clone()),
        Target::User(nick) => ConvKey::Direct(nick.clone()),
    };
    let index = app.open_conv(key);
    let conv = &app.convs[index];
    let older = conv.loading_older
        && match (messages.last(), oldest_id(conv)) {
            (Some(last), Some(oldest)) => last.id < oldest,
            _ => true,
        };
    if older {
        let conv = &mut app.convs[index];
        conv.loading_older = false;
        conv.oldest_reached = !has_more;
    }
    let newest = messages.last().map(|m| m.id);
    for m in messages {
        if holds(app, index, m.id) {
            // Already shown: take any edit or deletion made since.
            refresh(app, index, &m);
            continue;
        }
        let own = app.nick.as_ref() == Some(&m.from);
        let id = m.id;
        let line = ChatLine::from_message(m, own);
        if !older {
            print_line(app, index, &line, cmds);
        }
        let at = position_for(&app.convs[index], id);
        insert_entry(app, index, at, Entry::message(line), !older, !older);
    }
    if let (false, true, Some(after)) = (older, has_more, newest) {
        cmds.push(Cmd::Send(ClientFrame::History {
            target,
            before: None,
            after: Some(after),
            limit: Some(PAGE),
        }));
    }
}
