//! Search: the messages holding a text, in the rooms and direct chats a user may read.
//!
//! The trigram index answers texts of three characters or more: it gives the messages holding
//! every trigram of the text, newest first and without sorting every match. Messages still
//! waiting for the index (`fts_pending`, at most a batch) are read directly; shorter texts (a
//! two-character Chinese word) are matched by scanning. Either way each candidate's text is
//! checked here: the index also finds messages holding the trigrams apart, and no SQL text
//! can hold a NUL. (A pending message is matched by that check alone, which knows the case
//! pairs of current Unicode; once indexed it must also match the index, whose tables are
//! older: a Georgian capital, say, matches its small letter until its message is indexed.)
//! A search needs nothing but reads, so it runs as well on a
//! [`Reader`](super::Reader) as on the store itself.

use super::MAX_PAGE;
use super::StoreError;
use super::read::{SELECT_MESSAGES, message};
use protocol::{ChatMessage, MsgId, Nick, RoomName};
use rusqlite::{Connection, params};

/// The newest ids one search reads at most: a search for a rare text reads every message of
/// the span (about 100 ms for a million), so an answer takes a bounded time however long the
/// history, and says where to go on.
pub const SEARCH_SPAN: MsgId = 1_000_000;

/// One answer to a search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchPage {
    /// The messages found, newest first.
    pub messages: Vec<ChatMessage>,
    /// Where older messages may match too: search again before this id.
    pub older: Option<MsgId>,
}

/// Messages containing `text` (see [`super::Store::search`]) as `conn` sees the store, among
/// the `span` newest ids older than `before` (than every message without it).
pub(super) fn search(
    conn: &Connection,
    nick: &Nick,
    rooms: &[RoomName],
    text: &str,
    limit: u32,
    before: Option<MsgId>,
    span: MsgId,
) -> Result<SearchPage, StoreError> {
    let rooms: Vec<String> = rooms.iter().map(|r| format!("#{r}")).collect();
    let rooms = serde_json::to_string(&rooms)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    let readable = "(m.conv IN (SELECT value FROM json_each(?1))
                     OR (m.room IS NULL AND (m.sender = ?2 OR m.recipient = ?2)))
                    AND m.deleted = 0";
    let limit = limit.clamp(1, MAX_PAGE) as usize;
    // The index and the pending messages are read in one snapshot: a batch indexed between
    // the two reads would be in neither.
    let _snapshot = match conn.is_autocommit() {
        true => Some(conn.unchecked_transaction()?),
        false => None,
    };
    // The ids read: from `floor` up to, not including, `below`.
    let below = match before {
        Some(before) => i64::try_from(before).unwrap_or(i64::MAX),
        None => {
            let newest: Option<i64> =
                conn.query_row("SELECT max(id) FROM messages", [], |row| row.get(0))?;
            newest.unwrap_or(0).saturating_add(1)
        }
    };
    let floor = below
        .saturating_sub(i64::try_from(span).unwrap_or(i64::MAX))
        .max(0);
    let wanted = fold(text);
    let found = |sql: &str, key: Option<&str>| -> Result<Vec<ChatMessage>, StoreError> {
        let mut stmt = conn.prepare_cached(sql)?;
        let mut rows = match key {
            Some(key) => stmt.query(params![rooms, nick.as_str(), below, floor, key])?,
            None => stmt.query(params![rooms, nick.as_str(), below, floor])?,
        };
        let mut found = Vec::new();
        while found.len() < limit
            && let Some(row) = rows.next()?
        {
            // The text is checked before the rest of the row is read.
            if fold(row.get_ref(5)?.as_str().map_err(rusqlite::Error::from)?).contains(&wanted)
                && let Some(message) = message(row)?
            {
                found.push(message);
            }
        }
        Ok(found)
    };
    let all = if let Some(trigrams) = trigrams(text) {
        // A message is either in the index or pending, never both.
        let mut all = found(
            &format!(
                "{SELECT_MESSAGES} JOIN messages_fts f ON f.rowid = m.id
                 WHERE f.rowid < ?3 AND f.rowid >= ?4 AND messages_fts MATCH ?5 AND {readable}
                 ORDER BY f.rowid DESC"
            ),
            Some(&trigrams),
        )?;
        all.extend(found(
            &format!(
                // `IN`: one look-up per pending message, not a scan of every message.
                "{SELECT_MESSAGES}
                 WHERE m.id IN (SELECT id FROM fts_pending WHERE id < ?3 AND id >= ?4)
                   AND {readable}
                 ORDER BY m.id DESC"
            ),
            None,
        )?);
        all.sort_unstable_by_key(|m| std::cmp::Reverse(m.id));
        all.truncate(limit);
        all
    } else {
        let pattern = format!(
            "%{}%",
            // SQL's LIKE reads a text up to its first NUL.
            text.split('\0')
                .next()
                .unwrap_or_default()
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        found(
            &format!(
                "{SELECT_MESSAGES}
                 WHERE m.id < ?3 AND m.id >= ?4 AND m.text LIKE ?5 ESCAPE '\\' AND {readable}
                 ORDER BY m.id DESC"
            ),
            Some(&pattern),
        )?
    };
    let older = match all.last() {
        Some(last) if all.len() == limit => Some(last.id),
        _ if floor > 0 => {
            let more: bool = conn
                .prepare_cached("SELECT EXISTS (SELECT 1 FROM messages WHERE id < ?1)")?
                .query_row(params![floor], |row| row.get(0))?;
            more.then_some(floor as MsgId)
        }
        _ => None,
    };
    Ok(SearchPage {
        messages: all,
        older,
    })
}

/// `text` with each letter folded as the full-text index folds it: to lower case (letters
/// whose lower case is more than one character are kept as they are), and the letters that
/// Unicode case folding joins with another (final sigma, the micro sign, long s, …) to it.
fn fold(text: &str) -> String {
    text.chars()
        .map(|c| {
            let mut lower = c.to_lowercase();
            let c = match (lower.next(), lower.next()) {
                (Some(l), None) => l,
                _ => c,
            };
            match c {
                'ς' => 'σ',
                '\u{b5}' => 'μ',
                'ſ' => 's',
                'ϐ' => 'β',
                'ϑ' => 'θ',
                'ϕ' => 'φ',
                'ϖ' => 'π',
                'ϰ' => 'κ',
                'ϱ' => 'ρ',
                'ϵ' => 'ε',
                '\u{345}' | '\u{1fbe}' => 'ι',
                'ẛ' => 'ṡ',
                c => c,
            }
        })
        .collect()
}

/// A full-text query for the messages holding every trigram (three characters in a row) of
/// `text` (as written: the index folds the query itself), each once; `None` when `text` is
/// shorter than three characters. Trigrams with a NUL, which a full-text query cannot hold,
/// are left to the check of the text itself.
fn trigrams(text: &str) -> Option<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut seen = std::collections::HashSet::new();
    let terms: Vec<String> = chars
        .windows(3)
        .filter(|w| !w.contains(&'\0'))
        .map(|w| w.iter().collect::<String>())
        .filter(|t| seen.insert(t.clone()))
        .map(|t| format!("\"{}\"", t.replace('"', "\"\"")))
        .collect();
    (!terms.is_empty()).then(|| terms.join(" AND "))
}
