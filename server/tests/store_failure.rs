//! A store that fails for a while: messages already delivered are stored once it works again,
//! never delivered twice, and acknowledged (with their first id) only once stored; while too
//! many wait, new messages are refused before they are delivered.
//!
//! The store is made to fail from a second SQLite connection to the server's database file:
//! a trigger that aborts every insert into `messages`, or a write lock held longer than the
//! server waits for it. Both fail the server's real transactions; dropping the trigger or the
//! lock lets them succeed again.

mod common;

use common::{Client, DEADLINE, TestServer, error_code, lobby, to_room};
use protocol::{ChatMessage, ErrorCode, MsgId, ServerFrame};
use server::Config;
use server::store::{DB_FILE, Location};
use std::collections::HashMap;

fn on_disk(dir: &tempfile::TempDir) -> Config {
    Config {
        store: Location::Dir(dir.path().to_owned()),
        ..Config::default()
    }
}

/// A second connection to the server's database, to make its transactions fail.
struct Saboteur {
    conn: rusqlite::Connection,
}

impl Saboteur {
    fn open(dir: &tempfile::TempDir) -> Self {
        let conn = rusqlite::Connection::open(dir.path().join(DB_FILE)).expect("open the store");
        conn.busy_timeout(DEADLINE).expect("busy timeout");
        Self { conn }
    }

    /// Every transaction storing a message fails from now on.
    fn refuse_messages(&self) {
        self.conn
            .execute_batch(
                "CREATE TRIGGER refuse_messages BEFORE INSERT ON messages
                 BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END",
            )
            .expect("create the trigger");
    }

    /// Messages can be stored again.
    fn allow_messages(&self) {
        self.conn
            .execute_batch("DROP TRIGGER refuse_messages")
            .expect("drop the trigger");
    }

    /// Holds the write lock until `release`: the server's writes wait for it as long as it
    /// waits for a lock (5 s), then fail with "database is locked".
    fn lock(&self) {
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .expect("take the write lock");
    }

    fn release(&self) {
        self.conn
            .execute_batch("ROLLBACK")
            .expect("release the lock");
    }
}

/// Reads acks until one has come for each of `client_ids`; any error fails the test.
async fn acks(client: &mut Client, client_ids: &[&str]) -> HashMap<String, (MsgId, i64)> {
    let mut got = HashMap::new();
    while got.len() < client_ids.len() {
        match client.reply().await {
            ServerFrame::Ack {
                client_id, id, ts, ..
            } => {
                assert!(
                    client_ids.contains(&client_id.as_str()),
                    "an unexpected ack for {client_id}"
                );
                assert!(
                    got.insert(client_id.clone(), (id, ts)).is_none(),
                    "a second ack for {client_id}"
                );
            }
            other => panic!("expected an ack, got {other:?}"),
        }
    }
    got
}

/// Reads `/metrics` until the counter `name` is at least `at_least`, polling until
/// [`DEADLINE`].
async fn await_metric(server: &TestServer, name: &str, at_least: f64) {
    let started = std::time::Instant::now();
    loop {
        let body = common::http_get(server.addr, "/metrics").await;
        let value = body
            .lines()
            .find_map(|line| {
                line.strip_prefix(name)?
                    .strip_prefix(' ')?
                    .parse::<f64>()
                    .ok()
            })
            .unwrap_or_else(|| panic!("{name} missing from\n{body}"));
        if value >= at_least {
            return;
        }
        assert!(started.elapsed() < DEADLINE, "{name} stayed at {value}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The lobby's stored messages, read from a fresh start of the server on `dir`.
async fn lobby_after_restart(dir: &tempfile::TempDir) -> Vec<ChatMessage> {
    let server = TestServer::with_config(on_disk(dir)).await;
    let mut reader = server.native("reader").await;
    let messages = reader.latest(lobby()).await;
    server.stop().await;
    messages
}

#[tokio::test]
async fn a_message_the_store_failed_on_is_delivered_once_and_acknowledged_once_stored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::with_config(on_disk(&dir)).await;
    let mut bob = server.native("bob").await;
    let mut alice = server.native("alice").await;
    let saboteur = Saboteur::open(&dir);

    saboteur.refuse_messages();
    alice.send(&to_room("a-1", "lobby", "kept")).await;
    let delivered = bob.message().await;
    assert_eq!(delivered.text, "kept");

    // No ack came: the client reconnects and sends it again.
    drop(alice);
    let mut alice = server.native("alice").await;
    let stored = alice.latest(lobby()).await;
    assert!(
        stored.iter().all(|m| m.text != "kept"),
        "the store was to fail, yet it holds the message: {stored:?}"
    );
    alice.send(&to_room("a-1", "lobby", "kept")).await;
    alice.send(&to_room("a-2", "lobby", "after")).await;
    let next = bob.message().await;
    assert_eq!(
        (next.text.as_str(), next.id > delivered.id),
        ("after", true),
        "the resend must not be delivered again"
    );

    saboteur.allow_messages();
    let acked = acks(&mut alice, &["a-1", "a-2"]).await;
    assert_eq!(acked["a-1"], (delivered.id, delivered.ts), "the first id");
    assert_eq!(acked["a-2"].0, next.id);
    server.stop().await;

    let history = lobby_after_restart(&dir).await;
    let ids: Vec<(MsgId, &str)> = history.iter().map(|m| (m.id, m.text.as_str())).collect();
    assert_eq!(ids, [(delivered.id, "kept"), (next.id, "after")]);
}

#[tokio::test]
async fn new_messages_are_refused_while_too_many_wait_for_a_failing_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config {
        max_unstored: 2,
        ..on_disk(&dir)
    };
    let server = TestServer::with_config(config).await;
    let mut bob = server.native("bob").await;
    let mut alice = server.native("alice").await;
    let saboteur = Saboteur::open(&dir);

    saboteur.refuse_messages();
    alice.send(&to_room("a-1", "lobby", "one")).await;
    alice.send(&to_room("a-2", "lobby", "two")).await;
    alice.send(&to_room("a-3", "lobby", "three")).await;
    let refused = alice.reply().await;
    assert_eq!(error_code(&refused), ErrorCode::Internal);
    assert!(
        matches!(&refused, ServerFrame::Error { client_id: Some(id), .. } if id == "a-3"),
        "{refused:?}"
    );

    saboteur.allow_messages();
    let acked = acks(&mut alice, &["a-1", "a-2"]).await;
    alice.send(&to_room("a-4", "lobby", "four")).await;
    let four = alice.ack_id().await;

    let seen: Vec<(MsgId, String)> = [
        bob.message().await,
        bob.message().await,
        bob.message().await,
    ]
    .into_iter()
    .map(|m| (m.id, m.text))
    .collect();
    let want = [
        (acked["a-1"].0, "one".to_owned()),
        (acked["a-2"].0, "two".to_owned()),
        (four, "four".to_owned()),
    ];
    assert_eq!(seen, want, "the refused message is not delivered");
    server.stop().await;
    let history = lobby_after_restart(&dir).await;
    let texts: Vec<&str> = history.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["one", "two", "four"]);
}

#[tokio::test]
async fn a_store_locked_too_long_stores_and_acknowledges_once_the_lock_is_gone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::with_config(on_disk(&dir)).await;
    let mut bob = server.native("bob").await;
    let mut alice = server.native("alice").await;
    let saboteur = Saboteur::open(&dir);

    // The first message reserves a block of ids in the store: before the lock.
    alice.send(&to_room("a-0", "lobby", "first")).await;
    alice.ack_id().await;
    bob.message().await;
    saboteur.lock();
    alice.send(&to_room("a-1", "lobby", "locked out")).await;
    let delivered = bob.message().await;
    // The store gives up waiting for the lock after 5 s, and counts the failure.
    await_metric(&server, "chat_store_failures_total", 1.0).await;
    alice.send(&to_room("a-1", "lobby", "locked out")).await;
    alice.send(&to_room("a-2", "lobby", "marker")).await;
    let next = bob.message().await;
    assert_eq!(
        next.text, "marker",
        "the resend must not be delivered again"
    );

    saboteur.release();
    let acked = acks(&mut alice, &["a-1", "a-2"]).await;
    assert_eq!(acked["a-1"], (delivered.id, delivered.ts));
    server.stop().await;
    let history = lobby_after_restart(&dir).await;
    let texts: Vec<&str> = history.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["first", "locked out", "marker"]);
}

#[tokio::test]
async fn a_sender_waiting_for_a_failing_store_is_not_taken_for_gone() {
    // Four messages in flight stop the server reading alice (half her outbox), so her answers
    // to its pings go unread while the store fails for several ping intervals.
    let dir = tempfile::tempdir().expect("tempdir");
    let ping = std::time::Duration::from_millis(300);
    let config = Config {
        outbox_frames: 8,
        ping_interval: ping,
        ..on_disk(&dir)
    };
    let server = TestServer::with_config(config).await;
    let mut alice = server.native("alice").await;
    let saboteur = Saboteur::open(&dir);

    saboteur.refuse_messages();
    let ids = ["a-1", "a-2", "a-3", "a-4"];
    for id in ids {
        alice.send(&to_room(id, "lobby", id)).await;
    }
    // What is tested is time passing: without answers read, a connection is closed after
    // two ping intervals.
    tokio::time::sleep(ping * 5).await;
    saboteur.allow_messages();
    let acked = acks(&mut alice, &ids).await;
    assert_eq!(
        acked.len(),
        4,
        "alice is still connected and every message acknowledged"
    );
    server.stop().await;
}
