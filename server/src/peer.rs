//! What the hub holds of a connection: its kind, its outbox, and a way to make it close.

use crate::wire::Frame;
use futures_util::task::AtomicWaker;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll};
use tokio::sync::mpsc::error::TrySendError;

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

/// The most frames in one piece of an outbox (see [`Outbox::max_piece`]): what a connection
/// hands to one write at most, under load.
pub const MAX_PIECE: usize = 256;

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
    /// receiving end; once the connection has ended, offers fail as closed. Its shared state
    /// also holds the close signal and the login flag (see the methods below).
    pub outbox: Outbox,
}

impl Peer {
    /// A new connection of `kind` with an outbox of `capacity` frames: the hub's handle, and
    /// the connection's side of the outbox.
    pub fn new(kind: PeerKind, capacity: usize) -> (Self, Inbox) {
        let shared = Arc::new(Shared {
            queue: Mutex::default(),
            waker: AtomicWaker::new(),
            capacity,
            close: OnceLock::new(),
            logged_in: AtomicBool::new(false),
            in_flight: AtomicU32::new(0),
        });
        let peer = Self {
            id: next_conn_id(),
            kind,
            outbox: Outbox {
                shared: shared.clone(),
            },
        };
        (peer, Inbox { shared })
    }

    /// Asks the connection to close with `reason`; the first reason given wins, later calls
    /// change nothing.
    pub fn close(&self, reason: CloseReason) {
        let shared = &self.outbox.shared;
        if shared.close.set(reason).is_ok() {
            // Set before the wake-up, so the woken task sees it.
            shared.waker.wake();
        }
    }

    /// Whether [`close`](Self::close) has been called.
    pub fn is_closed(&self) -> bool {
        self.outbox.shared.close.get().is_some()
    }

    /// The reason the connection was asked to close with, if it was.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.outbox.shared.close.get().copied()
    }

    /// Marks the connection as logged in by the hub.
    pub fn set_logged_in(&self) {
        self.outbox.shared.logged_in.store(true, Ordering::Relaxed);
    }

    /// Whether the hub has logged this connection in.
    pub fn is_logged_in(&self) -> bool {
        self.outbox.shared.logged_in.load(Ordering::Relaxed)
    }
}

mod held;
pub mod late;

pub use held::{hold_wakes, release_held_wakes};

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

/// One connection's state shared between its task and the hub: one allocation for the
/// outbox, the close signal and the login flag.
struct Shared {
    queue: Mutex<Queue>,
    /// The connection's task: woken by the frame that finds the queue empty, and by a close.
    waker: AtomicWaker,
    capacity: usize,
    close: OnceLock<CloseReason>,
    logged_in: AtomicBool,
    /// The peer's requests not yet carried out: waiting for the sequencer, or messages
    /// delivered and waiting to be stored (each is acknowledged once stored). The peer is not
    /// read from while too many are (see [`Inbox::may_read`]).
    in_flight: AtomicU32,
}

impl Shared {
    fn max_piece(&self) -> usize {
        (self.capacity / 4).clamp(1, MAX_PIECE)
    }

    /// Requests in flight at which the peer is no longer read from: half the outbox, so that
    /// their answers (acknowledgements come together, once a transaction commits) never fill
    /// it on their own.
    fn in_flight_limit(&self) -> u32 {
        u32::try_from(self.capacity / 2).unwrap_or(u32::MAX).max(1)
    }
}

#[derive(Default)]
struct Queue {
    /// Pieces of one or more frames each (see [`Frame::frames`]).
    frames: VecDeque<Frame>,
    /// The frames `frames` holds, which the capacity bounds.
    count: usize,
    closed: bool,
    /// Frames were queued with [`Outbox::try_send_later`] into an empty outbox, and no
    /// wake-up is on its way for them yet: the next frame queued wakes the connection, or
    /// the late wake-up does.
    unwoken: bool,
}

impl Queue {
    fn pop_front(&mut self) -> Option<Frame> {
        let frame = self.frames.pop_front()?;
        self.count -= frame.frames();
        self.unwoken = false;
        Some(frame)
    }
}

impl Shared {
    /// Wakes the connection if frames queued to go out later are still waiting for it.
    fn wake_if_unwoken(&self) {
        let mut queue = self.lock();
        if std::mem::take(&mut queue.unwoken) {
            drop(queue);
            self.waker.wake();
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        // The queue holds no invariant a panic could break half-way.
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Outbox {
    /// Queues `frame` (one piece, of [`Frame::frames`] frames) unless that would overfill the
    /// outbox or its connection has ended. Never waits.
    pub fn try_send(&self, frame: Frame) -> Result<(), TrySendError<Frame>> {
        let (mut queue, was_empty) = self.push(frame)?;
        // A queue that held frames already has a wake-up on the way (or a task writing them),
        // unless they were queued to go out later.
        let wake = was_empty || std::mem::take(&mut queue.unwoken);
        drop(queue);
        if !held::queued(&self.shared, wake) && wake {
            self.shared.waker.wake();
        }
        Ok(())
    }

    /// Queues `frame` as [`try_send`](Self::try_send) does, but lets it wait up to
    /// [`late::DELAY`] for the next frame to the same connection, so that both go out in one
    /// write: for acknowledgements, which in a conversation are soon followed by the answer.
    pub fn try_send_later(&self, frame: Frame) -> Result<(), TrySendError<Frame>> {
        let (mut queue, was_empty) = self.push(frame)?;
        if was_empty {
            queue.unwoken = true;
            drop(queue);
            late::wake_later(Arc::clone(&self.shared));
        }
        Ok(())
    }

    /// Adds `frame` to the queue unless that would overfill it or its connection has ended;
    /// gives the queue back locked, with whether it held no frames before.
    fn push(&self, frame: Frame) -> Result<(MutexGuard<'_, Queue>, bool), TrySendError<Frame>> {
        let mut queue = self.shared.lock();
        if queue.closed {
            return Err(TrySendError::Closed(frame));
        }
        if queue.count + frame.frames() > self.shared.capacity {
            return Err(TrySendError::Full(frame));
        }
        let was_empty = queue.frames.is_empty();
        queue.count += frame.frames();
        queue.frames.push_back(frame);
        Ok((queue, was_empty))
    }

    /// The most frames the outbox holds.
    pub fn max_capacity(&self) -> usize {
        self.shared.capacity
    }

    /// The most frames one piece offered should hold: a quarter of the outbox, at most
    /// [`MAX_PIECE`], so that a peer that stops reading is found out within its outbox and a
    /// quarter (its connection moves whole pieces to the socket, a quarter of the outbox at a
    /// time).
    pub fn max_piece(&self) -> usize {
        self.shared.max_piece()
    }

    /// A request of this peer's is on its way to the sequencer: in flight until the
    /// [`InFlight`] the sequencer takes it as with [`taken`](Self::taken) is dropped.
    pub fn request_sent(&self) {
        self.shared.in_flight.fetch_add(1, Ordering::AcqRel);
    }

    /// The request sent last is being carried out; it counts until the guard is dropped (for
    /// a message: once it is stored and acknowledged, or refused).
    pub fn taken(&self) -> InFlight {
        InFlight(self.clone())
    }
}

/// A request of a peer's being carried out, counted in flight (see [`Inbox::may_read`]) until
/// dropped.
#[derive(Debug)]
pub struct InFlight(Outbox);

impl Drop for InFlight {
    fn drop(&mut self) {
        let shared = &self.0.shared;
        let before = shared.in_flight.fetch_sub(1, Ordering::AcqRel);
        // The connection stopped reading at the limit: it may read again.
        if before >= shared.in_flight_limit() {
            shared.waker.wake();
        }
    }
}

impl Inbox {
    /// Moves the queued pieces that fit in `limit` frames to the end of `batch`, oldest first,
    /// and returns how many frames. A piece never holds more than
    /// [`max_piece`](Self::max_piece), so one always fits in that many; with less room, the
    /// next piece may not fit (ready with 0). When none is queued, the task in `cx` is woken
    /// by the next one.
    pub fn poll_recv_many(
        &mut self,
        cx: &mut Context<'_>,
        batch: &mut impl Extend<Frame>,
        limit: usize,
    ) -> Poll<usize> {
        let mut queue = self.shared.lock();
        if queue.frames.is_empty() {
            // Registered under the lock, so a frame queued after this check wakes the task.
            self.shared.waker.register(cx.waker());
            return Poll::Pending;
        }
        let full_room = limit >= self.shared.max_piece();
        let (mut pieces, mut n) = (0, 0);
        for frame in &queue.frames {
            if n + frame.frames() > limit && !(pieces == 0 && full_room) {
                break;
            }
            pieces += 1;
            n += frame.frames();
        }
        queue.count -= n;
        queue.unwoken = false;
        batch.extend(queue.frames.drain(..pieces));
        // Drained, the outbox gives its room back: an idle connection keeps none. Under
        // load it grows again from nothing each round: a few reallocations per round, not
        // one per frame.
        if queue.frames.is_empty() {
            queue.frames = VecDeque::new();
        }
        Poll::Ready(n)
    }

    /// The most frames in one piece of the outbox: see [`Outbox::max_piece`].
    pub fn max_piece(&self) -> usize {
        self.shared.max_piece()
    }

    /// Whether the peer may be read from: not while half an outbox of its requests are in
    /// flight. Check after [`register`](Self::register): the task is woken when they fall
    /// below that.
    pub fn may_read(&self) -> bool {
        self.shared.in_flight.load(Ordering::Acquire) < self.shared.in_flight_limit()
    }

    /// Takes the oldest queued piece, if any.
    pub fn try_recv(&mut self) -> Option<Frame> {
        self.shared.lock().pop_front()
    }

    /// Wakes the task in `cx` when the connection is asked to close (and when a frame
    /// arrives). Register before checking [`Peer::is_closed`].
    pub fn register(&self, cx: &Context<'_>) {
        self.shared.waker.register(cx.waker());
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        let frames = {
            let mut queue = self.shared.lock();
            queue.closed = true;
            queue.count = 0;
            std::mem::take(&mut queue.frames)
        };
        drop(frames); // outside the lock
    }
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let queue = self.shared.lock();
        f.debug_struct("Outbox")
            .field("queued", &queue.count)
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

    fn text(s: &'static str) -> Frame {
        Frame::text(s)
    }

    fn outbox(capacity: usize) -> (Outbox, Inbox) {
        let (peer, inbox) = Peer::new(PeerKind::Native, capacity);
        (peer.outbox, inbox)
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
    fn an_outbox_counts_the_frames_of_its_pieces() {
        let (outbox, mut inbox) = outbox(8);
        assert_eq!(outbox.max_piece(), 2);
        let run = crate::wire::Run::new(["a", "b", "c", "d", "e", "f"].map(text));
        for piece in [0..2, 2..4, 4..6] {
            outbox.try_send(run.slice(piece)).expect("room");
        }
        assert!(
            matches!(outbox.try_send(run.slice(0..3)), Err(TrySendError::Full(_))),
            "three frames more do not fit in eight"
        );
        outbox.try_send(run.slice(0..2)).expect("two do");
        assert!(matches!(
            outbox.try_send(text("x")),
            Err(TrySendError::Full(_))
        ));
        // Whole pieces are taken as long as they fit.
        let mut cx = Context::from_waker(Waker::noop());
        let mut batch = VecDeque::new();
        assert_eq!(inbox.poll_recv_many(&mut cx, &mut batch, 5), Poll::Ready(4));
        assert_eq!(batch, [run.slice(0..2), run.slice(2..4)]);
        assert_eq!(inbox.poll_recv_many(&mut cx, &mut batch, 1), Poll::Ready(0));
        assert_eq!(inbox.poll_recv_many(&mut cx, &mut batch, 2), Poll::Ready(2));
        outbox.try_send(text("x")).expect("room again");
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

    /// A waker that counts how often it is woken.
    fn counting_waker() -> (Arc<std::sync::atomic::AtomicUsize>, Waker) {
        struct Count(Arc<std::sync::atomic::AtomicUsize>);
        impl std::task::Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::Relaxed);
            }
        }
        let count = Arc::default();
        let waker = Waker::from(Arc::new(Count(Arc::clone(&count))));
        (count, waker)
    }

    #[test]
    fn only_the_frame_that_finds_the_outbox_empty_wakes_the_connection() {
        let (count, waker) = counting_waker();
        let mut cx = Context::from_waker(&waker);
        let (outbox, mut inbox) = outbox(8);
        let mut batch = VecDeque::new();
        assert!(inbox.poll_recv_many(&mut cx, &mut batch, 8).is_pending());
        for s in ["a", "b", "c"] {
            outbox.try_send(text(s)).expect("room");
        }
        assert_eq!(count.load(Ordering::Relaxed), 1);
        assert_eq!(inbox.poll_recv_many(&mut cx, &mut batch, 8), Poll::Ready(3));
    }

    #[test]
    fn a_frame_sent_later_wakes_the_connection_after_the_delay_or_with_the_next_frame() {
        // Alone: woken by the late wake-up, not before the delay.
        let (woken, wakes) = std::sync::mpsc::channel();
        struct Signal(Mutex<std::sync::mpsc::Sender<std::time::Instant>>);
        impl std::task::Wake for Signal {
            fn wake(self: Arc<Self>) {
                let _ = self
                    .0
                    .lock()
                    .expect("sender")
                    .send(std::time::Instant::now());
            }
        }
        let waker = Waker::from(Arc::new(Signal(Mutex::new(woken))));
        let mut cx = Context::from_waker(&waker);
        let (first, mut inbox) = outbox(8);
        let mut batch = VecDeque::new();
        assert!(inbox.poll_recv_many(&mut cx, &mut batch, 8).is_pending());
        let sent = std::time::Instant::now();
        first.try_send_later(text("ack")).expect("room");
        let at = wakes
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("woken");
        assert!(at - sent >= late::DELAY, "woken after {:?}", at - sent);
        assert_eq!(inbox.poll_recv_many(&mut cx, &mut batch, 8), Poll::Ready(1));

        // Followed by another frame: woken by that one, at once, for both.
        let (count, waker) = counting_waker();
        let mut cx = Context::from_waker(&waker);
        let (second, mut inbox) = outbox(8);
        assert!(inbox.poll_recv_many(&mut cx, &mut batch, 8).is_pending());
        second.try_send_later(text("ack")).expect("room");
        second.try_send(text("answer")).expect("room");
        assert_eq!(count.load(Ordering::Relaxed), 1);
        assert_eq!(inbox.poll_recv_many(&mut cx, &mut batch, 8), Poll::Ready(2));
        // Written already, it wakes nothing more when its delay is over.
        second.try_send_later(text("ack 2")).expect("room");
        assert_eq!(inbox.poll_recv_many(&mut cx, &mut batch, 8), Poll::Ready(1));
        let before = count.load(Ordering::Relaxed);
        inbox.shared.wake_if_unwoken();
        assert_eq!(count.load(Ordering::Relaxed), before);
    }

    #[test]
    fn held_wake_ups_go_out_once_when_the_round_ends() {
        let (count, waker) = counting_waker();
        let mut cx = Context::from_waker(&waker);
        let (outbox, mut inbox) = outbox(8);
        let mut batch = VecDeque::new();
        assert!(inbox.poll_recv_many(&mut cx, &mut batch, 8).is_pending());
        hold_wakes(|| {
            outbox.try_send(text("a")).expect("room");
            // An inner call leaves the release to the outer one.
            hold_wakes(|| {
                for s in ["b", "c"] {
                    outbox.try_send(text(s)).expect("room");
                }
            });
            assert_eq!(
                count.load(Ordering::Relaxed),
                0,
                "held while the round runs"
            );
            // Before waiting on something slow, a round wakes what it held so far.
            release_held_wakes();
            assert_eq!(count.load(Ordering::Relaxed), 1);
        });
        assert_eq!(count.load(Ordering::Relaxed), 1, "woken once");
        assert_eq!(inbox.poll_recv_many(&mut cx, &mut batch, 8), Poll::Ready(3));
        // Outside a round, the first frame wakes at once.
        assert!(inbox.poll_recv_many(&mut cx, &mut batch, 8).is_pending());
        outbox.try_send(text("d")).expect("room");
        assert_eq!(count.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn a_close_wakes_the_connection_once_and_the_first_reason_wins() {
        let (count, waker) = counting_waker();
        let cx = Context::from_waker(&waker);
        let (peer, inbox) = Peer::new(PeerKind::SeedGroup, 8);
        inbox.register(&cx);
        assert!(!peer.is_closed());
        peer.clone().close(CloseReason::TooSlow);
        assert_eq!(count.load(Ordering::Relaxed), 1);
        inbox.register(&cx);
        peer.close(CloseReason::TooBig);
        assert_eq!(
            count.load(Ordering::Relaxed),
            1,
            "a second close wakes no one"
        );
        assert!(peer.is_closed());
        assert_eq!(peer.close_reason(), Some(CloseReason::TooSlow));
        assert!(!peer.is_logged_in());
        peer.clone().set_logged_in();
        assert!(peer.is_logged_in());
    }
}
