//! The network task against a real WebSocket server in the test: events in order, frames both
//! ways, reconnecting after the server drops or falls silent, nothing stale sent before login.
//! Timeouts here only turn a hang into a readable failure.

use client_tui::msg::NetEvent;
use client_tui::net::{self, NetConfig};
use futures_util::{SinkExt, StreamExt};
use protocol::{ClientFrame, ServerFrame};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;

const LIMIT: Duration = Duration::from_secs(10);

async fn accept(listener: &TcpListener) -> WebSocketStream<TcpStream> {
    let (tcp, _) = tokio::time::timeout(LIMIT, listener.accept())
        .await
        .expect("the client connects")
        .expect("accepting");
    tokio_tungstenite::accept_hdr_async(tcp, answer_subprotocol)
        .await
        .expect("a WebSocket handshake")
}

/// The handshake callback: checks the client asks for `chat.v1` and agrees to it.
// The callback's type is tungstenite's, large error included.
#[allow(clippy::result_large_err)]
fn answer_subprotocol(req: &Request, mut resp: Response) -> Result<Response, ErrorResponse> {
    assert_eq!(
        req.headers().get("Sec-WebSocket-Protocol"),
        Some(&HeaderValue::from_static("chat.v1")),
        "the client asks for the chat.v1 subprotocol"
    );
    resp.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static("chat.v1"),
    );
    Ok(resp)
}

async fn next_event(events: &mut mpsc::Receiver<NetEvent>) -> NetEvent {
    tokio::time::timeout(LIMIT, events.recv())
        .await
        .expect("an event in time")
        .expect("the network task runs")
}

async fn next_text(ws: &mut WebSocketStream<TcpStream>) -> String {
    loop {
        let msg = tokio::time::timeout(LIMIT, ws.next())
            .await
            .expect("a frame in time")
            .expect("the connection is open")
            .expect("a readable frame");
        if let Message::Text(text) = msg {
            return text.to_string();
        }
    }
}

struct Client {
    to_net: mpsc::Sender<ClientFrame>,
    events: mpsc::Receiver<NetEvent>,
}

async fn start(silence_limit: Duration) -> (TcpListener, Client) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("binding");
    let url = net::endpoint_url(&listener.local_addr().expect("bound").to_string());
    let (to_net, from_app) = mpsc::channel(16);
    let (to_app, events) = mpsc::channel(16);
    tokio::spawn(net::run(url, NetConfig { silence_limit }, to_app, from_app));
    (listener, Client { to_net, events })
}

#[tokio::test]
async fn frames_go_both_ways_and_a_dropped_connection_is_opened_again() {
    let (listener, mut client) = start(Duration::from_secs(60)).await;
    assert_eq!(
        next_event(&mut client.events).await,
        NetEvent::Connecting { attempt: 0 }
    );
    let mut ws = accept(&listener).await;
    assert_eq!(next_event(&mut client.events).await, NetEvent::Connected);

    client
        .to_net
        .send(ClientFrame::login("alice"))
        .await
        .expect("the task takes frames");
    assert_eq!(
        next_text(&mut ws).await,
        r#"{"type":"login","nick":"alice"}"#
    );
    let welcome = r#"{"type":"presence","nick":"bob","online":true}"#;
    ws.send(Message::text(welcome)).await.expect("sending");
    let NetEvent::FrameReceived(frame) = next_event(&mut client.events).await else {
        panic!("expected the frame");
    };
    assert!(matches!(frame, ServerFrame::Presence { online: true, .. }));

    drop(ws);
    let NetEvent::Disconnected { attempt, .. } = next_event(&mut client.events).await else {
        panic!("expected the disconnect");
    };
    assert_eq!(attempt, 1);
    // Sent while disconnected: dropped, so nothing stale reaches the server before a login.
    client
        .to_net
        .send(ClientFrame::Rooms)
        .await
        .expect("the task takes frames");
    assert_eq!(
        next_event(&mut client.events).await,
        NetEvent::Connecting { attempt: 1 }
    );
    let mut ws = accept(&listener).await;
    assert_eq!(next_event(&mut client.events).await, NetEvent::Connected);
    client
        .to_net
        .send(ClientFrame::login("alice"))
        .await
        .expect("the task takes frames");
    assert_eq!(
        next_text(&mut ws).await,
        r#"{"type":"login","nick":"alice"}"#,
        "the first frame on the new connection is the login"
    );
}

#[tokio::test]
async fn a_server_that_falls_silent_is_left_and_tried_again() {
    let (listener, mut client) = start(Duration::from_millis(300)).await;
    next_event(&mut client.events).await;
    let _silent = accept(&listener).await;
    assert_eq!(next_event(&mut client.events).await, NetEvent::Connected);
    let NetEvent::Disconnected { reason, .. } = next_event(&mut client.events).await else {
        panic!("expected the disconnect");
    };
    assert!(reason.contains("no word from the server"), "{reason}");
    assert_eq!(
        next_event(&mut client.events).await,
        NetEvent::Connecting { attempt: 1 }
    );
    let _again = accept(&listener).await;
    assert_eq!(next_event(&mut client.events).await, NetEvent::Connected);
}

#[tokio::test]
async fn a_server_that_is_down_is_retried_with_growing_waits() {
    // A port nobody listens on: bind one, note it, close it.
    let port = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding")
        .local_addr()
        .expect("bound")
        .port();
    let (to_net, from_app) = mpsc::channel(16);
    let (to_app, mut events) = mpsc::channel(16);
    let url = net::endpoint_url(&format!("127.0.0.1:{port}"));
    tokio::spawn(net::run(url, NetConfig::default(), to_app, from_app));
    let mut waits = Vec::new();
    while waits.len() < 3 {
        if let NetEvent::Disconnected {
            retry_in_ms,
            attempt,
            ..
        } = next_event(&mut events).await
        {
            assert_eq!(attempt as usize, waits.len() + 1);
            waits.push(retry_in_ms);
        }
    }
    // 250, 500, 1000 ms, each shortened by up to half by jitter.
    for (wait, full) in waits.iter().zip([250, 500, 1000]) {
        assert!((full / 2..=full).contains(wait), "{waits:?}");
    }
    drop(to_net);
}
