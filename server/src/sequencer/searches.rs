//! Searches, on a thread of their own when the store is on disk.
//!
//! A search may read many messages (a rare text in a long history), and the sequencer carries
//! every request in turn: on its thread, one slow search would hold up every message of the
//! server. So the sequencer only stores what is still queued (a search sees every message
//! delivered before it, unless the store is failing: see [`Writer::sync`]) and hands the
//! search to the `search` thread, which reads the store on a [`Reader`] of its own and
//! answers the peer itself. The peer's request counts in flight until it is answered. In
//! memory, where no second connection sees the store, the sequencer searches itself.

use super::*;
use crate::store::SearchPage;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

/// Searches waiting for the search thread; more are refused until it catches up.
const QUEUE: usize = 64;

/// Searches of one connection waiting at a time, so that one client cannot fill the queue.
const PER_CONNECTION: usize = 4;

/// A search handed to the search thread.
struct Job {
    peer: Peer,
    /// The request, in flight until answered.
    _in_flight: InFlight,
    nick: Nick,
    rooms: Vec<RoomName>,
    text: String,
    limit: u32,
    before: Option<MsgId>,
}

/// The search thread and its queue. Dropping it ends the thread once it has answered the
/// searches queued, and waits for that.
pub(super) struct Searches {
    jobs: Option<SyncSender<Job>>,
    /// Searches queued or under way, per connection.
    waiting: Arc<Mutex<HashMap<ConnId, usize>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Searches {
    /// Starts the search thread over `reader`.
    pub(super) fn start(reader: Reader) -> std::io::Result<Self> {
        let (jobs, queue) = sync_channel(QUEUE);
        let waiting = Arc::new(Mutex::new(HashMap::new()));
        let thread = std::thread::Builder::new().name("search".into()).spawn({
            let waiting = Arc::clone(&waiting);
            move || run(&reader, &queue, &waiting)
        })?;
        Ok(Self {
            jobs: Some(jobs),
            waiting,
            thread: Some(thread),
        })
    }

    /// Queues `job`, or gives it back with why not.
    fn queue(&self, job: Job) -> Result<(), Box<(Job, &'static str)>> {
        let stopping = "the server is shutting down";
        let conn = job.peer.id;
        let mut waiting = lock(&self.waiting);
        if waiting.get(&conn).is_some_and(|n| *n >= PER_CONNECTION) {
            let why = "your searches are still running; wait for their results";
            return Err(Box::new((job, why)));
        }
        let Some(jobs) = &self.jobs else {
            return Err(Box::new((job, stopping)));
        };
        match jobs.try_send(job) {
            Ok(()) => {
                *waiting.entry(conn).or_default() += 1;
                Ok(())
            }
            Err(TrySendError::Full(job)) => {
                let why = "too many searches are waiting; try again in a moment";
                Err(Box::new((job, why)))
            }
            Err(TrySendError::Disconnected(job)) => Err(Box::new((job, stopping))),
        }
    }
}

impl Drop for Searches {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the search thread panicked");
        }
    }
}

fn run(reader: &Reader, queue: &Receiver<Job>, waiting: &Mutex<HashMap<ConnId, usize>>) {
    for job in queue {
        let found = reader.search(&job.nick, &job.rooms, &job.text, job.limit, job.before);
        // No longer waiting before it is answered: the peer may ask again at once.
        {
            let mut waiting = lock(waiting);
            if let Some(n) = waiting.get_mut(&job.peer.id) {
                *n -= 1;
                if *n == 0 {
                    waiting.remove(&job.peer.id);
                }
            }
        }
        answer(&job.peer, job.text, job.before, searched(found));
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What a search found, or why it failed, as its answer says it.
fn searched(found: Result<SearchPage, StoreError>) -> Result<SearchPage, &'static str> {
    found.map_err(|err| {
        tracing::error!(error = %err, "search failed");
        "the search failed; try again"
    })
}

/// Answers `peer`'s search for `text` before `before`: what it found, or why it failed.
fn answer(peer: &Peer, text: String, before: Option<MsgId>, found: Result<SearchPage, &str>) {
    let (results, older, failed) = match found {
        Ok(page) => (page.messages, page.older, None),
        Err(why) => (Vec::new(), None, Some(why.to_owned())),
    };
    let frame = ServerFrame::SearchResults {
        text,
        results,
        before,
        older,
        failed,
    };
    offer(peer, native(&frame));
}

impl Worker {
    pub(super) fn search(
        &mut self,
        peer: &Peer,
        in_flight: InFlight,
        (text, limit, before): (String, Option<u32>, Option<MsgId>),
    ) {
        let Some(nick) = self.hub.nick_of(peer.id).cloned() else {
            let err = HubError::NotLoggedIn;
            return fail(peer, err.code(), &err.to_string(), None);
        };
        let rooms = self.hub.rooms_of(peer.id);
        let limit = limit.unwrap_or(DEFAULT_PAGE);
        let store = self.store.sync();
        let Some(searches) = &self.searches else {
            let found = store.search(&nick, &rooms, &text, limit, before);
            return answer(peer, text, before, searched(found));
        };
        // Every message delivered so far is stored now (unless the store fails): the search
        // thread sees them.
        drop(store);
        let job = Job {
            peer: peer.clone(),
            _in_flight: in_flight,
            nick,
            rooms,
            text,
            limit,
            before,
        };
        if let Err(refused) = searches.queue(job) {
            let (job, why) = *refused;
            answer(peer, job.text, job.before, Err(why));
        }
    }
}
