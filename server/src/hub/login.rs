//! Logging in and out: named users and guests, and the presence grace period in which a
//! user whose last session dropped stays shown online and in their rooms.

use super::*;

impl Hub {
    /// Logs in a named user. A native user joins the lobby and is sent `welcome` before any
    /// other frame; everyone else hears of them in the next `presence_changes` (on their
    /// first session) and by `joined` (or, in a large room, `room_changes`).
    /// `another_session` lets an authenticated user in beside their other sessions.
    ///
    /// In a cluster, `beside` says the user has a session on another node too: they stay
    /// shown online through it.
    pub fn login(
        &mut self,
        nick: Nick,
        peer: Peer,
        another_session: bool,
        beside: bool,
    ) -> Result<(), HubError> {
        if self.conns.contains_key(&peer.id) {
            return Err(HubError::AlreadyLoggedIn);
        }
        if nick.is_reserved() {
            return Err(HubError::Reserved(nick));
        }
        let sessions = self.online.get(&nick).map_or(0, Vec::len);
        if sessions > 0 && !another_session {
            return Err(HubError::NickTaken(nick));
        }
        // Back within the grace period: others never saw the user leave.
        let returning = self.lingering.remove(&nick);
        // Moved here from another node: shown online already, and their rooms there are
        // joined again quietly.
        let moved_rooms = if beside {
            None
        } else {
            let removed = self.remote.remove(&nick);
            for room in removed.iter().flat_map(|r| &r.rooms) {
                self.roster.exit(room, &nick);
            }
            removed.filter(|r| r.named).map(|r| r.rooms)
        };
        let first_here = sessions == 0 && returning.is_none();
        let (id, kind) = (peer.id, peer.kind);
        peer.set_logged_in();
        self.online.entry(nick.clone()).or_default().push(id);
        if first_here {
            self.metrics.users_online.fetch_add(1, Relaxed);
        }
        self.known.insert(nick.clone());
        self.add(nick.clone(), peer);
        let rejoin = returning.map(|r| r.rooms).or(moved_rooms);
        if let (Some(rooms), Some(member)) = (rejoin, self.conns.get_mut(&id)) {
            member.quiet_rejoin = rooms;
        }
        // Others hear of a user who was not shown online before in the next changes.
        self.sync_online(&nick);
        if kind == PeerKind::Native {
            let (users, total) = self.roster.first_online();
            let welcome = ServerFrame::Welcome {
                nick: nick.clone(),
                rooms: vec![RoomName::lobby()],
                users,
                users_total: Some(total),
                limits: self.limits.clone(),
            };
            offer(&self.conns[&id].peer, native(&welcome));
        }
        if kind == PeerKind::Native {
            self.join(id, RoomName::lobby());
        }
        Ok(())
    }

    /// Logs in an anonymous seed group page as the next `guest-N`, in the lobby.
    /// In a cluster the number comes from the cluster (`number`).
    pub fn login_guest(&mut self, peer: Peer, number: Option<u64>) -> Nick {
        let nick = Nick::guest(number.unwrap_or(self.next_guest));
        self.next_guest += 1;
        let id = peer.id;
        self.add(nick.clone(), peer);
        self.join(id, RoomName::lobby());
        nick
    }

    fn add(&mut self, nick: Nick, peer: Peer) {
        let member = Member {
            nick,
            peer,
            rooms: Rooms::default(),
            quiet_rejoin: BTreeSet::new(),
        };
        self.conns.insert(member.peer.id, member);
    }

    /// Removes a connection: it leaves its rooms, and a named user goes offline. With `grace`,
    /// a native user's last session leaves quietly instead: they stay listed as online, and no
    /// one hears that they left, until [`grace_over`](Self::grace_over) is called with the
    /// returned absence, unless they come back first.
    pub fn logout(&mut self, id: ConnId, grace: bool) -> Option<Absence> {
        let member = self.conns.get(&id)?;
        let nick = member.nick.clone();
        let last_session = self
            .online
            .get(&nick)
            .is_some_and(|s| s.len() == 1 && s[0] == id);
        if grace && last_session && member.peer.kind == PeerKind::Native {
            let rooms: BTreeSet<RoomName> = member.rooms.iter().cloned().collect();
            for room in &rooms {
                self.remove_member(id, room);
            }
            if let Some(sessions) = self.online.get_mut(&nick) {
                sessions.clear();
            }
            self.conns.remove(&id);
            self.next_linger += 1;
            let token = self.next_linger;
            self.lingering
                .insert(nick.clone(), Lingering { token, rooms });
            return Some(Absence { nick, token });
        }
        for room in member.rooms.clone().0 {
            self.leave_room(id, &room);
        }
        if let Some(sessions) = self.online.get_mut(&nick)
            && let Some(at) = sessions.iter().position(|s| *s == id)
        {
            sessions.remove(at);
            if sessions.is_empty() {
                self.online.remove(&nick);
                self.gone_offline(&nick);
            }
        }
        self.conns.remove(&id);
        None
    }

    /// The grace period of an absence ended: if the user has not come back, everyone now
    /// hears that they left their rooms and went offline.
    pub fn grace_over(&mut self, absence: &Absence) {
        let still_away = self
            .lingering
            .get(&absence.nick)
            .is_some_and(|l| l.token == absence.token);
        if !still_away {
            return;
        }
        let Some(lingering) = self.lingering.remove(&absence.nick) else {
            return;
        };
        for room in lingering.rooms {
            self.announce_left(room, absence.nick.clone());
        }
        if self.online.get(&absence.nick).is_some_and(Vec::is_empty) {
            self.online.remove(&absence.nick);
            self.gone_offline(&absence.nick);
        }
    }

    /// A returning user's rooms that they did not join again: announce that they left them.
    pub fn settle_rejoin(&mut self, id: ConnId) {
        let Some(member) = self.conns.get_mut(&id) else {
            return;
        };
        let nick = member.nick.clone();
        for room in std::mem::take(&mut member.quiet_rejoin) {
            self.announce_left(room, nick.clone());
        }
    }
}
