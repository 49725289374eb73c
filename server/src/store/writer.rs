//! The store writer: a thread that stores messages behind the sequencer.
//!
//! The sequencer gives each message its id, delivers it and queues it here; the writer thread
//! takes everything queued, stores it in one transaction and then calls the commit hook (which
//! acknowledges the senders). So the sequencer never waits for SQLite on the way of a message,
//! and the busier the server, the more messages share a transaction.
//!
//! Whoever reads or changes the store goes through [`Writer::sync`], which first stores what is
//! still queued, on the caller's thread: every read sees every message delivered before it.
//! Batches are taken from the queue only while the store is locked, so they are stored in the
//! order of their ids.

use super::{NewMessage, Store, StoreError};
use protocol::MsgId;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Messages queued before [`Writer::push`] stores them itself: bounds the memory and the
/// unacknowledged messages when the disk falls behind, and slows the sequencer down to it.
const MAX_QUEUED: usize = 8192;

/// A message with its id, waiting to be stored, and what to do once it is (`after`).
#[derive(Debug)]
pub struct Queued<A> {
    pub id: MsgId,
    pub message: NewMessage,
    pub after: A,
}

/// Called after each transaction with its messages, how long it took and how it ended.
pub type OnCommit<A> =
    Box<dyn Fn(Vec<Queued<A>>, Duration, Result<(), &StoreError>) + Send + Sync + 'static>;

struct Shared<A> {
    store: Mutex<Store>,
    queue: Mutex<Queue<A>>,
    /// Signalled when the queue gets its first message, and at close.
    wake: Condvar,
    /// The highest id whose transaction has ended (committed or failed).
    done: AtomicU64,
    on_commit: OnCommit<A>,
}

struct Queue<A> {
    items: Vec<Queued<A>>,
    closed: bool,
}

/// The store, and the thread that writes queued messages into it. Owned by the sequencer.
pub struct Writer<A: Send + 'static> {
    shared: Arc<Shared<A>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl<A: Send + 'static> Writer<A> {
    /// Starts the writer thread (named `store-writer`) over `store`. It ends at
    /// [`close`](Self::close) or when the writer is dropped, after storing what was queued.
    pub fn start(store: Store, on_commit: OnCommit<A>) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            store: Mutex::new(store),
            queue: Mutex::new(Queue {
                items: Vec::new(),
                closed: false,
            }),
            wake: Condvar::new(),
            done: AtomicU64::new(0),
            on_commit,
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

    /// Queues a message for the writer thread. Never waits for a transaction unless
    /// `MAX_QUEUED` messages are waiting already; then it stores them itself.
    pub fn push(&self, queued: Queued<A>) {
        let mut queue = lock(&self.shared.queue);
        queue.items.push(queued);
        let waiting = queue.items.len();
        drop(queue);
        if waiting == 1 {
            self.shared.wake.notify_one();
        } else if waiting >= MAX_QUEUED {
            drop(self.sync());
        }
    }

    /// The store, once every message queued so far is stored (by this thread if the writer
    /// has not taken them yet). Hold it briefly: the writer waits for it.
    pub fn sync(&self) -> MutexGuard<'_, Store> {
        let mut store = lock(&self.shared.store);
        write_queued(&self.shared, &mut store);
        store
    }

    /// The highest id whose transaction has ended: every message up to it is stored (or was
    /// reported as failed), and no longer in the queue.
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
        drop(self.sync());
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
    loop {
        {
            let mut queue = lock(&shared.queue);
            while queue.items.is_empty() && !queue.closed {
                queue = shared
                    .wake
                    .wait(queue)
                    .expect("the store queue's lock is never poisoned");
            }
            if queue.items.is_empty() {
                return;
            }
        }
        let mut store = lock(&shared.store);
        write_queued(shared, &mut store);
    }
}

/// Stores everything queued in one transaction and runs the commit hook; called with the
/// store locked, so batches follow each other in id order.
fn write_queued<A>(shared: &Shared<A>, store: &mut Store) {
    let batch = std::mem::take(&mut lock(&shared.queue).items);
    let Some(last) = batch.last().map(|q| q.id) else {
        return;
    };
    let started = Instant::now();
    let result = store.insert_at(batch.iter().map(|q| (q.id, &q.message)));
    let took = started.elapsed();
    shared.done.store(last, Ordering::Release);
    match result {
        Ok(new) => {
            if new.iter().any(|new| !new) {
                // The sequencer gives fresh ids and finds resends first, so this is a bug.
                tracing::error!("a queued message was stored already; acknowledging the first");
            }
            (shared.on_commit)(batch, took, Ok(()))
        }
        Err(err) => (shared.on_commit)(batch, took, Err(&err)),
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
mod tests {
    use super::*;
    use crate::store::Location;
    use protocol::{Nick, RoomName, Target};

    fn message(text: &str) -> NewMessage {
        NewMessage {
            from: Nick::parse("alice").expect("nick"),
            target: Target::Room(RoomName::lobby()),
            text: text.into(),
            client_id: None,
            reply_to: None,
            ts: 1,
            delivered_to: None,
        }
    }

    #[test]
    fn a_read_after_push_sees_every_message_queued_before_it() {
        let store = Store::open(&Location::Memory).expect("open");
        let committed = Arc::new(Mutex::new(Vec::new()));
        let seen = committed.clone();
        let writer: Writer<u32> = Writer::start(
            store,
            Box::new(move |batch, _, result| {
                result.expect("stored");
                seen.lock()
                    .expect("lock")
                    .extend(batch.into_iter().map(|q| q.after));
            }),
        )
        .expect("start");
        for n in 1..=1000u32 {
            writer.push(Queued {
                id: MsgId::from(n),
                message: message(&format!("m{n}")),
                after: n,
            });
            if n % 100 == 0 {
                let (page, _) = writer
                    .sync()
                    .history("#lobby", None, None, 1)
                    .expect("history");
                assert_eq!(page[0].text, format!("m{n}"));
                assert_eq!(writer.done_up_to(), MsgId::from(n));
            }
        }
        writer.close();
        let committed = committed.lock().expect("lock");
        assert_eq!(
            *committed,
            (1..=1000).collect::<Vec<_>>(),
            "each once, in order"
        );
    }
}
