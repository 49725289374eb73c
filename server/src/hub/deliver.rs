//! Delivering: messages to a room's members or to a user's sessions, each encoded once per
//! protocol, and notices (edits, typing) to those who see the conversation.

use super::*;
use crate::wire::Run;

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

    /// Delivers messages, in order, to everyone online who should see them but the connection
    /// each came from (`(from, message)`). Consecutive messages to one room go to its members
    /// together, as one run of frames per protocol; the members of a room do not change
    /// between them, since every other request is carried out before or after a round of
    /// messages.
    pub fn deliver(&self, messages: &[(ConnId, ChatMessage)]) {
        let same_room = |(_, a): &(ConnId, ChatMessage), (_, b): &(ConnId, ChatMessage)| matches!((&a.target, &b.target), (Target::Room(x), Target::Room(y)) if x == y);
        for run in messages.chunk_by(same_room) {
            match &run[0].1.target {
                Target::Room(room) => self.deliver_run(room, run),
                Target::User(to) => self.deliver_direct(run[0].0, to, &run[0].1),
            }
        }
    }

    /// Delivers a direct message to every session of the recipient, and to the sender's other
    /// sessions, so that each of their screens shows the conversation whole.
    fn deliver_direct(&self, from: ConnId, to: &Nick, message: &ChatMessage) {
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

    /// Delivers messages to `room` (each `(from, message)`) to its members, each encoded once
    /// per protocol into one [`Run`]: a member gets the run's frames as one piece (split at
    /// its outbox's [`max_piece`](crate::peer::Outbox::max_piece)), or, if it sent some of
    /// them, the stretches between its own. Per member that is one look-up and one outbox push
    /// for the whole run rather than one per message.
    fn deliver_run(&self, room: &RoomName, messages: &[(ConnId, ChatMessage)]) {
        let Some(members) = self.rooms.get(room) else {
            return;
        };
        let mut senders: Vec<ConnId> = messages.iter().map(|(from, _)| *from).collect();
        senders.sort_unstable();
        senders.dedup();
        let mut as_native = None;
        let mut as_text = None;
        let mut delivered = 0;
        for id in &members.members {
            let Some(member) = self.conns.get(id) else {
                continue;
            };
            let run = match member.peer.kind {
                PeerKind::Native => as_native.get_or_insert_with(|| {
                    Run::new(
                        messages
                            .iter()
                            .map(|(_, m)| native(&ServerFrame::Message(m.clone()))),
                    )
                }),
                PeerKind::SeedGroup => {
                    as_text.get_or_insert_with(|| Run::new(messages.iter().map(|(_, m)| text(m))))
                }
                PeerKind::SeedSingle => continue,
            };
            let own = senders.binary_search(id).is_ok();
            delivered += offer_run(&member.peer, run, |i| own && messages[i].0 == *id);
        }
        self.metrics.deliveries.fetch_add(delivered, Relaxed);
    }
}

/// Offers the frames of `run` but those that `skip`, in pieces of at most the outbox's
/// [`max_piece`](crate::peer::Outbox::max_piece), and returns how many frames were queued.
/// Stops at the first piece refused (the peer too slow, and closed, or gone).
fn offer_run(peer: &Peer, run: &Run, skip: impl Fn(usize) -> bool) -> u64 {
    let max = peer.outbox.max_piece();
    let mut queued = 0;
    let mut start = 0;
    while start < run.len() {
        if skip(start) {
            start += 1;
            continue;
        }
        let mut end = start + 1;
        while end < run.len() && end - start < max && !skip(end) {
            end += 1;
        }
        if offer(peer, run.slice(start..end)) != Offer::Queued {
            break;
        }
        queued += (end - start) as u64;
        start = end;
    }
    queued
}

/// A room message as the seed group page shows it: text as it is. A guest's words are relayed
/// verbatim, as the seed did; a named user's carry their name.
fn text(message: &ChatMessage) -> Frame {
    // Only guests of the seed group page have reserved names (on any node of a cluster).
    if message.from.is_reserved() {
        Frame::text(&message.text)
    } else {
        Frame::text(&format!("{}: {}", message.from, message.text))
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
