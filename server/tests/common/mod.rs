//! A real server on `127.0.0.1:0` and real WebSocket clients for it.
//!
//! Every wait has a deadline that only turns a hang into a readable failure; tests order events
//! by what the clients receive, never by time.
#![allow(dead_code)] // each test file uses its own part of this module

pub mod redis_server;

use futures_util::{SinkExt, StreamExt};
use protocol::{ClientFrame, ServerFrame};
use serde::de::DeserializeOwned;
use server::Config;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Bytes, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long any single wait may take before the test fails as hung.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// A server running in this process.
#[derive(Debug)]
pub struct TestServer {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), server::RunError>>>,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::with_config(Config::default()).await
    }

    pub async fn with_config(config: Config) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a free port");
        let addr = listener.local_addr().expect("local address");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server::run(listener, config, async move {
            let _ = stopped.await;
        }));
        Self {
            addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// A handle on a server that runs elsewhere (another process); `stop` does nothing.
    pub fn at(addr: SocketAddr) -> Self {
        Self {
            addr,
            stop: None,
            task: None,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }

    /// Connects to `path` with no subprotocol.
    pub async fn connect(&self, path: &str) -> Client {
        let (ws, _) = tokio_tungstenite::connect_async(self.url(path))
            .await
            .unwrap_or_else(|e| panic!("connect to {path}: {e}"));
        Client { ws }
    }

    /// Connects to `/ws` with the native subprotocol, without logging in.
    pub async fn native_unlogged(&self) -> Client {
        let mut request = self.url("/ws").into_client_request().expect("request");
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static(protocol::SUBPROTOCOL),
        );
        let (ws, response) = tokio_tungstenite::connect_async(request)
            .await
            .expect("native connect");
        assert_eq!(
            response
                .headers()
                .get("Sec-WebSocket-Protocol")
                .map(|v| v.to_str().expect("ascii")),
            Some(protocol::SUBPROTOCOL)
        );
        Client { ws }
    }

    /// A native client logged in as `nick`, past its `welcome` and lobby member list.
    pub async fn native(&self, nick: &str) -> Client {
        let mut client = self.native_unlogged().await;
        client.send(&ClientFrame::login(nick)).await;
        match client.frame().await {
            ServerFrame::Welcome { nick: got, .. } => assert_eq!(got.as_str(), nick),
            other => panic!("expected welcome, got {other:?}"),
        }
        client
            .frame_where(|f| matches!(f, ServerFrame::Users { room: Some(_), .. }))
            .await;
        client
    }

    /// A seed single-chat page logged in as `name`.
    pub async fn seed_single(&self, name: &str) -> Client {
        self.connect(&format!("/my_ws/{name}")).await
    }

    /// A seed group page.
    pub async fn seed_group(&self) -> Client {
        self.connect("/my_ws").await
    }

    /// Triggers shutdown and waits for `run` to return.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(DEADLINE, task)
                .await
                .expect("server stops in time")
                .expect("server task")
                .expect("server ran");
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A WebSocket client, over plain TCP unless `S` says otherwise.
#[derive(Debug)]
pub struct Client<S = MaybeTlsStream<TcpStream>> {
    pub ws: WebSocketStream<S>,
}

/// What a client read.
#[derive(Debug)]
pub enum Read {
    Text(String),
    Close(Option<CloseFrame>),
    /// The stream ended or failed without a close frame.
    Ended,
}

impl<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin> Client<S> {
    pub async fn send_text(&mut self, text: &str) {
        self.ws
            .send(Message::text(text))
            .await
            .expect("send a text frame");
    }

    pub async fn send_binary(&mut self, bytes: &[u8]) {
        self.ws
            .send(Message::Binary(Bytes::copy_from_slice(bytes)))
            .await
            .expect("send a binary frame");
    }

    pub async fn send(&mut self, frame: &ClientFrame) {
        self.send_text(&frame.to_json()).await;
    }

    /// The next text frame, close, or end; pings and pongs are skipped.
    pub async fn read(&mut self) -> Read {
        loop {
            let next = tokio::time::timeout(DEADLINE, self.ws.next())
                .await
                .expect("a frame arrives before the deadline");
            match next {
                Some(Ok(Message::Text(text))) => return Read::Text(text.to_string()),
                Some(Ok(Message::Close(frame))) => return Read::Close(frame),
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                Some(Ok(Message::Binary(_))) => panic!("the server sent a binary frame"),
                Some(Err(_)) | None => return Read::Ended,
            }
        }
    }

    /// The next text frame; anything else fails the test.
    pub async fn text(&mut self) -> String {
        match self.read().await {
            Read::Text(text) => text,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    /// The next text frame as JSON of type `T`.
    pub async fn json<T: DeserializeOwned>(&mut self) -> T {
        let text = self.text().await;
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("unexpected frame {text}: {e}"))
    }

    /// The next native frame.
    pub async fn frame(&mut self) -> ServerFrame {
        self.json().await
    }

    /// The next native frame that matches, skipping others (presence and room notices).
    pub async fn frame_where(&mut self, want: impl Fn(&ServerFrame) -> bool) -> ServerFrame {
        loop {
            let frame = self.frame().await;
            if want(&frame) {
                return frame;
            }
        }
    }

    /// The next chat message, skipping notices.
    pub async fn message(&mut self) -> protocol::ChatMessage {
        match self
            .frame_where(|f| matches!(f, ServerFrame::Message(_)))
            .await
        {
            ServerFrame::Message(m) => m,
            _ => unreachable!("filtered to messages"),
        }
    }

    /// The id in the next `ack`, skipping notices; an error fails the test.
    pub async fn ack_id(&mut self) -> protocol::MsgId {
        match self.reply().await {
            ServerFrame::Ack { id, .. } => id,
            other => panic!("expected an ack, got {other:?}"),
        }
    }

    /// The next `users` frame, skipping others: of a room when `of_room`, else of everyone
    /// online; its names, `total` and `has_more`.
    pub async fn users(&mut self, of_room: bool) -> (Vec<protocol::Nick>, Option<usize>, bool) {
        match self
            .frame_where(
                |f| matches!(f, ServerFrame::Users { room, .. } if room.is_some() == of_room),
            )
            .await
        {
            ServerFrame::Users {
                users,
                total,
                has_more,
                ..
            } => (users, total, has_more),
            _ => unreachable!("filtered to users"),
        }
    }

    /// The next `history` frame, skipping others: its target, messages and `has_more`.
    pub async fn history(&mut self) -> (protocol::Target, Vec<protocol::ChatMessage>, bool) {
        match self
            .frame_where(|f| matches!(f, ServerFrame::History { .. }))
            .await
        {
            ServerFrame::History {
                target,
                messages,
                has_more,
            } => (target, messages, has_more),
            _ => unreachable!("filtered to history"),
        }
    }

    /// Asks for the newest stored messages of `target` and returns them.
    pub async fn latest(&mut self, target: protocol::Target) -> Vec<protocol::ChatMessage> {
        self.send(&ClientFrame::History {
            target,
            before: None,
            after: None,
            limit: None,
        })
        .await;
        self.history().await.1
    }

    /// The next `ack` or `error`, skipping notices.
    pub async fn reply(&mut self) -> ServerFrame {
        self.frame_where(|f| matches!(f, ServerFrame::Ack { .. } | ServerFrame::Error { .. }))
            .await
    }

    /// Reads until the server closes; returns the close frame, if one came.
    pub async fn closed(&mut self) -> Option<CloseFrame> {
        let started = std::time::Instant::now();
        loop {
            // Frames that keep coming (pings, say) must not keep a test waiting forever.
            assert!(
                started.elapsed() < 3 * DEADLINE,
                "the server never closed the connection"
            );
            match self.read().await {
                Read::Text(_) => continue,
                Read::Close(frame) => return frame,
                Read::Ended => return None,
            }
        }
    }
}

/// The lobby, as a message target.
pub fn lobby() -> protocol::Target {
    protocol::Target::Room(protocol::RoomName::lobby())
}

/// The code of an error frame; anything else fails the test.
pub fn error_code(frame: &ServerFrame) -> protocol::ErrorCode {
    match frame {
        ServerFrame::Error { code, .. } => *code,
        other => panic!("expected an error, got {other:?}"),
    }
}

/// The raw response to a plain `GET path` (status line, headers and body).
pub async fn http_get(addr: SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = String::new();
    tokio::time::timeout(DEADLINE, stream.read_to_string(&mut response))
        .await
        .expect("a response before the deadline")
        .expect("read");
    response
}

/// A `send` frame to a room.
pub fn to_room(client_id: &str, room: &str, text: &str) -> ClientFrame {
    ClientFrame::Send {
        client_id: client_id.into(),
        target: protocol::Target::Room(room.parse().expect("room name")),
        text: text.into(),
        reply_to: None,
    }
}

/// A `send` frame to a user.
pub fn to_user(client_id: &str, nick: &str, text: &str) -> ClientFrame {
    ClientFrame::Send {
        client_id: client_id.into(),
        target: protocol::Target::User(nick.parse().expect("nick")),
        text: text.into(),
        reply_to: None,
    }
}

/// A `chat-server` process of this build on a free loopback port, with the rate limit off;
/// killed (SIGKILL) on drop.
#[derive(Debug)]
pub struct Binary {
    /// `None` once handed to `exit`.
    child: Option<std::process::Child>,
    pub addr: SocketAddr,
}

impl Binary {
    /// Starts the server with `args` added to the command line.
    pub async fn start(args: &[&str]) -> Self {
        use std::io::BufRead;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_chat-server"))
            .args(["--port", "0", "--log", "info", "--rate-limit", "0"])
            .args(args)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start chat-server");
        let stderr = child.stderr.take().expect("stderr");
        // The server logs its address once it listens; read lines until then.
        let addr = tokio::task::spawn_blocking(move || {
            let mut lines = std::io::BufReader::new(stderr).lines();
            let mut before = Vec::new();
            let addr = lines
                .by_ref()
                .map_while(Result::ok)
                .find_map(|line| {
                    let addr = line
                        .split("local=")
                        .nth(1)
                        .and_then(|a| a.split_whitespace().next().map(str::to_owned));
                    before.push(line);
                    addr
                })
                .unwrap_or_else(|| {
                    panic!(
                        "the server logs its address; it exited after logging:\n{}",
                        before.join("\n")
                    )
                });
            // Keep draining so the server never blocks on a full pipe.
            std::thread::spawn(move || lines.for_each(drop));
            addr
        });
        let addr = tokio::time::timeout(DEADLINE, addr)
            .await
            .expect("the server starts in time")
            .expect("reader")
            .parse()
            .expect("an address");
        Self {
            child: Some(child),
            addr,
        }
    }

    /// A handle for connecting clients to it.
    pub fn as_test_server(&self) -> TestServer {
        TestServer::at(self.addr)
    }

    /// The server's resident memory now, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("the server's /proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .expect("VmRSS")
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, std::process::Child::id)
    }

    /// Waits for the server to exit by itself, up to the deadline.
    pub async fn exit(mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let waited = tokio::task::spawn_blocking(move || child.wait());
        tokio::time::timeout(DEADLINE, waited)
            .await
            .expect("the server exits in time")
            .expect("wait task")
            .expect("wait for the server")
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        self.kill();
    }
}
