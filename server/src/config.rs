//! Runtime settings of a server, with the defaults `chat-server --help` documents.

use crate::store::{Location, Retention};
use std::time::Duration;

/// Everything [`crate::run`] needs to know besides the listener. Build with
/// [`Config::default`] and change what differs.
#[derive(Debug, Clone)]
pub struct Config {
    /// The largest WebSocket message (and frame) accepted, in bytes. A larger one closes the
    /// connection with code 1009.
    pub max_frame_bytes: usize,
    /// The longest chat message text, in bytes of UTF-8. A longer one gets a `too_large` error
    /// and the connection stays open.
    pub max_text_bytes: usize,
    /// Frames queued for one connection before it counts as too slow and is disconnected.
    pub outbox_frames: usize,
    /// The most WebSocket connections served at once; more are answered with 503.
    pub max_connections: usize,
    /// The kernel send buffer of each connection (SO_SNDBUF), in bytes; `None` leaves the
    /// kernel's autotuning on. A small buffer bounds the memory a stalled reader can pin in
    /// the kernel and makes it count as too slow sooner.
    pub socket_send_buffer: Option<usize>,
    /// Where messages are stored. The default, for tests and embedding, is in memory; the
    /// `chat-server` binary defaults to a data directory.
    pub store: Location,
    /// How long messages are kept; everything by default.
    pub retention: Retention,
    /// How often retention runs (also once at start).
    pub prune_every: Duration,
    /// How long a closing connection may take to deliver its close frame.
    pub close_timeout: Duration,
    /// How long shutdown waits for connections to close before it stops anyway.
    pub shutdown_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_frame_bytes: 64 * 1024,
            max_text_bytes: 16 * 1024,
            outbox_frames: 1024,
            max_connections: 18_000,
            socket_send_buffer: None,
            store: Location::Memory,
            retention: Retention::default(),
            prune_every: Duration::from_secs(60),
            close_timeout: Duration::from_secs(10),
            shutdown_timeout: Duration::from_secs(5),
        }
    }
}
