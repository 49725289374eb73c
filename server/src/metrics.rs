//! Counters and gauges of one server, served at `/metrics` in the Prometheus text format.
//!
//! Plain atomics: each is written where the event happens (connection tasks, the sequencer)
//! and read only when scraped.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// The server's metrics. Shared behind an `Arc`.
#[derive(Debug, Default)]
pub struct Metrics {
    pub connections_total: AtomicU64,
    pub connections_open: AtomicI64,
    pub users_online: AtomicI64,
    pub frames_received: AtomicU64,
    pub messages_stored: AtomicU64,
    pub deliveries: AtomicU64,
    pub slow_closes: AtomicU64,
    pub rate_limited: AtomicU64,
    pub protocol_closes: AtomicU64,
    pub store_commits: AtomicU64,
    /// Store transactions that failed (their messages wait and are tried again).
    pub store_failures: AtomicU64,
    /// Messages refused because too many waited for a failing store.
    pub store_refused: AtomicU64,
    store_commit_micros: AtomicU64,
    store_commit_max_micros: AtomicU64,
}

impl Metrics {
    /// Counts one store transaction that took `took`.
    pub fn store_commit(&self, took: Duration) {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.store_commits.fetch_add(1, Relaxed);
        self.store_commit_micros.fetch_add(micros, Relaxed);
        self.store_commit_max_micros.fetch_max(micros, Relaxed);
    }

    /// The Prometheus text exposition, with `queue_depth` (requests waiting for the
    /// sequencer) read at scrape time.
    pub fn render(&self, queue_depth: usize) -> String {
        let mut out = String::new();
        let mut put = |name: &str, kind: &str, help: &str, value: String| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        let n = |a: &AtomicU64| a.load(Relaxed).to_string();
        let g = |a: &AtomicI64| a.load(Relaxed).to_string();
        put(
            "chat_connections_total",
            "counter",
            "WebSocket connections accepted.",
            n(&self.connections_total),
        );
        put(
            "chat_connections_open",
            "gauge",
            "WebSocket connections open now.",
            g(&self.connections_open),
        );
        put(
            "chat_users_online",
            "gauge",
            "Named users logged in now.",
            g(&self.users_online),
        );
        put(
            "chat_frames_received_total",
            "counter",
            "Frames received from clients.",
            n(&self.frames_received),
        );
        put(
            "chat_messages_stored_total",
            "counter",
            "Chat messages stored.",
            n(&self.messages_stored),
        );
        put(
            "chat_deliveries_total",
            "counter",
            "Chat messages queued to recipients.",
            n(&self.deliveries),
        );
        put(
            "chat_slow_consumer_closes_total",
            "counter",
            "Connections closed for falling behind.",
            n(&self.slow_closes),
        );
        put(
            "chat_rate_limited_total",
            "counter",
            "Frames refused by the rate limit.",
            n(&self.rate_limited),
        );
        put(
            "chat_protocol_closes_total",
            "counter",
            "Connections closed for breaking the protocol.",
            n(&self.protocol_closes),
        );
        put(
            "chat_sequencer_queue_depth",
            "gauge",
            "Requests waiting for the sequencer.",
            queue_depth.to_string(),
        );
        put(
            "chat_store_commits_total",
            "counter",
            "Store transactions (group commits).",
            n(&self.store_commits),
        );
        put(
            "chat_store_failures_total",
            "counter",
            "Store transactions that failed; their messages wait and are tried again.",
            n(&self.store_failures),
        );
        put(
            "chat_store_refused_total",
            "counter",
            "Messages refused because too many waited for a failing store.",
            n(&self.store_refused),
        );
        let seconds = |a: &AtomicU64| format!("{:.6}", a.load(Relaxed) as f64 / 1e6);
        put(
            "chat_store_commit_seconds_sum",
            "counter",
            "Time spent in store transactions.",
            seconds(&self.store_commit_micros),
        );
        put(
            "chat_store_commit_seconds_max",
            "gauge",
            "Longest store transaction.",
            seconds(&self.store_commit_max_micros),
        );
        out
    }
}
