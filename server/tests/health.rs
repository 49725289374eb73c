//! `/healthz` and `/metrics` of a real server.

mod common;

use common::{TestServer, to_room};
use protocol::ServerFrame;

/// The response to `GET path`, which must be 200.
async fn ok(server: &TestServer, path: &str) -> String {
    let response = common::http_get(server.addr, path).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{path}: {response}");
    response
}

fn metric(body: &str, name: &str) -> f64 {
    body.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} missing from\n{body}"))
}

#[tokio::test]
async fn health_and_metrics_report_what_happened() {
    let server = TestServer::start().await;
    assert!(ok(&server, "/healthz").await.ends_with("ok\n"));

    let mut alice = server.native("alice").await;
    let mut bob = server.native("bob").await;
    let _page = server.seed_group().await;
    for i in 0..3 {
        alice.send(&to_room(&i.to_string(), "lobby", "hi")).await;
        assert!(matches!(alice.reply().await, ServerFrame::Ack { .. }));
        bob.message().await;
    }
    let body = ok(&server, "/metrics").await;
    assert!(
        body.contains("# TYPE chat_messages_stored_total counter"),
        "{body}"
    );
    assert_eq!(metric(&body, "chat_messages_stored_total"), 3.0);
    // Each message went to bob and to the group page.
    assert_eq!(metric(&body, "chat_deliveries_total"), 6.0);
    assert_eq!(metric(&body, "chat_connections_open"), 3.0);
    assert_eq!(metric(&body, "chat_users_online"), 2.0);
    assert!(metric(&body, "chat_store_commits_total") >= 1.0);
    assert!(metric(&body, "chat_frames_received_total") >= 5.0);
    assert_eq!(metric(&body, "chat_slow_consumer_closes_total"), 0.0);
}
