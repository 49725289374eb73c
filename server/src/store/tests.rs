use super::*;
use protocol::RoomName;

fn nick(s: &str) -> Nick {
    Nick::parse(s).expect("nick")
}

impl Store {
    /// Stores `batch` with the next free ids, as the sequencer gives them.
    fn insert(&mut self, batch: &[NewMessage]) -> Result<Vec<MsgId>, StoreError> {
        let first = self.id_floor()? + 1;
        let ids: Vec<MsgId> = (first..).take(batch.len()).collect();
        self.insert_at(ids.iter().copied().zip(batch))?;
        // As the store writer does after the acks.
        self.index_if_due();
        Ok(ids)
    }
}

/// The `CREATE` statement of table, index or trigger `name`, if the store has it.
fn schema_of(store: &Store, name: &str) -> Option<String> {
    store
        .conn
        .query_row(
            "SELECT sql FROM sqlite_master WHERE name = ?1",
            [name],
            |row| row.get(0),
        )
        .optional()
        .expect("schema")
}

fn room_message(from: &str, text: &str, ts: i64) -> NewMessage {
    NewMessage {
        from: nick(from),
        target: Target::Room(RoomName::lobby()),
        text: text.into(),
        client_id: None,
        reply_to: None,
        ts,
        delivered_to: None,
    }
}

/// The people `who` has had direct chats with, by name, sorted.
fn partners(store: &Store, who: &str) -> Vec<String> {
    let mut partners: Vec<String> = store
        .direct_partners(&nick(who))
        .expect("partners")
        .iter()
        .map(|n| n.as_str().to_owned())
        .collect();
    partners.sort();
    partners
}

fn dm(from: &str, to: &str, text: &str) -> NewMessage {
    NewMessage {
        target: Target::User(nick(to)),
        ..room_message(from, text, 1)
    }
}

#[test]
fn a_conversation_key_is_the_same_from_both_sides() {
    let (a, b) = (nick("alice"), nick("bob"));
    assert_eq!(
        conversation(&a, &Target::User(b.clone())),
        conversation(&b, &Target::User(a.clone()))
    );
    assert_eq!(conversation(&a, &Target::Room(RoomName::lobby())), "#lobby");
}

#[test]
fn history_pages_backwards_and_forwards() {
    let mut store = Store::open(&Location::Memory).expect("open");
    let batch: Vec<_> = (0..10)
        .map(|i| room_message("alice", &format!("m{i}"), i))
        .collect();
    let ids: Vec<MsgId> = store.insert(&batch).expect("insert");
    let (page, more) = store.history("#lobby", None, None, 4).expect("latest");
    assert_eq!(
        page.iter().map(|m| m.text.as_str()).collect::<Vec<_>>(),
        ["m6", "m7", "m8", "m9"]
    );
    assert!(more);
    let (page, more) = store
        .history("#lobby", Some(page[0].id), None, 10)
        .expect("older");
    assert_eq!(page.len(), 6);
    assert!(!more);
    let (page, more) = store
        .history("#lobby", None, Some(ids[7]), 10)
        .expect("newer");
    assert_eq!(
        page.iter().map(|m| m.text.as_str()).collect::<Vec<_>>(),
        ["m8", "m9"]
    );
    assert!(!more);
}

#[test]
fn a_client_id_is_found_per_sender_and_stored_once() {
    let mut store = Store::open(&Location::Memory).expect("open");
    let mut m = room_message("alice", "hi", 1);
    m.client_id = Some("c1".into());
    let [id] = store.insert(&[m.clone()]).expect("insert")[..] else {
        panic!("one id")
    };
    assert_eq!(
        store.by_client_id(&nick("alice"), "c1").expect("find"),
        Some((id, 1))
    );
    // The same client id of the same sender is never stored twice, whatever its id.
    assert_eq!(store.insert_at([(id + 1, &m)]).expect("insert"), [false]);
    // Another sender may use the same client id.
    let mut other = m.clone();
    other.from = nick("bob");
    store.insert(&[other]).expect("insert");
    assert_eq!(
        store
            .history("#lobby", None, None, 50)
            .expect("history")
            .0
            .len(),
        2
    );
    assert_eq!(
        store.by_client_id(&nick("carol"), "c1").expect("find"),
        None
    );
}

#[test]
fn ids_reserved_or_pruned_are_not_given_again_after_reopening() {
    let dir = tempfile::tempdir().expect("tempdir");
    let location = Location::Dir(dir.path().to_owned());
    {
        let mut store = Store::open(&location).expect("open");
        let ids = store
            .insert(&[
                room_message("alice", "old", 1),
                room_message("alice", "new", 2),
            ])
            .expect("insert");
        assert_eq!(ids, [1, 2]);
        store.reserve_ids(10).expect("reserve");
        let retention = Retention {
            max_messages: None,
            max_age: Some(Duration::from_secs(1)),
        };
        assert_eq!(store.prune(retention, 1_000_000).expect("prune"), 2);
    }
    let store = Store::open(&location).expect("reopen");
    assert_eq!(store.max_id().expect("max"), 0);
    assert_eq!(store.id_floor().expect("floor"), 10);
}

#[test]
fn a_store_with_autoincrement_ids_is_migrated_and_keeps_its_counter() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        // The first schema, as an older server left it, with the newest message deleted.
        let conn = Connection::open(dir.path().join(DB_FILE)).expect("create");
        conn.execute_batch(
            "CREATE TABLE messages (
                id INTEGER PRIMARY KEY AUTOINCREMENT, conv TEXT NOT NULL,
                ts INTEGER NOT NULL, sender TEXT NOT NULL, room TEXT, recipient TEXT,
                text TEXT NOT NULL, client_id TEXT);
             INSERT INTO messages (conv, ts, sender, room, text, client_id)
                 VALUES ('#lobby', 1, 'alice', 'lobby', 'kept apples', 'c1'),
                        ('#lobby', 2, 'alice', 'lobby', 'gone', 'c2');
             DELETE FROM messages WHERE id = 2;",
        )
        .expect("old schema");
    }
    let mut store = Store::open(&Location::Dir(dir.path().to_owned())).expect("open");
    let sql = schema_of(&store, "messages").expect("messages");
    assert!(!sql.contains("AUTOINCREMENT"), "{sql}");
    let fts = schema_of(&store, "messages_fts").expect("index");
    assert!(fts.contains("detail = none"), "{fts}");
    assert_eq!(schema_of(&store, "messages_by_recipient"), None);
    assert_eq!(store.id_floor().expect("floor"), 2);
    let ids = store
        .insert(&[room_message("alice", "more apples", 3)])
        .expect("insert");
    assert_eq!(ids, [3]);
    let (kept, _) = store.history("#lobby", None, None, 50).expect("history");
    assert_eq!(
        kept.iter()
            .map(|m| (m.id, m.text.as_str()))
            .collect::<Vec<_>>(),
        [(1, "kept apples"), (3, "more apples")]
    );
    assert_eq!(
        store.by_client_id(&nick("alice"), "c1").expect("find"),
        Some((1, 1))
    );
    let found = store.search(&nick("alice"), &[RoomName::lobby()], "apples", 10, None);
    assert_eq!(found.expect("search").messages.len(), 2);
    store
        .conn
        .execute_batch("INSERT INTO messages_fts (messages_fts) VALUES ('integrity-check')")
        .expect("the index matches the messages");
}

#[test]
fn direct_partners_are_known_both_ways_from_older_stores_and_new_messages() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        // A store from before the partners table: carol wrote to alice, alice to bob.
        let mut store = Store::open(&Location::Dir(dir.path().to_owned())).expect("open");
        store
            .insert(&[dm("carol", "alice", "hi"), dm("alice", "bob", "yo")])
            .expect("insert");
        store
            .conn
            .execute_batch("DROP TABLE dm_partners")
            .expect("as an older server left it");
    }
    let mut store = Store::open(&Location::Dir(dir.path().to_owned())).expect("reopen");
    assert_eq!(partners(&store, "alice"), ["bob", "carol"]);
    assert_eq!(partners(&store, "bob"), ["alice"]);
    // New direct messages add partners on both sides; room messages add none.
    store
        .insert(&[
            dm("dave", "bob", "hello"),
            dm("bob", "dave", "again"),
            room_message("erin", "all", 5),
        ])
        .expect("insert");
    assert_eq!(partners(&store, "bob"), ["alice", "dave"]);
    assert_eq!(partners(&store, "dave"), ["bob"]);
    assert!(partners(&store, "erin").is_empty());
}

#[test]
fn a_direct_chat_stored_in_a_transaction_that_failed_still_gets_its_partners_later() {
    // On disk: in memory there is no journal to roll back with.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = Store::open(&Location::Dir(dir.path().to_owned())).expect("open");
    // The second message fails the transaction after the first noted alice and bob.
    store
        .conn
        .execute_batch(
            "CREATE TRIGGER refuse BEFORE INSERT ON fts_pending WHEN new.id > 1
             BEGIN SELECT RAISE(ABORT, 'disk full'); END",
        )
        .expect("trigger");
    assert!(
        store
            .insert(&[dm("alice", "bob", "one"), dm("carol", "dave", "two")])
            .is_err()
    );
    assert!(partners(&store, "alice").is_empty(), "rolled back");
    store
        .conn
        .execute_batch("DROP TRIGGER refuse")
        .expect("the store works again");
    store
        .insert(&[dm("alice", "bob", "one"), dm("alice", "bob", "again")])
        .expect("insert");
    assert_eq!(partners(&store, "alice"), ["bob"]);
    assert_eq!(partners(&store, "bob"), ["alice"]);
    // Known now: later messages of the two leave the table as it is.
    store
        .insert(&[dm("bob", "alice", "three")])
        .expect("insert");
    assert_eq!(partners(&store, "alice"), ["bob"]);
}

#[test]
fn a_direct_message_left_stored_by_a_half_failed_transaction_still_gets_its_partners() {
    // In memory there is no journal: a transaction that fails half-way (out of memory) keeps
    // the rows it wrote, here the message's own and nothing else.
    let mut store = Store::open(&Location::Memory).expect("open");
    store.add_user(&nick("bob"), 0).expect("user");
    let message = dm("alice", "bob", "while bob was away");
    store
        .conn
        .execute(
            "INSERT INTO messages (id, conv, ts, sender, recipient, text)
             VALUES (7, ?1, 1, 'alice', 'bob', ?2)",
            params![conversation(&message.from, &message.target), message.text],
        )
        .expect("the row a failed transaction left");
    // The retry finds the row stored, and still notes the pair.
    assert_eq!(store.insert_at([(7, &message)]).expect("retry"), [false]);
    let partners = store.direct_partners(&nick("bob")).expect("partners");
    assert_eq!(partners, [nick("alice")]);
    let waiting = store.undelivered(&nick("bob")).expect("undelivered");
    assert_eq!(
        waiting.iter().map(|m| m.text.as_str()).collect::<Vec<_>>(),
        ["while bob was away"]
    );
}

#[test]
fn the_full_text_index_merges_eight_segments_at_a_time_also_in_older_stores() {
    let dir = tempfile::tempdir().expect("tempdir");
    let automerge = |store: &Store| -> Option<i64> {
        store
            .conn
            .query_row(
                "SELECT v FROM messages_fts_config WHERE k = 'automerge'",
                [],
                |row| row.get(0),
            )
            .optional()
            .expect("config")
    };
    {
        let store = Store::open(&Location::Dir(dir.path().to_owned())).expect("open");
        assert_eq!(automerge(&store), Some(8));
        // As a store from before the setting was.
        store
            .conn
            .execute_batch("DELETE FROM messages_fts_config WHERE k = 'automerge'")
            .expect("older store");
        assert_eq!(automerge(&store), None);
    }
    let store = Store::open(&Location::Dir(dir.path().to_owned())).expect("reopen");
    assert_eq!(automerge(&store), Some(8));
}

#[test]
fn retention_by_count_keeps_the_newest_of_each_conversation() {
    let mut store = Store::open(&Location::Memory).expect("open");
    let mut batch: Vec<_> = (0..5)
        .map(|i| room_message("alice", &format!("r{i}"), i))
        .collect();
    batch.extend((0..3).map(|i| NewMessage {
        target: Target::User(nick("bob")),
        ..room_message("alice", &format!("d{i}"), i)
    }));
    store.insert(&batch).expect("insert");
    let retention = Retention {
        max_messages: Some(2),
        max_age: None,
    };
    assert_eq!(store.prune(retention, 100).expect("prune"), 3 + 1);
    // Later runs look at the conversations that got messages since: here the room.
    let more: Vec<_> = (5..8)
        .map(|i| room_message("alice", &format!("r{i}"), i))
        .collect();
    store.insert(&more).expect("insert");
    assert_eq!(store.prune(retention, 100).expect("prune"), 3);
    assert_eq!(store.prune(retention, 100).expect("prune"), 0);
    // Counted at two last time, one more is one too many.
    store
        .insert(&[room_message("alice", "r8", 8)])
        .expect("insert");
    assert_eq!(store.prune(retention, 100).expect("prune"), 1);
    let texts = |conv: &str| -> Vec<String> {
        store
            .history(conv, None, None, 50)
            .expect("history")
            .0
            .into_iter()
            .map(|m| m.text)
            .collect()
    };
    assert_eq!(texts("#lobby"), ["r7", "r8"]);
    assert_eq!(texts("@alice @bob"), ["d1", "d2"]);
}

#[test]
fn retention_by_count_after_a_failed_run_looks_at_every_conversation_again() {
    let mut store = Store::open(&Location::Memory).expect("open");
    let batch: Vec<_> = (0..5)
        .map(|i| room_message("alice", &format!("r{i}"), i))
        .collect();
    store.insert(&batch).expect("insert");
    let retention = Retention {
        max_messages: Some(2),
        max_age: None,
    };
    // The disk fills up, say: the deletions fail.
    store
        .conn
        .execute_batch(
            "CREATE TEMP TRIGGER full BEFORE DELETE ON messages
             BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END",
        )
        .expect("trigger");
    assert!(store.prune(retention, 100).is_err());
    store.conn.execute_batch("DROP TRIGGER full").expect("drop");
    // The lobby got nothing since, and is still over its count.
    assert_eq!(store.prune(retention, 100).expect("prune"), 3);
}

#[test]
fn retention_by_age_passes_over_a_time_in_the_future() {
    let mut store = Store::open(&Location::Memory).expect("open");
    // Sent from a clock a year ahead, then from right ones.
    let year_ahead = 10_000 + 365 * 86_400_000;
    let batch: Vec<_> = [year_ahead, 1_000, 2_000, 9_000]
        .iter()
        .map(|ts| room_message("alice", &ts.to_string(), *ts))
        .collect();
    store.insert(&batch).expect("insert");
    let retention = Retention {
        max_messages: None,
        max_age: Some(Duration::from_secs(5)),
    };
    assert_eq!(store.prune(retention, 10_000).expect("prune"), 2);
    let (left, _) = store.history("#lobby", None, None, 50).expect("history");
    assert_eq!(
        left.iter().map(|m| m.text.as_str()).collect::<Vec<_>>(),
        [year_ahead.to_string(), "9000".to_owned()]
    );
}

#[test]
fn retention_by_age_removes_only_older_messages() {
    let mut store = Store::open(&Location::Memory).expect("open");
    let batch: Vec<_> = [1_000, 5_000, 9_000]
        .iter()
        .map(|ts| room_message("alice", &ts.to_string(), *ts))
        .collect();
    store.insert(&batch).expect("insert");
    let retention = Retention {
        max_messages: None,
        max_age: Some(Duration::from_secs(5)),
    };
    assert_eq!(store.prune(retention, 10_000).expect("prune"), 1);
    let (left, _) = store.history("#lobby", None, None, 50).expect("history");
    assert_eq!(
        left.iter().map(|m| m.text.as_str()).collect::<Vec<_>>(),
        ["5000", "9000"]
    );
    assert_eq!(store.prune(retention, 10_000).expect("prune"), 0);
    assert_eq!(store.prune(retention, 14_500).expect("prune"), 2);
    assert!(
        store
            .history("#lobby", None, None, 50)
            .expect("history")
            .0
            .is_empty()
    );
}

#[test]
fn undelivered_direct_messages_wait_for_their_recipient() {
    let mut store = Store::open(&Location::Memory).expect("open");
    store.add_user(&nick("bob"), 0).expect("user");
    // From partners whose names sort before and after bob's, in the order they were sent.
    let dm = |from: &str, text: &str, delivered: bool| NewMessage {
        target: Target::User(nick("bob")),
        delivered_to: delivered.then(|| nick("bob")),
        ..room_message(from, text, 0)
    };
    store
        .insert(&[
            dm("alice", "seen", true),
            dm("alice", "while away", false),
            dm("zoë", "from zoë", false),
            super::tests::dm("bob", "alice", "sent by bob"),
            room_message("alice", "to the room", 0),
            dm("alice", "again", false),
        ])
        .expect("insert");
    let waiting = store.undelivered(&nick("bob")).expect("undelivered");
    assert_eq!(
        waiting.iter().map(|m| m.text.as_str()).collect::<Vec<_>>(),
        ["while away", "from zoë", "again"]
    );
    let newest = |store: &Store| store.newest_direct_past_mark(&nick("bob")).expect("newest");
    assert_eq!(newest(&store), Some(waiting[2].id));
    store
        .mark_delivered(&nick("bob"), waiting[2].id)
        .expect("mark");
    assert!(
        store
            .undelivered(&nick("bob"))
            .expect("undelivered")
            .is_empty()
    );
    assert_eq!(newest(&store), None);
    // What bob sends himself moves nothing for him to receive, but the mark may pass it.
    let sent = store
        .insert(&[
            super::tests::dm("bob", "zoë", "sent later"),
            super::tests::dm("bob", "alice", "sent last"),
        ])
        .expect("insert");
    assert!(
        store
            .undelivered(&nick("bob"))
            .expect("undelivered")
            .is_empty()
    );
    assert_eq!(newest(&store), Some(sent[1]));
    assert_eq!(
        store
            .newest_direct_past_mark(&nick("nobody"))
            .expect("newest"),
        None
    );
}

#[test]
fn unread_counts_stop_at_the_most_a_client_shows() {
    let mut store = Store::open(&Location::Memory).expect("open");
    let cap = protocol::MAX_UNREAD as usize;
    let batch: Vec<NewMessage> = (0..cap + 5)
        .map(|i| room_message("alice", &format!("{i}"), 1))
        .collect();
    let ids = store.insert(&batch).expect("insert");
    store
        .insert(&[room_message("bob", "bob's own", 1)])
        .expect("insert");
    let unread = |store: &Store| store.unread(&nick("bob"), "#lobby").expect("unread");
    assert_eq!(unread(&store), (protocol::MAX_UNREAD, 0));
    store
        .mark_read(&nick("bob"), "#lobby", ids[5])
        .expect("read");
    assert_eq!(unread(&store), (cap as u64 - 1, ids[5]));
    assert_eq!(
        store.unread(&nick("alice"), "#lobby").expect("unread"),
        (1, 0)
    );
}

#[test]
fn search_sees_messages_indexed_or_still_pending_with_their_edits_and_deletions() {
    let mut store = Store::open(&Location::Memory).expect("open");
    let n = FTS_BATCH as usize;
    // More than a page of search results: only the first five and the last five of the
    // batches mention apples.
    let apples = |i: usize| {
        let text = if i < 5 || i >= n {
            format!("note {i} about apples")
        } else {
            format!("note {i} about nothing")
        };
        room_message("alice", &text, 10_000)
    };
    // The first batch is indexed as it is stored; the next five wait for the index.
    let mut ids: Vec<MsgId> = Vec::new();
    for batch in [
        (0..n).map(apples).collect::<Vec<_>>(),
        (n..n + 5).map(apples).collect(),
    ] {
        let first = 100 + ids.len() as MsgId;
        let batch_ids: Vec<MsgId> = (first..).take(batch.len()).collect();
        store
            .insert_at(batch_ids.iter().copied().zip(&batch))
            .expect("insert");
        store.index_if_due();
        ids.extend(batch_ids);
    }
    // Stored last, but the oldest (as from another node): pending, and first for retention.
    store
        .insert_at([(1, &room_message("alice", "old apples", 0))])
        .expect("insert");
    assert_eq!(store.unindexed.get().messages, 6);
    // Edit and delete one indexed and one pending message; retention removes a pending one.
    for id in [ids[0], ids[n]] {
        store
            .edit(id, &format!("pears {id}"), 20_000)
            .expect("edit");
    }
    for id in [ids[1], ids[n + 1]] {
        store.delete(id).expect("delete");
    }
    let retention = Retention {
        max_messages: None,
        max_age: Some(Duration::from_secs(5)),
    };
    assert_eq!(store.prune(retention, 10_000).expect("prune"), 1);

    let search = |text: &str| -> Vec<String> {
        let found = store.search(&nick("alice"), &[RoomName::lobby()], text, MAX_PAGE, None);
        let found = found.expect("search").messages;
        found.into_iter().map(|m| m.text).collect()
    };
    assert_eq!(search("apples").len(), 5 + 5 - 4);
    assert!(!search("apples").contains(&"old apples".to_owned()));
    assert_eq!(
        search("pears"),
        [format!("pears {}", ids[n]), format!("pears {}", ids[0])]
    );
    // Searching left the pending messages (six, one pruned) to the next batch.
    let pending: i64 = store
        .conn
        .query_row("SELECT count(*) FROM fts_pending", [], |row| row.get(0))
        .expect("count");
    assert_eq!(pending, 5);
    store
        .conn
        .execute_batch("INSERT INTO messages_fts (messages_fts) VALUES ('integrity-check')")
        .expect("the index matches the messages");
}

#[test]
fn a_reader_searches_what_was_committed_indexed_or_pending_newest_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = Store::open(&Location::Dir(dir.path().to_owned())).expect("open");
    let reader = store.reader().expect("reader").expect("on disk");
    let search = |text: &str| -> Vec<String> {
        let found = reader.search(&nick("alice"), &[RoomName::lobby()], text, 3, None);
        let found = found.expect("search").messages;
        found.into_iter().map(|m| m.text).collect()
    };
    assert!(search("apples").is_empty());
    // A full batch is indexed as it is stored; two more wait for the index.
    let n = FTS_BATCH as usize;
    let batch: Vec<NewMessage> = (0..n)
        .map(|i| room_message("alice", &format!("{i} apples"), 1))
        .collect();
    store.insert(&batch).expect("insert");
    store
        .insert(&[
            room_message("alice", "ripe APPLES", 2),
            room_message("alice", "pears", 2),
            room_message("alice", "green apples", 2),
        ])
        .expect("insert");
    assert_eq!(store.unindexed.get().messages, 3);
    assert_eq!(
        search("apples"),
        [
            "green apples",
            "ripe APPLES",
            format!("{} apples", n - 1).as_str()
        ]
    );
    assert_eq!(search("pear"), ["pears"]);
}

#[test]
fn search_finds_a_text_only_where_it_stands_in_one_piece_in_any_case() {
    let mut store = Store::open(&Location::Memory).expect("open");
    let texts = [
        "abc and then bcdef",
        "ABCdef in capitals",
        "Ärger im Büro",
        "明天我们去北京开会",
        "北京 is far, 开会 is long",
        "she said \"hi there\" twice",
        "aaaaaa",
        "ab\0cd",
        "ο δρόμος είναι ΜΑΚΡΎΣ",
        "ᏣᎳᎩ",
        "5µm wide",
    ];
    let batch: Vec<NewMessage> = texts.iter().map(|t| room_message("alice", t, 1)).collect();
    store.insert(&batch).expect("insert");
    let search = |text: &str| -> Vec<String> {
        let found = store.search(&nick("alice"), &[RoomName::lobby()], text, MAX_PAGE, None);
        let found = found.expect("search").messages;
        found.into_iter().map(|m| m.text).collect()
    };
    assert_eq!(search("abcdef"), ["ABCdef in capitals"]);
    assert_eq!(search("ärger IM"), ["Ärger im Büro"]);
    assert_eq!(search("北京开会"), ["明天我们去北京开会"]);
    assert_eq!(search("\"hi there\""), ["she said \"hi there\" twice"]);
    assert_eq!(search("aaaa"), ["aaaaaa"]);
    // Letters the index folds together, or leaves as they are, are found as it finds them.
    assert_eq!(search("ΔΡΌΜΟΣ"), ["ο δρόμος είναι ΜΑΚΡΎΣ"]);
    assert_eq!(search("μακρύς"), ["ο δρόμος είναι ΜΑΚΡΎΣ"]);
    assert_eq!(search("ᏣᎳᎩ"), ["ᏣᎳᎩ"]);
    assert_eq!(search("5μm"), ["5µm wide"]);
    assert!(search("aaaaaaa").is_empty());
    // A NUL, which no SQL text can hold, is matched too.
    assert_eq!(search("ab\0cd"), ["ab\0cd"]);
    assert_eq!(search("b\0"), ["ab\0cd"]);
    assert!(search("\0\0\0").is_empty());
    // Newest first, and at most `limit`.
    let more: Vec<NewMessage> = (0..5)
        .map(|i| room_message("alice", &format!("abcdef {i}"), 2))
        .collect();
    store.insert(&more).expect("insert");
    let found = store
        .search(&nick("alice"), &[RoomName::lobby()], "abcdef", 3, None)
        .expect("search");
    assert_eq!(
        found
            .messages
            .iter()
            .map(|m| m.text.as_str())
            .collect::<Vec<_>>(),
        ["abcdef 4", "abcdef 3", "abcdef 2"]
    );
    // The answer says where to go on, and the next one goes on from there.
    let rest = store
        .search(
            &nick("alice"),
            &[RoomName::lobby()],
            "abcdef",
            3,
            found.older,
        )
        .expect("search");
    assert_eq!(found.older, Some(found.messages[2].id));
    assert_eq!(
        rest.messages
            .iter()
            .map(|m| m.text.as_str())
            .collect::<Vec<_>>(),
        ["abcdef 1", "abcdef 0", "ABCdef in capitals"]
    );
    assert_eq!(rest.older, Some(rest.messages[2].id));
    let last = store
        .search(
            &nick("alice"),
            &[RoomName::lobby()],
            "abcdef",
            3,
            rest.older,
        )
        .expect("search");
    assert_eq!((last.messages.len(), last.older), (0, None));
}

#[test]
fn a_search_reads_a_bounded_span_of_ids_and_says_where_to_go_on() {
    let mut store = Store::open(&Location::Memory).expect("open");
    // Ids 1–30, indexed; 31–35 pending. "needle" in 3, 17 and 33; "針" (one character, a
    // scan) in 4 and 18.
    let text = |i: usize| match i {
        3 | 17 | 33 => format!("{i} needle"),
        4 | 18 => format!("{i} 針"),
        _ => format!("{i} hay"),
    };
    let all: Vec<NewMessage> = (1..=35)
        .map(|i| room_message("alice", &text(i), 1))
        .collect();
    store.insert(&all[..30]).expect("insert");
    store.index_pending().expect("index");
    store.insert(&all[30..]).expect("insert");
    let page = |needle: &str, before: Option<MsgId>| {
        let (lobby, alice) = ([RoomName::lobby()], nick("alice"));
        let found = super::search::search(&store.conn, &alice, &lobby, needle, 50, before, 10)
            .expect("search");
        let texts: Vec<String> = found.messages.into_iter().map(|m| m.text).collect();
        (texts, found.older)
    };
    // Ids 26–35, then 16–25, 6–15, and 1–5, the last with nothing older.
    assert_eq!(
        page("needle", None),
        (vec!["33 needle".to_owned()], Some(26))
    );
    assert_eq!(
        page("needle", Some(26)),
        (vec!["17 needle".to_owned()], Some(16))
    );
    assert_eq!(page("needle", Some(16)), (vec![], Some(6)));
    assert_eq!(page("needle", Some(6)), (vec!["3 needle".to_owned()], None));
    assert_eq!(page("針", None), (vec![], Some(26)));
    assert_eq!(page("針", Some(26)), (vec!["18 針".to_owned()], Some(16)));
    assert_eq!(page("針", Some(6)), (vec!["4 針".to_owned()], None));
}

#[test]
fn long_messages_are_indexed_in_smaller_batches() {
    let mut store = Store::open(&Location::Memory).expect("open");
    let long = "apples ".repeat(FTS_BATCH_BYTES / 7 / 4 + 1);
    for _ in 0..3 {
        store
            .insert(&[room_message("alice", &long, 1)])
            .expect("insert");
    }
    assert_eq!(store.unindexed.get().messages, 3);
    store
        .insert(&[room_message("alice", &long, 1)])
        .expect("insert");
    assert_eq!(store.unindexed.get(), Unindexed::default());
}

#[test]
fn a_file_that_is_not_a_database_is_refused_at_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join(DB_FILE),
        b"this is not a database, just text, but long enough to look like a header",
    )
    .expect("write");
    let err = Store::open(&Location::Dir(dir.path().to_owned())).expect_err("refused");
    assert!(
        matches!(err, StoreError::Corrupt { .. } | StoreError::Open { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("chat.db"), "{err}");
}

/// The check at open reads every table and index, table by table: a damaged page of any of
/// them, also of the full-text index's own tables, is refused.
#[test]
fn a_damaged_page_of_a_table_or_index_is_refused_at_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let location = Location::Dir(dir.path().to_owned());
    {
        let mut store = Store::open(&location).expect("open");
        let messages: Vec<NewMessage> = (0..2_000)
            .map(|i| room_message("alice", &format!("message number {i} of many"), i))
            .collect();
        store.insert(&messages).expect("insert");
    }
    let path = dir.path().join(DB_FILE);
    let pristine = std::fs::read(&path).expect("read");
    let page_size = usize::from(u16::from_be_bytes([pristine[16], pristine[17]]));
    let pages = pristine.len() / page_size;
    assert!(pages > 20, "{pages} pages");
    // Which tables own which pages, to damage one of each kind.
    let owners: Vec<(String, usize)> = {
        let conn = rusqlite::Connection::open(&path).expect("open");
        let mut stmt = conn
            .prepare("SELECT name, pageno FROM dbstat WHERE pagetype = 'leaf' ORDER BY pageno")
            .expect("dbstat");
        stmt.query_map([], |row| Ok((row.get(0)?, row.get::<_, i64>(1)? as usize)))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
    };
    for table in ["messages", "messages_by_conv", "messages_fts_data"] {
        let &(_, page) = owners
            .iter()
            .find(|(name, _)| name == table)
            .unwrap_or_else(|| panic!("no leaf page of {table}"));
        let mut damaged = pristine.clone();
        // A leaf page's header: its type byte, then cell counts and offsets, all made wrong.
        let at = (page - 1) * page_size;
        damaged[at..at + 12].fill(0xff);
        std::fs::write(&path, &damaged).expect("write");
        let err = Store::open(&location).expect_err("refused");
        assert!(matches!(err, StoreError::Corrupt { .. }), "{table}: {err}");
        assert!(err.to_string().contains("chat.db"), "{err}");
    }
    std::fs::write(&path, &pristine).expect("write");
    Store::open(&location).expect("the undamaged file opens");
}

#[test]
fn a_data_directory_that_is_a_file_is_refused() {
    let file = tempfile::NamedTempFile::new().expect("file");
    let err = Store::open(&Location::Dir(file.path().to_owned())).expect_err("refused");
    assert!(matches!(err, StoreError::NotADirectory(_)), "{err}");
}

#[test]
fn messages_survive_reopening() {
    let dir = tempfile::tempdir().expect("tempdir");
    let location = Location::Dir(dir.path().to_owned());
    {
        let mut store = Store::open(&location).expect("open");
        store
            .insert(&[room_message("alice", "kept", 1)])
            .expect("insert");
    }
    let store = Store::open(&location).expect("reopen");
    let (kept, _) = store.history("#lobby", None, None, 50).expect("history");
    assert_eq!(kept[0].text, "kept");
}
