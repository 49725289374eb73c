//! Wake-ups held back while a thread fills many outboxes, so that a connection woken once finds
//! many frames to write together.
//!
//! The sequencer delivers a round of messages at a time. Were each connection woken by the
//! first frame of the round, it would often write that frame alone while the rest are still
//! being queued: one write, and one trip through the network stack, per frame. Held back to
//! the end of the round, the wake-ups let each write carry the whole round.

use super::Shared;
use std::cell::RefCell;
use std::sync::Arc;

/// Frames queued while holding after which the held wake-ups go out anyway, so that a long
/// round does not keep its first recipients waiting: at about 0.1 µs a frame, half a
/// millisecond. A round that waits on the store wakes what it held first (see
/// [`release_held_wakes`]).
const MAX_HELD_FRAMES: usize = 4096;

#[derive(Default)]
struct Held {
    /// Connections whose outbox was empty (or held only frames waiting to go out later) when
    /// a frame was queued: to be woken.
    wakes: Vec<Arc<Shared>>,
    /// Frames queued since the last wake-ups.
    frames: usize,
}

thread_local! {
    /// Set on a thread while it holds wake-ups.
    static HELD: RefCell<Option<Held>> = const { RefCell::new(None) };
}

/// Runs `f`, holding back until it returns the wake-ups of the connections whose outboxes it
/// queues frames in on this thread (or until it has queued many frames). Within an outer
/// call, the outer one releases them.
pub fn hold_wakes<R>(f: impl FnOnce() -> R) -> R {
    /// Wakes what is held, even if `f` panics.
    struct Release;
    impl Drop for Release {
        fn drop(&mut self) {
            if let Some(held) = HELD.with_borrow_mut(Option::take) {
                wake(held.wakes);
            }
        }
    }
    if HELD.with_borrow(Option::is_some) {
        return f();
    }
    HELD.with_borrow_mut(|held| *held = Some(Held::default()));
    let _release = Release;
    f()
}

/// Wakes the connections held back so far on this thread, and goes on holding: for a round
/// about to wait on something slow (the store), so that what it queued already goes out.
pub fn release_held_wakes() {
    let due = HELD.with_borrow_mut(|held| {
        let held = held.as_mut()?;
        held.frames = 0;
        Some(std::mem::take(&mut held.wakes))
    });
    if let Some(due) = due {
        wake(due);
    }
}

/// A frame was queued in `shared`'s outbox, which was empty if `was_empty`: whether its
/// wake-up is taken care of (held) rather than left to the caller.
pub(super) fn queued(shared: &Arc<Shared>, was_empty: bool) -> bool {
    let due = HELD.with_borrow_mut(|held| {
        let held = held.as_mut()?;
        if was_empty {
            held.wakes.push(Arc::clone(shared));
        }
        held.frames += 1;
        if held.frames < MAX_HELD_FRAMES {
            return Some(Vec::new());
        }
        held.frames = 0;
        Some(std::mem::take(&mut held.wakes))
    });
    match due {
        None => false,
        Some(due) => {
            wake(due);
            true
        }
    }
}

fn wake(wakes: Vec<Arc<Shared>>) {
    for shared in wakes {
        shared.waker.wake();
    }
}
