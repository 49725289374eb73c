//! Logins: checking the name and password, catching up with the cluster log, the history a
//! login or resume brings, registering a name, and `whois`.

use super::*;

impl Worker {
    pub(super) fn login(
        &mut self,
        peer: Peer,
        raw: &str,
        resume: Vec<Cursor>,
        password: Option<String>,
    ) {
        let nick = match Nick::parse(raw) {
            Ok(nick) => nick,
            Err(err) => return refuse_login(&peer, raw, ErrorCode::InvalidNick, &err.to_string()),
        };
        if self.hub.nick_of(peer.id).is_some() {
            let err = HubError::AlreadyLoggedIn;
            return fail(&peer, err.code(), &err.to_string(), None);
        }
        let Some(hash) = self.registered.get(&nick).cloned() else {
            return self.complete_login(peer, nick, resume, false);
        };
        let Some(password) = password.filter(|_| peer.kind == PeerKind::Native) else {
            let why = match peer.kind {
                PeerKind::Native => format!("{nick} is registered: log in with its password"),
                _ => format!(
                    "{nick} is registered; its owner logs in with a password from the chat client"
                ),
            };
            return refuse_login(&peer, raw, ErrorCode::PasswordRequired, &why);
        };
        let results = self.results.clone();
        self.runtime.spawn_blocking(move || {
            let ok = crate::auth::verify(&password, &hash);
            if let Some(queue) = results.upgrade() {
                let _ = queue.blocking_send(Command::Verified {
                    peer,
                    nick,
                    resume,
                    ok,
                });
            }
        });
    }

    pub(super) fn complete_login(
        &mut self,
        peer: Peer,
        nick: Nick,
        resume: Vec<Cursor>,
        authenticated: bool,
    ) {
        let raw = nick.to_string();
        let mut beside = false;
        if let Some(link) = &mut self.cluster
            && !nick.is_reserved()
            && !self.hub.has_sessions(&nick)
        {
            match link.claim(&nick, authenticated) {
                cluster::Claim::Taken(node) => {
                    tracing::info!(nick = %nick, node, "nickname online on another node");
                    let err = HubError::NickTaken(nick);
                    return refuse_login(&peer, &raw, err.code(), &err.to_string());
                }
                cluster::Claim::Beside => beside = true,
                cluster::Claim::Granted | cluster::Claim::Unchecked => {}
            }
        }
        // In a cluster, the login is answered once this node has applied the log as far as it
        // reaches now: the welcome lists everyone online, and a resume includes every message
        // acknowledged anywhere before the login.
        if let Some(link) = &mut self.cluster
            && let Some(end) = link.log_end()
            && position(&end) > self.applied
        {
            self.waiting.push(WaitingLogin {
                until: position(&end),
                since: std::time::Instant::now(),
                peer,
                nick,
                resume,
                authenticated,
                beside,
            });
            let results = self.results.clone();
            self.runtime.spawn(async move {
                tokio::time::sleep(LOGIN_CATCH_UP).await;
                if let Some(queue) = results.upgrade() {
                    let _ = queue.send(Command::Cluster(Signal::LoginDeadline)).await;
                }
            });
            return;
        }
        self.finish_login(peer, nick, resume, authenticated, beside);
    }

    /// Answers the logins that waited for this node to catch up with the cluster log, or
    /// waited long enough.
    pub(super) fn finish_waiting_logins(&mut self) {
        if self.waiting.is_empty() {
            return;
        }
        let applied = self.applied;
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.waiting)
            .into_iter()
            .partition(|w| w.until <= applied || w.since.elapsed() >= LOGIN_CATCH_UP);
        self.waiting = waiting;
        for w in ready {
            if w.until > applied {
                tracing::warn!(nick = %w.nick, "logged in before this node caught up with the cluster log");
            }
            self.finish_login(w.peer, w.nick, w.resume, w.authenticated, w.beside);
        }
    }

    /// Logs the user in here; `beside` when they have a session on another node too.
    pub(super) fn finish_login(
        &mut self,
        peer: Peer,
        nick: Nick,
        resume: Vec<Cursor>,
        authenticated: bool,
        beside: bool,
    ) {
        let raw = nick.to_string();
        let new_user = !self.hub.is_known(&nick);
        if let Err(err) = self
            .hub
            .login(nick.clone(), peer.clone(), authenticated, beside)
        {
            return refuse_login(&peer, &raw, err.code(), &err.to_string());
        }
        tracing::info!(nick = %nick, conn = peer.id, kind = ?peer.kind, "logged in");
        let ts = now_ms();
        if let Err(err) = self.store.sync().add_user(&nick, ts) {
            tracing::error!(error = %err, "could not record a user");
        }
        if new_user {
            let nick = nick.clone();
            self.share(vec![Event::User { nick, ts }]);
        }
        let caught_up = self
            .catch_up(&peer, &nick, resume)
            .and_then(|()| self.unread_counts(&peer, &nick));
        // Rooms a returning user did not rejoin are left now.
        self.hub.settle_rejoin(peer.id);
        if let Err(err) = caught_up {
            tracing::error!(error = %err, nick = %nick, "could not send stored messages at login");
            fail(
                &peer,
                ErrorCode::Internal,
                "could not load your stored messages",
                None,
            );
        }
    }

    /// Sends a new login what it missed: each resumed conversation after its cursor, then
    /// direct messages that came while the user was offline.
    pub(super) fn catch_up(
        &mut self,
        peer: &Peer,
        nick: &Nick,
        resume: Vec<Cursor>,
    ) -> Result<(), crate::store::StoreError> {
        let (undelivered, newest) = {
            let store = self.store.sync();
            // Past what is delivered now, and on a single node past the user's own messages
            // too: every message up to the newest is stored by now. In a cluster, a message
            // sent through a node cut off from Redis may come later with a lower id.
            let newest = match self.cluster {
                None => store.newest_direct_past_mark(nick)?,
                Some(_) => None,
            };
            (store.undelivered(nick)?, newest)
        };
        let Some(last) = newest.max(undelivered.last().map(|m| m.id)) else {
            return self.resume(peer, nick, resume, BTreeMap::new());
        };
        if peer.kind == PeerKind::SeedSingle {
            // The page shows each as an ordinary message. Its outbox bounds how many fit.
            let skip = undelivered
                .len()
                .saturating_sub(peer.outbox.max_capacity() / 2);
            for message in &undelivered[skip..] {
                offer(peer, hub::seed(&hub::seed_frame(message)));
            }
        }
        self.store.sync().mark_delivered(nick, last)?;
        self.share(vec![Event::Delivered {
            nick: nick.clone(),
            up_to: last,
        }]);
        // For a native client they are history of each direct chat, from the first unseen one.
        let mut first_unseen: BTreeMap<Nick, MsgId> = BTreeMap::new();
        for message in &undelivered {
            first_unseen
                .entry(message.from.clone())
                .or_insert(message.id);
        }
        self.resume(peer, nick, resume, first_unseen)
    }

    pub(super) fn resume(
        &mut self,
        peer: &Peer,
        nick: &Nick,
        resume: Vec<Cursor>,
        mut first_unseen: BTreeMap<Nick, MsgId>,
    ) -> Result<(), crate::store::StoreError> {
        if peer.kind != PeerKind::Native {
            return Ok(());
        }
        for Cursor { target, after } in resume {
            match &target {
                Target::Room(room) => {
                    if !self.hub.in_room(peer.id, room) {
                        self.hub.join(peer.id, room.clone());
                    }
                }
                Target::User(other) => {
                    first_unseen.remove(other);
                }
            }
            self.send_history(
                peer,
                nick,
                target,
                None,
                Some(after),
                crate::store::MAX_PAGE,
            )?;
        }
        for (other, first) in first_unseen {
            let after = first.saturating_sub(1);
            self.send_history(
                peer,
                nick,
                Target::User(other),
                None,
                Some(after),
                crate::store::MAX_PAGE,
            )?;
        }
        Ok(())
    }

    /// Keeps the time a user went offline, once their last session (and grace) is over.
    pub(super) fn note_if_offline(&mut self, nick: &Nick) {
        if self.hub.is_online(nick) {
            return;
        }
        if let Err(err) = self.store.sync().set_last_seen(nick, now_ms()) {
            tracing::error!(error = %err, "could not record when a user was last seen");
        }
    }

    pub(super) fn whois(&mut self, peer: &Peer, nick: Nick) {
        if self.hub.nick_of(peer.id).is_none() {
            let err = HubError::NotLoggedIn;
            return fail(peer, err.code(), &err.to_string(), None);
        }
        let online = self.hub.is_online(&nick);
        match self.store.sync().last_seen(&nick) {
            Ok(None) if !online => {
                let err = HubError::UnknownUser(nick);
                fail(peer, err.code(), &err.to_string(), None);
            }
            Ok(seen) => {
                let last_seen = seen.flatten().filter(|_| !online);
                offer(
                    peer,
                    native(&ServerFrame::Whois {
                        nick,
                        online,
                        last_seen,
                    }),
                );
            }
            Err(err) => {
                tracing::error!(error = %err, "whois failed");
                fail(
                    peer,
                    ErrorCode::Internal,
                    "could not look that up; try again",
                    None,
                );
            }
        }
    }

    pub(super) fn register(&mut self, peer: Peer, password: String) {
        let Some(nick) = self.hub.nick_of(peer.id).cloned() else {
            let err = HubError::NotLoggedIn;
            return fail(&peer, err.code(), &err.to_string(), None);
        };
        if self.registered.contains_key(&nick) {
            let why = format!("{nick} is registered already");
            return fail(&peer, ErrorCode::AlreadyRegistered, &why, None);
        }
        if let Some(why) = crate::auth::weakness(&password) {
            return fail(&peer, ErrorCode::WeakPassword, &why, None);
        }
        if self.cluster.as_ref().is_some_and(Link::degraded) {
            let why = "registering needs the whole chat service, which is partly unreachable \
                       now; try again in a moment";
            return fail(&peer, ErrorCode::Internal, why, None);
        }
        let results = self.results.clone();
        self.runtime.spawn_blocking(move || {
            let hash = crate::auth::hash(&password);
            if let Some(queue) = results.upgrade() {
                let _ = queue.blocking_send(Command::Hashed { peer, nick, hash });
            }
        });
    }

    pub(super) fn complete_register(
        &mut self,
        peer: &Peer,
        nick: Nick,
        hash: Result<String, String>,
    ) {
        let stored = hash.and_then(|hash| {
            let nick = nick.clone();
            self.publish(Event::Registered { nick, hash })
                .map_err(|e| e.to_string())
        });
        match stored {
            Ok(()) => {
                tracing::info!(nick = %nick, "nickname registered");
                offer(peer, native(&ServerFrame::Registered { nick }));
            }
            Err(err) => {
                tracing::error!(error = %err, nick = %nick, "could not register a nickname");
                fail(
                    peer,
                    ErrorCode::Internal,
                    "could not register the nickname; try again",
                    None,
                );
            }
        }
    }
}
