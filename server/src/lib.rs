//! The chat server: one port serving the web page, the seed tutorial's endpoints and the native
//! protocol.
//!
//! - `config`: [`Config`], limits and timeouts.
//! - `accept`: the accept loop, per-address limit, handshake deadline, HTTP/1 per connection.
//! - `http`: routes by path and WebSocket subprotocol.
//! - `connection`: one peer, one task — reading, batched writing from the bounded outbox,
//!   timers, close with a reason.
//! - `native`, `seed`: what each protocol does with the frames it receives.
//! - `sequencer`: the one thread that owns the hub, gives messages their ids, delivers them and
//!   carries out requests in order; every read of the store sees what it delivered.
//! - `hub`: users, rooms, guests and routing; `hub::login` logs users in and out (with the
//!   presence grace period), `hub::rooms` joins and leaves rooms, `hub::deliver` delivers,
//!   `hub::remote` follows the users of other nodes, `hub::roster` keeps the paged lists.
//! - `store`: SQLite message store, history, offline delivery, retention; `store::writer`
//!   stores delivered messages in batches on a thread of its own, retries a failed batch until
//!   the store works again, and sends the acks once committed.
//! - `peer`: the hub's handle on a connection.
//! - `wire`: frames as the server writes them, encoded once and shared by their recipients; a
//!   round's messages to a room encoded back to back, as one run.
//! - `metrics`: counters served at `/metrics`.
//! - `tls`: rustls for `https://` and `wss://`.
//! - `cluster`: several nodes as one service through Redis; `cluster::event` holds what
//!   crosses Redis, `cluster::link` the sequencer's connection (with `link::membership`:
//!   joining, recovering, leaving), `cluster::scripts` the Lua scripts, `cluster::threads`
//!   the log reader, typing listener and heartbeat.

mod accept;
mod auth;
pub mod cluster;
pub mod config;
mod connection;
mod http;
pub mod hub;
pub mod metrics;
mod native;
pub mod peer;
mod seed;
mod sequencer;
pub mod store;
pub mod tls;
pub mod wire;

pub use config::Config;
pub use store::StoreError;

use protocol::Limits;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error(transparent)]
    Cluster(#[from] cluster::ClusterError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Opens the store, then serves on `listener` until `shutdown` resolves; see [`Server::serve`].
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    Server::open(config)?.serve(listener, shutdown).await
}

/// A server whose store is open, ready to serve.
pub struct Server {
    config: Config,
    tls: Option<tokio_rustls::TlsAcceptor>,
    metrics: Arc<metrics::Metrics>,
    /// Whether Redis answers, in a cluster.
    health: Option<Arc<cluster::Health>>,
    sequencer: sequencer::Sequencer,
    /// Resolves once the sequencer has stopped.
    sequencer_done: tokio::sync::oneshot::Receiver<()>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("config", &self.config)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Opens the message store (a damaged or unusable one is an error here, never an empty
    /// start) and starts the sequencer.
    pub fn open(config: Config) -> Result<Self, RunError> {
        let tls = config.tls.as_ref().map(tls::acceptor).transpose()?;
        let mut store = store::Store::open(&config.store)?;
        let metrics = Arc::new(metrics::Metrics::default());
        let health = Arc::new(cluster::Health::default());
        let joined = match &config.cluster {
            Some(cluster) => Some(cluster::Link::join(
                cluster.clone(),
                &mut store,
                health.clone(),
            )?),
            None => None,
        };
        let registered = store.registered_users()?.into_iter().collect();
        let mut hub = hub::Hub::new(
            Limits {
                max_text_bytes: config.max_text_bytes,
            },
            store.known_users()?,
            metrics.clone(),
        );
        let link = joined.map(|joined| {
            hub.into_cluster(joined.remote);
            joined.link
        });
        let (sequencer, sequencer_done) =
            sequencer::Sequencer::start(hub, store, &config, metrics.clone(), registered, link)?;
        Ok(Self {
            health: config.cluster.is_some().then_some(health),
            config,
            tls,
            metrics,
            sequencer,
            sequencer_done,
        })
    }

    /// Serves on `listener` until `shutdown` resolves; then closes every connection with a
    /// close frame (1001, "server shutting down"), waits for them up to
    /// `config.shutdown_timeout`, and stops the store after its last write.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), RunError> {
        let Self {
            config,
            tls,
            metrics,
            health,
            sequencer,
            sequencer_done,
        } = self;
        let token = CancellationToken::new();
        let tracker = TaskTracker::new();
        if config.retention.is_on() {
            let (sequencer, token, every) = (sequencer.clone(), token.clone(), config.prune_every);
            // Ends at shutdown, or if the sequencer stops first.
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.tick().await; // the first tick is now; the sequencer pruned at start
                loop {
                    tokio::select! {
                        _ = token.cancelled() => break,
                        _ = tick.tick() => if sequencer.prune().await.is_err() { break },
                    }
                }
            });
        }
        let state = http::AppState {
            env: Arc::new(connection::Env {
                metrics,
                sequencer,
                config: Arc::new(config.clone()),
                shutdown: token.clone(),
            }),
            cluster: health,
            slots: Arc::new(Semaphore::new(config.max_connections)),
            tracker: tracker.clone(),
        };
        let config = state.env.config.clone();
        let serving = tokio::spawn(accept::accept_loop(
            listener,
            http::router(state),
            config.clone(),
            tls,
            token.clone(),
            tracker.clone(),
        ));
        shutdown.await;
        tracing::info!("shutting down: closing connections");
        token.cancel();
        if let Err(err) = serving.await {
            tracing::error!(error = %err, "the accept loop failed");
        }
        // Every connection, plain HTTP or WebSocket, is a task of the tracker.
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
        // Every handle on the sequencer is gone with the connections and the router; it stores
        // what is still queued and stops.
        match tokio::time::timeout(config.shutdown_timeout, sequencer_done).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => tracing::error!("the sequencer thread failed"),
            Err(_) => tracing::warn!("the store is still busy; stopping without waiting for it"),
        }
        Ok(())
    }
}
