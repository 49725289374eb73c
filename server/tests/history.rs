//! Stored history: resume without loss, offline delivery, one copy per client id, paging,
//! restarts (clean and SIGKILL) and retention.

mod common;

use common::{Binary, Client, DEADLINE, TestServer, lobby, to_room, to_user};
use protocol::{ChatMessage, ClientFrame, Cursor, MsgId, SeedChat, ServerFrame, Target};
use server::Config;
use server::store::{Location, Retention};

fn texts(messages: &[ChatMessage]) -> Vec<&str> {
    messages.iter().map(|m| m.text.as_str()).collect()
}

/// Logs in with cursors and returns the client past its `welcome`.
async fn login_resuming(server: &TestServer, nick: &str, resume: Vec<Cursor>) -> Client {
    let mut client = server.native_unlogged().await;
    client
        .send(&ClientFrame::Login {
            nick: nick.into(),
            resume,
            password: None,
        })
        .await;
    assert!(matches!(client.frame().await, ServerFrame::Welcome { .. }));
    client
}

fn on_disk(dir: &tempfile::TempDir) -> Config {
    Config {
        store: Location::Dir(dir.path().to_owned()),
        ..Config::default()
    }
}

#[tokio::test]
async fn a_client_that_reconnects_gets_exactly_the_messages_it_missed() {
    let server = TestServer::start().await;
    let mut alice = server.native("alice").await;
    let mut bob = server.native("bob").await;
    bob.send(&to_room("b-0", "lobby", "before")).await;
    let last_seen = alice.message().await.id;
    drop(alice);
    bob.frame_where(|f| f.presence_of("alice") == Some(false))
        .await;

    let mut sent = Vec::new();
    for i in 0..7 {
        bob.send(&to_room(
            &format!("b-{}", i + 1),
            "lobby",
            &format!("missed {i}"),
        ))
        .await;
        sent.push(bob.ack_id().await);
    }
    let cursor = Cursor {
        target: lobby(),
        after: last_seen,
    };
    let mut alice = login_resuming(&server, "alice", vec![cursor]).await;
    let (target, messages, has_more) = alice.history().await;
    assert_eq!(target, lobby());
    assert_eq!(messages.iter().map(|m| m.id).collect::<Vec<_>>(), sent);
    assert_eq!(texts(&messages)[0], "missed 0");
    assert!(!has_more);
    // And live delivery carries on from there, with nothing twice.
    bob.send(&to_room("b-9", "lobby", "live")).await;
    let live = alice.message().await;
    assert_eq!(live.text, "live");
    assert!(live.id > *sent.last().expect("sent"));
}

#[tokio::test]
async fn a_resent_message_is_stored_and_delivered_once() {
    let server = TestServer::start().await;
    let mut alice = server.native("alice").await;
    let mut bob = server.native("bob").await;
    alice.send(&to_room("same-id", "lobby", "only once")).await;
    let first = alice.ack_id().await;
    // The ack was lost with the connection; the client resends after reconnecting.
    drop(alice);
    let mut alice = server.native("alice").await;
    alice.send(&to_room("same-id", "lobby", "only once")).await;
    assert_eq!(alice.ack_id().await, first);
    alice.send(&to_room("next-id", "lobby", "next")).await;
    alice.ack_id().await;
    // bob heard "only once" once, then "next".
    assert_eq!(bob.message().await.text, "only once");
    assert_eq!(bob.message().await.text, "next");
    bob.send(&ClientFrame::History {
        target: lobby(),
        before: None,
        after: None,
        limit: None,
    })
    .await;
    let (_, messages, _) = bob.history().await;
    assert_eq!(texts(&messages), ["only once", "next"]);
}

#[tokio::test]
async fn a_direct_message_to_an_offline_user_reaches_them_at_login() {
    let server = TestServer::start().await;
    let mut alice = server.native("alice").await;
    let bob = server.native("bob").await;
    drop(bob);
    alice
        .frame_where(|f| f.presence_of("bob") == Some(false))
        .await;
    for text in ["are you there?", "call me"] {
        alice.send(&to_user(text, "bob", text)).await;
        match alice.reply().await {
            ServerFrame::Ack { offline, .. } => assert!(offline, "stored for bob, who is offline"),
            other => panic!("expected an ack, got {other:?}"),
        }
    }
    let mut bob = server.native_unlogged().await;
    bob.send(&ClientFrame::login("bob")).await;
    assert!(matches!(bob.frame().await, ServerFrame::Welcome { .. }));
    let (target, messages, _) = bob.history().await;
    assert_eq!(target, Target::User("alice".parse().expect("nick")));
    let got: Vec<&str> = texts(&messages)
        .into_iter()
        .filter(|t| *t != "probe")
        .collect();
    assert_eq!(got, ["are you there?", "call me"]);
    // Delivered once: the next login has nothing waiting.
    drop(bob);
    alice
        .frame_where(|f| f.presence_of("bob") == Some(false))
        .await;
    let mut bob = server.native("bob").await;
    alice.send(&to_user("a-3", "bob", "hello again")).await;
    let next = bob
        .frame_where(|f| matches!(f, ServerFrame::Message(_) | ServerFrame::History { .. }))
        .await;
    assert!(
        matches!(&next, ServerFrame::Message(m) if m.text == "hello again"),
        "{next:?}"
    );
}

#[tokio::test]
async fn a_direct_message_to_an_offline_seed_page_user_arrives_when_the_page_connects() {
    let server = TestServer::start().await;
    let mut watcher = server.native("watcher").await;
    let bob = server.seed_single("bob").await;
    drop(bob);
    watcher
        .frame_where(|f| f.presence_of("bob") == Some(false))
        .await;
    // From a seed page: it is told the message is kept.
    let mut carol = server.seed_single("carol").await;
    carol
        .send_text(r#"{"message":"from carol","from_user":"carol","to_user":"bob"}"#)
        .await;
    let notice: SeedChat = carol.json().await;
    assert_eq!(notice.from_user, "system");
    assert!(notice.message.contains("kept"), "{}", notice.message);
    // From a native client: an ack that says offline.
    watcher.send(&to_user("w-1", "bob", "from watcher")).await;
    assert!(matches!(
        watcher.reply().await,
        ServerFrame::Ack { offline: true, .. }
    ));

    let mut bob = server.seed_single("bob").await;
    let first: SeedChat = bob.json().await;
    let second: SeedChat = bob.json().await;
    assert_eq!(
        (first.from_user.as_str(), first.message.as_str()),
        ("carol", "from carol")
    );
    assert_eq!(
        (second.from_user.as_str(), second.message.as_str()),
        ("watcher", "from watcher")
    );
    assert_eq!(first.to_user, "bob");
}

#[tokio::test]
async fn history_pages_back_through_a_conversation() {
    let server = TestServer::start().await;
    let mut alice = server.native("alice").await;
    let mut bob = server.native("bob").await;
    for i in 0..12 {
        alice
            .send(&to_user(&i.to_string(), "bob", &format!("dm {i}")))
            .await;
        alice.ack_id().await;
    }
    bob.send(&ClientFrame::History {
        target: Target::User("alice".parse().expect("nick")),
        before: None,
        after: None,
        limit: Some(5),
    })
    .await;
    let (target, page, has_more) = bob.history().await;
    assert_eq!(target, Target::User("alice".parse().expect("nick")));
    assert_eq!(texts(&page), ["dm 7", "dm 8", "dm 9", "dm 10", "dm 11"]);
    assert!(has_more);
    bob.send(&ClientFrame::History {
        target: Target::User("alice".parse().expect("nick")),
        before: Some(page[0].id),
        after: None,
        limit: Some(50),
    })
    .await;
    let (_, older, has_more) = bob.history().await;
    assert_eq!(older.len(), 7);
    assert_eq!(older[0].text, "dm 0");
    assert!(!has_more);
}

#[tokio::test]
async fn history_of_a_room_one_is_not_in_is_refused() {
    let server = TestServer::start().await;
    let mut alice = server.native("alice").await;
    alice
        .send(&ClientFrame::History {
            target: Target::Room("secret".parse().expect("room")),
            before: None,
            after: None,
            limit: None,
        })
        .await;
    match alice
        .frame_where(|f| matches!(f, ServerFrame::Error { .. }))
        .await
    {
        ServerFrame::Error { code, .. } => assert_eq!(code, protocol::ErrorCode::NotInRoom),
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn history_survives_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::with_config(on_disk(&dir)).await;
    let mut alice = server.native("alice").await;
    alice.send(&to_room("1", "lobby", "persisted 你好")).await;
    let id = alice.ack_id().await;
    server.stop().await;

    let server = TestServer::with_config(on_disk(&dir)).await;
    let mut alice = server.native("alice").await;
    alice
        .send(&ClientFrame::History {
            target: lobby(),
            before: None,
            after: None,
            limit: None,
        })
        .await;
    let (_, messages, _) = alice.history().await;
    assert_eq!(messages.len(), 1);
    assert_eq!(
        (messages[0].id, messages[0].text.as_str()),
        (id, "persisted 你好")
    );
    // Ids keep increasing across the restart.
    alice.send(&to_room("2", "lobby", "after")).await;
    assert!(alice.ack_id().await > id);
}

#[tokio::test]
async fn retention_keeps_the_newest_messages_of_each_conversation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::with_config(on_disk(&dir)).await;
    let mut alice = server.native("alice").await;
    let _bob = server.native("bob").await;
    for i in 0..10 {
        alice
            .send(&to_room(&format!("r{i}"), "lobby", &format!("room {i}")))
            .await;
        alice.ack_id().await;
    }
    for i in 0..4 {
        alice
            .send(&to_user(&format!("d{i}"), "bob", &format!("dm {i}")))
            .await;
        alice.ack_id().await;
    }
    server.stop().await;

    let config = Config {
        retention: Retention {
            max_messages: Some(3),
            max_age: None,
        },
        ..on_disk(&dir)
    };
    let server = TestServer::with_config(config).await;
    let mut alice = server.native("alice").await;
    for target in [lobby(), Target::User("bob".parse().expect("nick"))] {
        alice
            .send(&ClientFrame::History {
                target,
                before: None,
                after: None,
                limit: Some(100),
            })
            .await;
    }
    let (_, room, _) = alice.history().await;
    assert_eq!(texts(&room), ["room 7", "room 8", "room 9"]);
    let (_, dms, _) = alice.history().await;
    assert_eq!(texts(&dms), ["dm 1", "dm 2", "dm 3"]);
}

/// The real binary, killed with SIGKILL in the middle of a stream of sends: every message it
/// acknowledged is in the history after a restart, once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_message_survives_sigkill() {
    use futures_util::{SinkExt, StreamExt};
    use std::collections::BTreeMap;

    let dir = tempfile::tempdir().expect("tempdir");
    let mut first = Binary::start(&["--data-dir", dir.path().to_str().expect("utf-8 path")]).await;
    let server = first.as_test_server();
    let client = server.native("writer").await;
    let (mut sink, mut stream) = client.ws.split();

    const TOTAL: usize = 2000;
    // Sends run unpaced on their own task; this task reads acks and kills the server midway.
    let sender = tokio::spawn(async move {
        for i in 0..TOTAL {
            let frame = to_room(&format!("c{i}"), "lobby", &format!("message {i}"));
            if sink
                .send(tokio_tungstenite::tungstenite::Message::text(
                    frame.to_json(),
                ))
                .await
                .is_err()
            {
                break;
            }
        }
    });
    let mut acked: BTreeMap<MsgId, String> = BTreeMap::new();
    while let Ok(Some(Ok(message))) = tokio::time::timeout(DEADLINE, stream.next()).await {
        let Ok(text) = message.to_text() else {
            continue;
        };
        if let Ok(ServerFrame::Ack { id, client_id, .. }) = serde_json::from_str(text) {
            let n: usize = client_id[1..].parse().expect("client id");
            acked.insert(id, format!("message {n}"));
            if acked.len() == TOTAL / 4 {
                first.kill();
            }
        }
    }
    let _ = sender.await;
    assert!(acked.len() >= TOTAL / 4, "acked {}", acked.len());

    let second = Binary::start(&["--data-dir", dir.path().to_str().expect("utf-8 path")]).await;
    let server = second.as_test_server();
    let mut reader = server.native("reader").await;
    let mut stored: Vec<ChatMessage> = Vec::new();
    loop {
        let after = stored.last().map_or(0, |m| m.id);
        reader
            .send(&ClientFrame::History {
                target: lobby(),
                before: None,
                after: Some(after),
                limit: Some(200),
            })
            .await;
        let (_, page, has_more) = reader.history().await;
        stored.extend(page);
        if !has_more {
            break;
        }
    }
    let ids: Vec<MsgId> = stored.iter().map(|m| m.id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "in order, none twice");
    let by_id: BTreeMap<MsgId, &str> = stored.iter().map(|m| (m.id, m.text.as_str())).collect();
    for (id, text) in &acked {
        assert_eq!(
            by_id.get(id),
            Some(&text.as_str()),
            "acknowledged message {id} is stored"
        );
    }
    eprintln!(
        "acknowledged {} of {TOTAL} before SIGKILL; {} stored after restart",
        acked.len(),
        stored.len()
    );
}

/// A resend that arrives while the first copy may still wait for the store writer, and one
/// after a restart, are acknowledged with the first id and neither delivered nor stored again.
#[tokio::test]
async fn a_resend_is_acknowledged_once_stored_whether_queued_or_stored_before_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    for config in [Config::default(), on_disk(&dir)] {
        let server = TestServer::with_config(config.clone()).await;
        let mut alice = server.native("alice").await;
        let mut bob = server.native("bob").await;
        // Back to back: the second arrives before the first can have been acknowledged.
        alice.send(&to_room("twice", "lobby", "only once")).await;
        alice.send(&to_room("twice", "lobby", "only once")).await;
        let first = alice.ack_id().await;
        assert_eq!(alice.ack_id().await, first);
        alice.send(&to_room("after", "lobby", "next")).await;
        let next = alice.ack_id().await;
        assert_eq!(bob.message().await.id, first);
        assert_eq!(bob.message().await.id, next);
        server.stop().await;
        if config.store == Location::Memory {
            continue;
        }
        // After a restart the first copy is found in the store.
        let server = TestServer::with_config(config).await;
        let mut alice = server.native("alice").await;
        let mut bob = server.native("bob").await;
        alice.send(&to_room("twice", "lobby", "only once")).await;
        assert_eq!(alice.ack_id().await, first);
        alice.send(&to_room("later", "lobby", "later")).await;
        let later = alice.ack_id().await;
        assert!(later > next);
        assert_eq!(
            bob.message().await.id,
            later,
            "the resend is not delivered again"
        );
        let (_, messages, _) = {
            bob.send(&ClientFrame::History {
                target: lobby(),
                before: None,
                after: None,
                limit: None,
            })
            .await;
            bob.history().await
        };
        assert_eq!(texts(&messages), ["only once", "next", "later"]);
        server.stop().await;
    }
}

/// Messages are delivered before the store writer has stored them; a login right after a
/// burst still gets every one of them in its history, and live delivery goes on from there.
#[tokio::test]
async fn a_login_right_after_a_burst_gets_every_delivered_message_in_its_history() {
    let dir = tempfile::tempdir().expect("tempdir");
    for config in [Config::default(), on_disk(&dir)] {
        let unlimited = Config {
            rate_per_sec: 0,
            ..config
        };
        let server = TestServer::with_config(unlimited).await;
        let mut alice = server.native("alice").await;
        let mut bob = server.native("bob").await;
        const BURST: usize = 300;
        for i in 0..BURST {
            alice
                .send(&to_room(&format!("b{i}"), "lobby", &format!("burst {i}")))
                .await;
        }
        let mut seen = Vec::with_capacity(BURST);
        for _ in 0..BURST {
            seen.push(bob.message().await.id);
        }
        // Resume from the 101st: the page (at most 200) holds the last 200 exactly.
        let cursor = Cursor {
            target: lobby(),
            after: seen[BURST - 201],
        };
        let mut carol = login_resuming(&server, "carol", vec![cursor]).await;
        let (target, messages, has_more) = carol.history().await;
        assert_eq!(target, lobby());
        assert_eq!(
            messages.iter().map(|m| m.id).collect::<Vec<_>>(),
            seen[BURST - 200..]
        );
        assert!(!has_more);
        alice.send(&to_room("live", "lobby", "live")).await;
        let live = carol.message().await;
        assert_eq!(live.text, "live");
        assert!(live.id > seen[BURST - 1]);
        server.stop().await;
    }
}

/// The real binary, killed while messages stream through it: ids its clients saw, stored or
/// not, are never given to other messages after the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_seen_before_a_crash_are_not_given_to_other_messages() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_str().expect("utf-8 path");
    let mut first = Binary::start(&["--data-dir", path]).await;
    let server = first.as_test_server();
    let mut alice = server.native("alice").await;
    let mut bob = server.native("bob").await;
    const TOTAL: usize = 1000;
    for i in 0..TOTAL {
        alice
            .send(&to_room(&format!("c{i}"), "lobby", &format!("message {i}")))
            .await;
    }
    let mut seen = std::collections::BTreeMap::new();
    while seen.len() < TOTAL / 2 {
        let m = bob.message().await;
        seen.insert(m.id, m.text);
    }
    first.kill();
    drop((alice, bob));

    let second = Binary::start(&["--data-dir", path]).await;
    let server = second.as_test_server();
    let mut carol = server.native("carol").await;
    carol
        .send(&to_room("new", "lobby", "after the crash"))
        .await;
    let id = carol.ack_id().await;
    let last_seen = *seen.keys().next_back().expect("seen");
    assert!(id > last_seen, "new id {id} after {last_seen}");
    // What was stored of them kept its id and text.
    let stored = carol.latest(lobby()).await;
    for m in stored.iter().filter(|m| m.id != id) {
        if let Some(text) = seen.get(&m.id) {
            assert_eq!(text, &m.text, "message {}", m.id);
        }
    }
}
