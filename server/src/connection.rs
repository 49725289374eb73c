//! One WebSocket connection: a reader loop that hands frames to its [`Session`], and a writer
//! task that owns the socket's sending half and drains the bounded outbox.
//!
//! The connection ends when the peer closes, when it breaks the protocol beyond repair, when the
//! hub closes it (too slow), or at shutdown. Each way ends with a close frame carrying a reason.

use crate::peer::{CloseReason, CloseSignal, Peer, PeerKind, next_conn_id};
use crate::sequencer::{Op, Sequencer};
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Most frames taken from the outbox and written before one flush: under load many frames share
/// a syscall, when idle each frame is flushed at once.
const WRITE_BATCH: usize = 64;

/// How a protocol turns what its peer sends into requests for the sequencer. Problems it can
/// see on its own (bad JSON, an empty message) it answers at once through the peer's outbox.
pub trait Session: Send {
    /// The request the connection starts with, if any (a seed page logs in by its URL).
    fn on_start(&mut self) -> Option<Op> {
        None
    }
    /// A text frame arrived.
    fn on_text(&mut self, text: Utf8Bytes) -> Option<Op>;
    /// A binary frame arrived.
    fn on_binary(&mut self) -> Option<Op>;
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
            },
            inbox,
        }
    }
}

/// Runs one connection to its end.
pub async fn serve(
    socket: WebSocket,
    link: Link,
    mut session: impl Session,
    sequencer: Sequencer,
    shutdown: CancellationToken,
    close_timeout: Duration,
) {
    let Link { peer, inbox } = link;
    let (sink, mut stream) = socket.split();
    // The writer ends when every outbox sender is gone (the session and the hub have let go of
    // this peer) or when the peer is closed; this function awaits it below.
    let writer = tokio::spawn(write_loop(
        sink,
        inbox,
        peer.close.clone(),
        shutdown.clone(),
        close_timeout,
    ));
    let mut request = session.on_start();
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
            next = stream.next() => next,
        };
        match next {
            None | Some(Ok(Message::Close(_))) => break,
            Some(Ok(Message::Text(text))) => request = session.on_text(text),
            Some(Ok(Message::Binary(_))) => request = session.on_binary(),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            Some(Err(err)) => {
                if is_too_big(&err) {
                    tracing::info!(error = %err, "closing a connection that sent an oversized message");
                    peer.close.close(CloseReason::TooBig);
                } else {
                    tracing::debug!(error = %err, "connection read failed");
                }
                break;
            }
        }
    }
    // Leaving the hub drops its handle on the outbox; the writer then finishes.
    let _ = sequencer.submit(&peer, Op::Logout).await;
    drop(session);
    drop(peer);
    if let Err(err) = writer.await {
        tracing::error!(error = %err, "connection writer failed");
    }
}

fn is_too_big(err: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if let Some(tungstenite::Error::Capacity(_)) = e.downcast_ref::<tungstenite::Error>() {
            return true;
        }
        source = e.source();
    }
    false
}

async fn write_loop(
    mut sink: SplitSink<WebSocket, Message>,
    mut inbox: mpsc::Receiver<Message>,
    close: Arc<CloseSignal>,
    shutdown: CancellationToken,
    close_timeout: Duration,
) {
    let mut batch = Vec::with_capacity(WRITE_BATCH);
    let reason = loop {
        let received = tokio::select! {
            biased;
            _ = close.closed() => break close.reason(),
            _ = shutdown.cancelled() => break Some(CloseReason::ShuttingDown),
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
            _ = close.closed() => break close.reason(),
            written = write => written,
        };
        if let Err(err) = written {
            tracing::debug!(error = %err, "connection write failed");
            return;
        }
    };
    // Say goodbye: what is still queued, then the close frame, within the deadline.
    let goodbye = async {
        while let Ok(frame) = inbox.try_recv() {
            sink.feed(frame).await?;
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
