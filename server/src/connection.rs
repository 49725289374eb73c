//! One WebSocket connection: a reader loop that hands frames to its [`Session`], and a writer
//! task that owns the socket's sending half and drains the bounded outbox.
//!
//! The connection ends when the peer closes, when it breaks the protocol beyond repair, when the
//! hub closes it (too slow), or at shutdown. Each way ends with a close frame carrying a reason.

use crate::config::Config;
use crate::hub::offer;
use crate::metrics::Metrics;
use crate::peer::{CloseReason, CloseSignal, Peer, PeerKind, next_conn_id};
use crate::sequencer::{Op, Sequencer};
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Most frames taken from the outbox and written before one flush: under load many frames share
/// a syscall, when idle each frame is flushed at once.
const WRITE_BATCH: usize = 64;

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
    inbox: mpsc::Receiver<Message>,
}

impl Link {
    /// An outbox of `capacity` frames for a peer of `kind`.
    pub fn new(kind: PeerKind, capacity: usize) -> Self {
        let (outbox, inbox) = mpsc::channel(capacity);
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
    let (sink, mut stream) = socket.split();
    // The writer ends when every outbox sender is gone (the session and the hub have let go of
    // this peer) or when the peer is closed; this function awaits it below.
    let writer = tokio::spawn(write_loop(
        sink,
        inbox,
        peer.close.clone(),
        shutdown.clone(),
        config.close_timeout,
    ));
    let limiter = rate_limiter(&config);
    // Refusals in a row; a peer that keeps sending into a full bucket is flooding.
    let mut refused_in_a_row = 0u32;
    let mut heartbeat = tokio::time::interval(config.ping_interval);
    heartbeat.tick().await; // the first tick is immediate
    let mut last_heard = Instant::now();
    let login_deadline = tokio::time::sleep(config.login_timeout);
    tokio::pin!(login_deadline);
    let mut awaiting_login = peer.kind == PeerKind::Native;

    let mut request = None;
    loop {
        // Waiting here while the sequencer's queue is full stops reading from this peer.
        if let Some(op) = request.take()
            && sequencer.submit(&peer, op).await.is_err()
        {
            break;
        }
        let next = tokio::select! {
            _ = peer.close.closed() => break,
            _ = shutdown.cancelled() => break,
            _ = heartbeat.tick() => {
                if last_heard.elapsed() > config.ping_interval * 2 {
                    peer.close.close(CloseReason::Policy("no answer to pings"));
                    break;
                }
                offer(&peer, Message::Ping(Default::default()));
                continue;
            }
            _ = &mut login_deadline, if awaiting_login => {
                if !peer.is_logged_in() {
                    peer.close.close(CloseReason::Policy("no login in time"));
                    break;
                }
                awaiting_login = false;
                continue;
            }
            next = stream.next() => next,
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
        request = match frame {
            Message::Text(text) => session.on_text(text),
            _ => session.on_binary(),
        };
    }
    match peer.close.reason() {
        Some(CloseReason::TooSlow) => metrics.slow_closes.fetch_add(1, Relaxed),
        Some(CloseReason::ShuttingDown) | None => 0,
        Some(_) => metrics.protocol_closes.fetch_add(1, Relaxed),
    };
    // Leaving the hub drops its handle on the outbox; the writer then finishes.
    sequencer.logout(peer.id).await;
    if peer.close.reason().is_some() && !shutdown.is_cancelled() {
        // The server closes: read on (discarding) until the peer answers the close frame the
        // writer sends, so that unread data does not turn the close into a reset that would
        // lose the close frame and its reason.
        let drain = async { while let Some(Ok(_)) = stream.next().await {} };
        tokio::select! {
            _ = tokio::time::timeout(config.close_timeout, drain) => {}
            _ = shutdown.cancelled() => {}
        }
    }
    drop(session);
    drop(peer);
    if let Err(err) = writer.await {
        tracing::error!(error = %err, "connection writer failed");
    }
    metrics.connections_open.fetch_sub(1, Relaxed);
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

async fn write_loop(
    mut sink: SplitSink<WebSocket, Message>,
    mut inbox: mpsc::Receiver<Message>,
    close: Arc<CloseSignal>,
    shutdown: CancellationToken,
    close_timeout: Duration,
) {
    // Grows with the largest batch actually seen, so an idle connection holds next to nothing.
    let mut batch = Vec::new();
    // Registered once for the writer's life rather than once per batch.
    let closed = close.closed();
    let cancelled = shutdown.cancelled();
    tokio::pin!(closed, cancelled);
    let reason = loop {
        let received = tokio::select! {
            biased;
            _ = &mut closed => break close.reason(),
            _ = &mut cancelled => break Some(CloseReason::ShuttingDown),
            n = inbox.recv_many(&mut batch, WRITE_BATCH) => n,
        };
        if received == 0 {
            break None; // the reader is done and the hub has let go
        }
        let write = async {
            for frame in batch.drain(..) {
                sink.feed(frame).await?;
            }
            sink.flush().await
        };
        let written = tokio::select! {
            biased;
            _ = &mut closed => break close.reason(),
            written = write => written,
        };
        if let Err(err) = written {
            tracing::debug!(error = %err, "connection write failed");
            return;
        }
    };
    // Say goodbye: what is still queued, then the close frame, within the deadline. A peer too
    // slow to read gets only the close frame, so that the reason reaches it right after what
    // already sits in the socket buffers.
    let goodbye = async {
        if reason != Some(CloseReason::TooSlow) {
            while let Ok(frame) = inbox.try_recv() {
                sink.feed(frame).await?;
            }
        }
        match reason {
            Some(reason) => {
                let frame = CloseFrame {
                    code: reason.code(),
                    reason: Utf8Bytes::from_static(reason.text()),
                };
                sink.send(Message::Close(Some(frame))).await
            }
            None => sink.close().await,
        }
    };
    match tokio::time::timeout(close_timeout, goodbye).await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => tracing::debug!(error = %err, "close frame not delivered"),
        Err(_) => tracing::debug!("close frame not delivered in time"),
    }
}
