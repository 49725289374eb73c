//! Searches, on a thread of their own when the store is on disk.
//!
//! A search may read many messages (a common text in a long history), and the sequencer
//! carries every request in turn: on its thread, one slow search would hold up every message
//! of the server. So the sequencer only stores what is still queued (a search sees every
//! message delivered before it) and hands the search to the `search` thread, which reads the
//! store on a [`Reader`] of its own and answers the peer itself. The peer's request counts in
//! flight until it is answered. In memory, where no second connection sees the store, the
//! sequencer searches itself.

use super::*;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

/// Searches waiting for the search thread; more are refused until it catches up.
const QUEUE: usize = 64;

/// A search handed to the search thread.
struct Job {
    peer: Peer,
    /// The request, in flight until answered.
    _in_flight: InFlight,
    nick: Nick,
    rooms: Vec<RoomName>,
    text: String,
    limit: u32,
}

/// The search thread's queue; the thread ends when this is dropped, after the searches queued.
pub(super) struct Searches {
    jobs: SyncSender<Job>,
}

impl Searches {
    /// Starts the search thread over `reader`.
    pub(super) fn start(reader: Reader) -> std::io::Result<Self> {
        let (jobs, queue) = sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("search".into())
            .spawn(move || run(&reader, &queue))?;
        Ok(Self { jobs })
    }
}

fn run(reader: &Reader, queue: &Receiver<Job>) {
    for job in queue {
        let found = reader.search(&job.nick, &job.rooms, &job.text, job.limit);
        answer(&job.peer, job.text, found);
    }
}

/// Sends `peer` the messages found for `text`, or says the search failed.
fn answer(peer: &Peer, text: String, found: Result<Vec<ChatMessage>, StoreError>) {
    match found {
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

impl Worker {
    pub(super) fn search(
        &mut self,
        peer: &Peer,
        in_flight: InFlight,
        text: String,
        limit: Option<u32>,
    ) {
        let Some(nick) = self.hub.nick_of(peer.id).cloned() else {
            let err = HubError::NotLoggedIn;
            return fail(peer, err.code(), &err.to_string(), None);
        };
        let rooms = self.hub.rooms_of(peer.id);
        let limit = limit.unwrap_or(DEFAULT_PAGE);
        let store = self.store.sync();
        let Some(searches) = &self.searches else {
            let found = store.search(&nick, &rooms, &text, limit);
            return answer(peer, text, found);
        };
        // Every message delivered so far is stored now: the search thread sees them.
        drop(store);
        let job = Job {
            peer: peer.clone(),
            _in_flight: in_flight,
            nick,
            rooms,
            text,
            limit,
        };
        match searches.jobs.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => fail(
                peer,
                ErrorCode::RateLimited,
                "too many searches are waiting; try again in a moment",
                None,
            ),
            Err(TrySendError::Disconnected(_)) => fail(
                peer,
                ErrorCode::Internal,
                "the search failed; try again",
                None,
            ),
        }
    }
}
