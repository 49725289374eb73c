//! Users on other nodes of a cluster: who is online and in which rooms there, kept in line
//! with the cluster's view, and the events this node shares with the others.

use super::*;

impl Hub {
    /// Makes this the hub of a cluster node: joins and leaves are kept for
    /// [`take_events`](Self::take_events), and `remote` users are online elsewhere.
    pub fn into_cluster(&mut self, remote: Vec<crate::cluster::RemoteUser>) {
        self.events = Some(Vec::new());
        for user in remote {
            self.known.insert(user.nick.clone());
            self.roster.add_online_quietly(&user.nick);
            for room in &user.rooms {
                self.roster.enter(room, &user.nick);
            }
            self.remote.insert(
                user.nick,
                Remote {
                    named: true,
                    rooms: user.rooms.into_iter().collect(),
                },
            );
        }
    }

    /// What other nodes should hear of since the last call.
    pub fn take_events(&mut self) -> Vec<crate::cluster::Event> {
        self.events.as_mut().map(std::mem::take).unwrap_or_default()
    }

    pub(super) fn emit(&mut self, event: crate::cluster::Event) {
        if let Some(events) = &mut self.events {
            events.push(event);
        }
    }

    /// Whether `nick` has a session on this node.
    pub fn has_sessions(&self, nick: &Nick) -> bool {
        self.online.get(nick).is_some_and(|s| !s.is_empty())
    }

    /// Whether `nick` has a session on this node (or lingers here in their grace period).
    pub fn is_here(&self, nick: &Nick) -> bool {
        self.online.get(nick).is_some_and(|s| !s.is_empty()) || self.lingering.contains_key(nick)
    }

    /// Named users with a session here or in their grace period here, with their rooms and
    /// whether they are away (for registering them again with the cluster).
    pub fn local_users(&self) -> Vec<(Nick, Vec<RoomName>, bool)> {
        self.online
            .iter()
            .filter_map(|(nick, sessions)| {
                if let Some(lingering) = self.lingering.get(nick) {
                    let rooms = lingering.rooms.iter().cloned().collect();
                    return Some((nick.clone(), rooms, true));
                }
                let rooms = sessions
                    .iter()
                    .filter_map(|id| self.conns.get(id))
                    .flat_map(|m| m.rooms.iter().cloned())
                    .collect::<BTreeSet<_>>();
                (!sessions.is_empty()).then(|| (nick.clone(), rooms.into_iter().collect(), false))
            })
            .collect()
    }

    /// Remembers a user who first logged in on another node.
    pub fn add_known(&mut self, nick: Nick) {
        self.known.insert(nick);
    }

    /// `nick` came online on another node. A user lingering here moved there: their absence
    /// here ends quietly.
    pub fn remote_online(&mut self, nick: Nick, moved: bool) {
        let lingered = self.lingering.remove(&nick);
        if lingered.is_some() && self.online.get(&nick).is_some_and(Vec::is_empty) {
            self.online.remove(&nick);
            self.metrics.users_online.fetch_sub(1, Relaxed);
        }
        let shown = lingered.is_some() || self.is_online(&nick);
        self.known.insert(nick.clone());
        let entry = self.remote.entry(nick.clone()).or_default();
        entry.named = true;
        // A user who moved keeps their rooms: the new node joins them again quietly and
        // announces the ones they did not come back to (see `login`).
        let rooms = if let Some(lingered) = lingered {
            Some(lingered.rooms)
        } else if !moved && !shown {
            Some(BTreeSet::new())
        } else {
            None
        };
        if let Some(rooms) = rooms {
            let before = std::mem::replace(&mut entry.rooms, rooms);
            let after = entry.rooms.clone();
            for room in &before {
                self.roster.exit(room, &nick);
            }
            for room in &after {
                self.roster.enter(room, &nick);
            }
        }
        self.sync_online(&nick);
    }

    /// Brings the users online elsewhere in line with `remote`, the cluster's view (after an
    /// outage, during which nodes may have died or Redis may have lost its data).
    pub fn reconcile(&mut self, remote: Vec<crate::cluster::RemoteUser>) {
        let now: HashMap<Nick, Vec<RoomName>> =
            remote.into_iter().map(|u| (u.nick, u.rooms)).collect();
        let gone: Vec<Nick> = self
            .remote
            .iter()
            .filter(|(nick, r)| r.named && !now.contains_key(*nick))
            .map(|(nick, _)| nick.clone())
            .collect();
        for nick in gone {
            self.remote_offline(&nick);
        }
        for (nick, rooms) in now {
            if self.has_sessions(&nick) {
                continue;
            }
            if !self.remote.get(&nick).is_some_and(|r| r.named) {
                self.remote_online(nick.clone(), false);
            }
            for room in rooms {
                self.remote_joined(room, nick.clone());
            }
        }
    }

    /// `nick`, on another node, went offline: they leave their rooms.
    pub fn remote_offline(&mut self, nick: &Nick) {
        let Some(remote) = self.remote.remove(nick) else {
            return;
        };
        for room in &remote.rooms {
            self.roster.exit(room, nick);
            self.tell_room(room, nick, false, None);
        }
        self.sync_online(nick);
    }

    /// `nick`, on another node, joined `room`.
    pub fn remote_joined(&mut self, room: RoomName, nick: Nick) {
        let entry = self.remote.entry(nick.clone()).or_default();
        if entry.rooms.insert(room.clone()) {
            self.roster.enter(&room, &nick);
            self.tell_room(&room, &nick, true, None);
        }
    }

    /// `nick`, on another node, left `room`.
    pub fn remote_left(&mut self, room: &RoomName, nick: &Nick) {
        let Some(entry) = self.remote.get_mut(nick) else {
            return;
        };
        let was_in = entry.rooms.remove(room);
        if !entry.named && entry.rooms.is_empty() {
            self.remote.remove(nick);
        }
        if was_in {
            self.roster.exit(room, nick);
            self.tell_room(room, nick, false, None);
        }
    }
}
