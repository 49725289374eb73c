//! The native protocol (`chat.v1`): typed JSON frames, decoded into sequencer requests.

use crate::connection::Session;
use crate::hub::{native, offer};
use crate::peer::Peer;
use crate::sequencer::Op;
use protocol::{ClientFrame, ErrorCode, ServerFrame};
use tungstenite::{Message, Utf8Bytes};

/// The longest client id accepted with a `send`, in bytes.
pub const MAX_CLIENT_ID_BYTES: usize = 64;

/// The longest search text, in characters.
pub const MAX_SEARCH_CHARS: usize = 200;

/// One native client's connection.
#[derive(Debug)]
pub struct NativeSession {
    max_text_bytes: usize,
}

impl NativeSession {
    /// A session that waits for `login`.
    pub fn new(max_text_bytes: usize) -> Self {
        Self { max_text_bytes }
    }
}

/// Tells `peer` what was wrong with what it sent.
fn fail(peer: &Peer, code: ErrorCode, message: impl Into<String>, client_id: Option<String>) {
    let frame = ServerFrame::Error {
        code,
        message: message.into(),
        client_id,
    };
    offer(peer, native(&frame));
}

impl Session for NativeSession {
    fn on_text(&mut self, peer: &Peer, text: Utf8Bytes) -> Option<Op> {
        let frame: ClientFrame = match serde_json::from_str(text.as_str()) {
            Ok(frame) => frame,
            Err(err) => {
                fail(
                    peer,
                    ErrorCode::BadFrame,
                    format!("could not read that frame: {err}"),
                    None,
                );
                return None;
            }
        };
        Some(match frame {
            ClientFrame::Login {
                nick,
                resume,
                password,
            } => Op::Login {
                nick,
                resume,
                password,
            },
            ClientFrame::Register { password } => Op::Register { password },
            ClientFrame::Send {
                client_id,
                target,
                text,
                reply_to,
            } => {
                if client_id.len() > MAX_CLIENT_ID_BYTES {
                    let message = format!("client_id is longer than {MAX_CLIENT_ID_BYTES} bytes");
                    fail(peer, ErrorCode::BadFrame, message, None);
                    return None;
                }
                if text.trim().is_empty() {
                    fail(
                        peer,
                        ErrorCode::EmptyMessage,
                        "the message is empty",
                        Some(client_id),
                    );
                    return None;
                }
                if text.len() > self.max_text_bytes {
                    let message = format!(
                        "the message is {} bytes; the limit is {} bytes",
                        text.len(),
                        self.max_text_bytes
                    );
                    fail(peer, ErrorCode::TooLarge, message, Some(client_id));
                    return None;
                }
                Op::Send {
                    client_id: Some(client_id),
                    target,
                    text,
                    reply_to,
                }
            }
            ClientFrame::Edit { id, text } => {
                if text.trim().is_empty() {
                    let why = "the new text is empty; delete the message instead";
                    fail(peer, ErrorCode::EmptyMessage, why, None);
                    return None;
                }
                if text.len() > self.max_text_bytes {
                    let why = format!("the new text is over {} bytes", self.max_text_bytes);
                    fail(peer, ErrorCode::TooLarge, why, None);
                    return None;
                }
                Op::Edit { id, text }
            }
            ClientFrame::Delete { id } => Op::Delete { id },
            ClientFrame::Read { target, up_to } => Op::Read { target, up_to },
            ClientFrame::Typing { target } => Op::Typing { target },
            ClientFrame::Search {
                text,
                limit,
                before,
            } => {
                let text = text.trim().to_owned();
                if text.is_empty() || text.chars().count() > MAX_SEARCH_CHARS || text.contains('\0')
                {
                    let why = format!("search for 1 to {MAX_SEARCH_CHARS} characters, without NUL");
                    fail(peer, ErrorCode::BadFrame, why, None);
                    return None;
                }
                Op::Search {
                    text,
                    limit,
                    before,
                }
            }
            ClientFrame::History {
                target,
                before,
                after,
                limit,
            } => Op::History {
                target,
                before,
                after,
                limit,
            },
            ClientFrame::Join { room } => Op::Join(room),
            ClientFrame::Whois { nick } => Op::Whois(nick),
            ClientFrame::Leave { room } => Op::Leave(room),
            ClientFrame::Rooms => Op::Rooms,
            ClientFrame::Who {
                room,
                prefix,
                after,
                limit,
            } => Op::Who(crate::hub::WhoQuery {
                room,
                prefix,
                after,
                limit,
            }),
        })
    }

    fn on_rate_limited(&mut self, peer: &Peer, frame: &Message) {
        // Name the message that was dropped, so the client can send it again later.
        let client_id = match frame {
            Message::Text(text) => match serde_json::from_str(text.as_str()) {
                Ok(ClientFrame::Send { client_id, .. }) => Some(client_id),
                _ => None,
            },
            _ => None,
        };
        fail(
            peer,
            ErrorCode::RateLimited,
            "too many frames; slow down (this one was dropped)",
            client_id,
        );
    }

    fn on_binary(&mut self, peer: &Peer) -> Option<Op> {
        fail(
            peer,
            ErrorCode::BinaryFrame,
            "binary frames are not part of the protocol; send JSON text",
            None,
        );
        None
    }
}
