//! Catching up after a reconnect: `resume` cursors at login, `history` frames merged in order
//! and without duplicates, and acks that find their message already delivered by history.

use super::receive;
use crate::app::{App, ChatLine, ConvKey, Delivery, EntryKind};
use crate::msg::Cmd;
use protocol::{ChatMessage, ClientFrame, Cursor, MsgId, Target};

/// The most messages asked for at once when a `history` answer says more are stored.
const PAGE: u32 = 200;

/// For a client that was logged in before: the last message id it has of each conversation
/// (0 for a room without messages, so the server rejoins it and sends what it has).
pub(super) fn resume_cursors(app: &App) -> Vec<Cursor> {
    if app.sessions == 0 {
        return Vec::new();
    }
    app.convs
        .iter()
        .filter_map(|conv| {
            let after = last_id(app, conv);
            match (&conv.key, after) {
                (ConvKey::Room(_), after) => Some(Cursor {
                    target: conv.key.target(),
                    after: after.unwrap_or(0),
                }),
                (ConvKey::Direct(_), Some(after)) => Some(Cursor {
                    target: conv.key.target(),
                    after,
                }),
                (ConvKey::Direct(_), None) => None,
            }
        })
        .collect()
}

fn last_id(_app: &App, conv: &crate::app::Conversation) -> Option<MsgId> {
    conv.entries
        .iter()
        .filter_map(|e| match &e.kind {
            EntryKind::Message(line) => line.id,
            EntryKind::Notice(_) => None,
        })
        .max()
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
/// message first (its ack was lost in a disconnect), the pending copy is dropped.
pub(super) fn on_ack(app: &mut App, client_id: &str, id: MsgId, ts: i64) {
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
            return;
        }
        if let EntryKind::Message(line) = &mut app.convs[index].entries[at].kind {
            line.id = Some(id);
            line.ts = Some(ts);
            line.delivery = Delivery::Sent;
        }
        return;
    }
}

/// Stored messages of one conversation, oldest first: each one not yet shown is added before
/// the own messages still waiting for their ack. Asks for the next page when there is more.
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
    let newest = messages.last().map(|m| m.id);
    for m in messages {
        if holds(app, index, m.id) {
            continue;
        }
        let line = ChatLine {
            own: app.nick.as_ref() == Some(&m.from),
            from: m.from,
            text: m.text,
            ts: Some(m.ts),
            id: Some(m.id),
            delivery: Delivery::Sent,
            client_id: None,
        };
        // Before the first own message still waiting for its ack, if any.
        let entries = &app.convs[index].entries;
        let at = entries
            .iter()
            .position(
                |e| matches!(&e.kind, EntryKind::Message(l) if l.delivery == Delivery::Pending),
            )
            .unwrap_or(entries.len());
        receive(app, index, line, cmds);
        let entry = app.convs[index].entries.pop().expect("receive added it");
        app.convs[index].entries.insert(at, entry);
    }
    if let (true, Some(after)) = (has_more, newest) {
        cmds.push(Cmd::Send(ClientFrame::History {
            target,
            before: None,
            after: Some(after),
            limit: Some(PAGE),
        }));
    }
}
