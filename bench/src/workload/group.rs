//! `group`: N receivers and M senders in one room, K messages of S bytes from each sender.
//! Given several servers (nodes of one cluster), receiver i connects to server i mod count and
//! the senders to the first, so that every message crosses to the other nodes.
//!
//! Native clients join a room of their own (`<prefix>-room`); seed clients are group pages in
//! `lobby`. Every member but the sender gets each message (senders receive each other's too),
//! so `expected = M × K × (N + M − 1)`. Unpaced senders keep at most `--window` messages ahead
//! of the slowest receiver, as people in a chat would; `--rate` paces each sender instead.
//! `--search` adds a client that searches all the while (see [`searching`]).

use super::{Cost, Run, await_count, mib, per_unit, within_window};
use crate::Common;
use crate::client::{self, Control, Dialer, Proto, Ws};
use crate::payload::{self, Stamp};
use crate::report::{Report, latency_histogram, ratio, round3};
use crate::tally::{Counters, Tally, read_stamps};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

/// Settings of the `group` workload.
#[derive(Debug, clap::Args)]
pub struct GroupArgs {
    #[command(flatten)]
    pub common: Common,
    /// Receivers (N): members that only read.
    #[arg(long, short = 'n', default_value_t = 200)]
    pub receivers: usize,
    /// Senders (M): members that send K messages each (and read the others').
    #[arg(long, short = 'm', default_value_t = 2)]
    pub senders: usize,
    /// Messages per sender (K).
    #[arg(long, short = 'k', default_value_t = 2000)]
    pub messages: u32,
    /// Message text size in bytes (S), stamp included.
    #[arg(long, short = 's', default_value_t = 64)]
    pub size: usize,
    /// Messages per second per sender; unpaced when not given.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Unpaced: most messages (all senders together) ahead of the slowest receiver.
    #[arg(long, default_value_t = 256)]
    pub window: u64,
    /// While the messages go, one more (native) client searches what it can read (the lobby,
    /// its direct chats) for this text, one search after another; reports how many it made
    /// and how long they took.
    #[arg(long)]
    pub search: Option<String>,
}

/// A connected room member and the task counting what it receives.
pub type Reader = JoinHandle<(Tally, SplitStream<Ws>)>;

/// Connects one member of the run's room to `server`: a native client logged in as `nick`
/// that joined `room`, or a seed group page (which is in `lobby`).
pub async fn member(
    run: &Run,
    server: &Dialer,
    nick: &str,
    room: &str,
    recv_buffer: Option<u32>,
) -> anyhow::Result<Ws> {
    match run.proto {
        Proto::Native => {
            let mut ws = server.open("/ws", true, recv_buffer).await?;
            client::login(&mut ws, nick).await?;
            client::join(&mut ws, room).await?;
            Ok(ws)
        }
        Proto::Seed => server.open("/my_ws", false, recv_buffer).await,
    }
}

/// Connects `count` members of `room` that only read (reader i to server i mod count, as
/// `<prefix>-r<i>`), each counting in `counters` the stamps it receives: `slots` expected
/// messages, a stamp's slot given by `slot_of`.
pub async fn readers<F>(
    run: &Run,
    count: usize,
    room: &str,
    (slots, slot_of): (usize, F),
    counters: &Arc<Counters>,
    stop: &CancellationToken,
) -> anyhow::Result<Vec<Reader>>
where
    F: Fn(Stamp) -> Option<usize> + Copy + Send + 'static,
{
    client::all(count, run.concurrency, |i| {
        let (counters, stop) = (counters.clone(), stop.clone());
        async move {
            let nick = format!("{}-r{i}", run.prefix);
            let ws = member(run, run.node(i), &nick, room, None).await?;
            let (_, stream) = ws.split();
            let index = Some(i);
            Ok(tokio::spawn(read_stamps(
                stream, slots, slot_of, counters, index, stop,
            )))
        }
    })
    .await
}

/// For seed runs: a control client on each server, and the lobby's size there before the
/// run's members came; nothing for native runs or without control clients.
pub async fn seed_baseline(run: &Run) -> anyhow::Result<Vec<(Control, u64)>> {
    let mut baseline = Vec::new();
    if run.proto != Proto::Seed || !run.control {
        return Ok(baseline);
    }
    for (k, server) in run.servers.iter().enumerate() {
        let mut control = Control::open(server, &format!("{}-ctl{k}", run.prefix)).await?;
        let before = control.lobby_members().await?;
        baseline.push((control, before));
    }
    Ok(baseline)
}

/// For seed runs: waits until each server has put the group pages added there (`added[k]`
/// for server k) in the lobby. A lobby counted across a cluster only makes the wait shorter.
pub async fn await_seed_members(
    baseline: Vec<(Control, u64)>,
    added: &[usize],
) -> anyhow::Result<()> {
    for ((mut control, before), added) in baseline.into_iter().zip(added) {
        control.await_lobby(before + *added as u64).await?;
        control.close().await;
    }
    Ok(())
}

/// The native `send` of a message to the run's room, or the seed page's plain text.
pub fn room_message(proto: Proto, room: &str, seq: u32, text: String) -> Message {
    match proto {
        Proto::Native => client::to_room(room, seq, &text),
        Proto::Seed => Message::text(text),
    }
}

/// Runs the workload.
pub async fn run(args: &GroupArgs, run: Run) -> anyhow::Result<Report> {
    let (n, m, k) = (args.receivers, args.senders, args.messages);
    anyhow::ensure!(
        m >= 1 && k >= 1,
        "--senders and --messages must be at least 1"
    );
    let room = format!("{}-room", run.prefix);
    let slots = m * k as usize;
    let slot_of = move |s: Stamp| {
        ((s.sender as usize) < m && s.seq < k)
            .then_some(s.sender as usize * k as usize + s.seq as usize)
    };
    let counters = Counters::new(n);
    let stop = CancellationToken::new();

    let baseline = run.setup("control client", seed_baseline(&run)).await?;
    let receivers = run
        .setup(
            "receivers",
            readers(&run, n, &room, (slots, slot_of), &counters, &stop),
        )
        .await?;
    let senders: Vec<(SplitSink<Ws, Message>, Reader)> = run
        .setup(
            "senders",
            client::all(m, run.concurrency, |j| {
                let (run, room, counters, stop) = (&run, &room, counters.clone(), stop.clone());
                async move {
                    let nick = format!("{}-s{j}", run.prefix);
                    let ws = member(run, &run.dialer, &nick, room, None).await?;
                    let (sink, stream) = ws.split();
                    let reader =
                        tokio::spawn(read_stamps(stream, slots, slot_of, counters, None, stop));
                    Ok((sink, reader))
                }
            }),
        )
        .await?;
    let mut added = vec![0; run.servers.len()];
    for i in 0..n {
        added[i % run.servers.len()] += 1;
    }
    added[0] += m;
    run.setup("seed members", await_seed_members(baseline, &added))
        .await?;
    let searcher = match &args.search {
        Some(text) => {
            let nick = format!("{}-search", run.prefix);
            let ws = run.setup("searcher", run.dialer.native(&nick)).await?;
            Some(tokio::spawn(searching(ws, text.clone(), stop.clone())))
        }
        None => None,
    };
    // Let join and presence notices of the setup drain before the traffic is measured.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let expected = (m * k as usize * (n + m - 1)) as u64;
    let sent = AtomicU64::new(0);
    let done = AtomicU64::new(0);
    let bar = run.bar("group", expected, {
        let counters = counters.clone();
        move || counters.delivered.load(Ordering::Relaxed)
    });
    let cost = Cost::start(&run);
    let started = Instant::now();
    let started_micros = payload::now_micros();
    let (sinks, readers): (Vec<_>, Vec<_>) = senders.into_iter().unzip();
    let sending =
        futures_util::future::join_all(sinks.into_iter().enumerate().map(|(j, mut sink)| {
            let (run, room, counters, sent, done) = (&run, &room, &counters, &sent, &done);
            async move {
                let mut pace = args.rate.filter(|r| *r > 0.0).map(|rate| {
                    let period = Duration::from_secs_f64(1.0 / rate);
                    // Spread the senders over one period so that they do not send in lockstep.
                    let offset = period.mul_f64(j as f64 / m as f64);
                    let mut pace = tokio::time::interval_at(started + offset, period);
                    pace.set_missed_tick_behavior(MissedTickBehavior::Delay);
                    pace
                });
                for seq in 0..k {
                    if let Some(pace) = pace.as_mut() {
                        pace.tick().await;
                    }
                    let ahead = sent.load(Ordering::Relaxed);
                    if !within_window(run.deadline, ahead, args.window, || counters.slowest()).await
                    {
                        break;
                    }
                    let stamp = Stamp {
                        sender: j as u32,
                        seq,
                        micros: payload::now_micros(),
                    };
                    let text = payload::encode(stamp, args.size);
                    if sink
                        .send(room_message(run.proto, room, seq, text))
                        .await
                        .is_err()
                    {
                        break;
                    }
                    sent.fetch_add(1, Ordering::Relaxed);
                }
                done.fetch_add(1, Ordering::Relaxed);
                sink
            }
        }));
    let waiting = async {
        let ending = await_count(&run, &counters.delivered, expected, || {
            done.load(Ordering::Relaxed) == m as u64
        })
        .await;
        let cpu = (cost.cpu_micros(&run), cost.own_cpu_micros());
        let by_thread = cost.thread_cpu_micros(&run);
        let switches = cost.context_switches(&run);
        (
            ending,
            cpu,
            (by_thread, switches),
            run.probe.rss_kib(),
            run.probe.peak_rss_kib(),
        )
    };
    let (_sinks, (ending, (cpu, own_cpu), (by_thread, switches), rss, peak)) =
        tokio::join!(sending, waiting);
    bar.finish();
    stop.cancel();
    let searches = match searcher {
        Some(task) => Some(task.await??),
        None => None,
    };

    let mut all = Tally::new(0);
    let mut disconnected = Vec::new();
    for reader in receivers.into_iter().chain(readers) {
        let (tally, _stream) = reader.await?;
        all.merge(&tally);
        if let Some(why) = tally.closed {
            disconnected.push(why);
        }
    }
    let delivered = all.distinct;
    let window = all
        .last_at
        .map(|t| t.saturating_sub(started_micros) as f64 / 1e6);
    let mut report = Report::new("group", run.proto.name());
    report
        .param("servers", run.servers.len())
        .param("receivers", n)
        .param("senders", m)
        .param("messages", k)
        .param("size", args.size)
        .param("rate", args.rate)
        .param("window", args.window)
        .result("expected", expected, "deliveries")
        .result("delivered", delivered, "deliveries")
        .result("lost", expected.saturating_sub(delivered), "deliveries")
        .result("duplicates", all.duplicates, "deliveries")
        .result("disconnected", disconnected.len(), "clients")
        .result("ending", ending.name(), "")
        .maybe("traffic_s", window.map(round3), "s")
        .maybe(
            "deliveries_per_s",
            window
                .filter(|w| *w > 0.0)
                .map(|w| (delivered as f64 / w).round()),
            "/s",
        )
        .latency(
            ["latency_p50_ms", "latency_p99_ms", "latency_max_ms"],
            &all.latency,
        )
        .maybe("server_cpu_ms", cpu.map(|us| us / 1000), "ms")
        .maybe("server_cpu_us_per_delivery", ratio(cpu, delivered), "µs")
        .maybe("bench_cpu_us_per_delivery", ratio(own_cpu, delivered), "µs")
        .maybe(
            "server_cpu_us_per_delivery_by_thread",
            per_unit(by_thread, delivered),
            "µs",
        )
        .maybe(
            "server_context_switches_per_1000_deliveries",
            ratio(switches.map(|n| n * 1000), delivered),
            "",
        )
        .maybe("server_rss_mib", mib(rss), "MiB")
        .maybe("server_peak_rss_mib", mib(peak), "MiB");
    if let Some(searches) = searches {
        report
            .result("searches", searches.len(), "searches")
            .latency(
                ["search_p50_ms", "search_p99_ms", "search_max_ms"],
                &searches,
            );
    }
    report.result("server_errors", all.errors, "frames");
    if let Some(first) = disconnected.first() {
        report.result("first_disconnect", first.clone(), "");
    }
    if let Some(error) = all.first_error {
        report.result("first_server_error", error, "");
    }
    Ok(report)
}

/// Searches for `text` on `ws`, one search after another, until `stop` (at least once);
/// the time each took, from sending it to its results, in microseconds.
async fn searching(
    mut ws: Ws,
    text: String,
    stop: CancellationToken,
) -> anyhow::Result<Histogram<u64>> {
    let mut took = latency_histogram();
    loop {
        let started = Instant::now();
        client::search(&mut ws, &text).await?;
        took.saturating_record(started.elapsed().as_micros() as u64);
        if stop.is_cancelled() {
            return Ok(took);
        }
    }
}
