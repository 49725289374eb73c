//! A WebSocket over an async stream: tungstenite's protocol, driven from the connection's
//! task.
//!
//! tokio-tungstenite's `WebSocketStream` does the same, keeping two reference-counted waker
//! proxies per connection (one for reads, one for writes) so that several tasks may share a
//! socket. A connection here is read and written by its one task, so its waker is kept inline:
//! two allocations less per connection. The `Stream` and `Sink` behaviour is
//! tokio-tungstenite 0.29's.

use futures_util::{Sink, Stream};
use std::io::{self, Read, Write};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tungstenite::protocol::{Role, WebSocketConfig};
use tungstenite::{Error, Message};

/// A server's WebSocket over `Io`, polled from one task.
#[derive(Debug)]
pub struct WebSocket<Io> {
    inner: tungstenite::WebSocket<Blocking<Io>>,
    /// Whether a message may be queued: false once a write would block, until flushed.
    ready: bool,
    /// Whether the close frame is queued and being flushed.
    closing: bool,
    /// Whether the stream has ended (closed, or failed and reported).
    ended: bool,
}

/// `Io` as the blocking `Read` and `Write` tungstenite speaks: "would block" stands for
/// pending, and the task's waker is woken when the stream is ready.
#[derive(Debug)]
struct Blocking<Io> {
    io: Io,
    waker: Option<Waker>,
}

impl<Io: AsyncRead + Unpin> Read for Blocking<Io> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let waker = self.waker.as_ref().unwrap_or(Waker::noop());
        let mut buf = ReadBuf::new(buf);
        match Pin::new(&mut self.io).poll_read(&mut Context::from_waker(waker), &mut buf) {
            Poll::Ready(Ok(())) => Ok(buf.filled().len()),
            Poll::Ready(Err(err)) => Err(err),
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

impl<Io: AsyncWrite + Unpin> Write for Blocking<Io> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let waker = self.waker.as_ref().unwrap_or(Waker::noop());
        match Pin::new(&mut self.io).poll_write(&mut Context::from_waker(waker), buf) {
            Poll::Ready(result) => result,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        let waker = self.waker.as_ref().unwrap_or(Waker::noop());
        match Pin::new(&mut self.io).poll_flush(&mut Context::from_waker(waker)) {
            Poll::Ready(result) => result,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

/// "Would block" as pending.
fn pending_if_blocked<T>(result: Result<T, Error>) -> Poll<Result<T, Error>> {
    match result {
        Err(Error::Io(err)) if err.kind() == io::ErrorKind::WouldBlock => Poll::Pending,
        other => Poll::Ready(other),
    }
}

impl<Io: AsyncRead + AsyncWrite + Unpin> WebSocket<Io> {
    /// The server's side of a WebSocket whose handshake is done, starting with `read_ahead`,
    /// the bytes the client sent right behind its request.
    pub fn new(io: Io, read_ahead: Vec<u8>, config: WebSocketConfig) -> Self {
        let io = Blocking { io, waker: None };
        let inner = if read_ahead.is_empty() {
            tungstenite::WebSocket::from_raw_socket(io, Role::Server, Some(config))
        } else {
            tungstenite::WebSocket::from_partially_read(io, read_ahead, Role::Server, Some(config))
        };
        Self {
            inner,
            ready: true,
            closing: false,
            ended: false,
        }
    }

    /// Runs `f` on the protocol, with the stream waking the task of `cx`.
    fn with<R>(
        &mut self,
        cx: &Context<'_>,
        f: impl FnOnce(&mut tungstenite::WebSocket<Blocking<Io>>) -> R,
    ) -> R {
        let io = self.inner.get_mut();
        if !io.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            io.waker = Some(cx.waker().clone());
        }
        f(&mut self.inner)
    }
}

impl<Io: AsyncRead + AsyncWrite + Unpin> Stream for WebSocket<Io> {
    type Item = Result<Message, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        // After the end or an error, the stream is done.
        if this.ended {
            return Poll::Ready(None);
        }
        match std::task::ready!(this.with(cx, |ws| pending_if_blocked(ws.read()))) {
            Ok(message) => Poll::Ready(Some(Ok(message))),
            Err(err) => {
                this.ended = true;
                match err {
                    Error::AlreadyClosed | Error::ConnectionClosed => Poll::Ready(None),
                    err => Poll::Ready(Some(Err(err))),
                }
            }
        }
    }
}

impl<Io: AsyncRead + AsyncWrite + Unpin> Sink<Message> for WebSocket<Io> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        if this.ready {
            return Poll::Ready(Ok(()));
        }
        // Blocked: flush the blockage away.
        let flushed = std::task::ready!(this.with(cx, |ws| pending_if_blocked(ws.flush())));
        this.ready = true;
        Poll::Ready(flushed)
    }

    fn start_send(self: Pin<&mut Self>, message: Message) -> Result<(), Error> {
        let this = self.get_mut();
        // The waker of the last poll stays registered.
        match this.inner.write(message) {
            Ok(()) => {
                this.ready = true;
                Ok(())
            }
            // Queued, but the stream is full: `poll_ready` flushes before the next one.
            Err(Error::Io(err)) if err.kind() == io::ErrorKind::WouldBlock => {
                this.ready = false;
                Ok(())
            }
            Err(err) => {
                this.ready = true;
                Err(err)
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        let flushed = std::task::ready!(this.with(cx, |ws| pending_if_blocked(ws.flush())));
        this.ready = true;
        match flushed {
            // The connection has just closed: flushing is complete.
            Err(Error::ConnectionClosed) => Poll::Ready(Ok(())),
            other => Poll::Ready(other),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        this.ready = true;
        // Queue the close frame once, then flush until the close handshake is done.
        let closing = this.closing;
        let result = this.with(cx, |ws| if closing { ws.flush() } else { ws.close(None) });
        match result {
            Ok(()) | Err(Error::ConnectionClosed) => Poll::Ready(Ok(())),
            Err(Error::Io(err)) if err.kind() == io::ErrorKind::WouldBlock => {
                this.closing = true;
                Poll::Pending
            }
            Err(err) => Poll::Ready(Err(err)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::{SinkExt, StreamExt};

    #[tokio::test]
    async fn messages_and_the_close_handshake_go_both_ways() {
        let (server_io, client_io) = tokio::io::duplex(64);
        let mut server = WebSocket::new(server_io, Vec::new(), WebSocketConfig::default());
        let mut client =
            tokio_tungstenite::WebSocketStream::from_raw_socket(client_io, Role::Client, None)
                .await;
        // Larger than the duplex buffer, so writes block and resume.
        let long = "x".repeat(1000);
        let (sent, received) = tokio::join!(
            async {
                server.send(Message::text(long.clone())).await?;
                server.send(Message::text("second")).await
            },
            async {
                let first = client.next().await;
                let second = client.next().await;
                (first, second)
            }
        );
        sent.expect("sent");
        assert_eq!(
            received.0.expect("a frame").expect("ok"),
            Message::text(long)
        );
        assert_eq!(
            received.1.expect("a frame").expect("ok"),
            Message::text("second")
        );
        client
            .send(Message::text("hello"))
            .await
            .expect("client sends");
        assert_eq!(
            server.next().await.expect("a frame").expect("ok"),
            Message::text("hello")
        );
        // The server closes; the client answers, and its stream ends once the server is gone.
        let (server_ended, ()) = tokio::join!(
            async move {
                SinkExt::close(&mut server).await.expect("close sent");
                let answer = server.next().await;
                let ended = server.next().await.is_none();
                drop(server);
                matches!(answer, Some(Ok(Message::Close(_)))) && ended
            },
            async { while let Some(Ok(_)) = client.next().await {} }
        );
        assert!(
            server_ended,
            "the server's stream ends with the close handshake"
        );
    }
}
