//! Requests about conversations: history, sending (queued for the next flush), quoting,
//! edits and deletions, read markers and unread counts, and typing notices.

use super::*;

impl Worker {
    pub(super) fn send_history(
        &mut self,
        peer: &Peer,
        nick: &Nick,
        target: Target,
        before: Option<MsgId>,
        after: Option<MsgId>,
        limit: u32,
    ) -> Result<(), crate::store::StoreError> {
        let conv = conversation(nick, &target);
        let (messages, has_more) = self.store.sync().history(&conv, before, after, limit)?;
        offer(
            peer,
            native(&ServerFrame::History {
                target,
                messages,
                has_more,
            }),
        );
        Ok(())
    }

    pub(super) fn history(
        &mut self,
        peer: &Peer,
        target: Target,
        before: Option<MsgId>,
        after: Option<MsgId>,
        limit: Option<u32>,
    ) {
        let Some(nick) = self.hub.nick_of(peer.id).cloned() else {
            return fail(
                peer,
                ErrorCode::NotLoggedIn,
                &HubError::NotLoggedIn.to_string(),
                None,
            );
        };
        if let Target::Room(room) = &target
            && !self.hub.in_room(peer.id, room)
        {
            let err = HubError::NotInRoom(room.clone());
            return fail(peer, err.code(), &err.to_string(), None);
        }
        let limit = limit.unwrap_or(DEFAULT_PAGE);
        if let Err(err) = self.send_history(peer, &nick, target, before, after, limit) {
            tracing::error!(error = %err, "history request failed");
            fail(
                peer,
                ErrorCode::Internal,
                "could not read the history; try again",
                None,
            );
        }
    }

    pub(super) fn queue_send(
        &mut self,
        peer: Peer,
        in_flight: InFlight,
        (client_id, target, text, reply_to): (Option<String>, Target, String, Option<MsgId>),
    ) {
        let route = self.hub.route(peer.id, &target);
        let (from, route) = match (self.hub.nick_of(peer.id), route) {
            (Some(from), Ok(route)) => (from.clone(), route),
            (_, Err(err)) => {
                let message = match &err {
                    HubError::NotLoggedIn => err.to_string(),
                    _ => format!("{err}; the message was not delivered"),
                };
                let me = self.hub.nick_of(peer.id).map_or("", |n| n.as_str());
                return fail_to(&peer, me, err.code(), &message, client_id);
            }
            (None, Ok(_)) => unreachable!("a route needs a logged-in sender"),
        };
        let quote = match reply_to {
            None => None,
            Some(id) => match self.quote(&from, &target, id) {
                Ok(quote) => Some(quote),
                Err(why) => {
                    return fail_to(
                        &peer,
                        from.as_str(),
                        ErrorCode::NoSuchMessage,
                        &why,
                        client_id,
                    );
                }
            },
        };
        let (offline, delivered_to) = match route {
            Route::Room => (false, None),
            Route::Online(to) => (false, Some(to)),
            Route::Offline(_) => (true, None),
        };
        self.sends.push(PendingSend {
            peer,
            in_flight,
            offline,
            quote,
            message: NewMessage {
                from,
                target,
                text,
                client_id,
                reply_to,
                ts: now_ms(),
                delivered_to,
            },
        });
    }

    /// The quote of message `id`, which a message from `from` to `target` replies to: it must
    /// be stored (sends queued with it are stored first) and of the same conversation.
    pub(super) fn quote(
        &mut self,
        from: &Nick,
        target: &Target,
        id: MsgId,
    ) -> Result<protocol::Quote, String> {
        self.flush_sends();
        let conv = conversation(from, target);
        match self.store.sync().message(id) {
            Ok(Some((of, m))) if of == conv => Ok(protocol::Quote {
                id,
                from: m.from,
                text: m.text.chars().take(100).collect(),
            }),
            Ok(_) => Err(format!(
                "message {id} is not in this conversation; nothing was sent"
            )),
            Err(err) => {
                tracing::error!(error = %err, "could not read a replied-to message");
                Err("could not read the message replied to; try again".to_owned())
            }
        }
    }

    /// Edits (`text` is `Some`) or deletes one of the user's own messages, and tells everyone
    /// who sees its conversation.
    pub(super) fn change(&mut self, peer: &Peer, id: MsgId, text: Option<String>) {
        let Some(nick) = self.hub.nick_of(peer.id).cloned() else {
            let err = HubError::NotLoggedIn;
            return fail(peer, err.code(), &err.to_string(), None);
        };
        let found = match self.store.sync().message(id) {
            Ok(found) => found,
            Err(err) => {
                tracing::error!(error = %err, "could not read a message to change");
                return fail(
                    peer,
                    ErrorCode::Internal,
                    "could not read the message; try again",
                    None,
                );
            }
        };
        let Some((_, message)) = found.filter(|(_, m)| !m.deleted) else {
            return fail(
                peer,
                ErrorCode::NoSuchMessage,
                &format!("there is no message {id}"),
                None,
            );
        };
        if message.from != nick {
            let why = "only its sender can change a message";
            return fail(peer, ErrorCode::NotYours, why, None);
        }
        let event = match text {
            Some(text) => Event::Edited {
                id,
                text,
                ts: now_ms(),
            },
            None => Event::Deleted { id },
        };
        if let Err(err) = self.publish(event) {
            tracing::error!(error = %err, "could not change a message");
            fail(
                peer,
                ErrorCode::Internal,
                "could not change the message; try again",
                None,
            );
        }
    }

    /// Moves the user's read marker and tells all their sessions the new unread count.
    pub(super) fn read(&mut self, peer: &Peer, target: Target, up_to: MsgId) {
        let Some(nick) = self.hub.nick_of(peer.id).cloned() else {
            let err = HubError::NotLoggedIn;
            return fail(peer, err.code(), &err.to_string(), None);
        };
        match self.publish(Event::Read {
            nick,
            target,
            up_to,
        }) {
            Ok(()) => {}
            Err(err) => {
                tracing::error!(error = %err, "could not move a read marker");
                fail(
                    peer,
                    ErrorCode::Internal,
                    "could not mark it read; try again",
                    None,
                );
            }
        }
    }

    /// Sends a new login the unread count of each of its conversations that has any.
    pub(super) fn unread_counts(
        &mut self,
        peer: &Peer,
        nick: &Nick,
    ) -> Result<(), crate::store::StoreError> {
        let rooms = self.hub.rooms_of(peer.id).into_iter().map(Target::Room);
        let directs = self
            .store
            .sync()
            .direct_partners(nick)?
            .into_iter()
            .map(Target::User);
        for target in rooms.chain(directs) {
            let (count, last_read) = self
                .store
                .sync()
                .unread(nick, &conversation(nick, &target))?;
            if count > 0 {
                let frame = ServerFrame::Unread {
                    target,
                    count,
                    last_read,
                };
                offer(peer, native(&frame));
            }
        }
        Ok(())
    }

    /// Passes a typing notice on, at most one per conversation every `TYPING_EVERY` per
    /// connection; the others are dropped.
    pub(super) fn typing(&mut self, peer: &Peer, target: Target) {
        let Some(nick) = self.hub.nick_of(peer.id).cloned() else {
            return;
        };
        if !matches!(
            self.hub.route(peer.id, &target),
            Ok(Route::Room | Route::Online(_))
        ) {
            return;
        }
        let now = std::time::Instant::now();
        let key = (peer.id, conversation(&nick, &target));
        if self
            .typing_sent
            .get(&key)
            .is_some_and(|at| now.duration_since(*at) < TYPING_EVERY)
        {
            return;
        }
        // Forget old entries now and then, so the map stays small.
        if self.typing_sent.len() > 10_000 {
            self.typing_sent
                .retain(|_, at| now.duration_since(*at) < TYPING_EVERY);
        }
        self.typing_sent.insert(key, now);
        let for_ms = u64::try_from(TYPING_SHOWN.as_millis()).unwrap_or(u64::MAX);
        self.hub.typing(peer.id, &nick, &target, for_ms);
        if let Some(link) = &mut self.cluster {
            // Passed on while Redis answers; never kept for later.
            let ts = now_ms();
            let event = Event::Typing {
                nick,
                target,
                for_ms,
                ts,
            };
            link.publish_typing(&event);
        }
    }
}
