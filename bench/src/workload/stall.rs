//! `stall`: R readers, one member that never reads, and one sender of K large messages. The
//! readers must get every message; the stalled member should be disconnected with a reason,
//! which it finds when it finally reads after the traffic.

use super::group::{await_seed_members, member, readers, room_message, seed_baseline};
use super::{Cost, Run, await_count, mib, within_window};
use crate::Common;
use crate::payload::{self, Stamp};
use crate::report::{Report, ratio, round3};
use crate::tally::{Counters, Tally, describe_close, read_stamps};
use futures_util::{SinkExt, StreamExt};
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

/// Settings of the `stall` workload.
#[derive(Debug, clap::Args)]
pub struct StallArgs {
    #[command(flatten)]
    pub common: Common,
    /// Healthy readers (R).
    #[arg(long, short = 'r', default_value_t = 20)]
    pub readers: usize,
    /// Messages from the sender (K).
    #[arg(long, short = 'k', default_value_t = 2000)]
    pub messages: u32,
    /// Message text size in bytes (stamp included); the server's default limit is 16384.
    #[arg(long, short = 's', default_value_t = 16_000)]
    pub size: usize,
    /// Most messages the sender is ahead of the slowest healthy reader.
    #[arg(long, default_value_t = 64)]
    pub window: u64,
    /// SO_RCVBUF of the stalled member's socket in bytes; the kernel's default when not given.
    #[arg(long)]
    pub stalled_recv_buffer: Option<u32>,
    /// How long the stalled member, reading at last, waits for more before giving up, in ms.
    #[arg(long, default_value_t = 3000)]
    pub stalled_quiet_ms: u64,
}

/// Runs the workload.
pub async fn run(args: &StallArgs, run: Run) -> anyhow::Result<Report> {
    let (r, k) = (args.readers, args.messages);
    anyhow::ensure!(
        r >= 1 && k >= 1,
        "--readers and --messages must be at least 1"
    );
    let room = format!("{}-room", run.prefix);
    let slots = k as usize;
    let slot_of = move |s: Stamp| (s.sender == 0 && s.seq < k).then_some(s.seq as usize);
    let counters = Counters::new(r);
    let stop = CancellationToken::new();

    let baseline = run.setup("control client", seed_baseline(&run)).await?;
    let stalled_nick = format!("{}-stalled", run.prefix);
    let mut stalled = run
        .setup(
            "stalled member",
            member(
                &run,
                &run.dialer,
                &stalled_nick,
                &room,
                args.stalled_recv_buffer,
            ),
        )
        .await?;
    let readers = run
        .setup(
            "readers",
            readers(&run, r, &room, (slots, slot_of), &counters, &stop),
        )
        .await?;
    let sender = run
        .setup(
            "sender",
            member(
                &run,
                &run.dialer,
                &format!("{}-s0", run.prefix),
                &room,
                None,
            ),
        )
        .await?;
    let (mut sink, stream) = sender.split();
    // The sender's own frames (acks) are read and dropped so that it never counts as slow.
    let sender_reader = tokio::spawn(read_stamps(
        stream,
        0,
        |_| None,
        Counters::new(0),
        None,
        stop.clone(),
    ));
    run.setup("seed members", await_seed_members(baseline, &[r + 2]))
        .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let expected = r as u64 * k as u64;
    let sent = AtomicU64::new(0);
    let done = AtomicU64::new(0);
    let bar = run.bar("stall", expected, {
        let counters = counters.clone();
        move || counters.delivered.load(Ordering::Relaxed)
    });
    let cost = Cost::start(&run);
    let started = Instant::now();
    let sending = async {
        for seq in 0..k {
            let ahead = sent.load(Ordering::Relaxed);
            if !within_window(run.deadline, ahead, args.window, || counters.slowest()).await {
                break;
            }
            let stamp = Stamp {
                sender: 0,
                seq,
                micros: payload::now_micros(),
            };
            let text = payload::encode(stamp, args.size);
            if sink
                .send(room_message(run.proto, &room, seq, text))
                .await
                .is_err()
            {
                break;
            }
            sent.fetch_add(1, Ordering::Relaxed);
        }
        done.store(1, Ordering::Relaxed);
    };
    let waiting = async {
        let ending = await_count(&run, &counters.delivered, expected, || {
            done.load(Ordering::Relaxed) == 1
        })
        .await;
        (
            ending,
            cost.cpu_micros(&run),
            run.probe.rss_kib(),
            run.probe.peak_rss_kib(),
        )
    };
    let ((), (ending, cpu, rss, peak)) = tokio::join!(sending, waiting);
    bar.finish();
    let traffic_time = started.elapsed();

    // The stalled member reads at last: what fitted in the buffers, then how it ended.
    let quiet = Duration::from_millis(args.stalled_quiet_ms);
    let mut stalled_seen = HashSet::new();
    let outcome = loop {
        let next = match tokio::time::timeout(quiet, stalled.next()).await {
            Err(_) => break "still open".to_owned(),
            Ok(next) => next,
        };
        match next {
            Some(Ok(Message::Text(text))) => {
                if let Some(stamp) = payload::find(text.as_str()).filter(|s| s.sender == 0) {
                    stalled_seen.insert(stamp.seq);
                }
            }
            Some(Ok(Message::Close(frame))) => {
                break format!("closed: {}", describe_close(frame.as_ref()));
            }
            Some(Ok(_)) => {}
            Some(Err(err)) => break format!("connection error: {err}"),
            None => break "connection ended without a close frame".to_owned(),
        }
    };
    stop.cancel();
    let mut all = Tally::new(0);
    let mut disconnected = Vec::new();
    for reader in readers {
        let (tally, _stream) = reader.await?;
        all.merge(&tally);
        if let Some(why) = tally.closed {
            disconnected.push(why);
        }
    }
    if let Ok((sender_tally, _)) = sender_reader.await {
        all.merge(&sender_tally);
    }

    let delivered = all.distinct;
    let mut report = Report::new("stall", run.proto.name());
    report
        .param("readers", r)
        .param("messages", k)
        .param("size", args.size)
        .param("window", args.window)
        .param("stalled_recv_buffer", args.stalled_recv_buffer)
        .result("expected", expected, "deliveries")
        .result("delivered", delivered, "deliveries")
        .result("lost", expected.saturating_sub(delivered), "deliveries")
        .result("disconnected_readers", disconnected.len(), "clients")
        .result("ending", ending.name(), "")
        .result("traffic_s", round3(traffic_time.as_secs_f64()), "s")
        .result("stalled_received", stalled_seen.len(), "messages")
        .result("stalled_outcome", outcome, "")
        .latency(
            ["latency_p50_ms", "latency_p99_ms", "latency_max_ms"],
            &all.latency,
        )
        .maybe("server_cpu_us_per_delivery", ratio(cpu, delivered), "µs")
        .maybe("server_rss_mib", mib(rss), "MiB")
        .maybe("server_peak_rss_mib", mib(peak), "MiB");
    report.result("server_errors", all.errors, "frames");
    if let Some(first) = disconnected.first() {
        report.result("first_disconnect", first.clone(), "");
    }
    if let Some(error) = all.first_error {
        report.result("first_server_error", error, "");
    }
    Ok(report)
}
