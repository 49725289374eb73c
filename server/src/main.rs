//! `chat-server`: parses the command line into a [`Config`], sets up logging, binds the port,
//! and runs the server until Ctrl-C or SIGTERM.

use anyhow::Context;
use clap::Parser;
use server::Config;
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

    /// Largest WebSocket message accepted, in bytes; a larger one closes the connection (1009).
    #[arg(long, default_value_t = Config::default().max_frame_bytes)]
    max_frame_bytes: usize,

    /// Longest chat message text, in bytes; a longer one is refused with an error.
    #[arg(long, default_value_t = Config::default().max_text_bytes)]
    max_text_bytes: usize,

    /// Frames queued for one connection before it is disconnected as too slow.
    #[arg(long, default_value_t = Config::default().outbox_frames)]
    outbox_frames: usize,

    /// Most WebSocket connections at once; more are refused with 503.
    #[arg(long, default_value_t = Config::default().max_connections)]
    max_connections: usize,

    /// Kernel send buffer per connection in bytes (SO_SNDBUF); the kernel tunes it when unset.
    #[arg(long)]
    socket_send_buffer: Option<usize>,

    /// Seconds that shutdown waits for connections to close.
    #[arg(long, default_value_t = Config::default().shutdown_timeout.as_secs())]
    shutdown_timeout_secs: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let filter = match &args.log {
        Some(filter) => EnvFilter::try_new(filter).context("parsing --log")?,
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    tracing_subscriber::fmt().with_env_filter(filter).init();

    if args.max_text_bytes > args.max_frame_bytes {
        anyhow::bail!("--max-text-bytes must not be larger than --max-frame-bytes");
    }
    if args.outbox_frames == 0 || args.max_connections == 0 {
        anyhow::bail!("--outbox-frames and --max-connections must be at least 1");
    }
    let config = Config {
        max_frame_bytes: args.max_frame_bytes,
        max_text_bytes: args.max_text_bytes,
        outbox_frames: args.outbox_frames,
        max_connections: args.max_connections,
        socket_send_buffer: args.socket_send_buffer,
        shutdown_timeout: Duration::from_secs(args.shutdown_timeout_secs),
        ..Config::default()
    };

    let addr = format!("{}:{}", args.host, args.port);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let local = listener.local_addr().context("reading the bound address")?;
    tracing::info!(%local, "chat server listening: web page at http://{local}/");
    server::run(listener, config, shutdown_signal())
        .await
        .context("serving")?;
    tracing::info!("stopped");
    Ok(())
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
