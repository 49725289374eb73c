//! A client that stops reading never holds up anyone else: the hub only offers frames to its
//! bounded outbox, and once that is full the client is closed as too slow.

mod common;

use common::{Client, DEADLINE, TestServer, to_room};
use futures_util::StreamExt;
use protocol::{ClientFrame, ServerFrame};
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

const READERS: usize = 100;
const MESSAGES: usize = 400;
const TEXT_BYTES: usize = 4 * 1024;
const WINDOW: usize = 8;

/// A native client whose socket buffers are as small as the kernel allows, so that the
/// server's queue for it fills after a few messages rather than after megabytes.
async fn stalled_client(server: &TestServer, nick: &str) -> Client {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .set_recv_buffer_size(4096)
        .expect("small receive buffer");
    let stream = socket.connect(server.addr).await.expect("connect");
    let mut request = server.url("/ws").into_client_request().expect("request");
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static(protocol::SUBPROTOCOL),
    );
    let (ws, _) =
        tokio_tungstenite::client_async(request, tokio_tungstenite::MaybeTlsStream::Plain(stream))
            .await
            .expect("handshake");
    let mut client = Client { ws };
    client.send(&ClientFrame::login(nick)).await;
    assert!(matches!(client.frame().await, ServerFrame::Welcome { .. }));
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_that_never_reads_does_not_delay_delivery_to_100_others() {
    let config = server::Config {
        outbox_frames: 128,
        socket_send_buffer: Some(16 * 1024),
        rate_per_sec: 0,
        ..server::Config::default()
    };
    let server = TestServer::with_config(config).await;
    let mut stalled = stalled_client(&server, "stalled").await;
    // Every reader checks the sender's messages on its own task, in order, and reports each
    // one. Each starts reading as soon as it is logged in, so the presence and join notices of
    // the others' logins never pile up. The sender keeps at most WINDOW messages ahead of the
    // slowest healthy reader, as a chat of people would: the healthy readers' outboxes never
    // fill, the stalled one's does.
    let (progress, mut reports) = tokio::sync::mpsc::unbounded_channel::<usize>();
    let mut tasks = Vec::with_capacity(READERS);
    for i in 0..READERS {
        let mut reader = server.native(&format!("reader{i}")).await;
        let progress = progress.clone();
        tasks.push(tokio::spawn(async move {
            for expected in 0..MESSAGES {
                let m = reader.message().await;
                assert_eq!(m.text[..8], format!("{expected:08}"), "in order, none lost");
                let _ = progress.send(expected);
            }
        }));
    }
    let mut sender = server.native("sender").await;
    let filler = "x".repeat(TEXT_BYTES - 8);
    let mut delivered = vec![0usize; MESSAGES];
    let mut fully_delivered = 0;
    for i in 0..MESSAGES {
        while i >= fully_delivered + WINDOW {
            let n = tokio::time::timeout(DEADLINE, reports.recv())
                .await
                .expect("readers make progress")
                .expect("readers alive");
            delivered[n] += 1;
            while fully_delivered < MESSAGES && delivered[fully_delivered] == READERS {
                fully_delivered += 1;
            }
        }
        sender
            .send(&to_room(
                &i.to_string(),
                "lobby",
                &format!("{i:08}{filler}"),
            ))
            .await;
    }
    for task in tasks {
        task.await.expect("every reader got every message");
    }

    // The stalled client, reading at last, finds a close frame with the reason after what fitted.
    let mut got = 0;
    let close = loop {
        let next = tokio::time::timeout(DEADLINE, stalled.ws.next())
            .await
            .expect("the stalled client is closed before the deadline");
        match next {
            Some(Ok(tokio_tungstenite::tungstenite::Message::Close(frame))) => break frame,
            Some(Ok(tokio_tungstenite::tungstenite::Message::Text(text))) => {
                if let Ok(ServerFrame::Message(_)) = serde_json::from_str(text.as_str()) {
                    got += 1;
                }
            }
            Some(Ok(_)) => {}
            other => panic!("expected a close frame, got {other:?} after {got} frames"),
        }
    };
    eprintln!("the stalled client got {got} of {MESSAGES} messages before its close frame");
    let close = close.expect("a close frame with a reason");
    assert_eq!(u16::from(close.code), 1008);
    assert!(
        close.reason.as_str().starts_with("too slow"),
        "{}",
        close.reason
    );
    assert!(
        got < MESSAGES,
        "the stalled client was closed before it got everything"
    );
}

/// The store acknowledges messages together, once their transaction commits. A client that
/// sends as fast as it can and reads what comes back is not a slow reader, however small its
/// outbox: while half an outbox of its messages wait to be stored, the server stops reading
/// from it instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fast_sender_is_slowed_down_rather_than_closed_by_its_own_acks() {
    const SENDS: usize = 1000;
    let config = server::Config {
        outbox_frames: 16,
        rate_per_sec: 0,
        ..server::Config::default()
    };
    let server = TestServer::with_config(config).await;
    let sender = server.native("sender").await;
    let (mut sink, mut stream) = sender.ws.split();
    let filler = "y".repeat(2000);
    let sending = async {
        for i in 0..SENDS {
            let frame = to_room(&format!("c{i}"), "lobby", &format!("{i} {filler}"));
            let text = serde_json::to_string(&frame).expect("frame");
            if futures_util::SinkExt::send(&mut sink, text.into())
                .await
                .is_err()
            {
                break; // the reading side says why
            }
        }
    };
    let reading = async {
        let mut acks = 0;
        while acks < SENDS {
            let next = tokio::time::timeout(DEADLINE, stream.next())
                .await
                .expect("acks keep coming");
            match next {
                Some(Ok(tokio_tungstenite::tungstenite::Message::Text(text))) => {
                    let frame: ServerFrame = serde_json::from_str(text.as_str()).expect("a frame");
                    match frame {
                        ServerFrame::Ack { client_id, .. } => {
                            assert_eq!(client_id, format!("c{acks}"), "acks in order");
                            acks += 1;
                        }
                        ServerFrame::Error { .. } => panic!("{frame:?}"),
                        _ => {}
                    }
                }
                Some(Ok(tokio_tungstenite::tungstenite::Message::Close(close))) => {
                    panic!("closed after {acks} acks: {close:?}")
                }
                Some(Ok(_)) => {}
                other => panic!("the connection ended after {acks} acks: {other:?}"),
            }
        }
    };
    tokio::join!(sending, reading);
}
