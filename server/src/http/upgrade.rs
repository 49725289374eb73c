//! The WebSocket upgrade, done here rather than by axum's `WebSocketUpgrade` so that a
//! connection's task holds only what the connection needs: over plain TCP its socket is the
//! bare `TcpStream` (not hyper's boxed upgraded stream), and the task is the [`Connection`]
//! itself rather than a closure around it.
//!
//! The request is checked as axum checks it, with axum's rejections.

use crate::config::Config;
use crate::connection::{Connection, Session, WebSocket};
use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::extract::ws::rejection::{
    ConnectionNotUpgradable, InvalidConnectionHeader, InvalidUpgradeHeader,
    InvalidWebSocketVersionHeader, MethodNotGet, WebSocketKeyHeaderMissing,
    WebSocketUpgradeRejection,
};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_util::task::TaskTracker;
use tungstenite::handshake::derive_accept_key;
use tungstenite::protocol::WebSocketConfig;

/// A WebSocket upgrade request that passed the checks.
pub struct WebSocketUpgrade {
    key: HeaderValue,
    on_upgrade: OnUpgrade,
    protocol: Option<&'static str>,
}

impl<S: Send + Sync> FromRequestParts<S> for WebSocketUpgrade {
    type Rejection = WebSocketUpgradeRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // The checks and their order are axum's, for HTTP/1.1 (the only version served).
        if parts.method != Method::GET {
            return Err(MethodNotGet::default().into());
        }
        if !header_contains(&parts.headers, header::CONNECTION, "upgrade") {
            return Err(InvalidConnectionHeader::default().into());
        }
        if !header_eq(&parts.headers, header::UPGRADE, "websocket") {
            return Err(InvalidUpgradeHeader::default().into());
        }
        let key = parts
            .headers
            .get(header::SEC_WEBSOCKET_KEY)
            .ok_or_else(WebSocketKeyHeaderMissing::default)?
            .clone();
        if !header_eq(&parts.headers, header::SEC_WEBSOCKET_VERSION, "13") {
            return Err(InvalidWebSocketVersionHeader::default().into());
        }
        let on_upgrade = parts
            .extensions
            .remove::<OnUpgrade>()
            .ok_or_else(ConnectionNotUpgradable::default)?;
        Ok(Self {
            key,
            on_upgrade,
            protocol: None,
        })
    }
}

fn header_eq(headers: &HeaderMap, key: HeaderName, value: &str) -> bool {
    headers
        .get(&key)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(value.as_bytes()))
}

fn header_contains(headers: &HeaderMap, key: HeaderName, value: &str) -> bool {
    headers
        .get(&key)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains(value))
}

/// The WebSocket settings of every connection.
fn socket_config(config: &Config) -> WebSocketConfig {
    WebSocketConfig::default()
        // tungstenite allocates (and zero-fills) its read buffer up front: 1 KiB instead of
        // 128 KiB keeps an idle connection small. A chat message of up to 1 KiB is still read
        // in one syscall; a larger one grows the buffer and is read 1 KiB per syscall.
        .read_buffer_size(config.read_buffer_bytes)
        // tungstenite itself writes only pongs and close frames (see `connection::socket`).
        .max_write_buffer_size(64 * 1024)
        .max_message_size(Some(config.max_frame_bytes))
        .max_frame_size(Some(config.max_frame_bytes))
}

/// An upgraded connection: over plain TCP the bare `TcpStream`, else (TLS) hyper's boxed
/// stream, boxed once more to keep the plain case small.
enum Stream {
    Tcp(TcpStream),
    Upgraded(Box<TokioIo<Upgraded>>),
}

impl Stream {
    /// The stream of `upgraded`, and the bytes the client sent right behind its request (which
    /// come first). They are copied, so that hyper's read buffer (8 KiB) is not kept.
    fn new(upgraded: Upgraded) -> (Self, Vec<u8>) {
        match upgraded.downcast::<TokioIo<TcpStream>>() {
            Ok(parts) => (Self::Tcp(parts.io.into_inner()), parts.read_buf.to_vec()),
            // hyper's stream replays what it read ahead.
            Err(upgraded) => (Self::Upgraded(Box::new(TokioIo::new(upgraded))), Vec::new()),
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(tcp) => Pin::new(tcp).poll_read(cx, buf),
            Self::Upgraded(io) => Pin::new(&mut **io).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(tcp) => Pin::new(tcp).poll_write(cx, buf),
            Self::Upgraded(io) => Pin::new(&mut **io).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(tcp) => Pin::new(tcp).poll_write_vectored(cx, bufs),
            Self::Upgraded(io) => Pin::new(&mut **io).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Tcp(tcp) => tcp.is_write_vectored(),
            Self::Upgraded(io) => io.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(tcp) => Pin::new(tcp).poll_flush(cx),
            Self::Upgraded(io) => Pin::new(&mut **io).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(tcp) => Pin::new(tcp).poll_shutdown(cx),
            Self::Upgraded(io) => Pin::new(&mut **io).poll_shutdown(cx),
        }
    }
}

impl WebSocketUpgrade {
    /// Accepts the subprotocol `protocol`, which the client offered.
    pub fn protocol(self, protocol: &'static str) -> Self {
        Self {
            protocol: Some(protocol),
            ..self
        }
    }

    /// Answers the request with `101 Switching Protocols`, and serves `connection` on a task
    /// that `tracker` follows once hyper hands the connection over; `held` is dropped when
    /// that task ends. If the upgrade fails, the connection is abandoned.
    pub fn on_upgrade<S>(
        self,
        tracker: &TaskTracker,
        mut connection: Connection<S>,
        held: impl Send + 'static,
    ) -> Response
    where
        S: Session + 'static,
    {
        let Self {
            key,
            on_upgrade,
            protocol,
        } = self;
        // The task's future is the connection's state for as long as it lives, so it captures
        // only `connection`, `on_upgrade` and `held`, and keeps one socket at a time.
        tracker.spawn(async move {
            let upgraded = match on_upgrade.await {
                Ok(upgraded) => upgraded,
                Err(err) => {
                    tracing::debug!(error = %err, "websocket upgrade failed");
                    connection.abandon().await;
                    return;
                }
            };
            let (stream, read_ahead) = Stream::new(upgraded);
            let config = socket_config(connection.config());
            let write_bytes = connection.config().write_buffer_bytes;
            let mut socket = WebSocket::new(stream, read_ahead, config, write_bytes);
            connection.serve(&mut socket).await;
            drop(held);
        });
        let mut response = Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header(header::CONNECTION, HeaderValue::from_static("upgrade"))
            .header(header::UPGRADE, HeaderValue::from_static("websocket"))
            .header(
                header::SEC_WEBSOCKET_ACCEPT,
                derive_accept_key(key.as_bytes()),
            )
            .body(Body::empty())
            .expect("static headers and a base64 key make a valid response");
        if let Some(protocol) = protocol {
            response.headers_mut().insert(
                header::SEC_WEBSOCKET_PROTOCOL,
                HeaderValue::from_static(protocol),
            );
        }
        response
    }
}
