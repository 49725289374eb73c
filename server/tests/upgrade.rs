//! The WebSocket upgrade itself: requests that are not proper upgrades are refused with a
//! reason, and bytes a client sends right behind its upgrade request are not lost.

mod common;

use common::{Client, DEADLINE, TestServer};
use protocol::SeedChat;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::Role;

/// An upgrade request for `path`, with `extra` header lines (each ending in `\r\n`).
fn upgrade_request(path: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
    )
}

/// Sends `request` and returns the response head and whatever came after it in the same reads.
async fn exchange(addr: SocketAddr, request: &[u8]) -> (TcpStream, String, Vec<u8>) {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(request).await.expect("write the request");
    let mut got = Vec::new();
    let head_end = loop {
        if let Some(at) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let mut buf = [0u8; 1024];
        let n = tokio::time::timeout(DEADLINE, tcp.read(&mut buf))
            .await
            .expect("a response before the deadline")
            .expect("read");
        assert!(n > 0, "the server closed before answering: {got:?}");
        got.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&got[..head_end]).into_owned();
    (tcp, head, got[head_end..].to_vec())
}

/// The whole response to `request`, body included (the server closes after it).
async fn refusal(addr: SocketAddr, request: &str) -> String {
    let (mut tcp, head, mut body) = exchange(addr, request.as_bytes()).await;
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(str::to_owned)
        })
        .and_then(|v| v.trim().parse().ok())
        .expect("a content-length");
    while body.len() < length {
        let mut buf = [0u8; 256];
        let n = tokio::time::timeout(DEADLINE, tcp.read(&mut buf))
            .await
            .expect("the body before the deadline")
            .expect("read");
        assert!(n > 0, "the body ended early");
        body.extend_from_slice(&buf[..n]);
    }
    format!("{head}{}", String::from_utf8_lossy(&body))
}

#[tokio::test]
async fn requests_that_are_not_proper_upgrades_are_refused_with_the_reason() {
    let server = TestServer::start().await;
    let cases = [
        (
            "GET /my_ws HTTP/1.1\r\nHost: localhost\r\n\r\n".to_owned(),
            "400",
            "Connection header did not include 'upgrade'",
        ),
        (
            "GET /my_ws HTTP/1.1\r\nHost: localhost\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\n"
                .to_owned(),
            "400",
            "`Upgrade` header did not include 'websocket'",
        ),
        (
            "GET /my_ws/alice HTTP/1.1\r\nHost: localhost\r\nConnection: upgrade\r\n\
             Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n"
                .to_owned(),
            "400",
            "`Sec-WebSocket-Key` header missing",
        ),
        (
            upgrade_request("/ws", "").replace("Version: 13", "Version: 8"),
            "400",
            "`Sec-WebSocket-Version` header did not include '13'",
        ),
        (
            upgrade_request("/ws", ""),
            "400",
            "/ws speaks the native protocol: offer the WebSocket subprotocol chat.v1",
        ),
    ];
    for (request, status, why) in cases {
        let response = refusal(server.addr, &request).await;
        assert!(
            response.starts_with(&format!("HTTP/1.1 {status}")) && response.contains(why),
            "{request:?} got {response:?}"
        );
    }
}

#[tokio::test]
async fn the_upgrade_answer_accepts_the_key_and_names_the_native_subprotocol_only() {
    let server = TestServer::start().await;
    let offer = format!(
        "Sec-WebSocket-Protocol: x.other, {}\r\n",
        protocol::SUBPROTOCOL
    );
    let (_native, head, _) =
        exchange(server.addr, upgrade_request("/my_ws", &offer).as_bytes()).await;
    let head = head.to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    // The accept key of RFC 6455's example.
    assert!(
        head.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
        "{head}"
    );
    assert!(
        head.contains("sec-websocket-protocol: chat.v1\r\n"),
        "{head}"
    );
    let (_page, head, _) =
        exchange(server.addr, upgrade_request("/my_ws/alice", "").as_bytes()).await;
    let head = head.to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(!head.contains("sec-websocket-protocol"), "{head}");
}

#[tokio::test]
async fn a_frame_sent_right_behind_the_upgrade_request_is_read() {
    let server = TestServer::start().await;
    let mut request = upgrade_request("/my_ws/alice", "").into_bytes();
    request.extend(masked_text("not json"));
    let (tcp, head, after) = exchange(server.addr, &request).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let ws = WebSocketStream::from_partially_read(
        tokio_tungstenite::MaybeTlsStream::Plain(tcp),
        after,
        Role::Client,
        None,
    )
    .await;
    let mut page = Client { ws };
    let notice: SeedChat = page.json().await;
    assert_eq!(notice.from_user, "system");
    assert!(
        notice.message.starts_with("could not read that message"),
        "{notice:?}"
    );
}

/// A client's text frame: final, masked, with a payload under 126 bytes.
fn masked_text(text: &str) -> Vec<u8> {
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let len = u8::try_from(text.len()).expect("a short text");
    assert!(len < 126);
    let mut frame = vec![0x81, 0x80 | len];
    frame.extend(mask);
    frame.extend(text.bytes().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
    frame
}
