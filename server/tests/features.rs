//! Read markers and unread counts, edit and delete, replies, search and typing.

mod common;

use common::{Client, TestServer, lobby, to_room, to_user};
use protocol::{ClientFrame, ErrorCode, MsgId, ServerFrame, Target};
use server::Config;

const PASSWORD: &str = "correct horse battery";

fn user(nick: &str) -> Target {
    Target::User(nick.parse().expect("nick"))
}

async fn unread(client: &mut Client) -> (Target, u64, MsgId) {
    match client
        .frame_where(|f| matches!(f, ServerFrame::Unread { .. }))
        .await
    {
        ServerFrame::Unread {
            target,
            count,
            last_read,
        } => (target, count, last_read),
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn unread_counts_come_at_login_and_a_read_marker_clears_them_in_every_session() {
    let server = TestServer::start().await;
    let mut bob = server.native("bob").await;
    let mut alice = server.native("alice").await;
    alice
        .send(&ClientFrame::Register {
            password: PASSWORD.into(),
        })
        .await;
    alice
        .frame_where(|f| matches!(f, ServerFrame::Registered { .. }))
        .await;
    drop(alice);
    bob.frame_where(|f| f.presence_of("alice") == Some(false))
        .await;
    let mut last = 0;
    for i in 0..4 {
        bob.send(&to_user(&format!("d{i}"), "alice", &format!("dm {i}")))
            .await;
        last = bob.ack_id().await;
    }

    // Two sessions of alice, each told of the 4 unread direct messages from bob.
    let mut sessions = Vec::new();
    for _ in 0..2 {
        let mut s = server.native_unlogged().await;
        s.send(&ClientFrame::Login {
            nick: "alice".into(),
            resume: Vec::new(),
            password: Some(PASSWORD.into()),
        })
        .await;
        assert_eq!(unread(&mut s).await, (user("bob"), 4, 0));
        sessions.push(s);
    }
    // Reading in the first clears the count in both.
    sessions[0]
        .send(&ClientFrame::Read {
            target: user("bob"),
            up_to: last,
        })
        .await;
    for s in &mut sessions {
        assert_eq!(unread(s).await, (user("bob"), 0, last));
    }
}

#[tokio::test]
async fn an_edit_and_a_delete_reach_every_member_and_show_in_history() {
    let server = TestServer::start().await;
    let mut alice = server.native("alice").await;
    let mut bob = server.native("bob").await;
    let mut carol = server.native("carol").await;
    alice.send(&to_room("1", "lobby", "helo")).await;
    let id = alice.ack_id().await;
    alice.send(&to_room("2", "lobby", "oops")).await;
    let oops = alice.ack_id().await;

    // Only the sender may change a message.
    bob.send(&ClientFrame::Edit {
        id,
        text: "hijacked".into(),
    })
    .await;
    match bob
        .frame_where(|f| matches!(f, ServerFrame::Error { .. }))
        .await
    {
        ServerFrame::Error { code, .. } => assert_eq!(code, ErrorCode::NotYours),
        _ => unreachable!(),
    }

    alice
        .send(&ClientFrame::Edit {
            id,
            text: "hello".into(),
        })
        .await;
    alice.send(&ClientFrame::Delete { id: oops }).await;
    for member in [&mut alice, &mut bob, &mut carol] {
        match member
            .frame_where(|f| matches!(f, ServerFrame::Edited { .. }))
            .await
        {
            ServerFrame::Edited {
                id: got,
                target,
                text,
                ..
            } => {
                assert_eq!((got, target, text.as_str()), (id, lobby(), "hello"));
            }
            _ => unreachable!(),
        }
        match member
            .frame_where(|f| matches!(f, ServerFrame::Deleted { .. }))
            .await
        {
            ServerFrame::Deleted { id: got, .. } => assert_eq!(got, oops),
            _ => unreachable!(),
        }
    }
    let stored = carol.latest(lobby()).await;
    let edited = stored.iter().find(|m| m.id == id).expect("kept");
    assert_eq!(edited.text, "hello");
    assert!(edited.edited.is_some());
    let tomb = stored
        .iter()
        .find(|m| m.id == oops)
        .expect("a tombstone stays");
    assert!(tomb.deleted);
    assert_eq!(tomb.text, "");
    // A deleted message cannot be edited back.
    alice
        .send(&ClientFrame::Edit {
            id: oops,
            text: "back".into(),
        })
        .await;
    match alice
        .frame_where(|f| matches!(f, ServerFrame::Error { .. }))
        .await
    {
        ServerFrame::Error { code, .. } => assert_eq!(code, ErrorCode::NoSuchMessage),
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn a_reply_carries_a_quote_of_what_it_answers() {
    let server = TestServer::start().await;
    let mut alice = server.native("alice").await;
    let mut bob = server.native("bob").await;
    alice.send(&to_room("q", "lobby", "who wants lunch?")).await;
    let question = alice.ack_id().await;
    bob.message().await;
    bob.send(&ClientFrame::Send {
        client_id: "r".into(),
        target: lobby(),
        text: "me!".into(),
        reply_to: Some(question),
    })
    .await;
    bob.ack_id().await;
    let reply = alice.message().await;
    let quote = reply.reply_to.expect("a quote");
    assert_eq!(
        (quote.id, quote.from.as_str(), quote.text.as_str()),
        (question, "alice", "who wants lunch?")
    );
    let stored = alice.latest(lobby()).await;
    assert_eq!(
        stored
            .last()
            .and_then(|m| m.reply_to.as_ref())
            .map(|q| q.id),
        Some(question)
    );

    // A reply must answer a message of its own conversation.
    bob.send(&ClientFrame::Send {
        client_id: "x".into(),
        target: user("alice"),
        text: "elsewhere".into(),
        reply_to: Some(question),
    })
    .await;
    match bob.reply().await {
        ServerFrame::Error {
            code, client_id, ..
        } => {
            assert_eq!(
                (code, client_id.as_deref()),
                (ErrorCode::NoSuchMessage, Some("x"))
            );
        }
        other => panic!("expected an error, got {other:?}"),
    }
}

async fn search(client: &mut Client, text: &str) -> Vec<String> {
    search_page(client, text, None, None).await.0
}

/// One answer to a search: the texts found, the request's `before` as echoed, and `older`.
async fn search_page(
    client: &mut Client,
    text: &str,
    limit: Option<u32>,
    before: Option<MsgId>,
) -> (Vec<String>, Option<MsgId>, Option<MsgId>) {
    client
        .send(&ClientFrame::Search {
            text: text.into(),
            limit,
            before,
        })
        .await;
    match client
        .frame_where(|f| matches!(f, ServerFrame::SearchResults { .. }))
        .await
    {
        ServerFrame::SearchResults {
            results,
            before,
            older,
            ..
        } => (results.into_iter().map(|m| m.text).collect(), before, older),
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn search_finds_english_and_chinese_only_where_the_user_may_read() {
    search_finds_only_what_the_user_may_read(Config::default()).await;
}

#[tokio::test]
async fn search_on_disk_runs_beside_the_chat_and_sees_every_message_sent_before_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    search_finds_only_what_the_user_may_read(Config {
        store: server::store::Location::Dir(dir.path().to_owned()),
        ..Config::default()
    })
    .await;
}

async fn search_finds_only_what_the_user_may_read(config: Config) {
    let server = TestServer::with_config(config).await;
    let mut alice = server.native("alice").await;
    let mut bob = server.native("bob").await;
    let mut carol = server.native("carol").await;
    alice
        .send(&to_room("1", "lobby", "The Quarterly report is ready"))
        .await;
    alice.ack_id().await;
    alice
        .send(&to_room("2", "lobby", "明天我们去北京开会"))
        .await;
    alice.ack_id().await;
    // A direct chat carol is not part of.
    alice
        .send(&to_user("3", "bob", "secret quarterly numbers"))
        .await;
    alice.ack_id().await;
    // A room carol is not in.
    bob.send(&ClientFrame::Join {
        room: "private".parse().expect("room"),
    })
    .await;
    bob.send(&to_room("4", "private", "quarterly plans in private"))
        .await;
    bob.ack_id().await;

    assert_eq!(
        search(&mut carol, "quarterly").await,
        ["The Quarterly report is ready"]
    );
    assert_eq!(search(&mut carol, "北京开会").await, ["明天我们去北京开会"]);
    assert_eq!(
        search(&mut carol, "北京").await,
        ["明天我们去北京开会"],
        "two characters"
    );
    assert_eq!(
        search(&mut bob, "quarterly").await,
        [
            "quarterly plans in private",
            "secret quarterly numbers",
            "The Quarterly report is ready"
        ]
    );
    assert!(search(&mut carol, "nothing like this").await.is_empty());
    // A page at a time: each answer says where the next one starts.
    let (first, echoed, older) = search_page(&mut bob, "quarterly", Some(2), None).await;
    assert_eq!(
        (first, echoed),
        (
            vec![
                "quarterly plans in private".to_owned(),
                "secret quarterly numbers".to_owned()
            ],
            None
        )
    );
    let (rest, echoed, last) = search_page(&mut bob, "quarterly", Some(2), older).await;
    assert_eq!(
        (rest, echoed, last),
        (
            vec!["The Quarterly report is ready".to_owned()],
            older,
            None
        )
    );
    // A message carol has seen delivered is found, even before its sender has its ack.
    alice
        .send(&to_room("5", "lobby", "a quarterly update, just sent"))
        .await;
    carol
        .frame_where(|f| matches!(f, ServerFrame::Message(m) if m.text.ends_with("just sent")))
        .await;
    assert_eq!(
        search(&mut carol, "quarterly").await,
        [
            "a quarterly update, just sent",
            "The Quarterly report is ready"
        ]
    );
    server.stop().await;
}

#[tokio::test]
async fn typing_reaches_the_other_member_once_every_few_seconds_and_expires() {
    let server = TestServer::start().await;
    let mut alice = server.native("alice").await;
    let mut bob = server.native("bob").await;
    for _ in 0..3 {
        alice
            .send(&ClientFrame::Typing {
                target: user("bob"),
            })
            .await;
    }
    alice.send(&to_user("1", "bob", "done typing")).await;
    match bob
        .frame_where(|f| matches!(f, ServerFrame::Typing { .. } | ServerFrame::Message(_)))
        .await
    {
        ServerFrame::Typing {
            target,
            nick,
            for_ms,
        } => {
            assert_eq!((target, nick.as_str()), (user("bob"), "alice"));
            assert!(for_ms > 0, "it expires by itself");
        }
        other => panic!("expected typing first, got {other:?}"),
    }
    // The repeats within the interval were dropped: next comes the message.
    let next = bob
        .frame_where(|f| matches!(f, ServerFrame::Typing { .. } | ServerFrame::Message(_)))
        .await;
    assert!(
        matches!(&next, ServerFrame::Message(m) if m.text == "done typing"),
        "{next:?}"
    );
    // Typing is never stored.
    assert_eq!(bob.latest(user("alice")).await.len(), 1);
}

fn with_grace(ms: u64) -> server::Config {
    server::Config {
        presence_grace: std::time::Duration::from_millis(ms),
        ..server::Config::default()
    }
}

#[tokio::test]
async fn a_reconnect_within_the_grace_period_makes_no_leave_or_join_notices() {
    let server = TestServer::with_config(with_grace(10_000)).await;
    let mut bob = server.native("bob").await;
    let alice = server.native("alice").await;
    // bob hears her first arrival, as usual.
    bob.frame_where(|f| matches!(f, ServerFrame::Joined { nick, .. } if nick.as_str() == "alice"))
        .await;
    drop(alice);
    // The client comes back; until the server has seen the old connection go, the name is
    // still taken, and the client retries.
    let mut alice = loop {
        let mut client = server.native_unlogged().await;
        client.send(&ClientFrame::login("alice")).await;
        match client.frame().await {
            ServerFrame::Welcome { .. } => break client,
            ServerFrame::Error { code, .. } => assert_eq!(code, ErrorCode::NickTaken),
            other => panic!("unexpected {other:?}"),
        }
    };
    alice.send(&to_room("back", "lobby", "back again")).await;
    alice.ack_id().await;
    // Everything bob heard about alice until her message: no leave, no offline, no join.
    loop {
        match bob.frame().await {
            ServerFrame::Message(m) if m.text == "back again" => break,
            ServerFrame::Left { nick, .. } | ServerFrame::Joined { nick, .. }
                if nick.as_str() == "alice" =>
            {
                panic!("bob saw alice leave or join")
            }
            f if f.presence_of("alice") == Some(false) => panic!("bob saw alice go offline"),
            _ => {}
        }
    }
}

#[tokio::test]
async fn after_the_grace_period_others_hear_that_the_user_left() {
    let server = TestServer::with_config(with_grace(200)).await;
    let mut bob = server.native("bob").await;
    let alice = server.native("alice").await;
    drop(alice);
    let left = bob
        .frame_where(|f| matches!(f, ServerFrame::Left { nick, .. } if nick.as_str() == "alice"))
        .await;
    assert!(matches!(left, ServerFrame::Left { room, .. } if room.as_str() == "lobby"));
    let gone = bob.frame_where(|f| f.presence_of("alice").is_some()).await;
    assert_eq!(gone.presence_of("alice"), Some(false), "{gone:?}");
    // Meanwhile a direct message to her was kept for her next login, not lost.
    bob.send(&ClientFrame::who(None)).await;
    match bob
        .frame_where(|f| matches!(f, ServerFrame::Users { room: None, .. }))
        .await
    {
        ServerFrame::Users { users, .. } => assert!(users.iter().all(|u| u.as_str() != "alice")),
        _ => unreachable!(),
    }
}

async fn whois(client: &mut Client, nick: &str) -> ServerFrame {
    client
        .send(&ClientFrame::Whois {
            nick: nick.parse().expect("nick"),
        })
        .await;
    client
        .frame_where(|f| matches!(f, ServerFrame::Whois { .. } | ServerFrame::Error { .. }))
        .await
}

#[tokio::test]
async fn last_seen_is_kept_per_user() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = || server::Config {
        store: server::store::Location::Dir(dir.path().to_owned()),
        ..server::Config::default()
    };
    let server = TestServer::with_config(config()).await;
    let mut bob = server.native("bob").await;
    let alice = server.native("alice").await;
    let reply = whois(&mut bob, "alice").await;
    assert!(
        matches!(
            &reply,
            ServerFrame::Whois {
                online: true,
                last_seen: None,
                ..
            }
        ),
        "{reply:?}"
    );
    drop(alice);
    bob.frame_where(|f| f.presence_of("alice") == Some(false))
        .await;
    let before = match whois(&mut bob, "alice").await {
        ServerFrame::Whois {
            online: false,
            last_seen: Some(ts),
            ..
        } => ts,
        other => panic!("expected last seen, got {other:?}"),
    };
    assert!(before > 0);
    match whois(&mut bob, "nobody").await {
        ServerFrame::Error { code, .. } => assert_eq!(code, ErrorCode::UnknownUser),
        other => panic!("expected unknown_user, got {other:?}"),
    }
    // Kept across a restart.
    server.stop().await;
    let server = TestServer::with_config(config()).await;
    let mut carol = server.native("carol").await;
    match whois(&mut carol, "alice").await {
        ServerFrame::Whois { last_seen, .. } => assert_eq!(last_seen, Some(before)),
        other => panic!("expected last seen, got {other:?}"),
    }
}
