//! Counting what a receiving client got: distinct messages (by sender and number), duplicates,
//! latency from the stamp, and whether the server closed it.

use crate::payload::{self, Stamp};
use crate::report::latency_histogram;
use futures_util::{FutureExt, Stream, StreamExt};
use hdrhistogram::Histogram;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_util::sync::CancellationToken;

/// Counters every receiver of a run updates, read by the senders (window), the progress bar
/// and the end-of-run check.
#[derive(Debug)]
pub struct Counters {
    /// Distinct stamped messages received, all receivers together.
    pub delivered: AtomicU64,
    /// Distinct messages received by each tracked receiver; `u64::MAX` once it is closed, so a
    /// closed receiver never holds the senders back.
    pub per_receiver: Vec<AtomicU64>,
}

impl Counters {
    /// Counters for `receivers` tracked receivers.
    pub fn new(receivers: usize) -> Arc<Self> {
        Arc::new(Self {
            delivered: AtomicU64::new(0),
            per_receiver: (0..receivers).map(|_| AtomicU64::new(0)).collect(),
        })
    }

    /// The fewest messages any open tracked receiver has got (`u64::MAX` when there are none).
    pub fn slowest(&self) -> u64 {
        self.per_receiver
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .min()
            .unwrap_or(u64::MAX)
    }
}

/// What one receiver got.
#[derive(Debug)]
pub struct Tally {
    slots: usize,
    seen: Vec<u64>,
    /// Distinct messages received.
    pub distinct: u64,
    /// Messages received again.
    pub duplicates: u64,
    /// Send-to-receive time of each distinct message, in microseconds.
    pub latency: Histogram<u64>,
    /// When the last distinct message arrived, in [`payload::now_micros`].
    pub last_at: Option<u64>,
    /// How the server ended the connection, if it did: `"1008 too slow: …"` or `"ended"`.
    pub closed: Option<String>,
    /// Errors the server sent (native `error` frames, seed notices from `system`).
    pub errors: u64,
    /// The first of them.
    pub first_error: Option<String>,
}

impl Tally {
    /// A tally over `slots` possible messages.
    pub fn new(slots: usize) -> Self {
        Self {
            slots,
            seen: vec![0; slots.div_ceil(64)],
            distinct: 0,
            duplicates: 0,
            latency: latency_histogram(),
            last_at: None,
            closed: None,
            errors: 0,
            first_error: None,
        }
    }

    /// Counts message `slot` stamped at `stamp`; true when it is new.
    pub fn record(&mut self, slot: usize, stamp: Stamp, now_micros: u64) -> bool {
        if slot >= self.slots {
            return false;
        }
        let (word, bit) = (slot / 64, 1u64 << (slot % 64));
        let w = &mut self.seen[word];
        if *w & bit != 0 {
            self.duplicates += 1;
            return false;
        }
        *w |= bit;
        self.distinct += 1;
        self.last_at = Some(now_micros);
        let _ = self
            .latency
            .record(now_micros.saturating_sub(stamp.micros).max(1));
        true
    }

    /// Adds another receiver's figures to this one's (latency and counts; not the seen set).
    pub fn merge(&mut self, other: &Tally) {
        self.distinct += other.distinct;
        self.duplicates += other.duplicates;
        let _ = self.latency.add(&other.latency);
        self.last_at = self.last_at.max(other.last_at);
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error.clone_from(&other.first_error);
        }
    }

    /// Counts `frame` when it is an error from the server.
    pub fn check_error(&mut self, frame: &str) {
        if is_error(frame) {
            self.errors += 1;
            self.first_error.get_or_insert_with(|| frame.to_owned());
        }
    }
}

/// Whether a frame is an error from the server: a native `error` frame, or a seed single-chat
/// notice from `system` (the seed's way of saying a message was not delivered).
pub fn is_error(frame: &str) -> bool {
    frame.contains(r#""type":"error""#) || frame.contains(r#""from_user":"system""#)
}

/// How a close frame reads in a report.
pub fn describe_close(frame: Option<&tungstenite::protocol::CloseFrame>) -> String {
    match frame {
        Some(frame) => format!("{} {}", u16::from(frame.code), frame.reason),
        None => "closed without a reason".to_owned(),
    }
}

/// Messages received one after the other without waiting that share one clock reading: at
/// about a microsecond each, their latency reads at most some 16 µs short.
const SHARED_CLOCK: u32 = 16;

/// Reads `stream` until `stop`, counting stamped messages into a tally of `slots`, with
/// `slot_of` mapping a stamp to its slot (`None`: not one of this run's). `index` is this
/// receiver's place in `counters.per_receiver`, when it is tracked there.
pub async fn read_stamps<S>(
    mut stream: S,
    slots: usize,
    slot_of: impl Fn(Stamp) -> Option<usize>,
    counters: Arc<Counters>,
    index: Option<usize>,
    stop: CancellationToken,
) -> (Tally, S)
where
    S: Stream<Item = Result<Message, tungstenite::Error>> + Unpin,
{
    let mut tally = Tally::new(slots);
    // When the message in hand was received. Messages that are there at once after it share
    // its time, for up to `SHARED_CLOCK` of them: one clock reading per burst, not per message.
    let mut received_at = 0;
    // Messages since the last clock reading; a wait always takes a new one.
    let mut sharing = SHARED_CLOCK;
    loop {
        let next = match stream.next().now_or_never() {
            Some(next) => next,
            None => {
                sharing = SHARED_CLOCK;
                tokio::select! {
                    biased;
                    next = stream.next() => next,
                    _ = stop.cancelled() => break,
                }
            }
        };
        if sharing >= SHARED_CLOCK {
            received_at = payload::now_micros();
            sharing = 0;
        }
        sharing += 1;
        match next {
            Some(Ok(Message::Text(text))) => {
                let Some(stamp) = payload::find(text.as_str()) else {
                    tally.check_error(text.as_str());
                    continue;
                };
                let Some(slot) = slot_of(stamp) else { continue };
                if tally.record(slot, stamp, received_at) {
                    counters.delivered.fetch_add(1, Ordering::Relaxed);
                    if let Some(i) = index {
                        counters.per_receiver[i].fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            Some(Ok(Message::Close(frame))) => {
                tally.closed = Some(describe_close(frame.as_ref()));
                break;
            }
            Some(Ok(_)) => {}
            Some(Err(err)) => {
                tally.closed = Some(format!("error: {err}"));
                break;
            }
            None => {
                tally.closed = Some("ended".to_owned());
                break;
            }
        }
    }
    if tally.closed.is_some()
        && let Some(i) = index
    {
        counters.per_receiver[i].store(u64::MAX, Ordering::Relaxed);
    }
    (tally, stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_counted_apart_from_distinct_messages() {
        let stamp = Stamp {
            sender: 0,
            seq: 5,
            micros: 100,
        };
        let mut tally = Tally::new(130);
        assert!(tally.record(5, stamp, 1100));
        assert!(!tally.record(5, stamp, 1200));
        assert!(tally.record(129, stamp, 300));
        assert!(!tally.record(130, stamp, 300), "out of range is ignored");
        assert_eq!((tally.distinct, tally.duplicates), (2, 1));
        assert_eq!(tally.latency.max(), 1000);
        let mut all = Tally::new(0);
        all.merge(&tally);
        assert_eq!(all.distinct, 2);
    }

    #[test]
    fn server_errors_are_counted_and_the_first_kept() {
        let mut tally = Tally::new(1);
        tally.check_error(r#"{"type":"ack","client_id":"1","id":2,"ts":3}"#);
        let limited = r#"{"type":"error","code":"rate_limited","message":"slow down"}"#;
        tally.check_error(limited);
        tally.check_error(r#"{"message":"bob is not online","from_user":"system","to_user":"a"}"#);
        assert_eq!(tally.errors, 2);
        assert_eq!(tally.first_error.as_deref(), Some(limited));
    }

    #[test]
    fn the_slowest_receiver_ignores_closed_ones() {
        let counters = Counters::new(2);
        counters.per_receiver[0].store(7, Ordering::Relaxed);
        counters.per_receiver[1].store(u64::MAX, Ordering::Relaxed);
        assert_eq!(counters.slowest(), 7);
        assert_eq!(Counters::new(0).slowest(), u64::MAX);
    }
}
