//! Several servers as one chat service, through Redis.
//!
//! Every node appends what changes the chat (messages, edits, read markers, registrations,
//! who came online and who joined which room) to one Redis stream, the cluster log, and every
//! node reads that log in order and applies it: to its own SQLite replica of the history, and
//! to its local connections. A message gets its id from Redis in the same script that appends
//! it, so ids follow the log order on every node, and a message is acknowledged only once it
//! is in the log. Any node can therefore serve history, search, offline delivery and resume.
//!
//! Presence lives beside the log: `chat:online` maps each nickname to the node it is on (so a
//! nickname is unique across the cluster), and each node refreshes a heartbeat key that expires
//! when it dies. Every node reaps dead nodes: their users are announced offline through the
//! log, once.
//!
//! When Redis is unreachable a node keeps serving its own clients: it stores and delivers
//! their messages locally, with ids from a block it reserved in advance, and appends them to
//! the log when Redis is back (see the README's deployment section for the exact guarantees).
//!
//! Redis keys: `chat:log` (stream), `chat:next_id`, `chat:next_guest`, `chat:cluster`,
//! `chat:online` (hash), `chat:nodes` (set), `chat:node:<id>` (heartbeat),
//! `chat:users:<id>` (a node's users), `chat:rooms:<nick>` (a user's rooms), `chat:known` and
//! `chat:passwords` (hashes: the directory, which outlives the log's trimming),
//! `chat:where:<nick>` (the nodes with a session of a user); typing notices
//! go through the pub/sub channel `chat:typing`.
//!
//! The Lua scripts that change that state are in `scripts`, the node's background threads
//! (log reader, typing listener, heartbeat) in `threads`.

use crate::hub::now_ms;
use crate::store::{NewMessage, Store};
use protocol::{MsgId, Nick, Quote, RoomName, Target};
use redis::streams::{StreamReadOptions, StreamReadReply};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Duration;

mod scripts;
mod threads;

use scripts::{APPEND, AWAY, CLAIM, ENSURE_IDS, REAP, RELEASE, SNAPSHOT};
pub use threads::{Signal, spawn_threads};

const LOG: &str = "chat:log";
const NEXT_ID: &str = "chat:next_id";
const NEXT_GUEST: &str = "chat:next_guest";
const ONLINE: &str = "chat:online";
const NODES: &str = "chat:nodes";
const CLUSTER: &str = "chat:cluster";
/// The pub/sub channel of typing notices, which are passed on but never kept.
const TYPING: &str = "chat:typing";
const KNOWN: &str = "chat:known";
const PASSWORDS: &str = "chat:passwords";

/// Why the directory could not be loaded.
enum DirectoryError {
    Redis(redis::RedisError),
    Store(crate::store::StoreError),
}

/// Where a node's store keeps how far it has applied the cluster log.
pub const CURSOR_KEY: &str = "cluster_cursor";

/// Message ids a node sets aside for the times Redis is unreachable.
const RESERVED_IDS: u64 = 10_000;

/// How often the reserved block is renewed, so that messages sent in an outage sort at most
/// this much before the messages sent just before it.
const RESERVE_EVERY: Duration = Duration::from_secs(1);

/// How long a Redis command may take before the node counts Redis as unreachable.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

/// Entries taken from the log at once.
const READ_COUNT: usize = 512;

/// The longest wait between attempts to reach Redis again.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// How a node joins a cluster.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// `redis://host:port[/db]`.
    pub url: String,
    /// This node's name, unique in the cluster.
    pub node_id: String,
    /// A node that has not refreshed its heartbeat for this long counts as dead.
    pub expiry: Duration,
    /// About how many entries the log keeps (older ones are trimmed).
    pub log_cap: u64,
}

/// A node name for when none is given: the host name and the process id.
pub fn default_node_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node".to_owned());
    format!("{host}-{}", std::process::id())
}

/// Why a node could not join its cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot reach Redis at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error(
        "this data directory holds the history of another cluster (Redis at {url} belongs to \
         cluster {redis}, the data directory to {local}); use an empty data directory"
    )]
    OtherCluster {
        url: String,
        redis: String,
        local: String,
    },
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// A Redis error's text without the repetitions redis-rs adds for connection errors.
fn plain(err: &redis::RedisError) -> String {
    let text = err.to_string();
    let mut parts: Vec<&str> = text.split(": ").collect();
    parts.dedup();
    parts.join(": ")
}

/// Whether Redis answers, shared by the node's threads and shown by `/healthz`.
#[derive(Debug, Default)]
pub struct Health {
    down: AtomicBool,
    /// The node has left the cluster (shutdown): its threads stop.
    stopped: AtomicBool,
}

impl Health {
    /// Whether Redis was unreachable at the last attempt.
    pub fn degraded(&self) -> bool {
        self.down.load(Relaxed)
    }

    /// Records the outcome of a Redis command; logs changes.
    fn set(&self, ok: bool, why: &dyn std::fmt::Display) {
        let was_down = self.down.swap(!ok, Relaxed);
        match (was_down, ok) {
            (false, false) => tracing::error!(
                error = %why,
                "Redis is unreachable: serving local clients only, retrying"
            ),
            (true, true) => tracing::info!("Redis is reachable again"),
            _ => {}
        }
    }
}

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

fn connect(client: &redis::Client) -> redis::RedisResult<redis::Connection> {
    let conn = client.get_connection_with_timeout(COMMAND_TIMEOUT)?;
    conn.set_read_timeout(Some(COMMAND_TIMEOUT))?;
    conn.set_write_timeout(Some(COMMAND_TIMEOUT))?;
    Ok(conn)
}

impl Link {
    /// Joins the cluster at `config.url`: checks that `store` belongs to it, reserves ids,
    /// starts the heartbeat, and takes the presence snapshot. Fails when Redis is unreachable.
    pub fn join(
        config: ClusterConfig,
        store: &mut Store,
        health: Arc<Health>,
    ) -> Result<Joined, ClusterError> {
        let url = config.url.clone();
        let unreachable = |err: redis::RedisError| ClusterError::Unreachable {
            url: url.clone(),
            reason: plain(&err),
        };
        let client = redis::Client::open(config.url.as_str()).map_err(unreachable)?;
        let mut conn = connect(&client).map_err(unreachable)?;
        let fresh = format!("{}-{}", config.node_id, now_ms());
        let (set, redis_id): (bool, String) = redis::pipe()
            .cmd("SETNX")
            .arg(CLUSTER)
            .arg(&fresh)
            .cmd("GET")
            .arg(CLUSTER)
            .query(&mut conn)
            .map_err(unreachable)?;
        let cluster_id = match store.meta("cluster")? {
            Some(local) if local != redis_id => {
                if set {
                    // Redis lost its data, not this node: keep the node's identity.
                    redis::cmd("SET")
                        .arg(CLUSTER)
                        .arg(&local)
                        .query::<()>(&mut conn)
                        .map_err(unreachable)?;
                    local
                } else {
                    return Err(ClusterError::OtherCluster {
                        url: config.url.clone(),
                        redis: redis_id,
                        local,
                    });
                }
            }
            Some(local) => local,
            None => {
                store.set_meta("cluster", &redis_id)?;
                redis_id
            }
        };
        let mut link = Self {
            append: redis::Script::new(APPEND),
            claim: redis::Script::new(CLAIM),
            away: redis::Script::new(AWAY),
            release: redis::Script::new(RELEASE),
            reap: redis::Script::new(REAP),
            ensure_ids: redis::Script::new(ENSURE_IDS),
            client,
            conn: Some(conn),
            health,
            reserved: (0, 0),
            reserved_at: std::time::Instant::now(),
            snapshot_at: String::new(),
            backlog: Vec::new(),
            cluster_id,
            config,
        };
        link.load_directory(store).map_err(|e| match e {
            DirectoryError::Redis(err) => unreachable(err),
            DirectoryError::Store(err) => ClusterError::Store(err),
        })?;
        let remote = link.start(store).map_err(unreachable)?;
        Ok(Joined { link, remote })
    }

    /// Brings every user and registered password the cluster knows into the store, however
    /// old (the log may have dropped their entries).
    fn load_directory(&mut self, store: &mut Store) -> Result<(), DirectoryError> {
        let conn = self.conn.as_mut().expect("connected at start");
        type Known = Vec<(String, i64)>;
        type Passwords = Vec<(String, String)>;
        let (known, passwords): (Known, Passwords) = redis::pipe()
            .cmd("HGETALL")
            .arg(KNOWN)
            .cmd("HGETALL")
            .arg(PASSWORDS)
            .query(conn)
            .map_err(DirectoryError::Redis)?;
        for (nick, ts) in known {
            if let Ok(nick) = Nick::parse(&nick) {
                store.add_user(&nick, ts).map_err(DirectoryError::Store)?;
            }
        }
        for (nick, hash) in passwords {
            if let Ok(nick) = Nick::parse(&nick) {
                store
                    .add_user(&nick, now_ms())
                    .map_err(DirectoryError::Store)?;
                store
                    .set_password(&nick, &hash)
                    .map_err(DirectoryError::Store)?;
            }
        }
        Ok(())
    }

    /// Gives Redis, which lost its data, this node's directory of users and passwords.
    fn restore_directory(&mut self, store: &Store) {
        let known = store.known_users().unwrap_or_default();
        let passwords = store.registered_users().unwrap_or_default();
        self.with_conn(|conn, _| {
            let mut pipe = redis::pipe();
            for nick in &known {
                pipe.cmd("HSETNX")
                    .arg(KNOWN)
                    .arg(nick.as_str())
                    .arg(now_ms())
                    .ignore();
            }
            for (nick, hash) in &passwords {
                pipe.cmd("HSETNX")
                    .arg(PASSWORDS)
                    .arg(nick.as_str())
                    .arg(hash)
                    .ignore();
            }
            pipe.query::<()>(conn)
        });
    }

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

    /// Registers the node afresh: clears what an earlier run under its name left, raises the
    /// id counter past every id stored here, reserves ids, and reads the presence snapshot.
    fn start(&mut self, store: &Store) -> redis::RedisResult<Vec<RemoteUser>> {
        let max = store.max_id().unwrap_or(0);
        let node = self.config.node_id.clone();
        let conn = self.conn.as_mut().expect("connected at start");
        // Whether the log still holds everything after where this node stopped reading.
        let first: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(LOG)
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(1)
            .query(conn)?;
        let read = store.meta(CURSOR_KEY).ok().flatten();
        if let (Some(first), Some(read)) = (first.ids.first(), read)
            && position(&read) < position(&first.id)
        {
            tracing::warn!(
                read,
                first = first.id,
                "this node was away longer than the cluster log keeps: \
                 changes the log dropped meanwhile are missing here"
            );
        }
        self.reap
            .key(NODES)
            .key(ONLINE)
            .key(LOG)
            .arg(self.config.log_cap)
            .arg(now_ms())
            .arg(&node)
            .invoke::<i64>(conn)?;
        heartbeat(conn, &self.config)?;
        self.ensure_ids.key(NEXT_ID).arg(max).invoke::<i64>(conn)?;
        let end: u64 = redis::cmd("INCRBY")
            .arg(NEXT_ID)
            .arg(RESERVED_IDS)
            .query(conn)?;
        let (cursor, remote) = snapshot(conn, &node)?;
        self.snapshot_at = cursor;
        self.reserve(end);
        Ok(remote)
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

    /// Redis answers again (perhaps having lost its data): registers this node and its
    /// `users` (with their rooms) again, restores the id counter, and appends the backlog.
    pub fn recover(&mut self, store: &Store, users: &[(Nick, Vec<RoomName>, bool)]) {
        self.health.set(true, &"");
        self.conn = None;
        let max = store.max_id().unwrap_or(0).max(self.reserved.1);
        let cluster_id = self.cluster_id.clone();
        let restored = self.with_conn(|conn, link| {
            let lost: bool = redis::cmd("SETNX")
                .arg(CLUSTER)
                .arg(&cluster_id)
                .query(conn)?;
            heartbeat(conn, &link.config)?;
            link.ensure_ids.key(NEXT_ID).arg(max).invoke::<i64>(conn)?;
            // A fresh block of ids for the next outage.
            let end: u64 = redis::cmd("INCRBY")
                .arg(NEXT_ID)
                .arg(RESERVED_IDS)
                .query(conn)?;
            Ok((end, lost))
        });
        let Some((end, lost)) = restored else {
            return;
        };
        self.reserve(end);
        if lost {
            tracing::warn!("Redis lost the cluster's data; registering this node's part again");
            self.restore_directory(store);
        }
        // Who went offline meanwhile is released now, which also frees their names.
        let (gone, backlog): (Vec<Outgoing>, Vec<Outgoing>) = std::mem::take(&mut self.backlog)
            .into_iter()
            .partition(|out| matches!(out.event, Event::Offline { .. }));
        for out in gone {
            if let Event::Offline { nick, .. } = out.event
                && !users.iter().any(|(n, _, _)| *n == nick)
            {
                self.release(&nick);
            }
        }
        for (nick, rooms, away) in users {
            if let Claim::Taken(owner) = self.claim(nick, false) {
                tracing::warn!(nick = %nick, other = owner, "a nickname is online on two nodes");
            }
            if *away {
                self.away(nick);
            }
            let joins: Vec<Outgoing> = rooms
                .iter()
                .map(|room| {
                    let (room, nick) = (room.clone(), nick.clone());
                    Event::Joined { room, nick }.into()
                })
                .collect();
            self.append(&joins);
        }
        if self.append_as(&backlog, true).is_none() {
            self.backlog.extend(backlog);
        } else if !backlog.is_empty() {
            tracing::info!(
                events = backlog.len(),
                "appended what happened while Redis was down"
            );
        }
    }

    /// Who is online on the other nodes now (`None` while Redis is unreachable).
    pub fn online_elsewhere(&mut self) -> Option<Vec<RemoteUser>> {
        let node = self.config.node_id.clone();
        self.with_conn(|conn, _| snapshot(conn, &node))
            .map(|(_, remote)| remote)
    }

    /// Leaves the cluster at shutdown: this node's users go offline at once.
    pub fn leave(&mut self) {
        self.health.stopped.store(true, Relaxed);
        let node = self.config.node_id.clone();
        self.with_conn(|conn, link| {
            link.reap
                .key(NODES)
                .key(ONLINE)
                .key(LOG)
                .arg(link.config.log_cap)
                .arg(now_ms())
                .arg(&node)
                .invoke::<i64>(conn)?;
            redis::cmd("DEL")
                .arg(format!("chat:node:{node}"))
                .query::<()>(conn)
        });
    }
}

/// A log position (`<ms>-<seq>`) as numbers, for comparing.
pub fn position(at: &str) -> (u64, u64) {
    let mut parts = at.splitn(2, '-').map(|p| p.parse().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

/// Who is online on nodes other than `node`, and the log position that view is as of.
fn snapshot(
    conn: &mut redis::Connection,
    node: &str,
) -> redis::RedisResult<(String, Vec<RemoteUser>)> {
    let (cursor, online): (String, Vec<(String, String, Vec<String>)>) =
        redis::Script::new(SNAPSHOT)
            .key(ONLINE)
            .key(LOG)
            .invoke(conn)?;
    let remote = online
        .into_iter()
        .filter(|(_, owner, _)| owner.split('|').next() != Some(node))
        .filter_map(|(nick, _, rooms)| {
            Some(RemoteUser {
                nick: Nick::parse(&nick).ok()?,
                rooms: rooms
                    .iter()
                    .filter_map(|r| RoomName::parse(r).ok())
                    .collect(),
            })
        })
        .collect();
    Ok((cursor, remote))
}

fn encode(event: &Event) -> String {
    serde_json::to_string(event).expect("events serialize")
}

/// Refreshes the node's heartbeat; true when the node was not registered any more (other
/// nodes took it for dead, or Redis lost its data), so that it registers its users again.
fn heartbeat(conn: &mut redis::Connection, config: &ClusterConfig) -> redis::RedisResult<bool> {
    let expiry = u64::try_from(config.expiry.as_millis()).unwrap_or(u64::MAX);
    let (added,): (u32,) = redis::pipe()
        .cmd("SET")
        .arg(format!("chat:node:{}", config.node_id))
        .arg(1)
        .arg("PX")
        .arg(expiry)
        .ignore()
        .cmd("SADD")
        .arg(NODES)
        .arg(&config.node_id)
        .query(conn)?;
    Ok(added == 1)
}
