//! The message store: SQLite in a data directory (or in memory with `--ephemeral`).
//!
//! Every chat message is stored before it is acknowledged. Ids are given by the sequencer in
//! the order messages were accepted and never reused: it reserves them in blocks (the highest
//! id reserved is kept in `meta`, see [`Store::id_floor`]), so ids handed out before a crash
//! are not given again after it, even when their messages were not stored yet. The
//! database runs in WAL mode with `synchronous = NORMAL`: a committed message survives the
//! server being killed; a power cut may lose the last moments. The in-memory store runs
//! without a rollback journal. The sequencer and the store writer ([`writer`]) share the store
//! behind a lock; a [`Reader`] looks up resends on a connection of its own. The tables and
//! the migrations from older stores are in `schema`.
//!
//! The full-text index is brought up to date in batches: a stored message is first noted in
//! `fts_pending` (in its own transaction), and the pending ones are indexed together once
//! [`FTS_BATCH`] messages or [`FTS_BATCH_BYTES`] of text have gathered, before every search,
//! and at open. Indexing one message per
//! transaction cost more than all the rest of storing it (FTS5 writes a segment per commit).

mod schema;
pub mod writer;

use protocol::{ChatMessage, MsgId, Nick, Quote, RoomName, Target};
use rusqlite::{Connection, OptionalExtension, params};
use schema::{INDEX_PENDING, MIGRATIONS, SCHEMA};
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::time::Duration;
use thiserror::Error;

/// The database file inside the data directory.
pub const DB_FILE: &str = "chat.db";

/// The most messages one history answer holds.
pub const MAX_PAGE: u32 = 200;

/// Stored messages waiting for the full-text index before they are indexed together.
pub const FTS_BATCH: u64 = 1024;

/// Text waiting for the full-text index before it is indexed: FTS5 holds a batch's terms in
/// memory until it writes them, so long messages are indexed in smaller batches.
pub const FTS_BATCH_BYTES: usize = 256 * 1024;

/// WAL pages written between two automatic checkpoints.
const WAL_CHECKPOINT_PAGES: u32 = 10_000;

/// The page cache of the store on disk, in KiB.
const CACHE_KIB: i64 = 16 * 1024;

/// The `meta` key of the highest message id that may have been handed out.
const RESERVED_IDS_KEY: &str = "reserved_ids";

/// Prepared statements kept for reuse (rusqlite keeps 16 by default; the store uses more).
const STATEMENT_CACHE: usize = 64;

/// Where the store lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// `chat.db` inside this directory, created when missing.
    Dir(PathBuf),
    /// In memory: gone when the server stops.
    Memory,
}

/// How long messages are kept, per conversation. Off (keep everything) by default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    /// Keep at most this many of the newest messages of each conversation.
    pub max_messages: Option<u64>,
    /// Delete messages older than this.
    pub max_age: Option<Duration>,
}

impl Retention {
    /// Whether retention removes anything at all.
    pub fn is_on(&self) -> bool {
        self.max_messages.is_some() || self.max_age.is_some()
    }
}

/// A store failure. At start these are fatal and name the file; later they fail one request.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("the data directory {0} is not a directory")]
    NotADirectory(PathBuf),
    #[error("cannot create the data directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open the message store {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("the message store {path} is damaged: {detail}")]
    Corrupt { path: PathBuf, detail: String },
    #[error("message store: {0}")]
    Sql(#[from] rusqlite::Error),
}

/// The `room` and `recipient` columns of a message to `target`.
fn room_and_recipient(target: &Target) -> (Option<&str>, Option<&str>) {
    match target {
        Target::Room(room) => (Some(room.as_str()), None),
        Target::User(to) => (None, Some(to.as_str())),
    }
}

/// The key of a conversation: `#room`, or `@a @b` for the direct chat of `a` and `b` in
/// sorted order. Names contain neither `#`, `@` nor spaces, so keys never collide.
pub fn conversation(from: &Nick, target: &Target) -> String {
    match target {
        Target::Room(room) => format!("#{room}"),
        Target::User(to) => {
            let (a, b) = if from <= to { (from, to) } else { (to, from) };
            format!("@{a} @{b}")
        }
    }
}

/// A message to store.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub from: Nick,
    pub target: Target,
    pub text: String,
    pub client_id: Option<String>,
    pub reply_to: Option<MsgId>,
    pub ts: i64,
    /// Set for a direct message whose recipient is online: it counts as delivered.
    pub delivered_to: Option<Nick>,
}

/// The SQLite message store.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    path: PathBuf,
    /// Messages noted in `fts_pending` since the index was last brought up to date.
    unindexed: Cell<Unindexed>,
}

/// The columns `collect` reads, with the quoted message of a reply.
const SELECT_MESSAGES: &str = "SELECT m.id, m.ts, m.sender, m.room, m.recipient, m.text,
    m.edited_ts, m.deleted, q.id, q.sender, substr(q.text, 1, 100), q.deleted
    FROM messages m LEFT JOIN messages q ON q.id = m.reply_to";

impl Store {
    /// Opens (creating when missing) the store at `location`, and checks that it is sound.
    pub fn open(location: &Location) -> Result<Self, StoreError> {
        let (conn, path) = match location {
            Location::Memory => {
                let path = PathBuf::from(":memory:");
                let conn = Connection::open_in_memory().map_err(|source| StoreError::Open {
                    path: path.clone(),
                    source,
                })?;
                (conn, path)
            }
            Location::Dir(dir) => {
                prepare_dir(dir)?;
                let path = dir.join(DB_FILE);
                let conn = Connection::open(&path).map_err(|source| StoreError::Open {
                    path: path.clone(),
                    source,
                })?;
                (conn, path)
            }
        };
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        let store = Self {
            conn,
            path,
            unindexed: Cell::default(),
        };
        store.check_and_migrate()?;
        // Messages stored before the last stop but not yet indexed.
        store.index_pending()?;
        Ok(store)
    }

    /// The database file, or `:memory:`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Registered nicknames with their password hashes (PHC strings).
    pub fn registered_users(&self) -> Result<Vec<(Nick, String)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT nick, password FROM users WHERE password IS NOT NULL")?;
        let users = stmt
            .query_map([], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
            })?
            .filter_map(|r| r.ok())
            .filter_map(|(nick, hash)| Nick::parse(&nick).ok().map(|n| (n, hash)))
            .collect();
        Ok(users)
    }

    /// Records that `nick` went offline at `ts`.
    pub fn set_last_seen(&mut self, nick: &Nick, ts: i64) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("UPDATE users SET last_seen = ?2 WHERE nick = ?1")?
            .execute(params![nick.as_str(), ts])?;
        Ok(())
    }

    /// When `nick` last went offline: `None` for a name never seen, `Some(None)` for one that
    /// has not gone offline since it was first seen.
    pub fn last_seen(&self, nick: &Nick) -> Result<Option<Option<i64>>, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT last_seen FROM users WHERE nick = ?1")?
            .query_row(params![nick.as_str()], |row| row.get::<_, Option<i64>>(0))
            .optional()?)
    }

    /// Registers `nick` with a password hash.
    pub fn set_password(&mut self, nick: &Nick, hash: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE users SET password = ?2 WHERE nick = ?1",
            params![nick.as_str(), hash],
        )?;
        Ok(())
    }

    /// One stored message, with the key of its conversation.
    pub fn message(&self, id: MsgId) -> Result<Option<(String, ChatMessage)>, StoreError> {
        let conv: Option<String> = self
            .conn
            .prepare_cached("SELECT conv FROM messages WHERE id = ?1")?
            .query_row(params![id as i64], |row| row.get(0))
            .optional()?;
        let Some(conv) = conv else { return Ok(None) };
        let mut stmt = self
            .conn
            .prepare_cached(&format!("{SELECT_MESSAGES} WHERE m.id = ?1"))?;
        let found = collect(stmt.query(params![id as i64])?)?.into_iter().next();
        Ok(found.map(|m| (conv, m)))
    }

    /// Replaces the text of message `id`, marking it edited at `ts`.
    pub fn edit(&mut self, id: MsgId, text: &str, ts: i64) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE messages SET text = ?2, edited_ts = ?3 WHERE id = ?1",
            params![id as i64, text, ts],
        )?;
        Ok(())
    }

    /// Turns message `id` into a tombstone: no text, marked deleted.
    pub fn delete(&mut self, id: MsgId) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE messages SET text = '', deleted = 1 WHERE id = ?1",
            params![id as i64],
        )?;
        Ok(())
    }

    /// Moves `nick`'s read marker of `conv` forward to `up_to` (never back); returns it.
    pub fn mark_read(
        &mut self,
        nick: &Nick,
        conv: &str,
        up_to: MsgId,
    ) -> Result<MsgId, StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO reads (nick, conv, last_read) VALUES (?1, ?2, ?3)
                 ON CONFLICT (nick, conv) DO UPDATE SET last_read = max(last_read, excluded.last_read)",
            )?
            .execute(params![nick.as_str(), conv, up_to as i64])?;
        self.last_read(nick, conv)
    }

    fn last_read(&self, nick: &Nick, conv: &str) -> Result<MsgId, StoreError> {
        let last: Option<i64> = self
            .conn
            .prepare_cached("SELECT last_read FROM reads WHERE nick = ?1 AND conv = ?2")?
            .query_row(params![nick.as_str(), conv], |row| row.get(0))
            .optional()?;
        Ok(last.unwrap_or(0) as MsgId)
    }

    /// How many messages of `conv` from others `nick` has not read, and their read marker.
    pub fn unread(&self, nick: &Nick, conv: &str) -> Result<(u64, MsgId), StoreError> {
        let last = self.last_read(nick, conv)?;
        let count: i64 = self
            .conn
            .prepare_cached(
                "SELECT count(*) FROM messages WHERE conv = ?1 AND id > ?2 AND sender <> ?3 AND deleted = 0",
            )?
            .query_row(params![conv, last as i64, nick.as_str()], |row| row.get(0))?;
        Ok((count as u64, last))
    }

    /// The people `nick` has had direct chats with (also when those messages have been
    /// deleted or pruned since).
    pub fn direct_partners(&self, nick: &Nick) -> Result<Vec<Nick>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT partner FROM dm_partners WHERE nick = ?1")?;
        let partners = stmt
            .query_map(params![nick.as_str()], |row| row.get::<_, String>(0))?
            .filter_map(|n| n.ok().and_then(|n| Nick::parse(&n).ok()))
            .collect();
        Ok(partners)
    }

    /// Messages containing `text` (any script, case-insensitive for Latin letters) in `rooms`
    /// or in `nick`'s direct chats, newest first. Deleted messages are not found.
    pub fn search(
        &self,
        nick: &Nick,
        rooms: &[RoomName],
        text: &str,
        limit: u32,
    ) -> Result<Vec<ChatMessage>, StoreError> {
        let rooms: Vec<String> = rooms.iter().map(|r| format!("#{r}")).collect();
        let rooms = serde_json::to_string(&rooms).map_err(|e| StoreError::Corrupt {
            path: self.path.clone(),
            detail: e.to_string(),
        })?;
        let readable = "(m.conv IN (SELECT value FROM json_each(?1))
                         OR (m.room IS NULL AND (m.sender = ?2 OR m.recipient = ?2)))
                        AND m.deleted = 0";
        let limit = i64::from(limit.clamp(1, MAX_PAGE));
        self.index_pending()?;
        // The trigram index answers queries of three characters or more; shorter ones (a
        // two-character Chinese word) are matched by scanning.
        let found = if text.chars().count() >= 3 {
            let phrase = format!("\"{}\"", text.replace('"', "\"\""));
            let mut stmt = self.conn.prepare_cached(&format!(
                "{SELECT_MESSAGES} JOIN messages_fts f ON f.rowid = m.id
                 WHERE messages_fts MATCH ?3 AND {readable} ORDER BY m.id DESC LIMIT ?4"
            ))?;
            collect(stmt.query(params![rooms, nick.as_str(), phrase, limit])?)?
        } else {
            let pattern = format!(
                "%{}%",
                text.replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_")
            );
            let mut stmt = self.conn.prepare_cached(&format!(
                "{SELECT_MESSAGES} WHERE m.text LIKE ?3 ESCAPE '\\' AND {readable}
                 ORDER BY m.id DESC LIMIT ?4"
            ))?;
            collect(stmt.query(params![rooms, nick.as_str(), pattern, limit])?)?
        };
        Ok(found)
    }

    fn check_and_migrate(&self) -> Result<(), StoreError> {
        let corrupt = |detail: String| StoreError::Corrupt {
            path: self.path.clone(),
            detail,
        };
        // In memory there is no file to keep whole across a crash, and a transaction is only
        // rolled back when a write fails half-way, which in memory means running out of it: the
        // rollback journal's copies of every page written cost about a third of storing a
        // message, so the in-memory store has none.
        let in_memory = self.path == Path::new(":memory:");
        let (journal, synchronous) = if in_memory {
            ("OFF", "OFF")
        } else {
            ("WAL", "NORMAL")
        };
        // The first read finds a file that is not a database at all.
        self.conn
            .pragma_update(None, "journal_mode", journal)
            .map_err(|e| corrupt(e.to_string()))?;
        let check: String = self
            .conn
            .query_row("PRAGMA quick_check", [], |row| row.get(0))
            .map_err(|e| corrupt(e.to_string()))?;
        if check != "ok" {
            return Err(corrupt(check));
        }
        self.conn.pragma_update(None, "synchronous", synchronous)?;
        // Statement journals (of the statements that need one) in memory, not in temporary
        // files written with a system call per page.
        self.conn.pragma_update(None, "temp_store", "MEMORY")?;
        if !in_memory {
            // A checkpoint copies each page changed since the last one back into the database
            // and syncs it. Messages change the same few pages over and over, so checkpointing
            // less often copies far fewer pages per message: every 10,000 WAL pages (about
            // 40 MB) instead of SQLite's 1,000 (it was about a third of the time spent storing
            // a message).
            self.conn
                .pragma_update(None, "wal_autocheckpoint", WAL_CHECKPOINT_PAGES)?;
            // A transaction of a few hundred messages changes more pages than SQLite's default
            // 2 MiB cache holds, which then spills them into the WAL half-way and reads them
            // back.
            self.conn.pragma_update(None, "cache_size", -CACHE_KIB)?;
        }
        self.conn.busy_timeout(Duration::from_secs(5))?;
        self.conn
            .execute_batch(SCHEMA)
            .map_err(|e| corrupt(e.to_string()))?;
        for (present, apply) in MIGRATIONS {
            let done: i64 = self.conn.query_row(present, [], |row| row.get(0))?;
            if done == 0 {
                self.conn.execute_batch(apply)?;
            }
        }
        Ok(())
    }

    /// Brings the full-text index up to date with every stored message.
    fn index_pending(&self) -> Result<(), StoreError> {
        self.conn.execute_batch(INDEX_PENDING)?;
        self.unindexed.take();
        Ok(())
    }

    /// Every nickname that has ever logged in.
    pub fn known_users(&self) -> Result<Vec<Nick>, StoreError> {
        let mut stmt = self.conn.prepare("SELECT nick FROM users")?;
        let nicks = stmt
            .query_map([], |row| row.get::<_, String>(0))?
            .filter_map(|n| n.ok().and_then(|n| Nick::parse(&n).ok()))
            .collect();
        Ok(nicks)
    }

    /// Remembers `nick` as a known user.
    pub fn add_user(&mut self, nick: &Nick, ts: i64) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO users (nick, first_ts) VALUES (?1, ?2) ON CONFLICT (nick) DO NOTHING",
            )?
            .execute(params![nick.as_str(), ts])?;
        Ok(())
    }

    /// Stores messages with the ids they were given (by the sequencer or the cluster), in one
    /// transaction (one disk sync for all of them), in order; for each, whether it was new. A
    /// message already stored is left as it is.
    pub fn insert_at<'a>(
        &mut self,
        batch: impl IntoIterator<Item = (MsgId, &'a NewMessage)>,
    ) -> Result<Vec<bool>, StoreError> {
        let tx = self.conn.transaction()?;
        let mut out = Vec::new();
        let mut stored = Unindexed::default();
        {
            let mut insert = tx.prepare_cached(
                "INSERT OR IGNORE INTO messages
                     (id, conv, ts, sender, room, recipient, text, client_id, reply_to)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?;
            let mut pending = tx.prepare_cached("INSERT INTO fts_pending (id) VALUES (?1)")?;
            // Nothing to write (two look-ups) once the two have talked before.
            let mut partners = tx.prepare_cached(
                "INSERT OR IGNORE INTO dm_partners (nick, partner) VALUES (?1, ?2), (?2, ?1)",
            )?;
            let mut seen =
                tx.prepare_cached("UPDATE users SET dm_seen = max(dm_seen, ?2) WHERE nick = ?1")?;
            // The last direct message delivered to each recipient: one update each per batch.
            let mut delivered: std::collections::HashMap<&Nick, MsgId> = Default::default();
            for (id, m) in batch {
                let (room, recipient) = room_and_recipient(&m.target);
                let new = insert.execute(params![
                    id as i64,
                    conversation(&m.from, &m.target),
                    m.ts,
                    m.from.as_str(),
                    room,
                    recipient,
                    m.text,
                    m.client_id,
                    m.reply_to.map(|id| id as i64),
                ])? == 1;
                if new {
                    pending.execute(params![id as i64])?;
                    if let Target::User(to) = &m.target {
                        partners.execute(params![m.from.as_str(), to.as_str()])?;
                    }
                    stored.add(&m.text);
                    if let Some(to) = &m.delivered_to {
                        let last = delivered.entry(to).or_default();
                        *last = (*last).max(id);
                    }
                }
                out.push(new);
            }
            for (to, id) in delivered {
                seen.execute(params![to.as_str(), id as i64])?;
            }
        }
        note_unindexed(&self.unindexed, &tx, stored)?;
        tx.commit()?;
        Ok(out)
    }

    /// The message `from` sent with `client_id`, if stored: its id and time.
    pub fn by_client_id(
        &self,
        from: &Nick,
        client_id: &str,
    ) -> Result<Option<(MsgId, i64)>, StoreError> {
        by_client_id(&self.conn, from, client_id)
    }

    /// The largest message id stored (0 when empty).
    pub fn max_id(&self) -> Result<MsgId, StoreError> {
        let id: Option<i64> = self
            .conn
            .query_row("SELECT max(id) FROM messages", [], |row| row.get(0))?;
        Ok(id.unwrap_or(0) as MsgId)
    }

    /// The highest id stored or ever reserved ([`reserve_ids`](Self::reserve_ids)): new ids
    /// start above it.
    pub fn id_floor(&self) -> Result<MsgId, StoreError> {
        let reserved = self
            .meta(RESERVED_IDS_KEY)?
            .and_then(|v| v.parse::<MsgId>().ok())
            .unwrap_or(0);
        Ok(self.max_id()?.max(reserved))
    }

    /// Records that ids up to `up_to` may be handed out. The last id handed out is recorded
    /// again at a clean stop, so ids then go on without a gap.
    pub fn reserve_ids(&mut self, up_to: MsgId) -> Result<(), StoreError> {
        self.set_meta(RESERVED_IDS_KEY, &up_to.to_string())
    }

    /// A connection of its own to the same database for looking up resends while the writer
    /// stores; `None` in memory, where the database is this connection's alone.
    pub fn reader(&self) -> Result<Option<Reader>, StoreError> {
        if self.path == Path::new(":memory:") {
            return Ok(None);
        }
        let conn = Connection::open(&self.path).map_err(|source| StoreError::Open {
            path: self.path.clone(),
            source,
        })?;
        conn.pragma_update(None, "query_only", true)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        Ok(Some(Reader { conn }))
    }

    /// Whether this store lives in memory.
    pub fn in_memory(&self) -> bool {
        self.path == Path::new(":memory:")
    }

    /// A value kept by the server about itself (such as how far it has read the cluster log).
    pub fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT value FROM meta WHERE key = ?1",
                params![key],
                |row| row.get(0),
            )
            .optional()?)
    }

    /// Sets a value of [`meta`](Self::meta).
    pub fn set_meta(&mut self, key: &str, value: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        Ok(())
    }

    /// Messages of conversation `conv`, oldest first, and whether more exist in the direction
    /// asked: with `after`, the oldest `limit` newer than it; otherwise the newest `limit`
    /// older than `before` (or than everything).
    pub fn history(
        &self,
        conv: &str,
        before: Option<MsgId>,
        after: Option<MsgId>,
        limit: u32,
    ) -> Result<(Vec<ChatMessage>, bool), StoreError> {
        let limit = limit.clamp(1, MAX_PAGE);
        let fetch = i64::from(limit) + 1;
        let mut rows = if let Some(after) = after {
            let mut stmt = self.conn.prepare_cached(&format!(
                "{SELECT_MESSAGES} WHERE m.conv = ?1 AND m.id > ?2 ORDER BY m.id ASC LIMIT ?3"
            ))?;
            collect(stmt.query(params![conv, after as i64, fetch])?)?
        } else {
            let before = before.map_or(i64::MAX, |b| b as i64);
            let mut stmt = self.conn.prepare_cached(&format!(
                "{SELECT_MESSAGES} WHERE m.conv = ?1 AND m.id < ?2 ORDER BY m.id DESC LIMIT ?3"
            ))?;
            let mut rows = collect(stmt.query(params![conv, before, fetch])?)?;
            rows.reverse();
            rows
        };
        let has_more = rows.len() > limit as usize;
        if has_more {
            if after.is_some() {
                rows.pop();
            } else {
                rows.remove(0);
            }
        }
        Ok((rows, has_more))
    }

    /// Direct messages to `nick` newer than the last one delivered to them, oldest first.
    pub fn undelivered(&self, nick: &Nick) -> Result<Vec<ChatMessage>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "{SELECT_MESSAGES} JOIN users u ON u.nick = m.recipient
                 WHERE m.recipient = ?1 AND m.id > u.dm_seen ORDER BY m.id ASC"
        ))?;
        collect(stmt.query(params![nick.as_str()])?)
    }

    /// Records that direct messages to `nick` up to `id` have been delivered.
    pub fn mark_delivered(&mut self, nick: &Nick, id: MsgId) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE users SET dm_seen = max(dm_seen, ?2) WHERE nick = ?1",
            params![nick.as_str(), id as i64],
        )?;
        Ok(())
    }

    /// Deletes what `retention` says to, as of `now_ms`; returns how many messages went.
    pub fn prune(&mut self, retention: Retention, now_ms: i64) -> Result<usize, StoreError> {
        let mut removed = 0;
        if let Some(age) = retention.max_age {
            let cutoff = now_ms.saturating_sub(i64::try_from(age.as_millis()).unwrap_or(i64::MAX));
            removed += self
                .conn
                .execute("DELETE FROM messages WHERE ts < ?1", params![cutoff])?;
        }
        if let Some(keep) = retention.max_messages {
            removed += self.conn.execute(
                "DELETE FROM messages WHERE id IN (
                     SELECT id FROM (
                         SELECT id, row_number() OVER (PARTITION BY conv ORDER BY id DESC) AS n
                         FROM messages)
                     WHERE n > ?1)",
                params![i64::try_from(keep).unwrap_or(i64::MAX)],
            )?;
        }
        Ok(removed)
    }
}

/// A read-only connection to the store on disk: in WAL mode it reads what was committed last
/// without waiting for the writer.
#[derive(Debug)]
pub struct Reader {
    conn: Connection,
}

impl Reader {
    /// Starts a read transaction: the lookups up to [`end`](Self::end) share one snapshot,
    /// taken at the first of them, and SQLite's page cache is checked once for all of them.
    pub fn begin(&self) -> Result<(), StoreError> {
        self.conn.execute_batch("BEGIN")?;
        Ok(())
    }

    /// Ends the read transaction of [`begin`](Self::begin), if one is open.
    pub fn end(&self) {
        if !self.conn.is_autocommit()
            && let Err(err) = self.conn.execute_batch("COMMIT")
        {
            tracing::warn!(error = %err, "could not end a read of the store");
        }
    }

    /// The message `from` sent with `client_id`, if committed: its id and time.
    pub fn by_client_id(
        &self,
        from: &Nick,
        client_id: &str,
    ) -> Result<Option<(MsgId, i64)>, StoreError> {
        by_client_id(&self.conn, from, client_id)
    }
}

/// The id and time of the message `from` sent with `client_id`, if `conn` sees it stored.
fn by_client_id(
    conn: &Connection,
    from: &Nick,
    client_id: &str,
) -> Result<Option<(MsgId, i64)>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT id, ts FROM messages WHERE sender = ?1 AND client_id = ?2")?
        .query_row(params![from.as_str(), client_id], |row| {
            Ok((row.get::<_, i64>(0)? as MsgId, row.get(1)?))
        })
        .optional()?)
}

/// Messages waiting for the full-text index, and the size of their text.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Unindexed {
    messages: u64,
    bytes: usize,
}

impl Unindexed {
    fn add(&mut self, text: &str) {
        self.messages += 1;
        self.bytes += text.len();
    }
}

/// Counts `stored` as waiting for the full-text index, and indexes everything pending once
/// enough has gathered, inside the transaction `tx` that stored them.
fn note_unindexed(
    unindexed: &Cell<Unindexed>,
    tx: &rusqlite::Transaction<'_>,
    stored: Unindexed,
) -> Result<(), StoreError> {
    let waiting = Unindexed {
        messages: unindexed.get().messages + stored.messages,
        bytes: unindexed.get().bytes + stored.bytes,
    };
    if waiting.messages >= FTS_BATCH || waiting.bytes >= FTS_BATCH_BYTES {
        tx.execute_batch(INDEX_PENDING)?;
        unindexed.take();
    } else {
        unindexed.set(waiting);
    }
    Ok(())
}

fn prepare_dir(dir: &Path) -> Result<(), StoreError> {
    if dir.exists() && !dir.is_dir() {
        return Err(StoreError::NotADirectory(dir.to_owned()));
    }
    std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
        path: dir.to_owned(),
        source,
    })
}

fn collect(mut rows: rusqlite::Rows<'_>) -> Result<Vec<ChatMessage>, StoreError> {
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let id: i64 = row.get(0)?;
        let sender: String = row.get(2)?;
        let room: Option<String> = row.get(3)?;
        let recipient: Option<String> = row.get(4)?;
        // Rows are written by this server from validated names; a row that does not parse
        // (edited by hand, say) is skipped rather than failing the whole page.
        let target = match (room, recipient) {
            (Some(room), _) => RoomName::parse(&room).ok().map(Target::Room),
            (None, Some(to)) => Nick::parse(&to).ok().map(Target::User),
            (None, None) => None,
        };
        let (Some(target), Ok(from)) = (target, Nick::parse(&sender)) else {
            tracing::warn!(id, "skipping a stored message with invalid names");
            continue;
        };
        let quoted: Option<i64> = row.get(8)?;
        let reply_to = match quoted {
            Some(qid) => {
                let qfrom: String = row.get(9)?;
                let deleted: bool = row.get(11)?;
                let text: String = if deleted { String::new() } else { row.get(10)? };
                Nick::parse(&qfrom).ok().map(|from| Quote {
                    id: qid as MsgId,
                    from,
                    text,
                })
            }
            None => None,
        };
        out.push(ChatMessage {
            id: id as MsgId,
            ts: row.get(1)?,
            from,
            target,
            text: row.get(5)?,
            reply_to,
            edited: row.get(6)?,
            deleted: row.get(7)?,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
