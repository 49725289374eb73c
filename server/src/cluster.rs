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
//! The modules:
//! - `event`: what crosses Redis — the log's events ([`Event`], [`Posted`]), an [`Entry`] as
//!   read from the log, an [`Outgoing`] event to append.
//! - `link`: the sequencer's connection to the cluster ([`Link`]): appending, reserving ids,
//!   claiming and releasing nicknames; `link::membership` joins the cluster, registers the
//!   node again when Redis is back, and leaves.
//! - `scripts`: the Lua scripts that change that state.
//! - `threads`: the node's background threads (log reader, typing listener, heartbeat).

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Duration;

mod event;
mod link;
mod scripts;
mod threads;

pub use event::{Entry, Event, Outgoing, Posted, RemoteUser};
pub use link::{Claim, Joined, Link};
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

fn connect(client: &redis::Client) -> redis::RedisResult<redis::Connection> {
    let conn = client.get_connection_with_timeout(COMMAND_TIMEOUT)?;
    conn.set_read_timeout(Some(COMMAND_TIMEOUT))?;
    conn.set_write_timeout(Some(COMMAND_TIMEOUT))?;
    Ok(conn)
}

/// A log position (`<ms>-<seq>`) as numbers, for comparing.
pub fn position(at: &str) -> (u64, u64) {
    let mut parts = at.splitn(2, '-').map(|p| p.parse().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
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
