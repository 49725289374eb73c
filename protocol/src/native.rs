//! The native protocol: typed JSON frames, one per WebSocket text message, tagged by `"type"`.
//!
//! A client connects with the `chat.v1` subprotocol, sends [`ClientFrame::Login`], and waits for
//! [`ServerFrame::Welcome`] (or an error). Every frame is shown with an example in `PROTOCOL.md`.
//!
//! Compatibility: fields may be added to frames, and frame types added; a client reads a frame
//! type it does not know as [`ServerFrame::Unknown`] and ignores it.

use crate::{ErrorCode, Nick, RoomName};
use serde::{Deserialize, Serialize};

/// A message id given by the server: unique, and increasing in the order messages were accepted,
/// so it orders the messages of every conversation.
pub type MsgId = u64;

/// Where a message goes: a room, or one user (a direct message).
///
/// On the wire it is one field beside the others: `"room": "lobby"` or `"to": "bob"`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Target {
    /// Everyone in the room.
    #[serde(rename = "room")]
    Room(RoomName),
    /// One user; in a message delivered to that user, it names the user themselves.
    #[serde(rename = "to")]
    User(Nick),
}

/// What a native client sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    /// First frame on a connection: who I am. Answered by `welcome` or by an `error`
    /// (`invalid_nick`, `reserved_nick`, `nick_taken`), after which the client may try again.
    /// The nick is plain text here so that a bad one gets a precise error code.
    ///
    /// `resume` lists, for a client that was connected before, the last message id it has of
    /// each conversation; the server answers each with a `history` frame of exactly what came
    /// after it (and rejoins the rooms listed).
    ///
    /// `password` is needed for a registered nickname (see `register`); a registered user may
    /// be logged in from several places at once, and every session gets their messages.
    Login {
        nick: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        resume: Vec<Cursor>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        password: Option<String>,
    },
    /// Register the nickname this connection is logged in under, with a password (8 to 128
    /// characters). From then on logging in under it needs the password, and neither guests
    /// nor seed pages can take it. Answered by `registered` or an error.
    Register { password: String },
    /// A message to a room or a user. `client_id` is the client's own id for it (at most 64
    /// bytes): the `ack` and any `error` about this message carry it back.
    /// `reply_to` names an earlier message of the same conversation that this one answers.
    Send {
        client_id: String,
        #[serde(flatten)]
        target: Target,
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reply_to: Option<MsgId>,
    },
    /// Change the text of one's own message. Everyone in the conversation gets `edited`.
    Edit { id: MsgId, text: String },
    /// Delete one's own message; it stays as a tombstone. Everyone gets `deleted`.
    Delete { id: MsgId },
    /// Mark a conversation read up to message `up_to`. The user's sessions get `unread`.
    Read {
        #[serde(flatten)]
        target: Target,
        up_to: MsgId,
    },
    /// The user is typing in a conversation. Never stored; the server passes on at most one
    /// every few seconds per conversation, and it expires by itself.
    Typing {
        #[serde(flatten)]
        target: Target,
    },
    /// Search the messages of every conversation the user can read (rooms they are in, their
    /// direct chats). Any script, Chinese included. Answered by `search_results`, newest first.
    /// With `before`, only messages older than that id: to go on where an answer's `older`
    /// says.
    Search {
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        before: Option<MsgId>,
    },
    /// Ask for stored messages of a room the user is in, or of the direct chat with a user.
    /// With `before`, the newest `limit` messages older than that id; with `after`, the oldest
    /// `limit` newer than it; with neither, the newest `limit`. `limit` defaults to 50 and is
    /// capped at 200. Answered by a `history` frame.
    History {
        #[serde(flatten)]
        target: Target,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        before: Option<MsgId>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<MsgId>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
    },
    /// Ask whether a user is online, and when they were last seen.
    Whois { nick: Nick },
    /// Enter a room, creating it when it does not exist.
    Join { room: RoomName },
    /// Leave a room.
    Leave { room: RoomName },
    /// Ask for the list of rooms.
    Rooms,
    /// Ask who is online, or who is in `room`: in name order, at most `limit` names (50 by
    /// default, at most 500), only names that start with `prefix`, and only names after
    /// `after` (the last name of the previous page). Answered by `users`.
    Who {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<RoomName>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        prefix: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<Nick>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
    },
}

/// The last message id a client has of one conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    #[serde(flatten)]
    pub target: Target,
    pub after: MsgId,
}

/// A short quote of the message a reply answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quote {
    pub id: MsgId,
    pub from: Nick,
    /// The start of its text (at most 100 characters; empty when it was deleted).
    pub text: String,
}

/// A chat message as the server delivers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Server id, see [`MsgId`].
    pub id: MsgId,
    /// When the server accepted it, in milliseconds since the Unix epoch.
    pub ts: i64,
    /// The sender, as the server knows them (never as the client claimed).
    pub from: Nick,
    /// The room, or the recipient of a direct message.
    #[serde(flatten)]
    pub target: Target,
    /// Empty when the message was deleted.
    pub text: String,
    /// The message this one answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<Quote>,
    /// When its sender last edited it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited: Option<i64>,
    /// Deleted by its sender: a tombstone.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
}

impl ChatMessage {
    /// A plain message: no reply, never edited or deleted.
    pub fn new(id: MsgId, ts: i64, from: Nick, target: Target, text: impl Into<String>) -> Self {
        Self {
            id,
            ts,
            from,
            target,
            text: text.into(),
            reply_to: None,
            edited: None,
            deleted: false,
        }
    }
}

/// The limits a server applies, told at login so clients can check before sending.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// The longest message text, in bytes of UTF-8.
    pub max_text_bytes: usize,
}

/// One line of the room list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomInfo {
    pub name: RoomName,
    /// How many are in it now, guests included.
    pub members: usize,
    /// Whether the asking user is one of them.
    pub joined: bool,
}

/// What the server sends to a native client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// Login accepted. `rooms` are the rooms the user is in (the lobby at first), `users` who is
    /// online now, in name order, the user included; at most the first 50 names, and
    /// `users_total` how many are online in all (absent from older servers, which listed
    /// everyone).
    Welcome {
        nick: Nick,
        rooms: Vec<RoomName>,
        users: Vec<Nick>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        users_total: Option<usize>,
        limits: Limits,
    },
    /// A message in a room the user is in, or a direct message to them.
    Message(ChatMessage),
    /// The server stored the message the client sent as `client_id`. A resend with the same
    /// `client_id` is acknowledged with the same id and not stored or delivered again.
    /// `offline` is set when the recipient of a direct message is offline: it is delivered at
    /// their next login.
    Ack {
        client_id: String,
        id: MsgId,
        ts: i64,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        offline: bool,
    },
    /// Stored messages of one conversation, oldest first: the answer to a `history` request,
    /// what a resumed conversation missed, or direct messages that came while the user was
    /// offline. `has_more` says whether more are stored in the direction asked.
    History {
        #[serde(flatten)]
        target: Target,
        messages: Vec<ChatMessage>,
        has_more: bool,
    },
    /// A message of a conversation the user is in was edited by its sender.
    Edited {
        id: MsgId,
        #[serde(flatten)]
        target: Target,
        text: String,
        ts: i64,
    },
    /// A message was deleted by its sender.
    Deleted {
        id: MsgId,
        #[serde(flatten)]
        target: Target,
    },
    /// How many messages of a conversation the user has not read (sent at login and when a
    /// read marker moves, to every session of the user).
    Unread {
        #[serde(flatten)]
        target: Target,
        count: u64,
        /// The last message the user has read.
        last_read: MsgId,
    },
    /// `nick` is typing in the conversation; show it for `for_ms` unless renewed.
    Typing {
        #[serde(flatten)]
        target: Target,
        nick: Nick,
        for_ms: u64,
    },
    /// The answer to `whois`. `last_seen` is when the user last went offline (absent while
    /// they are online).
    Whois {
        nick: Nick,
        online: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last_seen: Option<i64>,
    },
    /// Messages matching a search, newest first. `text` and `before` are the request's (set,
    /// these go on from an earlier answer). `older` is set when older messages may match too
    /// (the answer holds `limit` messages, or the server searched a span of the history only):
    /// search again with `before` = `older` to go on. `failed` says why the server did not
    /// search (too many searches waiting, say); `results` is empty then.
    SearchResults {
        text: String,
        results: Vec<ChatMessage>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        before: Option<MsgId>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        older: Option<MsgId>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        failed: Option<String>,
    },
    /// The nickname is registered: logging in under it needs the password from now on.
    Registered { nick: Nick },
    /// A named user came online or went offline. Sent by older servers; current ones send
    /// [`ServerFrame::PresenceChanges`] instead.
    Presence { nick: Nick, online: bool },
    /// Who came online and who went offline since the last such frame (the server gathers
    /// changes for a short interval and sends one frame per interval). A name's last change
    /// counts: it is in `online` or in `offline`, never both. At most 20 names are listed;
    /// `unlisted` counts the changes left out. `total` is how many are online now.
    PresenceChanges {
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        online: Vec<Nick>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        offline: Vec<Nick>,
        #[serde(default, skip_serializing_if = "is_zero")]
        unlisted: usize,
        total: usize,
    },
    /// Who is online (`room` absent) or in `room`, in name order: the answer to `who`, and
    /// sent after joining a room. `total` is how many the request covers in all (absent from
    /// older servers, which listed everyone); `has_more` says that names follow the last one
    /// listed (ask again with `after`).
    Users {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<RoomName>,
        users: Vec<Nick>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        total: Option<usize>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        has_more: bool,
    },
    /// `nick` entered `room` (also sent to the user who joined). In a large room, the others
    /// hear of it by [`ServerFrame::RoomChanges`] instead.
    Joined { room: RoomName, nick: Nick },
    /// `nick` left `room` (also sent to the user who left). In a large room, the others hear
    /// of it by [`ServerFrame::RoomChanges`] instead.
    Left { room: RoomName, nick: Nick },
    /// Who entered and who left a large room since the last such frame, gathered like
    /// [`ServerFrame::PresenceChanges`]: at most 20 names listed, `unlisted` the changes left
    /// out, `total` how many are in the room now.
    RoomChanges {
        room: RoomName,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        joined: Vec<Nick>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        left: Vec<Nick>,
        #[serde(default, skip_serializing_if = "is_zero")]
        unlisted: usize,
        total: usize,
    },
    /// The room list.
    Rooms { rooms: Vec<RoomInfo> },
    /// A request failed. `client_id` is set when it was about a `send`.
    Error {
        code: ErrorCode,
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_id: Option<String>,
    },
    /// A frame type this build does not know; clients ignore it.
    #[serde(other)]
    Unknown,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl ServerFrame {
    /// An error frame not tied to a message.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Error {
            code,
            message: message.into(),
            client_id: None,
        }
    }

    /// The frame as JSON text.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("server frames always serialize")
    }

    /// What this frame says of `nick`'s presence: `Some(true)` if it says they came online,
    /// `Some(false)` if it says they went offline (`presence` or `presence_changes`).
    pub fn presence_of(&self, nick: &str) -> Option<bool> {
        let named = |list: &[Nick]| list.iter().any(|n| n.as_str() == nick);
        match self {
            Self::Presence { nick: n, online } if n.as_str() == nick => Some(*online),
            Self::PresenceChanges { online, .. } if named(online) => Some(true),
            Self::PresenceChanges { offline, .. } if named(offline) => Some(false),
            _ => None,
        }
    }
}

impl ClientFrame {
    /// A `send` that replies to nothing.
    pub fn send(client_id: impl Into<String>, target: Target, text: impl Into<String>) -> Self {
        Self::Send {
            client_id: client_id.into(),
            target,
            text: text.into(),
            reply_to: None,
        }
    }

    /// A `who` for the first page of who is online (`room` is `None`) or in `room`.
    pub fn who(room: Option<RoomName>) -> Self {
        Self::Who {
            room,
            prefix: None,
            after: None,
            limit: None,
        }
    }

    /// A `login` with no conversations to resume.
    pub fn login(nick: impl Into<String>) -> Self {
        Self::Login {
            nick: nick.into(),
            resume: Vec::new(),
            password: None,
        }
    }

    /// The frame as JSON text.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("client frames always serialize")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn nick(s: &str) -> Nick {
        Nick::parse(s).expect("valid nick")
    }

    #[test]
    fn targets_are_one_field_beside_the_others() {
        let send = ClientFrame::Send {
            client_id: "c1".into(),
            target: Target::User(nick("bob")),
            text: "hi".into(),
            reply_to: None,
        };
        assert_eq!(
            serde_json::to_value(&send).expect("serializes"),
            json!({"type": "send", "client_id": "c1", "to": "bob", "text": "hi"})
        );
        let back: ClientFrame =
            serde_json::from_str(r#"{"type":"send","client_id":"c1","room":"lobby","text":"x"}"#)
                .expect("parses");
        assert_eq!(
            back,
            ClientFrame::Send {
                client_id: "c1".into(),
                target: Target::Room(RoomName::lobby()),
                text: "x".into(),
                reply_to: None,
            }
        );
    }

    #[test]
    fn a_send_without_a_target_is_refused() {
        let err =
            serde_json::from_str::<ClientFrame>(r#"{"type":"send","client_id":"1","text":"x"}"#);
        assert!(err.is_err());
    }

    #[test]
    fn an_unknown_server_frame_type_is_ignorable() {
        let frame: ServerFrame =
            serde_json::from_str(r#"{"type":"reaction","emoji":"👍","id":3}"#).expect("parses");
        assert_eq!(frame, ServerFrame::Unknown);
    }

    #[test]
    fn lists_from_an_older_server_parse_without_their_counts() {
        let welcome: ServerFrame = serde_json::from_str(
            r#"{"type":"welcome","nick":"a","rooms":["lobby"],"users":["a"],"limits":{"max_text_bytes":1}}"#,
        )
        .expect("parses");
        assert!(matches!(
            welcome,
            ServerFrame::Welcome {
                users_total: None,
                ..
            }
        ));
        let users: ServerFrame =
            serde_json::from_str(r#"{"type":"users","users":["a","b"]}"#).expect("parses");
        assert!(matches!(
            users,
            ServerFrame::Users {
                total: None,
                has_more: false,
                ..
            }
        ));
    }

    #[test]
    fn presence_of_reads_both_presence_frames() {
        let one = ServerFrame::Presence {
            nick: nick("carol"),
            online: false,
        };
        assert_eq!(one.presence_of("carol"), Some(false));
        let many = ServerFrame::PresenceChanges {
            online: vec![nick("carol")],
            offline: vec![nick("erin")],
            unlisted: 0,
            total: 2,
        };
        assert_eq!(
            ["carol", "erin", "bob"].map(|n| many.presence_of(n)),
            [Some(true), Some(false), None]
        );
        assert_eq!(
            serde_json::to_value(&many).expect("serializes"),
            json!({"type": "presence_changes", "online": ["carol"], "offline": ["erin"], "total": 2})
        );
    }

    #[test]
    fn a_message_round_trips() {
        let frame = ServerFrame::Message(ChatMessage {
            id: 7,
            ts: 1_764_000_000_000,
            from: nick("张伟"),
            target: Target::Room(RoomName::lobby()),
            text: "你好 👋".into(),
            reply_to: None,
            edited: None,
            deleted: false,
        });
        let text = frame.to_json();
        assert_eq!(
            serde_json::from_str::<ServerFrame>(&text).expect("parses"),
            frame
        );
    }
}
