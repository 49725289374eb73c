//! A table of hostile and broken input against a real server. Each case gets a clear error or
//! a clean close; after each one the server is still up and two bystanders still talk with no
//! loss. The suite prints how many cases it tried.

mod common;

use common::{Client, DEADLINE, Read, TestServer, to_room, to_user};
use futures_util::{SinkExt, StreamExt};
use protocol::{ErrorCode, SeedChat, ServerFrame};
use server::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

/// Who sends the input.
#[derive(Debug, Clone, Copy)]
enum Sender {
    /// A native client logged in as `mallory`.
    Native,
    /// A native client that has not logged in.
    Unlogged,
    /// A seed single-chat page logged in as `mallory`.
    SeedSingle,
    /// A seed group page.
    SeedGroup,
}

/// What it sends.
#[derive(Debug, Clone)]
enum Input {
    Text(String),
    Binary(Vec<u8>),
    /// A text frame whose payload is not UTF-8.
    InvalidUtf8,
    /// Many frames as fast as possible.
    Flood(usize),
}

/// What must come of it.
#[derive(Debug, Clone)]
enum Outcome {
    /// A native error frame with this code.
    Error(ErrorCode),
    /// A seed notice from `system` containing these words.
    Notice(&'static str),
    /// A close frame with this code.
    Close(u16),
    /// Accepted and delivered to bob exactly as sent (clients render it inert).
    DeliveredVerbatim(String),
    /// Some refusals with this code, then a close with this reason.
    RefusedThenClosed(ErrorCode, &'static str),
}

struct Case {
    name: &'static str,
    from: Sender,
    input: Input,
    outcome: Outcome,
}

fn text(s: impl Into<String>) -> Input {
    Input::Text(s.into())
}

fn cases() -> Vec<Case> {
    use Outcome::*;
    use Sender::*;
    let hostile = "\u{1b}[2J\u{1b}]0;pwned\u{7}\u{0}\r evil \u{202e}txet";
    let nested = format!("{}{}", "[".repeat(20_000), "]".repeat(20_000));
    vec![
        Case {
            name: "malformed JSON",
            from: Native,
            input: text(r#"{"type":"send","#),
            outcome: Error(ErrorCode::BadFrame),
        },
        Case {
            name: "JSON that is not an object",
            from: Native,
            input: text("[1,2,3]"),
            outcome: Error(ErrorCode::BadFrame),
        },
        Case {
            name: "deeply nested JSON",
            from: Native,
            input: text(nested),
            outcome: Error(ErrorCode::BadFrame),
        },
        Case {
            name: "wrong field type",
            from: Native,
            input: text(r#"{"type":"send","client_id":7,"room":"lobby","text":"x"}"#),
            outcome: Error(ErrorCode::BadFrame),
        },
        Case {
            name: "missing field",
            from: Native,
            input: text(r#"{"type":"send","client_id":"1","room":"lobby"}"#),
            outcome: Error(ErrorCode::BadFrame),
        },
        Case {
            name: "unknown frame type",
            from: Native,
            input: text(r#"{"type":"drop_table"}"#),
            outcome: Error(ErrorCode::BadFrame),
        },
        Case {
            name: "invalid recipient name",
            from: Native,
            input: text(r#"{"type":"send","client_id":"1","to":"a\u001bb","text":"x"}"#),
            outcome: Error(ErrorCode::BadFrame),
        },
        Case {
            name: "room never joined",
            from: Native,
            input: text(to_room("case-1", "secret", "x").to_json()),
            outcome: Error(ErrorCode::NotInRoom),
        },
        Case {
            name: "unknown recipient",
            from: Native,
            input: text(to_user("case-2", "nobody", "x").to_json()),
            outcome: Error(ErrorCode::UnknownUser),
        },
        Case {
            name: "empty message",
            from: Native,
            input: text(to_room("case-3", "lobby", "").to_json()),
            outcome: Error(ErrorCode::EmptyMessage),
        },
        Case {
            name: "whitespace-only message",
            from: Native,
            input: text(to_room("case-4", "lobby", " \n\t ").to_json()),
            outcome: Error(ErrorCode::EmptyMessage),
        },
        Case {
            name: "text over the limit",
            from: Native,
            input: text(to_room("case-5", "lobby", &"長".repeat(6000)).to_json()),
            outcome: Error(ErrorCode::TooLarge),
        },
        Case {
            name: "binary frame",
            from: Native,
            input: Input::Binary(vec![0xff, 0, 1]),
            outcome: Error(ErrorCode::BinaryFrame),
        },
        Case {
            name: "second login",
            from: Native,
            input: text(r#"{"type":"login","nick":"other"}"#),
            outcome: Error(ErrorCode::AlreadyLoggedIn),
        },
        Case {
            name: "control characters and escape sequences",
            from: Native,
            input: text(to_room("case-6", "lobby", hostile).to_json()),
            outcome: DeliveredVerbatim(hostile.into()),
        },
        Case {
            name: "HTML and script",
            from: Native,
            input: text(
                to_room(
                    "1",
                    "lobby",
                    "<img src=x onerror=alert(1)><script>alert(2)</script>",
                )
                .to_json(),
            ),
            outcome: DeliveredVerbatim(
                "<img src=x onerror=alert(1)><script>alert(2)</script>".into(),
            ),
        },
        Case {
            name: "frame over the size limit",
            from: Native,
            input: text("x".repeat(200 * 1024)),
            outcome: Close(1009),
        },
        Case {
            name: "invalid UTF-8",
            from: Native,
            input: Input::InvalidUtf8,
            outcome: Close(1007),
        },
        Case {
            name: "flood",
            from: Native,
            input: Input::Flood(200),
            outcome: RefusedThenClosed(ErrorCode::RateLimited, "flooding: too many frames"),
        },
        Case {
            name: "send before login",
            from: Unlogged,
            input: text(to_room("case-7", "lobby", "x").to_json()),
            outcome: Error(ErrorCode::NotLoggedIn),
        },
        Case {
            name: "10,000-character nickname",
            from: Unlogged,
            input: text(format!(
                r#"{{"type":"login","nick":"{}"}}"#,
                "n".repeat(10_000)
            )),
            outcome: Error(ErrorCode::InvalidNick),
        },
        Case {
            name: "nickname with an escape sequence",
            from: Unlogged,
            input: text(r#"{"type":"login","nick":"\u001b[31mroot"}"#),
            outcome: Error(ErrorCode::InvalidNick),
        },
        Case {
            name: "nickname with HTML",
            from: Unlogged,
            input: text(r#"{"type":"login","nick":"<b>x</b>"}"#),
            outcome: Error(ErrorCode::InvalidNick),
        },
        Case {
            name: "reserved nickname",
            from: Unlogged,
            input: text(r#"{"type":"login","nick":"system"}"#),
            outcome: Error(ErrorCode::ReservedNick),
        },
        Case {
            name: "seed page: not JSON",
            from: SeedSingle,
            input: text("hello?"),
            outcome: Notice("could not read"),
        },
        Case {
            name: "seed page: no recipient",
            from: SeedSingle,
            input: text(r#"{"message":"x","from_user":"mallory"}"#),
            outcome: Notice("who the message is for"),
        },
        Case {
            name: "seed page: recipient with control characters",
            from: SeedSingle,
            input: text(r#"{"message":"x","to_user":"bob\u0007"}"#),
            outcome: Notice("not a valid name"),
        },
        Case {
            name: "seed page: message over the limit",
            from: SeedSingle,
            input: text(
                serde_json::json!({"message": "x".repeat(20_000), "to_user": "bob"}).to_string(),
            ),
            outcome: Notice("longer than"),
        },
        Case {
            name: "seed page: binary frame",
            from: SeedSingle,
            input: Input::Binary(vec![1, 2, 3]),
            outcome: Close(1008),
        },
        Case {
            name: "group page: binary frame",
            from: SeedGroup,
            input: Input::Binary(vec![1, 2, 3]),
            outcome: Close(1008),
        },
        Case {
            name: "group page: frame over the size limit",
            from: SeedGroup,
            input: text("y".repeat(200 * 1024)),
            outcome: Close(1009),
        },
        Case {
            name: "group page: invalid UTF-8",
            from: SeedGroup,
            input: Input::InvalidUtf8,
            outcome: Close(1007),
        },
    ]
}

async fn sender(server: &TestServer, from: Sender) -> Client {
    match from {
        Sender::Native => server.native("mallory").await,
        Sender::Unlogged => server.native_unlogged().await,
        Sender::SeedSingle => server.seed_single("mallory").await,
        Sender::SeedGroup => server.seed_group().await,
    }
}

async fn send(client: &mut Client, input: &Input) {
    match input {
        Input::Text(t) => client.send_text(t).await,
        Input::Binary(b) => client.send_binary(b).await,
        Input::InvalidUtf8 => {
            let frame =
                Frame::message(vec![b'h', 0xff, 0xfe, b'i'], OpCode::Data(Data::Text), true);
            client
                .ws
                .send(Message::Frame(frame))
                .await
                .expect("send a raw frame");
        }
        Input::Flood(n) => {
            for i in 0..*n {
                let frame = to_room(&format!("f{i}"), "lobby", "flood").to_json();
                if client.ws.send(Message::text(frame)).await.is_err() {
                    break; // closed under us: that is the point
                }
            }
        }
    }
}

async fn check(client: &mut Client, bob: &mut Client, outcome: &Outcome, name: &str) {
    match outcome {
        Outcome::Error(code) => match client
            .frame_where(|f| matches!(f, ServerFrame::Error { .. }))
            .await
        {
            ServerFrame::Error {
                code: got, message, ..
            } => {
                assert_eq!(got, *code, "{name}: {message}");
                assert!(!message.is_empty(), "{name}: the error says why");
            }
            _ => unreachable!(),
        },
        Outcome::Notice(words) => {
            let notice: SeedChat = client.json().await;
            assert_eq!(notice.from_user, "system", "{name}");
            assert!(notice.message.contains(words), "{name}: {}", notice.message);
        }
        Outcome::Close(code) => {
            let close = client
                .closed()
                .await
                .unwrap_or_else(|| panic!("{name}: a close frame"));
            assert_eq!(u16::from(close.code), *code, "{name}: {}", close.reason);
            assert!(!close.reason.is_empty(), "{name}: the close says why");
        }
        Outcome::DeliveredVerbatim(text) => {
            let reply = client.reply().await;
            assert!(
                matches!(reply, ServerFrame::Ack { .. }),
                "{name}: {reply:?}"
            );
            assert_eq!(&bob.message().await.text, text, "{name}");
        }
        Outcome::RefusedThenClosed(code, reason) => {
            let mut refused = 0;
            let close = loop {
                match client.read().await {
                    Read::Text(t) => {
                        if let Ok(ServerFrame::Error { code: got, .. }) = serde_json::from_str(&t) {
                            assert_eq!(got, *code, "{name}");
                            refused += 1;
                        }
                    }
                    Read::Close(close) => break close,
                    Read::Ended => panic!("{name}: ended without a close frame"),
                }
            };
            assert!(refused > 0, "{name}: refused before being closed");
            assert_eq!(close.expect("a reason").reason.as_str(), *reason, "{name}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_gets_an_error_or_a_clean_close_and_bystanders_lose_nothing() {
    let config = Config {
        max_frame_bytes: 64 * 1024,
        max_text_bytes: 16 * 1024,
        // Room for the bystanders' one message per case; the flood's 200 frames overrun it.
        rate_per_sec: 20,
        rate_burst: 40,
        ..Config::default()
    };
    let server = TestServer::with_config(config).await;
    let mut alice = server.native("alice").await;
    let mut bob = server.native("bob").await;
    let cases = cases();
    for (n, case) in cases.iter().enumerate() {
        let mut client = sender(&server, case.from).await;
        send(&mut client, &case.input).await;
        check(&mut client, &mut bob, &case.outcome, case.name).await;
        // Closed properly rather than dropped: once the server has answered the close it has
        // logged the client out, so the next case's `mallory` is free.
        let _ = client.ws.close(None).await;
        let closing = async { while let Some(Ok(_)) = client.ws.next().await {} };
        tokio::time::timeout(DEADLINE, closing)
            .await
            .unwrap_or_else(|_| panic!("{}: the close is answered", case.name));
        // The bystanders: a message gets through, in order, nothing lost. Anything else bob
        // reads first (notices, the flood's burst) is skipped by `message`.
        let marker = format!("after case {n}");
        alice.send(&to_user(&format!("m{n}"), "bob", &marker)).await;
        let got = loop {
            let m = bob.message().await;
            if m.from.as_str() == "alice" {
                break m;
            }
        };
        assert_eq!(got.text, marker, "after {}", case.name);
    }
    // Connections that never speak or speak nonsense at the TCP level.
    raw_tcp_cases(&server).await;
    println!(
        "bad-input suite: {} cases tried, all answered",
        cases.len() + 2
    );
}

async fn raw_tcp_cases(server: &TestServer) {
    // Not HTTP at all: answered with 400 or closed.
    let mut garbage = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    garbage
        .write_all(b"\x16\x03\x01 this is not http\r\n\r\n")
        .await
        .expect("write");
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(DEADLINE, garbage.read_to_end(&mut reply))
        .await
        .expect("answered");
    assert!(
        reply.is_empty() || reply.starts_with(b"HTTP/1.1 400"),
        "{}",
        String::from_utf8_lossy(&reply)
    );
    // Silent: dropped after the handshake deadline (shortened in tests/limits.rs; here the
    // default applies, so just check the server still accepts others meanwhile).
    let _silent = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    let _carol = server.native("carol").await;
}
