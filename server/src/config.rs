//! Runtime settings of a server, with the defaults `chat-server --help` documents.

use crate::store::{Location, Retention};
use crate::tls::TlsFiles;
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
    /// Frames queued for one connection before it counts as too slow and is disconnected
    /// (besides up to a quarter as many, at most 256, being written).
    /// Half as many of its requests in flight stop the connection from reading more.
    pub outbox_frames: usize,
    /// The WebSocket read buffer of each connection, allocated up front; larger messages grow
    /// it as needed.
    pub read_buffer_bytes: usize,
    /// Most bytes of queued frames handed to one (vectored) write; a longer frame, or a longer
    /// piece of a room's messages of one round (see `wire::Run`), goes alone.
    pub write_buffer_bytes: usize,
    /// The most WebSocket connections served at once; more are answered with 503.
    pub max_connections: usize,
    /// The most TCP connections from one client address; more are answered with 503.
    pub max_connections_per_ip: usize,
    /// Whether loopback addresses are exempt from `max_connections_per_ip` (a local reverse
    /// proxy, load tests).
    pub per_ip_exempt_loopback: bool,
    /// How long a new connection may take to send its request headers (TLS handshake
    /// included); a connection that says nothing is dropped.
    pub handshake_timeout: Duration,
    /// How long a native client may take to log in after connecting.
    pub login_timeout: Duration,
    /// How often the server pings each WebSocket; a connection silent for two intervals
    /// (no pong, no frame) is closed.
    pub ping_interval: Duration,
    /// Frames a connection may send per second on average (0: no limit). Excess frames are
    /// refused with a `rate_limited` error.
    pub rate_per_sec: u32,
    /// Frames a connection may send at once above the average.
    pub rate_burst: u32,
    /// Browser origins allowed besides the server's own and loopback ones (`null` for pages
    /// opened from disk). Clients that send no Origin (not browsers) are always allowed.
    pub allowed_origins: Vec<String>,
    /// The kernel send buffer of each connection (SO_SNDBUF), in bytes; `None` leaves the
    /// kernel's autotuning on. A small buffer bounds the memory a stalled reader can pin in
    /// the kernel and makes it count as too slow sooner.
    pub socket_send_buffer: Option<usize>,
    /// Serve `https://` and `wss://` with this certificate and key; plain HTTP when `None`.
    pub tls: Option<TlsFiles>,
    /// Where messages are stored. The default, for tests and embedding, is in memory; the
    /// `chat-server` binary defaults to a data directory.
    pub store: Location,
    /// Messages delivered but not yet stored at which new ones are refused (with an
    /// `internal` error, "try again") while the store fails; their transactions are retried
    /// until it works again. Bounds the memory they hold.
    pub max_unstored: usize,
    /// How long messages are kept; everything by default.
    pub retention: Retention,
    /// How often retention runs (also once at start).
    pub prune_every: Duration,
    /// How long a native user whose last connection dropped stays shown online, so that a
    /// quick reconnect makes no leave or join notices. Zero (the library default) announces
    /// it at once; the `chat-server` binary defaults to 5 seconds.
    pub presence_grace: Duration,
    /// How long a closing connection may take to deliver its close frame.
    pub close_timeout: Duration,
    /// How long shutdown waits for connections to close before it stops anyway.
    pub shutdown_timeout: Duration,
    /// Join the cluster of every node using this Redis; a single node when `None`.
    pub cluster: Option<crate::cluster::ClusterConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_frame_bytes: 64 * 1024,
            max_text_bytes: 16 * 1024,
            outbox_frames: 1024,
            read_buffer_bytes: 512,
            write_buffer_bytes: 64 * 1024,
            max_connections: 50_000,
            max_connections_per_ip: 64,
            per_ip_exempt_loopback: true,
            handshake_timeout: Duration::from_secs(10),
            login_timeout: Duration::from_secs(30),
            ping_interval: Duration::from_secs(30),
            rate_per_sec: 20,
            rate_burst: 50,
            allowed_origins: Vec::new(),
            socket_send_buffer: None,
            tls: None,
            presence_grace: Duration::ZERO,
            store: Location::Memory,
            max_unstored: 8192,
            retention: Retention::default(),
            prune_every: Duration::from_secs(60),
            close_timeout: Duration::from_secs(10),
            shutdown_timeout: Duration::from_secs(5),
            cluster: None,
        }
    }
}
