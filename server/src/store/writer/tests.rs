use super::*;
use crate::store::Location;
use protocol::{Nick, RoomName, Target};

fn message(text: &str) -> NewMessage {
    NewMessage {
        from: Nick::parse("alice").expect("nick"),
        target: Target::Room(RoomName::lobby()),
        text: text.into(),
        client_id: None,
        reply_to: None,
        ts: 1,
        delivered_to: None,
    }
}

#[test]
fn a_read_after_push_sees_every_message_queued_before_it() {
    let store = Store::open(&Location::Memory).expect("open");
    let committed = Arc::new(Mutex::new(Vec::new()));
    let seen = committed.clone();
    let writer: Writer<u32> = Writer::start(
        store,
        8192,
        Box::new(move |ended| match ended {
            Ended::Committed { stored, .. } => seen
                .lock()
                .expect("lock")
                .extend(stored.into_iter().map(|q| q.after)),
            Ended::Failed { error, .. } => panic!("not stored: {error}"),
        }),
    )
    .expect("start");
    for n in 1..=1000u32 {
        writer.push(Queued {
            id: MsgId::from(n),
            message: message(&format!("m{n}")),
            after: n,
        });
        if n % 100 == 0 {
            let (page, _) = writer
                .sync()
                .history("#lobby", None, None, 1)
                .expect("history");
            assert_eq!(page[0].text, format!("m{n}"));
            assert_eq!(writer.done_up_to(), MsgId::from(n));
        }
    }
    writer.close();
    let committed = committed.lock().expect("lock");
    assert_eq!(
        *committed,
        (1..=1000).collect::<Vec<_>>(),
        "each once, in order"
    );
}

#[test]
fn a_failed_batch_waits_and_is_stored_with_later_ones_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&Location::Dir(dir.path().to_owned())).expect("open");
    let (ended, events) = std::sync::mpsc::channel();
    let writer: Writer<u32> = Writer::start(
        store,
        4,
        Box::new(move |end| {
            let event = match end {
                Ended::Committed { stored, resent, .. } => Some((
                    stored.into_iter().map(|q| q.after).collect::<Vec<_>>(),
                    resent.into_iter().map(|q| q.after).collect::<Vec<_>>(),
                )),
                Ended::Failed { .. } => None,
            };
            let _ = ended.send(event);
        }),
    )
    .expect("start");
    let next = || {
        events
            .recv_timeout(Duration::from_secs(10))
            .expect("a transaction ends")
    };
    writer
        .sync()
        .conn
        .execute_batch(
            "CREATE TRIGGER refuse BEFORE INSERT ON messages
             BEGIN SELECT RAISE(ABORT, 'disk full'); END",
        )
        .expect("trigger");
    for n in 1..=3u32 {
        writer.push(Queued {
            id: MsgId::from(n),
            message: message(&format!("m{n}")),
            after: n,
        });
    }
    assert_eq!(next(), None, "the first try fails");
    assert!(!writer.is_full());
    let mut resend = message("m2");
    resend.client_id = Some("c-2".into());
    // Resends wait for their message, up to the limit (4); more are refused.
    for after in [20, 22, 23, 24] {
        let answer = writer.ack_when_stored(Queued {
            id: 2,
            message: resend.clone(),
            after,
        });
        assert!(matches!(answer, Resend::Waiting), "m2 is not stored yet");
    }
    let answer = writer.ack_when_stored(Queued {
        id: 2,
        message: resend,
        after: 25,
    });
    assert!(
        matches!(answer, Resend::Refused(Queued { after: 25, .. })),
        "as many resends wait as the limit allows"
    );
    writer.push(Queued {
        id: 4,
        message: message("m4"),
        after: 4,
    });
    assert!(writer.is_full(), "four wait for a failing store");
    {
        let store = writer.sync();
        let (page, _) = store.history("#lobby", None, None, 10).expect("history");
        assert!(
            page.is_empty(),
            "a read while the store fails skips what waits"
        );
        store
            .conn
            .execute_batch("DROP TRIGGER refuse")
            .expect("drop the trigger");
    }
    let stored = loop {
        if let Some(stored) = next() {
            break stored;
        }
    };
    assert_eq!(stored, (vec![1, 2, 3, 4], vec![20, 22, 23, 24]));
    assert_eq!(writer.done_up_to(), 4);
    assert!(!writer.is_full());
    let answer = writer.ack_when_stored(Queued {
        id: 2,
        message: message("m2"),
        after: 21,
    });
    assert!(
        matches!(answer, Resend::Stored(_)),
        "a resend of a stored message is answered at once"
    );
    let (page, _) = writer
        .sync()
        .history("#lobby", None, None, 10)
        .expect("history");
    let texts: Vec<_> = page.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["m1", "m2", "m3", "m4"]);
    writer.close();
}

#[test]
fn acks_go_out_before_the_full_text_index_takes_the_messages_waiting_for_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&Location::Dir(dir.path().to_owned())).expect("open");
    let pending = |conn: &rusqlite::Connection| -> u64 {
        conn.query_row("SELECT count(*) FROM fts_pending", [], |row| {
            row.get::<_, i64>(0)
        })
        .expect("count") as u64
    };
    // Another connection, as the hook (the acks) sees the store once a batch is committed.
    let reader = Mutex::new(rusqlite::Connection::open(store.path()).expect("reader"));
    let (ended, events) = std::sync::mpsc::channel();
    let batch = crate::store::FTS_BATCH;
    let writer: Writer<u64> = Writer::start(
        store,
        2 * batch as usize,
        Box::new(move |end| {
            if let Ended::Committed { stored, .. } = end {
                let last = stored.last().map(|q| q.after);
                let _ = ended.send((last, pending(&reader.lock().expect("reader"))));
            }
        }),
    )
    .expect("start");
    for n in 1..=batch {
        writer.push(Queued {
            id: MsgId::from(n),
            message: message(&format!("apples {n}")),
            after: n,
        });
    }
    // The transaction that stores the batch's last message is acknowledged with every
    // message of the batch still waiting for the index.
    loop {
        let (last, waiting) = events
            .recv_timeout(Duration::from_secs(10))
            .expect("a transaction ends");
        if last == Some(batch) {
            assert_eq!(waiting, batch, "indexed before the acks");
            break;
        }
    }
    // Then indexed.
    let store = writer.sync();
    let reader = rusqlite::Connection::open(store.path()).expect("reader");
    assert_eq!(pending(&reader), 0);
}
