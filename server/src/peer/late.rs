//! Wake-ups that wait: frames queued with [`Outbox::try_send_later`](super::Outbox) wake
//! their connection after [`DELAY`], unless a frame queued meanwhile woke it first.
//!
//! A message's acknowledgement goes to its sender once the message is stored; in a
//! conversation the answer follows within a round trip. Written at once, each would take a
//! write (and the client a read) of its own; waiting a little, both go out together. One
//! thread (`late-wake`) keeps the wake-ups due, oldest first.

use super::Shared;
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

/// How long a frame queued to go out later waits for company at most.
pub const DELAY: Duration = Duration::from_millis(3);

struct Late {
    /// Connections to wake, and when: in the order queued, so also in the order due.
    due: Mutex<VecDeque<(Instant, Arc<Shared>)>>,
    /// Signalled when `due` gets its first entry.
    more: Condvar,
}

/// The wake-ups due, and whether their thread runs (`None`: it could not be started).
static LATE: OnceLock<Option<Arc<Late>>> = OnceLock::new();

/// Wakes `shared`'s connection after [`DELAY`] if its late frames still wait then (at once
/// if the thread could not be started).
pub(super) fn wake_later(shared: Arc<Shared>) {
    let late = LATE.get_or_init(|| {
        let late = Arc::new(Late {
            due: Mutex::default(),
            more: Condvar::new(),
        });
        let thread = std::thread::Builder::new().name("late-wake".into()).spawn({
            let late = Arc::clone(&late);
            move || run(&late)
        });
        match thread {
            Ok(_) => Some(late),
            Err(err) => {
                tracing::warn!(error = %err, "cannot start the late-wake thread: acks go out at once");
                None
            }
        }
    });
    let Some(late) = late else {
        return shared.wake_if_unwoken();
    };
    let mut due = late.due.lock().unwrap_or_else(PoisonError::into_inner);
    let first = due.is_empty();
    due.push_back((Instant::now() + DELAY, shared));
    drop(due);
    if first {
        late.more.notify_one();
    }
}

fn run(late: &Late) {
    let mut due = late.due.lock().unwrap_or_else(PoisonError::into_inner);
    loop {
        let now = Instant::now();
        match due.front() {
            None => due = late.more.wait(due).unwrap_or_else(PoisonError::into_inner),
            Some((at, _)) if *at > now => {
                let wait = *at - now;
                due = late
                    .more
                    .wait_timeout(due, wait)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            Some(_) => {
                let mut ready = Vec::new();
                while due.front().is_some_and(|(at, _)| *at <= now) {
                    ready.extend(due.pop_front().map(|(_, shared)| shared));
                }
                if due.is_empty() {
                    // A burst of acks leaves no large buffer behind.
                    due.shrink_to(64);
                }
                drop(due);
                for shared in ready {
                    shared.wake_if_unwoken();
                }
                due = late.due.lock().unwrap_or_else(PoisonError::into_inner);
            }
        }
    }
}
