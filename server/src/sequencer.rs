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
//! [`Resends`]; a resend of a message delivered but not stored yet (the store failing, say)
//! is acknowledged once that message is stored. While the store fails and too many messages
//! wait for it, new ones are refused before they are delivered. In a cluster, messages are
//! stored here as they are read back from the log, before they are delivered.
//!
//! This file holds the commands and the loop that takes them; the work is in
//! - `login`: logins, resumes, registering a name, `whois`;
//! - `requests`: history, sends, edits, read markers, typing;
//! - `searches`: search, on a thread of its own;
//! - `sends`: ids, delivery and the store writer's acks on a single node, and resends;
//! - `clustered`: the same through the Redis log, and events shared with other nodes.

use crate::cluster::{self, Event, Link, Outgoing, Posted, Signal, position};
use crate::hub::{self, Absence, Hub, HubError, Route, native, now_ms, offer};
use crate::metrics::Metrics;
use crate::peer::{ConnId, InFlight, Peer, PeerKind};
use crate::store::writer::{Ended, Queued, Resend, Writer};
use crate::store::{NewMessage, Reader, Retention, Store, StoreError, conversation};
use protocol::{
    ChatMessage, Cursor, ErrorCode, MsgId, Nick, RoomName, SeedChat, ServerFrame, Target,
};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use tokio::sync::mpsc;

mod clustered;
mod login;
mod requests;
mod searches;
mod sends;

use searches::Searches;
use sends::{Resends, Sender, acknowledge, chat_message, committed};

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
        before: Option<MsgId>,
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
    /// hashes. It prunes by `config.retention` at start. Call it within a Tokio runtime:
    /// password hashing runs on that runtime's blocking pool.
    pub fn start(
        hub: Hub,
        store: Store,
        config: &crate::Config,
        metrics: Arc<Metrics>,
        registered: std::collections::HashMap<Nick, String>,
        cluster: Option<Link>,
    ) -> std::io::Result<(Self, tokio::sync::oneshot::Receiver<()>)> {
        let (retention, presence_grace) = (config.retention, config.presence_grace);
        let (queue, commands) = mpsc::channel(QUEUE);
        let cursor = store
            .meta(cluster::CURSOR_KEY)
            .ok()
            .flatten()
            .unwrap_or_else(|| "0-0".to_owned());
        let applied = position(&cursor);
        let floor = store.id_floor().map_err(std::io::Error::other)?;
        let resends = Resends::new(&store, cluster.is_none()).map_err(std::io::Error::other)?;
        let searches = match store.reader().map_err(std::io::Error::other)? {
            Some(reader) => Some(Searches::start(reader)?),
            None => None,
        };
        let store = Writer::start(store, config.max_unstored, {
            let metrics = metrics.clone();
            // A connection with several messages in a transaction is woken once for their acks.
            Box::new(move |ended| crate::peer::hold_wakes(|| committed(&metrics, ended)))
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
            searches,
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
        peer.outbox.request_sent();
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
    /// The search thread; `None` in memory, where the sequencer searches itself.
    searches: Option<Searches>,
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
    in_flight: InFlight,
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
            // Each connection is woken once for all the round gives it.
            crate::peer::hold_wakes(|| {
                for command in batch.drain(..) {
                    self.handle(command);
                }
                self.flush_sends();
                self.schedule_changes();
                let events = self.hub.take_events();
                self.share(events);
            });
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
        // Counted in flight until the request is carried out: for a message, until it is
        // stored and acknowledged (or refused).
        let in_flight = peer.outbox.taken();
        if let Op::Send {
            client_id,
            target,
            text,
            reply_to,
        } = op
        {
            let send = (client_id, target, text, reply_to);
            return self.queue_send(peer, in_flight, send);
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
            Op::Search {
                text,
                limit,
                before,
            } => self.search(&peer, in_flight, (text, limit, before)),
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

    fn prune(&mut self) {
        if !self.retention.is_on() {
            return;
        }
        let mut store = self.store.sync();
        match store.prune(self.retention, now_ms()) {
            Ok(0) => {}
            Ok(removed) => {
                tracing::info!(removed, "retention removed old messages");
                // Every message given an id is stored (not waiting for a failing store).
                if self.store.done_up_to() + 1 >= self.next_id {
                    self.resends.trim(&store);
                }
            }
            Err(err) => tracing::error!(error = %err, "retention failed"),
        }
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
            peer.close(crate::peer::CloseReason::Policy("login refused"));
        }
    }
}
