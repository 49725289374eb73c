//! Bench clients: connecting over loopback, logging in, and the frames they send.
//!
//! - native: `/ws` with subprotocol `chat.v1`, `login` answered by `welcome`, `join` answered by
//!   `users`.
//! - seed single chat: `/my_ws/<name>`, logged in by the path, JSON `{message, from_user, to_user}`.
//! - seed group chat: `/my_ws`, plain text, an anonymous guest in `lobby`.

use anyhow::{Context, bail};
use clap::ValueEnum;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::future::Future;
use std::io::Write as _;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// One client's WebSocket.
pub type Ws = WebSocketStream<TcpStream>;

/// The native protocol's WebSocket subprotocol.
pub const SUBPROTOCOL: &str = "chat.v1";

/// How long a setup step (handshake, login, join) may take before the run fails.
const SETUP_TIMEOUT: Duration = Duration::from_secs(30);

/// Which of the server's protocols a workload speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Proto {
    /// `/ws`, subprotocol `chat.v1`, typed JSON frames.
    Native,
    /// The tutorial's pages: `/my_ws` (group, plain text) and `/my_ws/<name>` (single chat).
    Seed,
}

impl Proto {
    /// The name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Native => "native",
            Self::Seed => "seed",
        }
    }
}

/// Where and how to connect.
#[derive(Debug, Clone, Copy)]
pub struct Dialer {
    /// The server's address (loopback).
    pub addr: SocketAddr,
    /// The client's WebSocket read buffer: bytes read per syscall and allocated per connection.
    pub read_buffer: usize,
}

impl Dialer {
    /// Opens a WebSocket to `path`, offering `chat.v1` when `native`. `recv_buffer` sets the
    /// client socket's SO_RCVBUF (a small one makes a client that stops reading fill up sooner).
    pub async fn open(
        &self,
        path: &str,
        native: bool,
        recv_buffer: Option<u32>,
    ) -> anyhow::Result<Ws> {
        let socket = if self.addr.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
        .context("creating a socket")?;
        if let Some(size) = recv_buffer {
            socket
                .set_recv_buffer_size(size)
                .context("setting SO_RCVBUF")?;
        }
        let stream = socket
            .connect(self.addr)
            .await
            .with_context(|| format!("connecting to {}", self.addr))?;
        stream.set_nodelay(true).context("setting TCP_NODELAY")?;
        let mut request = format!("ws://{}{path}", self.addr)
            .into_client_request()
            .context("building the WebSocket request")?;
        if native {
            request.headers_mut().insert(
                "Sec-WebSocket-Protocol",
                HeaderValue::from_static(SUBPROTOCOL),
            );
        }
        let config = WebSocketConfig::default()
            .read_buffer_size(self.read_buffer)
            .write_buffer_size(0)
            .max_message_size(Some(1 << 20))
            .max_frame_size(Some(1 << 20));
        let handshake = tokio_tungstenite::client_async_with_config(request, stream, Some(config));
        let (ws, _) = tokio::time::timeout(SETUP_TIMEOUT, handshake)
            .await
            .context("WebSocket handshake timed out")?
            .with_context(|| format!("WebSocket handshake for {path}"))?;
        Ok(ws)
    }

    /// A native client logged in as `nick`.
    pub async fn native(&self, nick: &str) -> anyhow::Result<Ws> {
        let mut ws = self.open("/ws", true, None).await?;
        login(&mut ws, nick).await?;
        Ok(ws)
    }
}

/// Sends `login` and waits for `welcome`.
pub async fn login(ws: &mut Ws, nick: &str) -> anyhow::Result<()> {
    send_json(ws, json!({"type": "login", "nick": nick})).await?;
    expect(ws, "welcome", |v| v["type"] == "welcome")
        .await
        .with_context(|| format!("logging in as {nick}"))
}

/// Sends `join` and waits for the room's `users` answer.
pub async fn join(ws: &mut Ws, room: &str) -> anyhow::Result<()> {
    send_json(ws, json!({"type": "join", "room": room})).await?;
    expect(ws, "users of the room", |v| {
        v["type"] == "users" && v["room"] == room
    })
    .await
    .with_context(|| format!("joining {room}"))
}

/// Sends `search` for `text` and waits for its results.
pub async fn search(ws: &mut Ws, text: &str) -> anyhow::Result<()> {
    send_json(ws, json!({"type": "search", "text": text, "limit": 50})).await?;
    expect(ws, "search results", |v| v["type"] == "search_results")
        .await
        .with_context(|| format!("searching for {text:?}"))
}

async fn send_json(ws: &mut Ws, frame: Value) -> anyhow::Result<()> {
    ws.send(Message::text(frame.to_string()))
        .await
        .context("sending a frame")
}

/// Reads frames until one satisfies `wanted`, skipping others; an `error` frame or a close
/// fails.
async fn expect(ws: &mut Ws, what: &str, wanted: impl Fn(&Value) -> bool) -> anyhow::Result<()> {
    let wait = async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(text))) => {
                    let Ok(frame) = serde_json::from_str::<Value>(text.as_str()) else {
                        continue;
                    };
                    if wanted(&frame) {
                        return Ok(frame);
                    }
                    if frame["type"] == "error" {
                        bail!("the server answered with an error: {text}");
                    }
                }
                Some(Ok(Message::Close(frame))) => bail!("closed by the server: {frame:?}"),
                Some(Ok(_)) => {}
                Some(Err(err)) => return Err(err).context("reading a frame"),
                None => bail!("the connection ended"),
            }
        }
    };
    tokio::time::timeout(SETUP_TIMEOUT, wait)
        .await
        .with_context(|| format!("no {what} within {SETUP_TIMEOUT:?}"))??;
    Ok(())
}

/// A native `send` to a room.
pub fn to_room(room: &str, client_id: u32, text: &str) -> Message {
    send_frame("room", room, client_id, text)
}

/// A native `send` to a user.
pub fn to_user(to: &str, client_id: u32, text: &str) -> Message {
    send_frame("to", to, client_id, text)
}

/// A native `send` with `target` (`room` or `to`) set to `name`. Written straight into one
/// buffer rather than through a `serde_json::Value` and its map: senders build one for every
/// message, on the cores the server runs on.
fn send_frame(target: &str, name: &str, client_id: u32, text: &str) -> Message {
    let mut frame = Vec::with_capacity(64 + name.len() + text.len());
    frame.extend_from_slice(br#"{"type":"send","client_id":""#);
    write!(frame, "{client_id}").expect("writing to a Vec cannot fail");
    frame.extend_from_slice(b"\",\"");
    frame.extend_from_slice(target.as_bytes());
    frame.extend_from_slice(b"\":");
    json_string(&mut frame, name);
    frame.extend_from_slice(br#","text":"#);
    json_string(&mut frame, text);
    frame.push(b'}');
    Message::text(String::from_utf8(frame).expect("JSON of strings is UTF-8"))
}

/// A seed single-chat message.
pub fn seed_single(from: &str, to: &str, text: &str) -> Message {
    let mut frame = Vec::with_capacity(48 + from.len() + to.len() + text.len());
    frame.extend_from_slice(br#"{"message":"#);
    json_string(&mut frame, text);
    frame.extend_from_slice(br#","from_user":"#);
    json_string(&mut frame, from);
    frame.extend_from_slice(br#","to_user":"#);
    json_string(&mut frame, to);
    frame.push(b'}');
    Message::text(String::from_utf8(frame).expect("JSON of strings is UTF-8"))
}

/// Appends `text` as a JSON string, quoted and escaped.
fn json_string(out: &mut Vec<u8>, text: &str) {
    serde_json::to_writer(out, text).expect("writing to a Vec cannot fail");
}

/// A native client used only during setup, to learn when the seed clients are registered.
#[derive(Debug)]
pub struct Control {
    ws: Ws,
}

impl Control {
    /// Logs in a control client as `nick`.
    pub async fn open(dialer: &Dialer, nick: &str) -> anyhow::Result<Self> {
        Ok(Self {
            ws: dialer.native(nick).await?,
        })
    }

    /// Members of `lobby`, counted by the server.
    pub async fn lobby_members(&mut self) -> anyhow::Result<u64> {
        send_json(&mut self.ws, json!({"type": "rooms"})).await?;
        let rooms = Self::answer(&mut self.ws, "rooms", |v| v["type"] == "rooms").await?;
        let lobby = rooms["rooms"]
            .as_array()
            .and_then(|rooms| rooms.iter().find(|r| r["name"] == "lobby"))
            .and_then(|r| r["members"].as_u64());
        lobby.context("the room list has no lobby")
    }

    /// Waits until `lobby` has at least `members` members.
    pub async fn await_lobby(&mut self, members: u64) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + SETUP_TIMEOUT;
        while self.lobby_members().await? < members {
            if tokio::time::Instant::now() > deadline {
                bail!("lobby did not reach {members} members in {SETUP_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    /// Waits until every one of `nicks` is online.
    pub async fn await_online(&mut self, nicks: &[String]) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + SETUP_TIMEOUT;
        while !self.online(nicks).await? {
            if tokio::time::Instant::now() > deadline {
                bail!("not every client was online after {SETUP_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    /// Whether every one of `nicks` is online, asking `who` page by page (the server lists a
    /// page of names at a time, in name order).
    async fn online(&mut self, nicks: &[String]) -> anyhow::Result<bool> {
        let mut missing: std::collections::HashSet<&str> =
            nicks.iter().map(String::as_str).collect();
        let mut after: Option<String> = None;
        loop {
            let mut who = json!({"type": "who", "limit": 500});
            if let Some(after) = &after {
                who["after"] = json!(after);
            }
            send_json(&mut self.ws, who).await?;
            let page = Self::answer(&mut self.ws, "users", |v| {
                v["type"] == "users" && v.get("room").is_none_or(Value::is_null)
            })
            .await?;
            let names: Vec<&str> = page["users"]
                .as_array()
                .map(|u| u.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            for name in &names {
                missing.remove(*name);
            }
            let more = page["has_more"].as_bool().unwrap_or(false);
            match names.last() {
                _ if missing.is_empty() => return Ok(true),
                Some(last) if more => after = Some((*last).to_owned()),
                _ => return Ok(false),
            }
        }
    }

    async fn answer(
        ws: &mut Ws,
        what: &str,
        wanted: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        let wait = async {
            loop {
                match ws.next().await {
                    Some(Ok(Message::Text(text))) => {
                        if let Ok(frame) = serde_json::from_str::<Value>(text.as_str())
                            && wanted(&frame)
                        {
                            return Ok(frame);
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(err)) => return Err(err).context("control connection"),
                    None => bail!("the control connection ended"),
                }
            }
        };
        tokio::time::timeout(SETUP_TIMEOUT, wait)
            .await
            .with_context(|| format!("no {what} answer"))?
    }

    /// Closes the control connection.
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}

/// Runs `make(i)` for `i` in `0..n`, at most `concurrency` at a time, and returns the results in
/// order; the first error ends it.
pub async fn all<T, F, Fut>(n: usize, concurrency: usize, make: F) -> anyhow::Result<Vec<T>>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    futures_util::stream::iter((0..n).map(make))
        .buffered(concurrency.max(1))
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(message: Message) -> Value {
        let Message::Text(text) = message else {
            panic!("not a text frame: {message:?}")
        };
        serde_json::from_str(text.as_str()).expect("valid JSON")
    }

    #[test]
    fn send_frames_are_the_json_objects_of_the_protocols() {
        let text = "say \"hi\"\\ \n\u{1b}[31m 你好";
        assert_eq!(
            parsed(to_user("bob", 7, text)),
            json!({"type": "send", "client_id": "7", "to": "bob", "text": text})
        );
        assert_eq!(
            parsed(to_room("lobby", 4_294_967_295, text)),
            json!({"type": "send", "client_id": "4294967295", "room": "lobby", "text": text})
        );
        assert_eq!(
            parsed(seed_single("a\"b", "c", text)),
            json!({"message": text, "from_user": "a\"b", "to_user": "c"})
        );
    }
}
