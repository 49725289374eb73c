//! The message store: SQLite in a data directory (or in memory with `--ephemeral`).
//!
//! Every chat message is stored before it is acknowledged. Ids are given by the sequencer in
//! the order messages were accepted and never reused: it reserves them in blocks (the highest
//! id reserved is kept in `meta`, see [`Store::id_floor`]), so ids handed out before a crash
//! are not given again after it, even when their messages were not stored yet. The
//! database runs in WAL mode with `synchronous = NORMAL`: a committed message survives the
//! server being killed; a power cut may lose the last moments. The in-memory store runs
//! without a rollback journal. The sequencer and the store writer ([`writer`]) share the store
//! behind a lock; a [`Reader`] looks up resends, or searches, on a connection of its own.
//!
//! The full-text index is brought up to date in batches: a stored message is first noted in
//! `fts_pending` (in the transaction that stores it), and the pending ones are indexed together
//! once [`FTS_BATCH`] messages or [`FTS_BATCH_BYTES`] of text have gathered (in a transaction
//! of their own, after the acks of the one that stored the last of them:
//! [`Store::index_if_due`]), and at open; a
//! search reads the pending ones directly. Indexing one message per transaction cost more
//! than all the rest of storing it (FTS5 writes a segment per commit).
//!
//! This file opens the store and keeps its ids and `meta` values; the rest is in
//! - `schema`: the tables and the migrations from older stores;
//! - `write`: storing messages, edits, deletions, read and delivery markers, retention;
//! - `read`: history, catch-up, unread counts, resends by client id, [`Reader`];
//! - `search`: search, in the index and in the messages waiting for it;
//! - `users`: who has logged in, registered names, last seen, direct-chat partners;
//! - [`writer`]: the thread that stores delivered messages behind the sequencer.

mod read;
mod schema;
mod search;
mod users;
mod write;
pub mod writer;

pub use read::Reader;
pub use search::{SEARCH_SPAN, SearchPage};

use protocol::{MsgId, Nick, Target};
use rusqlite::{Connection, OptionalExtension, params};
use schema::{INDEX_PENDING, MIGRATIONS, SCHEMA};
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::time::Duration;
use thiserror::Error;
use write::Unindexed;

/// The database file inside the data directory.
pub const DB_FILE: &str = "chat.db";

/// The most messages one history answer holds.
pub const MAX_PAGE: u32 = 200;

/// Stored messages waiting for the full-text index before they are indexed together. A batch
/// is a segment of the index, and a search reads the waiting messages one by one: at 2,048
/// instead of 1,024, storing 200,000 direct messages took about 12% fewer instructions, and a
/// search at most about 0.4 ms more.
pub const FTS_BATCH: u64 = 2048;

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
    /// The conversations that got messages since retention last ran, once it has run (the
    /// only ones that can have grown past its count), and how many each got.
    grown: Option<std::collections::HashMap<String, u64>>,
    /// At most how many messages a conversation held when retention last counted them.
    counted: std::collections::HashMap<String, u64>,
    /// Direct chats known to be in `dm_partners` (committed; rows there are never removed),
    /// so that their messages skip its look-ups.
    partners: std::collections::HashSet<String>,
}

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
            grown: None,
            counted: Default::default(),
            partners: Default::default(),
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
        match self.quick_check() {
            Ok(None) => {}
            Ok(Some(problem)) => return Err(corrupt(problem)),
            Err(e) => return Err(corrupt(e.to_string())),
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

    /// Checks every table and index of the file (SQLite's `quick_check`), table by table. The
    /// check of the whole file also runs the full-text index's own check, which reads every
    /// message's text again (about 2 µs a message: a store of a million messages started in
    /// 2.3–2.7 s instead of 0.8); the index's tables are checked here as tables. Returns the
    /// first problem found.
    fn quick_check(&self) -> rusqlite::Result<Option<String>> {
        let tables: Vec<String> = self
            .conn
            .prepare(
                "SELECT name FROM sqlite_schema
                 WHERE type = 'table' AND sql NOT LIKE 'CREATE VIRTUAL TABLE%'",
            )?
            .query_map([], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        for table in tables {
            let check: String = self.conn.query_row(
                "SELECT quick_check FROM pragma_quick_check(?1)",
                [&table],
                |row| row.get(0),
            )?;
            if check != "ok" {
                return Ok(Some(check));
            }
        }
        Ok(None)
    }

    /// Indexes the stored messages waiting for the full-text index, in a transaction of its
    /// own, once [`FTS_BATCH`] of them or [`FTS_BATCH_BYTES`] of their text have gathered.
    /// Storing leaves this to its caller, so that the acks of a batch need not wait for it.
    /// A failure is logged; the messages wait (searches read them directly) for the next try.
    pub fn index_if_due(&self) {
        if self.unindexed.get().is_due()
            && let Err(error) = self.index_pending()
        {
            tracing::warn!(
                error = %error,
                "could not add messages to the full-text index; searches read them meanwhile, \
                 and the index is tried again after the next messages are stored"
            );
        }
    }

    /// Brings the full-text index up to date with every stored message.
    fn index_pending(&self) -> Result<(), StoreError> {
        // In one transaction: a message is in the index or pending, never both.
        let tx = self.conn.unchecked_transaction()?;
        tx.execute_batch(INDEX_PENDING)?;
        tx.commit()?;
        self.unindexed.take();
        Ok(())
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

#[cfg(test)]
mod tests;
