//! Replies, edits and deletions, the message selection, server-side unread counts and read
//! markers, typing notices, search and mentions, the bell and the terminal title.

use super::{conv_of, notice, send_reply};
use crate::app::{
    App, ChatLine, Compose, ConnState, ConvKey, EntryKind, Overlay, Screen, SearchView,
};
use crate::msg::Cmd;
use crate::view;
use protocol::{ChatMessage, ClientFrame, MsgId, Nick, Quote, Target};

/// Send `typing` at most once per this many ticks (seconds) per conversation; 4 ticks are
/// always at least 3 s apart.
const TYPING_EVERY_TICKS: u64 = 4;
/// Results asked for by `/search` and `/mentions`.
const SEARCH_LIMIT: u32 = 50;
/// Messages fetched on each side of a search result that is not loaded.
const AROUND: u32 = 25;
/// The longest quote kept when quoting locally (the server sends at most 100 characters).
const QUOTE_CHARS: usize = 100;

/// The conversation of a frame about a conversation (`unread`, `edited`, …): a room, or the
/// direct chat with the user named.
fn conv_key(target: &Target) -> ConvKey {
    match target {
        Target::Room(room) => ConvKey::Room(room.clone()),
        Target::User(nick) => ConvKey::Direct(nick.clone()),
    }
}

/// A live message from someone else arrived in conversation `index`: it ends their typing
/// notice, and a mention or direct message out of view rings the bell (and notifies, if asked).
pub(super) fn alert(app: &mut App, index: usize, line: &ChatLine, cmds: &mut Vec<Cmd>) {
    app.convs[index].typing.retain(|(n, _)| n != &line.from);
    if line.own || !app.full_screen {
        return;
    }
    let direct = matches!(app.convs[index].key, ConvKey::Direct(_));
    let in_view = index == app.active && app.convs[index].scroll == 0;
    if in_view || !(direct || line.mentions(app.nick_str())) {
        return;
    }
    cmds.push(Cmd::Bell);
    if app.notify {
        let title = format!("{} in {}", line.from, app.convs[index].key);
        cmds.push(Cmd::Notify {
            title,
            body: line.text.clone(),
        });
    }
}

/// `edited` (with the new text) or `deleted` (`None`): changes the message wherever it is
/// loaded, and the quotes of the replies to it.
pub(super) fn on_edited(
    app: &mut App,
    id: MsgId,
    target: &Target,
    text: Option<String>,
    cmds: &mut Vec<Cmd>,
) {
    // In a direct chat `to` may name this user, so the message is looked for everywhere.
    let _ = target;
    apply_edit(app, id, text.as_deref());
    // `--plain` prints the changed message again, marked.
    let found = (0..app.convs.len()).find_map(|i| Some((i, app.line(i, id)?.clone())));
    if let Some((index, line)) = found {
        super::print_line(app, index, &line, cmds);
    }
}

/// Changes message `id` (a new text, or deleted when `None`) wherever it is loaded, and the
/// quotes of the replies to it.
fn apply_edit(app: &mut App, id: MsgId, text: Option<&str>) {
    let text = text.map(str::to_owned);
    for conv in &mut app.convs {
        for entry in &mut conv.entries {
            let EntryKind::Message(line) = &mut entry.kind else {
                continue;
            };
            if line.id == Some(id) {
                match &text {
                    Some(text) => {
                        line.text = text.clone();
                        line.edited = true;
                    }
                    None => {
                        line.text.clear();
                        line.deleted = true;
                    }
                }
                entry.wrapped.clear();
            } else if let Some(quote) = line.reply_to.as_mut().filter(|q| q.id == id) {
                quote.text = text
                    .as_deref()
                    .map(|t| t.chars().take(QUOTE_CHARS).collect())
                    .unwrap_or_default();
                entry.wrapped.clear();
            }
        }
    }
    if text.is_none() {
        if app.selected == Some(id) {
            app.selected = None;
        }
        if matches!(&app.compose, Compose::Edit(e) if *e == id) {
            app.compose = Compose::New;
            app.input.set("");
        }
    }
}

/// The server's count of unread messages of a conversation (at login, and when a read marker
/// moved in any session): it replaces the client's own count.
pub(super) fn on_unread(
    app: &mut App,
    target: &Target,
    count: u64,
    last_read: MsgId,
    cmds: &mut Vec<Cmd>,
) {
    let key = conv_key(target);
    // A direct chat with unread messages opens in the list (with its newest messages); a room
    // is counted only while the user is in it.
    let open = app.conv_index(&key);
    if open.is_none() && (count == 0 || matches!(key, ConvKey::Room(_))) {
        return;
    }
    let index = app.open_conv(key);
    if open.is_none() {
        super::history::request_older(app, index, cmds);
    }
    let conv = &mut app.convs[index];
    conv.last_read = last_read;
    conv.unread = usize::try_from(count).unwrap_or(usize::MAX);
}

/// Someone is typing: shown in the status line for `for_ms`, unless renewed or their message
/// comes first.
pub(super) fn on_typing(app: &mut App, target: &Target, nick: Nick, for_ms: u64) {
    if app.nick.as_ref() == Some(&nick) {
        return;
    }
    let key = match target {
        Target::Room(room) => ConvKey::Room(room.clone()),
        Target::User(_) => ConvKey::Direct(nick.clone()),
    };
    let Some(index) = app.conv_index(&key) else {
        return;
    };
    let ticks = for_ms.div_ceil(1000).max(1);
    let typing = &mut app.convs[index].typing;
    match typing.iter_mut().find(|(n, _)| n == &nick) {
        Some((_, left)) => *left = ticks,
        None => typing.push((nick, ticks)),
    }
}

/// A second passed: typing notices run out.
pub(super) fn on_tick(app: &mut App) {
    app.ticks += 1;
    for conv in &mut app.convs {
        conv.typing.retain_mut(|(_, left)| {
            *left = left.saturating_sub(1);
            *left > 0
        });
    }
}

/// The user typed a character into the message box: tell the conversation, at most every
/// few seconds (not for `/commands`, not while editing).
pub(super) fn typed(app: &mut App, cmds: &mut Vec<Cmd>) {
    if !app.full_screen || !app.is_online() || app.input.text().starts_with('/') {
        return;
    }
    if matches!(app.compose, Compose::Edit(_)) {
        return;
    }
    let key = app.active_conv().key.clone();
    if let Some((last, at)) = &app.typing_sent
        && last == &key
        && app.ticks < at + TYPING_EVERY_TICKS
    {
        return;
    }
    cmds.push(Cmd::Send(ClientFrame::Typing {
        target: key.target(),
    }));
    app.typing_sent = Some((key, app.ticks));
}

/// A message typed into the box and sent: new, a reply, or the new text of an edited message.
pub(super) fn say(app: &mut App, text: String, cmds: &mut Vec<Cmd>) {
    let key = app.active_conv().key.clone();
    match std::mem::replace(&mut app.compose, Compose::New) {
        Compose::New => send_reply(app, key, text, None, cmds),
        Compose::Reply(quote) => {
            app.selected = None;
            send_reply(app, key, text, Some(quote), cmds);
        }
        Compose::Edit(id) => send_edit(app, id, text, cmds),
    }
    app.typing_sent = None;
}

fn send_edit(app: &mut App, id: MsgId, text: String, cmds: &mut Vec<Cmd>) {
    if !app.is_online() {
        return notice(
            app,
            app.active,
            "not connected: edit once back online",
            cmds,
        );
    }
    cmds.push(Cmd::Send(ClientFrame::Edit {
        id,
        text: text.clone(),
    }));
    app.selected = None;
    // Shown at once; the server's `edited` confirms it (or an error says why not).
    let index = app.active;
    if let Some(entry) = app.line_mut(index, id) {
        if let EntryKind::Message(line) = &mut entry.kind {
            line.text = text;
            line.edited = true;
        }
        entry.wrapped.clear();
    }
}

/// The selected message of the conversation shown, if it is still there.
fn selected_line(app: &App) -> Option<&ChatLine> {
    app.line(app.active, app.selected?)
}

/// `/reply [text]`, Ctrl+R: answer the selected message.
pub(super) fn reply(app: &mut App, text: Option<String>, cmds: &mut Vec<Cmd>) {
    let Some(line) = selected_line(app).filter(|l| !l.deleted) else {
        let hint = "select a message to answer first (Ctrl+Up / Ctrl+Down)";
        return notice(app, app.active, hint, cmds);
    };
    let quote = Quote {
        id: line.id.expect("a selected message has an id"),
        from: line.from.clone(),
        text: line.text.chars().take(QUOTE_CHARS).collect(),
    };
    app.compose = Compose::Reply(quote);
    if let Some(text) = text {
        say(app, text, cmds);
    }
}

/// `/edit [text]`: change the selected own message, or the last own one.
pub(super) fn edit(app: &mut App, text: Option<String>, cmds: &mut Vec<Cmd>) {
    let line = match selected_line(app) {
        Some(line) if !line.own => {
            return notice(
                app,
                app.active,
                "only your own messages can be edited",
                cmds,
            );
        }
        Some(line) => Some(line),
        None => app
            .active_conv()
            .entries
            .iter()
            .rev()
            .find_map(|e| match &e.kind {
                EntryKind::Message(l) if l.own && l.id.is_some() && !l.deleted => Some(l),
                _ => None,
            }),
    };
    let Some(line) = line.filter(|l| !l.deleted) else {
        return notice(app, app.active, "no message of yours to edit here", cmds);
    };
    let id = line
        .id
        .expect("only messages with ids are selected or found");
    let old = line.text.clone();
    match text {
        Some(text) => send_edit(app, id, text, cmds),
        None => {
            app.compose = Compose::Edit(id);
            app.input.set(&old);
        }
    }
}

/// `/delete`: delete the selected own message (it stays as a tombstone).
pub(super) fn delete(app: &mut App, cmds: &mut Vec<Cmd>) {
    let Some(line) = selected_line(app) else {
        let hint = "select your message to delete first (Ctrl+Up / Ctrl+Down)";
        return notice(app, app.active, hint, cmds);
    };
    if !line.own {
        return notice(
            app,
            app.active,
            "only your own messages can be deleted",
            cmds,
        );
    }
    if !app.is_online() {
        return notice(
            app,
            app.active,
            "not connected: delete once back online",
            cmds,
        );
    }
    let id = line.id.expect("a selected message has an id");
    cmds.push(Cmd::Send(ClientFrame::Delete { id }));
    apply_edit(app, id, None);
}

/// Ctrl+Up (`step` -1) / Ctrl+Down (1): select the previous / next message of the conversation
/// shown; past the newest, nothing is selected. The selection is scrolled into view.
pub(super) fn select(app: &mut App, step: isize) {
    let ids: Vec<MsgId> = app
        .active_conv()
        .entries
        .iter()
        .filter_map(|e| match &e.kind {
            EntryKind::Message(l) if !l.deleted => l.id,
            _ => None,
        })
        .collect();
    let at = app
        .selected
        .and_then(|id| ids.iter().position(|&i| i == id));
    app.selected = match (at, step < 0) {
        (None, true) => ids.last().copied(),
        (None, false) => None,
        (Some(i), true) => Some(ids[i.saturating_sub(1)]),
        (Some(i), false) => ids.get(i + 1).copied(),
    };
    if let Some(id) = app.selected {
        scroll_into_view(app, id, false);
    }
}

/// Scrolls the conversation shown so message `id` is visible (`centre`: in the middle).
fn scroll_into_view(app: &mut App, id: MsgId, centre: bool) {
    let area = view::message_area(app);
    let height = usize::from(area.height);
    let conv = app.active_conv();
    let Some(at) = conv
        .entries
        .iter()
        .position(|e| matches!(&e.kind, EntryKind::Message(l) if l.id == Some(id)))
    else {
        return;
    };
    let rows = |i| view::bubbles::entry_height(conv, i, area.width);
    let below: usize = (at + 1..conv.entries.len()).map(rows).sum();
    let own = rows(at);
    let max = view::bubbles::total_height(conv, area.width).saturating_sub(height);
    let scroll = conv.scroll;
    let scroll = if centre {
        (below + own / 2).saturating_sub(height / 2)
    } else if below < scroll {
        below
    } else if below + own > scroll + height {
        (below + own).saturating_sub(height)
    } else {
        scroll
    };
    let conv = app.active_conv_mut();
    conv.scroll = scroll.min(max);
    if conv.scroll == 0 {
        conv.new_below = 0;
    }
}

/// `/search <text>` (and `/mentions`): ask the server; the results open over the chat.
pub(super) fn search(app: &mut App, text: String, cmds: &mut Vec<Cmd>) {
    if !app.is_online() {
        return notice(
            app,
            app.active,
            "not connected: search once back online",
            cmds,
        );
    }
    app.search = Some(SearchView {
        text: text.clone(),
        results: None,
        failed: None,
        older: None,
        searching_older: false,
        asked: None,
        selected: 0,
    });
    ask_search(app, text, None, cmds);
}

/// Sends a search, and shows its results over the chat in full-screen mode.
fn ask_search(app: &mut App, text: String, before: Option<MsgId>, cmds: &mut Vec<Cmd>) {
    if app.full_screen {
        app.overlay = Overlay::Search;
    }
    app.awaiting_replies += 1;
    cmds.push(Cmd::Send(ClientFrame::Search {
        text,
        limit: Some(SEARCH_LIMIT),
        before,
    }));
}

/// `/search` alone, or ↓ past the last result: the last search goes on in older messages.
pub(super) fn search_older(app: &mut App, cmds: &mut Vec<Cmd>) {
    let Some(view) = app.search.as_ref() else {
        return notice(app, app.active, "/search needs a text to look for", cmds);
    };
    if view.searching_older {
        return;
    }
    let Some(before) = view.older else {
        let text = "no older messages to search: /search <text> starts a new search";
        return notice(app, app.active, text, cmds);
    };
    let text = view.text.clone();
    if !app.is_online() {
        let text = "not connected: search once back online";
        return notice(app, app.active, text, cmds);
    }
    if let Some(view) = app.search.as_mut() {
        view.searching_older = true;
        view.asked = Some(before);
    }
    ask_search(app, text, Some(before), cmds);
}

/// The server's answer to a search (`text` and `before` as asked): `before` set, it goes on
/// from an earlier one and its results are added to those; `older`, older messages may match
/// too; `failed`, the server did not search. Only the answer to the search asked last counts.
pub(super) fn on_search_results(
    app: &mut App,
    (text, before): (String, Option<MsgId>),
    (results, older, failed): (Vec<ChatMessage>, Option<MsgId>, Option<String>),
    cmds: &mut Vec<Cmd>,
) {
    app.awaiting_replies = app.awaiting_replies.saturating_sub(1);
    if app
        .search
        .as_ref()
        .is_none_or(|s| s.text != text || s.asked != before)
    {
        return;
    }
    if let Some(why) = failed {
        let view = app.search.as_mut().expect("checked above");
        if view.searching_older {
            // The results shown stay, and ↓ may try again.
            view.searching_older = false;
        } else {
            view.failed = Some(why.clone());
        }
        let text = format!("search failed: {why}");
        return notice(app, app.active, &text, cmds);
    }
    let more = if before.is_some() { " more" } else { "" };
    cmds.push(Cmd::Print(format!(
        "* {}{more} found for {}",
        results.len(),
        crate::sanitize::sanitize_line(&text)
    )));
    for m in &results {
        let conv = conv_of(app, &m.from, &m.target);
        let time = view::clock(m.ts, app.utc_offset);
        let body = crate::sanitize::sanitize_line(&m.text);
        cmds.push(Cmd::Print(format!("[{time}] {conv} <{}> {body}", m.from)));
    }
    if older.is_some() {
        let hint = "* older messages may match too: /search alone searches them";
        cmds.push(Cmd::Print(hint.into()));
    }
    let view = app.search.as_mut().expect("checked above");
    match (&mut view.results, before) {
        (Some(shown), Some(_)) => shown.extend(results),
        _ => {
            view.results = Some(results);
            view.selected = 0;
        }
    }
    view.failed = None;
    view.older = older;
    view.searching_older = false;
}

/// Keys of the search results: Up/Down choose, Enter opens, Esc closes.
pub(super) fn search_key(app: &mut App, code: crossterm::event::KeyCode, cmds: &mut Vec<Cmd>) {
    use crossterm::event::KeyCode;
    let Some(view) = app.search.as_mut() else {
        app.overlay = Overlay::None;
        return;
    };
    let count = view.results.as_ref().map_or(0, Vec::len);
    match code {
        KeyCode::Esc | KeyCode::Char('q') => app.overlay = Overlay::None,
        KeyCode::Up => view.selected = view.selected.saturating_sub(1),
        // Past the last result, the search goes on in older messages.
        KeyCode::Down | KeyCode::PageDown
            if view.selected + 1 >= count && view.older.is_some() && view.results.is_some() =>
        {
            search_older(app, cmds);
        }
        KeyCode::Down => view.selected = (view.selected + 1).min(count.saturating_sub(1)),
        KeyCode::PageUp => view.selected = view.selected.saturating_sub(10),
        KeyCode::PageDown => view.selected = (view.selected + 10).min(count.saturating_sub(1)),
        KeyCode::Enter => open_result(app, cmds),
        _ => {}
    }
}

/// Opens the conversation of the chosen result at that message, fetching the messages around
/// it when it is not loaded.
fn open_result(app: &mut App, cmds: &mut Vec<Cmd>) {
    let Some(m) = app
        .search
        .as_ref()
        .and_then(|s| s.results.as_ref()?.get(s.selected).cloned())
    else {
        return;
    };
    app.overlay = Overlay::None;
    let key = conv_of(app, &m.from, &m.target);
    let index = app.open_conv(key.clone());
    app.switch_to(index);
    app.selected = Some(m.id);
    if app.line(index, m.id).is_some() {
        return scroll_into_view(app, m.id, true);
    }
    app.jump_to = Some((key.clone(), m.id));
    if !app.is_online() {
        return;
    }
    let target = key.target();
    cmds.push(Cmd::Send(ClientFrame::History {
        target: target.clone(),
        before: Some(m.id + 1),
        after: None,
        limit: Some(AROUND + 1),
    }));
    cmds.push(Cmd::Send(ClientFrame::History {
        target,
        before: None,
        after: Some(m.id),
        limit: Some(AROUND),
    }));
}

/// After every message: mark the conversation shown read when its newest message is in view,
/// scroll to a search result once it is loaded, and keep the terminal title.
pub(super) fn after_update(app: &mut App, cmds: &mut Vec<Cmd>) {
    if !app.full_screen {
        return;
    }
    if let Some((key, id)) = app.jump_to.clone()
        && app.active_conv().key == key
        && app.line(app.active, id).is_some()
    {
        app.jump_to = None;
        scroll_into_view(app, id, true);
    }
    mark_read(app, cmds);
    let total: usize = app.convs.iter().map(|c| c.unread).sum();
    let nick = app.nick_str();
    let title = match (total, nick.is_empty()) {
        (0, true) => "chat-tui".to_owned(),
        (0, false) => format!("chat-tui · {nick}"),
        (n, true) => format!("({n}) chat-tui"),
        (n, false) => format!("({n}) chat-tui · {nick}"),
    };
    if title != app.title {
        app.title = title.clone();
        cmds.push(Cmd::SetTitle(title));
    }
}

/// Sends `read` for the conversation shown when its newest message is on screen.
fn mark_read(app: &mut App, cmds: &mut Vec<Cmd>) {
    if app.conn != ConnState::Online || app.screen != Screen::Chat {
        return;
    }
    if app.overlay != Overlay::None || app.jump_to.is_some() {
        return;
    }
    let conv = app.active_conv_mut();
    if conv.scroll > 0 {
        return;
    }
    conv.unread = 0;
    let newest = conv.entries.iter().rev().find_map(|e| match &e.kind {
        EntryKind::Message(l) => l.id,
        EntryKind::Notice(_) => None,
    });
    if let Some(newest) = newest.filter(|&n| n > conv.last_read) {
        conv.last_read = newest;
        let target = conv.key.target();
        cmds.push(Cmd::Send(ClientFrame::Read {
            target,
            up_to: newest,
        }));
    }
}
