//! `direct`: P pairs, each a ping-pong of K direct messages. `a` sends, `b` answers with the
//! same text, `a` measures the round trip from the stamp and sends the next one. Every round trip
//! is two forwards by the server.

use super::{Cost, Run, mib, per_unit};
use crate::Common;
use crate::client::{self, Control, Proto, Ws};
use crate::payload::{self, Stamp};
use crate::report::{Report, latency_histogram, ratio, round3};
use crate::tally::is_error;
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

/// Settings of the `direct` workload.
#[derive(Debug, clap::Args)]
pub struct DirectArgs {
    #[command(flatten)]
    pub common: Common,
    /// Pairs (P).
    #[arg(long, short = 'p', default_value_t = 100)]
    pub pairs: usize,
    /// Round trips per pair (K).
    #[arg(long, short = 'k', default_value_t = 1000)]
    pub round_trips: u32,
    /// Message text size in bytes, stamp included.
    #[arg(long, short = 's', default_value_t = 64)]
    pub size: usize,
    /// How long `a` waits for an answer before it counts the rest of its round trips lost, in ms.
    #[arg(long, default_value_t = 5000)]
    pub reply_timeout_ms: u64,
}

/// One side of a pair: its socket, its name and its peer's.
struct Side {
    ws: Ws,
    me: String,
    peer: String,
}

impl Side {
    fn message(&self, proto: Proto, seq: u32, text: &str) -> Message {
        match proto {
            Proto::Native => client::to_user(&self.peer, seq, text),
            Proto::Seed => client::seed_single(&self.me, &self.peer, text),
        }
    }
}

/// Errors the server sent to either side of any pair.
#[derive(Debug, Default)]
struct Errors {
    count: AtomicU64,
    first: Mutex<Option<String>>,
}

impl Errors {
    fn check(&self, frame: &str) {
        if is_error(frame) {
            self.count.fetch_add(1, Ordering::Relaxed);
            let mut first = self.first.lock().unwrap_or_else(|p| p.into_inner());
            first.get_or_insert_with(|| frame.to_owned());
        }
    }
}

/// What one initiator measured.
struct PairResult {
    rtt: Histogram<u64>,
    completed: u64,
    last_at: Option<Instant>,
}

/// Runs the workload.
pub async fn run(args: &DirectArgs, run: Run) -> anyhow::Result<Report> {
    let (p, k) = (args.pairs, args.round_trips);
    anyhow::ensure!(
        p >= 1 && k >= 1,
        "--pairs and --round-trips must be at least 1"
    );
    let name = |side: char, i: usize| format!("{}-{side}{i}", run.prefix);
    let connect = |nick: String| {
        let run = &run;
        async move {
            match run.proto {
                Proto::Native => run.dialer.native(&nick).await,
                Proto::Seed => {
                    run.dialer
                        .open(&format!("/my_ws/{nick}"), false, None)
                        .await
                }
            }
        }
    };
    let a_sides: Vec<Ws> = run
        .setup(
            "initiators",
            client::all(p, run.concurrency, |i| connect(name('a', i))),
        )
        .await?;
    let b_sides: Vec<Ws> = run
        .setup(
            "responders",
            client::all(p, run.concurrency, |i| connect(name('b', i))),
        )
        .await?;
    if run.proto == Proto::Seed && run.control {
        let nicks: Vec<String> = (0..p).flat_map(|i| [name('a', i), name('b', i)]).collect();
        run.setup("seed pages online", async {
            let mut control = Control::open(&run.dialer, &format!("{}-ctl", run.prefix)).await?;
            control.await_online(&nicks).await?;
            control.close().await;
            Ok(())
        })
        .await?;
    }
    // Let the presence notices of the setup drain before the traffic is measured.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let forwards = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(Errors::default());
    let stop = CancellationToken::new();
    let bar = run.bar("direct", 2 * p as u64 * k as u64, {
        let forwards = forwards.clone();
        move || forwards.load(Ordering::Relaxed)
    });
    let cost = Cost::start(&run);
    let started = Instant::now();
    let reply_timeout = Duration::from_millis(args.reply_timeout_ms);
    let mut responders = Vec::with_capacity(p);
    let mut initiators = Vec::with_capacity(p);
    for (i, (a, b)) in a_sides.into_iter().zip(b_sides).enumerate() {
        let b = Side {
            ws: b,
            me: name('b', i),
            peer: name('a', i),
        };
        let a = Side {
            ws: a,
            me: name('a', i),
            peer: name('b', i),
        };
        // Each ends after K messages, at the deadline, or (responders) when told to stop.
        responders.push(tokio::spawn(respond(
            b,
            run.proto,
            k,
            args.size,
            forwards.clone(),
            errors.clone(),
            stop.clone(),
        )));
        initiators.push(tokio::spawn(initiate(
            a,
            i as u32,
            run.proto,
            k,
            args.size,
            forwards.clone(),
            errors.clone(),
            run.deadline,
            reply_timeout,
        )));
    }
    let mut rtt = latency_histogram();
    let mut completed = 0;
    let mut last_at = None;
    let mut sides = Vec::with_capacity(2 * p);
    for initiator in initiators {
        let (result, side) = initiator.await?;
        sides.push(side);
        let _ = rtt.add(&result.rtt);
        completed += result.completed;
        last_at = last_at.max(result.last_at);
    }
    let (cpu, own_cpu) = (cost.cpu_micros(&run), cost.own_cpu_micros());
    let by_thread = cost.thread_cpu_micros(&run);
    let switches = cost.context_switches(&run);
    let (rss, peak) = (run.probe.rss_kib(), run.probe.peak_rss_kib());
    bar.finish();
    stop.cancel();
    for responder in responders {
        sides.push(responder.await?);
    }
    drop(sides);

    let expected = 2 * p as u64 * k as u64;
    let forwarded = forwards.load(Ordering::Relaxed);
    let window = last_at.map(|t| t.duration_since(started).as_secs_f64());
    let mut report = Report::new("direct", run.proto.name());
    report
        .param("pairs", p)
        .param("round_trips", k)
        .param("size", args.size)
        .result("round_trips_done", completed, "")
        .result("expected_forwards", expected, "")
        .result("lost", expected.saturating_sub(forwarded), "forwards")
        .maybe("traffic_s", window.map(round3), "s")
        .maybe(
            "round_trips_per_s",
            window
                .filter(|w| *w > 0.0)
                .map(|w| (completed as f64 / w).round()),
            "/s",
        )
        .latency(["rtt_p50_ms", "rtt_p99_ms", "rtt_max_ms"], &rtt)
        .maybe("server_cpu_ms", cpu.map(|us| us / 1000), "ms")
        .maybe("server_cpu_us_per_forward", ratio(cpu, forwarded), "µs")
        .maybe("bench_cpu_us_per_forward", ratio(own_cpu, forwarded), "µs")
        .maybe(
            "server_cpu_us_per_forward_by_thread",
            per_unit(by_thread, forwarded),
            "µs",
        )
        .maybe(
            "server_context_switches_per_forward",
            ratio(switches, forwarded),
            "",
        )
        .maybe("server_rss_mib", mib(rss), "MiB")
        .maybe("server_peak_rss_mib", mib(peak), "MiB")
        .result(
            "server_errors",
            errors.count.load(Ordering::Relaxed),
            "frames",
        );
    let first_error = errors
        .first
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    if let Some(error) = first_error {
        report.result("first_server_error", error, "");
    }
    Ok(report)
}

/// Sends K stamped messages one at a time, each after the answer to the one before.
#[allow(clippy::too_many_arguments)]
async fn initiate(
    mut side: Side,
    pair: u32,
    proto: Proto,
    k: u32,
    size: usize,
    forwards: Arc<AtomicU64>,
    errors: Arc<Errors>,
    deadline: Instant,
    reply_timeout: Duration,
) -> (PairResult, Side) {
    let mut result = PairResult {
        rtt: latency_histogram(),
        completed: 0,
        last_at: None,
    };
    'trips: for seq in 0..k {
        let stamp = Stamp {
            sender: pair,
            seq,
            micros: payload::now_micros(),
        };
        let text = payload::encode(stamp, size);
        if side.ws.send(side.message(proto, seq, &text)).await.is_err() {
            break;
        }
        let give_up = deadline.min(Instant::now() + reply_timeout);
        loop {
            let next = match tokio::time::timeout_at(give_up, side.ws.next()).await {
                Ok(Some(Ok(next))) => next,
                _ => break 'trips,
            };
            let Message::Text(frame) = next else { continue };
            let Some(got) = payload::find(frame.as_str()) else {
                errors.check(frame.as_str());
                continue;
            };
            if got.sender == pair && got.seq == seq {
                let now = payload::now_micros();
                let _ = result.rtt.record(now.saturating_sub(got.micros).max(1));
                result.completed += 1;
                result.last_at = Some(Instant::now());
                forwards.fetch_add(1, Ordering::Relaxed);
                break;
            }
        }
    }
    // The socket stays open until the run is measured: a close would tell every native client
    // that this user went offline, in the middle of the other pairs' traffic.
    (result, side)
}

/// Answers each stamped message with the same text, K times or until `stop`, and holds the
/// socket open until `stop`.
async fn respond(
    mut side: Side,
    proto: Proto,
    k: u32,
    size: usize,
    forwards: Arc<AtomicU64>,
    errors: Arc<Errors>,
    stop: CancellationToken,
) -> Side {
    let mut answered = 0;
    while answered < k {
        let next = tokio::select! {
            next = side.ws.next() => next,
            _ = stop.cancelled() => break,
        };
        let frame = match next {
            Some(Ok(Message::Text(frame))) => frame,
            Some(Ok(_)) => continue,
            _ => break,
        };
        let Some(stamp) = payload::find(frame.as_str()) else {
            errors.check(frame.as_str());
            continue;
        };
        forwards.fetch_add(1, Ordering::Relaxed);
        let text = payload::encode(stamp, size);
        if side
            .ws
            .send(side.message(proto, stamp.seq, &text))
            .await
            .is_err()
        {
            break;
        }
        answered += 1;
    }
    stop.cancelled().await;
    side
}
