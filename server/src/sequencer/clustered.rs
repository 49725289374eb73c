//! The cluster paths: sends appended to the Redis log, events shared with the other nodes,
//! and entries read back from the log stored and delivered here.

use super::*;

impl Worker {
    /// Appends the queued sends to the cluster log and acknowledges them; they are stored and
    /// delivered, here too, when the log is read back. While Redis is down they are stored and
    /// delivered here at once, and appended later.
    pub(super) fn flush_sends_to_cluster(&mut self, sends: Vec<PendingSend>) {
        let Some(link) = &mut self.cluster else {
            return;
        };
        let mut fresh = Vec::with_capacity(sends.len());
        for send in sends {
            let earlier = send.message.client_id.as_deref().map(|client_id| {
                self.store
                    .sync()
                    .by_client_id(&send.message.from, client_id)
            });
            match earlier {
                Some(Ok(Some((id, ts)))) => acknowledge(&send.peer, id, ts, false, &send.message),
                _ => fresh.push(send),
            }
        }
        let outgoing: Vec<Outgoing> = fresh
            .iter()
            .map(|send| Event::Message(posted(send)).into())
            .collect();
        let started = std::time::Instant::now();
        if let Some(ids) = link.append(&outgoing) {
            self.metrics.store_commit(started.elapsed());
            for (send, id) in fresh.iter().zip(ids) {
                acknowledge(&send.peer, id, send.message.ts, send.offline, &send.message);
            }
            return;
        }
        for (mut send, mut out) in fresh.into_iter().zip(outgoing) {
            // Delivered only if the recipient is here; other nodes decide for themselves.
            let here = send
                .message
                .delivered_to
                .take()
                .filter(|to| self.hub.has_sessions(to));
            send.message.delivered_to = here;
            let Some(id) = link.reserved_id() else {
                let why =
                    "the chat service is degraded and cannot take more messages now; try again";
                fail(&send.peer, ErrorCode::Internal, why, send.message.client_id);
                continue;
            };
            let stored = {
                let mut store = self.store.sync();
                let stored = store.insert_at([(id, &send.message)]);
                store.index_if_due();
                stored
            };
            if let Err(err) = stored {
                tracing::error!(error = %err, "could not store a message");
                let why = "the server could not store the message; try again";
                fail(&send.peer, ErrorCode::Internal, why, send.message.client_id);
                continue;
            }
            self.metrics.messages_stored.fetch_add(1, Relaxed);
            acknowledge(&send.peer, id, send.message.ts, send.offline, &send.message);
            let message = chat_message(id, send.quote, send.message);
            self.hub.deliver(&[(send.peer.id, message)]);
            out.preset_id = Some(id);
            link.defer([out]);
        }
    }

    /// Tells the other nodes of changes already applied here; kept for later while Redis is
    /// down.
    pub(super) fn share(&mut self, events: Vec<Event>) {
        let Some(link) = &mut self.cluster else {
            return;
        };
        if events.is_empty() {
            return;
        }
        let outgoing: Vec<Outgoing> = events.into_iter().map(Outgoing::from).collect();
        if link.append(&outgoing).is_none() {
            link.defer(outgoing);
        }
    }

    /// Makes a change: at once on a single node; through the cluster log otherwise (applied
    /// here when read back, or at once while Redis is down).
    pub(super) fn publish(&mut self, event: Event) -> Result<(), crate::store::StoreError> {
        let Some(link) = &mut self.cluster else {
            return self.apply(event);
        };
        let outgoing = [Outgoing::from(event)];
        if link.append(&outgoing).is_some() {
            return Ok(());
        }
        let [out] = outgoing;
        let result = self.apply(out.event.clone());
        if let Some(link) = &mut self.cluster {
            link.defer([out]);
        }
        result
    }

    /// Applies a lasting change to the store and tells the local sessions concerned.
    pub(super) fn apply(&mut self, event: Event) -> Result<(), crate::store::StoreError> {
        match event {
            Event::Edited { id, text, ts } => {
                let Some((_, message)) = self.store.sync().message(id)? else {
                    return Ok(());
                };
                self.store.sync().edit(id, &text, ts)?;
                let frame = ServerFrame::Edited {
                    id,
                    target: message.target.clone(),
                    text,
                    ts,
                };
                self.hub.notify(&message.target, &message.from, &frame);
            }
            Event::Deleted { id } => {
                let Some((_, message)) = self.store.sync().message(id)? else {
                    return Ok(());
                };
                self.store.sync().delete(id)?;
                let frame = ServerFrame::Deleted {
                    id,
                    target: message.target.clone(),
                };
                self.hub.notify(&message.target, &message.from, &frame);
            }
            Event::Read {
                nick,
                target,
                up_to,
            } => {
                let conv = conversation(&nick, &target);
                self.store.sync().mark_read(&nick, &conv, up_to)?;
                let (count, last_read) = self.store.sync().unread(&nick, &conv)?;
                let frame = ServerFrame::Unread {
                    target,
                    count,
                    last_read,
                };
                self.hub.to_sessions(&nick, &frame);
            }
            Event::Delivered { nick, up_to } => self.store.sync().mark_delivered(&nick, up_to)?,
            Event::User { nick, ts } => {
                self.store.sync().add_user(&nick, ts)?;
                self.hub.add_known(nick);
            }
            Event::Registered { nick, hash } => {
                self.store.sync().set_password(&nick, &hash)?;
                self.registered.insert(nick, hash);
            }
            Event::Online { nick, moved } => self.hub.remote_online(nick, moved),
            Event::Offline { nick, ts } => {
                self.store.sync().set_last_seen(&nick, ts)?;
                self.hub.remote_offline(&nick);
            }
            Event::Joined { room, nick } => self.hub.remote_joined(room, nick),
            Event::Left { room, nick } => self.hub.remote_left(&room, &nick),
            Event::Typing {
                nick,
                target,
                for_ms,
                ts,
            } => {
                // A notice read late (after an outage, say) is over already.
                let age = now_ms().saturating_sub(ts);
                if u64::try_from(age).is_ok_and(|age| age < for_ms) {
                    self.hub.typing(0, &nick, &target, for_ms);
                }
            }
            // Messages carry ids and are stored in batches: see `store_and_deliver`.
            Event::Message(_) => {}
        }
        Ok(())
    }

    pub(super) fn cluster_signal(&mut self, signal: Signal) {
        match signal {
            Signal::Recovered => {
                let users = self.hub.local_users();
                if let Some(link) = &mut self.cluster {
                    link.recover(&self.store.sync(), &users);
                    // Nodes may have died during the outage, unseen, or Redis may have lost
                    // who was online; once every live node had a heartbeat's time to register
                    // again, what is still missing is gone.
                    let (results, wait) = (self.results.clone(), link.config().expiry);
                    self.runtime.spawn(async move {
                        tokio::time::sleep(wait).await;
                        if let Some(queue) = results.upgrade() {
                            let _ = queue.send(Command::Cluster(Signal::Reconcile)).await;
                        }
                    });
                }
            }
            Signal::Typing { node, event } => {
                if self.cluster.as_ref().is_some_and(|l| l.node() != node) {
                    let _ = self.apply(event);
                }
            }
            Signal::Reconcile => {
                if let Some(remote) = self.cluster.as_mut().and_then(Link::online_elsewhere) {
                    self.hub.reconcile(remote);
                }
            }
            Signal::Entries(entries) => self.apply_entries(entries),
            Signal::Reserved(end) => {
                if let Some(link) = &mut self.cluster {
                    link.reserve(end);
                }
            }
            // Answered below.
            Signal::LoginDeadline => {}
        }
        self.finish_waiting_logins();
    }

    /// Applies entries read from the cluster log, in order; consecutive messages are stored
    /// in one transaction, then delivered.
    pub(super) fn apply_entries(&mut self, entries: Vec<cluster::Entry>) {
        let Some(link) = &self.cluster else {
            return;
        };
        let node = link.node().to_owned();
        let snapshot_at = position(&link.snapshot_at);
        let Some(last) = entries.last().map(|e| e.position.clone()) else {
            return;
        };
        let mut messages: Vec<(MsgId, ConnId, Posted)> = Vec::new();
        for entry in entries {
            let mine = entry.node == node;
            if mine && entry.applied_at_origin {
                continue;
            }
            if entry.event.is_presence() && (mine || position(&entry.position) <= snapshot_at) {
                continue;
            }
            if let Event::Message(posted) = entry.event {
                let from = if mine { posted.conn } else { 0 };
                messages.push((entry.id, from, posted));
                continue;
            }
            self.store_and_deliver(std::mem::take(&mut messages));
            if let Err(err) = self.apply(entry.event) {
                tracing::error!(error = %err, "could not apply a change from the cluster");
            }
        }
        self.store_and_deliver(messages);
        self.applied = self.applied.max(position(&last));
        if let Err(err) = self.store.sync().set_meta(cluster::CURSOR_KEY, &last) {
            tracing::error!(error = %err, "could not record how far the cluster log was read");
        }
    }

    pub(super) fn store_and_deliver(&mut self, messages: Vec<(MsgId, ConnId, Posted)>) {
        if messages.is_empty() {
            return;
        }
        // A direct message counts as delivered where its recipient has a session: that node
        // tells the others (a user shown online elsewhere may be in their grace period, or on
        // a node that died).
        let messages: Vec<(MsgId, ConnId, NewMessage, Option<protocol::Quote>)> = messages
            .into_iter()
            .map(|(id, from, posted)| {
                let (message, quote) = posted.into_new();
                let message = NewMessage {
                    delivered_to: None,
                    ..message
                };
                (id, from, message, quote)
            })
            .collect();
        let started = std::time::Instant::now();
        let stored = {
            let mut store = self.store.sync();
            let stored = store.insert_at(messages.iter().map(|(id, _, m, _)| (*id, m)));
            self.metrics.store_commit(started.elapsed());
            store.index_if_due();
            stored
        };
        let stored = match stored {
            Ok(stored) => stored,
            Err(err) => {
                let count = messages.len();
                tracing::error!(error = %err, count, "could not store messages of the cluster");
                return;
            }
        };
        let mut delivered: BTreeMap<Nick, MsgId> = BTreeMap::new();
        let mut fresh_messages = Vec::with_capacity(messages.len());
        for ((id, from, new, quote), fresh) in messages.into_iter().zip(stored) {
            if fresh {
                self.metrics.messages_stored.fetch_add(1, Relaxed);
                let message = chat_message(id, quote, new);
                if let Target::User(to) = &message.target
                    && self.hub.has_sessions(to)
                {
                    delivered.insert(to.clone(), id);
                }
                fresh_messages.push((from, message));
            }
        }
        self.hub.deliver(&fresh_messages);
        let mut events = Vec::with_capacity(delivered.len());
        for (nick, up_to) in delivered {
            if let Err(err) = self.store.sync().mark_delivered(&nick, up_to) {
                tracing::error!(error = %err, "could not record a delivery");
            }
            events.push(Event::Delivered { nick, up_to });
        }
        self.share(events);
    }
}

/// A message as the log carries it.
pub(super) fn posted(send: &PendingSend) -> Posted {
    let m = &send.message;
    Posted {
        from: m.from.clone(),
        target: m.target.clone(),
        text: m.text.clone(),
        client_id: m.client_id.clone(),
        reply_to: send.quote.clone(),
        ts: m.ts,
        delivered_to: m.delivered_to.clone(),
        conn: send.peer.id,
    }
}
