//! The harness of the end-to-end tests: the real `chat-server` on a port of its own, clients
//! in their own tmux servers (real terminals) or in `--plain` mode, and polling with deadlines
//! (never fixed sleeps as synchronisation). Everything started is stopped on drop.
#![allow(dead_code)]

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long any expected screen may take to show.
pub const DEADLINE: Duration = Duration::from_secs(20);
/// Pause between two looks at a screen while polling.
pub const POLL: Duration = Duration::from_millis(50);

/// The `chat-server` binary: in `target/<profile>` beside `target/<profile>/deps/<this test>`
/// (another package's binary, so `cargo build --workspace --bins` must have built it).
pub fn server_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("the test knows its path");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test runs from target/<profile>/deps")
        .join("chat-server");
    assert!(
        bin.is_file(),
        "{} is missing: run `cargo build --workspace --bins` first",
        bin.display()
    );
    bin
}

/// The `chat-tui` binary, built by cargo for this package's tests.
pub fn client_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_chat-tui"))
}

pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding a free port");
    listener.local_addr().expect("a bound address").port()
}

/// A scratch directory for one test, removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("chat-tui-e2e-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("creating a scratch directory");
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A `chat-server` process on a port of its own; killed on drop.
pub struct Server {
    child: Child,
    pub port: u16,
    log: PathBuf,
}

impl Server {
    pub fn start(scratch: &Scratch, port: u16) -> Self {
        Self::start_with(scratch, port, &[])
    }

    /// A server serving `wss://` with the certificate and key in these PEM files.
    pub fn start_tls(scratch: &Scratch, port: u16, cert: &Path, key: &Path) -> Self {
        let cert = cert.to_str().expect("a UTF-8 temp path");
        let key = key.to_str().expect("a UTF-8 temp path");
        Self::start_with(scratch, port, &["--tls-cert", cert, "--tls-key", key])
    }

    fn start_with(scratch: &Scratch, port: u16, extra: &[&str]) -> Self {
        let log = scratch.0.join(format!(
            "server-{}.log",
            Instant::now().elapsed().as_nanos()
        ));
        let child = Command::new(server_bin())
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(extra)
            // The message store of this test alone, kept across a restart of the server.
            .env("CHAT_DATA_DIR", scratch.0.join("data"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("creating the server log"))
            .spawn()
            .expect("starting chat-server");
        let server = Self { child, port, log };
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < DEADLINE,
                "chat-server did not listen on {port}; log:\n{}",
                std::fs::read_to_string(&server.log).unwrap_or_default()
            );
            std::thread::sleep(POLL);
        }
        server
    }

    /// Kills the server at once (no goodbye to the clients) and waits for it to be gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One program running in its own tmux server (socket), 100×30; the tmux server is killed on
/// drop, which ends the program.
pub struct Tmux {
    socket: String,
    /// The socket file, removed on drop (tmux 3.3 leaves it behind).
    socket_path: Option<PathBuf>,
}

static SOCKETS: AtomicUsize = AtomicUsize::new(0);

impl Tmux {
    pub fn start(scratch: &Scratch, name: &str, command: &str) -> Self {
        let version = Command::new("tmux").arg("-V").output();
        assert!(
            version.is_ok_and(|o| o.status.success()),
            "tmux is missing: install it (apt-get install tmux)"
        );
        let config = scratch.0.join("tmux.conf");
        std::fs::write(
            &config,
            "set -g status off\nset -g default-terminal tmux-256color\nset -g escape-time 0\n",
        )
        .expect("writing the tmux config");
        let socket = format!(
            "chat-tui-e2e-{}-{}-{name}",
            std::process::id(),
            SOCKETS.fetch_add(1, Ordering::Relaxed)
        );
        let mut tmux = Self {
            socket,
            socket_path: None,
        };
        let config = config.to_str().expect("a UTF-8 temp path");
        let size = ["-x", "100", "-y", "30"];
        tmux.run(&[&["-f", config, "new-session", "-d"][..], &size, &[command]].concat());
        let path = tmux.run(&["display-message", "-p", "#{socket_path}"]);
        tmux.socket_path = Some(PathBuf::from(path.trim()));
        tmux
    }

    pub fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .env("LANG", "C.UTF-8")
            .env("LC_ALL", "C.UTF-8")
            .env_remove("TMUX")
            .output()
            .expect("running tmux");
        assert!(
            out.status.success(),
            "tmux {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn screen(&self) -> String {
        self.run(&["capture-pane", "-p"])
    }

    /// Types `text` literally, then presses Enter.
    pub fn type_line(&self, text: &str) {
        self.run(&["send-keys", "-l", text]);
        self.run(&["send-keys", "Enter"]);
    }

    /// Polls the screen until `done` holds; fails with the screen after the deadline.
    pub fn wait_for(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let screen = self.screen();
            if done(&screen) {
                return screen;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "timed out waiting for {what} on {}; the screen:\n{screen}",
                self.socket
            );
            std::thread::sleep(POLL);
        }
    }

    pub fn wait_for_text(&self, text: &str) -> String {
        self.wait_for(&format!("{text:?}"), |s| s.contains(text))
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
        if let Some(path) = &self.socket_path {
            let _ = std::fs::remove_file(path);
        }
    }
}

pub fn client_command(name: &str, server: &Server) -> String {
    format!(
        "{} --name {name} --server {}",
        client_bin().display(),
        server.url()
    )
}

/// Polls `done` until it holds; fails naming `what` after the deadline.
pub fn wait_until(what: &str, done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(POLL);
    }
}

/// The display column where `text` starts on the screen line holding it.
pub fn column_of(screen: &str, text: &str) -> usize {
    let line = screen
        .lines()
        .find(|l| l.contains(text))
        .unwrap_or_else(|| panic!("{text:?} is not on the screen:\n{screen}"));
    let at = line.find(text).expect("the line holds the text");
    line[..at].chars().count()
}

/// A `chat-tui --plain` process whose output lines are read on a thread, so a test can wait
/// for one with a deadline.
pub struct Plain {
    child: Child,
    stdin: Option<std::process::ChildStdin>,
    lines: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Plain {
    pub fn start(name: &str, server: &Server) -> Self {
        let mut child = Command::new(client_bin())
            .args(["--plain", "--name", name, "--server", &server.url()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting chat-tui --plain");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        // Ends when the process closes its output.
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            stdin: child.stdin.take(),
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for an output line containing `text`; fails with every line seen after the deadline.
    pub fn wait_for_line(&mut self, text: &str) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(text) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no line with {text:?}; the output:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    pub fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("input still open");
        writeln!(stdin, "{line}").expect("writing to chat-tui --plain");
    }

    /// Ends the input and waits for the process to exit; returns whether it exited with 0.
    pub fn finish(mut self) -> bool {
        drop(self.stdin.take());
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("waiting for chat-tui --plain") {
                return status.success();
            }
            assert!(start.elapsed() < DEADLINE, "chat-tui --plain did not exit");
            std::thread::sleep(POLL);
        }
    }
}

impl Drop for Plain {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
