//! A real `redis-server` process on a free loopback port, for the cluster tests: started with
//! nothing saved (`--save '' --appendonly no`, its files in a temporary directory), stopped by
//! its PID, restarted on the same port (empty), and killed on drop.

use super::DEADLINE;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A `redis-server` child process.
#[derive(Debug)]
pub struct RedisServer {
    /// `None` while stopped.
    child: Option<Child>,
    port: u16,
    /// Its working directory (`--dir`) and log file; removed on drop.
    dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts `redis-server` on a free loopback port and waits until it answers PING. Fails
    /// the test, saying how to install it, when `redis-server` is not installed.
    pub async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let dir = tempfile::tempdir().expect("a directory for redis-server");
        let mut redis = Self {
            child: None,
            port,
            dir,
        };
        redis.restart().await;
        redis
    }

    /// `redis://127.0.0.1:<port>`, for `chat-server --redis`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    /// Starts it again on the same port (with no data: nothing is saved) and waits until it
    /// answers PING. Does nothing while it runs.
    pub async fn restart(&mut self) {
        if self.child.is_some() {
            return;
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("redis-server's log file");
        let port = self.port.to_string();
        let dir = self.dir.path().to_str().expect("a UTF-8 temporary path");
        let spawned = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port])
            .args(["--save", "", "--appendonly", "no", "--dir", dir])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file handle"))
            .stderr(log)
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => panic!(
                "redis-server is not installed, and the cluster tests need it: \
                 `apt-get install redis-server` (scripts/test-all.sh installs it)"
            ),
            Err(err) => panic!("starting redis-server: {err}"),
        };
        self.child = Some(child);
        self.await_pong().await;
    }

    /// Polls with PING until `+PONG` comes back; fails the test with redis-server's log if it
    /// exits or the deadline passes first.
    async fn await_pong(&mut self) {
        let started = tokio::time::Instant::now();
        loop {
            if ping(self.port).await {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                panic!(
                    "redis-server exited ({status}) before answering PING:\n{}",
                    self.log()
                );
            }
            assert!(
                started.elapsed() < DEADLINE,
                "redis-server did not answer PING on port {} within {DEADLINE:?}:\n{}",
                self.port,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops it at once (SIGKILL to its PID) and waits for it to exit; its data is gone.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// What redis-server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Whether a Redis server on `port` answers `PING` with `+PONG`.
async fn ping(port: u16) -> bool {
    let attempt = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        stream.write_all(b"PING\r\n").await.ok()?;
        let mut reply = [0u8; 7];
        stream.read_exact(&mut reply).await.ok()?;
        Some(reply.starts_with(b"+PONG"))
    };
    tokio::time::timeout(Duration::from_secs(1), attempt)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}
