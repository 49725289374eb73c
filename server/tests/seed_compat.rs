//! The seed tutorial's pages, spoken to exactly as they speak: single chat on `/my_ws/<name>`,
//! group chat on `/my_ws`.

mod common;

use common::TestServer;
use protocol::SeedChat;

/// What `send_msg()` in the seed's myapp.html sends.
fn seed_send(message: &str, from_user: &str, to_user: &str) -> String {
    format!(r#"{{"message":"{message}","from_user":"{from_user}","to_user":"{to_user}"}}"#)
}

#[tokio::test]
async fn seed_single_chat_delivers_in_both_directions() {
    let server = TestServer::start().await;
    let mut alice = server.seed_single("alice").await;
    let mut bob = server.seed_single("bob").await;

    alice.send_text(&seed_send("hi bob", "alice", "bob")).await;
    let got: SeedChat = bob.json().await;
    assert_eq!(
        (
            got.message.as_str(),
            got.from_user.as_str(),
            got.to_user.as_str()
        ),
        ("hi bob", "alice", "bob")
    );
    assert!(got.id.is_some() && got.ts.is_some());

    bob.send_text(&seed_send("你好 alice 👋", "bob", "alice"))
        .await;
    let got: SeedChat = alice.json().await;
    assert_eq!(
        (
            got.message.as_str(),
            got.from_user.as_str(),
            got.to_user.as_str()
        ),
        ("你好 alice 👋", "bob", "alice")
    );
}

#[tokio::test]
async fn a_chinese_name_in_the_path_logs_in_as_itself() {
    let server = TestServer::start().await;
    // Browsers percent-encode the name in `new WebSocket(".../my_ws/" + name)`.
    let mut zhang = server.seed_single("%E5%BC%A0%E4%BC%9F").await;
    let mut li = server.seed_single("%E6%9D%8E%E9%9B%B7").await;
    zhang.send_text(&seed_send("在吗", "张伟", "李雷")).await;
    let got: SeedChat = li.json().await;
    assert_eq!(got.from_user, "张伟");
    assert_eq!(got.to_user, "李雷");
    assert_eq!(got.message, "在吗");
}

#[tokio::test]
async fn spoofed_from_user_is_replaced_by_sender() {
    let server = TestServer::start().await;
    let mut mallory = server.seed_single("mallory").await;
    let mut bob = server.seed_single("bob").await;
    mallory
        .send_text(&seed_send("I am alice", "alice", "bob"))
        .await;
    let got: SeedChat = bob.json().await;
    assert_eq!(got.from_user, "mallory");
    assert_eq!(got.message, "I am alice");
}

#[tokio::test]
async fn message_to_an_unknown_or_offline_user_gets_a_notice_and_the_server_keeps_serving() {
    let server = TestServer::start().await;
    let mut alice = server.seed_single("alice").await;
    let mut bob = server.seed_single("bob").await;

    alice
        .send_text(&seed_send("anyone?", "alice", "nobody"))
        .await;
    let notice: SeedChat = alice.json().await;
    assert_eq!(notice.from_user, "system");
    assert_eq!(notice.to_user, "alice");
    assert!(notice.message.contains("nobody"), "{}", notice.message);
    assert!(
        notice.message.contains("not delivered"),
        "{}",
        notice.message
    );

    // bob was online and leaves: now he is offline, which reads differently from unknown.
    let mut watcher = server.native("watcher").await;
    bob.ws.close(None).await.expect("close");
    watcher
        .frame_where(|f| f.presence_of("bob") == Some(false))
        .await;
    let mut carol = server.seed_single("carol").await;
    carol.send_text(&seed_send("bob?", "carol", "bob")).await;
    let notice: SeedChat = carol.json().await;
    assert!(
        notice
            .message
            .contains("bob is offline; the message is kept"),
        "{}",
        notice.message
    );

    // Still serving.
    carol
        .send_text(&seed_send("still here", "carol", "alice"))
        .await;
    let got: SeedChat = alice.json().await;
    assert_eq!(
        (got.from_user.as_str(), got.message.as_str()),
        ("carol", "still here")
    );
}

#[tokio::test]
async fn malformed_and_empty_seed_messages_get_notices() {
    let server = TestServer::start().await;
    let mut alice = server.seed_single("alice").await;
    let _bob = server.seed_single("bob").await;
    for bad in [
        "not json",
        r#"{"message":"x","to_user":""}"#,
        &seed_send("", "alice", "bob"),
        &seed_send("x", "alice", "no body"),
    ] {
        alice.send_text(bad).await;
        let notice: SeedChat = alice.json().await;
        assert_eq!(notice.from_user, "system", "for {bad}");
    }
}

#[tokio::test]
async fn a_taken_or_invalid_name_on_the_seed_page_is_told_and_closed() {
    let server = TestServer::start().await;
    let mut first = server.seed_single("alice").await;

    let mut second = server.seed_single("alice").await;
    let notice: SeedChat = second.json().await;
    assert_eq!(notice.from_user, "system");
    assert!(
        notice.message.contains("already online"),
        "{}",
        notice.message
    );
    let close = second.closed().await.expect("a close frame");
    assert_eq!(u16::from(close.code), 1008);

    let mut spaced = server.seed_single("a%20b").await;
    let notice: SeedChat = spaced.json().await;
    assert!(notice.message.contains("whitespace"), "{}", notice.message);
    spaced.closed().await;

    // The first alice was not taken over, as the seed did.
    let mut bob = server.seed_single("bob").await;
    bob.send_text(&seed_send("still you?", "bob", "alice"))
        .await;
    let got: SeedChat = first.json().await;
    assert_eq!(got.message, "still you?");
}

#[tokio::test]
async fn group_chat_relays_verbatim_to_the_others_and_not_to_the_sender() {
    let server = TestServer::start().await;
    let mut a = server.seed_group().await;
    let mut b = server.seed_group().await;
    let mut c = server.seed_group().await;

    a.send_text("hello <b>all</b>").await;
    assert_eq!(b.text().await, "hello <b>all</b>");
    assert_eq!(c.text().await, "hello <b>all</b>");

    // Had a's own message come back, it would be the next thing a reads.
    b.send_text("from b").await;
    assert_eq!(a.text().await, "from b");
    assert_eq!(c.text().await, "from b");
}

#[tokio::test]
async fn a_binary_frame_from_a_seed_page_closes_only_that_page() {
    let server = TestServer::start().await;
    let mut a = server.seed_group().await;
    let mut b = server.seed_group().await;
    let mut c = server.seed_group().await;
    a.send_binary(&[0, 159, 146, 150]).await;
    let close = a.closed().await.expect("a close frame");
    assert_eq!(u16::from(close.code), 1008);
    b.send_text("unaffected").await;
    assert_eq!(c.text().await, "unaffected");
}

#[tokio::test]
async fn the_web_page_is_served_at_root_and_my_app() {
    let server = TestServer::start().await;
    for path in ["/", "/my_app"] {
        let body = common::http_get(server.addr, path).await;
        assert!(body.starts_with("HTTP/1.1 200"), "{path}: {body}");
        assert!(body.contains("text/html"), "{path}");
        assert!(body.contains("<!DOCTYPE html>"), "{path}");
    }
    // A plain GET of the native endpoint says what it wants.
    let body = common::http_get(server.addr, "/ws").await;
    assert!(body.starts_with("HTTP/1.1 4"), "{body}");
}
