//! One WebSocket connection, served by one task: it hands what the peer sends to its
//! [`Session`], and writes what the hub queues in the bounded outbox, in batches.
//!
//! The connection ends when the peer closes, when it breaks the protocol beyond repair, when the
//! hub closes it (too slow), or at shutdown. Each way ends with a close frame carrying a reason.

use crate::config::Config;
use crate::hub::offer;
use crate::metrics::Metrics;
use crate::peer::{CloseReason, CloseSignal, Inbox, Peer, PeerKind, next_conn_id, outbox};
use crate::sequencer::{Op, Sequencer, Stopped};
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::{SinkExt, StreamExt};
use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::num::NonZeroU32;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll, Waker, ready};
use std::time::Instant;
use tokio_util::sync::CancellationToken;

/// Frames taken from the outbox at a time. Under load the socket is flushed once the outbox is
/// empty (tungstenite also writes whenever its buffer fills), so many frames share a syscall;
/// when idle each frame is flushed at once.
const WRITE_BATCH: usize = 64;

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
    /// A text frame arrived.
    fn on_text(&mut self, text: Utf8Bytes) -> Option<Op>;
    /// A binary frame arrived.
    fn on_binary(&mut self) -> Option<Op>;
    /// `frame` was dropped because the peer sends faster than its rate limit.
    fn on_rate_limited(&mut self, _frame: &Message) {}
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
        let (outbox, inbox) = outbox(capacity);
        Self {
            peer: Peer {
                id: next_conn_id(),
                kind,
                outbox,
                close: Arc::new(CloseSignal::default()),
                logged_in: Arc::default(),
            },
            inbox,
        }
    }
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

/// Runs one connection to its end.
pub async fn serve(
    socket: WebSocket,
    link: Link,
    mut session: impl Session,
    sequencer: Sequencer,
    shutdown: CancellationToken,
    config: Arc<Config>,
    metrics: Arc<Metrics>,
) {
    let Link { peer, inbox } = link;
    metrics.connections_total.fetch_add(1, Relaxed);
    metrics.connections_open.fetch_add(1, Relaxed);
    let mut conn = Conn {
        socket,
        inbox,
        batch: VecDeque::new(),
        unflushed: false,
    };
    let ended = {
        let env = Env {
            peer: &peer,
            sequencer: &sequencer,
            shutdown: &shutdown,
            config: &config,
            metrics: &metrics,
        };
        conn.converse(&mut session, env).await
    };
    match peer.close.reason() {
        Some(CloseReason::TooSlow) => metrics.slow_closes.fetch_add(1, Relaxed),
        Some(CloseReason::ShuttingDown) | None => 0,
        Some(_) => metrics.protocol_closes.fetch_add(1, Relaxed),
    };
    // Leaving the hub drops its handle on the outbox.
    sequencer.logout(peer.id).await;
    drop(session);
    if ended == Ended::Normally {
        let reason = match peer.close.reason() {
            None if shutdown.is_cancelled() => Some(CloseReason::ShuttingDown),
            reason => reason,
        };
        // The server closes: read on (discarding) until the peer answers the close frame, so
        // that unread data does not turn the close into a reset that would lose the close
        // frame and its reason.
        let answer = peer.close.reason().is_some() && !shutdown.is_cancelled();
        let goodbye = conn.say_goodbye(reason, answer);
        tokio::select! {
            _ = tokio::time::timeout(config.close_timeout, goodbye) => {}
            _ = shutdown.cancelled(), if answer => {}
        }
    }
    metrics.connections_open.fetch_sub(1, Relaxed);
}

/// How the conversation with the peer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// With a close to send (or to complete).
    Normally,
    /// The socket failed: there is no one left to say goodbye to.
    WriteFailed,
}

/// What one connection borrows from the server.
#[derive(Clone, Copy)]
struct Env<'a> {
    peer: &'a Peer,
    sequencer: &'a Sequencer,
    shutdown: &'a CancellationToken,
    config: &'a Config,
    metrics: &'a Metrics,
}

/// What woke the connection.
enum Event {
    Closed,
    ShuttingDown,
    Heartbeat,
    LoginDeadline,
    Received(Option<Result<Message, axum::Error>>),
    WriteFailed(axum::Error),
    SequencerStopped,
}

/// The socket and the outbox it is fed from.
struct Conn {
    socket: WebSocket,
    inbox: Inbox,
    /// Frames taken from the outbox, not yet handed to the socket.
    batch: VecDeque<Message>,
    /// Frames handed to the socket since its last flush.
    unflushed: bool,
}

impl Conn {
    /// Reads and writes until the peer or the server ends the connection.
    async fn converse(&mut self, session: &mut impl Session, env: Env<'_>) -> Ended {
        let Env {
            peer,
            sequencer,
            shutdown,
            config,
            metrics,
        } = env;
        // Registered with the task's waker once rather than at every wake-up: polling a
        // registered `Notified` takes its lock, and the shutdown token's is shared by every
        // connection. Between registrations their flags are read instead.
        let mut closed = pin!(peer.close.closed());
        let mut cancelled = pin!(shutdown.cancelled());
        let mut registered: Option<Waker> = None;
        let mut login_deadline = pin!(tokio::time::sleep(config.login_timeout));
        let mut awaiting_login = peer.kind == PeerKind::Native;
        let mut heartbeat = tokio::time::interval_at(
            tokio::time::Instant::now() + config.ping_interval,
            config.ping_interval,
        );
        let mut last_heard = Instant::now();
        let limiter = rate_limiter(config);
        // Refusals in a row; a peer that keeps sending into a full bucket is flooding.
        let mut refused_in_a_row = 0u32;
        // The request being handed to the sequencer. While its queue is full, this peer is not
        // read from (its frames are still written).
        let submit = |op: Op| sequencer.submit(peer, op);
        let mut submitting = pin!(None::<Op>.map(submit));

        loop {
            let event = poll_fn(|cx| {
                if registered.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    if peer.close.is_closed() {
                        return Poll::Ready(Event::Closed);
                    }
                    if shutdown.is_cancelled() {
                        return Poll::Ready(Event::ShuttingDown);
                    }
                } else {
                    if closed.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Event::Closed);
                    }
                    if cancelled.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Event::ShuttingDown);
                    }
                    registered = Some(cx.waker().clone());
                }
                if let Poll::Ready(Err(err)) = self.poll_write(cx) {
                    return Poll::Ready(Event::WriteFailed(err));
                }
                if let Some(request) = submitting.as_mut().as_pin_mut() {
                    match request.poll(cx) {
                        Poll::Ready(Ok(())) => submitting.set(None),
                        Poll::Ready(Err(Stopped)) => return Poll::Ready(Event::SequencerStopped),
                        Poll::Pending => {}
                    }
                }
                if heartbeat.poll_tick(cx).is_ready() {
                    return Poll::Ready(Event::Heartbeat);
                }
                if awaiting_login && login_deadline.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Event::LoginDeadline);
                }
                if submitting.is_none()
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
                Event::Heartbeat => {
                    if last_heard.elapsed() > config.ping_interval * 2 {
                        peer.close.close(CloseReason::Policy("no answer to pings"));
                        break;
                    }
                    offer(peer, Message::Ping(Default::default()));
                    continue;
                }
                Event::LoginDeadline => {
                    if !peer.is_logged_in() {
                        peer.close.close(CloseReason::Policy("no login in time"));
                        break;
                    }
                    awaiting_login = false;
                    continue;
                }
                Event::Received(next) => next,
            };
            last_heard = Instant::now();
            let frame = match next {
                None | Some(Ok(Message::Close(_))) => break,
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(frame)) => frame,
                Some(Err(err)) => {
                    match close_reason_for(&err) {
                        Some(reason) => {
                            tracing::info!(error = %err, conn = peer.id, "closing a connection that broke the protocol");
                            peer.close.close(reason);
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
                    peer.close
                        .close(CloseReason::Policy("flooding: too many frames"));
                    break;
                }
                session.on_rate_limited(&frame);
                continue;
            }
            refused_in_a_row = 0;
            let request = match frame {
                Message::Text(text) => session.on_text(text),
                _ => session.on_binary(),
            };
            if let Some(op) = request {
                submitting.set(Some(submit(op)));
            }
        }
        Ended::Normally
    }

    /// Moves queued frames into the socket and flushes them once the outbox is empty. Ready
    /// only when writing failed; otherwise the task is woken when there is more to write.
    fn poll_write(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), axum::Error>> {
        let mut rounds = 0;
        loop {
            while !self.batch.is_empty() {
                ready!(self.socket.poll_ready_unpin(cx))?;
                let frame = self.batch.pop_front().expect("the batch is not empty");
                self.socket.start_send_unpin(frame)?;
                self.unflushed = true;
            }
            if rounds == WRITE_ROUNDS {
                // More may be queued: come back after the other work.
                cx.waker().wake_by_ref();
                break;
            }
            rounds += 1;
            if self
                .inbox
                .poll_recv_many(cx, &mut self.batch, WRITE_BATCH)
                .is_pending()
            {
                break;
            }
        }
        if self.unflushed {
            ready!(self.socket.poll_flush_unpin(cx))?;
            self.unflushed = false;
        }
        // An idle connection keeps no room from a burst.
        if self.batch.capacity() > 8 {
            self.batch = VecDeque::new();
        }
        Poll::Pending
    }

    /// Closes the connection: unless the peer was too slow, what is still queued; then the
    /// close frame with `reason` (or the answer to the peer's). With `answer`, reads on
    /// (discarding) until the peer answers the close.
    async fn say_goodbye(&mut self, reason: Option<CloseReason>, answer: bool) {
        let socket = &mut self.socket;
        let written = async {
            if reason != Some(CloseReason::TooSlow) {
                for frame in self.batch.drain(..) {
                    socket.feed(frame).await?;
                }
                while let Some(frame) = self.inbox.try_recv() {
                    socket.feed(frame).await?;
                }
            }
            match reason {
                Some(reason) => {
                    let frame = CloseFrame {
                        code: reason.code(),
                        reason: Utf8Bytes::from_static(reason.text()),
                    };
                    socket.send(Message::Close(Some(frame))).await
                }
                None => socket.close().await,
            }
        }
        .await;
        if let Err(err) = written {
            tracing::debug!(error = %err, "close frame not delivered");
            return;
        }
        if answer {
            while let Some(Ok(_)) = socket.next().await {}
        }
    }
}

/// The close to answer a read error with, when the peer broke a rule (rather than vanished).
fn close_reason_for(err: &axum::Error) -> Option<CloseReason> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        match e.downcast_ref::<tungstenite::Error>() {
            Some(tungstenite::Error::Capacity(_)) => return Some(CloseReason::TooBig),
            Some(tungstenite::Error::Utf8(_)) => return Some(CloseReason::InvalidText),
            Some(tungstenite::Error::Protocol(_)) => {
                return Some(CloseReason::Policy("WebSocket protocol error"));
            }
            _ => source = e.source(),
        }
    }
    None
}
