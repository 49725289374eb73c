//! Rooms: joining and leaving them, the list of rooms, and telling members who entered or
//! left.

use super::*;

impl Hub {
    /// Puts connection `id` in `room`, creating the room, unless it is in too many already.
    pub fn try_join(&mut self, id: ConnId, room: RoomName) -> Result<(), HubError> {
        let member = self.conns.get(&id).ok_or(HubError::NotLoggedIn)?;
        if !member.rooms.contains(&room) && member.rooms.len() >= MAX_ROOMS_PER_CONNECTION {
            return Err(HubError::TooManyRooms);
        }
        self.join(id, room);
        Ok(())
    }

    /// Puts connection `id` in `room`, creating the room; tells the members and sends a native
    /// joiner the member list.
    pub fn join(&mut self, id: ConnId, room: RoomName) {
        // The room's own copy of its name, shared by its members, rather than the one each
        // join frame brought.
        let room = match self.rooms.get_key_value(&room) {
            Some((name, _)) => name.clone(),
            None => room,
        };
        let Some(member) = self.conns.get_mut(&id) else {
            return;
        };
        let kind = member.peer.kind;
        let quiet = member.quiet_rejoin.remove(&room);
        if member.rooms.insert(room.clone()) {
            let nick = member.nick.clone();
            self.rooms
                .entry(room.clone())
                .or_default()
                .members
                .insert(id);
            self.roster.enter(&room, &nick);
            tracing::debug!(nick = %nick, room = %room, "joined");
            self.emit(crate::cluster::Event::Joined {
                room: room.clone(),
                nick: nick.clone(),
            });
            if !quiet {
                self.tell_room(&room, &nick, true, Some(id));
            }
        }
        if kind == PeerKind::Native {
            let frame = self.roster.room_page(&room);
            offer(&self.conns[&id].peer, native(&frame));
        }
    }

    /// Takes connection `id` out of `room`.
    pub fn leave(&mut self, id: ConnId, room: &RoomName) -> Result<(), HubError> {
        if !self.in_room(id, room) {
            return Err(HubError::NotInRoom(room.clone()));
        }
        self.leave_room(id, room);
        Ok(())
    }

    pub(super) fn leave_room(&mut self, id: ConnId, room: &RoomName) {
        let Some(member) = self.conns.get_mut(&id) else {
            return;
        };
        if !member.rooms.remove(room) {
            return;
        }
        let nick = member.nick.clone();
        self.roster.exit(room, &nick);
        // The leaver hears it too, so every client learns of leaving the same way.
        self.tell_room(room, &nick, false, Some(id));
        self.emit(crate::cluster::Event::Left {
            room: room.clone(),
            nick,
        });
        if let Some(r) = self.rooms.get_mut(room) {
            r.members.remove(&id);
            if r.members.is_empty() && *room != RoomName::lobby() {
                self.rooms.remove(room);
            }
        }
    }

    /// Every room, with its member count and whether `id` is in it.
    pub fn rooms(&self, id: ConnId) -> Vec<RoomInfo> {
        let mut rooms: BTreeMap<&RoomName, RoomInfo> = self
            .rooms
            .iter()
            .map(|(name, room)| {
                let info = RoomInfo {
                    name: name.clone(),
                    members: room.members.len(),
                    joined: room.members.contains(&id),
                };
                (name, info)
            })
            .collect();
        for room in self.remote.values().flat_map(|r| &r.rooms) {
            rooms
                .entry(room)
                .or_insert_with(|| RoomInfo {
                    name: room.clone(),
                    members: 0,
                    joined: false,
                })
                .members += 1;
        }
        rooms.into_values().collect()
    }

    /// Tells the members of `room`, here and on other nodes, that `nick` left it.
    pub(super) fn announce_left(&mut self, room: RoomName, nick: Nick) {
        self.tell_room(&room, &nick, false, None);
        self.emit(crate::cluster::Event::Left { room, nick });
    }

    /// Tells the native members of `room` on this node that `nick` entered (`joined`) or left
    /// it: at once in a small room, in the next `room_changes` in a large one. `own`, the
    /// connection that entered or left, hears at once either way.
    pub(super) fn tell_room(
        &mut self,
        room: &RoomName,
        nick: &Nick,
        joined: bool,
        own: Option<ConnId>,
    ) {
        let frame = if joined {
            ServerFrame::Joined {
                room: room.clone(),
                nick: nick.clone(),
            }
        } else {
            ServerFrame::Left {
                room: room.clone(),
                nick: nick.clone(),
            }
        };
        let large =
            self.roster.is_large(room) || (!joined && self.roster.room_len(room) >= LARGE_ROOM);
        let mut own_heard = false;
        if large {
            self.roster.note_room_change(room, nick);
        } else {
            // Changes gathered while the room was large go first, so that every client applies
            // them in the order they happened.
            self.send_room_changes(room);
            self.to_room_natives(room, &frame);
            own_heard = own.is_some_and(|id| {
                self.rooms
                    .get(room)
                    .is_some_and(|r| r.members.contains(&id))
            });
        }
        if let Some(member) = own.and_then(|id| self.conns.get(&id))
            && member.peer.kind == PeerKind::Native
            && !own_heard
        {
            offer(&member.peer, native(&frame));
        }
    }

    /// Takes `id` out of `room`'s members quietly, dropping an empty room other than the lobby.
    pub(super) fn remove_member(&mut self, id: ConnId, room: &RoomName) {
        if let Some(member) = self.conns.get(&id) {
            self.roster.exit(room, &member.nick);
        }
        if let Some(r) = self.rooms.get_mut(room) {
            r.members.remove(&id);
            if r.members.is_empty() && *room != RoomName::lobby() {
                self.rooms.remove(room);
            }
        }
    }
}
