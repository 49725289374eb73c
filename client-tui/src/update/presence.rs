//! Who is online and who is in each room. With many users the server lists only the first
//! names and counts the rest, and tells comings and goings in batches (`presence_changes`,
//! and `room_changes` for large rooms): the lists here hold the names known, the totals the
//! server's counts.

use super::{close_conv, history, notice};
use crate::app::{App, ConvKey};
use crate::msg::Cmd;
use protocol::{Nick, RoomName};

/// Names shown in a `/who` answer before "and N more".
const WHO_SHOWN: usize = 30;

/// A `users` frame: the answer to `/who` (shown as a notice), or the members of a room just
/// joined.
pub(super) fn users(
    app: &mut App,
    room: Option<RoomName>,
    mut users: Vec<Nick>,
    total: Option<usize>,
    cmds: &mut Vec<Cmd>,
) {
    users.sort();
    let total = total.unwrap_or(users.len()).max(users.len());
    let shown = app.asked_who > 0;
    if shown {
        app.asked_who -= 1;
        app.awaiting_replies = app.awaiting_replies.saturating_sub(1);
        let place = match &room {
            Some(room) => format!("in #{room}"),
            None => "online".to_owned(),
        };
        let text = format!("{place} ({total}): {}", name_list(&users, total));
        notice(app, app.active, &text, cmds);
    }
    match room {
        Some(room) => {
            if let Some(i) = app.conv_index(&ConvKey::Room(room)) {
                app.convs[i].members = users;
                app.convs[i].member_total = total;
            }
        }
        None => {
            app.online = users;
            app.online_total = total;
        }
    }
}

/// `a, b, c`, or `a, b, c and 97 more` when `total` is more than the names shown.
pub fn name_list(users: &[Nick], total: usize) -> String {
    let shown = &users[..users.len().min(WHO_SHOWN)];
    let list = shown
        .iter()
        .map(Nick::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    match total.saturating_sub(shown.len()) {
        0 => list,
        more if list.is_empty() => format!("{more} not listed"),
        more => format!("{list} and {more} more"),
    }
}

/// Users came online or went offline; `total` is the server's count of everyone online
/// (absent in the older single `presence` frame).
pub(super) fn changes(
    app: &mut App,
    online: Vec<Nick>,
    offline: Vec<Nick>,
    total: Option<usize>,
    cmds: &mut Vec<Cmd>,
) {
    for (nicks, now_online) in [(online, true), (offline, false)] {
        for nick in nicks {
            let known = app.online.binary_search(&nick);
            let changed = match (now_online, known) {
                (true, Err(at)) => {
                    app.online.insert(at, nick.clone());
                    true
                }
                (false, Ok(at)) => {
                    app.online.remove(at);
                    true
                }
                _ => false,
            };
            // A name listed again in its state (a change and its undoing gathered together) is
            // no news.
            if !changed {
                continue;
            }
            if let Some(i) = app.conv_index(&ConvKey::Direct(nick.clone())) {
                let state = if now_online { "online" } else { "offline" };
                notice(app, i, &format!("{nick} is {state}"), cmds);
            }
        }
    }
    // Without a count (an older server), the list is complete.
    app.online_total = total.unwrap_or(0).max(app.online.len());
}

/// Joins and leaves of a large room, gathered by the server: the member list and count change
/// without a notice for each (in a room of thousands they would drown the conversation).
pub(super) fn room_changes(
    app: &mut App,
    room: &RoomName,
    joined: Vec<Nick>,
    left: Vec<Nick>,
    total: usize,
) {
    let Some(index) = app.conv_index(&ConvKey::Room(room.clone())) else {
        return;
    };
    let members = &mut app.convs[index].members;
    for nick in joined {
        if let Err(at) = members.binary_search(&nick) {
            members.insert(at, nick);
        }
    }
    members.retain(|m| !left.contains(m));
    app.convs[index].member_total = total.max(app.convs[index].members.len());
}

/// `nick` entered `room` (told one by one in small rooms, and to the one who joined).
pub(super) fn joined(app: &mut App, room: RoomName, nick: Nick, cmds: &mut Vec<Cmd>) {
    let key = ConvKey::Room(room.clone());
    if app.nick.as_ref() == Some(&nick) {
        app.awaiting_replies = app.awaiting_replies.saturating_sub(1);
        let new = app.conv_index(&key).is_none();
        let index = app.open_conv(key);
        if new {
            history::request_older(app, index, cmds);
        }
        if app.switch_to_room.as_ref() == Some(&room) {
            app.switch_to_room = None;
            app.switch_to(index);
        }
        add_member(app, index, nick);
        return notice(app, index, &format!("you joined #{room}"), cmds);
    }
    if let Some(index) = app.conv_index(&key) {
        let text = format!("{nick} joined");
        add_member(app, index, nick);
        notice(app, index, &text, cmds);
    }
}

fn add_member(app: &mut App, index: usize, nick: Nick) {
    let conv = &mut app.convs[index];
    if let Err(at) = conv.members.binary_search(&nick) {
        conv.members.insert(at, nick);
        conv.member_total += 1;
    }
    conv.member_total = conv.member_total.max(conv.members.len());
}

/// `nick` left `room` (told one by one in small rooms, and to the one who left).
pub(super) fn left(app: &mut App, room: RoomName, nick: Nick, cmds: &mut Vec<Cmd>) {
    let key = ConvKey::Room(room.clone());
    let Some(index) = app.conv_index(&key) else {
        return;
    };
    if app.nick.as_ref() == Some(&nick) {
        let Some(asked) = app.parting.iter().position(|r| r == &room) else {
            return notice(app, index, &format!("you were taken out of #{room}"), cmds);
        };
        app.parting.remove(asked);
        app.awaiting_replies = app.awaiting_replies.saturating_sub(1);
        close_conv(app, index);
        return notice(app, app.active, &format!("you left #{room}"), cmds);
    }
    let conv = &mut app.convs[index];
    if let Ok(at) = conv.members.binary_search(&nick) {
        conv.members.remove(at);
        conv.member_total = conv.member_total.saturating_sub(1);
    }
    notice(app, index, &format!("{nick} left"), cmds);
}
