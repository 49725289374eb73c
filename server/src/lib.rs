//! The chat server: one port serving the web page, the seed tutorial's endpoints and the native
//! protocol.
//!
//! - `config`: [`Config`], limits and timeouts.
//! - `http`: routes by path and WebSocket subprotocol.
//! - `connection`: one peer — reader loop, writer task, bounded outbox, close with a reason.
//! - `native`, `seed`: what each protocol does with the frames it receives.
//! - `hub`: users, rooms, guests and routing, synchronous behind one mutex.
//! - `peer`: the hub's handle on a connection.

pub mod config;
mod connection;
mod http;
pub mod hub;
mod native;
pub mod peer;
mod seed;

pub use config::Config;

use axum::serve::ListenerExt;
use protocol::Limits;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Serves on `listener` until `shutdown` resolves, then closes every connection with a close
/// frame (1001, "server shutting down") and waits for them up to `config.shutdown_timeout`.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let token = CancellationToken::new();
    let tracker = TaskTracker::new();
    let hub = Arc::new(hub::Hub::new(Limits {
        max_text_bytes: config.max_text_bytes,
    }));
    let state = http::AppState {
        hub,
        slots: Arc::new(Semaphore::new(config.max_connections)),
        config: Arc::new(config.clone()),
        shutdown: token.clone(),
        tracker: tracker.clone(),
    };
    let send_buffer = config.socket_send_buffer;
    let listener = listener.tap_io(move |tcp| {
        // Chat frames are small and latency matters more than packet count.
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!(error = %err, "could not set TCP_NODELAY");
        }
        if let Some(size) = send_buffer
            && let Err(err) = socket2::SockRef::from(&*tcp).set_send_buffer_size(size)
        {
            tracing::debug!(error = %err, "could not set the socket send buffer");
        }
    });
    let signal = {
        let token = token.clone();
        async move {
            shutdown.await;
            tracing::info!("shutting down: closing connections");
            token.cancel();
        }
    };
    axum::serve(listener, http::router(state))
        .with_graceful_shutdown(signal)
        .await?;
    // Upgraded WebSocket connections are not hyper's any more; wait for them here.
    tracker.close();
    if tokio::time::timeout(config.shutdown_timeout, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            left = tracker.len(),
            "shutdown deadline passed with connections still open"
        );
    }
    Ok(())
}
