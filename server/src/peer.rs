//! What the hub holds of a connection: its kind, its outbox, and a way to make it close.

use axum::extract::ws::Message;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Which protocol a connection speaks, which decides how frames are encoded for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerKind {
    /// Our own clients: typed JSON frames (`chat.v1`).
    Native,
    /// The seed single-chat page: `{"message","from_user","to_user"}`.
    SeedSingle,
    /// The seed group page: plain text, as a `guest-N` in the lobby.
    SeedGroup,
}

/// Why the server closes a connection, sent as the WebSocket close code and reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The outbox filled up: the peer does not read fast enough.
    TooSlow,
    /// The peer sent a message over the size limit.
    TooBig,
    /// The peer sent a text frame that is not UTF-8.
    InvalidText,
    /// The peer broke the protocol in a way that cannot be answered with an error frame.
    Policy(&'static str),
    /// The server is shutting down.
    ShuttingDown,
}

impl CloseReason {
    /// The WebSocket close code.
    pub fn code(self) -> u16 {
        match self {
            Self::TooSlow | Self::Policy(_) => 1008,
            Self::TooBig => 1009,
            Self::InvalidText => 1007,
            Self::ShuttingDown => 1001,
        }
    }

    /// The reason text, at most 123 bytes as WebSocket requires.
    pub fn text(self) -> &'static str {
        match self {
            Self::TooSlow => "too slow: the connection fell too far behind reading",
            Self::TooBig => "message too big",
            Self::InvalidText => "text frame is not valid UTF-8",
            Self::Policy(why) => why,
            Self::ShuttingDown => "server shutting down",
        }
    }
}

/// Asks a connection to close with a reason. The first reason given wins.
#[derive(Debug, Default)]
pub struct CloseSignal {
    token: CancellationToken,
    reason: OnceLock<CloseReason>,
}

impl CloseSignal {
    /// Asks the connection to close; later calls change nothing.
    pub fn close(&self, reason: CloseReason) {
        let _ = self.reason.set(reason);
        self.token.cancel();
    }

    /// Resolves once [`close`](Self::close) has been called.
    pub async fn closed(&self) {
        self.token.cancelled().await;
    }

    /// The reason given, if any.
    pub fn reason(&self) -> Option<CloseReason> {
        self.reason.get().copied()
    }
}

/// A connection's number, unique for the life of the process.
pub type ConnId = u64;

/// The next connection number.
pub fn next_conn_id() -> ConnId {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The hub's handle on one connection.
#[derive(Debug, Clone)]
pub struct Peer {
    pub id: ConnId,
    pub kind: PeerKind,
    /// Bounded: a full outbox means the peer is too slow. The connection's writer task owns
    /// the receiving end and ends when every sender is dropped or the peer is closed.
    pub outbox: mpsc::Sender<Message>,
    pub close: Arc<CloseSignal>,
    /// Set by the hub once the connection is logged in.
    pub logged_in: Arc<AtomicBool>,
}

impl Peer {
    /// Whether the hub has logged this connection in.
    pub fn is_logged_in(&self) -> bool {
        self.logged_in.load(Ordering::Relaxed)
    }
}
