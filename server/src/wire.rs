//! WebSocket frames as the server writes them: encoded once, header and all, and shared by
//! every connection they go to.
//!
//! A server's frames are not masked (RFC 6455 §5.1), so a frame's bytes are the same for every
//! recipient: a broadcast is encoded once, each recipient's outbox holds a reference to it, and
//! each connection hands the shared bytes to the kernel as they are, many frames per
//! (vectored) write. Nothing is copied per recipient.

use bytes::{Buf, Bytes};
use serde::Serialize;

/// The longest frame header: two bytes and a 64-bit length (server frames carry no mask).
const MAX_HEADER: usize = 10;

/// A complete server-to-client WebSocket frame: header and payload. Cheap to clone.
#[derive(Clone, PartialEq, Eq)]
pub struct Frame(Bytes);

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

    /// A text frame of `value` as JSON, serialized straight behind room left for the header.
    pub fn json(value: &impl Serialize) -> Self {
        let mut buf = Vec::with_capacity(128);
        buf.extend_from_slice(&[0; MAX_HEADER]);
        serde_json::to_writer(&mut buf, value).expect("the server's frames always serialize");
        Self::finish(TEXT, buf)
    }

    /// A ping with no payload.
    pub fn ping() -> Self {
        Self(Bytes::from_static(&[PING, 0]))
    }

    /// Writes the header for the payload behind `MAX_HEADER` bytes of `buf` into the end of
    /// that room, and starts the frame there.
    fn finish(first: u8, mut buf: Vec<u8>) -> Self {
        let len = buf.len() - MAX_HEADER;
        let start = match len {
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
        };
        // Without the spare room JSON serialization left, which a shared frame would keep.
        let mut bytes = Bytes::from(buf.into_boxed_slice());
        bytes.advance(start);
        Self(bytes)
    }

    /// The frame's bytes, as sent.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The payload, for frames the server itself made.
    pub fn payload(&self) -> &[u8] {
        let header = match self.0.get(1).map(|len| len & 0x7F) {
            Some(126) => 4,
            Some(127) => MAX_HEADER,
            _ => 2,
        };
        self.0.get(header..).unwrap_or_default()
    }
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.0.first() {
            Some(&TEXT) => "Text",
            Some(&PING) => "Ping",
            _ => "Frame",
        };
        f.debug_tuple(kind)
            .field(&String::from_utf8_lossy(self.payload()))
            .finish()
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
