//! The background threads of a node: the log reader, the typing listener and the heartbeat
//! (which also reaps dead nodes). They tell the sequencer what they find as [`Signal`]s.

use super::scripts::REAP;
use super::*;
use crate::hub::now_ms;
use protocol::MsgId;
use redis::streams::{StreamReadOptions, StreamReadReply};
use std::sync::Arc;

/// What the background threads tell the sequencer.
#[derive(Debug)]
pub enum Signal {
    /// Entries read from the log, in order.
    Entries(Vec<Entry>),
    /// Redis answers again after being unreachable (or the node found itself taken for dead).
    Recovered,
    /// A fresh block of ids for an outage, ending with this one.
    Reserved(MsgId),
    /// Time to compare who is shown online elsewhere with the cluster's view.
    Reconcile,
    /// Someone on `node` is typing.
    Typing { node: String, event: Event },
    /// A login has waited as long as it may for the node to catch up with the log.
    LoginDeadline,
}

/// Starts the log reader (from `cursor`) and the heartbeat, which also reaps dead nodes. Each
/// stops once `deliver` returns false (the sequencer is gone).
pub fn spawn_threads(
    config: &ClusterConfig,
    health: Arc<Health>,
    cursor: String,
    deliver: impl Fn(Signal) -> bool + Send + Sync + 'static,
) -> std::io::Result<()> {
    let stopped = health.clone();
    // Nothing more once the node has left the cluster.
    let deliver = Arc::new(move |signal| !stopped.stopped.load(Relaxed) && deliver(signal));
    let client = redis::Client::open(config.url.as_str()).map_err(std::io::Error::other)?;
    let (reader_client, reader_deliver) = (client.clone(), deliver.clone());
    std::thread::Builder::new()
        .name("cluster-log".into())
        .spawn(move || read_log(&reader_client, cursor, &*reader_deliver))?;
    let (typing_client, typing_deliver) = (client.clone(), deliver.clone());
    std::thread::Builder::new()
        .name("cluster-typing".into())
        .spawn(move || read_typing(&typing_client, &*typing_deliver))?;
    let config = config.clone();
    std::thread::Builder::new()
        .name("cluster-heartbeat".into())
        .spawn(move || beat(&client, &config, &health, &*deliver))?;
    Ok(())
}

/// Listens to the typing channel, forever, reconnecting with backoff.
pub(super) fn read_typing(client: &redis::Client, deliver: &dyn Fn(Signal) -> bool) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let listened = (|| {
            let mut conn = client.get_connection_with_timeout(COMMAND_TIMEOUT)?;
            // Wakes up now and then to see whether the node is still there.
            conn.set_read_timeout(Some(Duration::from_secs(1)))?;
            let mut pubsub = conn.as_pubsub();
            pubsub.subscribe(TYPING)?;
            backoff = Duration::from_millis(100);
            loop {
                match pubsub.get_message() {
                    Ok(message) => {
                        let payload: String = message.get_payload()?;
                        let parsed = payload.split_once('\n').and_then(|(node, body)| {
                            Some((node.to_owned(), serde_json::from_str(body).ok()?))
                        });
                        if let Some((node, event)) = parsed
                            && !deliver(Signal::Typing { node, event })
                        {
                            return Ok(false);
                        }
                    }
                    Err(err) if err.is_timeout() => {
                        if !deliver(Signal::Entries(Vec::new())) {
                            return Ok(false);
                        }
                    }
                    Err(err) => return Err(err),
                }
            }
        })();
        match listened {
            Ok(false) => return,
            _ => {
                if !deliver(Signal::Entries(Vec::new())) {
                    return;
                }
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// Reads the log from `cursor` on, forever: blocks for new entries and hands them over.
pub(super) fn read_log(
    client: &redis::Client,
    mut cursor: String,
    deliver: &dyn Fn(Signal) -> bool,
) {
    let mut backoff = Duration::from_millis(100);
    let mut conn = None;
    let block = 1000;
    loop {
        let mut c = match conn.take() {
            Some(c) => c,
            None => match client.get_connection_with_timeout(COMMAND_TIMEOUT) {
                Ok(c) => {
                    let _ = c.set_read_timeout(Some(COMMAND_TIMEOUT + Duration::from_secs(1)));
                    backoff = Duration::from_millis(100);
                    c
                }
                Err(_) => {
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    if !deliver(Signal::Entries(Vec::new())) {
                        return;
                    }
                    continue;
                }
            },
        };
        let options = StreamReadOptions::default().block(block).count(READ_COUNT);
        let reply: redis::RedisResult<Option<StreamReadReply>> = redis::cmd("XREAD")
            .arg(&options)
            .arg("STREAMS")
            .arg(LOG)
            .arg(&cursor)
            .query(&mut c);
        match reply {
            Ok(reply) => {
                conn = Some(c);
                let ids = reply
                    .map(|r| r.keys.into_iter().flat_map(|k| k.ids).collect::<Vec<_>>())
                    .unwrap_or_default();
                let mut entries = Vec::with_capacity(ids.len());
                for id in ids {
                    cursor.clone_from(&id.id);
                    match parse_entry(&id) {
                        Some(entry) => entries.push(entry),
                        None => tracing::warn!(entry = id.id, "skipped an unreadable log entry"),
                    }
                }
                // An empty batch checks that the sequencer is still there.
                if !deliver(Signal::Entries(entries)) {
                    return;
                }
            }
            Err(err) => {
                tracing::debug!(error = %err, "reading the cluster log failed");
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(MAX_BACKOFF);
                if !deliver(Signal::Entries(Vec::new())) {
                    return;
                }
            }
        }
    }
}

pub(super) fn parse_entry(id: &redis::streams::StreamId) -> Option<Entry> {
    let body: String = id.get("e")?;
    Some(Entry {
        position: id.id.clone(),
        id: id.get("id")?,
        node: id.get("n")?,
        applied_at_origin: id.get::<u8>("l")? == 1,
        event: serde_json::from_str(&body).ok()?,
    })
}

/// Refreshes the heartbeat and reaps dead nodes every third of the expiry; tells the
/// sequencer when Redis answers again after failing.
pub(super) fn beat(
    client: &redis::Client,
    config: &ClusterConfig,
    health: &Health,
    deliver: &dyn Fn(Signal) -> bool,
) {
    let reap = redis::Script::new(REAP);
    let every = (config.expiry / 3).max(Duration::from_millis(100));
    let mut conn = None;
    let mut failed = false;
    loop {
        std::thread::sleep(if failed {
            every.min(MAX_BACKOFF / 2)
        } else {
            every
        });
        let result = (|| {
            let mut c = match conn.take() {
                Some(c) => c,
                None => connect(client)?,
            };
            let mut signals = Vec::new();
            if !health.degraded() {
                if heartbeat(&mut c, config)? {
                    tracing::warn!("this node was taken for dead; registering its users again");
                    signals.push(Signal::Recovered);
                }
                let end: MsgId = redis::cmd("INCRBY")
                    .arg(NEXT_ID)
                    .arg(RESERVED_IDS)
                    .query(&mut c)?;
                signals.push(Signal::Reserved(end));
                let reaped: i64 = reap
                    .key(NODES)
                    .key(ONLINE)
                    .key(LOG)
                    .arg(config.log_cap)
                    .arg(now_ms())
                    .arg("")
                    .invoke(&mut c)?;
                if reaped > 0 {
                    tracing::info!(
                        nodes = reaped,
                        "dead nodes removed; their users are offline"
                    );
                }
            } else {
                redis::cmd("PING").query::<String>(&mut c)?;
            }
            conn = Some(c);
            redis::RedisResult::Ok(signals)
        })();
        match result {
            Ok(signals) if !signals.is_empty() => {
                failed = false;
                for signal in signals {
                    if !deliver(signal) {
                        return;
                    }
                }
            }
            Ok(_) if health.degraded() => {
                failed = false;
                // The sequencer re-registers the node and appends its backlog.
                if !deliver(Signal::Recovered) {
                    return;
                }
            }
            Ok(_) => {
                failed = false;
                if !deliver(Signal::Entries(Vec::new())) {
                    return;
                }
            }
            Err(err) => {
                failed = true;
                health.set(false, &err);
                if !deliver(Signal::Entries(Vec::new())) {
                    return;
                }
            }
        }
    }
}
