//! Each workload, with tiny counts, against the real `chat-server` binary over loopback, on the
//! native protocol and on the seed endpoints, and `group` spread over two nodes of a cluster
//! (with a `redis-server` of its own). These check that the tool works and that nothing is
//! lost; they never check a time.
//!
//! The server binary is found beside this test's target directory (`cargo build --workspace
//! --bins` puts it there), or at `$CHAT_SERVER_BIN`.

use serde_json::Value;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Longest a server may take to start, or one bench run to end, before the test fails.
const DEADLINE: Duration = Duration::from_secs(60);

/// A `chat-server` child process, stopped by its PID when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    fn start(extra: &[&str]) -> Self {
        let bin = server_binary();
        // A free port: bind, read it, let go; the server binds it right after.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let child = Command::new(&bin)
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--log",
                "warn",
            ])
            // Messages stay in memory: the test leaves nothing on disk. The per-connection
            // rate limit is off: the senders here are load, not people.
            .args(["--ephemeral", "--rate-limit", "0"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| panic!("starting {}: {err}", bin.display()));
        let mut server = Self { child, addr };
        let started = Instant::now();
        while TcpStream::connect(addr).is_err() {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("the server exited ({status}) before listening; args {extra:?}");
            }
            assert!(
                started.elapsed() < DEADLINE,
                "the server did not listen on {addr}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    /// `chat-bench reference-server` on a free port, found from the address it prints.
    fn reference() -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_chat-bench"))
            .args(["reference-server", "--port", "0", "--max-secs", "120"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting chat-bench reference-server");
        let stdout = child.stdout.take().expect("its output");
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)
            .expect("reading its address");
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        Self { child, addr }
    }

    /// Runs `chat-bench <workload> <args>` against this server and returns its JSON line.
    fn bench(&self, workload: &str, proto: &str, args: &[&str]) -> Value {
        bench_on(&[self], workload, proto, args)
    }
}

/// Runs `chat-bench <workload> <args>` with an `--addr` and a `--server-pid` for each of
/// `servers`, and returns its JSON line.
fn bench_on(servers: &[&Server], workload: &str, proto: &str, args: &[&str]) -> Value {
    let mut command = Command::new(env!("CARGO_BIN_EXE_chat-bench"));
    command.arg(workload).args(["--proto", proto]);
    for server in servers {
        command
            .args(["--addr", &server.addr.to_string()])
            .args(["--server-pid", &server.child.id().to_string()]);
    }
    let mut child = command
        .args([
            "--max-secs",
            "40",
            "--drain-ms",
            "500",
            "--no-progress",
            "--json",
        ])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting chat-bench");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for chat-bench") {
            break status;
        }
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chat-bench {workload} --proto {proto} did not stop by itself");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        std::io::Read::read_to_string(&mut stdout, &mut out).expect("reading the output");
    }
    assert!(
        status.success(),
        "chat-bench {workload} --proto {proto} failed: {out}"
    );
    let line = out.lines().last().unwrap_or_default();
    let report: Value = serde_json::from_str(line)
        .unwrap_or_else(|err| panic!("not a JSON line ({err}): {line:?}"));
    assert_eq!(report["workload"], workload);
    assert_eq!(report["proto"], proto);
    eprintln!("{line}");
    report
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn server_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("CHAT_SERVER_BIN") {
        return PathBuf::from(bin);
    }
    // target/<profile>/deps/smoke-<hash> → target/<profile>/chat-server
    let exe = std::env::current_exe().expect("the test's own path");
    let bin = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|dir| dir.join("chat-server"))
        .expect("a target directory");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build --workspace --bins` first, or set CHAT_SERVER_BIN",
        bin.display()
    );
    bin
}

fn results(report: &Value) -> &Value {
    &report["results"]
}

#[test]
fn group_fan_out_loses_nothing_on_either_protocol() {
    let server = Server::start(&[]);
    for proto in ["native", "seed"] {
        let report = server.bench("group", proto, &["-n", "6", "-m", "2", "-k", "25"]);
        let r = results(&report);
        assert_eq!(r["expected"], 2 * 25 * (6 + 1));
        assert_eq!(r["lost"], 0);
        assert_eq!(r["duplicates"], 0);
        assert_eq!(r["disconnected"], 0);
        assert_eq!(r["server_errors"], 0);
        let report = server.bench(
            "group",
            proto,
            &[
                "-n", "3", "-m", "1", "-k", "5", "--rate", "50", "--search", "zzz",
            ],
        );
        assert_eq!(results(&report)["lost"], 0);
        assert!(results(&report)["searches"].as_u64() >= Some(1), "{report}");
        assert!(results(&report)["search_max_ms"].is_number(), "{report}");
    }
}

#[test]
fn direct_ping_pong_loses_nothing_on_either_protocol() {
    let server = Server::start(&[]);
    for proto in ["native", "seed"] {
        let report = server.bench("direct", proto, &["-p", "4", "-k", "20"]);
        let r = results(&report);
        assert_eq!(r["round_trips_done"], 4 * 20);
        assert_eq!(r["lost"], 0);
        assert_eq!(r["server_errors"], 0);
        // The costs of both sides are reported (the server's given by --server-pid).
        assert!(r["server_cpu_us_per_forward"].is_number(), "{r}");
        assert!(r["bench_cpu_us_per_forward"].is_number(), "{r}");
        assert!(r["server_context_switches_per_forward"].is_number(), "{r}");
        // And the server's by thread: the store writer and the sequencer have names of
        // their own.
        let by_thread = &r["server_cpu_us_per_forward_by_thread"];
        for thread in ["sequencer", "store-writer", "tokio-rt-worker"] {
            assert!(by_thread[thread].is_number(), "{r}");
        }
    }
}

#[test]
fn idle_connections_all_answer_a_ping_on_either_protocol() {
    let server = Server::start(&[]);
    for proto in ["native", "seed"] {
        let report = server.bench("idle", proto, &["-c", "30", "--hold-secs", "1"]);
        let r = results(&report);
        assert_eq!(r["connected"], 30);
        assert_eq!(r["answering"], 30);
        assert_eq!(r["lost"], 0);
    }
}

#[test]
fn a_stalled_member_costs_the_healthy_readers_nothing_on_either_protocol() {
    // A short outbox and small socket buffers make the stalled member overflow within a few
    // messages instead of megabytes.
    let server = Server::start(&["--outbox-frames", "16", "--socket-send-buffer", "16384"]);
    for proto in ["native", "seed"] {
        let report = server.bench(
            "stall",
            proto,
            &[
                "-r",
                "4",
                "-k",
                "200",
                "-s",
                "4000",
                "--window",
                "8",
                "--stalled-recv-buffer",
                "4096",
            ],
        );
        let r = results(&report);
        assert_eq!(r["lost"], 0);
        assert_eq!(r["disconnected_readers"], 0);
        let outcome = r["stalled_outcome"].as_str().unwrap_or_default();
        assert_ne!(
            outcome, "still open",
            "the stalled member was never disconnected"
        );
    }
}

/// A `redis-server` child process on a free loopback port, nothing saved, its directory removed
/// and the process stopped by its PID when dropped.
struct Redis {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Redis {
    fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let dir =
            std::env::temp_dir().join(format!("chat-bench-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a directory for redis-server");
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| {
                panic!(
                    "starting redis-server ({err}): the cluster run needs it \
                     (`apt-get install redis-server`; scripts/test-all.sh installs it)"
                )
            });
        let redis = Self { child, port, dir };
        let started = Instant::now();
        while !redis.pong() {
            assert!(
                started.elapsed() < DEADLINE,
                "redis-server did not answer PING on port {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        redis
    }

    /// Whether it answers `PING` with `+PONG`.
    fn pong(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
        let mut reply = [0u8; 5];
        stream.write_all(b"PING\r\n").is_ok()
            && stream.read_exact(&mut reply).is_ok()
            && &reply == b"+PONG"
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn group_spreads_its_receivers_over_every_address_given() {
    // One server given twice: the spreading works without a cluster.
    let server = Server::start(&[]);
    let report = bench_on(
        &[&server, &server],
        "group",
        "native",
        &["-n", "5", "-m", "2", "-k", "20"],
    );
    assert_eq!(report["params"]["servers"], 2);
    let r = results(&report);
    assert_eq!(r["expected"], 2 * 20 * (5 + 1));
    assert_eq!(r["lost"], 0);
    assert_eq!(r["duplicates"], 0);
}

#[test]
fn group_across_two_cluster_nodes_loses_nothing_on_either_protocol() {
    let redis = Redis::start();
    let url = redis.url();
    let n1 = Server::start(&["--redis", &url, "--node-id", "n1"]);
    let n2 = Server::start(&["--redis", &url, "--node-id", "n2"]);
    for proto in ["native", "seed"] {
        let report = bench_on(
            &[&n1, &n2],
            "group",
            proto,
            &["-n", "6", "-m", "2", "-k", "25"],
        );
        assert_eq!(report["params"]["servers"], 2);
        let r = results(&report);
        assert_eq!(r["expected"], 2 * 25 * (6 + 1));
        assert_eq!(r["lost"], 0);
        assert_eq!(r["duplicates"], 0);
        assert_eq!(r["disconnected"], 0);
        assert_eq!(r["server_errors"], 0);
    }
}

#[test]
fn the_reference_server_forwards_and_relays_the_seed_protocol() {
    let server = Server::reference();
    let report = server.bench("direct", "seed", &["--no-control", "-p", "4", "-k", "20"]);
    let r = results(&report);
    assert_eq!(r["round_trips_done"], 4 * 20);
    assert_eq!(r["lost"], 0);
    let args = ["--no-control", "-n", "5", "-m", "2", "-k", "20"];
    let report = server.bench("group", "seed", &args);
    let r = results(&report);
    assert_eq!(r["expected"], 2 * 20 * (5 + 1));
    assert_eq!(r["lost"], 0);
    assert_eq!(r["duplicates"], 0);
}
