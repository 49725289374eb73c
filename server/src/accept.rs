//! The accept loop: TCP options, the per-address connection limit, the handshake deadline and
//! HTTP/1 with upgrades for each connection.
//!
//! An `accept` error (out of file descriptors, say) never ends the server: it is logged and
//! the loop backs off, then keeps serving.

use crate::config::Config;
use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// Open TCP connections per client address, for `max_connections_per_ip`.
#[derive(Debug, Default)]
struct PerAddress {
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// Holds one place of an address's count; gives it back on drop.
#[derive(Debug)]
pub struct AddressSlot {
    table: Arc<PerAddress>,
    ip: IpAddr,
}

/// The place a connection holds in its address's count, if it counts. Every request carries
/// it, so that a WebSocket keeps it after the HTTP exchange has ended.
#[derive(Debug, Clone)]
pub struct ConnectionSlot(#[allow(dead_code)] Option<Arc<AddressSlot>>);

impl PerAddress {
    fn take(table: &Arc<Self>, ip: IpAddr, max: usize) -> Option<AddressSlot> {
        let mut open = table.open.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(ip).or_default();
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(AddressSlot {
            table: table.clone(),
            ip,
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self.table.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// Accepts connections until `token` is cancelled, serving each with `router` on a task that
/// `tracker` follows.
pub async fn accept_loop(
    listener: TcpListener,
    router: Router,
    config: Arc<Config>,
    tls: Option<TlsAcceptor>,
    token: CancellationToken,
    tracker: TaskTracker,
) {
    let per_address = Arc::new(PerAddress::default());
    let mut backoff = Duration::ZERO;
    loop {
        let accepted = tokio::select! {
            _ = token.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (tcp, addr) = match accepted {
            Ok(accepted) => {
                backoff = Duration::ZERO;
                accepted
            }
            Err(err) => {
                backoff = (backoff * 2).clamp(Duration::from_millis(5), Duration::from_secs(1));
                tracing::warn!(error = %err, retry_in = ?backoff, "accept failed; still serving");
                tokio::select! {
                    _ = token.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => continue,
                }
            }
        };
        configure(&tcp, &config);
        let exempt = config.per_ip_exempt_loopback && addr.ip().is_loopback();
        let slot = if exempt {
            None
        } else {
            match PerAddress::take(&per_address, addr.ip(), config.max_connections_per_ip) {
                Some(slot) => Some(Arc::new(slot)),
                None => {
                    tracing::info!(%addr, "refused: too many connections from this address");
                    tracker.spawn(refuse(tcp));
                    continue;
                }
            }
        };
        let (router, config, token) = (router.clone(), config.clone(), token.clone());
        let slot = ConnectionSlot(slot);
        let tls = tls.clone();
        tracker.spawn(async move {
            let Some(tls) = tls else {
                return serve_http(tcp, addr, slot, router, &config, token).await;
            };
            // The TLS handshake counts against the same deadline as the request headers.
            match tokio::time::timeout(config.handshake_timeout, tls.accept(tcp)).await {
                Ok(Ok(stream)) => serve_http(stream, addr, slot, router, &config, token).await,
                Ok(Err(err)) => tracing::debug!(%addr, error = %err, "TLS handshake failed"),
                Err(_) => tracing::debug!(%addr, "TLS handshake timed out"),
            }
        });
    }
}

fn configure(tcp: &TcpStream, config: &Config) {
    // Chat frames are small and latency matters more than packet count.
    if let Err(err) = tcp.set_nodelay(true) {
        tracing::debug!(error = %err, "could not set TCP_NODELAY");
    }
    if let Some(size) = config.socket_send_buffer
        && let Err(err) = socket2::SockRef::from(tcp).set_send_buffer_size(size)
    {
        tracing::debug!(error = %err, "could not set the socket send buffer");
    }
}

async fn refuse(mut tcp: TcpStream) {
    let body = "too many connections from your address\n";
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), tcp.write_all(response.as_bytes())).await;
}

/// One TCP connection's HTTP/1 exchange: requests until it closes, is upgraded to a WebSocket
/// (which then lives on its own task), sends no headers within the handshake deadline, or the
/// server shuts down.
async fn serve_http<Io>(
    io: Io,
    addr: SocketAddr,
    slot: ConnectionSlot,
    router: Router,
    config: &Config,
    token: CancellationToken,
) where
    Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(addr));
        request.extensions_mut().insert(slot.clone());
        router.clone().oneshot(request)
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(config.handshake_timeout);
    let connection = builder
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        _ = token.cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(err) = result {
        tracing::debug!(%addr, error = %err, "HTTP connection ended with an error");
    }
}
