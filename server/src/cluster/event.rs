//! What crosses Redis: the events of the cluster log, an entry as read from it, and an event
//! to append.

use crate::store::NewMessage;
use protocol::{MsgId, Nick, Quote, RoomName, Target};
use serde::{Deserialize, Serialize};

/// A message as it crosses Redis, without its id (Redis gives it).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Posted {
    pub from: Nick,
    pub target: Target,
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<Quote>,
    pub ts: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_to: Option<Nick>,
    /// The sending connection on its node, which is not sent its own message.
    pub conn: u64,
}

impl Posted {
    /// The message as the store takes it, and the quote it replies to.
    pub fn into_new(self) -> (NewMessage, Option<Quote>) {
        let message = NewMessage {
            from: self.from,
            target: self.target,
            text: self.text,
            client_id: self.client_id,
            reply_to: self.reply_to.as_ref().map(|q| q.id),
            ts: self.ts,
            delivered_to: self.delivered_to,
        };
        (message, self.reply_to)
    }
}

/// One change to the chat, as the cluster log carries it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "k", rename_all = "snake_case")]
pub enum Event {
    Message(Posted),
    Edited {
        id: MsgId,
        text: String,
        ts: i64,
    },
    Deleted {
        id: MsgId,
    },
    Read {
        nick: Nick,
        target: Target,
        up_to: MsgId,
    },
    /// Direct messages to `nick` up to `up_to` reached them.
    Delivered {
        nick: Nick,
        up_to: MsgId,
    },
    /// `nick` logged in for the first time.
    User {
        nick: Nick,
        ts: i64,
    },
    Registered {
        nick: Nick,
        hash: String,
    },
    /// `nick` came online on the entry's node; `moved` when they were shown online already
    /// (back on another node within the presence grace, or after their node died).
    Online {
        nick: Nick,
        moved: bool,
    },
    Offline {
        nick: Nick,
        ts: i64,
    },
    Joined {
        room: RoomName,
        nick: Nick,
    },
    Left {
        room: RoomName,
        nick: Nick,
    },
    Typing {
        nick: Nick,
        target: Target,
        for_ms: u64,
        ts: i64,
    },
}

impl Event {
    /// Whether the event is about who is where now, rather than the lasting history: such
    /// events are skipped when replaying the log, whose presence the start snapshot covers.
    pub fn is_presence(&self) -> bool {
        matches!(
            self,
            Self::Online { .. }
                | Self::Offline { .. }
                | Self::Joined { .. }
                | Self::Left { .. }
                | Self::Typing { .. }
        )
    }
}

/// One entry read from the cluster log.
#[derive(Debug)]
pub struct Entry {
    /// The stream entry id.
    pub position: String,
    /// The message id Redis gave (0 for other events).
    pub id: MsgId,
    /// The node the event came from.
    pub node: String,
    /// Whether its node applied it before appending it (it did so while Redis was down).
    pub applied_at_origin: bool,
    pub event: Event,
}

/// An event to append, with the message id it has when given while Redis was down.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub preset_id: Option<MsgId>,
    pub event: Event,
}

impl From<Event> for Outgoing {
    /// An event without a preset id: a message among them gets its id from Redis.
    fn from(event: Event) -> Self {
        Self {
            preset_id: None,
            event,
        }
    }
}

/// Someone online on another node, as the start snapshot shows them.
#[derive(Debug)]
pub struct RemoteUser {
    pub nick: Nick,
    pub rooms: Vec<RoomName>,
}

pub(super) fn encode(event: &Event) -> String {
    serde_json::to_string(event).expect("events serialize")
}
