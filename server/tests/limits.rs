//! Limits against a real server: origins, the handshake and login deadlines, heartbeats, the
//! rate limit and the per-address cap.

mod common;

use common::{DEADLINE, TestServer, to_room};
use protocol::{ClientFrame, ErrorCode, ServerFrame};
use server::Config;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

async fn connect_with_origin(
    server: &TestServer,
    path: &str,
    origin: &str,
) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    let mut request = server.url(path).into_client_request().expect("request");
    request
        .headers_mut()
        .insert("Origin", HeaderValue::from_str(origin).expect("origin"));
    tokio_tungstenite::connect_async(request).await.map(drop)
}

fn status_of(result: Result<(), tokio_tungstenite::tungstenite::Error>) -> Option<u16> {
    match result {
        Ok(()) => None,
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            Some(response.status().as_u16())
        }
        Err(other) => panic!("unexpected failure: {other}"),
    }
}

#[tokio::test]
async fn pages_from_foreign_origins_are_refused_and_local_ones_are_not() {
    let config = Config {
        allowed_origins: vec!["https://friend.example".into()],
        ..Config::default()
    };
    let server = TestServer::with_config(config).await;
    for path in ["/my_ws", "/my_ws/alice"] {
        assert_eq!(
            status_of(connect_with_origin(&server, path, "https://evil.example").await),
            Some(403),
            "{path}"
        );
        assert_eq!(
            status_of(connect_with_origin(&server, path, "null").await),
            Some(403),
            "{path}: a page from disk needs --allow-origin null"
        );
    }
    // A seed page opened from another local port, the server's own page, an allowed origin.
    let own = format!("http://{}", server.addr);
    for origin in [
        "http://127.0.0.1:8000",
        "http://localhost:5173",
        own.as_str(),
        "https://friend.example",
    ] {
        assert_eq!(
            status_of(connect_with_origin(&server, "/my_ws", origin).await),
            None,
            "{origin}"
        );
    }
}

#[tokio::test]
async fn a_tcp_connection_that_says_nothing_is_dropped() {
    let config = Config {
        handshake_timeout: Duration::from_millis(200),
        ..Config::default()
    };
    let server = TestServer::with_config(config).await;
    let mut silent = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(DEADLINE, silent.read(&mut buf))
        .await
        .expect("the server drops the connection before the deadline");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    // The server is still serving.
    let _alice = server.native("alice").await;
}

#[tokio::test]
async fn a_native_client_that_never_logs_in_is_closed_with_a_reason() {
    let config = Config {
        login_timeout: Duration::from_millis(200),
        ..Config::default()
    };
    let server = TestServer::with_config(config).await;
    let mut idle = server.native_unlogged().await;
    let close = idle.closed().await.expect("a close frame");
    assert_eq!(u16::from(close.code), 1008);
    assert_eq!(close.reason.as_str(), "no login in time");
    // One that logs in in time stays.
    let mut alice = server.native("alice").await;
    alice.send(&to_room("1", "lobby", "still here")).await;
    assert!(matches!(alice.reply().await, ServerFrame::Ack { .. }));
}

#[tokio::test]
async fn a_client_that_answers_no_pings_is_closed_and_one_that_reads_is_kept() {
    use futures_util::StreamExt;
    let config = Config {
        // Long enough that a loaded machine does not delay a pong past two intervals.
        ping_interval: Duration::from_secs(1),
        ..Config::default()
    };
    let server = TestServer::with_config(config).await;
    let mut deaf = server.native("deaf").await;
    let mut alive = server.native("alive").await;
    // `alive` reads (tungstenite answers each ping with a pong as it reads), until the server
    // says `deaf`, who read nothing and so sent no pongs, is gone.
    let (mut pings, mut deaf_gone) = (0, false);
    let started = std::time::Instant::now();
    while !(deaf_gone && pings >= 3) {
        assert!(
            started.elapsed() < 3 * DEADLINE,
            "deaf was never closed ({pings} pings)"
        );
        let next = tokio::time::timeout(DEADLINE, alive.ws.next())
            .await
            .expect("frames");
        match next {
            Some(Ok(tokio_tungstenite::tungstenite::Message::Ping(_))) => pings += 1,
            Some(Ok(tokio_tungstenite::tungstenite::Message::Text(text))) => {
                let frame: ServerFrame = serde_json::from_str(text.as_str()).expect("a frame");
                deaf_gone |= frame.presence_of("deaf") == Some(false);
            }
            Some(Ok(tokio_tungstenite::tungstenite::Message::Close(frame))) => {
                panic!("a client that answers pings was closed: {frame:?}")
            }
            Some(Ok(_)) => {}
            other => panic!("unexpected: {other:?}"),
        }
    }
    assert!(
        pings >= 2,
        "deaf was closed after missing two pings, got {pings}"
    );
    // Reading at last, deaf finds the close frame, unless its late pong met the closed socket
    // first (tungstenite answers pings as it reads).
    if let Some(close) = deaf.closed().await {
        assert_eq!(close.reason.as_str(), "no answer to pings");
    }
    alive.send(&to_room("1", "lobby", "still here")).await;
    assert!(matches!(alive.reply().await, ServerFrame::Ack { .. }));
}

#[tokio::test]
async fn excess_frames_are_refused_and_a_flood_is_disconnected() {
    let config = Config {
        rate_per_sec: 1,
        rate_burst: 5,
        ..Config::default()
    };
    let server = TestServer::with_config(config).await;
    let mut bob = server.native("bob").await;
    let mut flooder = server.native("flooder").await;
    // The login took one token; four more frames fit in the burst.
    for i in 0..4 {
        flooder
            .send(&to_room(&format!("ok{i}"), "lobby", "hi"))
            .await;
    }
    flooder
        .send(&to_room("over", "lobby", "one too many"))
        .await;
    // The refusal comes from the connection at once, the acks after storing: any order.
    let (mut acks, mut refused) = (0, Vec::new());
    for _ in 0..5 {
        match flooder.reply().await {
            ServerFrame::Ack { .. } => acks += 1,
            ServerFrame::Error {
                code, client_id, ..
            } => refused.push((code, client_id)),
            _ => unreachable!(),
        }
    }
    assert_eq!(acks, 4);
    assert_eq!(
        refused,
        [(ErrorCode::RateLimited, Some("over".to_owned()))],
        "names the dropped message"
    );
    // Keeps going regardless: closed as a flood.
    for i in 0..20 {
        let frame = to_room(&format!("f{i}"), "lobby", "flood").to_json();
        if futures_util::SinkExt::send(
            &mut flooder.ws,
            tokio_tungstenite::tungstenite::Message::text(frame),
        )
        .await
        .is_err()
        {
            break;
        }
    }
    let close = flooder.closed().await.expect("a close frame");
    assert_eq!(close.reason.as_str(), "flooding: too many frames");
    // bob got the four that fitted and none of the flood.
    for _ in 0..4 {
        assert_eq!(bob.message().await.text, "hi");
    }
    bob.send(&ClientFrame::who(None)).await;
    let next = bob
        .frame_where(|f| {
            matches!(
                f,
                ServerFrame::Message(_) | ServerFrame::Users { room: None, .. }
            )
        })
        .await;
    assert!(matches!(next, ServerFrame::Users { .. }), "{next:?}");
}

#[tokio::test]
async fn connections_from_one_address_are_capped() {
    let config = Config {
        max_connections_per_ip: 3,
        per_ip_exempt_loopback: false,
        ..Config::default()
    };
    let server = TestServer::with_config(config).await;
    let a = server.seed_group().await;
    let _b = server.seed_group().await;
    let _c = server.seed_group().await;
    let fourth = tokio_tungstenite::connect_async(server.url("/my_ws"))
        .await
        .map(drop);
    assert_eq!(status_of(fourth), Some(503));
    // A place frees up when a connection closes.
    drop(a);
    let mut attempts = 0;
    loop {
        attempts += 1;
        match tokio_tungstenite::connect_async(server.url("/my_ws")).await {
            Ok(_) => break,
            Err(_) if attempts < 100 => tokio::task::yield_now().await,
            Err(err) => panic!("no place freed: {err}"),
        }
    }
}

#[tokio::test]
async fn a_connection_may_be_in_a_hundred_rooms_at_most() {
    let config = Config {
        rate_per_sec: 0,
        ..Config::default()
    };
    let server = TestServer::with_config(config).await;
    let mut alice = server.native("alice").await;
    // The lobby and 99 more.
    for i in 1..100 {
        alice
            .send(&ClientFrame::Join {
                room: format!("room{i}").parse().expect("room"),
            })
            .await;
    }
    alice
        .send(&ClientFrame::Join {
            room: "one-too-many".parse().expect("room"),
        })
        .await;
    match alice
        .frame_where(|f| matches!(f, ServerFrame::Error { .. }))
        .await
    {
        ServerFrame::Error { code, message, .. } => {
            assert_eq!(code, ErrorCode::TooManyRooms);
            assert!(message.contains("100 rooms"), "{message}");
        }
        _ => unreachable!(),
    }
    alice.send(&ClientFrame::Rooms).await;
    match alice
        .frame_where(|f| matches!(f, ServerFrame::Rooms { .. }))
        .await
    {
        ServerFrame::Rooms { rooms } => assert_eq!(rooms.iter().filter(|r| r.joined).count(), 100),
        _ => unreachable!(),
    }
}
