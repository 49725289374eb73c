//! `idle`: C connections opened (native ones log in; seed ones are single-chat pages, named by
//! their path), held H seconds doing nothing but reading what the server sends, then each sends
//! a WebSocket ping. Server memory per connection is (RSS after the hold − RSS before) / C.

use super::{Cost, Run, mib};
use crate::Common;
use crate::client::{self, Proto, Ws};
use crate::probe;
use crate::report::{Report, ratio, round3};
use futures_util::{SinkExt, StreamExt};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

/// Settings of the `idle` workload.
#[derive(Debug, clap::Args)]
pub struct IdleArgs {
    #[command(flatten)]
    pub common: Common,
    /// Connections to open and hold (C). Each needs a file descriptor here and one in the server.
    #[arg(long, short = 'c', default_value_t = 5000)]
    pub connections: usize,
    /// Seconds to hold them idle before the ping (H).
    #[arg(long, default_value_t = 10)]
    pub hold_secs: u64,
    /// How long to wait for all pongs, in ms.
    #[arg(long, default_value_t = 10_000)]
    pub ping_timeout_ms: u64,
}

/// What every idle connection reports into.
#[derive(Debug, Default)]
struct Shared {
    connected: AtomicU64,
    answered: AtomicU64,
    closed: AtomicU64,
}

/// Runs the workload.
pub async fn run(args: &IdleArgs, run: Run) -> anyhow::Result<Report> {
    let c = args.connections;
    let limit = probe::raise_open_files_limit();
    if let Some(limit) = limit
        && c as u64 + 64 > limit
    {
        anyhow::bail!(
            "{c} connections need more file descriptors than this process may open ({limit})"
        );
    }
    let shared = Arc::new(Shared::default());
    let ping = CancellationToken::new();
    let stop = CancellationToken::new();
    let first_error = Mutex::new(None::<String>);
    let rss_before = run.probe.rss_kib();

    let bar = run.bar("connect", c as u64, {
        let shared = shared.clone();
        move || shared.connected.load(Ordering::Relaxed)
    });
    // Connecting stops in time to leave the hold and the ping inside --max-secs; connections
    // not attempted by then count as failed.
    let hold_time = Duration::from_secs(args.hold_secs);
    let ping_timeout = Duration::from_millis(args.ping_timeout_ms);
    let connect_until = run
        .deadline
        .checked_sub(hold_time + ping_timeout)
        .unwrap_or_else(Instant::now);
    let cost = Cost::start(&run);
    let started = Instant::now();
    let opened: Vec<Option<JoinHandle<()>>> = run
        .setup(
            "idle connections",
            client::all(c, run.concurrency, |i| {
                let (run, shared, ping, stop, first_error) = (
                    &run,
                    shared.clone(),
                    ping.clone(),
                    stop.clone(),
                    &first_error,
                );
                async move {
                    if Instant::now() >= connect_until {
                        let mut first = first_error.lock().unwrap_or_else(|p| p.into_inner());
                        first.get_or_insert_with(|| "not attempted: --max-secs".to_owned());
                        return Ok(None);
                    }
                    let nick = format!("{}-i{i}", run.prefix);
                    let connect = async {
                        match run.proto {
                            Proto::Native => run.dialer.native(&nick).await,
                            Proto::Seed => {
                                run.dialer
                                    .open(&format!("/my_ws/{nick}"), false, None)
                                    .await
                            }
                        }
                    };
                    // A server that stops accepting (out of descriptors, say) leaves handshakes
                    // pending; they fail at the same time as new attempts stop.
                    let ws = match tokio::time::timeout_at(connect_until, connect).await {
                        Ok(ws) => ws,
                        Err(_) => Err(anyhow::anyhow!("no handshake before --max-secs")),
                    };
                    match ws {
                        Ok(ws) => {
                            shared.connected.fetch_add(1, Ordering::Relaxed);
                            // Ends at `stop`, or when the server closes the connection.
                            Ok(Some(tokio::spawn(hold(ws, shared, ping, stop))))
                        }
                        Err(err) => {
                            let mut first = first_error.lock().unwrap_or_else(|p| p.into_inner());
                            first.get_or_insert_with(|| format!("{err:#}"));
                            Ok(None)
                        }
                    }
                }
            }),
        )
        .await?;
    let connect_time = started.elapsed().as_secs_f64();
    let connect_cpu = cost.cpu_micros(&run);
    bar.finish();
    let connected = shared.connected.load(Ordering::Relaxed);

    let hold_until = (Instant::now() + hold_time).min(run.deadline);
    let hold_secs = args.hold_secs;
    let bar = run.bar("hold", hold_secs, move || {
        hold_secs.saturating_sub(
            hold_until
                .saturating_duration_since(Instant::now())
                .as_secs(),
        )
    });
    tokio::time::sleep_until(hold_until).await;
    bar.finish();
    let rss_held = run.probe.rss_kib();
    let closed_in_hold = shared.closed.load(Ordering::Relaxed);

    ping.cancel();
    let ping_until = (Instant::now() + ping_timeout).min(run.deadline);
    while shared.answered.load(Ordering::Relaxed) + shared.closed.load(Ordering::Relaxed)
        < connected
        && Instant::now() < ping_until
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let answered = shared.answered.load(Ordering::Relaxed);
    stop.cancel();
    for task in opened.into_iter().flatten() {
        let _ = task.await;
    }

    let per_conn = match (rss_before, rss_held) {
        (Some(before), Some(held)) if connected > 0 => Some(round3(
            held.saturating_sub(before) as f64 / connected as f64,
        )),
        _ => None,
    };
    let mut report = Report::new("idle", run.proto.name());
    report
        .param("connections", c)
        .param("hold_secs", args.hold_secs)
        .result("connected", connected, "")
        .result("connect_failed", c as u64 - connected, "")
        .result("connect_s", round3(connect_time), "s")
        .result(
            "connects_per_s",
            (connected as f64 / connect_time.max(1e-9)).round(),
            "/s",
        )
        .result("closed_during_hold", closed_in_hold, "")
        .result("answering", answered, "")
        .result("not_answering", connected - answered, "")
        .result("lost", c as u64 - answered, "connections")
        .maybe("server_rss_before_mib", mib(rss_before), "MiB")
        .maybe("server_rss_held_mib", mib(rss_held), "MiB")
        .maybe("server_rss_per_connection_kib", per_conn, "KiB")
        .maybe(
            "server_cpu_us_per_connect",
            ratio(connect_cpu, connected),
            "µs",
        );
    if let Some(err) = first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        report.result("first_connect_error", err, "");
    }
    Ok(report)
}

/// Holds one connection: reads and drops whatever comes, sends one ping when `ping` fires and
/// counts its pong, and ends at `stop` or when the server closes it.
async fn hold(mut ws: Ws, shared: Arc<Shared>, ping: CancellationToken, stop: CancellationToken) {
    let mut pinged = false;
    let mut answered = false;
    loop {
        tokio::select! {
            _ = ping.cancelled(), if !pinged => {
                pinged = true;
                if ws.send(Message::Ping("idle?".into())).await.is_err() {
                    shared.closed.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
            _ = stop.cancelled() => return,
            next = ws.next() => match next {
                Some(Ok(Message::Pong(_))) if pinged && !answered => {
                    answered = true;
                    shared.answered.fetch_add(1, Ordering::Relaxed);
                }
                Some(Ok(Message::Close(_)) | Err(_)) | None => {
                    shared.closed.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Some(Ok(_)) => {}
            },
        }
    }
}
