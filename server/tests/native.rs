//! The native protocol (`chat.v1`), and how native clients meet the seed pages.

mod common;

use common::{TestServer, error_code, to_room, to_user};
use protocol::{ClientFrame, ErrorCode, SeedChat, ServerFrame, Target};

#[tokio::test]
async fn login_is_welcomed_with_the_lobby_and_who_is_online() {
    let server = TestServer::start().await;
    let _bob = server.native("bob").await;
    let mut alice = server.native_unlogged().await;
    alice.send(&ClientFrame::login("张伟")).await;
    match alice.frame().await {
        ServerFrame::Welcome {
            nick,
            rooms,
            users,
            users_total,
            limits,
        } => {
            assert_eq!(nick.as_str(), "张伟");
            assert_eq!(users_total, Some(2));
            assert_eq!(
                rooms.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
                ["lobby"]
            );
            let users: Vec<&str> = users.iter().map(|u| u.as_str()).collect();
            assert_eq!(users, ["bob", "张伟"]);
            assert_eq!(
                limits.max_text_bytes,
                server::Config::default().max_text_bytes
            );
        }
        other => panic!("expected welcome, got {other:?}"),
    }
}

#[tokio::test]
async fn a_duplicate_nickname_is_refused_and_the_client_may_retry() {
    let server = TestServer::start().await;
    let _alice = server.native("alice").await;
    let _seed_bob = server.seed_single("bob").await;
    let mut other = server.native_unlogged().await;
    for taken in ["alice", "bob"] {
        other.send(&ClientFrame::login(taken)).await;
        let reply = other.frame().await;
        assert_eq!(error_code(&reply), ErrorCode::NickTaken, "{taken}");
    }
    other.send(&ClientFrame::login("alice2")).await;
    assert!(matches!(other.frame().await, ServerFrame::Welcome { .. }));
}

#[tokio::test]
async fn an_invalid_or_reserved_nickname_is_refused_with_a_reason() {
    let server = TestServer::start().await;
    let mut client = server.native_unlogged().await;
    let long = "x".repeat(10_000);
    let cases = [
        ("", ErrorCode::InvalidNick, "empty"),
        ("a b", ErrorCode::InvalidNick, "whitespace"),
        ("\u{1b}[2J", ErrorCode::InvalidNick, "control"),
        ("<script>", ErrorCode::InvalidNick, "'<'"),
        (long.as_str(), ErrorCode::InvalidNick, "longer than 32"),
        ("system", ErrorCode::ReservedNick, "reserved"),
        ("guest-1", ErrorCode::ReservedNick, "reserved"),
    ];
    for (nick, code, words) in cases {
        client.send(&ClientFrame::login(nick)).await;
        match client.frame().await {
            ServerFrame::Error {
                code: got, message, ..
            } => {
                assert_eq!(got, code, "{nick:.20}");
                assert!(message.contains(words), "{nick:.20}: {message}");
            }
            other => panic!("expected an error for {nick:.20}, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn frames_before_login_are_refused() {
    let server = TestServer::start().await;
    let mut client = server.native_unlogged().await;
    client.send(&to_room("c1", "lobby", "hi")).await;
    assert_eq!(error_code(&client.frame().await), ErrorCode::NotLoggedIn);
}

#[tokio::test]
async fn a_room_message_reaches_the_others_and_the_sender_gets_an_ack() {
    let server = TestServer::start().await;
    let mut alice = server.native("alice").await;
    let mut bob = server.native("bob").await;
    let mut carol = server.native("carol").await;

    alice.send(&to_room("a-1", "lobby", "hello 你好 👋")).await;
    let (id, ts) = match alice.reply().await {
        ServerFrame::Ack {
            client_id,
            id,
            ts,
            offline,
        } => {
            assert!(!offline);
            assert_eq!(client_id, "a-1");
            (id, ts)
        }
        other => panic!("expected ack, got {other:?}"),
    };
    for reader in [&mut bob, &mut carol] {
        let m = reader.message().await;
        assert_eq!((m.id, m.ts), (id, ts));
        assert_eq!(m.from.as_str(), "alice");
        assert_eq!(m.target, Target::Room("lobby".parse().expect("room")));
        assert_eq!(m.text, "hello 你好 👋");
    }
    // No echo: the next message alice reads is bob's.
    bob.send(&to_room("b-1", "lobby", "back")).await;
    assert_eq!(alice.message().await.from.as_str(), "bob");
}

#[tokio::test]
async fn a_direct_message_reaches_only_its_recipient() {
    let server = TestServer::start().await;
    let mut alice = server.native("alice").await;
    let mut bob = server.native("bob").await;
    let mut carol = server.native("carol").await;
    alice.send(&to_user("a-1", "bob", "just you")).await;
    assert!(matches!(alice.reply().await, ServerFrame::Ack { .. }));
    let m = bob.message().await;
    assert_eq!(m.target, Target::User("bob".parse().expect("nick")));
    assert_eq!((m.from.as_str(), m.text.as_str()), ("alice", "just you"));
    // carol's next message is a later room message, not the DM.
    alice.send(&to_room("a-2", "lobby", "everyone")).await;
    assert_eq!(carol.message().await.text, "everyone");
}

#[tokio::test]
async fn a_direct_message_to_an_unknown_user_is_an_error_and_to_an_offline_one_is_kept() {
    let server = TestServer::start().await;
    let mut alice = server.native("alice").await;
    let bob = server.native("bob").await;
    drop(bob);
    alice
        .frame_where(|f| f.presence_of("bob") == Some(false))
        .await;
    alice.send(&to_user("a-1", "bob", "gone?")).await;
    match alice.reply().await {
        ServerFrame::Ack {
            client_id, offline, ..
        } => {
            assert_eq!(client_id, "a-1");
            assert!(
                offline,
                "bob is offline: the ack says the message waits for him"
            );
        }
        other => panic!("expected an ack, got {other:?}"),
    }
    alice.send(&to_user("a-2", "nobody", "hello?")).await;
    match alice.reply().await {
        ServerFrame::Error {
            code,
            client_id,
            message,
        } => {
            assert_eq!(code, ErrorCode::UnknownUser);
            assert_eq!(client_id.as_deref(), Some("a-2"));
            assert!(message.contains("nobody called nobody"), "{message}");
        }
        other => panic!("expected an error, got {other:?}"),
    }
    // Still serving.
    alice.send(&to_room("a-3", "lobby", "ok")).await;
    assert!(matches!(alice.reply().await, ServerFrame::Ack { .. }));
}

#[tokio::test]
async fn native_and_seed_single_chat_users_message_each_other() {
    let server = TestServer::start().await;
    let mut alice = server.native("alice").await;
    let mut bob = server.seed_single("bob").await;

    alice.send(&to_user("a-1", "bob", "hi seed bob")).await;
    let got: SeedChat = bob.json().await;
    assert_eq!(
        (
            got.message.as_str(),
            got.from_user.as_str(),
            got.to_user.as_str()
        ),
        ("hi seed bob", "alice", "bob")
    );

    bob.send_text(r#"{"message":"hi native alice","from_user":"bob","to_user":"alice"}"#)
        .await;
    let m = alice.message().await;
    assert_eq!(m.from.as_str(), "bob");
    assert_eq!(m.target, Target::User("alice".parse().expect("nick")));
    assert_eq!(m.text, "hi native alice");
}

#[tokio::test]
async fn room_messages_and_seed_group_pages_meet_in_the_lobby() {
    let server = TestServer::start().await;
    let mut alice = server.native("alice").await;
    let mut page = server.seed_group().await;
    let guest = match alice
        .frame_where(|f| matches!(f, ServerFrame::Joined { .. }))
        .await
    {
        ServerFrame::Joined { room, nick } => {
            assert_eq!(room.as_str(), "lobby");
            assert!(
                nick.is_reserved() && nick.as_str().starts_with("guest-"),
                "{nick}"
            );
            nick
        }
        _ => unreachable!(),
    };

    alice.send(&to_room("a-1", "lobby", "hi page")).await;
    assert_eq!(page.text().await, "alice: hi page");

    page.send_text("hi native").await;
    let m = alice.message().await;
    assert_eq!(m.from, guest);
    assert_eq!(m.text, "hi native");

    // A guest keeps one name for the life of its connection.
    page.send_text("again").await;
    assert_eq!(alice.message().await.from, guest);
}

#[tokio::test]
async fn rooms_can_be_joined_listed_and_left() {
    let server = TestServer::start().await;
    let mut alice = server.native("alice").await;
    let mut bob = server.native("bob").await;

    alice
        .send(&ClientFrame::Join {
            room: "rust".parse().expect("room"),
        })
        .await;
    match alice
        .frame_where(|f| matches!(f, ServerFrame::Users { room: Some(_), .. }))
        .await
    {
        ServerFrame::Users {
            room, users, total, ..
        } => {
            assert_eq!(room.expect("room").as_str(), "rust");
            assert_eq!(total, Some(1));
            assert_eq!(
                users.iter().map(|u| u.as_str()).collect::<Vec<_>>(),
                ["alice"]
            );
        }
        _ => unreachable!(),
    }
    // bob is not in it: he cannot write there, and does not hear it.
    bob.send(&to_room("b-1", "rust", "let me in")).await;
    assert_eq!(error_code(&bob.reply().await), ErrorCode::NotInRoom);

    bob.send(&ClientFrame::Join {
        room: "rust".parse().expect("room"),
    })
    .await;
    let joined = alice
        .frame_where(|f| matches!(f, ServerFrame::Joined { room, .. } if room.as_str() == "rust"))
        .await;
    assert!(matches!(joined, ServerFrame::Joined { nick, .. } if nick.as_str() == "bob"));
    bob.send(&to_room("b-2", "rust", "hi rustaceans")).await;
    let m = alice.message().await;
    assert_eq!(
        (m.text.as_str(), m.target.clone()),
        ("hi rustaceans", Target::Room("rust".parse().expect("room")))
    );

    alice.send(&ClientFrame::Rooms).await;
    match alice
        .frame_where(|f| matches!(f, ServerFrame::Rooms { .. }))
        .await
    {
        ServerFrame::Rooms { rooms } => {
            let listed: Vec<(&str, usize, bool)> = rooms
                .iter()
                .map(|r| (r.name.as_str(), r.members, r.joined))
                .collect();
            assert_eq!(listed, [("lobby", 2, true), ("rust", 2, true)]);
        }
        _ => unreachable!(),
    }

    bob.send(&ClientFrame::Leave {
        room: "rust".parse().expect("room"),
    })
    .await;
    let left = alice
        .frame_where(|f| matches!(f, ServerFrame::Left { .. }))
        .await;
    assert!(matches!(left, ServerFrame::Left { nick, .. } if nick.as_str() == "bob"));
    alice
        .send(&ClientFrame::who(Some("rust".parse().expect("room"))))
        .await;
    match alice
        .frame_where(|f| matches!(f, ServerFrame::Users { .. }))
        .await
    {
        ServerFrame::Users { users, .. } => {
            assert_eq!(
                users.iter().map(|u| u.as_str()).collect::<Vec<_>>(),
                ["alice"]
            );
        }
        _ => unreachable!(),
    }
    bob.send(&ClientFrame::Leave {
        room: "rust".parse().expect("room"),
    })
    .await;
    assert_eq!(
        error_code(
            &bob.frame_where(|f| matches!(f, ServerFrame::Error { .. }))
                .await
        ),
        ErrorCode::NotInRoom
    );
}

#[tokio::test]
async fn presence_tells_who_comes_and_goes() {
    let server = TestServer::start().await;
    let mut alice = server.native("alice").await;
    let bob = server.seed_single("bob").await;
    let came = alice
        .frame_where(|f| matches!(f, ServerFrame::PresenceChanges { .. }))
        .await;
    assert_eq!(came.presence_of("bob"), Some(true), "{came:?}");
    alice.send(&ClientFrame::who(None)).await;
    match alice
        .frame_where(|f| matches!(f, ServerFrame::Users { room: None, .. }))
        .await
    {
        ServerFrame::Users { users, .. } => {
            assert_eq!(
                users.iter().map(|u| u.as_str()).collect::<Vec<_>>(),
                ["alice", "bob"]
            );
        }
        _ => unreachable!(),
    }
    drop(bob);
    let went = alice
        .frame_where(|f| matches!(f, ServerFrame::PresenceChanges { .. }))
        .await;
    assert_eq!(went.presence_of("bob"), Some(false), "{went:?}");
}

#[tokio::test]
async fn bad_frames_get_clear_errors_and_the_connection_stays() {
    let server = TestServer::start().await;
    let mut alice = server.native("alice").await;
    let long_text = "x".repeat(server::Config::default().max_text_bytes + 1);
    let cases: Vec<(String, ErrorCode, &str)> = vec![
        ("not json".into(), ErrorCode::BadFrame, "could not read"),
        (
            r#"{"type":"dance"}"#.into(),
            ErrorCode::BadFrame,
            "unknown variant",
        ),
        (
            r#"{"type":"send","client_id":1,"room":"lobby","text":"x"}"#.into(),
            ErrorCode::BadFrame,
            "invalid type",
        ),
        (
            r#"{"type":"send","client_id":"1","room":"a b","text":"x"}"#.into(),
            ErrorCode::BadFrame,
            "whitespace",
        ),
        (
            to_room("c", "lobby", "   ").to_json(),
            ErrorCode::EmptyMessage,
            "empty",
        ),
        (
            to_room("c", "lobby", &long_text).to_json(),
            ErrorCode::TooLarge,
            "limit",
        ),
        (
            to_room(&"c".repeat(65), "lobby", "x").to_json(),
            ErrorCode::BadFrame,
            "client_id",
        ),
        (
            ClientFrame::login("again").to_json(),
            ErrorCode::AlreadyLoggedIn,
            "logged in",
        ),
    ];
    for (frame, code, words) in &cases {
        alice.send_text(frame).await;
        match alice
            .frame_where(|f| matches!(f, ServerFrame::Error { .. }))
            .await
        {
            ServerFrame::Error {
                code: got, message, ..
            } => {
                assert_eq!(got, *code, "{frame:.60}");
                assert!(message.contains(words), "{frame:.60}: {message}");
            }
            _ => unreachable!(),
        }
    }
    alice.send_binary(b"\x00\x01").await;
    assert_eq!(
        error_code(
            &alice
                .frame_where(|f| matches!(f, ServerFrame::Error { .. }))
                .await
        ),
        ErrorCode::BinaryFrame
    );
    alice.send(&to_room("ok", "lobby", "still here")).await;
    assert!(matches!(alice.reply().await, ServerFrame::Ack { .. }));
}

#[tokio::test]
async fn an_oversized_frame_closes_that_connection_only() {
    let config = server::Config {
        max_frame_bytes: 8 * 1024,
        max_text_bytes: 4 * 1024,
        ..server::Config::default()
    };
    let server = TestServer::with_config(config).await;
    let mut big = server.native("big").await;
    let mut alice = server.native("alice").await;
    let mut bob = server.native("bob").await;
    big.send_text(&"x".repeat(100 * 1024)).await;
    let close = big.closed().await.expect("a close frame");
    assert_eq!(u16::from(close.code), 1009);
    assert_eq!(close.reason.as_str(), "message too big");
    alice.send(&to_room("a-1", "lobby", "unaffected")).await;
    assert_eq!(bob.message().await.text, "unaffected");
}

#[tokio::test]
async fn shutdown_closes_every_connection_with_a_reason() {
    let server = TestServer::start().await;
    let mut alice = server.native("alice").await;
    let mut page = server.seed_group().await;
    server.stop().await;
    for client in [&mut alice, &mut page] {
        let close = client.closed().await.expect("a close frame");
        assert_eq!(u16::from(close.code), 1001);
        assert_eq!(close.reason.as_str(), "server shutting down");
    }
}

#[tokio::test]
async fn sigterm_closes_every_connection_with_a_reason_and_exits_cleanly() {
    let binary = common::Binary::start(&["--ephemeral"]).await;
    let server = binary.as_test_server();
    let mut alice = server.native("alice").await;
    let mut page = server.seed_group().await;
    let status = std::process::Command::new("kill")
        .args(["-TERM", &binary.pid().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    for client in [&mut alice, &mut page] {
        let close = client.closed().await.expect("a close frame");
        assert_eq!(u16::from(close.code), 1001);
        assert_eq!(close.reason.as_str(), "server shutting down");
    }
    let exit = binary.exit().await;
    assert!(exit.success(), "{exit:?}");
}

#[tokio::test]
async fn bursts_from_several_senders_reach_every_member_in_order_and_never_their_sender() {
    // Messages that reach the server together are delivered to a room together: each member
    // gets the others' messages as one run, cut around its own, and in pieces of at most a
    // quarter of the outbox (16 frames here).
    let server = TestServer::with_config(server::Config {
        outbox_frames: 64,
        rate_per_sec: 0,
        ..server::Config::default()
    })
    .await;
    let senders = ["alice", "bob", "carol"];
    let mut clients = Vec::new();
    for nick in senders {
        clients.push(server.native(nick).await);
    }
    let mut dave = server.native("dave").await;
    let mut page = server.seed_group().await;
    const EACH: usize = 16;
    // Every sender's burst is written before any is read, so the server takes them together.
    for i in 0..EACH {
        for (nick, client) in senders.iter().zip(&mut clients) {
            client
                .send(&to_room(
                    &format!("{nick}-{i}"),
                    "lobby",
                    &format!("{nick} {i}"),
                ))
                .await;
        }
    }
    // What a reader got from each sender, in order, checking that ids only go up.
    async fn messages_by_sender(
        client: &mut common::Client,
        count: usize,
    ) -> std::collections::BTreeMap<String, Vec<String>> {
        let mut by_sender = std::collections::BTreeMap::<String, Vec<String>>::new();
        let mut last = 0;
        for _ in 0..count {
            let m = client.message().await;
            assert!(m.id > last, "ids in order: {} after {last}", m.id);
            last = m.id;
            by_sender
                .entry(m.from.to_string())
                .or_default()
                .push(m.text);
        }
        by_sender
    }
    let sent = |nick: &str| (0..EACH).map(|i| format!("{nick} {i}")).collect::<Vec<_>>();
    let everyone: std::collections::BTreeMap<String, Vec<String>> =
        senders.iter().map(|n| (n.to_string(), sent(n))).collect();
    assert_eq!(messages_by_sender(&mut dave, 3 * EACH).await, everyone);
    for (nick, client) in senders.iter().zip(&mut clients) {
        let mut others = everyone.clone();
        others.remove(*nick);
        assert_eq!(messages_by_sender(client, 2 * EACH).await, others, "{nick}");
    }
    // Had a sender's own message come back after the others', it would come before this.
    dave.send(&to_room("d-1", "lobby", "the end")).await;
    for client in &mut clients {
        assert_eq!(client.message().await.text, "the end");
    }
    // The seed group page gets the same, as "name: text", in order.
    let mut texts = std::collections::BTreeMap::<String, Vec<String>>::new();
    while texts.values().map(Vec::len).sum::<usize>() < 3 * EACH {
        let text = page.text().await;
        if let Some((nick, said)) = text.split_once(": ") {
            texts
                .entry(nick.to_owned())
                .or_default()
                .push(said.to_owned());
        }
    }
    assert_eq!(texts, everyone);
    assert_eq!(page.text().await, "dave: the end");
}

#[tokio::test]
async fn an_ack_never_overtakes_an_older_message_to_its_sender() {
    // A client resumes after the highest id it has, its own acknowledged messages included, so
    // an ack that came before an older message would lose that message on a reconnect.
    // Resends make the server store what is queued in the middle of a batch of sends.
    let server = TestServer::with_config(server::Config {
        rate_per_sec: 0,
        ..server::Config::default()
    })
    .await;
    let mut alice = server.native("alice").await;
    let mut bob = server.native("bob").await;
    const EACH: usize = 50;
    for i in 0..EACH {
        bob.send(&to_room(&format!("b-{i}"), "lobby", "from bob"))
            .await;
        let mine = to_room(&format!("a-{i}"), "lobby", "from alice");
        alice.send(&mine).await;
        alice.send(&mine).await;
    }
    let (mut acks, mut messages) = (0, 0);
    let mut highest_message = 0;
    let mut acked = Vec::new();
    while acks < 2 * EACH || messages < EACH {
        match alice.frame().await {
            ServerFrame::Ack { id, .. } => {
                acks += 1;
                acked.push((id, highest_message));
            }
            ServerFrame::Message(m) => {
                messages += 1;
                assert!(m.id > highest_message, "bob's messages in order");
                highest_message = m.id;
            }
            _ => {}
        }
    }
    // bob's ids, all of them known now: none older than an ack may come after it.
    bob.send(&to_room("b-end", "lobby", "end")).await;
    let _ = alice.message().await;
    let mut bobs = Vec::new();
    for _ in 0..EACH {
        bobs.push(bob.ack_id().await);
    }
    for (ack, seen) in acked {
        let missing: Vec<_> = bobs.iter().filter(|&&b| b < ack && b > seen).collect();
        assert!(
            missing.is_empty(),
            "ack {ack} came before bob's {missing:?}"
        );
    }
}
