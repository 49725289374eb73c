//! The network task: connects, reads and writes frames, and reconnects with backoff and jitter.
//!
//! It holds no chat state. It reports [`NetEvent`]s to the app and sends the frames the app
//! gives it; what was not acknowledged is the app's to resend (it keeps its outbox), so frames
//! given while disconnected are dropped here.

use crate::msg::NetEvent;
use futures_util::{SinkExt, StreamExt};
use protocol::{ClientFrame, ServerFrame};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

/// The first retry waits about this long; each further one doubles it.
const BACKOFF_BASE_MS: u64 = 250;
/// The longest wait between two tries.
const BACKOFF_MAX_MS: u64 = 8_000;
/// How long opening a connection may take before it counts as failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Where to connect, and for `wss://` the TLS settings (trusting only the CA given with `--ca`).
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The WebSocket URL (`ws://` or `wss://`, with its path).
    pub url: String,
    tls: Option<Arc<rustls::ClientConfig>>,
}

/// Why an [`Endpoint`] cannot be used; worded for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointError(pub String);

impl std::fmt::Display for EndpointError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for EndpointError {}

impl Endpoint {
    /// The endpoint for `url`. A `wss://` URL needs `ca`, a PEM file of the certificate(s) to
    /// trust (a CA, or the server's self-signed certificate): this client loads no system roots.
    pub fn new(url: String, ca: Option<&Path>) -> Result<Self, EndpointError> {
        let secure = url.starts_with("wss://");
        let tls = match (secure, ca) {
            (false, _) => None,
            (true, None) => {
                return Err(EndpointError(format!(
                    "{url} needs the certificate to trust: give it with --ca FILE (or CHAT_CA); \
                     this client loads no system certificates"
                )));
            }
            (true, Some(ca)) => Some(tls_config(ca)?),
        };
        Ok(Self { url, tls })
    }
}

impl From<String> for Endpoint {
    /// A `ws://` endpoint (a `wss://` URL without a CA fails at every connect, with the reason).
    fn from(url: String) -> Self {
        Self { url, tls: None }
    }
}

/// A TLS client configuration (rustls with ring) trusting exactly the certificates in `ca`.
fn tls_config(ca: &Path) -> Result<Arc<rustls::ClientConfig>, EndpointError> {
    let shown = ca.display();
    let certs = CertificateDer::pem_file_iter(ca)
        .map_err(|e| EndpointError(format!("--ca {shown}: {e}")))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| EndpointError(format!("--ca {shown}: {e}")))?;
    if certs.is_empty() {
        return Err(EndpointError(format!(
            "--ca {shown}: no PEM certificate in the file"
        )));
    }
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| EndpointError(format!("--ca {shown}: {e}")))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| EndpointError(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// How the network task behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetConfig {
    /// A connection that brought nothing (not even the server's pings, every 30 s) for this
    /// long is taken as lost, so a dead network is noticed without waiting for TCP to give up.
    pub silence_limit: Duration,
}

impl Default for NetConfig {
    fn default() -> Self {
        Self {
            silence_limit: Duration::from_secs(75),
        }
    }
}

/// The wait before retry number `attempt` (1 for the first retry): exponential, capped, and
/// scaled by `jitter` in `[0.5, 1.0]` so that many clients do not come back at the same instant.
pub fn backoff_ms(attempt: u32, jitter: f64) -> u64 {
    let exp = BACKOFF_BASE_MS.saturating_mul(1 << attempt.saturating_sub(1).min(16));
    let capped = exp.min(BACKOFF_MAX_MS) as f64;
    (capped * jitter.clamp(0.5, 1.0)) as u64
}

/// Turns what the user wrote into the WebSocket URL: adds `ws://` when no scheme is given and
/// the `/ws` path when none is given.
pub fn endpoint_url(server: &str) -> String {
    let with_scheme = if server.contains("://") {
        server.to_owned()
    } else {
        format!("ws://{server}")
    };
    let after_scheme = with_scheme.find("://").map_or(0, |i| i + 3);
    match with_scheme[after_scheme..].find('/') {
        None => format!("{with_scheme}/ws"),
        Some(i) if after_scheme + i + 1 == with_scheme.len() => format!("{with_scheme}ws"),
        Some(_) => with_scheme,
    }
}

/// A small xorshift generator for jitter; seeded from the clock, good enough to spread retries.
struct Jitter(u64);

impl Jitter {
    fn new() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Self(nanos ^ u64::from(std::process::id()) << 32 | 1)
    }

    /// A number in `[0.5, 1.0)`.
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        0.5 + (self.0 >> 11) as f64 / (1u64 << 53) as f64 / 2.0
    }
}

/// Runs the connection to `url` until the app drops its end of either channel.
///
/// `to_app` carries events to the app; `from_app` the frames to send. Before reporting
/// `Connected` it throws away frames queued for an earlier connection, so nothing reaches the
/// server before the app's `login`.
pub async fn run(
    endpoint: impl Into<Endpoint>,
    config: NetConfig,
    to_app: mpsc::Sender<NetEvent>,
    mut from_app: mpsc::Receiver<ClientFrame>,
) {
    let endpoint = endpoint.into();
    let mut jitter = Jitter::new();
    let mut attempt: u32 = 0;
    loop {
        if to_app.send(NetEvent::Connecting { attempt }).await.is_err() {
            return;
        }
        let reason = match connect(&endpoint).await {
            Ok(ws) => {
                while from_app.try_recv().is_ok() {}
                if to_app.send(NetEvent::Connected).await.is_err() {
                    return;
                }
                attempt = 0;
                match session(ws, config, &to_app, &mut from_app).await {
                    Some(reason) => reason,
                    None => return,
                }
            }
            Err(reason) => reason,
        };
        attempt = attempt.saturating_add(1);
        let wait = backoff_ms(attempt, jitter.next());
        let event = NetEvent::Disconnected {
            reason,
            attempt,
            retry_in_ms: wait,
        };
        if to_app.send(event).await.is_err() {
            return;
        }
        let sleep = tokio::time::sleep(Duration::from_millis(wait));
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                () = &mut sleep => break,
                frame = from_app.recv() => if frame.is_none() { return },
            }
        }
    }
}

/// The byte stream under the WebSocket: plain TCP, or TLS over TCP.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

type Ws = tokio_tungstenite::WebSocketStream<Box<dyn Io>>;

async fn connect(endpoint: &Endpoint) -> Result<Ws, String> {
    match tokio::time::timeout(CONNECT_TIMEOUT, open(endpoint)).await {
        Ok(result) => result,
        Err(_) => Err("timed out connecting".into()),
    }
}

/// TCP, then TLS for `wss://`, then the WebSocket handshake with the `chat.v1` subprotocol.
async fn open(endpoint: &Endpoint) -> Result<Ws, String> {
    let mut request = endpoint
        .url
        .as_str()
        .into_client_request()
        .map_err(|e| e.to_string())?;
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static(protocol::SUBPROTOCOL),
    );
    let uri = request.uri();
    let secure = uri.scheme_str() == Some("wss");
    let host = uri
        .host()
        .ok_or("the server URL has no host")?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
    let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| e.to_string())?;
    let _ = tcp.set_nodelay(true);
    let stream: Box<dyn Io> = match (secure, &endpoint.tls) {
        (false, _) => Box::new(tcp),
        (true, None) => return Err("wss:// needs --ca FILE (or CHAT_CA)".into()),
        (true, Some(config)) => {
            let name = ServerName::try_from(host).map_err(|e| e.to_string())?;
            let connector = tokio_rustls::TlsConnector::from(Arc::clone(config));
            let tls = connector
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS: {e}"))?;
            Box::new(tls)
        }
    };
    let (ws, _response) = tokio_tungstenite::client_async(request, stream)
        .await
        .map_err(|e| e.to_string())?;
    Ok(ws)
}

/// Moves frames both ways until the connection ends (`Some(reason)`) or the app is gone (`None`).
async fn session(
    ws: Ws,
    config: NetConfig,
    to_app: &mpsc::Sender<NetEvent>,
    from_app: &mut mpsc::Receiver<ClientFrame>,
) -> Option<String> {
    let (mut sink, mut stream) = ws.split();
    let mut last_heard = tokio::time::Instant::now();
    let mut watchdog = tokio::time::interval(config.silence_limit / 5);
    loop {
        tokio::select! {
            _ = watchdog.tick() => {
                if last_heard.elapsed() > config.silence_limit {
                    let secs = config.silence_limit.as_secs_f64();
                    return Some(format!("no word from the server for {secs:.0} s"));
                }
            }
            incoming = stream.next() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    last_heard = tokio::time::Instant::now();
                    // A frame this build cannot read is skipped, like an unknown frame type.
                    if let Ok(frame) = serde_json::from_str::<ServerFrame>(&text) {
                        to_app.send(NetEvent::FrameReceived(frame)).await.ok()?;
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    return Some(frame.map_or_else(
                        || "closed by the server".to_owned(),
                        |f| format!("closed by the server: {}", f.reason),
                    ));
                }
                Some(Ok(_)) => last_heard = tokio::time::Instant::now(),
                Some(Err(e)) => return Some(e.to_string()),
                None => return Some("connection closed".into()),
            },
            outgoing = from_app.recv() => match outgoing {
                Some(frame) => {
                    if let Err(e) = sink.send(Message::text(frame.to_json())).await {
                        return Some(e.to_string());
                    }
                }
                None => {
                    let _ = sink.close().await;
                    return None;
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_a_cap_and_jitter_shortens_it() {
        assert_eq!(backoff_ms(1, 1.0), 250);
        assert_eq!(backoff_ms(2, 1.0), 500);
        assert_eq!(backoff_ms(4, 1.0), 2000);
        assert_eq!(backoff_ms(30, 1.0), BACKOFF_MAX_MS);
        assert_eq!(backoff_ms(3, 0.5), 500);
    }

    #[test]
    fn jitter_stays_in_range() {
        let mut j = Jitter::new();
        assert!((0..1000).map(|_| j.next()).all(|x| (0.5..1.0).contains(&x)));
    }

    #[test]
    fn the_endpoint_gets_a_scheme_and_the_ws_path() {
        assert_eq!(
            endpoint_url("ws://127.0.0.1:9527"),
            "ws://127.0.0.1:9527/ws"
        );
        assert_eq!(endpoint_url("ws://h:1/"), "ws://h:1/ws");
        assert_eq!(endpoint_url("localhost:9527"), "ws://localhost:9527/ws");
        assert_eq!(endpoint_url("ws://h:1/my_ws"), "ws://h:1/my_ws");
        assert_eq!(endpoint_url("wss://h:1"), "wss://h:1/ws");
    }

    #[test]
    fn wss_without_a_ca_is_refused_with_a_message_naming_ca() {
        let err = Endpoint::new("wss://chat.example.org/ws".into(), None).expect_err("no CA");
        assert!(err.0.contains("--ca FILE"), "{err}");
        assert!(Endpoint::new("ws://h:1/ws".into(), None).is_ok());
    }

    #[test]
    fn a_missing_or_empty_ca_file_is_refused() {
        let missing = Path::new("/nonexistent/ca.pem");
        let err = Endpoint::new("wss://h:1/ws".into(), Some(missing)).expect_err("missing");
        assert!(err.0.starts_with("--ca /nonexistent/ca.pem"), "{err}");
    }
}
