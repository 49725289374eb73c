//! Writing messages: storing batches with their ids, edits, deletions, read and delivery
//! markers, retention, and the full-text index's pending messages.

use super::{FTS_BATCH, FTS_BATCH_BYTES, NewMessage, Retention, Store, StoreError, conversation};
use protocol::{MsgId, Nick, Target};
use rusqlite::params;

/// Conversations whose count retention remembers at most (a few MiB).
const MAX_COUNTED: usize = 100_000;

/// Direct chats known to be in `dm_partners` that the store remembers at most (a few MiB).
const MAX_PARTNERS: usize = 100_000;

/// The `room` and `recipient` columns of a message to `target`.
fn room_and_recipient(target: &Target) -> (Option<&str>, Option<&str>) {
    match target {
        Target::Room(room) => (Some(room.as_str()), None),
        Target::User(to) => (None, Some(to.as_str())),
    }
}

impl Store {
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
        let mut new_partners = std::collections::HashSet::new();
        {
            let mut insert = tx.prepare_cached(
                "INSERT OR IGNORE INTO messages
                     (id, conv, ts, sender, room, recipient, text, client_id, reply_to)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?;
            let mut pending = tx.prepare_cached("INSERT INTO fts_pending (id) VALUES (?1)")?;
            // Nothing to write (but two look-ups) once the two have talked before, and
            // nothing to do once the store knows it.
            let mut partners = tx.prepare_cached(
                "INSERT OR IGNORE INTO dm_partners (nick, partner) VALUES (?1, ?2), (?2, ?1)",
            )?;
            let mut seen =
                tx.prepare_cached("UPDATE users SET dm_seen = max(dm_seen, ?2) WHERE nick = ?1")?;
            // The last direct message delivered to each recipient: one update each per batch.
            let mut delivered: std::collections::HashMap<&Nick, MsgId> = Default::default();
            for (id, m) in batch {
                let (room, recipient) = room_and_recipient(&m.target);
                let conv = conversation(&m.from, &m.target);
                let new = insert.execute(params![
                    id as i64,
                    conv,
                    m.ts,
                    m.from.as_str(),
                    room,
                    recipient,
                    m.text,
                    m.client_id,
                    m.reply_to.map(|id| id as i64),
                ])? == 1;
                // Also for a message stored already: in memory (no journal) a transaction
                // that failed half-way may have left its row without the rest, and its
                // recipient finds it at login only through the pair.
                if let Target::User(to) = &m.target
                    && !self.partners.contains(&conv)
                    && !new_partners.contains(&conv)
                {
                    partners.execute(params![m.from.as_str(), to.as_str()])?;
                    new_partners.insert(conv.clone());
                }
                if new {
                    pending.execute(params![id as i64])?;
                    if let Some(grown) = &mut self.grown {
                        match grown.get_mut(&conv) {
                            Some(added) => *added += 1,
                            None => {
                                grown.insert(conv, 1);
                            }
                        }
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
        tx.commit()?;
        self.unindexed.set(self.unindexed.get().and(stored));
        if self.partners.len() + new_partners.len() > MAX_PARTNERS {
            self.partners.clear();
        }
        self.partners.extend(new_partners);
        Ok(out)
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

    /// Records that direct messages to `nick` up to `id` have been delivered.
    pub fn mark_delivered(&mut self, nick: &Nick, id: MsgId) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE users SET dm_seen = max(dm_seen, ?2) WHERE nick = ?1",
            params![nick.as_str(), id as i64],
        )?;
        Ok(())
    }

    /// Deletes what `retention` says to, as of `now_ms`; returns how many messages went.
    ///
    /// It reads what it deletes and little more, so that it may run often on a long history.
    /// By age: ids grow with time, so the old messages are the first ones, read in id order up
    /// to the first that is not old (one stored with a later time, from a clock set back, holds
    /// back those after it until it is old itself; one dated in the future is passed over). By
    /// count: the first run goes through every conversation, later ones through those that got
    /// messages since, and after a failure every conversation again.
    pub fn prune(&mut self, retention: Retention, now_ms: i64) -> Result<usize, StoreError> {
        let mut removed = 0;
        if let Some(age) = retention.max_age {
            let cutoff = now_ms.saturating_sub(i64::try_from(age.as_millis()).unwrap_or(i64::MAX));
            let mut stmt = self
                .conn
                .prepare_cached("SELECT id, ts FROM messages ORDER BY id")?;
            let mut rows = stmt.query([])?;
            let mut last_old = None;
            while let Some(row) = rows.next()? {
                let ts: i64 = row.get(1)?;
                // A time in the future (a clock that was wrong) holds nothing back.
                if ts >= cutoff && ts <= now_ms {
                    break;
                }
                last_old = Some(row.get::<_, i64>(0)?);
            }
            drop(rows);
            if let Some(last_old) = last_old {
                removed += self.conn.execute(
                    "DELETE FROM messages WHERE id <= ?1 AND ts < ?2",
                    params![last_old, cutoff],
                )?;
            }
        }
        if let Some(keep) = retention.max_messages {
            let keep = i64::try_from(keep).unwrap_or(i64::MAX);
            let by_count = self.prune_by_count(keep);
            if by_count.is_err() {
                // What grew and what was counted may be lost half-way: all again next time.
                self.grown = None;
                self.counted.clear();
            }
            removed += by_count?;
        }
        Ok(removed)
    }

    /// Retention by count: keeps the newest `keep` messages of each conversation; returns how
    /// many went.
    fn prune_by_count(&mut self, keep: i64) -> Result<usize, StoreError> {
        let mut removed = 0;
        // One entry per conversation that got messages: forgotten now and then, it costs one
        // count each again.
        if self.counted.len() > MAX_COUNTED {
            self.counted.clear();
        }
        match self.grown.replace(Default::default()) {
            None => {
                removed += self.conn.execute(
                    "DELETE FROM messages WHERE id IN (
                         SELECT id FROM (
                             SELECT id, row_number() OVER (PARTITION BY conv ORDER BY id DESC)
                                 AS n
                             FROM messages)
                         WHERE n > ?1)",
                    params![keep],
                )?;
            }
            Some(grown) => {
                // Counted in the conversations' index, up to one more than `keep`.
                let mut count = self.conn.prepare_cached(
                    "SELECT count(*) FROM (SELECT 1 FROM messages WHERE conv = ?1 LIMIT ?2)",
                )?;
                // From the `keep + 1`th newest back.
                let mut delete = self.conn.prepare_cached(
                    "DELETE FROM messages WHERE conv = ?1 AND id <= (
                         SELECT id FROM messages WHERE conv = ?1
                         ORDER BY id DESC LIMIT 1 OFFSET ?2)",
                )?;
                for (conv, added) in grown {
                    // Deletions since only make the count of then an upper bound.
                    let at_most = self.counted.get(&conv).map(|n| n.saturating_add(added));
                    if let Some(at_most) = at_most.filter(|n| *n <= keep as u64) {
                        self.counted.insert(conv, at_most);
                        continue;
                    }
                    let held: i64 =
                        count.query_row(params![conv, keep.saturating_add(1)], |row| row.get(0))?;
                    if held > keep {
                        removed += delete.execute(params![conv, keep])?;
                    }
                    self.counted.insert(conv, held.min(keep) as u64);
                }
            }
        }
        Ok(removed)
    }
}

/// Messages waiting for the full-text index, and the size of their text.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Unindexed {
    pub(super) messages: u64,
    bytes: usize,
}

impl Unindexed {
    fn add(&mut self, text: &str) {
        self.messages += 1;
        self.bytes += text.len();
    }

    fn and(self, more: Self) -> Self {
        Self {
            messages: self.messages + more.messages,
            bytes: self.bytes + more.bytes,
        }
    }

    /// Whether enough waits to be indexed together.
    pub(super) fn is_due(self) -> bool {
        self.messages >= FTS_BATCH || self.bytes >= FTS_BATCH_BYTES
    }
}
