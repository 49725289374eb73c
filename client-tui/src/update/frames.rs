//! Connection events and server frames.

use super::{conv_of, features, history, notice, own_line_mut, presence, receive, send_frame};
use crate::app::{App, ChatLine, ConnState, ConvKey, Delivery, LoginField, Screen};
use crate::msg::{Cmd, NetEvent};
use protocol::{ClientFrame, ErrorCode, Nick, RoomName, ServerFrame};

pub(super) fn on_net(app: &mut App, event: NetEvent, cmds: &mut Vec<Cmd>) {
    match event {
        NetEvent::Connecting { attempt } => {
            if !matches!(app.conn, ConnState::Reconnecting { .. }) || attempt == 0 {
                app.conn = ConnState::Connecting { attempt };
            }
        }
        NetEvent::Connected => {
            app.awaiting_replies = 0;
            app.asked_who = 0;
            match app.nick.clone() {
                Some(nick) => log_in(app, &nick, cmds),
                None => app.conn = ConnState::Connected,
            }
        }
        NetEvent::Disconnected {
            reason,
            attempt,
            retry_in_ms,
        } => {
            if app.is_online() {
                let text = format!("connection lost ({reason}); reconnecting");
                notice(app, app.active, &text, cmds);
            }
            app.awaiting_replies = 0;
            app.asked_who = 0;
            // A search under way gets no answer on this connection.
            if let Some(view) = app.search.as_mut() {
                if view.results.is_none() && view.failed.is_none() {
                    view.failed = Some("the connection was lost".into());
                }
                view.searching_older = false;
            }
            app.conn = ConnState::Reconnecting {
                attempt,
                retry_in_ms,
                reason,
            };
        }
        NetEvent::FrameReceived(frame) => on_frame(app, frame, cmds),
    }
}

/// How often, and how many times, a reconnect whose nickname is still online tries again:
/// long enough for a dead cluster node to expire (10 s by default) and a presence grace.
const RELOGIN_EVERY_SECS: u32 = 2;
const RELOGIN_TRIES: u32 = 15;

/// Counts down a login retry (once a second); sends the login when it is due.
pub(super) fn relogin_tick(app: &mut App, cmds: &mut Vec<Cmd>) {
    let Some((secs, tries)) = app.relogin else {
        return;
    };
    if app.conn != ConnState::LoggingIn {
        app.relogin = None;
        return;
    }
    if secs == 0 {
        // Sent; waiting for the answer.
    } else if secs > 1 {
        app.relogin = Some((secs - 1, tries));
    } else if let Some(nick) = app.nick.clone() {
        app.relogin = Some((0, tries));
        log_in(app, &nick, cmds);
    }
}

/// Sends `login` for `nick`.
pub(super) fn log_in(app: &mut App, nick: &Nick, cmds: &mut Vec<Cmd>) {
    app.conn = ConnState::LoggingIn;
    cmds.push(Cmd::Send(ClientFrame::Login {
        nick: nick.to_string(),
        resume: history::resume_cursors(app),
        password: app.password.clone(),
    }));
}

fn on_frame(app: &mut App, frame: ServerFrame, cmds: &mut Vec<Cmd>) {
    match frame {
        ServerFrame::Welcome {
            nick,
            rooms,
            users,
            users_total,
            limits,
        } => {
            let total = users_total.unwrap_or(users.len());
            welcome(app, nick, rooms, users, limits, cmds);
            app.online_total = total.max(app.online.len());
        }
        ServerFrame::Message(m) => {
            let key = conv_of(app, &m.from, &m.target);
            let new = app.conv_index(&key).is_none();
            let index = app.open_conv(key);
            let own = app.nick.as_ref() == Some(&m.from);
            let line = ChatLine::from_message(m, own);
            features::alert(app, index, &line, cmds);
            receive(app, index, line, cmds);
            if new {
                // What came before this first message of a new conversation.
                history::request_older(app, index, cmds);
            }
        }
        ServerFrame::Ack {
            client_id,
            id,
            ts,
            offline,
        } => {
            let index = history::on_ack(app, &client_id, id, ts);
            if let (true, Some(index)) = (offline, index) {
                let who = app.convs[index].key.to_string();
                let text = format!(
                    "{} is offline and gets it at the next login",
                    who.trim_start_matches('@')
                );
                notice(app, index, &text, cmds);
            }
        }
        ServerFrame::History {
            target,
            messages,
            has_more,
        } => history::on_history(app, target, messages, has_more, cmds),
        ServerFrame::Presence { nick, online } => {
            // An older server's frame, one per change.
            let (online, offline) = if online {
                (vec![nick], vec![])
            } else {
                (vec![], vec![nick])
            };
            presence::changes(app, online, offline, None, cmds);
        }
        ServerFrame::PresenceChanges {
            online,
            offline,
            total,
            ..
        } => presence::changes(app, online, offline, Some(total), cmds),
        ServerFrame::Users {
            room, users, total, ..
        } => presence::users(app, room, users, total, cmds),
        ServerFrame::Joined { room, nick } => presence::joined(app, room, nick, cmds),
        ServerFrame::Left { room, nick } => presence::left(app, room, nick, cmds),
        ServerFrame::RoomChanges {
            room,
            joined,
            left,
            total,
            ..
        } => presence::room_changes(app, &room, joined, left, total),
        ServerFrame::Rooms { rooms } => {
            app.awaiting_replies = app.awaiting_replies.saturating_sub(1);
            let list = rooms
                .iter()
                .map(|r| {
                    let mark = if r.joined { ", joined" } else { "" };
                    format!("#{} ({}{mark})", r.name, r.members)
                })
                .collect::<Vec<_>>()
                .join(", ");
            notice(app, app.active, &format!("rooms: {list}"), cmds);
        }
        ServerFrame::Error {
            code,
            message,
            client_id,
        } => error(app, code, message, client_id, cmds),
        ServerFrame::Registered { nick } => {
            app.awaiting_replies = app.awaiting_replies.saturating_sub(1);
            app.password = app.pending_password.take();
            let text = format!("{nick} is registered: logging in under it needs the password");
            notice(app, app.active, &text, cmds);
        }
        ServerFrame::Edited {
            id, target, text, ..
        } => features::on_edited(app, id, &target, Some(text), cmds),
        ServerFrame::Deleted { id, target } => features::on_edited(app, id, &target, None, cmds),
        ServerFrame::Unread {
            target,
            count,
            last_read,
        } => features::on_unread(app, &target, count, last_read, cmds),
        ServerFrame::Typing {
            target,
            nick,
            for_ms,
        } => features::on_typing(app, &target, nick, for_ms),
        ServerFrame::SearchResults {
            text,
            results,
            before,
            older,
            failed,
        } => features::on_search_results(app, (text, before), (results, older, failed), cmds),
        // Not shown by this client yet.
        ServerFrame::Whois { .. } | ServerFrame::Unknown => {}
    }
}

fn welcome(
    app: &mut App,
    nick: Nick,
    rooms: Vec<RoomName>,
    mut users: Vec<Nick>,
    limits: protocol::Limits,
    cmds: &mut Vec<Cmd>,
) {
    app.nick = Some(nick.clone());
    app.conn = ConnState::Online;
    app.screen = Screen::Chat;
    app.limits = Some(limits);
    users.sort();
    app.online = users;
    app.sessions += 1;
    app.relogin = None;
    for room in &rooms {
        let index = app.open_conv(ConvKey::Room(room.clone()));
        if app.sessions == 1 {
            history::request_older(app, index, cmds);
        }
    }
    // Rooms we were in before a reconnect: join them again, before resending their messages.
    let rejoin: Vec<RoomName> = app
        .convs
        .iter()
        .filter_map(|c| match &c.key {
            ConvKey::Room(room) if !rooms.contains(room) => Some(room.clone()),
            _ => None,
        })
        .collect();
    // Not counted as awaited: a server that rejoined the room from `resume` does not answer.
    for room in rejoin {
        cmds.push(Cmd::Send(ClientFrame::Join { room }));
    }
    for outgoing in &app.outbox {
        cmds.push(Cmd::Send(send_frame(outgoing)));
    }
    let text = if app.sessions > 1 {
        format!("reconnected as {nick}")
    } else {
        format!("logged in as {nick}")
    };
    notice(app, app.active, &text, cmds);
}

fn error(
    app: &mut App,
    code: ErrorCode,
    message: String,
    client_id: Option<String>,
    cmds: &mut Vec<Cmd>,
) {
    if let Some(client_id) = client_id {
        app.outbox.retain(|o| o.client_id != client_id);
        if let Some(line) = own_line_mut(app, &client_id) {
            line.delivery = Delivery::Failed(message.clone());
        }
        let index = app
            .convs
            .iter()
            .position(|c| {
                c.entries.iter().rev().any(|e| {
                    matches!(&e.kind, crate::app::EntryKind::Message(l)
                        if l.client_id.as_deref() == Some(client_id.as_str()))
                })
            })
            .unwrap_or(app.active);
        return notice(app, index, &format!("not sent: {message}"), cmds);
    }
    if code == ErrorCode::NickTaken && app.conn == ConnState::LoggingIn && app.sessions > 0 {
        // Our own name, after a reconnect: most likely our previous connection, which the
        // server has not seen close yet, or a server of a cluster that died and whose users
        // are freed when it expires. Try again for a while before asking for another name.
        let tries = app.relogin.map_or(0, |(_, tries)| tries);
        if tries < RELOGIN_TRIES {
            app.relogin = Some((RELOGIN_EVERY_SECS, tries + 1));
            let text = format!("{message}; trying again in {RELOGIN_EVERY_SECS} s");
            return notice(app, app.active, &text, cmds);
        }
    }
    app.relogin = None;
    let refused_nick = matches!(
        code,
        ErrorCode::InvalidNick | ErrorCode::ReservedNick | ErrorCode::NickTaken
    );
    let refused_password = matches!(code, ErrorCode::PasswordRequired | ErrorCode::WrongPassword);
    if (refused_nick || refused_password) && app.conn == ConnState::LoggingIn {
        if let Some(nick) = app.nick.take() {
            app.login_input.set(nick.as_str());
        }
        app.password = None;
        app.login_field = if refused_password {
            app.login_password.set("");
            LoginField::Password
        } else {
            LoginField::Nick
        };
        app.conn = ConnState::Connected;
        app.screen = Screen::Login {
            error: Some(message.clone()),
        };
        cmds.push(Cmd::Print(format!(
            "! {}",
            crate::sanitize::sanitize_line(&message)
        )));
        return;
    }
    app.awaiting_replies = app.awaiting_replies.saturating_sub(1);
    if matches!(code, ErrorCode::AlreadyRegistered | ErrorCode::WeakPassword) {
        app.pending_password = None;
    }
    if matches!(code, ErrorCode::InvalidRoom | ErrorCode::NotInRoom) {
        app.switch_to_room = None;
    }
    notice(app, app.active, &format!("error: {message}"), cmds);
}
