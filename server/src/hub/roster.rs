//! Who is online and who is in each room, kept in name order, and the changes not yet told.
//!
//! Every list a client gets is cut to a page (the first [`LISTED_USERS`] names plus a total),
//! so a login costs the same with 10 users online as with 10,000. Presence changes, and joins
//! and leaves of large rooms, are gathered here and sent as one frame per interval
//! ([`CHANGES_EVERY`]) instead of one frame per change to everyone.

use protocol::{Nick, RoomName, ServerFrame};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::time::Duration;

/// Names listed in `welcome`, in the `users` frame after a join, and in a `who` answer unless
/// it asks for another `limit`: a screenful for the clients' lists, whose "and N more" pages
/// in the rest with `who`. Kept short so that a login costs the same however many are online.
pub const LISTED_USERS: usize = 50;

/// The most names one `who` answer lists.
pub const MAX_LISTED_USERS: usize = 500;

/// Names listed in one `presence_changes` or `room_changes` frame; further changes are only
/// counted (`unlisted`).
pub const LISTED_CHANGES: usize = 20;

/// Rooms with more members than this tell joins and leaves in `room_changes` batches; smaller
/// rooms send each `joined` and `left` at once.
pub const LARGE_ROOM: usize = 50;

/// How long presence changes and joins and leaves of large rooms are gathered before they are
/// sent, in one frame per client (and room), with few connections; see `changes_every`.
pub const CHANGES_EVERY: Duration = Duration::from_millis(200);

/// The longest changes are gathered, however many are connected.
pub const MAX_CHANGES_EVERY: Duration = Duration::from_secs(1);

/// How long changes are gathered with `connections` connected: [`CHANGES_EVERY`], and 50 µs
/// per connection beyond 4,000 (up to [`MAX_CHANGES_EVERY`] at 20,000). Each interval costs
/// one frame per client, so an interval that grows with the audience keeps the server's work
/// per login about the same during a crowd's arrival instead of growing with everyone already
/// there.
pub fn changes_every(connections: usize) -> Duration {
    let per_connection = Duration::from_micros(50);
    per_connection
        .saturating_mul(u32::try_from(connections).unwrap_or(u32::MAX))
        .clamp(CHANGES_EVERY, MAX_CHANGES_EVERY)
}

/// A `who` request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WhoQuery {
    /// Members of this room, or everyone online.
    pub room: Option<RoomName>,
    /// Only names starting with this (ignoring case).
    pub prefix: Option<String>,
    /// Only names after this one (the last of the previous page).
    pub after: Option<Nick>,
    /// At most this many names ([`LISTED_USERS`] by default, `MAX_LISTED_USERS` at most).
    pub limit: Option<u32>,
}

/// The sorted lists and the changes waiting to be sent.
#[derive(Debug, Default)]
pub struct Roster {
    /// Everyone shown online, here or on other nodes.
    online: BTreeSet<Nick>,
    /// The members of each room, here or on other nodes, with how many of their sessions
    /// (and other nodes) have them in it.
    rooms: HashMap<RoomName, BTreeMap<Nick, u32>>,
    /// Presence changes not yet sent: each name's latest state (`true` = online).
    presence: BTreeMap<Nick, bool>,
    /// Joins (`true`) and leaves of large rooms not yet sent: each name's latest state.
    changes: BTreeMap<RoomName, BTreeMap<Nick, bool>>,
}

impl Roster {
    /// Lists `nick` as online or not; a change is kept for the next `presence_changes`.
    pub fn set_online(&mut self, nick: &Nick, online: bool) {
        let changed = if online {
            self.online.insert(nick.clone())
        } else {
            self.online.remove(nick)
        };
        if changed {
            self.presence.insert(nick.clone(), online);
        }
    }

    /// Lists `nick` as online without telling anyone (users already online when a cluster
    /// node starts).
    pub fn add_online_quietly(&mut self, nick: &Nick) {
        self.online.insert(nick.clone());
    }

    /// One more session (or node) has `nick` in `room`.
    pub fn enter(&mut self, room: &RoomName, nick: &Nick) {
        *self
            .rooms
            .entry(room.clone())
            .or_default()
            .entry(nick.clone())
            .or_default() += 1;
    }

    /// One session (or node) fewer has `nick` in `room`.
    pub fn exit(&mut self, room: &RoomName, nick: &Nick) {
        let Some(names) = self.rooms.get_mut(room) else {
            return;
        };
        if let Some(count) = names.get_mut(nick) {
            *count -= 1;
            if *count == 0 {
                names.remove(nick);
            }
        }
        if names.is_empty() {
            self.rooms.remove(room);
        }
    }

    /// Whether `nick` is in `room` (in any session, or on another node).
    pub fn is_in(&self, room: &RoomName, nick: &Nick) -> bool {
        self.rooms.get(room).is_some_and(|r| r.contains_key(nick))
    }

    /// How many are in `room`.
    pub fn room_len(&self, room: &RoomName) -> usize {
        self.rooms.get(room).map_or(0, BTreeMap::len)
    }

    /// Whether joins and leaves of `room` are batched.
    pub fn is_large(&self, room: &RoomName) -> bool {
        self.room_len(room) > LARGE_ROOM
    }

    /// The first names online, and how many are online in all.
    pub fn first_online(&self) -> (Vec<Nick>, usize) {
        let users = self.online.iter().take(LISTED_USERS).cloned().collect();
        (users, self.online.len())
    }

    /// The `users` frame listing the first members of `room`.
    pub fn room_page(&self, room: &RoomName) -> ServerFrame {
        self.who(&WhoQuery {
            room: Some(room.clone()),
            ..WhoQuery::default()
        })
    }

    /// The answer to a `who` request.
    pub fn who(&self, query: &WhoQuery) -> ServerFrame {
        let (users, total, has_more) = match &query.room {
            None => page(
                |from| self.online.range((from, Bound::Unbounded)),
                self.online.len(),
                query,
            ),
            Some(room) => match self.rooms.get(room) {
                Some(members) => page(
                    |from| members.range((from, Bound::Unbounded)).map(|(n, _)| n),
                    members.len(),
                    query,
                ),
                None => (Vec::new(), 0, false),
            },
        };
        ServerFrame::Users {
            room: query.room.clone(),
            users,
            total: Some(total),
            has_more,
        }
    }

    /// Keeps `nick`'s entering or leaving of the large `room` for the next `room_changes`.
    pub fn note_room_change(&mut self, room: &RoomName, nick: &Nick) {
        let now_in = self.is_in(room, nick);
        self.changes
            .entry(room.clone())
            .or_default()
            .insert(nick.clone(), now_in);
    }

    /// Whether any change waits to be sent.
    pub fn has_changes(&self) -> bool {
        !self.presence.is_empty() || !self.changes.is_empty()
    }

    /// Whether changes of `room` wait to be sent.
    pub fn has_room_changes(&self, room: &RoomName) -> bool {
        self.changes.contains_key(room)
    }

    /// The `presence_changes` frame of what changed since the last call, if anything did.
    pub fn take_presence(&mut self) -> Option<ServerFrame> {
        if self.presence.is_empty() {
            return None;
        }
        let changes = std::mem::take(&mut self.presence);
        let (online, offline, unlisted) = split(changes);
        Some(ServerFrame::PresenceChanges {
            online,
            offline,
            unlisted,
            total: self.online.len(),
        })
    }

    /// The rooms with changes waiting.
    pub fn changed_rooms(&self) -> Vec<RoomName> {
        self.changes.keys().cloned().collect()
    }

    /// The `room_changes` frame of `room` since the last call, if anything changed.
    pub fn take_room(&mut self, room: &RoomName) -> Option<ServerFrame> {
        let changes = self.changes.remove(room)?;
        let (joined, left, unlisted) = split(changes);
        Some(ServerFrame::RoomChanges {
            room: room.clone(),
            joined,
            left,
            unlisted,
            total: self.room_len(room),
        })
    }
}

/// One page of `names` (in name order, from a bound) for `query`: the names, how many match
/// in all (`all` when there is no prefix), and whether more follow.
fn page<'a, I: Iterator<Item = &'a Nick>>(
    names: impl Fn(Bound<&Nick>) -> I,
    all: usize,
    query: &WhoQuery,
) -> (Vec<Nick>, usize, bool) {
    let limit = query
        .limit
        .map_or(LISTED_USERS, |l| usize::try_from(l).unwrap_or(usize::MAX))
        .clamp(1, MAX_LISTED_USERS);
    let prefix = query.prefix.as_deref().unwrap_or("").to_lowercase();
    let matches =
        |nick: &&Nick| prefix.is_empty() || nick.as_str().to_lowercase().starts_with(&prefix);
    let total = if prefix.is_empty() {
        all
    } else {
        names(Bound::Unbounded).filter(matches).count()
    };
    let from = query
        .after
        .as_ref()
        .map_or(Bound::Unbounded, Bound::Excluded);
    let mut rest = names(from).filter(matches);
    let users: Vec<Nick> = rest.by_ref().take(limit).cloned().collect();
    let has_more = rest.next().is_some();
    (users, total, has_more)
}

/// Splits changes into the names that turned `true` and those that turned `false`, listing at
/// most [`LISTED_CHANGES`] and counting the rest.
fn split(changes: BTreeMap<Nick, bool>) -> (Vec<Nick>, Vec<Nick>, usize) {
    let unlisted = changes.len().saturating_sub(LISTED_CHANGES);
    let (mut yes, mut no) = (Vec::new(), Vec::new());
    for (nick, state) in changes.into_iter().take(LISTED_CHANGES) {
        if state { yes.push(nick) } else { no.push(nick) }
    }
    (yes, no, unlisted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nick(s: &str) -> Nick {
        Nick::parse(s).expect("valid nick")
    }

    fn names(frame: &ServerFrame) -> (Vec<&str>, Option<usize>, bool) {
        match frame {
            ServerFrame::Users {
                users,
                total,
                has_more,
                ..
            } => (users.iter().map(Nick::as_str).collect(), *total, *has_more),
            other => panic!("not a users frame: {other:?}"),
        }
    }

    #[test]
    fn changes_are_gathered_longer_for_a_larger_audience() {
        assert_eq!(changes_every(0), CHANGES_EVERY);
        assert_eq!(changes_every(4_000), CHANGES_EVERY);
        assert_eq!(changes_every(10_000), Duration::from_millis(500));
        assert_eq!(changes_every(50_000), MAX_CHANGES_EVERY);
    }

    #[test]
    fn who_pages_in_name_order_with_a_total() {
        let mut roster = Roster::default();
        for i in 0..250 {
            roster.set_online(&nick(&format!("u{i:03}")), true);
        }
        let first = roster.who(&WhoQuery::default());
        let (users, total, more) = names(&first);
        assert_eq!(users.len(), LISTED_USERS);
        assert_eq!(
            (users[0], users[LISTED_USERS - 1], total, more),
            ("u000", "u049", Some(250), true)
        );
        let last = roster.who(&WhoQuery {
            after: Some(nick("u199")),
            ..WhoQuery::default()
        });
        let (users, total, more) = names(&last);
        assert_eq!(
            (users.len(), users[0], total, more),
            (50, "u200", Some(250), false)
        );
    }

    #[test]
    fn who_searches_by_prefix_ignoring_case() {
        let mut roster = Roster::default();
        for name in ["Alice", "alfred", "bob", "张伟"] {
            roster.set_online(&nick(name), true);
        }
        let found = roster.who(&WhoQuery {
            prefix: Some("AL".into()),
            limit: Some(1),
            ..WhoQuery::default()
        });
        assert_eq!(names(&found), (vec!["Alice"], Some(2), true));
    }

    #[test]
    fn changes_keep_each_names_last_state_and_count_what_is_not_listed() {
        let mut roster = Roster::default();
        roster.set_online(&nick("carol"), true);
        roster.set_online(&nick("dave"), true);
        roster.set_online(&nick("dave"), false);
        let frame = roster.take_presence().expect("changes");
        assert_eq!(
            frame,
            ServerFrame::PresenceChanges {
                online: vec![nick("carol")],
                offline: vec![nick("dave")],
                unlisted: 0,
                total: 1,
            }
        );
        assert_eq!(roster.take_presence(), None);
        for i in 0..(LISTED_CHANGES + 7) {
            roster.set_online(&nick(&format!("n{i}")), true);
        }
        match roster.take_presence() {
            Some(ServerFrame::PresenceChanges {
                online,
                unlisted,
                total,
                ..
            }) => assert_eq!(
                (online.len(), unlisted, total),
                (LISTED_CHANGES, 7, LISTED_CHANGES + 8)
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_room_counts_a_member_once_however_many_sessions_are_in_it() {
        let mut roster = Roster::default();
        let (lobby, alice) = (RoomName::lobby(), nick("alice"));
        roster.enter(&lobby, &alice);
        roster.enter(&lobby, &alice);
        roster.exit(&lobby, &alice);
        assert_eq!(roster.room_len(&lobby), 1);
        roster.note_room_change(&lobby, &alice);
        roster.exit(&lobby, &alice);
        roster.note_room_change(&lobby, &alice);
        assert_eq!(
            roster.take_room(&lobby),
            Some(ServerFrame::RoomChanges {
                room: lobby.clone(),
                joined: vec![],
                left: vec![alice],
                unlisted: 0,
                total: 0,
            })
        );
        assert!(!roster.has_changes());
    }
}
