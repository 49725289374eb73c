//! All the client's state. `view` draws it, `update` changes it; nothing else does either.

use crate::input::LineEditor;
use crate::view::wrap::WrapCache;
use protocol::{ChatMessage, Limits, MsgId, Nick, Quote, RoomName, Target};
use std::fmt;

/// The connection as the user sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnState {
    /// Opening the first connection, or the `attempt`th retry.
    Connecting { attempt: u32 },
    /// Connected, waiting for the user to choose a nickname (login screen).
    Connected,
    /// Connected, `login` sent, waiting for `welcome`.
    LoggingIn,
    /// Logged in.
    Online,
    /// The connection failed or was lost; the next try comes after `retry_in_ms`.
    Reconnecting {
        attempt: u32,
        retry_in_ms: u64,
        reason: String,
    },
}

/// What fills the screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Screen {
    /// Asking for a nickname; `error` is the server's (or the local check's) last refusal.
    Login { error: Option<String> },
    /// The chat itself.
    Chat,
}

/// Which box of the login screen takes the keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginField {
    Nick,
    /// Only needed for a registered nickname.
    Password,
}

/// A window over everything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlay {
    None,
    /// The list of every key and command.
    Help,
    /// The answer to `/search` or `/mentions` ([`App::search`]).
    Search,
}

/// The results of a search, shown over the chat; Enter opens the chosen one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchView {
    /// What was searched for.
    pub text: String,
    /// Newest first, as the server sends them; `None` until the answer comes.
    pub results: Option<Vec<ChatMessage>>,
    /// Why there will be no results: the server refused the search or it failed.
    pub failed: Option<String>,
    /// Where older messages may match too, as the last answer said.
    pub older: Option<MsgId>,
    /// Older messages are being searched (their results will be added).
    pub searching_older: bool,
    /// The `before` of the search asked last: only its answer is taken.
    pub asked: Option<MsgId>,
    /// Index of the highlighted result.
    pub selected: usize,
}

/// What the message box is writing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compose {
    /// A new message.
    New,
    /// A reply to this message (sent with `reply_to`).
    Reply(Quote),
    /// A new text for this own message (sent as `edit`).
    Edit(MsgId),
}

/// Which conversation: a room, or a direct chat with one person.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ConvKey {
    Room(RoomName),
    Direct(Nick),
}

impl ConvKey {
    /// Where a message typed in this conversation goes.
    pub fn target(&self) -> Target {
        match self {
            Self::Room(room) => Target::Room(room.clone()),
            Self::Direct(nick) => Target::User(nick.clone()),
        }
    }
}

impl fmt::Display for ConvKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Room(room) => write!(f, "#{room}"),
            Self::Direct(nick) => write!(f, "@{nick}"),
        }
    }
}

/// Whether an own message reached the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Typed, not yet acknowledged (maybe not even sent: offline).
    Pending,
    /// Acknowledged by the server (always so for others' messages).
    Sent,
    /// Refused by the server, with its reason.
    Failed(String),
}

/// One chat message in a conversation.
#[derive(Debug, Clone)]
pub struct ChatLine {
    pub from: Nick,
    /// Written by this user.
    pub own: bool,
    pub text: String,
    /// Server time in ms since the epoch; `None` until an own message is acknowledged.
    pub ts: Option<i64>,
    pub id: Option<MsgId>,
    pub delivery: Delivery,
    /// The client id an own message was sent with.
    pub client_id: Option<String>,
    /// The message this one answers, quoted.
    pub reply_to: Option<Quote>,
    /// Edited by its sender since it was sent.
    pub edited: bool,
    /// Deleted by its sender: shown as a tombstone.
    pub deleted: bool,
}

impl ChatLine {
    /// The line of a message from the server; `own` when this user sent it.
    pub fn from_message(m: ChatMessage, own: bool) -> Self {
        Self {
            own,
            from: m.from,
            text: m.text,
            ts: Some(m.ts),
            id: Some(m.id),
            delivery: Delivery::Sent,
            client_id: None,
            reply_to: m.reply_to,
            edited: m.edited.is_some(),
            deleted: m.deleted,
        }
    }

    /// Whether `nick` is mentioned as `@nick` (ignoring case).
    pub fn mentions(&self, nick: &str) -> bool {
        !nick.is_empty()
            && mention_spans(&self.text)
                .any(|(start, end)| self.text[start + 1..end].eq_ignore_ascii_case(nick))
    }
}

/// The byte ranges of the `@name` mentions in `text` (the `@` included): an `@` not preceded by
/// a letter or digit, followed by name characters (letters, digits, `_`, `-`, `.`).
pub fn mention_spans(text: &str) -> impl Iterator<Item = (usize, usize)> + '_ {
    let is_name = |c: char| c.is_alphanumeric() || matches!(c, '_' | '-' | '.');
    text.match_indices('@').filter_map(move |(at, _)| {
        if text[..at]
            .chars()
            .next_back()
            .is_some_and(char::is_alphanumeric)
        {
            return None;
        }
        let rest = &text[at + 1..];
        let len = rest.find(|c: char| !is_name(c)).unwrap_or(rest.len());
        // A trailing dot ends a sentence, not a name.
        let len = rest[..len].trim_end_matches('.').len();
        (len > 0).then_some((at, at + 1 + len))
    })
}

/// What a conversation shows, in order.
#[derive(Debug, Clone)]
pub enum EntryKind {
    Message(ChatLine),
    /// A line from the client or server: joins, leaves, errors, command answers.
    Notice(String),
}

/// One item of a conversation with its cached layout.
#[derive(Debug, Clone)]
pub struct Entry {
    pub kind: EntryKind,
    /// The wrapped lines for the last width drawn; a cache, not state.
    pub wrapped: WrapCache,
}

impl Entry {
    /// A message entry.
    pub fn message(line: ChatLine) -> Self {
        Self {
            kind: EntryKind::Message(line),
            wrapped: WrapCache::default(),
        }
    }

    /// A notice entry.
    pub fn notice(text: impl Into<String>) -> Self {
        Self {
            kind: EntryKind::Notice(text.into()),
            wrapped: WrapCache::default(),
        }
    }
}

/// A room or a direct chat, with its messages and how far it is scrolled.
#[derive(Debug, Clone)]
pub struct Conversation {
    pub key: ConvKey,
    pub entries: Vec<Entry>,
    /// Messages that arrived while another conversation was shown.
    pub unread: usize,
    /// Rows scrolled up from the newest line; 0 follows new messages.
    pub scroll: usize,
    /// Messages that arrived while scrolled up (shown as a marker).
    pub new_below: usize,
    /// Known members (rooms only), sorted, from `users` answers and joins/leaves. In a large
    /// room only some of them: the server lists the first names and counts the rest.
    pub members: Vec<Nick>,
    /// How many are in the room, as the server last counted (rooms only).
    pub member_total: usize,
    /// Older messages were asked for and have not come yet.
    pub loading_older: bool,
    /// The server said there are no older messages.
    pub oldest_reached: bool,
    /// Who is typing here, with the seconds (ticks) left to show it.
    pub typing: Vec<(Nick, u64)>,
    /// The last message read here, as told to (or by) the server.
    pub last_read: MsgId,
}

impl Conversation {
    /// An empty conversation.
    pub fn new(key: ConvKey) -> Self {
        Self {
            key,
            entries: Vec::new(),
            unread: 0,
            scroll: 0,
            new_below: 0,
            members: Vec::new(),
            member_total: 0,
            loading_older: false,
            oldest_reached: false,
            typing: Vec::new(),
            last_read: 0,
        }
    }
}

/// An own message not yet acknowledged: resent, with the same client id, after a reconnect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub client_id: String,
    pub target: Target,
    pub text: String,
    /// The message this one answers.
    pub reply_to: Option<MsgId>,
}

/// The state of Tab completion while Tab is pressed repeatedly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    /// Byte offset where the completed word starts.
    pub start: usize,
    pub candidates: Vec<String>,
    pub index: usize,
}

/// The whole client state.
#[derive(Debug)]
pub struct App {
    /// The server URL, as shown in the status bar.
    pub server: String,
    /// The nickname in use, or asked for.
    pub nick: Option<Nick>,
    pub conn: ConnState,
    pub screen: Screen,
    pub overlay: Overlay,
    /// Rooms first as joined, then direct chats as opened.
    pub convs: Vec<Conversation>,
    /// Index into `convs` of the one shown.
    pub active: usize,
    /// Who is known to be online, sorted: with many online, only some of them (the server
    /// lists the first names and counts the rest).
    pub online: Vec<Nick>,
    /// How many are online, as the server last counted.
    pub online_total: usize,
    /// Own messages waiting for an `ack`, oldest first.
    pub outbox: Vec<Outgoing>,
    /// The message box.
    pub input: LineEditor,
    /// The nickname box of the login screen.
    pub login_input: LineEditor,
    /// The password box of the login screen (shown masked).
    pub login_password: LineEditor,
    pub login_field: LoginField,
    /// The password of a registered nickname, sent with every login (also after a reconnect).
    pub password: Option<String>,
    /// The password of a `register` not yet answered; it becomes `password` once registered.
    pub pending_password: Option<String>,
    pub completion: Option<Completion>,
    /// Whether the online-user list is shown beside the messages.
    pub show_users: bool,
    /// The terminal size, for mouse hit tests and scroll limits.
    pub size: (u16, u16),
    /// Local time offset in seconds east of UTC, for showing times.
    pub utc_offset: i32,
    pub limits: Option<Limits>,
    /// A room we asked to join and will switch to once the server confirms.
    pub switch_to_room: Option<RoomName>,
    /// Rooms we asked to leave: their conversations close once the server confirms. A `left`
    /// we did not ask for (a server shutting down) keeps the conversation, to join it again.
    pub parting: Vec<RoomName>,
    /// Whether to fetch stored messages: the newest when a conversation opens, older ones when
    /// scrolled to the top (the full-screen client; `--plain` shows only what is new).
    pub load_history: bool,
    /// Set in `--plain` mode when input ended: quit once the outbox is empty.
    pub closing: bool,
    /// Requests (`join`, `leave`, `who`, `rooms`) sent and not yet answered.
    pub awaiting_replies: usize,
    /// `who` requests not yet answered: their `users` answers are shown as notices.
    pub asked_who: usize,
    /// How many times the server welcomed us (more than one means we reconnected).
    pub sessions: u32,
    /// After a reconnect, our nickname was still online (our previous connection, or a server
    /// that died and has not expired yet): seconds until the login is tried again, and how
    /// many tries there were.
    pub relogin: Option<(u32, u32)>,
    /// The full-screen client: mark conversations read when viewed, keep the terminal title,
    /// ring the bell (`--plain` does none of these).
    pub full_screen: bool,
    /// Also ask the terminal for a desktop notification (OSC 777/9) on a mention or a direct
    /// message out of view.
    pub notify: bool,
    /// The message chosen with Ctrl+Up/Down in the conversation shown (for reply, edit, delete).
    pub selected: Option<MsgId>,
    /// What the message box is writing: a new message, a reply, an edit.
    pub compose: Compose,
    /// The last `/search` or `/mentions` and its results.
    pub search: Option<SearchView>,
    /// After choosing a search result: the message to scroll to once it is loaded.
    pub jump_to: Option<(ConvKey, MsgId)>,
    /// Seconds since start (counted by `Tick`), for typing notices.
    pub ticks: u64,
    /// Where and when (tick) `typing` was last sent.
    pub typing_sent: Option<(ConvKey, u64)>,
    /// The terminal title last set.
    pub title: String,
    /// A prefix that makes client ids unique across runs of the client.
    client_prefix: String,
    next_client_seq: u64,
}

impl App {
    /// A fresh client for `server`; with `nick`, it logs in as soon as it is connected, else it
    /// shows the login screen. `client_prefix` should differ between runs (e.g. time and pid).
    pub fn new(server: impl Into<String>, nick: Option<Nick>, client_prefix: String) -> Self {
        Self {
            server: server.into(),
            screen: if nick.is_some() {
                Screen::Chat
            } else {
                Screen::Login { error: None }
            },
            nick,
            conn: ConnState::Connecting { attempt: 0 },
            overlay: Overlay::None,
            convs: vec![Conversation::new(ConvKey::Room(RoomName::lobby()))],
            active: 0,
            online: Vec::new(),
            online_total: 0,
            outbox: Vec::new(),
            input: LineEditor::new(),
            login_input: LineEditor::new(),
            login_password: LineEditor::new(),
            login_field: LoginField::Nick,
            password: None,
            pending_password: None,
            completion: None,
            show_users: false,
            size: (80, 24),
            utc_offset: 0,
            limits: None,
            switch_to_room: None,
            parting: Vec::new(),
            load_history: false,
            closing: false,
            awaiting_replies: 0,
            asked_who: 0,
            sessions: 0,
            relogin: None,
            full_screen: false,
            notify: false,
            selected: None,
            compose: Compose::New,
            search: None,
            jump_to: None,
            ticks: 0,
            typing_sent: None,
            title: String::new(),
            client_prefix,
            next_client_seq: 0,
        }
    }

    /// The conversation shown.
    pub fn active_conv(&self) -> &Conversation {
        &self.convs[self.active]
    }

    /// The conversation shown, mutably.
    pub fn active_conv_mut(&mut self) -> &mut Conversation {
        &mut self.convs[self.active]
    }

    /// The index of the conversation `key`, if open.
    pub fn conv_index(&self, key: &ConvKey) -> Option<usize> {
        self.convs.iter().position(|c| &c.key == key)
    }

    /// The index of the conversation `key`, opening it when needed (rooms before direct chats).
    pub fn open_conv(&mut self, key: ConvKey) -> usize {
        if let Some(i) = self.conv_index(&key) {
            return i;
        }
        let at = match key {
            ConvKey::Room(_) => self
                .convs
                .iter()
                .position(|c| matches!(c.key, ConvKey::Direct(_)))
                .unwrap_or(self.convs.len()),
            ConvKey::Direct(_) => self.convs.len(),
        };
        self.convs.insert(at, Conversation::new(key));
        if at <= self.active && self.convs.len() > 1 {
            self.active += 1;
        }
        at
    }

    /// Shows conversation `index`, clearing its unread count.
    pub fn switch_to(&mut self, index: usize) {
        if index < self.convs.len() {
            if self.active != index {
                self.selected = None;
                self.compose = Compose::New;
                self.jump_to = None;
            }
            self.active = index;
            self.convs[index].unread = 0;
            self.completion = None;
        }
    }

    /// A new client id for an own message.
    pub fn next_client_id(&mut self) -> String {
        self.next_client_seq += 1;
        format!("{}-{}", self.client_prefix, self.next_client_seq)
    }

    /// Whether the server is reachable and we are logged in.
    pub fn is_online(&self) -> bool {
        self.conn == ConnState::Online
    }

    /// The message `id` of conversation `index`, if loaded.
    pub fn line(&self, index: usize, id: MsgId) -> Option<&ChatLine> {
        self.convs[index]
            .entries
            .iter()
            .rev()
            .find_map(|e| match &e.kind {
                EntryKind::Message(l) if l.id == Some(id) => Some(l),
                _ => None,
            })
    }

    /// The message `id` of conversation `index`, mutably.
    pub fn line_mut(&mut self, index: usize, id: MsgId) -> Option<&mut Entry> {
        self.convs[index]
            .entries
            .iter_mut()
            .rev()
            .find(|e| matches!(&e.kind, EntryKind::Message(l) if l.id == Some(id)))
    }

    /// The own nickname, or an empty string before login.
    pub fn nick_str(&self) -> &str {
        self.nick.as_ref().map_or("", Nick::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_are_at_names_not_mail_addresses() {
        let spans: Vec<_> = mention_spans("hi @bob, mail a@b.c or @张伟. @").collect();
        assert_eq!(spans, [(3, 7), (23, 30)]);
    }
}
