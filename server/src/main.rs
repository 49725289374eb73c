//! `chat-server`: parses the command line into a [`Config`], sets up logging, binds the port,
//! and runs the server until Ctrl-C or SIGTERM.

use anyhow::Context;
use clap::Parser;
use server::Config;
use server::store::{Location, Retention};
use std::path::PathBuf;
use std::time::Duration;
use tracing_subscriber::EnvFilter;

/// A real-time chat server: rooms and direct messages over WebSocket, for the terminal client,
/// the web page at `/`, and the original tutorial pages (`/my_ws`, `/my_ws/<name>`).
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Args {
    /// Address to listen on. Use 0.0.0.0 to accept connections from other machines.
    #[arg(long, env = "CHAT_HOST", default_value = "127.0.0.1")]
    host: String,

    /// Port for HTTP and WebSocket.
    #[arg(long, short, env = "CHAT_PORT", default_value_t = 9527)]
    port: u16,

    /// Log filter, e.g. `info`, `debug`, `server=debug`. RUST_LOG is used when this is not given.
    #[arg(long, env = "CHAT_LOG")]
    log: Option<String>,

    /// Directory of the message store (chat.db). Defaults to $XDG_DATA_HOME/chat-server, or
    /// ~/.local/share/chat-server. Back it up while running with
    /// `sqlite3 DIR/chat.db ".backup backup.db"`.
    #[arg(long, env = "CHAT_DATA_DIR", conflicts_with = "ephemeral")]
    data_dir: Option<PathBuf>,

    /// Keep messages in memory only: history lasts until the server stops. For tests and demos.
    #[arg(long)]
    ephemeral: bool,

    /// Keep at most this many of the newest messages of each conversation (default: all).
    #[arg(long, value_name = "COUNT")]
    retain_messages: Option<u64>,

    /// Delete messages older than this many days (default: keep them).
    #[arg(long, value_name = "DAYS")]
    retain_days: Option<u64>,

    /// Serve https:// and wss:// with this certificate chain (PEM). Needs --tls-key.
    #[arg(long, env = "CHAT_TLS_CERT", requires = "tls_key", value_name = "FILE")]
    tls_cert: Option<PathBuf>,

    /// The private key (PEM) of --tls-cert.
    #[arg(long, env = "CHAT_TLS_KEY", requires = "tls_cert", value_name = "FILE")]
    tls_key: Option<PathBuf>,

    /// Largest WebSocket message accepted, in bytes; a larger one closes the connection (1009).
    #[arg(long, default_value_t = Config::default().max_frame_bytes)]
    max_frame_bytes: usize,

    /// Longest chat message text, in bytes; a longer one is refused with an error.
    #[arg(long, default_value_t = Config::default().max_text_bytes)]
    max_text_bytes: usize,

    /// Frames queued for one connection before it is disconnected as too slow (besides up to a
    /// quarter as many being written). A connection with half as many requests in flight
    /// (messages not yet stored) is not read from meanwhile.
    #[arg(long, default_value_t = Config::default().outbox_frames)]
    outbox_frames: usize,

    /// WebSocket read buffer per connection in bytes, allocated up front (larger messages grow
    /// it). Small keeps idle connections cheap.
    #[arg(long, default_value_t = Config::default().read_buffer_bytes)]
    read_buffer_bytes: usize,

    /// Most bytes of queued frames handed to one write (a room's messages of one round go as
    /// one piece, which may be longer). Frames are encoded once and shared by their
    /// recipients, so no write buffer is kept per connection.
    #[arg(long, default_value_t = Config::default().write_buffer_bytes)]
    write_buffer_bytes: usize,

    /// Most WebSocket connections at once; more are refused with 503. Lowered at start to what
    /// the open-files limit allows.
    #[arg(long, default_value_t = Config::default().max_connections)]
    max_connections: usize,

    /// Most TCP connections from one client address (loopback addresses are exempt).
    #[arg(long, default_value_t = Config::default().max_connections_per_ip)]
    max_connections_per_ip: usize,

    /// Frames one connection may send per second on average; excess frames are refused with
    /// a `rate_limited` error, and a peer that keeps flooding is disconnected. 0 turns it off
    /// (load tests).
    #[arg(long, value_name = "PER_SEC", default_value_t = Config::default().rate_per_sec)]
    rate_limit: u32,

    /// Frames one connection may send at once above the average rate.
    #[arg(long, default_value_t = Config::default().rate_burst)]
    rate_burst: u32,

    /// Also accept WebSocket connections from pages of this origin (repeatable), e.g.
    /// `https://chat.example.org`; `null` allows pages opened from disk, `*` any page. The
    /// server's own origin and loopback origins are always accepted.
    #[arg(long, value_name = "ORIGIN")]
    allow_origin: Vec<String>,

    /// Seconds a user whose connection dropped still shows as online, so that a quick
    /// reconnect makes no leave or join notices (0: announce at once).
    #[arg(long, default_value_t = 5)]
    presence_grace_secs: u64,

    /// Seconds a new connection may take to send its request (and TLS handshake).
    #[arg(long, default_value_t = Config::default().handshake_timeout.as_secs())]
    handshake_timeout_secs: u64,

    /// Seconds a native client may take to log in after connecting.
    #[arg(long, default_value_t = Config::default().login_timeout.as_secs())]
    login_timeout_secs: u64,

    /// Seconds between pings; a connection silent for two intervals is closed.
    #[arg(long, default_value_t = Config::default().ping_interval.as_secs())]
    ping_interval_secs: u64,

    /// Kernel send buffer per connection in bytes (SO_SNDBUF); the kernel tunes it when unset.
    #[arg(long)]
    socket_send_buffer: Option<usize>,

    /// Seconds that shutdown waits for connections to close.
    #[arg(long, default_value_t = Config::default().shutdown_timeout.as_secs())]
    shutdown_timeout_secs: u64,

    /// Join the cluster of every node using this Redis (`redis://host:port[/db]`): several
    /// servers behind a load balancer as one chat service. Without it, one server on its own.
    #[arg(long, env = "CHAT_REDIS", value_name = "URL", help_heading = "Cluster")]
    redis: Option<String>,

    /// This node's name in the cluster, unique among the nodes [default: host name and
    /// process id].
    #[arg(
        long,
        env = "CHAT_NODE_ID",
        requires = "redis",
        help_heading = "Cluster"
    )]
    node_id: Option<String>,

    /// Seconds after which a node that stopped refreshing its heartbeat counts as dead; its
    /// users are then shown offline and can log in on another node.
    #[arg(
        long,
        default_value_t = 10,
        requires = "redis",
        help_heading = "Cluster"
    )]
    node_expiry_secs: u64,

    /// About how many entries the cluster log in Redis keeps; a node that was away for more
    /// than that many changes cannot catch up from it.
    #[arg(
        long,
        default_value_t = 1_000_000,
        requires = "redis",
        help_heading = "Cluster"
    )]
    redis_log_cap: u64,
}

fn main() -> std::process::ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn serve() -> anyhow::Result<()> {
    let args = Args::parse();
    let filter = match &args.log {
        Some(filter) => EnvFilter::try_new(filter).context("parsing --log")?,
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    if args.max_text_bytes > args.max_frame_bytes {
        anyhow::bail!("--max-text-bytes must not be larger than --max-frame-bytes");
    }
    if args.outbox_frames == 0 || args.max_connections == 0 {
        anyhow::bail!("--outbox-frames and --max-connections must be at least 1");
    }
    let store = if args.ephemeral {
        Location::Memory
    } else {
        Location::Dir(match args.data_dir {
            Some(dir) => dir,
            None => default_data_dir(),
        })
    };
    match &store {
        Location::Memory => tracing::info!("messages kept in memory only (--ephemeral)"),
        Location::Dir(dir) => tracing::info!(dir = %dir.display(), "message store"),
    }
    let retention = Retention {
        max_messages: args.retain_messages,
        max_age: args
            .retain_days
            .map(|d| Duration::from_secs(d * 24 * 60 * 60)),
    };
    let tls = match (args.tls_cert, args.tls_key) {
        (Some(cert), Some(key)) => Some(server::tls::TlsFiles { cert, key }),
        _ => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let open_files = raise_open_files_limit();
    let config = Config {
        tls,
        store,
        retention,
        max_frame_bytes: args.max_frame_bytes,
        max_text_bytes: args.max_text_bytes,
        outbox_frames: args.outbox_frames,
        max_connections: args
            .max_connections
            .min(open_files.saturating_sub(RESERVED_FILES).max(1)),
        read_buffer_bytes: args.read_buffer_bytes.max(256),
        write_buffer_bytes: args.write_buffer_bytes,
        socket_send_buffer: args.socket_send_buffer,
        max_connections_per_ip: args.max_connections_per_ip.max(1),
        rate_per_sec: args.rate_limit,
        rate_burst: args.rate_burst,
        allowed_origins: args.allow_origin,
        handshake_timeout: Duration::from_secs(args.handshake_timeout_secs.max(1)),
        login_timeout: Duration::from_secs(args.login_timeout_secs.max(1)),
        ping_interval: Duration::from_secs(args.ping_interval_secs.max(1)),
        presence_grace: Duration::from_secs(args.presence_grace_secs),
        shutdown_timeout: Duration::from_secs(args.shutdown_timeout_secs),
        cluster: args.redis.map(|url| server::cluster::ClusterConfig {
            url,
            node_id: args
                .node_id
                .unwrap_or_else(server::cluster::default_node_id),
            expiry: Duration::from_secs(args.node_expiry_secs.max(1)),
            log_cap: args.redis_log_cap.max(1000),
        }),
        ..Config::default()
    };
    if let Some(cluster) = &config.cluster {
        tracing::info!(
            redis = cluster.url,
            node = cluster.node_id,
            "joining the cluster"
        );
    }

    let server = server::Server::open(config)?;
    let addr = format!("{}:{}", args.host, args.port);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let local = listener.local_addr().context("reading the bound address")?;
    tracing::info!(%local, "chat server listening: web page at {scheme}://{local}/");
    server.serve(listener, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// File descriptors kept for the listener, the store, logs and connections being refused.
const RESERVED_FILES: usize = 64;

/// Each connection is a file descriptor: raises the soft limit to the hard one and returns it.
fn raise_open_files_limit() -> usize {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => {
            tracing::info!(limit, "open files limit");
            usize::try_from(limit).unwrap_or(usize::MAX)
        }
        Err(err) => {
            tracing::warn!(error = %err, "could not raise the open files limit");
            usize::MAX
        }
    }
}

/// `$XDG_DATA_HOME/chat-server`, else `~/.local/share/chat-server`, else `./chat-data`.
fn default_data_dir() -> PathBuf {
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty());
    match std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        Some(data) => PathBuf::from(data).join("chat-server"),
        None => match home {
            Some(home) => PathBuf::from(home).join(".local/share/chat-server"),
            None => PathBuf::from("chat-data"),
        },
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
