//! The store writer: a thread that stores messages behind the sequencer.
//!
//! The sequencer gives each message its id, delivers it and queues it here; the writer thread
//! takes everything queued, stores it in one transaction and then calls the hook (which
//! acknowledges the senders). So the sequencer never waits for SQLite on the way of a message,
//! and the busier the server, the more messages share a transaction.
//!
//! Whoever reads or changes the store goes through [`Writer::sync`], which first stores what is
//! still queued, on the caller's thread: every read sees every message delivered before it.
//! Batches are taken from the queue only while the store is locked, so they are stored in the
//! order of their ids.
//!
//! A transaction that fails (disk full, an I/O error, the database locked too long) is rolled
//! back and its messages go back to the head of the queue; the thread tries again after
//! [`FIRST_RETRY`], doubling up to [`LAST_RETRY`], with everything queued since, so ids stay in
//! order and an ack still means "committed". It warns once when the store starts failing and
//! tells when it works again. Meanwhile [`Writer::sync`] leaves the retries to the thread (a
//! read then misses the messages waiting), a resend of a waiting message is found in the queue
//! ([`Writer::find_queued`]) and acknowledged with it ([`Writer::ack_when_stored`]), and once
//! the limit of messages waiting is reached, [`Writer::is_full`] tells the sequencer to refuse
//! new ones.

use super::{NewMessage, Store, StoreError};
use protocol::{MsgId, Nick};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The wait before the first retry of a failed transaction; it doubles after each failure.
pub const FIRST_RETRY: Duration = Duration::from_millis(50);

/// The longest wait between two retries of a failed transaction.
pub const LAST_RETRY: Duration = Duration::from_secs(5);

/// A message with its id, waiting to be stored, and what to do once it is (`after`).
#[derive(Debug)]
pub struct Queued<A> {
    pub id: MsgId,
    pub message: NewMessage,
    pub after: A,
}

/// How a transaction of the writer ended, as the hook hears it.
#[derive(Debug)]
pub enum Ended<'a, A> {
    /// Committed: `stored` are in the store now, and `resent` are resends of messages stored
    /// by it or before it (see [`Writer::ack_when_stored`]), with their original ids and times.
    Committed {
        stored: Vec<Queued<A>>,
        resent: Vec<Queued<A>>,
        took: Duration,
    },
    /// Failed and rolled back; its messages wait at the head of the queue for the next try.
    Failed { error: &'a StoreError },
}

/// What became of a resend handed to [`Writer::ack_when_stored`].
#[derive(Debug)]
pub enum Resend<A> {
    /// Its message is stored: acknowledge it now.
    Stored(Queued<A>),
    /// It waits for its message's transaction.
    Waiting,
    /// As many resends wait as the limit allows messages (a store failing for a while, and
    /// clients resending): refuse it, so that they hold no more memory.
    Refused(Queued<A>),
}

/// Called after each transaction.
pub type OnEnd<A> = Box<dyn Fn(Ended<'_, A>) + Send + Sync + 'static>;

struct Shared<A> {
    store: Mutex<Store>,
    queue: Mutex<Queue<A>>,
    /// Signalled when the queue gets its first message, when a transaction on another thread
    /// failed, and at close.
    wake: Condvar,
    /// The highest id committed: every message up to it is stored.
    done: AtomicU64,
    /// Whether `queue.failing` is set: read without the lock on the way of every message.
    failing: AtomicBool,
    /// Messages waiting at which [`Writer::push`] stores them itself and, while the store
    /// fails, [`Writer::is_full`] holds.
    limit: usize,
    on_end: OnEnd<A>,
}

struct Queue<A> {
    /// Messages not yet stored, ids ascending (a failed batch is put back at the head).
    items: Vec<Queued<A>>,
    /// Messages taken from `items` by the transaction under way.
    writing: usize,
    /// Resends of messages in `items`, acknowledged once those are stored.
    resent: Vec<Queued<A>>,
    closed: bool,
    /// Since when transactions fail; `None` once one commits.
    failing: Option<Failing>,
}

/// A run of failed transactions.
#[derive(Debug, Clone, Copy)]
struct Failing {
    since: Instant,
    attempts: u32,
}

/// The store, and the thread that writes queued messages into it. Owned by the sequencer.
pub struct Writer<A: Send + 'static> {
    shared: Arc<Shared<A>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl<A: Send + 'static> Writer<A> {
    /// Starts the writer thread (named `store-writer`) over `store`. `limit` (at least 1) is
    /// the number of messages waiting at which [`push`](Self::push) stores them itself, or,
    /// while the store fails, [`is_full`](Self::is_full) holds. The thread ends at
    /// [`close`](Self::close) or when the writer is dropped, after storing what was queued.
    pub fn start(store: Store, limit: usize, on_end: OnEnd<A>) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            store: Mutex::new(store),
            queue: Mutex::new(Queue {
                items: Vec::new(),
                writing: 0,
                resent: Vec::new(),
                closed: false,
                failing: None,
            }),
            wake: Condvar::new(),
            done: AtomicU64::new(0),
            failing: AtomicBool::new(false),
            limit: limit.max(1),
            on_end,
        });
        let thread = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("store-writer".into())
                .spawn(move || run(&shared))?
        };
        Ok(Self {
            shared,
            thread: Some(thread),
        })
    }

    /// Queues a message for the writer thread. Never waits for a transaction unless the limit
    /// of messages is waiting already and the store works; then it stores them itself.
    pub fn push(&self, queued: Queued<A>) {
        let mut queue = lock(&self.shared.queue);
        queue.items.push(queued);
        let waiting = queue.items.len();
        drop(queue);
        if waiting == 1 {
            self.shared.wake.notify_one();
        } else if waiting >= self.shared.limit {
            drop(self.sync());
        }
    }

    /// Whether the store fails and the limit of messages waits for it (counting those of a
    /// retry under way). New messages are then refused. While the store works,
    /// [`push`](Self::push) stores them itself instead.
    pub fn is_full(&self) -> bool {
        self.is_full_with(0)
    }

    /// Whether [`is_full`](Self::is_full) would hold with `more` messages pushed besides (a
    /// batch the sequencer is about to hand over).
    pub fn is_full_with(&self, more: usize) -> bool {
        if !self.shared.failing.load(Ordering::Acquire) {
            return false;
        }
        let queue = lock(&self.shared.queue);
        queue.failing.is_some() && queue.items.len() + queue.writing + more >= self.shared.limit
    }

    /// The store, once every message queued so far is stored (by this thread if the writer
    /// has not taken them yet). While the store fails, the messages waiting are left to the
    /// writer thread's retries and are missing from what the store returns. Hold it briefly:
    /// the writer waits for it.
    pub fn sync(&self) -> MutexGuard<'_, Store> {
        // This may wait for a transaction (or run one): the frames the calling round queued
        // so far go out meanwhile.
        crate::peer::release_held_wakes();
        let mut store = lock(&self.shared.store);
        if lock(&self.shared.queue).failing.is_none() && !write_queued(&self.shared, &mut store) {
            // The writer thread takes the retries over.
            self.shared.wake.notify_one();
        }
        store
    }

    /// The id and time of the message `from` sent with `client_id`, if it waits to be stored.
    /// Call it holding `store` from [`sync`](Self::sync): no batch is being written then, so
    /// every message not stored is in the queue. A scan of the queue: for resends only.
    pub fn find_queued(
        &self,
        _store: &MutexGuard<'_, Store>,
        from: &Nick,
        client_id: &str,
    ) -> Option<(MsgId, i64)> {
        lock(&self.shared.queue)
            .items
            .iter()
            .find(|q| q.message.from == *from && q.message.client_id.as_deref() == Some(client_id))
            .map(|q| (q.id, q.message.ts))
    }

    /// Has `resent` (a resend of the queued message `resent.id`) handed to the hook with the
    /// transaction that stores that message, unless that message is stored already or as many
    /// resends wait as the limit allows messages (see [`Resend`]).
    #[must_use = "a resend given back is to be answered now"]
    pub fn ack_when_stored(&self, resent: Queued<A>) -> Resend<A> {
        let mut queue = lock(&self.shared.queue);
        // `done` moves under the queue's lock, so a resend is never left behind.
        if resent.id <= self.done_up_to() {
            return Resend::Stored(resent);
        }
        if queue.resent.len() >= self.shared.limit {
            return Resend::Refused(resent);
        }
        queue.resent.push(resent);
        Resend::Waiting
    }

    /// The highest id committed: every message up to it is stored, and no longer queued.
    pub fn done_up_to(&self) -> MsgId {
        self.shared.done.load(Ordering::Acquire)
    }

    /// Stores what is queued and stops the thread.
    pub fn close(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        lock(&self.shared.queue).closed = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the store writer panicked");
        }
        // One last try, even while the store fails.
        let mut store = lock(&self.shared.store);
        if !write_queued(&self.shared, &mut store) {
            let queue = lock(&self.shared.queue);
            tracing::error!(
                lost = queue.items.len(),
                "stopping while the store fails: messages delivered but not stored are lost, \
                 and their senders were not acknowledged"
            );
        }
    }
}

impl<A: Send + 'static> Drop for Writer<A> {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.stop();
        }
    }
}

impl<A: Send + 'static> std::fmt::Debug for Writer<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("done", &self.done_up_to())
            .finish_non_exhaustive()
    }
}

fn run<A>(shared: &Shared<A>) {
    let mut retry_in = FIRST_RETRY;
    loop {
        {
            let mut queue = lock(&shared.queue);
            while queue.items.is_empty() && !queue.closed {
                queue = shared
                    .wake
                    .wait(queue)
                    .expect("the store queue's lock is never poisoned");
            }
            // At close, `stop` makes the last try.
            if queue.closed && (queue.items.is_empty() || queue.failing.is_some()) {
                return;
            }
            if queue.failing.is_some() {
                let until = Instant::now() + retry_in;
                while !queue.closed {
                    let Some(left) = until.checked_duration_since(Instant::now()) else {
                        break;
                    };
                    queue = shared
                        .wake
                        .wait_timeout(queue, left)
                        .expect("the store queue's lock is never poisoned")
                        .0;
                }
                if queue.closed {
                    return;
                }
                retry_in = (retry_in * 2).min(LAST_RETRY);
            }
        }
        if write_queued(shared, &mut lock(&shared.store)) {
            retry_in = FIRST_RETRY;
        }
    }
}

/// Stores everything queued in one transaction and runs the hook; called with the store
/// locked, so batches follow each other in id order. Returns whether it committed (or had
/// nothing to store); a failed batch goes back to the head of the queue.
fn write_queued<A>(shared: &Shared<A>, store: &mut Store) -> bool {
    let (batch, retry) = {
        let mut queue = lock(&shared.queue);
        queue.writing = queue.items.len();
        (std::mem::take(&mut queue.items), queue.failing.is_some())
    };
    let Some(last) = batch.last().map(|q| q.id) else {
        return true;
    };
    let started = Instant::now();
    let result = store.insert_at(batch.iter().map(|q| (q.id, &q.message)));
    let took = started.elapsed();
    let mut queue = lock(&shared.queue);
    queue.writing = 0;
    match result {
        Ok(new) => {
            shared.done.store(last, Ordering::Release);
            if let Some(failing) = queue.failing.take() {
                shared.failing.store(false, Ordering::Release);
                tracing::info!(
                    stored = batch.len(),
                    attempts = failing.attempts + 1,
                    after_ms = failing.since.elapsed().as_millis() as u64,
                    "the store works again; the messages that waited are stored"
                );
            }
            let resent = queue.resent.extract_if(.., |r| r.id <= last).collect();
            drop(queue);
            // A retry after a half-written transaction (in memory, without a journal) may find
            // some stored already; otherwise the sequencer gives fresh ids and finds resends
            // first, so this is a bug.
            if !retry && new.iter().any(|new| !new) {
                tracing::error!("a queued message was stored already; acknowledging the first");
            }
            (shared.on_end)(Ended::Committed {
                stored: batch,
                resent,
                took,
            });
            // After the acks: they need not wait for the full-text index.
            store.index_if_due();
            true
        }
        Err(error) => {
            let mut batch = batch;
            batch.append(&mut queue.items);
            queue.items = batch;
            match &mut queue.failing {
                Some(failing) => {
                    failing.attempts += 1;
                    tracing::debug!(error = %error, attempts = failing.attempts, "still failing");
                }
                None => {
                    shared.failing.store(true, Ordering::Release);
                    tracing::warn!(
                        error = %error,
                        waiting = queue.items.len(),
                        "could not store messages; they wait and are tried again \
                         until the store works"
                    );
                    queue.failing = Some(Failing {
                        since: Instant::now(),
                        attempts: 1,
                    });
                }
            }
            drop(queue);
            (shared.on_end)(Ended::Failed { error: &error });
            false
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding either lock is a bug; the data is still consistent (SQLite rolls
    // an unfinished transaction back), so carry on with it.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests;
