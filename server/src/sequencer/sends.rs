//! Sends on a single node: each gets its id and is delivered with the rest of its batch, then
//! stored behind by the store writer and acknowledged once committed; resends are answered
//! from [`Resends`], or together with the message they repeat when it still waits for the
//! store.

use super::*;

impl Worker {
    /// Gives the queued sends their ids, delivers them and queues them for the store writer,
    /// which acknowledges each once stored. A resend is only acknowledged again.
    ///
    /// The messages are delivered together once they have their ids, so that consecutive ones
    /// to a room go to its members as one run (see [`Hub::deliver`]), and queued for the store
    /// only after that: an ack, which may come as soon as its message is queued, never reaches
    /// its sender before an older message of the same batch (a client resumes after the
    /// highest id it has). A lookup that must first store what is queued delivers and queues
    /// what the batch has so far before it, so that it finds those too.
    pub(super) fn flush_sends(&mut self) {
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
        let mut taken = Taken::default();
        for send in sends {
            let PendingSend {
                peer,
                in_flight,
                offline,
                quote,
                message,
            } = send;
            let earlier = match &message.client_id {
                Some(client_id) => match self.resends.find(&message.from, client_id) {
                    Ok(Lookup::Known(earlier)) => Ok(earlier),
                    Ok(Lookup::AfterSync) => {
                        self.deliver_and_queue(&mut taken);
                        find_after_sync(&self.store, &message.from, client_id)
                    }
                    Err(err) => Err(err),
                },
                None => Ok(None),
            };
            let sender = Sender {
                peer,
                offline,
                _in_flight: in_flight,
            };
            let id = match earlier {
                Ok(None) => self.take_id(&sender.peer, &message, taken.queued.len()),
                Ok(Some(earlier)) => {
                    self.answer_resend(sender, message, earlier);
                    continue;
                }
                Err(err) => Err(err),
            };
            let id = match id {
                Ok(Some(id)) => id,
                Ok(None) => continue,
                Err(err) => {
                    tracing::error!(error = %err, "could not take a message");
                    let why = "the server could not store the message; try again";
                    fail(&sender.peer, ErrorCode::Internal, why, message.client_id);
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
            taken.delivered.push((sender.peer.id, chat));
            if let Some(client_id) = &message.client_id {
                self.resends.note(id, &message.from, client_id);
            }
            taken.queued.push(Queued {
                id,
                message,
                after: sender,
            });
        }
        if lookups {
            self.resends.end_batch();
        }
        self.deliver_and_queue(&mut taken);
    }

    /// Delivers the messages `taken` holds, then queues them for the store writer.
    fn deliver_and_queue(&mut self, taken: &mut Taken) {
        self.hub.deliver(&taken.delivered);
        taken.delivered.clear();
        for queued in taken.queued.drain(..) {
            self.store.push(queued);
        }
    }

    /// The id for a new message, or `None` when it is refused because too many messages wait
    /// for a failing store (its sender is told); `taken` messages of the batch, not yet queued
    /// for the store, count as waiting.
    fn take_id(
        &mut self,
        peer: &Peer,
        message: &NewMessage,
        taken: usize,
    ) -> Result<Option<MsgId>, StoreError> {
        if self.store.is_full_with(taken) {
            self.metrics.store_refused.fetch_add(1, Relaxed);
            let why = "the server cannot store messages at the moment; \
                       the message was not delivered, try again later";
            fail(peer, ErrorCode::Internal, why, message.client_id.clone());
            return Ok(None);
        }
        self.next_id().map(Some)
    }

    /// Answers a resend of a message delivered before: acknowledged now if that one is stored,
    /// else together with it once it is.
    fn answer_resend(&mut self, sender: Sender, mut message: NewMessage, earlier: Earlier) {
        let (id, ts) = match earlier {
            // Only the ack went missing.
            Earlier::Stored { id, ts } => {
                return acknowledge(&sender.peer, id, ts, false, &message);
            }
            Earlier::Queued { id, ts } => (id, ts),
        };
        message.ts = ts;
        let resent = Queued {
            id,
            message,
            after: sender,
        };
        match self.store.ack_when_stored(resent) {
            Resend::Stored(Queued { message, after, .. }) => {
                acknowledge(&after.peer, id, ts, after.offline, &message);
            }
            Resend::Waiting => {}
            Resend::Refused(Queued { message, after, .. }) => {
                self.metrics.store_refused.fetch_add(1, Relaxed);
                let why = "the server cannot store messages at the moment; try again later";
                fail(&after.peer, ErrorCode::Internal, why, message.client_id);
            }
        }
    }

    /// The id for the next message, reserving another block first when needed.
    pub(super) fn next_id(&mut self) -> Result<MsgId, StoreError> {
        if self.next_id > self.reserved {
            let up_to = self.next_id + ID_BLOCK - 1;
            self.store.sync().reserve_ids(up_to)?;
            self.reserved = up_to;
        }
        let id = self.next_id;
        self.next_id += 1;
        Ok(id)
    }
}

/// Who to acknowledge a message to once it is stored.
#[derive(Debug)]
pub(super) struct Sender {
    peer: Peer,
    offline: bool,
    /// Dropped once the message is acknowledged (or refused).
    _in_flight: InFlight,
}

/// Acknowledges the messages of a committed transaction of the store writer, and the resends
/// of them that came while they waited. A failed transaction only counts: its messages wait
/// for the next try, and their senders for their acks.
pub(super) fn committed(metrics: &Metrics, ended: Ended<'_, Sender>) {
    match ended {
        Ended::Committed {
            stored,
            resent,
            took,
        } => {
            metrics.store_commit(took);
            metrics
                .messages_stored
                .fetch_add(stored.len() as u64, Relaxed);
            for Queued { id, message, after } in stored.into_iter().chain(resent) {
                acknowledge(&after.peer, id, message.ts, after.offline, &message);
            }
        }
        Ended::Failed { .. } => {
            metrics.store_failures.fetch_add(1, Relaxed);
        }
    }
}

/// Stored messages whose client ids are read at start into [`Seen::Queued`]'s filter, at most
/// (told by the span of their ids); a store with more checks every new message's client id in
/// the store instead. Reading takes about 0.4 µs each (a million in 0.39 s), so at most about
/// 1.6 s at start.
const MAX_SCANNED: u64 = 4_000_000;

/// Client ids the filter takes in all. It grows in steps of twice the size, about 10 bits
/// per client id each, to about 20 MB at this count; past it, every new message's client id
/// is checked in the store again.
const MAX_FILTERED: usize = 8_000_000;

/// The false positives of the filter's first step (later ones have fewer): each costs one
/// look-up in the store.
const FILTER_ERRORS: f64 = 0.01;

/// Client ids the set of a store in memory holds (about 2 MB) before retention trims it: see
/// [`Resends::trim`].
const TRIM_FROM: usize = 100_000;

/// Finds whether a sender used a client id before, without waiting for the store writer in
/// the usual case (a new message). Messages are keyed by a hash of sender and client id; a hash
/// of a message waiting for the store is checked in the store after [`Writer::sync`], and in
/// the writer's queue (messages a failing store has not taken yet), so a collision costs a
/// sync and never loses a message. A message is forgotten as waiting only once it is
/// committed ([`Writer::done_up_to`]). On disk any other hash is looked up in the store through
/// the reader (no sync), unless the filter of every client id stored tells it is new.
pub(super) struct Resends {
    hasher: std::collections::hash_map::RandomState,
    seen: Seen,
    /// How many client ids [`Seen::All`] held after it was last trimmed.
    trimmed_to: usize,
    /// See [`TRIM_FROM`].
    trim_from: usize,
    /// See [`MAX_FILTERED`].
    max_filtered: usize,
    /// Client ids looked up in the store (by [`Resends::find`], not after a sync).
    #[cfg(test)]
    lookups: u64,
}

pub(super) enum Seen {
    /// In memory the store starts empty: every message with a client id since the start.
    All(std::collections::HashSet<u64>),
    /// On disk: messages not yet stored (by id), a filter of every client id the store may
    /// hold, and a connection reading what is stored.
    Queued {
        pending: std::collections::VecDeque<(MsgId, u64)>,
        counts: std::collections::HashMap<u64, u32>,
        /// Every client id stored at start and noted since (a Bloom filter: no false
        /// negatives, about 1% false positives), so that a client id it has not seen, which
        /// is every new message's, needs no look-up in the store. `None` in a cluster, when
        /// the store had more than [`MAX_SCANNED`] messages at start or could not be read,
        /// and past [`MAX_FILTERED`].
        sent: Option<Box<growable_bloom_filter::GrowableBloom>>,
        reader: Reader,
    },
}

impl Resends {
    /// Resends of the messages in `store` and of those noted later. In a cluster (`!single`)
    /// resends are found another way and the filter is not built.
    pub(super) fn new(store: &Store, single: bool) -> Result<Self, StoreError> {
        let max_scanned = if single { MAX_SCANNED } else { 0 };
        Self::with_limits(store, max_scanned, MAX_FILTERED)
    }

    /// As [`new`](Self::new), reading at most `max_scanned` client ids at start (none: no
    /// filter), and keeping the filter up to `max_filtered`.
    fn with_limits(
        store: &Store,
        max_scanned: u64,
        max_filtered: usize,
    ) -> Result<Self, StoreError> {
        let hasher = std::collections::hash_map::RandomState::new();
        let seen = match store.reader()? {
            None => Seen::All(Default::default()),
            Some(reader) => Seen::Queued {
                pending: Default::default(),
                counts: Default::default(),
                sent: match max_scanned {
                    0 => None,
                    _ => sent_at_start(store, &hasher, max_scanned),
                },
                reader,
            },
        };
        Ok(Self {
            hasher,
            seen,
            trimmed_to: 0,
            trim_from: TRIM_FROM,
            max_filtered,
            #[cfg(test)]
            lookups: 0,
        })
    }

    fn key(&self, from: &Nick, client_id: &str) -> u64 {
        key(&self.hasher, from.as_str(), client_id)
    }

    /// Remembers that message `id` carries `client_id` of `from`.
    pub(super) fn note(&mut self, id: MsgId, from: &Nick, client_id: &str) {
        let key = self.key(from, client_id);
        match &mut self.seen {
            Seen::All(all) => {
                all.insert(key);
            }
            Seen::Queued {
                pending,
                counts,
                sent,
                ..
            } => {
                pending.push_back((id, key));
                *counts.entry(key).or_default() += 1;
                if let Some(filter) = sent {
                    filter.insert(key);
                    if filter.len() > self.max_filtered {
                        tracing::info!(
                            client_ids = filter.len(),
                            "client ids of new messages are looked up in the store from now on"
                        );
                        *sent = None;
                    }
                }
            }
        }
    }

    /// After retention deleted messages from a store in memory: once the set of client ids
    /// holds twice what it held after it was last trimmed (and at least [`TRIM_FROM`]), it is
    /// read again from the store, so that the client ids of deleted messages go. The set then
    /// holds at most about twice what the store does, however long the server runs; reading
    /// takes about 0.4 µs a message, once per doubling. `store` must hold every message noted
    /// (synced, nothing left queued). A resend of a deleted message is then taken as new.
    pub(super) fn trim(&mut self, store: &Store) {
        let Self {
            hasher,
            seen: Seen::All(all),
            trimmed_to,
            trim_from,
            ..
        } = self
        else {
            return;
        };
        if all.len() < (*trim_from).max(2 * *trimmed_to) {
            return;
        }
        let mut kept = std::collections::HashSet::new();
        match store.each_client_id(u64::MAX, |from, client_id| {
            kept.insert(key(hasher, from, client_id));
        }) {
            Ok(_) => {
                tracing::debug!(
                    before = all.len(),
                    after = kept.len(),
                    "forgot the client ids of deleted messages"
                );
                *all = kept;
                *trimmed_to = all.len();
            }
            Err(error) => {
                tracing::warn!(error = %error, "could not read the stored client ids");
            }
        }
    }

    /// Prepares for the lookups of a batch of sends: forgets the queued messages the writer
    /// has stored since the last batch, and starts one read of the store for the batch. Its
    /// snapshot begins after that point, so each message is always seen by one or the other.
    pub(super) fn start_batch(&mut self, store: &Writer<Sender>) {
        let Seen::Queued {
            pending,
            counts,
            reader,
            ..
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
    pub(super) fn end_batch(&mut self) {
        if let Seen::Queued { reader, .. } = &self.seen {
            reader.end();
        }
    }

    /// The message `from` sent before with `client_id`, if any, stored or waiting for the
    /// store, when that can be told without storing what is queued first; else
    /// [`Lookup::AfterSync`]: then [`find_after_sync`] tells. Call it between
    /// [`start_batch`](Self::start_batch) and [`end_batch`](Self::end_batch).
    pub(super) fn find(&mut self, from: &Nick, client_id: &str) -> Result<Lookup, StoreError> {
        let key = self.key(from, client_id);
        let maybe = match &self.seen {
            Seen::All(all) => all.contains(&key),
            Seen::Queued {
                counts,
                sent,
                reader,
                ..
            } => {
                if !counts.contains_key(&key) {
                    if sent.as_ref().is_some_and(|sent| !sent.contains(key)) {
                        return Ok(Lookup::Known(None));
                    }
                    #[cfg(test)]
                    {
                        self.lookups += 1;
                    }
                    let stored = reader.by_client_id(from, client_id)?;
                    let earlier = stored.map(|(id, ts)| Earlier::Stored { id, ts });
                    return Ok(Lookup::Known(earlier));
                }
                true
            }
        };
        Ok(if maybe {
            Lookup::AfterSync
        } else {
            Lookup::Known(None)
        })
    }
}

/// The key of a sender's client id.
fn key(hasher: &std::collections::hash_map::RandomState, from: &str, client_id: &str) -> u64 {
    use std::hash::BuildHasher;
    hasher.hash_one((from, client_id))
}

/// A filter of the client ids in `store`, or `None` when it holds more than `max_scanned`
/// messages or cannot be read (every client id is then looked up in the store).
fn sent_at_start(
    store: &Store,
    hasher: &std::collections::hash_map::RandomState,
    max_scanned: u64,
) -> Option<Box<growable_bloom_filter::GrowableBloom>> {
    let started = std::time::Instant::now();
    // Gathered first, so that the filter is sized for them from the start: each growth adds
    // a part that every check reads too.
    let mut keys = Vec::new();
    match store.each_client_id(max_scanned, |from, client_id| {
        keys.push(key(hasher, from, client_id))
    }) {
        Ok(true) => {}
        Ok(false) => {
            tracing::info!(
                more_than = max_scanned,
                "many stored messages: the client ids of new messages are looked up in the store"
            );
            return None;
        }
        Err(error) => {
            tracing::warn!(
                error = %error,
                "could not read the stored client ids: those of new messages are looked up in \
                 the store"
            );
            return None;
        }
    }
    let mut filter = growable_bloom_filter::GrowableBloomBuilder::new()
        .estimated_insertions((2 * keys.len()).max(1_000_000))
        .desired_error_ratio(FILTER_ERRORS)
        .build();
    for key in &keys {
        filter.insert(key);
    }
    tracing::debug!(
        client_ids = keys.len(),
        took_ms = started.elapsed().as_millis() as u64,
        "read the client ids of the stored messages"
    );
    Some(Box::new(filter))
}

/// What [`Resends::find`] could tell.
pub(super) enum Lookup {
    /// The earlier message, or that there is none.
    Known(Option<Earlier>),
    /// Maybe one: ask [`find_after_sync`], which stores what is queued first.
    AfterSync,
}

/// The message `from` sent before with `client_id`, if any, stored or waiting for the store;
/// what is queued is stored first, unless the store fails: then the message may still wait.
pub(super) fn find_after_sync(
    store: &Writer<Sender>,
    from: &Nick,
    client_id: &str,
) -> Result<Option<Earlier>, StoreError> {
    let synced = store.sync();
    if let Some((id, ts)) = store.find_queued(&synced, from, client_id) {
        return Ok(Some(Earlier::Queued { id, ts }));
    }
    let stored = synced.by_client_id(from, client_id)?;
    Ok(stored.map(|(id, ts)| Earlier::Stored { id, ts }))
}

/// Messages of a batch of sends with their ids, to be delivered and then queued for the store.
#[derive(Default)]
struct Taken {
    delivered: Vec<(ConnId, ChatMessage)>,
    queued: Vec<Queued<Sender>>,
}

/// A message sent before with the client id of a new one: its id and time.
pub(super) enum Earlier {
    /// Stored: the resend is acknowledged now.
    Stored { id: MsgId, ts: i64 },
    /// Delivered and waiting for the store: the resend is acknowledged once it is stored.
    Queued { id: MsgId, ts: i64 },
}

/// A stored message as clients see it.
pub(super) fn chat_message(
    id: MsgId,
    reply_to: Option<protocol::Quote>,
    m: NewMessage,
) -> ChatMessage {
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
pub(super) fn acknowledge(peer: &Peer, id: MsgId, ts: i64, offline: bool, message: &NewMessage) {
    match peer.kind {
        PeerKind::Native => {
            if let Some(client_id) = &message.client_id {
                let ack = ServerFrame::Ack {
                    client_id: client_id.clone(),
                    id,
                    ts,
                    offline,
                };
                hub::offer_later(peer, native(&ack));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Location;

    fn alice() -> Nick {
        Nick::parse("alice").expect("a valid nick")
    }

    /// A store on disk holding `n` messages of alice's with client ids `c0`, `c1`, ….
    fn store_with(dir: &tempfile::TempDir, n: u64) -> Store {
        let mut store = Store::open(&Location::Dir(dir.path().to_owned())).expect("store");
        let messages: Vec<NewMessage> = (0..n).map(store_message).collect();
        store.insert_at((1..).zip(&messages)).expect("stored");
        store
    }

    /// Alice's message `i` to the lobby, with client id `c<i>`.
    fn store_message(i: u64) -> NewMessage {
        NewMessage {
            from: alice(),
            target: Target::Room(protocol::RoomName::parse("lobby").expect("room")),
            text: format!("message {i}"),
            client_id: Some(format!("c{i}")),
            reply_to: None,
            ts: 1_764_000_000_000 + i as i64,
            delivered_to: None,
        }
    }

    fn found(resends: &mut Resends, client_id: &str) -> Option<MsgId> {
        match resends.find(&alice(), client_id).expect("a lookup") {
            Lookup::Known(Some(Earlier::Stored { id, .. })) => Some(id),
            Lookup::Known(None) => None,
            Lookup::Known(Some(Earlier::Queued { .. })) | Lookup::AfterSync => {
                panic!("{client_id} is not queued")
            }
        }
    }

    /// Looks up `n` client ids no one used, and returns how many were looked up in the store.
    fn new_ones_looked_up(resends: &mut Resends, n: usize) -> u64 {
        let before = resends.lookups;
        for i in 0..n {
            assert_eq!(found(resends, &format!("new{i}")), None);
        }
        resends.lookups - before
    }

    #[test]
    fn new_client_ids_are_not_looked_up_and_every_stored_one_is_found() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = store_with(&dir, 5_000);
        let mut resends = Resends::new(&store, true).expect("resends");
        for i in 0..5_000 {
            assert_eq!(found(&mut resends, &format!("c{i}")), Some(i + 1));
        }
        assert_eq!(resends.lookups, 5_000, "a stored client id is looked up");
        // The filter is sized for a million: a false positive among 1,000 is already rare.
        let looked_up = new_ones_looked_up(&mut resends, 1_000);
        assert!(
            looked_up < 20,
            "{looked_up} of 1,000 new client ids were looked up"
        );

        // One noted since the start is queued at first, and once stored it is found through
        // the filter and the store.
        resends.note(5_001, &alice(), "later");
        assert!(matches!(
            resends.find(&alice(), "later").expect("a lookup"),
            Lookup::AfterSync
        ));
        let later = NewMessage {
            client_id: Some("later".into()),
            ..store_message(5_000)
        };
        store.insert_at([(5_001, &later)]).expect("stored");
        let Seen::Queued {
            pending, counts, ..
        } = &mut resends.seen
        else {
            panic!("a store on disk")
        };
        // As `start_batch` forgets it once the writer has committed it.
        pending.clear();
        counts.clear();
        assert_eq!(found(&mut resends, "later"), Some(5_001));
    }

    #[test]
    fn a_store_too_large_to_read_at_start_has_every_client_id_looked_up() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store_with(&dir, 100);
        let mut resends = Resends::with_limits(&store, 99, MAX_FILTERED).expect("resends");
        assert_eq!(found(&mut resends, "c99"), Some(100));
        assert_eq!(new_ones_looked_up(&mut resends, 10), 10);
        // A store of exactly the limit is read whole.
        let mut resends = Resends::with_limits(&store, 100, MAX_FILTERED).expect("resends");
        assert_eq!(found(&mut resends, "c0"), Some(1));
        assert_eq!(new_ones_looked_up(&mut resends, 10), 0);
        // In a cluster resends are found another way: no filter.
        let mut resends = Resends::new(&store, false).expect("resends");
        assert_eq!(new_ones_looked_up(&mut resends, 10), 10);
    }

    /// Whether a resend of `client_id` of alice's must be looked for in the store.
    fn maybe_sent(resends: &mut Resends, client_id: &str) -> bool {
        match resends.find(&alice(), client_id).expect("a lookup") {
            Lookup::AfterSync => true,
            Lookup::Known(None) => false,
            Lookup::Known(Some(_)) => panic!("a store in memory is looked up after a sync"),
        }
    }

    #[test]
    fn in_memory_the_client_ids_of_messages_retention_deleted_are_forgotten() {
        let mut store = Store::open(&Location::Memory).expect("store");
        let mut resends = Resends::new(&store, true).expect("resends");
        resends.trim_from = 20;
        let messages: Vec<NewMessage> = (0..30).map(store_message).collect();
        store.insert_at((1..).zip(&messages)).expect("stored");
        for i in 0..30 {
            resends.note(i + 1, &alice(), &format!("c{i}"));
        }
        assert!(maybe_sent(&mut resends, "c0"));
        let keep_ten = crate::store::Retention {
            max_messages: Some(10),
            max_age: None,
        };
        assert_eq!(store.prune(keep_ten, 0).expect("pruned"), 20);
        resends.trim(&store);
        for i in 0..20 {
            assert!(
                !maybe_sent(&mut resends, &format!("c{i}")),
                "c{i} is deleted"
            );
        }
        for i in 20..30 {
            assert!(maybe_sent(&mut resends, &format!("c{i}")), "c{i} is kept");
        }
        assert!(!maybe_sent(&mut resends, "new"));

        // Read again only once it has doubled since.
        let more: Vec<NewMessage> = (30..39).map(store_message).collect();
        store.insert_at((31..).zip(&more)).expect("stored");
        for i in 30..39 {
            resends.note(i + 1, &alice(), &format!("c{i}"));
        }
        assert_eq!(store.prune(keep_ten, 0).expect("pruned"), 9);
        resends.trim(&store);
        assert!(maybe_sent(&mut resends, "c20"), "19 held: not read again");
        let last = NewMessage {
            client_id: Some("c39".into()),
            ..store_message(39)
        };
        store.insert_at([(40, &last)]).expect("stored");
        resends.note(40, &alice(), "c39");
        assert_eq!(store.prune(keep_ten, 0).expect("pruned"), 1);
        resends.trim(&store);
        assert!(!maybe_sent(&mut resends, "c20"), "20 held: read again");
        assert!(maybe_sent(&mut resends, "c39"));
    }

    #[test]
    fn past_its_limit_the_filter_goes_and_every_client_id_is_looked_up() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store_with(&dir, 10);
        let mut resends = Resends::with_limits(&store, 100, 12).expect("resends");
        assert_eq!(new_ones_looked_up(&mut resends, 10), 0);
        resends.note(11, &alice(), "n11");
        resends.note(12, &alice(), "n12");
        assert_eq!(new_ones_looked_up(&mut resends, 10), 0, "12 held: kept");
        resends.note(13, &alice(), "n13");
        assert_eq!(new_ones_looked_up(&mut resends, 10), 10, "13: gone");
    }
}
