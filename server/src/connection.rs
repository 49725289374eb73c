//! One WebSocket connection, served by one task: it hands what the peer sends to its
//! [`Session`], and writes what the hub queues in the bounded outbox, in batches.
//!
//! The connection ends when the peer closes, when it breaks the protocol beyond repair, when the
//! hub closes it (too slow), or at shutdown. Each way ends with a close frame carrying a reason.
//!
//! An idle connection is mostly this task, so its state is kept small: one timer for both the
//! pings and the login deadline, one registration for the shutdown signal, the close signal
//! read from the outbox's shared state, and a request waiting for room in the sequencer's
//! queue boxed (it is rare and large).

mod socket;

pub use socket::WebSocket;

use crate::config::Config;
use crate::hub::offer;
use crate::metrics::Metrics;
use crate::peer::{CloseReason, Inbox, Peer, PeerKind};
use crate::sequencer::{Op, Sequencer, Stopped};
use crate::wire::Frame;
use futures_util::StreamExt;
use std::future::{Future, poll_fn};
use std::num::NonZeroU32;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll, Waker, ready};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tungstenite::protocol::CloseFrame;
use tungstenite::{Message, Utf8Bytes};

/// Batches written in one turn before the task lets its other work (reading) have a go.
const WRITE_ROUNDS: usize = 8;

/// How a protocol turns what its peer sends into requests for the sequencer. Problems it can
/// see on its own (bad JSON, an empty message) it answers at once through the peer's outbox.
pub trait Session: Send {
    /// The request the connection starts with, if any (a seed page logs in by its URL). It is
    /// submitted before the handshake completes.
    fn on_start(&mut self) -> Option<Op> {
        None
    }
    /// A text frame arrived from `peer`.
    fn on_text(&mut self, peer: &Peer, text: Utf8Bytes) -> Option<Op>;
    /// A binary frame arrived from `peer`.
    fn on_binary(&mut self, peer: &Peer) -> Option<Op>;
    /// `frame` was dropped because `peer` sends faster than its rate limit.
    fn on_rate_limited(&mut self, _peer: &Peer, _frame: &Message) {}
}

/// A new connection's outbox, before its session exists.
#[derive(Debug)]
pub struct Link {
    pub peer: Peer,
    inbox: Inbox,
}

impl Link {
    /// An outbox of `capacity` frames for a peer of `kind`.
    pub fn new(kind: PeerKind, capacity: usize) -> Self {
        let (peer, inbox) = Peer::new(kind, capacity);
        Self { peer, inbox }
    }
}

/// What the server lends every connection, shared by all of them.
#[derive(Debug)]
pub struct Env {
    pub sequencer: Sequencer,
    pub shutdown: CancellationToken,
    pub config: Arc<Config>,
    pub metrics: Arc<Metrics>,
}

/// A connection's state apart from its socket, made before the WebSocket handshake.
pub struct Connection<S> {
    peer: Peer,
    inbox: Inbox,
    session: S,
    env: Arc<Env>,
}

/// A per-connection token bucket.
type RateLimiter = governor::DefaultDirectRateLimiter;

fn rate_limiter(config: &Config) -> Option<RateLimiter> {
    let rate = NonZeroU32::new(config.rate_per_sec)?;
    let burst = NonZeroU32::new(config.rate_burst).unwrap_or(rate);
    Some(governor::RateLimiter::direct(
        governor::Quota::per_second(rate).allow_burst(burst),
    ))
}

impl<S: Session> Connection<S> {
    /// The connection of `link`'s peer, spoken to through `session`.
    pub fn new(link: Link, session: S, env: Arc<Env>) -> Self {
        Self {
            peer: link.peer,
            inbox: link.inbox,
            session,
            env,
        }
    }

    /// The server's settings.
    pub fn config(&self) -> &Config {
        &self.env.config
    }

    /// For a connection whose WebSocket never opened: undoes what its first request did (a
    /// seed page's login).
    pub async fn abandon(&mut self) {
        self.env.sequencer.logout(self.peer.id).await;
    }

    /// Runs the connection on `socket` to its end.
    pub async fn serve<Io>(&mut self, socket: &mut WebSocket<Io>)
    where
        Io: AsyncRead + AsyncWrite + Unpin,
    {
        let Self {
            peer,
            inbox,
            session,
            env,
        } = self;
        let (peer, env) = (&*peer, &*env);
        let metrics = &env.metrics;
        metrics.connections_total.fetch_add(1, Relaxed);
        metrics.connections_open.fetch_add(1, Relaxed);
        let mut conn = Conn { socket, inbox };
        let ended = conn.converse(session, peer, env).await;
        // Boxed: needed once, at the end, and as big as the conversation's state.
        Box::pin(conn.finish(ended, peer, env)).await;
        metrics.connections_open.fetch_sub(1, Relaxed);
    }
}

/// How the conversation with the peer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// With a close to send (or to complete).
    Normally,
    /// The socket failed: there is no one left to say goodbye to.
    WriteFailed,
}

/// What woke the connection.
enum Event {
    Closed,
    ShuttingDown,
    Timer,
    Received(Option<Result<Message, tungstenite::Error>>),
    WriteFailed(tungstenite::Error),
    SequencerStopped,
}

/// A request waiting for room in the sequencer's queue.
type Submitting<'a> = Pin<Box<dyn Future<Output = Result<(), Stopped>> + Send + 'a>>;

/// How often the connection pings its peer. A zero interval would make the timer fire
/// without end.
fn ping_interval(config: &Config) -> Duration {
    config.ping_interval.max(Duration::from_millis(1))
}

/// The socket and the outbox it is fed from.
struct Conn<'a, Io> {
    socket: &'a mut WebSocket<Io>,
    inbox: &'a mut Inbox,
}

impl<Io: AsyncRead + AsyncWrite + Unpin> Conn<'_, Io> {
    /// Reads and writes until the peer or the server ends the connection.
    async fn converse(&mut self, session: &mut impl Session, peer: &Peer, env: &Env) -> Ended {
        let Env {
            sequencer,
            shutdown,
            config,
            metrics,
        } = env;
        // Registered with the task's waker once rather than at every wake-up: polling a
        // registered `Notified` takes its lock, and the shutdown token's is shared by every
        // connection. Between registrations its flag is read instead. The close signal wakes
        // the task through the outbox's waker, registered at every poll.
        let mut cancelled = pin!(shutdown.cancelled());
        let mut registered: Option<Waker> = None;
        // One timer serves the next ping and, until a native peer has logged in, the login
        // deadline: whichever comes first.
        let start = Instant::now();
        let mut next_ping = start + ping_interval(config);
        let mut login_deadline =
            (peer.kind == PeerKind::Native).then(|| start + config.login_timeout);
        let first = |next_ping: Instant, login_deadline: Option<Instant>| {
            login_deadline.map_or(next_ping, |deadline| next_ping.min(deadline))
        };
        let mut timer = pin!(tokio::time::sleep_until(first(next_ping, login_deadline)));
        // Pings sent since the peer was last heard from; it must answer within two intervals.
        let mut unanswered_pings = 0u8;
        let limiter = rate_limiter(config);
        // Refusals in a row; a peer that keeps sending into a full bucket is flooding.
        let mut refused_in_a_row = 0u32;
        // The request being handed to the sequencer. While its queue is full, this peer is not
        // read from (its frames are still written); nor while many of its requests are in
        // flight (see `Inbox::may_read`).
        let mut submitting: Option<Submitting<'_>> = None;

        loop {
            let event = poll_fn(|cx| {
                self.inbox.register(cx);
                if peer.is_closed() {
                    return Poll::Ready(Event::Closed);
                }
                if registered.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    if shutdown.is_cancelled() {
                        return Poll::Ready(Event::ShuttingDown);
                    }
                } else {
                    if cancelled.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Event::ShuttingDown);
                    }
                    registered = Some(cx.waker().clone());
                }
                if let Poll::Ready(Err(err)) = self.poll_write(cx) {
                    return Poll::Ready(Event::WriteFailed(err));
                }
                if let Some(request) = submitting.as_mut() {
                    match request.as_mut().poll(cx) {
                        Poll::Ready(Ok(())) => submitting = None,
                        Poll::Ready(Err(Stopped)) => return Poll::Ready(Event::SequencerStopped),
                        Poll::Pending => {}
                    }
                }
                if timer.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Event::Timer);
                }
                if submitting.is_none()
                    && self.inbox.may_read()
                    && let Poll::Ready(next) = self.socket.poll_next_unpin(cx)
                {
                    return Poll::Ready(Event::Received(next));
                }
                Poll::Pending
            })
            .await;
            let next = match event {
                Event::Closed | Event::ShuttingDown | Event::SequencerStopped => break,
                Event::WriteFailed(err) => {
                    tracing::debug!(error = %err, "connection write failed");
                    return Ended::WriteFailed;
                }
                Event::Timer => {
                    let due = timer.deadline();
                    if login_deadline.is_some_and(|deadline| deadline <= due) {
                        if !peer.is_logged_in() {
                            peer.close(CloseReason::Policy("no login in time"));
                            break;
                        }
                        login_deadline = None;
                    }
                    if next_ping <= due {
                        // While its requests wait (a store failing for a while), the peer is
                        // not read from, so its answers to pings are not seen either.
                        if submitting.is_some() || !self.inbox.may_read() {
                            unanswered_pings = 0;
                        }
                        if unanswered_pings == 2 {
                            peer.close(CloseReason::Policy("no answer to pings"));
                            break;
                        }
                        offer(peer, Frame::ping());
                        unanswered_pings += 1;
                        next_ping = due + ping_interval(config);
                    }
                    timer.as_mut().reset(first(next_ping, login_deadline));
                    continue;
                }
                Event::Received(next) => next,
            };
            unanswered_pings = 0;
            let frame = match next {
                None | Some(Ok(Message::Close(_))) => break,
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                Some(Ok(frame)) => frame,
                Some(Err(err)) => {
                    match close_reason_for(&err) {
                        Some(reason) => {
                            tracing::info!(error = %err, conn = peer.id, "closing a connection that broke the protocol");
                            peer.close(reason);
                        }
                        None => tracing::debug!(error = %err, "connection read failed"),
                    }
                    break;
                }
            };
            metrics.frames_received.fetch_add(1, Relaxed);
            if let Some(limiter) = &limiter
                && limiter.check().is_err()
            {
                metrics.rate_limited.fetch_add(1, Relaxed);
                refused_in_a_row += 1;
                if refused_in_a_row > config.rate_burst.max(1) {
                    tracing::info!(conn = peer.id, "closing a connection that kept flooding");
                    peer.close(CloseReason::Policy("flooding: too many frames"));
                    break;
                }
                session.on_rate_limited(peer, &frame);
                continue;
            }
            refused_in_a_row = 0;
            let request = match frame {
                Message::Text(text) => session.on_text(peer, text),
                _ => session.on_binary(peer),
            };
            if let Some(op) = request {
                submitting = Some(Box::pin(sequencer.submit(peer, op)));
            }
        }
        Ended::Normally
    }

    /// Takes the connection out of the hub and, unless the socket failed, closes it with the
    /// reason it ends for.
    async fn finish(&mut self, ended: Ended, peer: &Peer, env: &Env) {
        match peer.close_reason() {
            Some(CloseReason::TooSlow) => env.metrics.slow_closes.fetch_add(1, Relaxed),
            Some(CloseReason::ShuttingDown) | None => 0,
            Some(_) => env.metrics.protocol_closes.fetch_add(1, Relaxed),
        };
        // Leaving the hub drops its handle on the outbox.
        env.sequencer.logout(peer.id).await;
        if ended == Ended::WriteFailed {
            return;
        }
        let shutdown = &env.shutdown;
        let reason = match peer.close_reason() {
            None if shutdown.is_cancelled() => Some(CloseReason::ShuttingDown),
            reason => reason,
        };
        // The server closes: read on (discarding) until the peer answers the close frame, so
        // that unread data does not turn the close into a reset that would lose the close
        // frame and its reason.
        let answer = peer.close_reason().is_some() && !shutdown.is_cancelled();
        let goodbye = self.say_goodbye(reason, answer);
        tokio::select! {
            _ = tokio::time::timeout(env.config.close_timeout, goodbye) => {}
            _ = shutdown.cancelled(), if answer => {}
        }
    }

    /// Moves queued frames from the outbox into the socket and writes them, a batch at a time.
    /// Ready only when writing failed; otherwise the task is woken when there is more to write.
    fn poll_write(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), tungstenite::Error>> {
        // Frames taken from the outbox at a time: under load, as many as are queued up to this
        // go out in one (vectored) write; when idle, each frame goes out at once. A quarter of
        // the outbox at most, as are the pieces the outbox holds, so that a peer that stops
        // reading holds at most that many frames more than its outbox before it counts as too
        // slow.
        let batch = self.inbox.max_piece();
        for _ in 0..WRITE_ROUNDS {
            let room = batch.saturating_sub(self.socket.queued());
            if room > 0 {
                // Pending leaves the task registered for the next frame.
                let _ = self.inbox.poll_recv_many(cx, self.socket, room);
            }
            if self.socket.queued() == 0 {
                return Poll::Pending;
            }
            // Pending until the socket has room again.
            ready!(self.socket.poll_write(cx))?;
        }
        // More may be queued: come back after the other work.
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Closes the connection: unless the peer was too slow, what is still queued; then the
    /// close frame with `reason` (or the answer to the peer's). With `answer`, reads on
    /// (discarding) until the peer answers the close.
    async fn say_goodbye(&mut self, reason: Option<CloseReason>, answer: bool) {
        let socket = &mut *self.socket;
        if reason == Some(CloseReason::TooSlow) {
            socket.discard_queued();
        } else {
            socket.extend(std::iter::from_fn(|| self.inbox.try_recv()));
        }
        let frame = reason.map(|reason| CloseFrame {
            code: reason.code().into(),
            reason: Utf8Bytes::from_static(reason.text()),
        });
        if let Err(err) = socket.close(frame).await {
            tracing::debug!(error = %err, "close frame not delivered");
            return;
        }
        if answer {
            while let Some(Ok(_)) = socket.next().await {}
        }
    }
}

/// The close to answer a read error with, when the peer broke a rule (rather than vanished).
fn close_reason_for(err: &tungstenite::Error) -> Option<CloseReason> {
    match err {
        tungstenite::Error::Capacity(_) => Some(CloseReason::TooBig),
        tungstenite::Error::Utf8(_) => Some(CloseReason::InvalidText),
        tungstenite::Error::Protocol(_) => Some(CloseReason::Policy("WebSocket protocol error")),
        _ => None,
    }
}
