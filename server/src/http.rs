//! HTTP routes: the web page, health, and the WebSocket endpoints, all on one port.
//!
//! | path | serves |
//! |---|---|
//! | `GET /`, `GET /my_app` | the web client |
//! | `/ws` | the native protocol; the client must offer the `chat.v1` subprotocol |
//! | `/my_ws` | the native protocol when `chat.v1` is offered, else the seed group page |
//! | `/my_ws/{name}` | the seed single-chat page, logged in as `name` |
//! | `GET /healthz` | `ok` |

use crate::config::Config;
use crate::connection::{self, Link, Session};
use crate::native::NativeSession;
use crate::peer::PeerKind;
use crate::seed::{SeedGroupSession, SeedSingleSession};
use crate::sequencer::Sequencer;
use axum::Router;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use std::sync::Arc;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The web client, embedded in the binary.
const WEB_PAGE: &str = include_str!("../../web/index.html");

/// What every route handler shares.
#[derive(Debug, Clone)]
pub struct AppState {
    pub sequencer: Sequencer,
    pub config: Arc<Config>,
    pub shutdown: CancellationToken,
    /// Every connection task, so that shutdown can wait for them.
    pub tracker: TaskTracker,
    /// One permit per open WebSocket connection, up to `max_connections`.
    pub slots: Arc<Semaphore>,
}

/// The server's routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/my_app", get(page))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/ws", get(native_only))
        .route("/my_ws", get(group_or_native))
        .route("/my_ws/{name}", get(single))
        .with_state(state)
}

async fn page() -> Html<&'static str> {
    Html(WEB_PAGE)
}

fn offers_native(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == protocol::SUBPROTOCOL)
}

async fn native_only(
    ws: WebSocketUpgrade,
    headers: HeaderMap,
    State(app): State<AppState>,
) -> Response {
    if !offers_native(&headers) {
        let why = format!(
            "/ws speaks the native protocol: offer the WebSocket subprotocol {}\n",
            protocol::SUBPROTOCOL
        );
        return (StatusCode::BAD_REQUEST, why).into_response();
    }
    upgrade_native(ws, app)
}

async fn group_or_native(
    ws: WebSocketUpgrade,
    headers: HeaderMap,
    State(app): State<AppState>,
) -> Response {
    if offers_native(&headers) {
        return upgrade_native(ws, app);
    }
    let max = app.config.max_text_bytes;
    upgrade(ws, app, PeerKind::SeedGroup, move |peer| {
        SeedGroupSession::new(peer, max)
    })
}

async fn single(
    ws: WebSocketUpgrade,
    Path(name): Path<String>,
    State(app): State<AppState>,
) -> Response {
    let max = app.config.max_text_bytes;
    upgrade(ws, app, PeerKind::SeedSingle, move |peer| {
        SeedSingleSession::new(peer, name, max)
    })
}

fn upgrade_native(ws: WebSocketUpgrade, app: AppState) -> Response {
    let max = app.config.max_text_bytes;
    let ws = ws.protocols([protocol::SUBPROTOCOL]);
    upgrade(ws, app, PeerKind::Native, move |peer| {
        NativeSession::new(peer, max)
    })
}

/// Accepts the upgrade within the connection limit and runs the connection as a tracked task.
fn upgrade<S: Session + 'static>(
    ws: WebSocketUpgrade,
    app: AppState,
    kind: PeerKind,
    start: impl FnOnce(crate::peer::Peer) -> S + Send + 'static,
) -> Response {
    if app.shutdown.is_cancelled() {
        return (StatusCode::SERVICE_UNAVAILABLE, "server shutting down\n").into_response();
    }
    let Ok(permit) = app.slots.clone().try_acquire_owned() else {
        tracing::warn!(
            max = app.config.max_connections,
            "connection refused: server full"
        );
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "server full, try again later\n",
        )
            .into_response();
    };
    let config = app.config.clone();
    let ws = ws
        // tungstenite allocates its read buffer up front; 4 KiB instead of 128 KiB keeps an
        // idle connection small, and larger messages still grow it as needed.
        .read_buffer_size(4 * 1024)
        .write_buffer_size(16 * 1024)
        .max_write_buffer_size(config.max_frame_bytes * 4 + 64 * 1024)
        .max_message_size(config.max_frame_bytes)
        .max_frame_size(config.max_frame_bytes);
    let (tracker, shutdown, sequencer) = (app.tracker, app.shutdown, app.sequencer);
    ws.on_failed_upgrade(|err| tracing::debug!(error = %err, "websocket upgrade failed"))
        .on_upgrade(move |socket| {
            tracker.track_future(async move {
                let link = Link::new(kind, config.outbox_frames);
                let session = start(link.peer.clone());
                let close_timeout = config.close_timeout;
                connection::serve(socket, link, session, sequencer, shutdown, close_timeout).await;
                drop(permit);
            })
        })
}
