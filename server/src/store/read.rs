//! Reading stored messages: history, catch-up of direct messages, single messages, unread
//! counts, search (in `search`), and the look-up of a resend by its client id (also on a [`Reader`]).

use super::search::{SEARCH_SPAN, SearchPage};
use super::{MAX_PAGE, Store, StoreError};
use protocol::{ChatMessage, MsgId, Nick, Quote, RoomName, Target};
use rusqlite::{Connection, OptionalExtension, params};
use std::path::Path;
use std::time::Duration;

/// The key of the direct chat of `d.nick` and `d.partner` (of `dm_partners`), as
/// [`conversation`](super::conversation) writes it.
const DIRECT_CONV: &str = "CASE WHEN d.nick <= d.partner THEN '@' || d.nick || ' @' || d.partner
                               ELSE '@' || d.partner || ' @' || d.nick END";

/// The columns `collect` reads, with the quoted message of a reply.
pub(super) const SELECT_MESSAGES: &str = "SELECT m.id, m.ts, m.sender, m.room, m.recipient, m.text,
    m.edited_ts, m.deleted, q.id, q.sender, substr(q.text, 1, 100), q.deleted
    FROM messages m LEFT JOIN messages q ON q.id = m.reply_to";

impl Store {
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
        // One range of the conversations' index per direct-chat partner.
        let mut stmt = self.conn.prepare_cached(&format!(
            "{SELECT_MESSAGES} JOIN users u ON u.nick = ?1 JOIN dm_partners d ON d.nick = ?1
                 WHERE m.conv = {DIRECT_CONV} AND m.id > u.dm_seen AND m.recipient = ?1
                 ORDER BY m.id ASC"
        ))?;
        collect(stmt.query(params![nick.as_str()])?)
    }

    /// The newest message of `nick`'s direct chats, sent or received, if it is newer than
    /// their delivery mark. Once their login has had what [`undelivered`](Self::undelivered)
    /// found, the mark moves to it, so the next login does not read their own messages again.
    pub fn newest_direct_past_mark(&self, nick: &Nick) -> Result<Option<MsgId>, StoreError> {
        // One look at the end of each direct chat in the conversations' index.
        let (seen, newest): (Option<i64>, Option<i64>) = self
            .conn
            .prepare_cached(&format!(
                "SELECT (SELECT dm_seen FROM users WHERE nick = ?1),
                        (SELECT max((SELECT max(m.id) FROM messages m WHERE m.conv = {DIRECT_CONV}))
                         FROM dm_partners d WHERE d.nick = ?1)"
            ))?
            .query_row(params![nick.as_str()], |row| Ok((row.get(0)?, row.get(1)?)))?;
        Ok(match (seen, newest) {
            (Some(seen), Some(newest)) if newest > seen => Some(newest as MsgId),
            _ => None,
        })
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

    pub(super) fn last_read(&self, nick: &Nick, conv: &str) -> Result<MsgId, StoreError> {
        let last: Option<i64> = self
            .conn
            .prepare_cached("SELECT last_read FROM reads WHERE nick = ?1 AND conv = ?2")?
            .query_row(params![nick.as_str(), conv], |row| row.get(0))
            .optional()?;
        Ok(last.unwrap_or(0) as MsgId)
    }

    /// How many messages of `conv` from others `nick` has not read, up to
    /// [`MAX_UNREAD`](protocol::MAX_UNREAD), and their read marker.
    pub fn unread(&self, nick: &Nick, conv: &str) -> Result<(u64, MsgId), StoreError> {
        let last = self.last_read(nick, conv)?;
        let count: i64 = self
            .conn
            .prepare_cached(
                "SELECT count(*) FROM (
                     SELECT 1 FROM messages
                     WHERE conv = ?1 AND id > ?2 AND sender <> ?3 AND deleted = 0 LIMIT ?4)",
            )?
            .query_row(
                params![
                    conv,
                    last as i64,
                    nick.as_str(),
                    protocol::MAX_UNREAD as i64
                ],
                |row| row.get(0),
            )?;
        Ok((count as u64, last))
    }

    /// Messages containing `text` (any script, case-insensitive) in `rooms` or in `nick`'s
    /// direct chats, newest first, among the [`SEARCH_SPAN`] newest ids older than `before`
    /// (than every message without it). Deleted messages are not found.
    pub fn search(
        &self,
        nick: &Nick,
        rooms: &[RoomName],
        text: &str,
        limit: u32,
        before: Option<MsgId>,
    ) -> Result<SearchPage, StoreError> {
        super::search::search(&self.conn, nick, rooms, text, limit, before, SEARCH_SPAN)
    }

    /// A connection of its own to the same database, for looking up resends and searching
    /// while the writer stores; `None` in memory, where the database is this connection's
    /// alone.
    pub fn reader(&self) -> Result<Option<Reader>, StoreError> {
        if self.path == Path::new(":memory:") {
            return Ok(None);
        }
        let conn = Connection::open(&self.path).map_err(|source| StoreError::Open {
            path: self.path.clone(),
            source,
        })?;
        conn.pragma_update(None, "query_only", true)?;
        conn.pragma_update(None, "cache_size", -super::CACHE_KIB)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        Ok(Some(Reader { conn }))
    }

    /// The message `from` sent with `client_id`, if stored: its id and time.
    pub fn by_client_id(
        &self,
        from: &Nick,
        client_id: &str,
    ) -> Result<Option<(MsgId, i64)>, StoreError> {
        by_client_id(&self.conn, from, client_id)
    }

    /// Calls `each` with the sender and client id of every stored message that has a client
    /// id (read from the index of client ids alone) and returns `true`, unless the ids stored
    /// span more than `limit` (told at once: there may be more than `limit` of them); then it
    /// returns `false` without calling it.
    pub fn each_client_id(
        &self,
        limit: u64,
        mut each: impl FnMut(&str, &str),
    ) -> Result<bool, StoreError> {
        let span: i64 = self.conn.query_row(
            "SELECT coalesce(max(id) - min(id) + 1, 0) FROM messages",
            [],
            |row| row.get(0),
        )?;
        if span as u64 > limit {
            return Ok(false);
        }
        let mut stmt = self
            .conn
            .prepare("SELECT sender, client_id FROM messages WHERE client_id IS NOT NULL")?;
        let mut rows = stmt.query([])?;
        // Ids are unique: no more rows than the span.
        while let Some(row) = rows.next()? {
            // Both are stored from Rust strings: text, always.
            if let (Ok(from), Ok(client_id)) = (row.get_ref(0)?.as_str(), row.get_ref(1)?.as_str())
            {
                each(from, client_id);
            }
        }
        Ok(true)
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

    /// [`Store::search`] in what was committed last (in one snapshot: its own, or that of the
    /// transaction [`begin`](Self::begin) opened).
    pub fn search(
        &self,
        nick: &Nick,
        rooms: &[RoomName],
        text: &str,
        limit: u32,
        before: Option<MsgId>,
    ) -> Result<SearchPage, StoreError> {
        super::search::search(&self.conn, nick, rooms, text, limit, before, SEARCH_SPAN)
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

fn collect(mut rows: rusqlite::Rows<'_>) -> Result<Vec<ChatMessage>, StoreError> {
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        if let Some(message) = message(row)? {
            out.push(message);
        }
    }
    Ok(out)
}

/// The message in `row` (of `SELECT_MESSAGES`); `None` when its names do not parse.
pub(super) fn message(row: &rusqlite::Row<'_>) -> Result<Option<ChatMessage>, StoreError> {
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
        return Ok(None);
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
    Ok(Some(ChatMessage {
        id: id as MsgId,
        ts: row.get(1)?,
        from,
        target,
        text: row.get(5)?,
        reply_to,
        edited: row.get(6)?,
        deleted: row.get(7)?,
    }))
}
