//! The seed tutorial's two pages, served as they are.
//!
//! - [`SeedSingleSession`]: `/my_ws/<name>`, JSON `{"message","from_user","to_user"}` direct
//!   messages under the name in the path. The page's `from_user` is ignored: the sender is
//!   always the name the connection logged in under. Problems come back as notices from `system`.
//! - [`SeedGroupSession`]: `/my_ws`, plain text relayed to the lobby as a `guest-N`.

use crate::connection::Session;
use crate::hub::{ConnId, Hub, offer};
use crate::peer::{CloseReason, Peer};
use axum::extract::ws::{Message, Utf8Bytes};
use protocol::{Nick, RoomName, SeedChat, Target};
use std::sync::Arc;

/// A seed single-chat page.
#[derive(Debug)]
pub struct SeedSingleSession {
    hub: Arc<Hub>,
    peer: Peer,
    max_text_bytes: usize,
    login: Option<(ConnId, Nick)>,
}

impl SeedSingleSession {
    /// Logs the page in under `name`. When the name is refused, the page is told why and the
    /// connection closes.
    pub fn start(hub: Arc<Hub>, peer: Peer, name: &str, max_text_bytes: usize) -> Self {
        let mut session = Self {
            hub,
            peer,
            max_text_bytes,
            login: None,
        };
        let refused = match Nick::parse(name) {
            Err(err) => Some(format!("cannot log in as {name:?}: {err}")),
            Ok(nick) => match session.hub.login(nick.clone(), session.peer.clone()) {
                Ok(id) => {
                    tracing::info!(nick = %nick, conn = id, "seed single-chat page logged in");
                    session.login = Some((id, nick));
                    None
                }
                Err(err) => Some(format!("cannot log in: {err}")),
            },
        };
        if let Some(why) = refused {
            tracing::info!(name, reason = %why, "seed single-chat login refused");
            session.notice(name, why);
            session
                .peer
                .close
                .close(CloseReason::Policy("login refused"));
        }
        session
    }

    fn notice(&self, to_user: &str, text: String) {
        offer(
            &self.peer,
            Message::Text(Utf8Bytes::from(SeedChat::notice(to_user, text).to_json())),
        );
    }
}

impl Session for SeedSingleSession {
    fn on_text(&mut self, text: Utf8Bytes) {
        let Some((id, me)) = &self.login else {
            return;
        };
        let chat: SeedChat = match serde_json::from_str(text.as_str()) {
            Ok(chat) => chat,
            Err(_) => {
                let why = r#"could not read that message: send {"message","from_user","to_user"}"#;
                return self.notice(me.as_str(), why.to_owned());
            }
        };
        let failure = if chat.to_user.is_empty() {
            Some("say who the message is for (to_user)".to_owned())
        } else if chat.message.trim().is_empty() {
            Some("the message is empty; nothing was sent".to_owned())
        } else if chat.message.len() > self.max_text_bytes {
            Some(format!(
                "the message is longer than {} bytes; it was not delivered",
                self.max_text_bytes
            ))
        } else {
            match Nick::parse(&chat.to_user) {
                Err(_) => Some(format!(
                    "{:?} is not a valid name; the message was not delivered",
                    chat.to_user
                )),
                Ok(to) => self
                    .hub
                    .send(*id, Target::User(to), chat.message)
                    .err()
                    .map(|err| format!("{err}; the message was not delivered")),
            }
        };
        if let Some(why) = failure {
            self.notice(me.as_str(), why);
        }
    }

    fn on_binary(&mut self) {
        self.peer
            .close
            .close(CloseReason::Policy("binary frames are not supported"));
    }

    fn on_end(&mut self) {
        if let Some((id, nick)) = self.login.take() {
            tracing::info!(nick = %nick, conn = id, "seed single-chat page left");
            self.hub.logout(id);
        }
    }
}

/// A seed group page: an anonymous guest in the lobby.
#[derive(Debug)]
pub struct SeedGroupSession {
    hub: Arc<Hub>,
    peer: Peer,
    max_text_bytes: usize,
    id: Option<ConnId>,
}

impl SeedGroupSession {
    /// Enters the lobby as the next guest.
    pub fn start(hub: Arc<Hub>, peer: Peer, max_text_bytes: usize) -> Self {
        let (id, nick) = hub.login_guest(peer.clone());
        tracing::info!(nick = %nick, conn = id, "seed group page joined");
        Self {
            hub,
            peer,
            max_text_bytes,
            id: Some(id),
        }
    }
}

impl Session for SeedGroupSession {
    fn on_text(&mut self, text: Utf8Bytes) {
        let Some(id) = self.id else { return };
        // The page has no way to show an error; an empty or oversized message is dropped.
        if text.trim().is_empty() {
            return;
        }
        if text.len() > self.max_text_bytes {
            tracing::info!(
                conn = id,
                bytes = text.len(),
                "dropped an oversized group message"
            );
            return;
        }
        if let Err(err) = self
            .hub
            .send(id, Target::Room(RoomName::lobby()), text.to_string())
        {
            tracing::debug!(conn = id, error = %err, "group message not delivered");
        }
    }

    fn on_binary(&mut self) {
        self.peer
            .close
            .close(CloseReason::Policy("binary frames are not supported"));
    }

    fn on_end(&mut self) {
        if let Some(id) = self.id.take() {
            self.hub.logout(id);
        }
    }
}
