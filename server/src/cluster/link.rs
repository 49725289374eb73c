//! The sequencer's connection to the cluster: appending to the log, the ids reserved for an
//! outage, and claiming and releasing nicknames. Joining, registering again after an outage,
//! and leaving are in `membership`.

use super::event::encode;
use super::{
    ClusterConfig, Event, Health, LOG, NEXT_GUEST, NEXT_ID, ONLINE, Outgoing, RESERVE_EVERY,
    RESERVED_IDS, RemoteUser, TYPING, connect,
};
use crate::hub::now_ms;
use protocol::{MsgId, Nick};
use std::sync::Arc;

mod membership;

/// What a node learns when it joins.
#[derive(Debug)]
pub struct Joined {
    pub link: Link,
    pub remote: Vec<RemoteUser>,
}

/// The sequencer's connection to the cluster.
pub struct Link {
    config: ClusterConfig,
    client: redis::Client,
    conn: Option<redis::Connection>,
    health: Arc<Health>,
    /// Ids this node may give while Redis is down: the next one and the end (exclusive).
    reserved: (MsgId, MsgId),
    /// When they were reserved.
    reserved_at: std::time::Instant,
    /// Log entries up to here are covered by the start snapshot's presence.
    pub snapshot_at: String,
    /// Events applied here while Redis was down, to append when it is back.
    backlog: Vec<Outgoing>,
    cluster_id: String,
    append: redis::Script,
    claim: redis::Script,
    away: redis::Script,
    release: redis::Script,
    reap: redis::Script,
    ensure_ids: redis::Script,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("node", &self.config.node_id)
            .field("backlog", &self.backlog.len())
            .finish_non_exhaustive()
    }
}

/// The outcome of claiming a nickname.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    Granted,
    /// A registered user's further session: another node holds the name, and this one has a
    /// session too.
    Beside,
    /// Online on this other node.
    Taken(String),
    /// Redis is unreachable: the name is checked on this node only.
    Unchecked,
}

impl Link {
    /// How this node joined.
    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    /// Whether Redis answers, as the node's threads see it.
    pub fn health(&self) -> Arc<Health> {
        self.health.clone()
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.config.node_id
    }

    /// Runs `f` on the connection, reconnecting first when needed; any failure marks Redis
    /// unreachable (until the heartbeat finds it back).
    fn with_conn<T>(
        &mut self,
        f: impl FnOnce(&mut redis::Connection, &Self) -> redis::RedisResult<T>,
    ) -> Option<T> {
        if self.health.degraded() {
            return None;
        }
        let mut conn = match self.conn.take() {
            Some(conn) => conn,
            None => match connect(&self.client) {
                Ok(conn) => conn,
                Err(err) => {
                    self.health.set(false, &err);
                    return None;
                }
            },
        };
        match f(&mut conn, self) {
            Ok(value) => {
                self.conn = Some(conn);
                Some(value)
            }
            Err(err) => {
                self.health.set(false, &err);
                None
            }
        }
    }

    /// Whether Redis is unreachable.
    pub fn degraded(&self) -> bool {
        self.health.degraded()
    }

    /// Appends events to the log; returns the message ids (0 for other events), or `None`
    /// when Redis is unreachable (nothing was appended then).
    pub fn append(&mut self, events: &[Outgoing]) -> Option<Vec<MsgId>> {
        self.append_as(events, false)
    }

    fn append_as(&mut self, events: &[Outgoing], applied: bool) -> Option<Vec<MsgId>> {
        if events.is_empty() {
            return Some(Vec::new());
        }
        let reserve = if self.reserved_at.elapsed() > RESERVE_EVERY {
            RESERVED_IDS
        } else {
            0
        };
        let mut ids: Vec<MsgId> = self.with_conn(|conn, link| {
            let mut call = link.append.key(LOG);
            call.key(NEXT_ID).arg(link.config.log_cap).arg(reserve);
            for out in events {
                // Besides the log: who is in which room, and the directory of users and
                // passwords, which outlives the log's trimming.
                let ts;
                let (side, nick, arg) = match &out.event {
                    Event::Joined { room, nick } => ("join", nick.as_str(), room.as_str()),
                    Event::Left { room, nick } => ("leave", nick.as_str(), room.as_str()),
                    Event::User { nick, ts: at } => {
                        ts = at.to_string();
                        ("user", nick.as_str(), ts.as_str())
                    }
                    Event::Registered { nick, hash } => ("reg", nick.as_str(), hash.as_str()),
                    _ => ("", "", ""),
                };
                let kind = if matches!(out.event, Event::Message(_)) {
                    "m"
                } else {
                    ""
                };
                call.arg(out.preset_id.unwrap_or(0))
                    .arg(kind)
                    .arg(&link.config.node_id)
                    .arg(u8::from(applied))
                    .arg(encode(&out.event))
                    .arg(side)
                    .arg(nick)
                    .arg(arg);
            }
            call.invoke(conn)
        })?;
        if reserve > 0
            && let Some(end) = ids.pop()
        {
            self.reserve(end);
        }
        Some(ids)
    }

    /// Takes the block of ids that ends with `end` as the one for the next outage.
    pub fn reserve(&mut self, end: MsgId) {
        self.reserved = (end + 1 - RESERVED_IDS, end + 1);
        self.reserved_at = std::time::Instant::now();
    }

    /// The position of the last entry of the log now (`None` while Redis is unreachable).
    pub fn log_end(&mut self) -> Option<String> {
        self.with_conn(|conn, _| {
            let last: redis::streams::StreamRangeReply = redis::cmd("XREVRANGE")
                .arg(LOG)
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(1)
                .query(conn)?;
            Ok(last
                .ids
                .first()
                .map_or_else(|| "0-0".to_owned(), |e| e.id.clone()))
        })
    }

    /// Passes a typing notice to the other nodes while Redis answers; never kept for later.
    pub fn publish_typing(&mut self, event: &Event) {
        let body = format!("{}\n{}", self.config.node_id, encode(event));
        self.with_conn(|conn, _| {
            redis::cmd("PUBLISH")
                .arg(TYPING)
                .arg(&body)
                .query::<()>(conn)
        });
    }

    /// Keeps `events`, applied here already, for appending when Redis is back.
    pub fn defer(&mut self, events: impl IntoIterator<Item = Outgoing>) {
        self.backlog.extend(events);
    }

    /// The next id of the reserved block, for a message stored while Redis is down.
    pub fn reserved_id(&mut self) -> Option<MsgId> {
        let (next, end) = self.reserved;
        (next < end).then(|| {
            self.reserved.0 += 1;
            next
        })
    }

    /// Claims `nick` for this node; `authenticated` lets a registered user in beside their
    /// sessions on other nodes.
    pub fn claim(&mut self, nick: &Nick, authenticated: bool) -> Claim {
        let online = |moved| {
            encode(&Event::Online {
                nick: nick.clone(),
                moved,
            })
        };
        let (fresh, moved) = (online(false), online(true));
        let result = self.with_conn(|conn, link| {
            link.claim
                .key(ONLINE)
                .key(LOG)
                .arg(nick.as_str())
                .arg(&link.config.node_id)
                .arg(link.config.log_cap)
                .arg(&fresh)
                .arg(&moved)
                .arg(u8::from(authenticated))
                .invoke::<String>(conn)
        });
        match result {
            None => Claim::Unchecked,
            Some(owner) if owner.is_empty() => Claim::Granted,
            Some(owner) if owner == "+" => Claim::Beside,
            Some(owner) => Claim::Taken(owner),
        }
    }

    /// `nick`'s last session here dropped; they are in their presence grace period.
    pub fn away(&mut self, nick: &Nick) {
        self.with_conn(|conn, link| {
            link.away
                .key(ONLINE)
                .arg(nick.as_str())
                .arg(&link.config.node_id)
                .invoke::<i64>(conn)
        });
    }

    /// `nick` went offline here; announced unless they are online on another node now.
    /// While Redis is down, the announcement waits in the backlog.
    pub fn release(&mut self, nick: &Nick) {
        let offline = Event::Offline {
            nick: nick.clone(),
            ts: now_ms(),
        };
        let body = encode(&offline);
        let done = self.with_conn(|conn, link| {
            link.release
                .key(ONLINE)
                .key(LOG)
                .arg(nick.as_str())
                .arg(&link.config.node_id)
                .arg(link.config.log_cap)
                .arg(&body)
                .invoke::<i64>(conn)
        });
        if done.is_none() {
            self.defer([offline.into()]);
        }
    }

    /// A guest number unique in the cluster (`None` while Redis is down); the guest counts as
    /// one of this node's users.
    pub fn guest(&mut self) -> Option<u64> {
        self.with_conn(|conn, link| {
            let n: u64 = redis::cmd("INCR").arg(NEXT_GUEST).query(conn)?;
            redis::cmd("SADD")
                .arg(format!("chat:users:{}", link.config.node_id))
                .arg(Nick::guest(n).as_str())
                .query::<()>(conn)?;
            Ok(n)
        })
    }
}
