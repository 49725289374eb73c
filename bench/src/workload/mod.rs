//! The workloads, one file each, and what they share: the run's context and the wait for
//! deliveries.

pub mod direct;
pub mod group;
pub mod idle;
pub mod stall;

use crate::client::{Dialer, Proto};
use crate::probe::Probe;
use crate::progress::Bar;
use crate::report::ratio;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// How often the senders' window and the end of a run are checked.
const POLL: Duration = Duration::from_millis(1);

/// One run's settings and deadline.
#[derive(Debug)]
pub struct Run {
    /// The first server: senders and control clients connect here.
    pub dialer: Dialer,
    /// Every server given, the first included: nodes of one cluster that receivers are spread
    /// over (see [`Run::node`]).
    pub servers: Vec<Dialer>,
    pub proto: Proto,
    pub probe: Probe,
    /// When the run must stop, set from `--max-secs` at start.
    pub deadline: Instant,
    /// Quiet time after the last send before the undelivered count as lost.
    pub drain: Duration,
    /// Nicknames and rooms of this run start with it.
    pub prefix: String,
    pub concurrency: usize,
    pub progress: bool,
    /// Seed runs check with a native control client that every page is connected.
    pub control: bool,
}

impl Run {
    #[allow(clippy::too_many_arguments)]
    /// `servers` must not be empty.
    pub fn new(
        servers: Vec<Dialer>,
        proto: Proto,
        server_pids: &[u32],
        max: Duration,
        drain: Duration,
        prefix: String,
        concurrency: usize,
        progress: bool,
        control: bool,
    ) -> Self {
        Self {
            dialer: *servers.first().expect("at least one server"),
            servers,
            proto,
            probe: Probe::new(server_pids),
            deadline: Instant::now() + max,
            drain,
            prefix,
            concurrency,
            progress,
            control,
        }
    }

    /// The server of client number `i`, taking the servers in turn.
    pub fn node(&self, i: usize) -> &Dialer {
        &self.servers[i % self.servers.len()]
    }

    /// Runs a setup step, failing it when the deadline passes first.
    pub async fn setup<T>(
        &self,
        what: &str,
        step: impl Future<Output = anyhow::Result<T>>,
    ) -> anyhow::Result<T> {
        match tokio::time::timeout_at(self.deadline, step).await {
            Ok(result) => result.map_err(|err| err.context(format!("setting up: {what}"))),
            Err(_) => anyhow::bail!("--max-secs passed while setting up: {what}"),
        }
    }

    /// A progress bar over `total` steps at `position()`.
    pub fn bar(&self, label: &str, total: u64, position: impl Fn() -> u64 + Send + 'static) -> Bar {
        Bar::start(label, total, position, self.progress)
    }
}

/// How a wait for deliveries ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Everything expected arrived.
    Complete,
    /// The senders were done and nothing new came for the drain time.
    Quiet,
    /// `--max-secs` passed.
    Deadline,
}

impl Ending {
    /// The name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Complete => "complete",
            Self::Quiet => "drained",
            Self::Deadline => "max-secs",
        }
    }
}

/// Waits until `counter` reaches `expected`, or `senders_done` and no new count for the drain
/// time, or the deadline.
pub async fn await_count(
    run: &Run,
    counter: &AtomicU64,
    expected: u64,
    senders_done: impl Fn() -> bool,
) -> Ending {
    let mut last = (counter.load(Ordering::Relaxed), Instant::now());
    loop {
        let now_count = counter.load(Ordering::Relaxed);
        if now_count >= expected {
            return Ending::Complete;
        }
        let now = Instant::now();
        if now >= run.deadline {
            return Ending::Deadline;
        }
        if now_count != last.0 || !senders_done() {
            last = (now_count, now);
        } else if now.duration_since(last.1) >= run.drain {
            return Ending::Quiet;
        }
        tokio::time::sleep(POLL * 5).await;
    }
}

/// Holds a sender back while it is `window` or more messages ahead of the slowest tracked
/// receiver. Returns false when the deadline passed.
pub async fn within_window(
    deadline: Instant,
    sent: u64,
    window: u64,
    slowest: impl Fn() -> u64,
) -> bool {
    while sent >= slowest().saturating_add(window) {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
    true
}

/// Server CPU and memory around a traffic phase.
#[derive(Debug, Clone)]
pub struct Cost {
    cpu_before: Option<u64>,
    threads_before: Option<BTreeMap<String, u64>>,
    switches_before: Option<u64>,
    /// This process (the load generator), which shares the machine's cores with the server.
    own: Probe,
    own_before: Option<u64>,
}

impl Cost {
    /// Reads the server's and this process's CPU time at the start of the traffic.
    pub fn start(run: &Run) -> Self {
        let own = Probe::new(&[std::process::id()]);
        Self {
            cpu_before: run.probe.cpu_micros(),
            threads_before: run.probe.thread_cpu_micros(),
            switches_before: run.probe.context_switches(),
            own_before: own.cpu_micros(),
            own,
        }
    }

    /// Server CPU microseconds used since [`start`](Self::start).
    pub fn cpu_micros(&self, run: &Run) -> Option<u64> {
        Some(run.probe.cpu_micros()?.saturating_sub(self.cpu_before?))
    }

    /// Server CPU microseconds used since [`start`](Self::start) by each kind of thread.
    pub fn thread_cpu_micros(&self, run: &Run) -> Option<BTreeMap<String, u64>> {
        let before = self.threads_before.as_ref()?;
        let now = run.probe.thread_cpu_micros()?;
        Some(
            now.into_iter()
                .map(|(name, us)| {
                    let used = us.saturating_sub(before.get(&name).copied().unwrap_or(0));
                    (name, used)
                })
                .collect(),
        )
    }

    /// The server threads' context switches since [`start`](Self::start): each is a wait (a
    /// wake-up between threads, mostly) or a preemption. Unlike CPU time, their count hardly
    /// depends on how fast the machine runs at the moment.
    pub fn context_switches(&self, run: &Run) -> Option<u64> {
        Some(
            run.probe
                .context_switches()?
                .saturating_sub(self.switches_before?),
        )
    }

    /// CPU microseconds this load generator used since [`start`](Self::start).
    pub fn own_cpu_micros(&self) -> Option<u64> {
        Some(self.own.cpu_micros()?.saturating_sub(self.own_before?))
    }
}

/// Each thread kind's CPU microseconds per unit (a delivery, a forward), as a JSON object.
pub fn per_unit(by_thread: Option<BTreeMap<String, u64>>, units: u64) -> Option<Value> {
    let per_unit = by_thread?
        .into_iter()
        .map(|(name, us)| Some((name, Value::from(ratio(Some(us), units)?))))
        .collect::<Option<Map<String, Value>>>()?;
    Some(Value::Object(per_unit))
}

/// KiB as MiB, to one decimal.
pub fn mib(kib: Option<u64>) -> Option<f64> {
    kib.map(|k| (k as f64 / 1024.0 * 10.0).round() / 10.0)
}
