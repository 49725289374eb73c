//! The native protocol session (`chat.v1`): typed JSON frames in both directions.

use crate::connection::Session;
use crate::hub::{ConnId, Hub, native, offer};
use crate::peer::Peer;
use axum::extract::ws::Utf8Bytes;
use protocol::{ClientFrame, ErrorCode, Nick, ServerFrame, Target};
use std::sync::Arc;

/// The longest client id accepted with a `send`, in bytes.
pub const MAX_CLIENT_ID_BYTES: usize = 64;

/// One native client's connection.
#[derive(Debug)]
pub struct NativeSession {
    hub: Arc<Hub>,
    peer: Peer,
    max_text_bytes: usize,
    /// Set once `login` succeeded.
    login: Option<(ConnId, Nick)>,
}

impl NativeSession {
    /// A session that waits for `login`.
    pub fn new(hub: Arc<Hub>, peer: Peer, max_text_bytes: usize) -> Self {
        Self {
            hub,
            peer,
            max_text_bytes,
            login: None,
        }
    }

    fn reply(&self, frame: &ServerFrame) {
        offer(&self.peer, native(frame));
    }

    fn fail(&self, code: ErrorCode, message: impl Into<String>, client_id: Option<String>) {
        self.reply(&ServerFrame::Error {
            code,
            message: message.into(),
            client_id,
        });
    }

    fn login(&mut self, raw: &str) {
        let nick = match Nick::parse(raw) {
            Ok(nick) => nick,
            Err(err) => return self.fail(ErrorCode::InvalidNick, err.to_string(), None),
        };
        match self.hub.login(nick.clone(), self.peer.clone()) {
            Ok(id) => {
                tracing::info!(nick = %nick, conn = id, "native client logged in");
                self.login = Some((id, nick));
            }
            Err(err) => self.fail(err.code(), err.to_string(), None),
        }
    }

    fn send(&self, id: ConnId, client_id: String, target: Target, text: String) {
        if client_id.len() > MAX_CLIENT_ID_BYTES {
            let message = format!("client_id is longer than {MAX_CLIENT_ID_BYTES} bytes");
            return self.fail(ErrorCode::BadFrame, message, None);
        }
        if text.trim().is_empty() {
            return self.fail(
                ErrorCode::EmptyMessage,
                "the message is empty",
                Some(client_id),
            );
        }
        if text.len() > self.max_text_bytes {
            let message = format!(
                "the message is {} bytes; the limit is {} bytes",
                text.len(),
                self.max_text_bytes
            );
            return self.fail(ErrorCode::TooLarge, message, Some(client_id));
        }
        match self.hub.send(id, target, text) {
            Ok(accepted) => self.reply(&ServerFrame::Ack {
                client_id,
                id: accepted.id,
                ts: accepted.ts,
            }),
            Err(err) => self.fail(err.code(), err.to_string(), Some(client_id)),
        }
    }

    fn handle(&mut self, id: ConnId, frame: ClientFrame) {
        match frame {
            ClientFrame::Login { .. } => self.fail(
                ErrorCode::AlreadyLoggedIn,
                "this connection is logged in already",
                None,
            ),
            ClientFrame::Send {
                client_id,
                target,
                text,
            } => self.send(id, client_id, target, text),
            ClientFrame::Join { room } => self.hub.join(id, room),
            ClientFrame::Leave { room } => {
                if let Err(err) = self.hub.leave(id, &room) {
                    self.fail(err.code(), err.to_string(), None);
                }
            }
            ClientFrame::Rooms => self.reply(&ServerFrame::Rooms {
                rooms: self.hub.rooms(id),
            }),
            ClientFrame::Who { room } => {
                let users = self.hub.who(room.as_ref());
                self.reply(&ServerFrame::Users { room, users });
            }
        }
    }
}

impl Session for NativeSession {
    fn on_text(&mut self, text: Utf8Bytes) {
        let frame: ClientFrame = match serde_json::from_str(text.as_str()) {
            Ok(frame) => frame,
            Err(err) => {
                let message = format!("could not read that frame: {err}");
                return self.fail(ErrorCode::BadFrame, message, None);
            }
        };
        match (&self.login, frame) {
            (None, ClientFrame::Login { nick }) => self.login(&nick),
            (None, _) => self.fail(
                ErrorCode::NotLoggedIn,
                r#"log in first: {"type":"login","nick":"<your name>"}"#,
                None,
            ),
            (Some((id, _)), frame) => {
                let id = *id;
                self.handle(id, frame);
            }
        }
    }

    fn on_binary(&mut self) {
        self.fail(
            ErrorCode::BinaryFrame,
            "binary frames are not part of the protocol; send JSON text",
            None,
        );
    }

    fn on_end(&mut self) {
        if let Some((id, nick)) = self.login.take() {
            tracing::info!(nick = %nick, conn = id, "native client left");
            self.hub.logout(id);
        }
    }
}
