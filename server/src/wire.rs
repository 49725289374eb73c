//! WebSocket frames as the server writes them: encoded once, header and all, and shared by
//! every connection they go to.
//!
//! A server's frames are not masked (RFC 6455 §5.1), so a frame's bytes are the same for every
//! recipient: a broadcast is encoded once, each recipient's outbox holds a reference to it, and
//! each connection hands the shared bytes to the kernel as they are, many frames per
//! (vectored) write. Nothing is copied per recipient.
//!
//! Messages to a room that the sequencer delivers in one round are encoded back to back into
//! one buffer ([`Run`]): a member takes one reference to the lot (or, for the round's own
//! senders, to the stretches between their own messages), so the work per recipient is per
//! round rather than per message.

use bytes::{Buf, Bytes};
use serde::Serialize;
use std::ops::Range;

/// The longest frame header: two bytes and a 64-bit length (server frames carry no mask).
const MAX_HEADER: usize = 10;

/// The most room a thread's buffer for serializing frames keeps between frames.
const MAX_SCRATCH: usize = 64 * 1024;

/// One or more complete server-to-client WebSocket frames, back to back: headers and payloads.
/// Cheap to clone.
#[derive(Clone, PartialEq, Eq)]
pub struct Frame {
    bytes: Bytes,
    /// How many WebSocket frames `bytes` holds.
    frames: u32,
}

/// Final fragment, text.
const TEXT: u8 = 0x81;
/// Final fragment, ping.
const PING: u8 = 0x89;

impl Frame {
    /// A text frame of `payload`.
    pub fn text(payload: &str) -> Self {
        let mut buf = Vec::with_capacity(MAX_HEADER + payload.len());
        buf.extend_from_slice(&[0; MAX_HEADER]);
        buf.extend_from_slice(payload.as_bytes());
        Self::finish(TEXT, buf)
    }

    /// A text frame of `value` as JSON. It is serialized into a buffer the thread keeps, behind
    /// room left for the header, and the frame is copied out of it in one allocation of its
    /// exact size: serializing into a buffer of its own grew it (a reallocation, and a copy,
    /// each time it doubled) and then shrank it to what the frame holds (another).
    pub fn json(value: &impl Serialize) -> Self {
        thread_local! {
            static SCRATCH: std::cell::RefCell<Vec<u8>> = const {
                std::cell::RefCell::new(Vec::new())
            };
        }
        SCRATCH.with_borrow_mut(|buf| {
            buf.clear();
            buf.extend_from_slice(&[0; MAX_HEADER]);
            serde_json::to_writer(&mut *buf, value).expect("the server's frames always serialize");
            let start = Self::write_header(TEXT, buf);
            let frame = Self::one(Bytes::copy_from_slice(&buf[start..]));
            // A large frame (a page of history) leaves no large buffer behind.
            if buf.capacity() > MAX_SCRATCH {
                *buf = Vec::new();
            }
            frame
        })
    }

    /// A ping with no payload.
    pub fn ping() -> Self {
        Self::one(Bytes::from_static(&[PING, 0]))
    }

    fn one(bytes: Bytes) -> Self {
        Self { bytes, frames: 1 }
    }

    /// Writes the header for the payload behind `MAX_HEADER` bytes of `buf` into the end of
    /// that room, and starts the frame there.
    fn finish(first: u8, mut buf: Vec<u8>) -> Self {
        let start = Self::write_header(first, &mut buf);
        // Without spare room, which a shared frame would keep.
        let mut bytes = Bytes::from(buf.into_boxed_slice());
        bytes.advance(start);
        Self::one(bytes)
    }

    /// Writes the header for the payload behind `MAX_HEADER` bytes of `buf` into the end of
    /// that room; returns where the frame starts.
    fn write_header(first: u8, buf: &mut [u8]) -> usize {
        let len = buf.len() - MAX_HEADER;
        match len {
            0..=125 => {
                buf[MAX_HEADER - 2..MAX_HEADER]
                    .copy_from_slice(&[first, u8::try_from(len).expect("at most 125")]);
                MAX_HEADER - 2
            }
            126..=0xFFFF => {
                let len = u16::try_from(len).expect("at most 0xFFFF").to_be_bytes();
                buf[MAX_HEADER - 4..MAX_HEADER].copy_from_slice(&[first, 126, len[0], len[1]]);
                MAX_HEADER - 4
            }
            _ => {
                buf[0] = first;
                buf[1] = 127;
                let len = u64::try_from(len).expect("a usize fits in 64 bits");
                buf[2..MAX_HEADER].copy_from_slice(&len.to_be_bytes());
                0
            }
        }
    }

    /// The bytes, as sent.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// How many WebSocket frames these are: a connection's outbox counts frames, not pieces.
    pub fn frames(&self) -> usize {
        self.frames as usize
    }

    /// The payload of the first frame, for frames the server itself made.
    pub fn payload(&self) -> &[u8] {
        let (header, len) = header(&self.bytes);
        let end = header.saturating_add(len);
        self.bytes.get(header..end).unwrap_or_default()
    }

    /// The frames that start before byte `at`: once `at` bytes of these frames are written,
    /// what must still go out to finish the frame under way (the bytes before `at` included).
    pub fn started_before(&self, at: usize) -> Self {
        let (mut end, mut frames) = (0, 0);
        while end < at && end < self.bytes.len() {
            let (header, len) = header(&self.bytes[end..]);
            end = end
                .saturating_add(header)
                .saturating_add(len)
                .min(self.bytes.len());
            frames += 1;
        }
        Self {
            bytes: self.bytes.slice(..end),
            frames,
        }
    }
}

/// The header length and payload length of the server frame at the start of `bytes`.
fn header(bytes: &[u8]) -> (usize, usize) {
    match bytes.get(1).map(|len| len & 0x7F) {
        Some(126) => {
            let len = bytes
                .get(2..4)
                .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
            (4, usize::from(len))
        }
        Some(127) => {
            let len = bytes
                .get(2..MAX_HEADER)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map_or(0, u64::from_be_bytes);
            (MAX_HEADER, usize::try_from(len).unwrap_or(usize::MAX))
        }
        Some(len) => (2, usize::from(len)),
        None => (0, 0),
    }
}

/// Frames encoded back to back into one buffer, to be shared in stretches: see [`Run::slice`].
///
/// A stretch keeps the whole buffer alive, so a connection holding any part of a run holds all
/// of it: at most one round of a room's messages (the sequencer's batch) more than the frames
/// it has yet to write.
#[derive(Debug)]
pub struct Run {
    bytes: Bytes,
    /// Where each frame starts in `bytes`, and then where the last one ends.
    bounds: Vec<usize>,
}

impl Run {
    /// The frames of `frames`, in order, in one buffer (one copy of each).
    pub fn new(frames: impl IntoIterator<Item = Frame>) -> Self {
        let mut buf = Vec::new();
        let mut bounds = vec![0];
        for frame in frames {
            buf.extend_from_slice(frame.as_bytes());
            bounds.push(buf.len());
        }
        Self {
            bytes: Bytes::from(buf.into_boxed_slice()),
            bounds,
        }
    }

    /// How many frames the run holds.
    pub fn len(&self) -> usize {
        self.bounds.len() - 1
    }

    /// Whether the run holds no frame.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The frames numbered `range` (from 0, in the order given), as one [`Frame`] sharing the
    /// run's buffer. An empty range gives an empty piece (zero frames).
    pub fn slice(&self, range: Range<usize>) -> Frame {
        let (start, end) = (self.bounds[range.start], self.bounds[range.end]);
        Frame {
            bytes: self.bytes.slice(start..end.max(start)),
            frames: u32::try_from(range.len()).expect("a run holds fewer than 2³² frames"),
        }
    }
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.bytes.first() {
            Some(&TEXT) => "Text",
            Some(&PING) => "Ping",
            _ => "Frame",
        };
        let mut tuple = f.debug_tuple(kind);
        tuple.field(&String::from_utf8_lossy(self.payload()));
        if self.frames > 1 {
            tuple.field(&format_args!("and {} more", self.frames - 1));
        }
        tuple.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tungstenite::protocol::{Role, WebSocket};
    use tungstenite::{Message, Utf8Bytes};

    /// What tungstenite, as a client, reads from `bytes`.
    fn read(bytes: Vec<u8>) -> Vec<Message> {
        let mut ws = WebSocket::from_raw_socket(std::io::Cursor::new(bytes), Role::Client, None);
        std::iter::from_fn(|| ws.read().ok()).collect()
    }

    #[test]
    fn frames_of_every_length_read_back_as_sent() {
        // One of each header size, at the edges between them.
        let texts: Vec<String> = [0, 125, 126, 0xFFFF, 0x1_0000]
            .into_iter()
            .map(|n| "é".repeat(n / 2) + &"x".repeat(n % 2))
            .collect();
        let mut wire = Vec::new();
        for text in &texts {
            wire.extend_from_slice(Frame::text(text).as_bytes());
        }
        wire.extend_from_slice(Frame::ping().as_bytes());
        let mut expected: Vec<Message> = texts
            .iter()
            .map(|t| Message::Text(Utf8Bytes::from(t.clone())))
            .collect();
        expected.push(Message::Ping(Default::default()));
        assert_eq!(read(wire), expected);
    }

    #[test]
    fn a_run_is_shared_in_stretches_that_read_back_as_their_frames() {
        let texts = ["a", "bb", &"c".repeat(200), "", "e"];
        let run = Run::new(texts.iter().map(|t| Frame::text(t)));
        assert_eq!(run.len(), 5);
        let messages = |frame: Frame| {
            let read = read(frame.as_bytes().to_vec());
            assert_eq!(read.len(), frame.frames(), "the count matches the bytes");
            read
        };
        let all: Vec<Message> = texts.iter().map(|t| Message::text(*t)).collect();
        assert_eq!(messages(run.slice(0..5)), all);
        assert_eq!(messages(run.slice(1..3)), all[1..3]);
        assert_eq!(messages(run.slice(4..5)), all[4..5]);
        let empty = run.slice(2..2);
        assert_eq!((empty.frames(), empty.as_bytes().len()), (0, 0));
        // The first frame's payload, whatever its header's size.
        assert_eq!(run.slice(2..4).payload(), texts[2].as_bytes());
        assert_eq!(format!("{:?}", run.slice(0..2)), r#"Text("a", and 1 more)"#);
        // A piece written up to a byte keeps the frames started before it, to be finished.
        let piece = run.slice(1..5);
        assert_eq!(piece.started_before(1), run.slice(1..2));
        assert_eq!(
            piece.started_before(4),
            run.slice(1..2),
            "\"bb\" is 4 bytes with its header"
        );
        assert_eq!(piece.started_before(5), run.slice(1..3));
        assert_eq!(piece.started_before(piece.as_bytes().len() - 1), piece);
        assert_eq!(piece.started_before(0).frames(), 0);
        assert!(Run::new([]).is_empty());
    }

    #[test]
    fn json_is_framed_without_a_copy_of_the_text() {
        let frame = Frame::json(&("hello", 1, "é"));
        assert_eq!(frame.payload(), r#"["hello",1,"é"]"#.as_bytes());
        assert_eq!(
            read(frame.as_bytes().to_vec()),
            [Message::text(r#"["hello",1,"é"]"#)]
        );
        assert_eq!(format!("{frame:?}"), r#"Text("[\"hello\",1,\"é\"]")"#);
    }
}
