//! Cluster mode: several `chat-server` processes pointed at one real `redis-server` act as one
//! chat service. Messages, presence and nicknames span the nodes; a node killed with SIGKILL
//! is noticed within its heartbeat expiry and its users resume elsewhere without loss; while
//! Redis is down each node keeps serving its own clients and queues the rest.
//!
//! These tests start `redis-server` themselves and fail, saying so, when it is not installed
//! (scripts/test-all.sh installs it).

mod common;

use common::redis_server::RedisServer;
use common::{Binary, Client, DEADLINE, TestServer, error_code, lobby, to_room, to_user};
use protocol::{ClientFrame, Cursor, ErrorCode, MsgId, Nick, SeedChat, ServerFrame, Target};
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;
use tokio::time::Instant;

/// Seconds a node's heartbeat lives in Redis in these tests: a killed node's users must be
/// shown offline within about 2 + 2/3 s.
const EXPIRY_SECS: &str = "2";

/// How long a killed node's users may take to be shown offline (expiry, a check period, and
/// slack for a loaded machine).
const OFFLINE_WITHIN: Duration = Duration::from_secs(15);

/// How long nodes may take to notice that Redis went away or came back.
const REDIS_NOTICED_WITHIN: Duration = Duration::from_secs(20);

/// A `chat-server` node of the cluster at `redis`, its messages in memory.
async fn node(redis: &RedisServer, id: &str) -> Binary {
    node_with(redis, id, &[]).await
}

/// A node with `more` options besides those of [`node`].
async fn node_with(redis: &RedisServer, id: &str, more: &[&str]) -> Binary {
    let url = redis.url();
    let mut args = vec![
        "--redis",
        &url,
        "--node-id",
        id,
        "--node-expiry-secs",
        EXPIRY_SECS,
        "--ephemeral",
    ];
    args.extend_from_slice(more);
    Binary::start(&args).await
}

/// Polls `/metrics` of `server` until it serves no WebSocket connection: the server has seen
/// its clients go.
async fn await_no_connections(server: &TestServer) {
    let started = Instant::now();
    loop {
        let metrics = common::http_get(server.addr, "/metrics").await;
        if metrics.lines().any(|l| l == "chat_connections_open 0") {
            return;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "{} still has connections after {DEADLINE:?}",
            server.addr
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn nick(name: &str) -> Nick {
    name.parse().expect("nick")
}

fn dm_with(name: &str) -> Target {
    Target::User(nick(name))
}

/// The users online as `client` sees them (`who`), sorted.
async fn who(client: &mut Client) -> Vec<String> {
    client.send(&ClientFrame::who(None)).await;
    match client
        .frame_where(|f| matches!(f, ServerFrame::Users { room: None, .. }))
        .await
    {
        ServerFrame::Users { users, .. } => {
            let mut users: Vec<String> = users.iter().map(|u| u.to_string()).collect();
            users.sort();
            users
        }
        _ => unreachable!("filtered to users"),
    }
}

/// Asks `who` until every one of `nicks` is online, up to the deadline: nodes learn about each
/// other's users through Redis, a moment after the login.
async fn await_online(client: &mut Client, nicks: &[&str]) {
    let started = Instant::now();
    loop {
        let users = who(client).await;
        if nicks.iter().all(|n| users.iter().any(|u| u == n)) {
            return;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "{nicks:?} not all online after {DEADLINE:?}; who says {users:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The body of `GET /healthz`.
async fn health(server: &TestServer) -> String {
    let response = common::http_get(server.addr, "/healthz").await;
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or(response)
}

/// Polls `/healthz` until its body satisfies `want`, up to [`REDIS_NOTICED_WITHIN`].
async fn await_health(server: &TestServer, what: &str, want: impl Fn(&str) -> bool) {
    let started = Instant::now();
    loop {
        let body = health(server).await;
        if want(&body) {
            return;
        }
        assert!(
            started.elapsed() < REDIS_NOTICED_WITHIN,
            "/healthz of {} not {what} after {REDIS_NOTICED_WITHIN:?}: {body:?}",
            server.addr
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn is_ok(body: &str) -> bool {
    body.contains("ok") && !body.contains("degraded")
}

/// Reads a seed group page's lines until `want` comes (pages get only relayed lines, but the
/// order of lines from different nodes is not fixed).
async fn page_line(page: &mut Client, want: &str) {
    let mut seen = Vec::new();
    while seen.len() < 50 {
        let line = page.text().await;
        if line == want {
            return;
        }
        seen.push(line);
    }
    panic!("the group page never got {want:?}; it got {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_reach_native_clients_and_seed_pages_on_another_node() {
    let redis = RedisServer::start().await;
    let (n1, n2) = (node(&redis, "n1").await, node(&redis, "n2").await);
    let (s1, s2) = (n1.as_test_server(), n2.as_test_server());
    let mut alice = s1.native("alice").await;
    let mut bob = s2.native("bob").await;
    let mut dave = s2.seed_single("dave").await;
    let mut page = s2.seed_group().await;
    await_online(&mut alice, &["bob", "dave"]).await;
    await_online(&mut bob, &["alice"]).await;

    // Direct messages, native to native, both ways.
    alice
        .send(&to_user("a-1", "bob", "hi bob on n2 你好"))
        .await;
    let acked = alice.ack_id().await;
    let m = bob.message().await;
    assert_eq!(
        (m.id, m.from.as_str(), m.target.clone(), m.text.as_str()),
        (acked, "alice", dm_with("bob"), "hi bob on n2 你好")
    );
    bob.send(&to_user("b-1", "alice", "hi alice on n1")).await;
    let acked = bob.ack_id().await;
    let m = alice.message().await;
    assert_eq!(
        (m.id, m.from.as_str(), m.target.clone(), m.text.as_str()),
        (acked, "bob", dm_with("alice"), "hi alice on n1")
    );

    // Native on n1 and a seed single-chat page on n2, both ways.
    alice.send(&to_user("a-2", "dave", "hi seed dave")).await;
    alice.ack_id().await;
    let got: SeedChat = dave.json().await;
    assert_eq!(
        (
            got.message.as_str(),
            got.from_user.as_str(),
            got.to_user.as_str()
        ),
        ("hi seed dave", "alice", "dave")
    );
    dave.send_text(r#"{"message":"hi from the page","from_user":"dave","to_user":"alice"}"#)
        .await;
    let m = alice.message().await;
    assert_eq!(
        (m.from.as_str(), m.target.clone(), m.text.as_str()),
        ("dave", dm_with("alice"), "hi from the page")
    );

    // A room message from n1 reaches a native member and a group page on n2, and back.
    alice.send(&to_room("a-3", "lobby", "hello cluster")).await;
    let acked = alice.ack_id().await;
    let m = bob.message().await;
    assert_eq!(
        (m.id, m.from.as_str(), m.target.clone(), m.text.as_str()),
        (acked, "alice", lobby(), "hello cluster")
    );
    page_line(&mut page, "alice: hello cluster").await;
    bob.send(&to_room("b-2", "lobby", "hello from n2")).await;
    bob.ack_id().await;
    let m = alice.message().await;
    assert_eq!((m.from.as_str(), m.text.as_str()), ("bob", "hello from n2"));
    page.send_text("hi from the group page").await;
    for (who, client) in [("alice on n1", &mut alice), ("bob on n2", &mut bob)] {
        let m = client.message().await;
        assert!(m.from.as_str().starts_with("guest-"), "{who}: {:?}", m.from);
        assert_eq!(
            (m.target.clone(), m.text.as_str()),
            (lobby(), "hi from the group page"),
            "{who}"
        );
    }

    // A room of its own, joined on both nodes.
    let room = "rust".parse::<protocol::RoomName>().expect("room");
    for client in [&mut alice, &mut bob] {
        client.send(&ClientFrame::Join { room: room.clone() }).await;
        client
            .frame_where(|f| matches!(f, ServerFrame::Users { room: Some(r), .. } if *r == room))
            .await;
    }
    alice.send(&to_room("a-4", "rust", "only rustaceans")).await;
    alice.ack_id().await;
    let m = bob.message().await;
    assert_eq!(
        (m.target.clone(), m.text.as_str()),
        (Target::Room(room), "only rustaceans")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_and_nicknames_span_the_nodes() {
    let redis = RedisServer::start().await;
    let (n1, n2) = (node(&redis, "n1").await, node(&redis, "n2").await);
    let (s1, s2) = (n1.as_test_server(), n2.as_test_server());
    let mut alice = s1.native("alice").await;

    // bob logs in on n2 after alice was welcomed on n1: n2 answers once it has applied the
    // cluster log that far, so his welcome lists her.
    let mut bob = s2.native_unlogged().await;
    bob.send(&ClientFrame::login("bob")).await;
    match bob.frame().await {
        ServerFrame::Welcome { users, .. } => {
            let users: Vec<&str> = users.iter().map(|u| u.as_str()).collect();
            assert_eq!(users, ["alice", "bob"]);
        }
        other => panic!("expected welcome, got {other:?}"),
    }
    let came = alice
        .frame_where(|f| matches!(f, ServerFrame::PresenceChanges { .. }))
        .await;
    assert_eq!(came.presence_of("bob"), Some(true), "{came:?}");
    assert_eq!(who(&mut alice).await, ["alice", "bob"]);
    assert_eq!(who(&mut bob).await, ["alice", "bob"]);

    // A nickname online on one node is taken on the others, for native clients and seed pages.
    let mut other = s2.native_unlogged().await;
    other.send(&ClientFrame::login("alice")).await;
    assert_eq!(error_code(&other.frame().await), ErrorCode::NickTaken);
    let mut page = s1.seed_single("bob").await;
    let notice: SeedChat = page.json().await;
    assert_eq!(notice.from_user, "system");
    assert!(
        notice.message.contains("already online"),
        "{}",
        notice.message
    );
    let close = page.closed().await.expect("a close frame");
    assert_eq!(u16::from(close.code), 1008);
    // The refused client may pick another name, and is then seen on n1.
    other.send(&ClientFrame::login("carol")).await;
    assert!(matches!(other.frame().await, ServerFrame::Welcome { .. }));
    await_online(&mut alice, &["alice", "bob", "carol"]).await;

    // bob leaves: n1 hears it, and the name is free on n1.
    drop(bob);
    let went = alice.frame_where(|f| f.presence_of("bob").is_some()).await;
    assert_eq!(went.presence_of("bob"), Some(false), "{went:?}");
    assert_eq!(who(&mut alice).await, ["alice", "carol"]);
    let _bob = s1.native("bob").await;
}

/// Sends `count` room or direct messages, all before reading the acks, and returns the acked
/// ids in order.
async fn send_acked(client: &mut Client, prefix: &str, count: usize, to: &Target) -> Vec<MsgId> {
    for i in 0..count {
        let id = format!("{prefix}-{i}");
        let text = format!("{prefix} {i}");
        let frame = match to {
            Target::Room(room) => to_room(&id, room.as_str(), &text),
            Target::User(user) => to_user(&id, user.as_str(), &text),
        };
        client.send(&frame).await;
    }
    let mut ids = Vec::with_capacity(count);
    for _ in 0..count {
        ids.push(client.ack_id().await);
    }
    ids
}

/// Reads `count` live messages and returns the last id of each conversation.
async fn receive(client: &mut Client, count: usize) -> HashMap<Target, MsgId> {
    let mut last = HashMap::new();
    for _ in 0..count {
        let m = client.message().await;
        let conversation = match &m.target {
            Target::Room(_) => m.target.clone(),
            Target::User(_) => Target::User(m.from.clone()),
        };
        last.insert(conversation, m.id);
    }
    last
}

/// Waits until `client` hears that `gone` is offline: polls `who`, and also wants the
/// `presence` frame. Returns how long it took.
async fn await_offline(client: &mut Client, gone: &str, since: Instant) -> Duration {
    let mut told = false;
    loop {
        client.send(&ClientFrame::who(None)).await;
        let listed = loop {
            match client.frame().await {
                f if f.presence_of(gone) == Some(false) => told = true,
                ServerFrame::Users {
                    room: None, users, ..
                } => {
                    break users.iter().any(|u| u.as_str() == gone);
                }
                _ => {}
            }
        };
        if !listed {
            break;
        }
        assert!(
            since.elapsed() < OFFLINE_WITHIN,
            "{gone} still online {OFFLINE_WITHIN:?} after their node was killed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took = since.elapsed();
    if !told {
        client
            .frame_where(|f| f.presence_of(gone) == Some(false))
            .await;
    }
    took
}

/// Logs in with `resume` cursors and gathers the history they bring (paging on with `after`
/// while `has_more`), failing on any message that comes live instead, until every
/// conversation holds what `expected` says, then until the answer to a later `who`; returns the ids got per
/// conversation, in the order they came.
async fn resume_at(
    server: &TestServer,
    name: &str,
    resume: Vec<Cursor>,
    expected: &HashMap<Target, Vec<MsgId>>,
) -> HashMap<Target, Vec<MsgId>> {
    let mut client = server.native_unlogged().await;
    client
        .send(&ClientFrame::Login {
            nick: name.into(),
            resume,
            password: None,
        })
        .await;
    match client.frame().await {
        ServerFrame::Welcome { .. } => {}
        other => panic!("{name} resuming on another node: expected welcome, got {other:?}"),
    }
    let mut got: HashMap<Target, Vec<MsgId>> = HashMap::new();
    let complete = |got: &HashMap<Target, Vec<MsgId>>| {
        expected.iter().all(|(target, ids)| {
            let have = got.get(target).map_or(&[][..], Vec::as_slice);
            ids.iter().all(|id| have.contains(id))
        })
    };
    let mut asked_who = false;
    loop {
        if complete(&got) && !asked_who {
            // Anything more (a message twice, say) comes before the answer to this.
            client.send(&ClientFrame::who(None)).await;
            asked_who = true;
        }
        // Shorter than the read deadline of `frame`: an incomplete catch-up is reported below
        // with what came, not as a hang.
        let Ok(frame) = tokio::time::timeout(Duration::from_secs(8), client.frame()).await else {
            return got;
        };
        match frame {
            ServerFrame::History {
                target,
                messages,
                has_more,
            } => {
                let ids = got.entry(target.clone()).or_default();
                ids.extend(messages.iter().map(|m| m.id));
                if has_more {
                    let after = messages.last().map(|m| m.id);
                    client
                        .send(&ClientFrame::History {
                            target,
                            before: None,
                            after,
                            limit: Some(200),
                        })
                        .await;
                }
            }
            // The node answers the login once it has applied everything acknowledged before
            // it, so all of it comes as history.
            ServerFrame::Message(m) => {
                panic!(
                    "{name} got message {} live instead of in the resumed history",
                    m.id
                )
            }
            ServerFrame::Users { room: None, .. } if asked_who => return got,
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_nodes_users_go_offline_and_resume_elsewhere_without_loss() {
    let redis = RedisServer::start().await;
    let n1 = node(&redis, "n1").await;
    let n2 = node(&redis, "n2").await;
    let mut n3 = node(&redis, "n3").await;
    let (s1, s2, s3) = (
        n1.as_test_server(),
        n2.as_test_server(),
        n3.as_test_server(),
    );
    let mut alice = s1.native("alice").await;
    let mut bob = s2.native("bob").await;
    let mut carol = s3.native("carol").await;
    for client in [&mut alice, &mut bob, &mut carol] {
        await_online(client, &["alice", "bob", "carol"]).await;
    }

    // Before the crash: alice (n1) writes to the lobby and to carol, who reads it all live on
    // n3; then carol writes to the lobby, acknowledged by n3.
    let room_ids = send_acked(&mut alice, "before", 300, &lobby()).await;
    let dm_ids = send_acked(&mut alice, "dm-before", 20, &dm_with("carol")).await;
    let last = receive(&mut carol, 320).await;
    assert_eq!(last.get(&lobby()), room_ids.last(), "carol read the lobby");
    assert_eq!(
        last.get(&dm_with("alice")),
        dm_ids.last(),
        "carol read the DMs"
    );
    let carols = send_acked(&mut carol, "carol", 100, &lobby()).await;
    let heard = receive(&mut alice, 100).await;
    assert_eq!(heard.get(&lobby()), carols.last(), "alice heard carol");
    let cursors = vec![
        Cursor {
            target: lobby(),
            after: *room_ids.last().expect("sent"),
        },
        Cursor {
            target: dm_with("alice"),
            after: *dm_ids.last().expect("sent"),
        },
    ];

    n3.kill();
    let killed = Instant::now();
    // While n3 is dead but not yet known to be: more for carol, all acknowledged.
    let mut expected: HashMap<Target, Vec<MsgId>> = HashMap::new();
    expected.insert(lobby(), carols.clone());
    let lobby_ids = expected.get_mut(&lobby()).expect("lobby");
    lobby_ids.extend(send_acked(&mut alice, "during", 200, &lobby()).await);
    let mut dms = send_acked(&mut alice, "dm-during", 20, &dm_with("carol")).await;

    let took = await_offline(&mut bob, "carol", killed).await;
    eprintln!("carol was shown offline on n2 {took:?} after n3 was killed");
    await_offline(&mut alice, "carol", killed).await;

    // After: carol is offline; these are kept for her.
    let lobby_ids = expected.get_mut(&lobby()).expect("lobby");
    lobby_ids.extend(send_acked(&mut alice, "after", 50, &lobby()).await);
    dms.extend(send_acked(&mut alice, "dm-after", 5, &dm_with("carol")).await);
    expected.insert(dm_with("alice"), dms);

    // carol comes back on n2 (her name is free again) with her cursors.
    let got = resume_at(&s2, "carol", cursors, &expected).await;
    for (target, want) in &expected {
        let have = got.get(target).cloned().unwrap_or_default();
        let (want_set, have_set): (BTreeSet<MsgId>, BTreeSet<MsgId>) = (
            want.iter().copied().collect(),
            have.iter().copied().collect(),
        );
        let missing: Vec<&MsgId> = want_set.difference(&have_set).collect();
        let extra: Vec<&MsgId> = have_set.difference(&want_set).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{target:?}: carol resuming on n2 should get the {} acknowledged messages after her \
             cursor; {} missing (first {:?}), {} unexpected (first {:?})",
            want.len(),
            missing.len(),
            missing.iter().take(5).collect::<Vec<_>>(),
            extra.len(),
            extra.iter().take(5).collect::<Vec<_>>(),
        );
        assert!(
            have.windows(2).all(|w| w[0] < w[1]),
            "{target:?}: in order and none twice: {have:?}"
        );
    }
    eprintln!(
        "carol resumed on n2 with {} lobby and {} direct messages",
        expected[&lobby()].len(),
        expected[&dm_with("alice")].len()
    );
    // And she is live again on n2.
    alice.send(&to_user("live", "carol", "welcome back")).await;
    alice.ack_id().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_redis_is_down_nodes_serve_their_own_clients_and_catch_up_after() {
    let mut redis = RedisServer::start().await;
    let (n1, n2) = (node(&redis, "n1").await, node(&redis, "n2").await);
    let (s1, s2) = (n1.as_test_server(), n2.as_test_server());
    let mut alice = s1.native("alice").await;
    let mut bob = s1.native("bob").await;
    let mut carol = s2.native("carol").await;
    await_online(&mut alice, &["alice", "bob", "carol"]).await;
    await_online(&mut carol, &["alice", "bob", "carol"]).await;
    for server in [&s1, &s2] {
        let body = health(server).await;
        assert!(is_ok(&body), "{body:?}");
    }

    redis.stop();
    for server in [&s1, &s2] {
        await_health(server, "degraded", |body| body.contains("degraded")).await;
    }

    // On n1, alice and bob still talk live, in the lobby and directly.
    alice
        .send(&to_room("a-1", "lobby", "redis is down, still here"))
        .await;
    alice.ack_id().await;
    assert_eq!(bob.message().await.text, "redis is down, still here");
    alice.send(&to_user("a-2", "bob", "just you, bob")).await;
    alice.ack_id().await;
    let m = bob.message().await;
    assert_eq!(
        (m.from.as_str(), m.target.clone(), m.text.as_str()),
        ("alice", dm_with("bob"), "just you, bob")
    );
    bob.send(&to_user("b-1", "alice", "got it")).await;
    bob.ack_id().await;
    assert_eq!(alice.message().await.text, "got it");
    // carol is on n2: this waits for Redis.
    alice
        .send(&to_user("a-3", "carol", "sent while redis was down"))
        .await;
    alice.ack_id().await;

    redis.restart().await;
    for server in [&s1, &s2] {
        await_health(server, "ok again", is_ok).await;
    }
    // What n1 sent while Redis was down reaches carol on n2, in order: the lobby message,
    // then the direct one.
    let mut texts = Vec::new();
    loop {
        let m = carol.message().await;
        texts.push(format!("{}: {}", m.from, m.text));
        if matches!(m.target, Target::User(_)) {
            break;
        }
    }
    assert_eq!(
        texts,
        [
            "alice: redis is down, still here",
            "alice: sent while redis was down"
        ]
    );

    // New messages cross the nodes again, both ways, once each node is back in the cluster.
    await_online(&mut carol, &["alice", "bob", "carol"]).await;
    await_online(&mut alice, &["alice", "bob", "carol"]).await;
    alice
        .send(&to_user("a-4", "carol", "after the restart"))
        .await;
    alice.ack_id().await;
    let m = carol
        .frame_where(|f| matches!(f, ServerFrame::Message(m) if m.target == dm_with("carol")))
        .await;
    assert!(
        matches!(&m, ServerFrame::Message(m) if m.text == "after the restart"),
        "{m:?}"
    );
    carol.send(&to_room("c-1", "lobby", "n2 is back")).await;
    carol.ack_id().await;
    for client in [&mut alice, &mut bob] {
        let m = client
            .frame_where(|f| matches!(f, ServerFrame::Message(m) if m.target == lobby()))
            .await;
        assert!(
            matches!(&m, ServerFrame::Message(m) if m.text == "n2 is back" && m.from.as_str() == "carol"),
            "{m:?}"
        );
    }
    carol.send(&to_user("c-2", "bob", "hi bob")).await;
    carol.ack_id().await;
    let m = bob
        .frame_where(|f| matches!(f, ServerFrame::Message(m) if m.target == dm_with("bob")))
        .await;
    assert!(
        matches!(&m, ServerFrame::Message(m) if m.text == "hi bob"),
        "{m:?}"
    );
}

#[tokio::test]
async fn a_node_that_cannot_reach_redis_at_start_exits_with_an_error() {
    // A free port with nothing listening.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port();
    let url = format!("redis://127.0.0.1:{port}");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_chat-server"))
        .args(["--port", "0", "--ephemeral", "--redis", &url])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start chat-server");
    let pid = child.id();
    let output = tokio::time::timeout(
        3 * DEADLINE,
        tokio::task::spawn_blocking(move || child.wait_with_output()),
    )
    .await;
    let Ok(output) = output else {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
        panic!("a node whose Redis is unreachable kept running");
    };
    let output = output.expect("wait task").expect("wait for chat-server");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{:?}: {stderr}", output.status);
    assert!(
        !stderr.contains("Usage:"),
        "--redis is an option of chat-server: {stderr}"
    );
    assert!(stderr.to_lowercase().contains("redis"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_on_the_same_node_within_the_grace_period_the_name_stays_taken() {
    let redis = RedisServer::start().await;
    let (n1, n2) = (node(&redis, "n1").await, node(&redis, "n2").await);
    let (s1, s2) = (n1.as_test_server(), n2.as_test_server());
    let alice = s1.native("alice").await;
    let mut bob = s2.native("bob").await;
    await_online(&mut bob, &["alice", "bob"]).await;
    // alice's connection drops; she is back on n1 within the grace period (5 s by default).
    drop(alice);
    await_no_connections(&s1).await;
    let _alice = s1.native("alice").await;
    // Somebody else cannot take her name on n2.
    let mut mallory = s2.native_unlogged().await;
    mallory.send(&ClientFrame::login("alice")).await;
    let reply = mallory.reply().await;
    assert_eq!(error_code(&reply), ErrorCode::NickTaken, "{reply:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dm_to_someone_in_their_grace_period_on_another_node_waits_for_their_return() {
    let redis = RedisServer::start().await;
    let (n1, n2) = (node(&redis, "n1").await, node(&redis, "n2").await);
    let (s1, s2) = (n1.as_test_server(), n2.as_test_server());
    let mut alice = s1.native("alice").await;
    let bob = s2.native("bob").await;
    await_online(&mut alice, &["alice", "bob"]).await;
    drop(bob);
    await_no_connections(&s2).await;
    // bob is still shown online (grace period), but no session of his is there to take it.
    alice.send(&to_user("m1", "bob", "are you there?")).await;
    let id = alice.ack_id().await;
    // Back on n2 without cursors: the message comes as the start of a conversation he has
    // not seen.
    let mut bob = s2.native("bob").await;
    let history = bob
        .frame_where(
            |f| matches!(f, ServerFrame::History { target, .. } if *target == dm_with("alice")),
        )
        .await;
    let ServerFrame::History { messages, .. } = history else {
        unreachable!("filtered to history");
    };
    let ids: Vec<MsgId> = messages.iter().map(|m| m.id).collect();
    assert_eq!(ids, [id]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registered_name_stays_protected_on_a_node_started_after_the_log_dropped_it() {
    let redis = RedisServer::start().await;
    let small_log = ["--redis-log-cap", "1000", "--presence-grace-secs", "0"];
    let n1 = node_with(&redis, "n1", &small_log).await;
    let watcher = node_with(&redis, "w", &small_log).await;
    let mut alice = n1.as_test_server().native("alice").await;
    let mut carol = watcher.as_test_server().native("carol").await;
    await_online(&mut carol, &["alice", "carol"]).await;
    alice
        .send(&ClientFrame::Register {
            password: "correct horse battery".into(),
        })
        .await;
    let reply = alice
        .frame_where(|f| {
            matches!(
                f,
                ServerFrame::Registered { .. } | ServerFrame::Error { .. }
            )
        })
        .await;
    assert!(matches!(reply, ServerFrame::Registered { .. }), "{reply:?}");
    // Enough messages for the log to drop its oldest entries, the registration among them.
    for _ in 0..3 {
        send_acked(&mut alice, "filler", 1000, &lobby()).await;
    }
    // Once another node hears that alice left, her name is free in Redis.
    drop(alice);
    carol
        .frame_where(|f| f.presence_of("alice") == Some(false))
        .await;
    let n2 = node_with(&redis, "n2", &small_log).await;
    let mut somebody = n2.as_test_server().native_unlogged().await;
    somebody.send(&ClientFrame::login("alice")).await;
    let reply = somebody
        .frame_where(|f| matches!(f, ServerFrame::Welcome { .. } | ServerFrame::Error { .. }))
        .await;
    assert!(
        matches!(
            &reply,
            ServerFrame::Error {
                code: ErrorCode::PasswordRequired,
                ..
            }
        ),
        "somebody logged in as registered alice without her password: {reply:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_taken_for_dead_while_paused_registers_its_users_again() {
    let redis = RedisServer::start().await;
    let (n1, n2) = (node(&redis, "n1").await, node(&redis, "n2").await);
    let (s1, s2) = (n1.as_test_server(), n2.as_test_server());
    let mut alice = s1.native("alice").await;
    let mut bob = s2.native("bob").await;
    await_online(&mut bob, &["alice", "bob"]).await;
    let signal = |sig: &str| {
        let status = std::process::Command::new("kill")
            .args([sig, &n1.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {sig}");
    };
    // n1 stops (as a stalled machine would) for longer than its heartbeat lives: n2 takes it
    // for dead and shows alice offline.
    signal("-STOP");
    let paused = Instant::now();
    await_offline(&mut bob, "alice", paused).await;
    signal("-CONT");
    // Running again, n1 notices and registers alice again: she is online for bob once more,
    // and reachable.
    bob.frame_where(|f| f.presence_of("alice") == Some(true))
        .await;
    bob.send(&to_user("b1", "alice", "welcome back")).await;
    bob.ack_id().await;
    let m = alice.message().await;
    assert_eq!(m.text, "welcome back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_notices_reach_the_other_node() {
    let redis = RedisServer::start().await;
    let (n1, n2) = (node(&redis, "n1").await, node(&redis, "n2").await);
    let mut alice = n1.as_test_server().native("alice").await;
    let mut bob = n2.as_test_server().native("bob").await;
    await_online(&mut alice, &["alice", "bob"]).await;
    alice
        .send(&ClientFrame::Typing {
            target: dm_with("bob"),
        })
        .await;
    let typing = bob
        .frame_where(|f| matches!(f, ServerFrame::Typing { .. }))
        .await;
    assert!(
        matches!(&typing, ServerFrame::Typing { target, nick, .. }
            if *target == dm_with("bob") && nick.as_str() == "alice"),
        "{typing:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registered_user_on_two_nodes_stays_online_until_the_last_session_ends() {
    let redis = RedisServer::start().await;
    let no_grace = ["--presence-grace-secs", "0"];
    let n1 = node_with(&redis, "n1", &no_grace).await;
    let n2 = node_with(&redis, "n2", &no_grace).await;
    let (s1, s2) = (n1.as_test_server(), n2.as_test_server());
    let mut laptop = s1.native("alice").await;
    laptop
        .send(&ClientFrame::Register {
            password: "correct horse battery".into(),
        })
        .await;
    laptop
        .frame_where(|f| matches!(f, ServerFrame::Registered { .. }))
        .await;
    let mut bob = s1.native("bob").await;
    // Her phone logs in on the other node, with the password.
    let mut phone = s2.native_unlogged().await;
    phone
        .send(&ClientFrame::Login {
            nick: "alice".into(),
            resume: Vec::new(),
            password: Some("correct horse battery".into()),
        })
        .await;
    let welcome = phone
        .frame_where(|f| matches!(f, ServerFrame::Welcome { .. } | ServerFrame::Error { .. }))
        .await;
    assert!(
        matches!(welcome, ServerFrame::Welcome { .. }),
        "{welcome:?}"
    );
    // The laptop goes; alice is still online for bob, and his message reaches her phone.
    drop(laptop);
    bob.send(&to_user("b1", "alice", "still there?")).await;
    let ack = bob.reply().await;
    assert!(
        matches!(ack, ServerFrame::Ack { offline: false, .. }),
        "{ack:?}"
    );
    assert_eq!(phone.message().await.text, "still there?");
    assert!(who(&mut bob).await.contains(&"alice".to_owned()));
    // Her last session goes: now she is offline.
    drop(phone);
    let went = bob.frame_where(|f| f.presence_of("alice").is_some()).await;
    assert_eq!(went.presence_of("alice"), Some(false), "{went:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moving_to_another_node_within_the_grace_period_makes_no_noise() {
    let redis = RedisServer::start().await;
    let n1 = node_with(&redis, "n1", &["--presence-grace-secs", "30"]).await;
    let n2 = node_with(&redis, "n2", &["--presence-grace-secs", "30"]).await;
    let (s1, s2) = (n1.as_test_server(), n2.as_test_server());
    let ops = || protocol::RoomName::parse("ops").expect("room");
    let mut alice = s1.native("alice").await;
    let mut bob = s2.native("bob").await;
    for client in [&mut alice, &mut bob] {
        client.send(&ClientFrame::Join { room: ops() }).await;
    }
    await_online(&mut bob, &["alice", "bob"]).await;
    // Both in the room, as bob's node sees it.
    loop {
        bob.send(&ClientFrame::who(Some(ops()))).await;
        let users = bob
            .frame_where(|f| matches!(f, ServerFrame::Users { room: Some(_), .. }))
            .await;
        if matches!(&users, ServerFrame::Users { users, .. } if users.len() == 2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Presence changes are sent gathered: once bob hears of carol, who comes last, nothing
    // from before (his own arrival, alice's) is still on its way to him.
    let _carol = s2.native("carol").await;
    bob.frame_where(|f| f.presence_of("carol") == Some(true))
        .await;
    // alice's connection to n1 drops; the load balancer sends her back to n2, where she
    // resumes the room.
    drop(alice);
    await_no_connections(&s1).await;
    let mut alice = s2.native_unlogged().await;
    // Until n1 has taken in that her connection ended, the name is still hers there: like
    // chat-tui, try again.
    let give_up = Instant::now() + DEADLINE;
    loop {
        assert!(Instant::now() < give_up, "alice could not log in on n2");
        alice
            .send(&ClientFrame::Login {
                nick: "alice".into(),
                resume: vec![Cursor {
                    target: Target::Room(ops()),
                    after: 0,
                }],
                password: None,
            })
            .await;
        let answer = alice
            .frame_where(|f| matches!(f, ServerFrame::Welcome { .. } | ServerFrame::Error { .. }))
            .await;
        match answer {
            ServerFrame::Welcome { .. } => break,
            f if error_code(&f) == ErrorCode::NickTaken => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            f => panic!("{f:?}"),
        }
    }
    // Her room is back: bob's message reaches her.
    bob.send(&to_room("b1", "ops", "you still there?")).await;
    assert_eq!(alice.message().await.text, "you still there?");
    // Meanwhile bob heard nothing of her leaving, coming back, or her rooms.
    let mut noise = Vec::new();
    loop {
        match bob.frame().await {
            ServerFrame::Ack { .. } => break,
            f @ (ServerFrame::Presence { .. }
            | ServerFrame::PresenceChanges { .. }
            | ServerFrame::RoomChanges { .. }
            | ServerFrame::Joined { .. }
            | ServerFrame::Left { .. }) => noise.push(f),
            _ => {}
        }
    }
    assert!(noise.is_empty(), "bob heard: {noise:?}");
    assert_eq!(who(&mut bob).await, ["alice", "bob", "carol"]);
}
