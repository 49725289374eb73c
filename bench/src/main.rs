//! `chat-bench`: a load generator for the chat server, loopback only, every run bounded by
//! counts and `--max-secs`. Each workload prints a readable table and one JSON line.
//!
//! - `client`: connecting, logging in, the frames bench clients send.
//! - `payload`: the stamp (sender, number, send time) inside every message's text.
//! - `tally`: what each receiver got — distinct, duplicates, latency, how it was closed.
//! - `probe`: the server's CPU time and memory from `/proc/<pid>`.
//! - `report`: the table and the JSON line.
//! - `progress`: a progress bar for phases longer than a few seconds.
//! - `reference`: a minimal server of the seed endpoints, the yardstick for the machine.
//! - `workload/`: `group`, `direct`, `idle`, `stall`, one file each, and the shared run context.

mod client;
mod payload;
mod probe;
mod progress;
mod reference;
mod report;
mod tally;
mod workload;

use anyhow::bail;
use clap::{Parser, Subcommand};
use client::{Dialer, Proto};
use std::net::SocketAddr;
use std::time::Duration;
use workload::Run;

/// Load generator for the chat server: group fan-out, direct ping-pong, idle connections, and a
/// member that stops reading. Loopback only; every run stops by itself.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Args {
    #[command(subcommand)]
    workload: Workload,
}

#[derive(Debug, Subcommand)]
enum Workload {
    /// N receivers and M senders in one room, K messages each: deliveries/s, latency, loss,
    /// server CPU per delivery.
    Group(workload::group::GroupArgs),
    /// P pairs exchanging direct messages, K round trips each: round trips/s, RTT, server CPU
    /// per forward.
    Direct(workload::direct::DirectArgs),
    /// C idle connections held H seconds, then each pinged: server memory per connection,
    /// connections still answering, connects/s.
    Idle(workload::idle::IdleArgs),
    /// R readers, one member that never reads, one sender of K large messages: loss at the
    /// readers and what happened to the stalled member.
    Stall(workload::stall::StallArgs),
    /// Not a workload: a minimal server of the seed endpoints (forward and relay, nothing else),
    /// to measure what this machine allows with no chat features. Run the seed workloads
    /// against it with `--no-control`.
    ReferenceServer(reference::ReferenceArgs),
}

/// Options every workload takes.
#[derive(Debug, clap::Args)]
pub struct Common {
    /// Server address; must be a loopback address. `group` takes it more than once for the
    /// nodes of a cluster: its receivers are spread over them in turn, and its senders use the
    /// first.
    #[arg(long, default_value = "127.0.0.1:9527")]
    addr: Vec<SocketAddr>,
    /// Protocol to speak: the native one (`/ws`) or the seed pages' (`/my_ws`, `/my_ws/<name>`).
    #[arg(long, value_enum, default_value_t = Proto::Native)]
    proto: Proto,
    /// PID of the server process, for its CPU time (/proc/PID/stat) and memory (/proc/PID/status).
    /// Given once per node of a cluster, the figures are the nodes' sums.
    #[arg(long)]
    server_pid: Vec<u32>,
    /// Longest the whole run may take, in seconds; what was counted by then is reported.
    #[arg(long, default_value_t = 120)]
    max_secs: u64,
    /// Quiet time after the last send before undelivered messages count as lost, in ms.
    #[arg(long, default_value_t = 1000)]
    drain_ms: u64,
    /// Nickname prefix, to keep runs apart (default: `b` and the process id).
    #[arg(long)]
    prefix: Option<String>,
    /// Connections being set up at once.
    #[arg(long, default_value_t = 64)]
    connect_concurrency: usize,
    /// Client WebSocket read buffer per connection, in bytes (default: group 32,768, stall
    /// 65,536, direct and idle 4,096). tungstenite zeroes all of it before each read, so a
    /// buffer larger than what arrives at once costs the load generator CPU.
    #[arg(long)]
    client_read_buffer: Option<usize>,
    /// The server has no native endpoint (`chat-bench reference-server`): seed runs skip the
    /// native control client that checks every page is connected before the traffic.
    #[arg(long)]
    no_control: bool,
    /// Draw no progress bar.
    #[arg(long)]
    no_progress: bool,
    /// Print only the JSON line.
    #[arg(long)]
    json: bool,
}

impl Common {
    /// The run's context; `spreads` says whether the workload can use several servers.
    fn run(&self, default_read_buffer: usize, spreads: bool) -> anyhow::Result<Run> {
        if let Some(addr) = self.addr.iter().find(|a| !a.ip().is_loopback()) {
            bail!(
                "--addr {addr} is not a loopback address: chat-bench only loads servers on this machine"
            );
        }
        if self.addr.len() > 1 && !spreads {
            bail!("only the group workload spreads its clients over several --addr");
        }
        let servers = self
            .addr
            .iter()
            .map(|&addr| Dialer {
                addr,
                read_buffer: self.client_read_buffer.unwrap_or(default_read_buffer),
            })
            .collect();
        Ok(Run::new(
            servers,
            self.proto,
            &self.server_pid,
            Duration::from_secs(self.max_secs),
            Duration::from_millis(self.drain_ms),
            self.prefix
                .clone()
                .unwrap_or_else(|| format!("b{}", std::process::id())),
            self.connect_concurrency,
            !self.no_progress,
            !self.no_control,
        ))
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    payload::now_micros(); // fix the clock origin before any client starts
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let common = match &args.workload {
        Workload::Group(a) => &a.common,
        Workload::Direct(a) => &a.common,
        Workload::Idle(a) => &a.common,
        Workload::Stall(a) => &a.common,
        Workload::ReferenceServer(a) => return runtime.block_on(reference::run(a)),
    };
    let (max_secs, json_only) = (common.max_secs, common.json);
    let work = async {
        match &args.workload {
            Workload::Group(a) => workload::group::run(a, a.common.run(32 * 1024, true)?).await,
            Workload::Direct(a) => workload::direct::run(a, a.common.run(4 * 1024, false)?).await,
            Workload::Idle(a) => workload::idle::run(a, a.common.run(4 * 1024, false)?).await,
            Workload::Stall(a) => workload::stall::run(a, a.common.run(64 * 1024, false)?).await,
            Workload::ReferenceServer(_) => unreachable!("served above"),
        }
    };
    // The workloads stop at --max-secs on their own; this is the backstop for a hung step.
    let backstop = Duration::from_secs(max_secs + 30);
    let report = runtime.block_on(async {
        tokio::time::timeout(backstop, work)
            .await
            .map_err(|_| anyhow::anyhow!("the run did not stop within {backstop:?}"))?
    })?;
    if !json_only {
        print!("{}", report.to_table());
    }
    println!("{}", report.to_json());
    // Thousands of client sockets close faster by exit than by dropping each in the runtime.
    runtime.shutdown_background();
    Ok(())
}
