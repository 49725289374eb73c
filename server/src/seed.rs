//! The seed tutorial's two pages, served as they are.
//!
//! - [`SeedSingleSession`]: `/my_ws/<name>`, JSON `{"message","from_user","to_user"}` direct
//!   messages under the name in the path. The page's `from_user` is ignored: the sender is
//!   always the name the connection logged in under. Problems come back as notices from `system`.
//! - [`SeedGroupSession`]: `/my_ws`, plain text relayed to the lobby as a `guest-N`.

use crate::connection::Session;
use crate::hub::{offer, seed};
use crate::peer::{CloseReason, Peer};
use crate::sequencer::Op;
use protocol::{Nick, RoomName, SeedChat, Target};
use tungstenite::Utf8Bytes;

/// A seed single-chat page.
#[derive(Debug)]
pub struct SeedSingleSession {
    name: String,
    max_text_bytes: usize,
}

impl SeedSingleSession {
    /// A page that logs in as `name` (from its URL) when it starts.
    pub fn new(name: String, max_text_bytes: usize) -> Self {
        Self {
            name,
            max_text_bytes,
        }
    }

    fn notice(&self, peer: &Peer, text: String) {
        offer(peer, seed(&SeedChat::notice(&self.name, text)));
    }
}

impl Session for SeedSingleSession {
    fn on_start(&mut self) -> Option<Op> {
        Some(Op::Login {
            nick: self.name.clone(),
            resume: Vec::new(),
            password: None,
        })
    }

    fn on_text(&mut self, peer: &Peer, text: Utf8Bytes) -> Option<Op> {
        let Ok(chat) = serde_json::from_str::<SeedChat>(text.as_str()) else {
            let why = r#"could not read that message: send {"message","from_user","to_user"}"#;
            self.notice(peer, why.to_owned());
            return None;
        };
        let refusal = if chat.to_user.is_empty() {
            "say who the message is for (to_user)".to_owned()
        } else if chat.message.trim().is_empty() {
            "the message is empty; nothing was sent".to_owned()
        } else if chat.message.len() > self.max_text_bytes {
            format!(
                "the message is longer than {} bytes; it was not delivered",
                self.max_text_bytes
            )
        } else {
            match Nick::parse(&chat.to_user) {
                Ok(to) => {
                    return Some(Op::Send {
                        client_id: None,
                        target: Target::User(to),
                        text: chat.message,
                        reply_to: None,
                    });
                }
                Err(_) => format!(
                    "{:?} is not a valid name; the message was not delivered",
                    chat.to_user
                ),
            }
        };
        self.notice(peer, refusal);
        None
    }

    fn on_rate_limited(&mut self, peer: &Peer, _frame: &tungstenite::Message) {
        self.notice(
            peer,
            "too many messages; slow down (this one was not sent)".to_owned(),
        );
    }

    fn on_binary(&mut self, peer: &Peer) -> Option<Op> {
        peer.close(CloseReason::Policy("binary frames are not supported"));
        None
    }
}

/// A seed group page: an anonymous guest in the lobby.
#[derive(Debug)]
pub struct SeedGroupSession {
    max_text_bytes: usize,
}

impl SeedGroupSession {
    /// A page that enters the lobby as the next guest when it starts.
    pub fn new(max_text_bytes: usize) -> Self {
        Self { max_text_bytes }
    }
}

impl Session for SeedGroupSession {
    fn on_start(&mut self) -> Option<Op> {
        Some(Op::Guest)
    }

    fn on_text(&mut self, peer: &Peer, text: Utf8Bytes) -> Option<Op> {
        // The page has no way to show an error; an empty or oversized message is dropped.
        if text.trim().is_empty() {
            return None;
        }
        if text.len() > self.max_text_bytes {
            tracing::info!(
                conn = peer.id,
                bytes = text.len(),
                "dropped an oversized group message"
            );
            return None;
        }
        Some(Op::Send {
            client_id: None,
            target: Target::Room(RoomName::lobby()),
            text: text.to_string(),
            reply_to: None,
        })
    }

    fn on_binary(&mut self, peer: &Peer) -> Option<Op> {
        peer.close(CloseReason::Policy("binary frames are not supported"));
        None
    }
}
