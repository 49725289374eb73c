//! What the hub holds of a connection: its kind, its outbox, and a way to make it close.

use axum::extract::ws::Message;
use futures_util::task::AtomicWaker;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll};
use tokio::sync::mpsc::error::TrySendError;
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

    /// Whether [`close`](Self::close) has been called.
    pub fn is_closed(&self) -> bool {
        self.token.is_cancelled()
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
    /// Bounded: a full outbox means the peer is too slow. The connection's task owns the
    /// receiving end; once the connection has ended, offers fail as closed.
    pub outbox: Outbox,
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

/// An outbox holding more than this many frames' room gives it back once drained, so that an
/// idle connection keeps no memory from an earlier burst (a frame is 48 bytes).
const KEEP_ROOM: usize = 32;

/// The hub's side of a connection's bounded outbox: frames queued for the peer, offered without
/// ever waiting. Cheap to clone.
///
/// It is a locked queue rather than a channel so that an idle connection holds no buffer, and
/// so that only the frame that finds the queue empty wakes the connection: the frames behind
/// it are written in the same batch without more wake-ups.
#[derive(Clone)]
pub struct Outbox {
    shared: Arc<Shared>,
}

/// The connection's side of its outbox. Dropping it closes the outbox.
pub struct Inbox {
    shared: Arc<Shared>,
}

struct Shared {
    queue: Mutex<Queue>,
    /// The connection's task, registered while the queue is empty.
    waker: AtomicWaker,
    capacity: usize,
}

#[derive(Default)]
struct Queue {
    frames: VecDeque<Message>,
    closed: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // The queue holds no invariant a panic could break half-way.
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A new outbox of `capacity` frames: the hub's side and the connection's.
pub fn outbox(capacity: usize) -> (Outbox, Inbox) {
    let shared = Arc::new(Shared {
        queue: Mutex::default(),
        waker: AtomicWaker::new(),
        capacity,
    });
    (
        Outbox {
            shared: shared.clone(),
        },
        Inbox { shared },
    )
}

impl Outbox {
    /// Queues `frame` unless the outbox is full or its connection has ended. Never waits.
    pub fn try_send(&self, frame: Message) -> Result<(), TrySendError<Message>> {
        let mut queue = self.shared.lock();
        if queue.closed {
            return Err(TrySendError::Closed(frame));
        }
        if queue.frames.len() >= self.shared.capacity {
            return Err(TrySendError::Full(frame));
        }
        let was_empty = queue.frames.is_empty();
        queue.frames.push_back(frame);
        drop(queue);
        // A queue that held frames already has a wake-up on the way (or a task writing them).
        if was_empty {
            self.shared.waker.wake();
        }
        Ok(())
    }

    /// The most frames the outbox holds.
    pub fn max_capacity(&self) -> usize {
        self.shared.capacity
    }
}

impl Inbox {
    /// Moves up to `limit` queued frames to the end of `batch`, oldest first, and returns how
    /// many. When none is queued, the task in `cx` is woken by the next one.
    pub fn poll_recv_many(
        &mut self,
        cx: &mut Context<'_>,
        batch: &mut VecDeque<Message>,
        limit: usize,
    ) -> Poll<usize> {
        let mut queue = self.shared.lock();
        if queue.frames.is_empty() {
            // Registered under the lock, so a frame queued after this check wakes the task.
            self.shared.waker.register(cx.waker());
            return Poll::Pending;
        }
        let n = queue.frames.len().min(limit);
        batch.extend(queue.frames.drain(..n));
        if queue.frames.is_empty() && queue.frames.capacity() > KEEP_ROOM {
            queue.frames = VecDeque::new();
        }
        Poll::Ready(n)
    }

    /// Takes the oldest queued frame, if any.
    pub fn try_recv(&mut self) -> Option<Message> {
        self.shared.lock().frames.pop_front()
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        let frames = {
            let mut queue = self.shared.lock();
            queue.closed = true;
            std::mem::take(&mut queue.frames)
        };
        drop(frames); // outside the lock
    }
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let queue = self.shared.lock();
        f.debug_struct("Outbox")
            .field("queued", &queue.frames.len())
            .field("capacity", &self.shared.capacity)
            .field("closed", &queue.closed)
            .finish()
    }
}

impl std::fmt::Debug for Inbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbox")
            .field("capacity", &self.shared.capacity)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    fn text(s: &'static str) -> Message {
        Message::Text(s.into())
    }

    #[test]
    fn a_full_outbox_refuses_and_an_ended_connection_closes_it() {
        let (outbox, inbox) = outbox(2);
        assert!(outbox.try_send(text("a")).is_ok());
        assert!(outbox.clone().try_send(text("b")).is_ok());
        assert!(matches!(
            outbox.try_send(text("c")),
            Err(TrySendError::Full(_))
        ));
        drop(inbox);
        assert!(matches!(
            outbox.try_send(text("d")),
            Err(TrySendError::Closed(_))
        ));
    }

    #[test]
    fn frames_come_out_in_order_in_batches() {
        let (outbox, mut inbox) = outbox(8);
        let mut cx = Context::from_waker(Waker::noop());
        let mut batch = VecDeque::new();
        assert!(inbox.poll_recv_many(&mut cx, &mut batch, 2).is_pending());
        for s in ["a", "b", "c"] {
            outbox.try_send(text(s)).expect("room");
        }
        assert_eq!(inbox.poll_recv_many(&mut cx, &mut batch, 2), Poll::Ready(2));
        assert_eq!(inbox.try_recv(), Some(text("c")));
        assert_eq!(batch, [text("a"), text("b")]);
        assert!(inbox.poll_recv_many(&mut cx, &mut batch, 2).is_pending());
    }

    #[test]
    fn only_the_frame_that_finds_the_outbox_empty_wakes_the_connection() {
        use std::sync::atomic::AtomicUsize;
        use std::task::Wake;
        struct Count(AtomicUsize);
        impl Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::Relaxed);
            }
        }
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let (outbox, mut inbox) = outbox(8);
        let mut batch = VecDeque::new();
        assert!(inbox.poll_recv_many(&mut cx, &mut batch, 8).is_pending());
        for s in ["a", "b", "c"] {
            outbox.try_send(text(s)).expect("room");
        }
        assert_eq!(count.0.load(Ordering::Relaxed), 1);
        assert_eq!(inbox.poll_recv_many(&mut cx, &mut batch, 8), Poll::Ready(3));
    }
}
