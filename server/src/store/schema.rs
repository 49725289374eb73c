//! The database schema, and the migrations that bring a store of an older server up to it.

/// Columns and tables added after the first schema, applied when missing.
pub(super) const MIGRATIONS: &[(&str, &str)] = &[
    (
        "SELECT count(*) FROM pragma_table_info('users') WHERE name = 'password'",
        "ALTER TABLE users ADD COLUMN password TEXT",
    ),
    (
        "SELECT count(*) FROM pragma_table_info('messages') WHERE name = 'reply_to'",
        "ALTER TABLE messages ADD COLUMN reply_to INTEGER;
      ALTER TABLE messages ADD COLUMN edited_ts INTEGER;
      ALTER TABLE messages ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;",
    ),
    (
        "SELECT count(*) FROM sqlite_master WHERE name = 'messages_fts'",
        // Full-text search over any script: the trigram tokenizer finds Chinese text too.
        "CREATE VIRTUAL TABLE messages_fts USING fts5(
          text, content = 'messages', content_rowid = 'id', tokenize = 'trigram');
      CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
          INSERT INTO messages_fts (rowid, text) VALUES (new.id, new.text);
      END;
      CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
          INSERT INTO messages_fts (messages_fts, rowid, text) VALUES ('delete', old.id, old.text);
      END;
      CREATE TRIGGER messages_fts_update AFTER UPDATE OF text ON messages BEGIN
          INSERT INTO messages_fts (messages_fts, rowid, text) VALUES ('delete', old.id, old.text);
          INSERT INTO messages_fts (rowid, text) VALUES (new.id, new.text);
      END;
      INSERT INTO messages_fts (messages_fts) VALUES ('rebuild');",
    ),
    (
        "SELECT count(*) FROM pragma_table_info('users') WHERE name = 'last_seen'",
        "ALTER TABLE users ADD COLUMN last_seen INTEGER",
    ),
    (
        "SELECT count(*) FROM sqlite_master WHERE name = 'reads'",
        "CREATE TABLE reads (
          nick TEXT NOT NULL, conv TEXT NOT NULL, last_read INTEGER NOT NULL,
          PRIMARY KEY (nick, conv))",
    ),
    (
        "SELECT count(*) FROM sqlite_master WHERE name = 'meta'",
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    ),
    (
        "SELECT count(*) FROM sqlite_master WHERE name = 'fts_pending'",
        // Index in batches (see the module doc). A message still pending is not in the index
        // yet: editing or deleting it leaves the index alone, and indexing reads its text then.
        "BEGIN;
      CREATE TABLE fts_pending (id INTEGER PRIMARY KEY);
      DROP TRIGGER messages_fts_insert;
      DROP TRIGGER messages_fts_delete;
      DROP TRIGGER messages_fts_update;
      CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
          INSERT INTO fts_pending (id) VALUES (new.id);
      END;
      CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
          INSERT INTO messages_fts (messages_fts, rowid, text)
              SELECT 'delete', old.id, old.text
              WHERE NOT EXISTS (SELECT 1 FROM fts_pending WHERE id = old.id);
          DELETE FROM fts_pending WHERE id = old.id;
      END;
      CREATE TRIGGER messages_fts_update AFTER UPDATE OF text ON messages
          WHEN NOT EXISTS (SELECT 1 FROM fts_pending WHERE id = old.id) BEGIN
          INSERT INTO messages_fts (messages_fts, rowid, text) VALUES ('delete', old.id, old.text);
          INSERT INTO messages_fts (rowid, text) VALUES (new.id, new.text);
      END;
      COMMIT;",
    ),
    (
        "SELECT count(*) FROM sqlite_master
         WHERE name = 'messages' AND sql NOT LIKE '%AUTOINCREMENT%'",
        // Ids are given by the sequencer, so `AUTOINCREMENT` (one more B-tree write per
        // message, in `sqlite_sequence`) goes; its counter becomes the reserved ids, so no id
        // is given twice.
        "BEGIN;
      CREATE TABLE messages_new (
          id        INTEGER PRIMARY KEY,
          conv      TEXT    NOT NULL,
          ts        INTEGER NOT NULL,
          sender    TEXT    NOT NULL,
          room      TEXT,
          recipient TEXT,
          text      TEXT    NOT NULL,
          client_id TEXT,
          reply_to  INTEGER,
          edited_ts INTEGER,
          deleted   INTEGER NOT NULL DEFAULT 0);
      INSERT INTO messages_new
          SELECT id, conv, ts, sender, room, recipient, text, client_id, reply_to, edited_ts,
                 deleted FROM messages;
      INSERT INTO meta (key, value)
          SELECT 'reserved_ids', seq FROM sqlite_sequence WHERE name = 'messages'
          ON CONFLICT (key) DO UPDATE
              SET value = max(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER));
      DROP TABLE messages;
      ALTER TABLE messages_new RENAME TO messages;
      CREATE INDEX messages_by_conv ON messages (conv, id);
      CREATE INDEX messages_by_recipient ON messages (recipient, id) WHERE recipient IS NOT NULL;
      CREATE UNIQUE INDEX messages_by_client_id ON messages (sender, client_id)
          WHERE client_id IS NOT NULL;
      CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
          INSERT INTO messages_fts (messages_fts, rowid, text)
              SELECT 'delete', old.id, old.text
              WHERE NOT EXISTS (SELECT 1 FROM fts_pending WHERE id = old.id);
          DELETE FROM fts_pending WHERE id = old.id;
      END;
      CREATE TRIGGER messages_fts_update AFTER UPDATE OF text ON messages
          WHEN NOT EXISTS (SELECT 1 FROM fts_pending WHERE id = old.id) BEGIN
          INSERT INTO messages_fts (messages_fts, rowid, text) VALUES ('delete', old.id, old.text);
          INSERT INTO messages_fts (rowid, text) VALUES (new.id, new.text);
      END;
      COMMIT;",
    ),
    (
        "SELECT count(*) = 0 FROM sqlite_master WHERE name = 'messages_fts_insert'",
        // `insert_at` notes new messages in `fts_pending` itself: an insert with a trigger
        // needs a statement journal (a copy of every page it changes), an insert without
        // one does not.
        "DROP TRIGGER messages_fts_insert",
    ),
    (
        "SELECT count(*) FROM sqlite_master WHERE name = 'dm_partners'",
        // Who has direct chats with whom, both ways, for the unread counts at login: finding
        // them in `messages` (sender or recipient) read the whole table.
        "BEGIN;
      CREATE TABLE dm_partners (
          nick TEXT NOT NULL, partner TEXT NOT NULL, PRIMARY KEY (nick, partner)) WITHOUT ROWID;
      INSERT OR IGNORE INTO dm_partners
          SELECT sender, recipient FROM messages WHERE recipient IS NOT NULL
          UNION SELECT recipient, sender FROM messages WHERE recipient IS NOT NULL;
      COMMIT;",
    ),
    (
        "SELECT count(*) FROM sqlite_master WHERE name = 'messages_fts' AND sql LIKE '%detail%'",
        // The index keeps which messages hold a trigram, not where in them (`detail = none`),
        // nor their sizes (`columnsize = 0`, used only for ranking): storing and indexing a
        // message costs about a fifth less. A search checks its candidates' text itself.
        "BEGIN;
      DROP TABLE messages_fts;
      CREATE VIRTUAL TABLE messages_fts USING fts5(
          text, content = 'messages', content_rowid = 'id', tokenize = 'trigram',
          detail = none, columnsize = 0);
      INSERT INTO messages_fts (messages_fts) VALUES ('rebuild');
      DELETE FROM fts_pending;
      COMMIT;",
    ),
    (
        "SELECT count(*) = 0 FROM sqlite_master WHERE name = 'messages_by_recipient'",
        // Direct messages waiting for their recipient are found through `dm_partners` and
        // the conversations' index, so a direct message updates one index fewer.
        "DROP INDEX messages_by_recipient",
    ),
    (
        "SELECT count(*) FROM messages_fts_config WHERE k = 'automerge'",
        // FTS5 merges a level's segments once it holds `automerge` of them (4 by default):
        // at 8, a message is rewritten by fewer merges, and a search reads a few more
        // segments (storing 200,000 direct messages took about 15% fewer instructions, a
        // search of them about 0.1 ms more).
        "INSERT INTO messages_fts (messages_fts, rank) VALUES ('automerge', 8)",
    ),
];

/// Indexes the pending messages with their current text, and forgets them.
pub(super) const INDEX_PENDING: &str = "
    INSERT INTO messages_fts (rowid, text)
        SELECT m.id, m.text FROM fts_pending p JOIN messages m ON m.id = p.id;
    DELETE FROM fts_pending;";

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS messages (
    id        INTEGER PRIMARY KEY,
    conv      TEXT    NOT NULL,
    ts        INTEGER NOT NULL,
    sender    TEXT    NOT NULL,
    room      TEXT,
    recipient TEXT,
    text      TEXT    NOT NULL,
    client_id TEXT
);
CREATE INDEX IF NOT EXISTS messages_by_conv ON messages (conv, id);
CREATE UNIQUE INDEX IF NOT EXISTS messages_by_client_id ON messages (sender, client_id)
    WHERE client_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS users (
    nick      TEXT PRIMARY KEY,
    first_ts  INTEGER NOT NULL,
    dm_seen   INTEGER NOT NULL DEFAULT 0
);
";
