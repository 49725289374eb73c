//! The sequencer: one thread that owns the [`Hub`] and the [`Store`] and carries out every
//! request in the order it arrived.
//!
//! Connections parse frames on their own tasks and submit [`Command`]s here. On a single node
//! the sequencer gives each message its id and delivers it at once; the store writer
//! ([`Writer`]) stores it behind, many messages per transaction, and acknowledges it to its
//! sender once committed. Every read of the store first stores what is still queued
//! ([`Writer::sync`]), so every member of a room sees messages in id order, and a login's
//! history ends exactly where live delivery begins. A resend (a client id its sender used
//! before) is answered with the first one's ack and neither delivered nor stored again: see
//! [`Resends`]. In a cluster, messages are stored here as they are read back from the log,
//! before they are delivered.

use crate::cluster::{self, Event, Link, Outgoing, Posted, Signal, position};
use crate::hub::{self, Absence, Hub, HubError, Route, native, now_ms, offer};
use crate::metrics::Metrics;
use crate::peer::{ConnId, Peer, PeerKind};
use crate::store::writer::{Queued, Writer};
use crate::store::{NewMessage, Reader, Retention, Store, StoreError, conversation};
use protocol::{
    ChatMessage, Cursor, ErrorCode, MsgId, Nick, RoomName, SeedChat, ServerFrame, Target,
};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use tokio::sync::mpsc;

/// Commands taken from the queue and handled before the next look at it; their sends share
/// one transaction.
const MAX_BATCH: usize = 256;

/// Commands waiting for the sequencer. When full, connections wait before reading more from
/// their peers, which slows a flood at its source.
const QUEUE: usize = 4096;

/// Ids reserved in the store at a time (one small write per block): after a crash, ids given
/// to messages delivered but not yet stored are skipped, never given again.
const ID_BLOCK: MsgId = 100_000;

/// A typing notice is passed on at most this often per conversation and connection.
const TYPING_EVERY: std::time::Duration = std::time::Duration::from_secs(3);

/// How long clients show a typing notice unless it is renewed.
const TYPING_SHOWN: std::time::Duration = std::time::Duration::from_secs(6);

/// Messages of history sent for one conversation at login, or by default for a request.
const DEFAULT_PAGE: u32 = 50;

/// What the sequencer is asked to do.
#[derive(Debug)]
enum Command {
    /// A request of a connection.
    Peer { peer: Peer, op: Op },
    /// The connection is gone.
    Logout(ConnId),
    /// The presence grace period of an absence ended.
    GraceOver(Absence),
    /// A password check finished (on the blocking pool).
    Verified {
        peer: Peer,
        nick: Nick,
        resume: Vec<Cursor>,
        ok: bool,
    },
    /// A password hash for `register` is ready.
    Hashed {
        peer: Peer,
        nick: Nick,
        hash: Result<String, String>,
    },
    /// Apply retention now.
    Prune,
    /// News from the cluster.
    Cluster(Signal),
    /// Time to send the presence and room changes gathered since the last time.
    SendChanges,
}

/// The requests, as decoded from any of the protocols.
#[derive(Debug)]
pub enum Op {
    /// Log in under a name (native or seed single-chat), resuming conversations; a
    /// registered name needs its password.
    Login {
        nick: String,
        resume: Vec<Cursor>,
        password: Option<String>,
    },
    /// Register the logged-in name with a password.
    Register {
        password: String,
    },
    /// Enter the lobby as the next guest (seed group page).
    Guest,
    /// Store and deliver a message.
    Send {
        client_id: Option<String>,
        target: Target,
        text: String,
        reply_to: Option<MsgId>,
    },
    Edit {
        id: MsgId,
        text: String,
    },
    Delete {
        id: MsgId,
    },
    Read {
        target: Target,
        up_to: MsgId,
    },
    Typing {
        target: Target,
    },
    Search {
        text: String,
        limit: Option<u32>,
    },
    History {
        target: Target,
        before: Option<MsgId>,
        after: Option<MsgId>,
        limit: Option<u32>,
    },
    Join(RoomName),
    Whois(Nick),
    Leave(RoomName),
    Rooms,
    Who(hub::WhoQuery),
}

/// A handle for submitting commands. Cheap to clone; the thread ends once every handle is
/// dropped and the queue is drained.
#[derive(Debug, Clone)]
pub struct Sequencer {
    queue: mpsc::Sender<Command>,
}

impl Sequencer {
    /// Starts the sequencer thread, knowing the `registered` nicknames and their password
    /// hashes. It prunes by `retention` at start. Call it within a Tokio runtime: password
    /// hashing runs on that runtime's blocking pool.
    pub fn start(
        hub: Hub,
        store: Store,
        retention: Retention,
        metrics: Arc<Metrics>,
        registered: std::collections::HashMap<Nick, String>,
        presence_grace: std::time::Duration,
        cluster: Option<Link>,
    ) -> std::io::Result<(Self, tokio::sync::oneshot::Receiver<()>)> {
        let (queue, commands) = mpsc::channel(QUEUE);
        let cursor = store
            .meta(cluster::CURSOR_KEY)
            .ok()
            .flatten()
            .unwrap_or_else(|| "0-0".to_owned());
        let applied = position(&cursor);
        let floor = store.id_floor().map_err(std::io::Error::other)?;
        let resends = Resends::new(&store).map_err(std::io::Error::other)?;
        let store = Writer::start(store, {
            let metrics = metrics.clone();
            Box::new(move |batch, took, result| committed(&metrics, batch, took, result))
        })?;
        if let Some(link) = &cluster {
            let results = queue.downgrade();
            cluster::spawn_threads(link.config(), link.health(), cursor, move |signal| {
                let Some(queue) = results.upgrade() else {
                    return false;
                };
                if matches!(&signal, Signal::Entries(e) if e.is_empty()) {
                    return true;
                }
                queue.blocking_send(Command::Cluster(signal)).is_ok()
            })?;
        }
        let mut worker = Worker {
            runtime: tokio::runtime::Handle::current(),
            presence_grace,
            results: queue.downgrade(),
            registered,
            hub,
            store,
            retention,
            metrics,
            next_id: floor + 1,
            reserved: floor,
            resends,
            sends: Vec::new(),
            typing_sent: std::collections::HashMap::new(),
            applied,
            waiting: Vec::new(),
            cluster,
            changes_due: false,
        };
        worker.prune();
        // Resolves when the thread has stored what was queued and stopped (or panicked: the
        // sender is dropped either way).
        let (stopped, done) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("sequencer".into())
            .spawn(move || {
                worker.run(commands);
                let _ = stopped.send(());
            })?;
        Ok((Self { queue }, done))
    }

    /// Queues a command, waiting while the queue is full. Fails only when the sequencer has
    /// stopped.
    pub async fn submit(&self, peer: &Peer, op: Op) -> Result<(), Stopped> {
        self.queue
            .send(Command::Peer {
                peer: peer.clone(),
                op,
            })
            .await
            .map_err(|_| Stopped)
    }

    /// Requests waiting in the queue now.
    pub fn queue_depth(&self) -> usize {
        self.queue.max_capacity() - self.queue.capacity()
    }

    /// Tells the sequencer connection `id` is gone. Does nothing once the sequencer stopped.
    pub async fn logout(&self, id: ConnId) {
        let _ = self.queue.send(Command::Logout(id)).await;
    }

    /// Asks for retention to run now (the server does this periodically).
    pub async fn prune(&self) -> Result<(), Stopped> {
        self.queue.send(Command::Prune).await.map_err(|_| Stopped)
    }
}

/// The sequencer has stopped: the server is shutting down.
#[derive(Debug, Clone, Copy)]
pub struct Stopped;

struct Worker {
    /// Runs password hashing and grace-period timers off this thread.
    runtime: tokio::runtime::Handle,
    /// How long a user who dropped stays shown online; zero announces it at once.
    presence_grace: std::time::Duration,
    /// Where the blocking pool sends its results; weak, so the queue still closes when every
    /// connection is gone.
    results: mpsc::WeakSender<Command>,
    /// Registered nicknames and their password hashes.
    registered: std::collections::HashMap<Nick, String>,
    metrics: Arc<Metrics>,
    hub: Hub,
    /// The store, written behind the sequencer.
    store: Writer<Sender>,
    retention: Retention,
    /// The id the next message gets (single node; in a cluster Redis gives them).
    next_id: MsgId,
    /// The highest id reserved in the store: `next_id` may not pass it before another block
    /// is reserved.
    reserved: MsgId,
    /// Finds resends of messages already delivered.
    resends: Resends,
    /// Sends decided and waiting to be delivered and stored together.
    sends: Vec<PendingSend>,
    /// When each connection last passed on typing in each conversation.
    typing_sent: std::collections::HashMap<(ConnId, String), std::time::Instant>,
    /// The cluster this node is part of, if any.
    cluster: Option<Link>,
    /// How far this node has applied the cluster log.
    applied: (u64, u64),
    /// Logins waiting for the node to catch up with the cluster log.
    waiting: Vec<WaitingLogin>,
    /// A `SendChanges` is on its way.
    changes_due: bool,
}

/// The longest a login waits for this node to catch up with the cluster log.
const LOGIN_CATCH_UP: std::time::Duration = std::time::Duration::from_secs(2);

/// A login waiting for the node to apply the cluster log up to `until`.
#[derive(Debug)]
struct WaitingLogin {
    until: (u64, u64),
    since: std::time::Instant,
    peer: Peer,
    nick: Nick,
    resume: Vec<Cursor>,
    authenticated: bool,
    beside: bool,
}

struct PendingSend {
    peer: Peer,
    /// The message this one replies to, as its recipients see it quoted.
    quote: Option<protocol::Quote>,
    offline: bool,
    message: NewMessage,
}

impl Worker {
    fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while commands.blocking_recv().map(|c| batch.push(c)).is_some() {
            while batch.len() < MAX_BATCH {
                match commands.try_recv() {
                    Ok(command) => batch.push(command),
                    Err(_) => break,
                }
            }
            for command in batch.drain(..) {
                self.handle(command);
            }
            self.flush_sends();
            self.schedule_changes();
            let events = self.hub.take_events();
            self.share(events);
        }
        if let Some(link) = &mut self.cluster {
            link.leave();
        } else if let Err(err) = self.store.sync().reserve_ids(self.next_id - 1) {
            // Harmless: the next start skips the rest of the reserved block.
            tracing::warn!(error = %err, "could not record the last message id");
        }
        self.store.close();
        tracing::debug!("sequencer stopped");
    }

    fn handle(&mut self, command: Command) {
        let (peer, op) = match command {
            Command::Peer { peer, op } => (peer, op),
            Command::Prune => {
                self.flush_sends();
                return self.prune();
            }
            Command::SendChanges => {
                self.flush_sends();
                self.changes_due = false;
                return self.hub.send_changes();
            }
            Command::Cluster(signal) => {
                self.flush_sends();
                return self.cluster_signal(signal);
            }
            Command::Verified {
                peer,
                nick,
                resume,
                ok,
            } => {
                self.flush_sends();
                if !ok {
                    tracing::info!(nick = %nick, conn = peer.id, "wrong password");
                    let why = format!("wrong password for {nick}");
                    return fail(&peer, ErrorCode::WrongPassword, &why, None);
                }
                return self.complete_login(peer, nick, resume, true);
            }
            Command::Hashed { peer, nick, hash } => {
                self.flush_sends();
                return self.complete_register(&peer, nick, hash);
            }
            Command::Logout(id) => {
                self.flush_sends();
                if let Some(at) = self.waiting.iter().position(|w| w.peer.id == id) {
                    // Gone before its login was answered: free the name it claimed.
                    let w = self.waiting.remove(at);
                    let still_wanted = self.waiting.iter().any(|o| o.nick == w.nick);
                    if let Some(link) = &mut self.cluster
                        && !self.hub.is_here(&w.nick)
                        && !still_wanted
                    {
                        link.release(&w.nick);
                    }
                    return;
                }
                if let Some(nick) = self.hub.nick_of(id) {
                    tracing::info!(nick = %nick, conn = id, "left");
                }
                let nick = self.hub.nick_of(id).cloned();
                let absence = self.hub.logout(id, !self.presence_grace.is_zero());
                if let Some(nick) = nick {
                    self.note_if_offline(&nick);
                    if let Some(link) = &mut self.cluster {
                        if absence.is_some() {
                            link.away(&nick);
                        } else if !self.hub.is_here(&nick) {
                            link.release(&nick);
                        }
                    }
                }
                if let Some(absence) = absence {
                    let (results, grace) = (self.results.clone(), self.presence_grace);
                    // Ends after the grace period, or at once if the server stops first.
                    self.runtime.spawn(async move {
                        tokio::time::sleep(grace).await;
                        if let Some(queue) = results.upgrade() {
                            let _ = queue.send(Command::GraceOver(absence)).await;
                        }
                    });
                }
                return;
            }
            Command::GraceOver(absence) => {
                self.flush_sends();
                self.hub.grace_over(&absence);
                if let Some(link) = &mut self.cluster
                    && !self.hub.is_here(&absence.nick)
                {
                    link.release(&absence.nick);
                }
                return self.note_if_offline(&absence.nick);
            }
        };
        if let Op::Send {
            client_id,
            target,
            text,
            reply_to,
        } = op
        {
            return self.queue_send(peer, client_id, target, text, reply_to);
        }
        if let Op::Typing { target } = op {
            // Ephemeral, and unaffected by queued sends.
            return self.typing(&peer, target);
        }
        // Anything else may depend on what the queued sends change: store them first.
        self.flush_sends();
        match op {
            Op::Send { .. } | Op::Typing { .. } => unreachable!("handled above"),
            Op::Edit { id, text } => self.change(&peer, id, Some(text)),
            Op::Delete { id } => self.change(&peer, id, None),
            Op::Read { target, up_to } => self.read(&peer, target, up_to),
            Op::Search { text, limit } => self.search(&peer, text, limit),
            Op::Login {
                nick,
                resume,
                password,
            } => self.login(peer, &nick, resume, password),
            Op::Register { password } => self.register(peer, password),
            Op::Guest => {
                let number = self.cluster.as_mut().and_then(Link::guest);
                let nick = self.hub.login_guest(peer.clone(), number);
                tracing::info!(nick = %nick, conn = peer.id, "seed group page joined");
            }
            Op::History {
                target,
                before,
                after,
                limit,
            } => self.history(&peer, target, before, after, limit),
            Op::Whois(nick) => self.whois(&peer, nick),
            Op::Join(room) => self.when_logged_in(&peer, |hub| hub.try_join(peer.id, room)),
            Op::Leave(room) => self.when_logged_in(&peer, |hub| hub.leave(peer.id, &room)),
            Op::Rooms => self.when_logged_in(&peer, |hub| {
                let rooms = hub.rooms(peer.id);
                offer(&peer, native(&ServerFrame::Rooms { rooms }));
                Ok(())
            }),
            Op::Who(query) => self.when_logged_in(&peer, |hub| {
                offer(&peer, native(&hub.who(&query)));
                Ok(())
            }),
        }
    }

    /// Asks for `SendChanges` one interval from now, when changes wait and none is asked for.
    fn schedule_changes(&mut self) {
        if self.changes_due || !self.hub.has_changes() {
            return;
        }
        self.changes_due = true;
        let (results, every) = (self.results.clone(), self.hub.changes_every());
        // Ends after one interval, or at once if the server stops first.
        self.runtime.spawn(async move {
            tokio::time::sleep(every).await;
            if let Some(queue) = results.upgrade() {
                let _ = queue.send(Command::SendChanges).await;
            }
        });
    }

    fn when_logged_in(&mut self, peer: &Peer, f: impl FnOnce(&mut Hub) -> Result<(), HubError>) {
        let result = if self.hub.nick_of(peer.id).is_none() {
            Err(HubError::NotLoggedIn)
        } else {
            f(&mut self.hub)
        };
        if let Err(err) = result {
            fail(peer, err.code(), &err.to_string(), None);
        }
    }

    fn login(&mut self, peer: Peer, raw: &str, resume: Vec<Cursor>, password: Option<String>) {
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

    fn complete_login(&mut self, peer: Peer, nick: Nick, resume: Vec<Cursor>, authenticated: bool) {
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
    fn finish_waiting_logins(&mut self) {
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
    fn finish_login(
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
    fn catch_up(
        &mut self,
        peer: &Peer,
        nick: &Nick,
        resume: Vec<Cursor>,
    ) -> Result<(), crate::store::StoreError> {
        let undelivered = self.store.sync().undelivered(nick)?;
        let Some(last) = undelivered.last().map(|m| m.id) else {
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

    fn resume(
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
    fn note_if_offline(&mut self, nick: &Nick) {
        if self.hub.is_online(nick) {
            return;
        }
        if let Err(err) = self.store.sync().set_last_seen(nick, now_ms()) {
            tracing::error!(error = %err, "could not record when a user was last seen");
        }
    }

    fn whois(&mut self, peer: &Peer, nick: Nick) {
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

    fn register(&mut self, peer: Peer, password: String) {
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

    fn complete_register(&mut self, peer: &Peer, nick: Nick, hash: Result<String, String>) {
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

    fn send_history(
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

    fn history(
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

    fn queue_send(
        &mut self,
        peer: Peer,
        client_id: Option<String>,
        target: Target,
        text: String,
        reply_to: Option<MsgId>,
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
    fn quote(
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
    fn change(&mut self, peer: &Peer, id: MsgId, text: Option<String>) {
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
    fn read(&mut self, peer: &Peer, target: Target, up_to: MsgId) {
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
    fn unread_counts(&mut self, peer: &Peer, nick: &Nick) -> Result<(), crate::store::StoreError> {
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
    fn typing(&mut self, peer: &Peer, target: Target) {
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

    fn search(&mut self, peer: &Peer, text: String, limit: Option<u32>) {
        let Some(nick) = self.hub.nick_of(peer.id).cloned() else {
            let err = HubError::NotLoggedIn;
            return fail(peer, err.code(), &err.to_string(), None);
        };
        let rooms = self.hub.rooms_of(peer.id);
        match self
            .store
            .sync()
            .search(&nick, &rooms, &text, limit.unwrap_or(DEFAULT_PAGE))
        {
            Ok(results) => {
                offer(peer, native(&ServerFrame::SearchResults { text, results }));
            }
            Err(err) => {
                tracing::error!(error = %err, "search failed");
                fail(
                    peer,
                    ErrorCode::Internal,
                    "the search failed; try again",
                    None,
                );
            }
        }
    }

    /// Gives the queued sends their ids, delivers them and queues them for the store writer,
    /// which acknowledges each once stored. A resend is only acknowledged again.
    fn flush_sends(&mut self) {
        if self.sends.is_empty() {
            return;
        }
        let sends = std::mem::take(&mut self.sends);
        if self.cluster.is_some() {
            return self.flush_sends_to_cluster(sends);
        }
        let lookups = sends.iter().any(|s| s.message.client_id.is_some());
        if lookups {
            self.resends.start_batch(&self.store);
        }
        for send in sends {
            let PendingSend {
                peer,
                offline,
                quote,
                message,
            } = send;
            let earlier = match &message.client_id {
                Some(client_id) => self.resends.find(&self.store, &message.from, client_id),
                None => Ok(None),
            };
            let id = earlier.and_then(|earlier| match earlier {
                Some(earlier) => Ok(Err(earlier)),
                None => self.next_id().map(Ok),
            });
            let id = match id {
                Ok(Ok(id)) => id,
                // Stored and delivered before: only the ack went missing.
                Ok(Err((id, ts))) => {
                    acknowledge(&peer, id, ts, false, &message);
                    continue;
                }
                Err(err) => {
                    tracing::error!(error = %err, "could not take a message");
                    let why = "the server could not store the message; try again";
                    fail(&peer, ErrorCode::Internal, why, message.client_id);
                    continue;
                }
            };
            let chat = ChatMessage {
                id,
                ts: message.ts,
                from: message.from.clone(),
                target: message.target.clone(),
                text: message.text.clone(),
                reply_to: quote,
                edited: None,
                deleted: false,
            };
            self.hub.deliver(peer.id, &chat);
            if let Some(client_id) = &message.client_id {
                self.resends.note(id, &message.from, client_id);
            }
            self.store.push(Queued {
                id,
                message,
                after: Sender { peer, offline },
            });
        }
        if lookups {
            self.resends.end_batch();
        }
    }

    /// The id for the next message, reserving another block first when needed.
    fn next_id(&mut self) -> Result<MsgId, StoreError> {
        if self.next_id > self.reserved {
            let up_to = self.next_id + ID_BLOCK - 1;
            self.store.sync().reserve_ids(up_to)?;
            self.reserved = up_to;
        }
        let id = self.next_id;
        self.next_id += 1;
        Ok(id)
    }

    /// Appends the queued sends to the cluster log and acknowledges them; they are stored and
    /// delivered, here too, when the log is read back. While Redis is down they are stored and
    /// delivered here at once, and appended later.
    fn flush_sends_to_cluster(&mut self, sends: Vec<PendingSend>) {
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
            if let Err(err) = self.store.sync().insert_at([(id, &send.message)]) {
                tracing::error!(error = %err, "could not store a message");
                let why = "the server could not store the message; try again";
                fail(&send.peer, ErrorCode::Internal, why, send.message.client_id);
                continue;
            }
            self.metrics.messages_stored.fetch_add(1, Relaxed);
            acknowledge(&send.peer, id, send.message.ts, send.offline, &send.message);
            let message = chat_message(id, send.quote, send.message);
            self.hub.deliver(send.peer.id, &message);
            out.preset_id = Some(id);
            link.defer([out]);
        }
    }

    /// Tells the other nodes of changes already applied here; kept for later while Redis is
    /// down.
    fn share(&mut self, events: Vec<Event>) {
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
    fn publish(&mut self, event: Event) -> Result<(), crate::store::StoreError> {
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
    fn apply(&mut self, event: Event) -> Result<(), crate::store::StoreError> {
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

    fn cluster_signal(&mut self, signal: Signal) {
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
    fn apply_entries(&mut self, entries: Vec<cluster::Entry>) {
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

    fn store_and_deliver(&mut self, messages: Vec<(MsgId, ConnId, Posted)>) {
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
        let stored = self
            .store
            .sync()
            .insert_at(messages.iter().map(|(id, _, m, _)| (*id, m)));
        self.metrics.store_commit(started.elapsed());
        let stored = match stored {
            Ok(stored) => stored,
            Err(err) => {
                let count = messages.len();
                tracing::error!(error = %err, count, "could not store messages of the cluster");
                return;
            }
        };
        let mut delivered: BTreeMap<Nick, MsgId> = BTreeMap::new();
        for ((id, from, new, quote), fresh) in messages.into_iter().zip(stored) {
            if fresh {
                self.metrics.messages_stored.fetch_add(1, Relaxed);
                let message = chat_message(id, quote, new);
                if let Target::User(to) = &message.target
                    && self.hub.has_sessions(to)
                {
                    delivered.insert(to.clone(), id);
                }
                self.hub.deliver(from, &message);
            }
        }
        let mut events = Vec::with_capacity(delivered.len());
        for (nick, up_to) in delivered {
            if let Err(err) = self.store.sync().mark_delivered(&nick, up_to) {
                tracing::error!(error = %err, "could not record a delivery");
            }
            events.push(Event::Delivered { nick, up_to });
        }
        self.share(events);
    }

    fn prune(&mut self) {
        if !self.retention.is_on() {
            return;
        }
        match self.store.sync().prune(self.retention, now_ms()) {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "retention removed old messages"),
            Err(err) => tracing::error!(error = %err, "retention failed"),
        }
    }
}

/// Who to acknowledge a message to once it is stored.
#[derive(Debug)]
struct Sender {
    peer: Peer,
    offline: bool,
}

/// Acknowledges the messages of a transaction of the store writer, or tells their senders it
/// failed (they may resend; the message was delivered already, and is then delivered again).
fn committed(
    metrics: &Metrics,
    batch: Vec<Queued<Sender>>,
    took: std::time::Duration,
    result: Result<(), &StoreError>,
) {
    metrics.store_commit(took);
    match result {
        Ok(()) => {
            metrics
                .messages_stored
                .fetch_add(batch.len() as u64, Relaxed);
            for Queued { id, message, after } in batch {
                acknowledge(&after.peer, id, message.ts, after.offline, &message);
            }
        }
        Err(err) => {
            tracing::error!(error = %err, count = batch.len(), "could not store messages");
            for Queued { message, after, .. } in batch {
                let why = "the server could not store the message; try again";
                fail(&after.peer, ErrorCode::Internal, why, message.client_id);
            }
        }
    }
}

/// Finds whether a sender used a client id before, without waiting for the store writer in
/// the usual case (a new message). Messages are keyed by a hash of sender and client id; a hash
/// seen before is checked in the store after [`Writer::sync`], so a collision costs a sync and
/// never loses a message.
struct Resends {
    hasher: std::collections::hash_map::RandomState,
    seen: Seen,
}

enum Seen {
    /// In memory the store starts empty: every message with a client id since the start.
    All(std::collections::HashSet<u64>),
    /// On disk: messages not yet stored (by id), and a connection reading what is stored.
    Queued {
        pending: std::collections::VecDeque<(MsgId, u64)>,
        counts: std::collections::HashMap<u64, u32>,
        reader: Reader,
    },
}

impl Resends {
    fn new(store: &Store) -> Result<Self, StoreError> {
        let seen = match store.reader()? {
            None => Seen::All(Default::default()),
            Some(reader) => Seen::Queued {
                pending: Default::default(),
                counts: Default::default(),
                reader,
            },
        };
        Ok(Self {
            hasher: Default::default(),
            seen,
        })
    }

    fn key(&self, from: &Nick, client_id: &str) -> u64 {
        use std::hash::BuildHasher;
        self.hasher.hash_one((from.as_str(), client_id))
    }

    /// Remembers that message `id` carries `client_id` of `from`.
    fn note(&mut self, id: MsgId, from: &Nick, client_id: &str) {
        let key = self.key(from, client_id);
        match &mut self.seen {
            Seen::All(all) => {
                all.insert(key);
            }
            Seen::Queued {
                pending, counts, ..
            } => {
                pending.push_back((id, key));
                *counts.entry(key).or_default() += 1;
            }
        }
    }

    /// Prepares for the lookups of a batch of sends: forgets the queued messages the writer
    /// has stored since the last batch, and starts one read of the store for the batch. Its
    /// snapshot begins after that point, so each message is always seen by one or the other.
    fn start_batch(&mut self, store: &Writer<Sender>) {
        let Seen::Queued {
            pending,
            counts,
            reader,
        } = &mut self.seen
        else {
            return;
        };
        let done = store.done_up_to();
        while let Some(&(id, stored)) = pending.front()
            && id <= done
        {
            pending.pop_front();
            if let std::collections::hash_map::Entry::Occupied(mut n) = counts.entry(stored) {
                *n.get_mut() -= 1;
                if *n.get() == 0 {
                    n.remove();
                }
            }
        }
        if let Err(err) = reader.begin() {
            // Each lookup then reads on its own, which is as correct.
            tracing::warn!(error = %err, "could not start a read of the store");
        }
    }

    /// Ends what [`start_batch`](Self::start_batch) started.
    fn end_batch(&mut self) {
        if let Seen::Queued { reader, .. } = &self.seen {
            reader.end();
        }
    }

    /// The id and time of the message `from` sent before with `client_id`, if any. Call it
    /// between [`start_batch`](Self::start_batch) and [`end_batch`](Self::end_batch).
    fn find(
        &mut self,
        store: &Writer<Sender>,
        from: &Nick,
        client_id: &str,
    ) -> Result<Option<(MsgId, i64)>, StoreError> {
        let key = self.key(from, client_id);
        let maybe = match &self.seen {
            Seen::All(all) => all.contains(&key),
            Seen::Queued { counts, reader, .. } => {
                if !counts.contains_key(&key) {
                    return reader.by_client_id(from, client_id);
                }
                true
            }
        };
        if !maybe {
            return Ok(None);
        }
        store.sync().by_client_id(from, client_id)
    }
}

/// A message as the log carries it.
fn posted(send: &PendingSend) -> Posted {
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

/// A stored message as clients see it.
fn chat_message(id: MsgId, reply_to: Option<protocol::Quote>, m: NewMessage) -> ChatMessage {
    ChatMessage {
        id,
        ts: m.ts,
        from: m.from,
        target: m.target,
        text: m.text,
        reply_to,
        edited: None,
        deleted: false,
    }
}

/// Tells the sender its message is stored: an `ack` for native clients, a notice for a seed
/// page when the recipient is offline, nothing for the group page.
fn acknowledge(peer: &Peer, id: MsgId, ts: i64, offline: bool, message: &NewMessage) {
    match peer.kind {
        PeerKind::Native => {
            if let Some(client_id) = &message.client_id {
                let ack = ServerFrame::Ack {
                    client_id: client_id.clone(),
                    id,
                    ts,
                    offline,
                };
                offer(peer, native(&ack));
            }
        }
        PeerKind::SeedSingle if offline => {
            let to = match &message.target {
                Target::User(to) => to.as_str(),
                Target::Room(room) => room.as_str(),
            };
            let text =
                format!("{to} is offline; the message is kept and delivered when they log in");
            offer(
                peer,
                hub::seed(&SeedChat::notice(message.from.as_str(), text)),
            );
        }
        PeerKind::SeedSingle | PeerKind::SeedGroup => {}
    }
}

/// Reports an error in the peer's own protocol.
fn fail(peer: &Peer, code: ErrorCode, message: &str, client_id: Option<String>) {
    fail_to(peer, "", code, message, client_id);
}

/// Reports an error; a seed page's notice is addressed to `to_user`, its own name.
fn fail_to(peer: &Peer, to_user: &str, code: ErrorCode, message: &str, client_id: Option<String>) {
    match peer.kind {
        PeerKind::Native => {
            let frame = ServerFrame::Error {
                code,
                message: message.to_owned(),
                client_id,
            };
            offer(peer, native(&frame));
        }
        // The seed page shows any object it gets; `to_user` is not shown, so it needs no name.
        PeerKind::SeedSingle => {
            offer(peer, hub::seed(&SeedChat::notice(to_user, message)));
        }
        PeerKind::SeedGroup => tracing::debug!(conn = peer.id, %code, message, "group page error"),
    }
}

/// A refused login: an error a native client can retry after; the seed page is told and closed.
fn refuse_login(peer: &Peer, raw: &str, code: ErrorCode, why: &str) {
    tracing::info!(name = raw, reason = why, "login refused");
    match peer.kind {
        PeerKind::Native => fail(peer, code, why, None),
        _ => {
            let text = format!("cannot log in as {raw:?}: {why}");
            offer(peer, hub::seed(&SeedChat::notice(raw, text)));
            peer.close
                .close(crate::peer::CloseReason::Policy("login refused"));
        }
    }
}
