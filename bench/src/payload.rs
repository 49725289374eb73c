//! The stamp every benchmark message carries in its text: who sent it, its number, and when.
//!
//! The stamp is `~B<sender>.<seq>.<micros>~`, padded with `x` to the requested size. It is plain
//! ASCII with nothing JSON would escape, so it appears verbatim inside any frame that carries the
//! text (a native `message`, a seed single-chat JSON object, a seed group line) and a receiver
//! finds it with one substring search instead of parsing the frame.

use std::sync::OnceLock;
use std::time::Instant;

const MARK: &str = "~B";

/// One message's identity and send time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// The sending client's index within its workload.
    pub sender: u32,
    /// The message's number from that sender, from 0.
    pub seq: u32,
    /// Microseconds since this process's clock origin ([`now_micros`]) when it was sent.
    pub micros: u64,
}

/// Microseconds since the first call in this process. Senders and receivers share the process,
/// so a difference of two readings is a latency.
pub fn now_micros() -> u64 {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    let origin = ORIGIN.get_or_init(Instant::now);
    u64::try_from(origin.elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// The text of a message: the stamp, then `x` up to `size` bytes (never shorter than the stamp).
pub fn encode(stamp: Stamp, size: usize) -> String {
    let mut text = format!("{MARK}{}.{}.{}~", stamp.sender, stamp.seq, stamp.micros);
    if text.len() < size {
        text.extend(std::iter::repeat_n('x', size - text.len()));
    }
    text
}

/// Finds the stamp in a received frame, if it carries one: the first `~B`, then three numbers
/// separated by `.` and closed by `~`. A byte scan, with no searcher to set up: receivers call
/// it for every message, on the cores the server runs on.
pub fn find(frame: &str) -> Option<Stamp> {
    let bytes = frame.as_bytes();
    let mark = MARK.as_bytes();
    let mut at = 0;
    let start = loop {
        at += bytes.get(at..)?.iter().position(|&b| b == mark[0])?;
        if bytes.get(at + 1) == Some(&mark[1]) {
            break at + mark.len();
        }
        at += 1;
    };
    let mut fields = [0u64; 3];
    let mut i = start;
    for (n, field) in fields.iter_mut().enumerate() {
        let first = i;
        while let Some(&digit) = bytes.get(i).filter(|b| b.is_ascii_digit()) {
            *field = field
                .checked_mul(10)?
                .checked_add(u64::from(digit - b'0'))?;
            i += 1;
        }
        let close = if n < 2 { b'.' } else { b'~' };
        if i == first || bytes.get(i) != Some(&close) {
            return None;
        }
        i += 1;
    }
    Some(Stamp {
        sender: u32::try_from(fields[0]).ok()?,
        seq: u32::try_from(fields[1]).ok()?,
        micros: fields[2],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAMP: Stamp = Stamp {
        sender: 3,
        seq: 1999,
        micros: 123_456_789,
    };

    #[test]
    fn a_stamp_is_found_in_the_text_it_was_encoded_into() {
        let text = encode(STAMP, 64);
        assert_eq!(text.len(), 64);
        assert_eq!(find(&text), Some(STAMP));
    }

    #[test]
    fn a_stamp_is_found_inside_a_native_or_seed_frame() {
        let text = encode(STAMP, 100);
        let native = format!(
            r#"{{"type":"message","id":9,"ts":1,"from":"s-1","room":"bench","text":"{text}"}}"#
        );
        let seed = format!(r#"{{"message":"{text}","from_user":"a","to_user":"b"}}"#);
        assert_eq!(find(&native), Some(STAMP));
        assert_eq!(find(&seed), Some(STAMP));
        assert_eq!(find(&format!("guest-1: {text}")), Some(STAMP));
    }

    #[test]
    fn a_size_below_the_stamp_length_keeps_the_whole_stamp() {
        assert_eq!(find(&encode(STAMP, 1)), Some(STAMP));
    }

    #[test]
    fn frames_without_a_stamp_are_ignored() {
        assert_eq!(
            find(r#"{"type":"ack","client_id":"7","id":1,"ts":2}"#),
            None
        );
        assert_eq!(find("~B1.2~"), None);
        assert_eq!(find("~B1.2.3.4~"), None);
        assert_eq!(find("~Bx.2.3~"), None);
        assert_eq!(find("~B1..3~"), None);
        assert_eq!(find("~B4294967296.2.3~"), None, "a sender past u32");
    }

    #[test]
    fn a_tilde_before_the_mark_is_passed_over() {
        let text = format!("~~ ~x {}", encode(STAMP, 1));
        assert_eq!(find(&text), Some(STAMP));
    }
}
