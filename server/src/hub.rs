//! The hub: who is connected, who is in which room, and where each message goes.
//!
//! All routing is synchronous under one `std::sync::Mutex` that is never held across an
//! `.await`. The hub never waits on a peer: it offers each frame to the peer's bounded outbox,
//! and a peer whose outbox is full is told to close as too slow (see [`Offer`]).
//!
//! A broadcast is encoded once per audience (native JSON, seed group text) and the encoded bytes
//! are shared by every recipient.

use crate::peer::{CloseReason, Peer, PeerKind};
use axum::extract::ws::{Message, Utf8Bytes};
use protocol::{
    ChatMessage, ErrorCode, Limits, MsgId, Nick, RoomInfo, RoomName, SeedChat, ServerFrame, Target,
};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};
use thiserror::Error;
use tokio::sync::mpsc::error::TrySendError;

/// A connection's number, unique for the life of the server.
pub type ConnId = u64;

/// Why the hub refused a request. The `Display` text is written for the user.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HubError {
    #[error("the nickname {0} is reserved")]
    Reserved(Nick),
    #[error("the nickname {0} is already online")]
    NickTaken(Nick),
    #[error("{0} is not online")]
    UserOffline(Nick),
    #[error("nobody called {0} has been here")]
    UnknownUser(Nick),
    #[error("you are not in room {0}")]
    NotInRoom(RoomName),
    #[error("the connection is closing")]
    Closing,
}

impl HubError {
    /// The stable wire code for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Reserved(_) => ErrorCode::ReservedNick,
            Self::NickTaken(_) => ErrorCode::NickTaken,
            Self::UserOffline(_) => ErrorCode::UserOffline,
            Self::UnknownUser(_) => ErrorCode::UnknownUser,
            Self::NotInRoom(_) => ErrorCode::NotInRoom,
            Self::Closing => ErrorCode::ShuttingDown,
        }
    }
}

/// A message the hub accepted and routed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    pub id: MsgId,
    pub ts: i64,
}

/// Result of offering a frame to one peer. Never blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    Queued,
    /// The outbox was full: the peer has been told to close as too slow.
    TooSlow,
    /// The peer is closing.
    Gone,
}

/// Offers `frame` to `peer`, and closes the peer as too slow when its outbox is full.
pub fn offer(peer: &Peer, frame: Message) -> Offer {
    match peer.outbox.try_send(frame) {
        Ok(()) => Offer::Queued,
        Err(TrySendError::Full(_)) => {
            peer.close.close(CloseReason::TooSlow);
            Offer::TooSlow
        }
        Err(TrySendError::Closed(_)) => Offer::Gone,
    }
}

/// Encodes a native frame as a WebSocket text message.
pub fn native(frame: &ServerFrame) -> Message {
    Message::Text(Utf8Bytes::from(frame.to_json()))
}

fn seed(frame: &SeedChat) -> Message {
    Message::Text(Utf8Bytes::from(frame.to_json()))
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

struct Member {
    nick: Nick,
    peer: Peer,
    rooms: BTreeSet<RoomName>,
}

#[derive(Default)]
struct Room {
    members: BTreeSet<ConnId>,
}

#[derive(Default)]
struct State {
    next_conn: ConnId,
    next_guest: u64,
    next_msg: MsgId,
    conns: HashMap<ConnId, Member>,
    /// Named users (native and seed single-chat) online, by nickname.
    online: HashMap<Nick, ConnId>,
    /// Everyone who has been online since start, for telling "offline" from "unknown".
    known: HashSet<Nick>,
    rooms: BTreeMap<RoomName, Room>,
}

/// The routing table of one server. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Hub {
    state: Mutex<State>,
    limits: Limits,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("conns", &self.conns.len())
            .field("rooms", &self.rooms.len())
            .finish()
    }
}

impl Hub {
    /// An empty hub; `limits` are told to native clients at login.
    pub fn new(limits: Limits) -> Self {
        let mut state = State {
            next_guest: 1,
            next_msg: 1,
            ..State::default()
        };
        state.rooms.insert(RoomName::lobby(), Room::default());
        Self {
            state: Mutex::new(state),
            limits,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while routing is a bug; the state it leaves is still consistent enough to
        // keep serving everyone else, so recover the guard instead of spreading the panic.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Logs in a named user. A native user joins the lobby and is sent `welcome` before any
    /// other frame; everyone else hears of them by `presence` and `joined`.
    pub fn login(&self, nick: Nick, peer: Peer) -> Result<ConnId, HubError> {
        if nick.is_reserved() {
            return Err(HubError::Reserved(nick));
        }
        let mut st = self.lock();
        if st.online.contains_key(&nick) {
            return Err(HubError::NickTaken(nick));
        }
        let id = st.add(nick.clone(), peer);
        st.online.insert(nick.clone(), id);
        st.known.insert(nick.clone());
        let kind = st.conns[&id].peer.kind;
        if kind == PeerKind::Native {
            let welcome = ServerFrame::Welcome {
                nick: nick.clone(),
                rooms: vec![RoomName::lobby()],
                users: st.online_users(),
                limits: self.limits.clone(),
            };
            offer(&st.conns[&id].peer, native(&welcome));
        }
        st.to_natives_except(id, &ServerFrame::Presence { nick, online: true });
        if kind == PeerKind::Native {
            st.join(id, RoomName::lobby());
        }
        Ok(id)
    }

    /// Logs in an anonymous seed group page as the next `guest-N`, in the lobby.
    pub fn login_guest(&self, peer: Peer) -> (ConnId, Nick) {
        let mut st = self.lock();
        let nick = Nick::guest(st.next_guest);
        st.next_guest += 1;
        let id = st.add(nick.clone(), peer);
        st.join(id, RoomName::lobby());
        (id, nick)
    }

    /// Removes a connection: it leaves its rooms, and a named user goes offline.
    pub fn logout(&self, id: ConnId) {
        let mut st = self.lock();
        let Some(member) = st.conns.get(&id) else {
            return;
        };
        let nick = member.nick.clone();
        for room in member.rooms.clone() {
            st.leave(id, &room);
        }
        if st.online.get(&nick) == Some(&id) {
            st.online.remove(&nick);
            st.to_natives_except(
                id,
                &ServerFrame::Presence {
                    nick,
                    online: false,
                },
            );
        }
        st.conns.remove(&id);
    }

    /// Routes a message from connection `from` to a room or a user.
    pub fn send(&self, from: ConnId, target: Target, text: String) -> Result<Accepted, HubError> {
        let mut st = self.lock();
        let Some(sender) = st.conns.get(&from) else {
            return Err(HubError::Closing);
        };
        let from_nick = sender.nick.clone();
        match &target {
            Target::Room(room) => {
                if !sender.rooms.contains(room) {
                    return Err(HubError::NotInRoom(room.clone()));
                }
            }
            Target::User(to) => {
                if !st.online.contains_key(to) {
                    return Err(if st.known.contains(to) {
                        HubError::UserOffline(to.clone())
                    } else {
                        HubError::UnknownUser(to.clone())
                    });
                }
            }
        }
        let accepted = Accepted {
            id: st.next_msg,
            ts: now_ms(),
        };
        st.next_msg += 1;
        let message = ChatMessage {
            id: accepted.id,
            ts: accepted.ts,
            from: from_nick,
            target,
            text,
        };
        st.deliver(from, &message);
        Ok(accepted)
    }

    /// Puts connection `id` in `room`, creating the room; tells the members and sends the
    /// joiner the member list.
    pub fn join(&self, id: ConnId, room: RoomName) {
        let mut st = self.lock();
        st.join(id, room);
    }

    /// Takes connection `id` out of `room`.
    pub fn leave(&self, id: ConnId, room: &RoomName) -> Result<(), HubError> {
        let mut st = self.lock();
        let member = st.conns.get(&id).is_some_and(|m| m.rooms.contains(room));
        if !member {
            return Err(HubError::NotInRoom(room.clone()));
        }
        st.leave(id, room);
        Ok(())
    }

    /// Every room, with its member count and whether `id` is in it.
    pub fn rooms(&self, id: ConnId) -> Vec<RoomInfo> {
        let st = self.lock();
        st.rooms
            .iter()
            .map(|(name, room)| RoomInfo {
                name: name.clone(),
                members: room.members.len(),
                joined: room.members.contains(&id),
            })
            .collect()
    }

    /// Who is online (`room` is `None`) or in `room`.
    pub fn who(&self, room: Option<&RoomName>) -> Vec<Nick> {
        let st = self.lock();
        match room {
            None => st.online_users(),
            Some(room) => st.room_users(room),
        }
    }
}

impl State {
    fn add(&mut self, nick: Nick, peer: Peer) -> ConnId {
        let id = self.next_conn;
        self.next_conn += 1;
        self.conns.insert(
            id,
            Member {
                nick,
                peer,
                rooms: BTreeSet::new(),
            },
        );
        id
    }

    fn online_users(&self) -> Vec<Nick> {
        let mut users: Vec<Nick> = self.online.keys().cloned().collect();
        users.sort();
        users
    }

    fn room_users(&self, room: &RoomName) -> Vec<Nick> {
        let Some(room) = self.rooms.get(room) else {
            return Vec::new();
        };
        let mut users: Vec<Nick> = room
            .members
            .iter()
            .filter_map(|id| self.conns.get(id).map(|m| m.nick.clone()))
            .collect();
        users.sort();
        users
    }

    /// Sends `frame` to every native connection but `except`, encoded once.
    fn to_natives_except(&self, except: ConnId, frame: &ServerFrame) {
        let mut encoded = None;
        for (id, member) in &self.conns {
            if *id != except && member.peer.kind == PeerKind::Native {
                let msg = encoded.get_or_insert_with(|| native(frame));
                offer(&member.peer, msg.clone());
            }
        }
    }

    /// Sends `frame` to the native members of `room`, encoded once.
    fn to_room_natives(&self, room: &RoomName, frame: &ServerFrame) {
        let Some(members) = self.rooms.get(room) else {
            return;
        };
        let mut encoded = None;
        for id in &members.members {
            if let Some(member) = self.conns.get(id)
                && member.peer.kind == PeerKind::Native
            {
                let msg = encoded.get_or_insert_with(|| native(frame));
                offer(&member.peer, msg.clone());
            }
        }
    }

    fn join(&mut self, id: ConnId, room: RoomName) {
        let Some(member) = self.conns.get_mut(&id) else {
            return;
        };
        let kind = member.peer.kind;
        if member.rooms.insert(room.clone()) {
            let nick = member.nick.clone();
            self.rooms
                .entry(room.clone())
                .or_default()
                .members
                .insert(id);
            tracing::debug!(nick = %nick, room = %room, "joined");
            self.to_room_natives(
                &room,
                &ServerFrame::Joined {
                    room: room.clone(),
                    nick,
                },
            );
        }
        if kind == PeerKind::Native {
            let users = self.room_users(&room);
            let frame = ServerFrame::Users {
                room: Some(room),
                users,
            };
            offer(&self.conns[&id].peer, native(&frame));
        }
    }

    fn leave(&mut self, id: ConnId, room: &RoomName) {
        let Some(member) = self.conns.get_mut(&id) else {
            return;
        };
        if !member.rooms.remove(room) {
            return;
        }
        let nick = member.nick.clone();
        let frame = ServerFrame::Left {
            room: room.clone(),
            nick,
        };
        // The leaver hears it too, so every client learns of leaving the same way.
        self.to_room_natives(room, &frame);
        if let Some(r) = self.rooms.get_mut(room) {
            r.members.remove(&id);
            if r.members.is_empty() && *room != RoomName::lobby() {
                self.rooms.remove(room);
            }
        }
    }

    /// Delivers an accepted message to everyone who should see it but the sending connection.
    fn deliver(&self, from: ConnId, message: &ChatMessage) {
        match &message.target {
            Target::Room(room) => self.deliver_to_room(from, room, message),
            Target::User(to) => {
                let Some(member) = self.online.get(to).and_then(|id| self.conns.get(id)) else {
                    return;
                };
                if self.online.get(to) == Some(&from) {
                    return; // a note to oneself: the ack is the delivery
                }
                let frame = match member.peer.kind {
                    PeerKind::Native => native(&ServerFrame::Message(message.clone())),
                    PeerKind::SeedSingle | PeerKind::SeedGroup => seed(&SeedChat {
                        message: message.text.clone(),
                        from_user: message.from.to_string(),
                        to_user: to.to_string(),
                        id: Some(message.id),
                        ts: Some(message.ts),
                    }),
                };
                offer(&member.peer, frame);
            }
        }
    }

    fn deliver_to_room(&self, from: ConnId, room: &RoomName, message: &ChatMessage) {
        let Some(members) = self.rooms.get(room) else {
            return;
        };
        let from_guest = self
            .conns
            .get(&from)
            .is_some_and(|m| m.peer.kind == PeerKind::SeedGroup);
        let mut as_native = None;
        let mut as_text = None;
        for id in &members.members {
            if *id == from {
                continue;
            }
            let Some(member) = self.conns.get(id) else {
                continue;
            };
            let msg = match member.peer.kind {
                PeerKind::Native => as_native
                    .get_or_insert_with(|| native(&ServerFrame::Message(message.clone())))
                    .clone(),
                // The seed group page shows text as it is: a guest's words are relayed
                // verbatim, as the seed did; a named user's carry their name.
                PeerKind::SeedGroup => as_text
                    .get_or_insert_with(|| {
                        let text = if from_guest {
                            message.text.clone()
                        } else {
                            format!("{}: {}", message.from, message.text)
                        };
                        Message::Text(Utf8Bytes::from(text))
                    })
                    .clone(),
                PeerKind::SeedSingle => continue,
            };
            offer(&member.peer, msg);
        }
    }
}
