//! The hub: who is connected, who is in which room, and where each message goes.
//!
//! The hub is plain data owned by the sequencer thread, so its routing is synchronous and runs
//! in one order. It never waits on a peer: it offers each frame to the peer's bounded outbox,
//! and a peer whose outbox is full is told to close as too slow (see [`Offer`]).
//!
//! A broadcast is encoded once per audience (native JSON, seed group text) and the encoded bytes
//! are shared by every recipient.
//!
//! A login costs the same however many are online: the lists it is sent are cut to a page
//! (see `roster`), and others hear of it in the next `presence_changes` frame (and, in a
//! large room, `room_changes`), which [`Hub::send_changes`] sends once per
//! [`Hub::changes_every`] (200 ms, longer with many connections).
//!
//! Logging in and out, with the presence grace period, is in `login`; joining and leaving
//! rooms in `rooms`; delivery in `deliver`; users on other nodes of a cluster in `remote`;
//! the name-ordered lists of who is online and in each room in `roster`.

mod deliver;
mod login;
mod remote;
mod rooms;
mod roster;

pub use deliver::seed_frame;

pub use roster::{
    CHANGES_EVERY, LARGE_ROOM, LISTED_CHANGES, LISTED_USERS, MAX_CHANGES_EVERY, WhoQuery,
};

use crate::metrics::Metrics;
use crate::peer::{CloseReason, ConnId, Peer, PeerKind};
use crate::wire::Frame;
use protocol::{
    ChatMessage, ErrorCode, Limits, Nick, RoomInfo, RoomName, SeedChat, ServerFrame, Target,
};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use thiserror::Error;
use tokio::sync::mpsc::error::TrySendError;

/// Why the hub refused a request. The `Display` text is written for the user.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HubError {
    #[error("the nickname {0} is reserved")]
    Reserved(Nick),
    #[error("the nickname {0} is already online")]
    NickTaken(Nick),
    #[error("nobody called {0} has been here")]
    UnknownUser(Nick),
    #[error("you are not in room {0}")]
    NotInRoom(RoomName),
    #[error("you are in {max} rooms already; leave one first", max = MAX_ROOMS_PER_CONNECTION)]
    TooManyRooms,
    #[error("this connection is logged in already")]
    AlreadyLoggedIn,
    #[error(r#"log in first: {{"type":"login","nick":"<your name>"}}"#)]
    NotLoggedIn,
}

impl HubError {
    /// The stable wire code for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Reserved(_) => ErrorCode::ReservedNick,
            Self::NickTaken(_) => ErrorCode::NickTaken,
            Self::UnknownUser(_) => ErrorCode::UnknownUser,
            Self::NotInRoom(_) => ErrorCode::NotInRoom,
            Self::AlreadyLoggedIn => ErrorCode::AlreadyLoggedIn,
            Self::TooManyRooms => ErrorCode::TooManyRooms,
            Self::NotLoggedIn => ErrorCode::NotLoggedIn,
        }
    }
}

/// The most rooms one connection may be in.
pub const MAX_ROOMS_PER_CONNECTION: usize = 100;

/// Where a message would go, decided before it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// To a room the sender is in.
    Room,
    /// To a user who is online now.
    Online(Nick),
    /// To a known user who is offline: kept for their next login.
    Offline(Nick),
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
pub fn offer(peer: &Peer, frame: Frame) -> Offer {
    offered(peer, peer.outbox.try_send(frame))
}

/// Offers `frame` to `peer` as [`offer`] does, letting it wait a little for the next frame to
/// the same connection (see [`crate::peer::late`]).
pub fn offer_later(peer: &Peer, frame: Frame) -> Offer {
    offered(peer, peer.outbox.try_send_later(frame))
}

/// What became of a frame offered to `peer`, closing it as too slow when its outbox was full.
fn offered(peer: &Peer, sent: Result<(), TrySendError<Frame>>) -> Offer {
    match sent {
        Ok(()) => Offer::Queued,
        Err(TrySendError::Full(_)) => {
            peer.close(CloseReason::TooSlow);
            Offer::TooSlow
        }
        Err(TrySendError::Closed(_)) => Offer::Gone,
    }
}

/// Encodes a native frame as a WebSocket text frame.
pub fn native(frame: &ServerFrame) -> Frame {
    Frame::json(frame)
}

/// Encodes a seed single-chat frame as a WebSocket text frame.
pub fn seed(frame: &SeedChat) -> Frame {
    Frame::json(frame)
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

#[derive(Debug)]
struct Member {
    nick: Nick,
    peer: Peer,
    rooms: Rooms,
    /// Rooms the user was in before a reconnect within the grace period: joining them again
    /// is not announced.
    quiet_rejoin: BTreeSet<RoomName>,
}

/// A connection's rooms, in order. Few, so a sorted vector: its first room takes one small
/// allocation rather than a tree node of eleven.
#[derive(Debug, Default, Clone)]
struct Rooms(Vec<RoomName>);

impl Rooms {
    fn contains(&self, room: &RoomName) -> bool {
        self.0.binary_search(room).is_ok()
    }

    /// Adds `room`; whether it was not there yet.
    fn insert(&mut self, room: RoomName) -> bool {
        match self.0.binary_search(&room) {
            Ok(_) => false,
            Err(at) => {
                self.0.insert(at, room);
                true
            }
        }
    }

    /// Removes `room`; whether it was there.
    fn remove(&mut self, room: &RoomName) -> bool {
        match self.0.binary_search(room) {
            Ok(at) => {
                self.0.remove(at);
                true
            }
            Err(_) => false,
        }
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn iter(&self) -> std::slice::Iter<'_, RoomName> {
        self.0.iter()
    }
}

#[derive(Debug, Default)]
struct Room {
    members: BTreeSet<ConnId>,
}

/// The routing table of one server.
#[derive(Debug)]
pub struct Hub {
    limits: Limits,
    metrics: Arc<Metrics>,
    next_guest: u64,
    /// Keyed by connection numbers the server gives itself, so a fast hash is safe.
    conns: HashMap<ConnId, Member, foldhash::fast::RandomState>,
    /// Named users (native and seed single-chat) online, by nickname, with every session of
    /// each (more than one only for registered users who logged in with their password).
    online: HashMap<Nick, Vec<ConnId>>,
    /// Everyone who has ever logged in, for telling "offline" from "unknown".
    known: HashSet<Nick>,
    rooms: BTreeMap<RoomName, Room>,
    /// Named users whose last session dropped within the presence grace period: still shown
    /// online, their rooms remembered, so that a quick reconnect makes no leave or join noise.
    lingering: HashMap<Nick, Lingering>,
    next_linger: u64,
    /// In a cluster: who is online on other nodes (guests too, once seen in a room), with
    /// their rooms.
    remote: HashMap<Nick, Remote>,
    /// In a cluster: joins and leaves of this node's users, for the other nodes to hear of.
    events: Option<Vec<crate::cluster::Event>>,
    /// Who is shown online and who is in each room, in name order, and the changes not yet
    /// sent.
    roster: roster::Roster,
}

/// Someone on another node of the cluster.
#[derive(Debug, Default)]
struct Remote {
    /// A named user (shown online), not a guest.
    named: bool,
    rooms: BTreeSet<RoomName>,
}

/// A user between their last session dropping and the end of the grace period.
#[derive(Debug)]
struct Lingering {
    /// Tells this absence from a later one when the grace period ends.
    token: u64,
    rooms: BTreeSet<RoomName>,
}

/// A user's absence that started a grace period; see [`Hub::grace_over`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Absence {
    pub nick: Nick,
    pub token: u64,
}

impl Hub {
    /// An empty hub that knows `known` users from earlier runs; `limits` are told to native
    /// clients at login.
    pub fn new(
        limits: Limits,
        known: impl IntoIterator<Item = Nick>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let mut rooms = BTreeMap::new();
        rooms.insert(RoomName::lobby(), Room::default());
        Self {
            limits,
            metrics,
            next_guest: 1,
            conns: HashMap::default(),
            online: HashMap::new(),
            known: known.into_iter().collect(),
            lingering: HashMap::new(),
            next_linger: 0,
            remote: HashMap::new(),
            events: None,
            rooms,
            roster: roster::Roster::default(),
        }
    }

    /// Whether `nick` has ever logged in.
    pub fn is_known(&self, nick: &Nick) -> bool {
        self.known.contains(nick)
    }

    /// The name connection `id` is logged in under.
    pub fn nick_of(&self, id: ConnId) -> Option<&Nick> {
        self.conns.get(&id).map(|m| &m.nick)
    }

    /// Whether connection `id` is in `room`.
    pub fn in_room(&self, id: ConnId, room: &RoomName) -> bool {
        self.conns.get(&id).is_some_and(|m| m.rooms.contains(room))
    }

    /// Whether `nick` is shown online (a user in their grace period is), here or on another
    /// node.
    pub fn is_online(&self, nick: &Nick) -> bool {
        self.online.contains_key(nick) || self.remote.get(nick).is_some_and(|r| r.named)
    }

    /// The rooms connection `id` is in.
    pub fn rooms_of(&self, id: ConnId) -> Vec<RoomName> {
        self.conns
            .get(&id)
            .map(|m| m.rooms.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Lists `nick` as online or offline as the hub now sees them; a change is told in the
    /// next `presence_changes`.
    fn sync_online(&mut self, nick: &Nick) {
        let shown = self.is_online(nick);
        self.roster.set_online(nick, shown);
    }

    fn gone_offline(&mut self, nick: &Nick) {
        self.metrics.users_online.fetch_sub(1, Relaxed);
        // Still shown online when on another node.
        self.sync_online(nick);
    }

    /// How long to gather changes before [`send_changes`](Self::send_changes): longer with
    /// more connections, see `roster::changes_every`.
    pub fn changes_every(&self) -> std::time::Duration {
        roster::changes_every(self.conns.len())
    }

    /// Whether presence changes or joins and leaves of large rooms wait to be sent.
    pub fn has_changes(&self) -> bool {
        self.roster.has_changes()
    }

    /// Sends what changed since the last call: one `presence_changes` frame to every native
    /// client, and one `room_changes` frame to the native members of each large room that
    /// changed. Called once per [`changes_every`](Self::changes_every) while
    /// [`has_changes`](Self::has_changes).
    pub fn send_changes(&mut self) {
        if let Some(frame) = self.roster.take_presence() {
            // Connection ids start at 1: nobody is excepted.
            self.to_natives_except(0, &frame);
        }
        for room in self.roster.changed_rooms() {
            self.send_room_changes(&room);
        }
    }

    fn send_room_changes(&mut self, room: &RoomName) {
        if !self.roster.has_room_changes(room) {
            return;
        }
        if let Some(frame) = self.roster.take_room(room) {
            self.to_room_natives(room, &frame);
        }
    }

    /// Decides where a message from connection `from` to `target` goes, or why it cannot.
    pub fn route(&self, from: ConnId, target: &Target) -> Result<Route, HubError> {
        let sender = self.conns.get(&from).ok_or(HubError::NotLoggedIn)?;
        match target {
            Target::Room(room) if sender.rooms.contains(room) => Ok(Route::Room),
            Target::Room(room) => Err(HubError::NotInRoom(room.clone())),
            Target::User(to)
                if self.online.get(to).is_some_and(|s| !s.is_empty())
                    || self.remote.get(to).is_some_and(|r| r.named) =>
            {
                Ok(Route::Online(to.clone()))
            }
            Target::User(to) if self.known.contains(to) => Ok(Route::Offline(to.clone())),
            Target::User(to) => Err(HubError::UnknownUser(to.clone())),
        }
    }

    /// The answer to a `who` request: who is online (`room` is `None`) or in `room`, a page
    /// at a time.
    pub fn who(&self, query: &WhoQuery) -> ServerFrame {
        self.roster.who(query)
    }
}
