//! A WebSocket over an async stream: tungstenite reads and answers (pongs, the close
//! handshake), the server's own frames are written as they come, pre-encoded.
//!
//! tokio-tungstenite's `WebSocketStream` drives tungstenite the same way for reading, keeping
//! two reference-counted waker proxies per connection (one for reads, one for writes) so that
//! several tasks may share a socket. A connection here is read and written by its one task, so
//! its waker is kept inline. Its outgoing frames do not go through tungstenite, which would
//! copy each into a write buffer that keeps its largest size for good: they are already
//! complete frames (see [`Frame`]), shared with every other recipient, and are handed to the
//! kernel as they are, many in one vectored write.
//!
//! tungstenite still writes the frames it makes itself (pongs, the close frame). The two kinds
//! never interleave inside a frame: one whose first bytes went out is always finished before
//! any other is started.

use crate::wire::Frame;
use futures_util::Stream;
use std::collections::VecDeque;
use std::io::{self, IoSlice, Read, Write};
use std::pin::Pin;
use std::task::{Context, Poll, Waker, ready};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tungstenite::{Error, Message};

/// The most pieces (of one or more frames each) handed to one write.
const MAX_SLICES: usize = 256;

/// The least room one read of the socket gets: see `Blocking`'s `Read`.
const READ_CHUNK: usize = 4096;

/// A server's WebSocket over `Io`, polled from one task.
#[derive(Debug)]
pub struct WebSocket<Io> {
    inner: tungstenite::WebSocket<Blocking<Io>>,
}

/// `Io` as the blocking `Read` and `Write` tungstenite speaks ("would block" stands for
/// pending, and the task's waker is woken when the stream is ready), and the server's own
/// frames queued for writing beside tungstenite's.
#[derive(Debug)]
struct Blocking<Io> {
    io: Io,
    waker: Option<Waker>,
    /// The server's frames not yet written, oldest first.
    queued: VecDeque<Frame>,
    /// Bytes of the first queued frame already written.
    written: usize,
    /// Most bytes handed to one write, unless one frame is longer.
    write_bytes: u32,
    /// Whether tungstenite's last write stopped inside what it had to write: its frame must be
    /// finished before one of ours is started.
    theirs_unfinished: bool,
    /// Whether reading has ended (closed, or failed and reported). Kept here, beside the
    /// other flag, where it takes no room of its own.
    ended: bool,
    /// Bytes read from the socket that did not fit into tungstenite's buffer: the start of
    /// what it reads next.
    carried: Vec<u8>,
}

impl<Io: AsyncWrite + Unpin> Blocking<Io> {
    /// Writes the queued frames; ready once none is left, or, with `first_only`, once none is
    /// left half-written.
    fn poll_write_queued(
        &mut self,
        cx: &mut Context<'_>,
        first_only: bool,
    ) -> Poll<io::Result<()>> {
        while let Some(first) = self.queued.front() {
            if first_only && self.written == 0 {
                break;
            }
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            slices[0] = IoSlice::new(&first.as_bytes()[self.written..]);
            let mut count = 1;
            let mut bytes = slices[0].len();
            if !first_only {
                for frame in self.queued.iter().skip(1).take(MAX_SLICES - 1) {
                    if bytes + frame.as_bytes().len() > self.write_bytes as usize {
                        break;
                    }
                    slices[count] = IoSlice::new(frame.as_bytes());
                    bytes += frame.as_bytes().len();
                    count += 1;
                }
            }
            let mut n = ready!(Pin::new(&mut self.io).poll_write_vectored(cx, &slices[..count]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            // Drop what went out whole, and note how far the next one got.
            while let Some(frame) = self.queued.front() {
                let left = frame.as_bytes().len() - self.written;
                if n < left {
                    self.written += n;
                    break;
                }
                n -= left;
                self.written = 0;
                self.queued.pop_front();
            }
        }
        // An idle connection keeps no room (under load, this is once per batch).
        if self.queued.is_empty() {
            self.queued = VecDeque::new();
        }
        Poll::Ready(Ok(()))
    }

    /// Runs `f` with the task's waker, "would block" standing for pending.
    fn poll<R>(
        &mut self,
        f: impl FnOnce(&mut Self, &mut Context<'_>) -> Poll<io::Result<R>>,
    ) -> io::Result<R> {
        // Lent to `f` rather than cloned, and put back.
        let waker = self.waker.take();
        let mut cx = Context::from_waker(waker.as_ref().unwrap_or(Waker::noop()));
        let result = f(self, &mut cx);
        self.waker = waker;
        match result {
            Poll::Ready(result) => result,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

/// tungstenite's reads. tungstenite reads into what is left of its buffer, which may be less
/// than a frame (it makes room only for a frame's header, or for a payload whose header it
/// has): the rest of the frame then took a second read, about one read in four of direct chat
/// messages with the default 512-byte buffer. So a read of less than [`READ_CHUNK`] goes
/// through a larger buffer the thread keeps, and what does not fit is carried over to the next.
impl<Io: AsyncRead + AsyncWrite + Unpin> Read for Blocking<Io> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.carried.is_empty() {
            let n = buf.len().min(self.carried.len());
            buf[..n].copy_from_slice(&self.carried[..n]);
            self.carried.drain(..n);
            if self.carried.is_empty() {
                // An idle connection keeps no room.
                self.carried = Vec::new();
            }
            return Ok(n);
        }
        if buf.len() >= READ_CHUNK {
            return self.poll(|this, cx| read_into(&mut this.io, cx, buf));
        }
        thread_local! {
            static CHUNK: std::cell::RefCell<Box<[u8]>> =
                std::cell::RefCell::new(vec![0; READ_CHUNK].into_boxed_slice());
        }
        CHUNK.with_borrow_mut(|chunk| {
            let n = self.poll(|this, cx| read_into(&mut this.io, cx, chunk))?;
            let fits = n.min(buf.len());
            buf[..fits].copy_from_slice(&chunk[..fits]);
            self.carried.extend_from_slice(&chunk[fits..n]);
            Ok(fits)
        })
    }
}

/// Reads what `io` has into `buf`.
fn read_into<Io: AsyncRead + Unpin>(
    io: &mut Io,
    cx: &mut Context<'_>,
    buf: &mut [u8],
) -> Poll<io::Result<usize>> {
    let mut buf = ReadBuf::new(buf);
    ready!(Pin::new(io).poll_read(cx, &mut buf))?;
    Poll::Ready(Ok(buf.filled().len()))
}

/// tungstenite's writes.
impl<Io: AsyncWrite + Unpin> Write for Blocking<Io> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // One of ours half-written goes first.
        self.poll(|this, cx| this.poll_write_queued(cx, true))?;
        let n = self.poll(|this, cx| Pin::new(&mut this.io).poll_write(cx, buf))?;
        // tungstenite writes all it holds each time, so a short write leaves a frame unfinished.
        self.theirs_unfinished = n < buf.len();
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.poll(|this, cx| Pin::new(&mut this.io).poll_flush(cx))
    }
}

/// tungstenite's result of writing as a poll: "would block" is pending, and "closed" (the
/// close handshake wrote its last frame) is done.
fn written(result: Result<(), Error>) -> Poll<Result<(), Error>> {
    match result {
        Ok(()) | Err(Error::ConnectionClosed) => Poll::Ready(Ok(())),
        Err(Error::Io(err)) if err.kind() == io::ErrorKind::WouldBlock => Poll::Pending,
        Err(err) => Poll::Ready(Err(err)),
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
    /// the bytes the client sent right behind its request. At most `write_bytes` of queued
    /// frames go to one write (at least one frame).
    pub fn new(io: Io, read_ahead: Vec<u8>, config: WebSocketConfig, write_bytes: usize) -> Self {
        let io = Blocking {
            io,
            waker: None,
            queued: VecDeque::new(),
            written: 0,
            write_bytes: u32::try_from(write_bytes).unwrap_or(u32::MAX),
            theirs_unfinished: false,
            ended: false,
            carried: Vec::new(),
        };
        // tungstenite writes only pongs and the close frame: at once.
        let config = config.write_buffer_size(0);
        let inner = if read_ahead.is_empty() {
            tungstenite::WebSocket::from_raw_socket(io, Role::Server, Some(config))
        } else {
            tungstenite::WebSocket::from_partially_read(io, read_ahead, Role::Server, Some(config))
        };
        Self { inner }
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

    /// Frames queued and not yet written whole.
    pub fn queued(&self) -> usize {
        self.inner.get_ref().queued.iter().map(Frame::frames).sum()
    }

    /// Drops the queued frames not yet started (a frame under way is finished).
    pub fn discard_queued(&mut self) {
        let io = self.inner.get_mut();
        let keep = usize::from(io.written > 0);
        io.queued.truncate(keep);
        if let Some(first) = io.queued.front_mut() {
            *first = first.started_before(io.written);
        }
    }

    /// Writes the queued frames and flushes them: ready when all are out, or writing failed.
    pub fn poll_write(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if !self.inner.can_write() {
            // A close frame has gone (or is going) out: nothing may follow it.
            self.discard_queued();
        }
        if self.inner.get_ref().theirs_unfinished {
            // Finish tungstenite's frame first.
            ready!(self.poll_flush_theirs(cx))?;
        }
        let io = self.inner.get_mut();
        ready!(io.poll_write_queued(cx, false))?;
        ready!(Pin::new(&mut io.io).poll_flush(cx))?;
        Poll::Ready(Ok(()))
    }

    /// Writes what is queued, then sends `frame` (or answers the peer's close) and flushes
    /// until the close handshake allows no more writing.
    pub async fn close(&mut self, frame: Option<CloseFrame>) -> Result<(), Error> {
        std::future::poll_fn(|cx| self.poll_write(cx)).await?;
        if self.inner.can_write() {
            // A pong tungstenite still owes goes out before the close frame, not behind it.
            std::future::poll_fn(|cx| self.poll_flush_theirs(cx)).await?;
        }
        // Queue the close frame once, then flush until the close handshake is done.
        let mut frame = Some(frame);
        std::future::poll_fn(|cx| match frame.take() {
            Some(frame) => self.with(cx, |ws| written(ws.close(frame))),
            None => self.poll_flush_theirs(cx),
        })
        .await
    }

    /// Writes out what tungstenite holds (a pong, the close frame).
    fn poll_flush_theirs(&mut self, cx: &Context<'_>) -> Poll<Result<(), Error>> {
        self.with(cx, |ws| written(ws.flush()))
    }
}

/// Queues frames for writing, after those already queued.
impl<Io> Extend<Frame> for WebSocket<Io> {
    fn extend<T: IntoIterator<Item = Frame>>(&mut self, frames: T) {
        self.inner.get_mut().queued.extend(frames);
    }
}

impl<Io: AsyncRead + AsyncWrite + Unpin> Stream for WebSocket<Io> {
    type Item = Result<Message, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        // After the end or an error, the stream is done.
        if this.inner.get_ref().ended {
            return Poll::Ready(None);
        }
        match ready!(this.with(cx, |ws| pending_if_blocked(ws.read()))) {
            Ok(message) => Poll::Ready(Some(Ok(message))),
            Err(err) => {
                this.inner.get_mut().ended = true;
                match err {
                    Error::AlreadyClosed | Error::ConnectionClosed => Poll::Ready(None),
                    err => Poll::Ready(Some(Err(err))),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::{SinkExt, StreamExt};
    use std::future::poll_fn;

    #[tokio::test]
    async fn frames_and_the_close_handshake_go_both_ways() {
        let (server_io, client_io) = tokio::io::duplex(64);
        let config = WebSocketConfig::default();
        let mut server = WebSocket::new(server_io, Vec::new(), config, 16 * 1024);
        let mut client =
            tokio_tungstenite::WebSocketStream::from_raw_socket(client_io, Role::Client, None)
                .await;
        // Larger than the duplex buffer, so writes block and resume.
        let long = "x".repeat(1000);
        server.extend([Frame::text(&long), Frame::text("second")]);
        assert_eq!(server.queued(), 2);
        let (sent, received) = tokio::join!(poll_fn(|cx| server.poll_write(cx)), async {
            let first = client.next().await;
            let second = client.next().await;
            (first, second)
        });
        sent.expect("sent");
        assert_eq!(server.queued(), 0);
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
                server.close(None).await.expect("close sent");
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

    /// `Io` counting the reads that return bytes.
    struct CountingReads<Io> {
        io: Io,
        reads: usize,
    }

    impl<Io: AsyncRead + Unpin> AsyncRead for CountingReads<Io> {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let before = buf.filled().len();
            let polled = Pin::new(&mut self.io).poll_read(cx, buf);
            if buf.filled().len() > before {
                self.reads += 1;
            }
            polled
        }
    }

    impl<Io: AsyncWrite + Unpin> AsyncWrite for CountingReads<Io> {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            Pin::new(&mut self.io).poll_write(cx, buf)
        }

        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.io).poll_flush(cx)
        }

        fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.io).poll_shutdown(cx)
        }
    }

    #[tokio::test]
    async fn each_frame_that_arrives_alone_takes_one_read_whatever_room_the_buffer_has_left() {
        let (server_io, client_io) = tokio::io::duplex(1 << 20);
        let counting = CountingReads {
            io: server_io,
            reads: 0,
        };
        // The server's default read buffer.
        let config = WebSocketConfig::default().read_buffer_size(512);
        let mut server = WebSocket::new(counting, Vec::new(), config, 1024);
        let mut client =
            tokio_tungstenite::WebSocketStream::from_raw_socket(client_io, Role::Client, None)
                .await;
        // Sizes that leave every amount of room in a 512-byte buffer, and one longer than a
        // read of the socket.
        let mut texts: Vec<String> = (0..60).map(|i| "m".repeat(100 + 7 * i)).collect();
        texts.push("l".repeat(3 * READ_CHUNK));
        texts.push("after the long one".to_owned());
        for text in &texts {
            client
                .send(Message::text(text.clone()))
                .await
                .expect("sent");
            let read = server.next().await.expect("a frame").expect("whole");
            assert_eq!(read, Message::text(text.clone()));
        }
        // The long one may take a few; every other frame takes one.
        let reads = server.inner.get_ref().io.reads;
        assert!(
            reads <= texts.len() + 3,
            "{reads} reads for {} frames",
            texts.len()
        );

        // Frames that arrive together are read together, and each comes out whole.
        let before = server.inner.get_ref().io.reads;
        for text in &texts[..20] {
            client
                .feed(Message::text(text.clone()))
                .await
                .expect("sent");
        }
        client.flush().await.expect("flushed");
        for text in &texts[..20] {
            let read = server.next().await.expect("a frame").expect("whole");
            assert_eq!(read, Message::text(text.clone()));
        }
        let reads = server.inner.get_ref().io.reads - before;
        assert!(reads < 20, "{reads} reads for 20 frames sent together");
    }

    #[tokio::test]
    async fn a_pong_never_splits_a_frame_that_is_half_written() {
        // A buffer so small that the long frame goes out in many pieces, while the client's
        // pings make tungstenite write pongs in between.
        let (server_io, client_io) = tokio::io::duplex(16);
        let mut server = WebSocket::new(server_io, Vec::new(), WebSocketConfig::default(), 1024);
        let mut client =
            tokio_tungstenite::WebSocketStream::from_raw_socket(client_io, Role::Client, None)
                .await;
        let texts: Vec<String> = (0..20)
            .map(|i| format!("{i}:{}", "y".repeat(200)))
            .collect();
        server.extend(texts.iter().map(|t| Frame::text(t)));
        let pings = 20;
        let (written, received) = tokio::join!(
            async {
                // Write, then read, as a connection does: each read may make tungstenite
                // answer a ping, between (or in the middle of) our frames.
                let mut pings_seen = 0;
                poll_fn(|cx| {
                    let written = server.poll_write(cx);
                    while let Poll::Ready(Some(frame)) = server.poll_next_unpin(cx) {
                        if matches!(frame.expect("ok"), Message::Ping(_)) {
                            pings_seen += 1;
                        }
                    }
                    written
                })
                .await
                .expect("written");
                // The last pongs, once all pings are in.
                poll_fn(|cx| {
                    while pings_seen < pings {
                        match ready!(server.poll_next_unpin(cx)) {
                            Some(Ok(Message::Ping(_))) => pings_seen += 1,
                            other => panic!("unexpected {other:?}"),
                        }
                    }
                    Poll::Ready(())
                })
                .await;
                server.close(None).await.expect("closed");
            },
            async {
                let mut texts = Vec::new();
                let mut pongs = 0;
                for i in 0..pings {
                    client
                        // Pongs longer than the pipe, so that they too go out in pieces.
                        .send(Message::Ping(
                            vec![u8::try_from(i).expect("small"); 100].into(),
                        ))
                        .await
                        .expect("ping sent");
                }
                while let Some(frame) = client.next().await {
                    match frame.expect("every frame is whole") {
                        Message::Text(text) => texts.push(text.to_string()),
                        Message::Pong(_) => pongs += 1,
                        Message::Close(_) => break,
                        other => panic!("unexpected {other:?}"),
                    }
                }
                (texts, pongs)
            }
        );
        let () = written;
        assert_eq!(received.0, texts, "every text arrives whole and in order");
        // tungstenite answers the latest ping when earlier answers are still waiting.
        assert!(received.1 >= 1, "pings are answered");
    }

    #[tokio::test]
    async fn a_frame_never_starts_inside_a_half_written_pong() {
        let (server_io, client_io) = tokio::io::duplex(16);
        let mut server = WebSocket::new(server_io, Vec::new(), WebSocketConfig::default(), 1024);
        let mut client =
            tokio_tungstenite::WebSocketStream::from_raw_socket(client_io, Role::Client, None)
                .await;
        let payload = vec![7u8; 125];
        let (sent, read) = tokio::join!(
            client.send(Message::Ping(payload.clone().into())),
            server.next()
        );
        sent.expect("ping sent");
        assert!(matches!(read, Some(Ok(Message::Ping(_)))));
        // The next read has tungstenite answer: its pong fills the pipe and stops half-way.
        poll_fn(|cx| {
            assert!(server.poll_next_unpin(cx).is_pending());
            Poll::Ready(())
        })
        .await;
        assert!(
            server.inner.get_ref().theirs_unfinished,
            "the pong is half written"
        );
        server.extend([Frame::text("after the pong")]);
        // Bounded: bytes of a frame inside the pong leave the client waiting for more.
        let both = async {
            tokio::join!(poll_fn(|cx| server.poll_write(cx)), async {
                (client.next().await, client.next().await)
            })
        };
        let (written, frames) = tokio::time::timeout(std::time::Duration::from_secs(10), both)
            .await
            .expect("the client reads both frames");
        written.expect("written");
        assert_eq!(
            frames.0.expect("a frame").expect("whole"),
            Message::Pong(payload.into())
        );
        assert_eq!(
            frames.1.expect("a frame").expect("whole"),
            Message::text("after the pong")
        );
    }
}
