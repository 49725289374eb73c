//! Delivering: messages to a room's members or to a user's sessions, each encoded once per
//! protocol, and notices (edits, typing) to those who see the conversation.

use super::*;

impl Hub {
    /// Sends `frame` about a message of `author` in the conversation `target` to everyone who
    /// sees that conversation on a native client: the room's members, or both people of a
    /// direct chat in all their sessions.
    pub fn notify(&self, target: &Target, author: &Nick, frame: &ServerFrame) {
        match target {
            Target::Room(room) => self.to_room_natives(room, frame),
            Target::User(to) => {
                self.to_sessions(to, frame);
                if to != author {
                    self.to_sessions(author, frame);
                }
            }
        }
    }

    /// Sends `frame` to every native session of `nick`.
    pub fn to_sessions(&self, nick: &Nick, frame: &ServerFrame) {
        let mut encoded = None;
        for id in self.online.get(nick).into_iter().flatten() {
            if let Some(member) = self.conns.get(id)
                && member.peer.kind == PeerKind::Native
            {
                let msg = encoded.get_or_insert_with(|| native(frame));
                offer(&member.peer, msg.clone());
            }
        }
    }

    /// Passes on that `nick` (on connection `from`) is typing: to the room's other native
    /// members, or to the recipient's native sessions.
    pub fn typing(&self, from: ConnId, nick: &Nick, target: &Target, for_ms: u64) {
        let frame = ServerFrame::Typing {
            target: target.clone(),
            nick: nick.clone(),
            for_ms,
        };
        match target {
            Target::Room(room) => {
                let Some(members) = self.rooms.get(room) else {
                    return;
                };
                let mut encoded = None;
                for id in members.members.iter().filter(|id| **id != from) {
                    if let Some(member) = self.conns.get(id)
                        && member.peer.kind == PeerKind::Native
                    {
                        let msg = encoded.get_or_insert_with(|| native(&frame));
                        offer(&member.peer, msg.clone());
                    }
                }
            }
            Target::User(to) => self.to_sessions(to, &frame),
        }
    }

    /// Sends `frame` to every native connection but `except`, encoded once.
    pub(super) fn to_natives_except(&self, except: ConnId, frame: &ServerFrame) {
        let mut encoded = None;
        for (id, member) in &self.conns {
            if *id != except && member.peer.kind == PeerKind::Native {
                let msg = encoded.get_or_insert_with(|| native(frame));
                offer(&member.peer, msg.clone());
            }
        }
    }

    /// Sends `frame` to the native members of `room`, encoded once.
    pub(super) fn to_room_natives(&self, room: &RoomName, frame: &ServerFrame) {
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

    /// Delivers a stored message to everyone online who should see it but the sending
    /// connection.
    pub fn deliver(&self, from: ConnId, message: &ChatMessage) {
        match &message.target {
            Target::Room(room) => self.deliver_to_room(from, room, message),
            Target::User(to) => {
                // Every session of the recipient, and the sender's other sessions, so that
                // each of their screens shows the conversation whole.
                let sender_sessions = self
                    .online
                    .get(&message.from)
                    .filter(|_| message.from != *to);
                let sessions = self
                    .online
                    .get(to)
                    .into_iter()
                    .chain(sender_sessions)
                    .flatten()
                    .filter(|id| **id != from);
                let (mut as_native, mut as_seed) = (None, None);
                let mut delivered = 0;
                for id in sessions {
                    let Some(member) = self.conns.get(id) else {
                        continue;
                    };
                    let frame = match member.peer.kind {
                        PeerKind::Native => as_native
                            .get_or_insert_with(|| native(&ServerFrame::Message(message.clone())))
                            .clone(),
                        PeerKind::SeedSingle | PeerKind::SeedGroup => as_seed
                            .get_or_insert_with(|| seed(&seed_frame(message)))
                            .clone(),
                    };
                    if offer(&member.peer, frame) == Offer::Queued {
                        delivered += 1;
                    }
                }
                self.metrics.deliveries.fetch_add(delivered, Relaxed);
            }
        }
    }

    pub(super) fn deliver_to_room(&self, from: ConnId, room: &RoomName, message: &ChatMessage) {
        let Some(members) = self.rooms.get(room) else {
            return;
        };
        let mut as_native = None;
        let mut as_text = None;
        let mut delivered = 0;
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
                        // Only guests of the seed group page have reserved names (on any
                        // node of a cluster).
                        let text = if message.from.is_reserved() {
                            message.text.clone()
                        } else {
                            format!("{}: {}", message.from, message.text)
                        };
                        Frame::text(&text)
                    })
                    .clone(),
                PeerKind::SeedSingle => continue,
            };
            if offer(&member.peer, msg) == Offer::Queued {
                delivered += 1;
            }
        }
        self.metrics.deliveries.fetch_add(delivered, Relaxed);
    }
}

/// A direct message as the seed single-chat page shows it.
pub fn seed_frame(message: &ChatMessage) -> SeedChat {
    let to_user = match &message.target {
        Target::User(to) => to.to_string(),
        Target::Room(room) => room.to_string(),
    };
    SeedChat {
        message: message.text.clone(),
        from_user: message.from.to_string(),
        to_user,
        id: Some(message.id),
        ts: Some(message.ts),
    }
}
