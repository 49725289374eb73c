//! HTTP routes: the web page, health, and the WebSocket endpoints, all on one port.
//!
//! | path | serves |
//! |---|---|
//! | `GET /`, `GET /my_app` | the web client |
//! | `/ws` | the native protocol; the client must offer the `chat.v1` subprotocol |
//! | `/my_ws` | the native protocol when `chat.v1` is offered, else the seed group page |
//! | `/my_ws/{name}` | the seed single-chat page, logged in as `name` |
//! | `GET /healthz` | `ok`, or `degraded: …` for a cluster node that cannot reach Redis |

mod upgrade;

use crate::accept::ConnectionSlot;
use crate::connection::{Connection, Env, Link, Session};
use crate::native::NativeSession;
use crate::peer::PeerKind;
use crate::seed::{SeedGroupSession, SeedSingleSession};
use axum::Router;
use axum::extract::Request;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use std::sync::Arc;
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;
use upgrade::WebSocketUpgrade;

/// The web client, embedded in the binary.
const WEB_PAGE: &str = include_str!("../../web/index.html");

/// What every route handler shares.
#[derive(Debug, Clone)]
pub struct AppState {
    /// What every connection shares: the sequencer, settings, metrics and shutdown signal.
    pub env: Arc<Env>,
    /// Every connection task, so that shutdown can wait for them.
    pub tracker: TaskTracker,
    /// One permit per open WebSocket connection, up to `max_connections`.
    pub slots: Arc<Semaphore>,
    /// Whether Redis answers, for a node of a cluster.
    pub cluster: Option<Arc<crate::cluster::Health>>,
}

/// The server's routes.
pub fn router(state: AppState) -> Router {
    // Every WebSocket route checks the browser origin first.
    let sockets = Router::new()
        .route("/ws", get(native_only))
        .route("/my_ws", get(group_or_native))
        .route("/my_ws/{name}", get(single))
        .route_layer(middleware::from_fn_with_state(state.clone(), check_origin));
    Router::new()
        .route("/", get(page))
        .route("/my_app", get(page))
        .route("/healthz", get(health))
        .route("/metrics", get(metrics))
        .merge(sockets)
        .with_state(state)
}

/// Refuses, with 403, a WebSocket from a page whose origin is not allowed.
async fn check_origin(State(app): State<AppState>, request: Request, next: Next) -> Response {
    if origin_allowed(request.headers(), &app.env.config.allowed_origins) {
        next.run(request).await
    } else {
        forbidden_origin(request.headers())
    }
}

/// `ok`, or for a cluster node that cannot reach Redis, `degraded` and why. Both are 200: a
/// degraded node goes on serving its own clients.
async fn health(State(app): State<AppState>) -> &'static str {
    match &app.cluster {
        Some(health) if health.degraded() => {
            "degraded: Redis is unreachable; serving this node's clients only\n"
        }
        _ => "ok\n",
    }
}

async fn metrics(State(app): State<AppState>) -> impl IntoResponse {
    let mut body = app.env.metrics.render(app.env.sequencer.queue_depth());
    if let Some(health) = &app.cluster {
        let up = u8::from(!health.degraded());
        body.push_str(&format!(
            "# HELP chat_redis_up Whether this cluster node reaches Redis.\n\
             # TYPE chat_redis_up gauge\nchat_redis_up {up}\n"
        ));
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
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

/// Whether a browser page from `Origin` may open a WebSocket here (cross-site WebSocket
/// hijacking defence). Allowed: no Origin (not a browser), the server's own origin, loopback
/// origins (pages opened from another local port), and `--allow-origin` entries.
fn origin_allowed(headers: &HeaderMap, allowed: &[String]) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    if allowed
        .iter()
        .any(|a| a == "*" || a.eq_ignore_ascii_case(origin))
    {
        return true;
    }
    let Some((_, authority)) = origin.split_once("://") else {
        return false; // "null" (a file) and anything odd, unless allowed above
    };
    let same_origin = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .is_some_and(|host| host.eq_ignore_ascii_case(authority));
    same_origin || is_loopback_authority(authority)
}

fn is_loopback_authority(authority: &str) -> bool {
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

async fn native_only(
    ws: WebSocketUpgrade,
    headers: HeaderMap,
    Extension(slot): Extension<ConnectionSlot>,
    State(app): State<AppState>,
) -> Response {
    if !offers_native(&headers) {
        let why = format!(
            "/ws speaks the native protocol: offer the WebSocket subprotocol {}\n",
            protocol::SUBPROTOCOL
        );
        return (StatusCode::BAD_REQUEST, why).into_response();
    }
    upgrade_native(ws, app, slot).await
}

fn forbidden_origin(headers: &HeaderMap) -> Response {
    let origin = headers
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .unwrap_or("?");
    tracing::info!(origin, "refused a WebSocket from a foreign origin");
    let why = format!(
        "pages from {origin} may not connect here; the server allows them with --allow-origin {origin}\n"
    );
    (StatusCode::FORBIDDEN, why).into_response()
}

async fn group_or_native(
    ws: WebSocketUpgrade,
    headers: HeaderMap,
    Extension(slot): Extension<ConnectionSlot>,
    State(app): State<AppState>,
) -> Response {
    if offers_native(&headers) {
        return upgrade_native(ws, app, slot).await;
    }
    let max = app.env.config.max_text_bytes;
    upgrade(
        ws,
        app,
        slot,
        PeerKind::SeedGroup,
        SeedGroupSession::new(max),
    )
    .await
}

async fn single(
    ws: WebSocketUpgrade,
    Extension(slot): Extension<ConnectionSlot>,
    Path(name): Path<String>,
    State(app): State<AppState>,
) -> Response {
    let max = app.env.config.max_text_bytes;
    let session = SeedSingleSession::new(name, max);
    upgrade(ws, app, slot, PeerKind::SeedSingle, session).await
}

async fn upgrade_native(ws: WebSocketUpgrade, app: AppState, slot: ConnectionSlot) -> Response {
    let max = app.env.config.max_text_bytes;
    let ws = ws.protocol(protocol::SUBPROTOCOL);
    upgrade(ws, app, slot, PeerKind::Native, NativeSession::new(max)).await
}

/// Accepts the upgrade within the connection limit and runs the connection as a tracked task.
///
/// The session's first request (a seed page's login) is queued before the handshake response
/// goes out, so anything a client does after seeing the upgrade comes after it.
async fn upgrade<S: Session + 'static>(
    ws: WebSocketUpgrade,
    app: AppState,
    slot: ConnectionSlot,
    kind: PeerKind,
    mut session: S,
) -> Response {
    if app.env.shutdown.is_cancelled() {
        return (StatusCode::SERVICE_UNAVAILABLE, "server shutting down\n").into_response();
    }
    let Ok(permit) = app.slots.clone().try_acquire_owned() else {
        tracing::warn!(
            max = app.env.config.max_connections,
            "connection refused: server full"
        );
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "server full, try again later\n",
        )
            .into_response();
    };
    let link = Link::new(kind, app.env.config.outbox_frames);
    if let Some(op) = session.on_start()
        && app.env.sequencer.submit(&link.peer, op).await.is_err()
    {
        return (StatusCode::SERVICE_UNAVAILABLE, "server shutting down\n").into_response();
    }
    let connection = Connection::new(link, session, app.env);
    ws.on_upgrade(&app.tracker, connection, (permit, slot))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(origin: Option<&str>, host: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_str(host).expect("host"));
        if let Some(origin) = origin {
            h.insert(
                header::ORIGIN,
                HeaderValue::from_str(origin).expect("origin"),
            );
        }
        h
    }

    #[test]
    fn origins_are_checked_against_host_loopback_and_the_allow_list() {
        let host = "chat.example.org";
        let none: &[String] = &[];
        assert!(
            origin_allowed(&headers(None, host), none),
            "no Origin: not a browser"
        );
        assert!(origin_allowed(
            &headers(Some("https://chat.example.org"), host),
            none
        ));
        for local in [
            "http://127.0.0.1:8000",
            "http://localhost:3000",
            "http://[::1]:9",
            "http://127.1.2.3",
        ] {
            assert!(origin_allowed(&headers(Some(local), host), none), "{local}");
        }
        for foreign in [
            "https://evil.example",
            "http://chat.example.org.evil.example",
            "null",
            "garbage",
        ] {
            assert!(
                !origin_allowed(&headers(Some(foreign), host), none),
                "{foreign}"
            );
        }
        let allowed = ["https://friend.example".to_owned(), "null".to_owned()];
        assert!(origin_allowed(
            &headers(Some("https://friend.example"), host),
            &allowed
        ));
        assert!(origin_allowed(&headers(Some("null"), host), &allowed));
        assert!(!origin_allowed(
            &headers(Some("https://evil.example"), host),
            &allowed
        ));
    }
}
