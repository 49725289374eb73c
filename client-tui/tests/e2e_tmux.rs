//! End to end: the real `chat-server` and `chat-tui` binaries, each client in its own tmux
//! server (a real terminal), screens read with `capture-pane` and polled until the expected text
//! shows or a deadline passes (the screen is printed on failure).
//!
//! Needs the binaries built next to this test (`cargo build --workspace --bins`) and tmux.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long any expected screen may take to show.
const DEADLINE: Duration = Duration::from_secs(20);
/// Pause between two looks at a screen while polling.
const POLL: Duration = Duration::from_millis(50);

/// The directory holding the binaries: `target/debug` beside `target/debug/deps/<this test>`.
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test knows its path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test runs from target/<profile>/deps");
    for bin in ["chat-server", "chat-tui"] {
        assert!(
            dir.join(bin).is_file(),
            "{} is missing: run `cargo build --workspace --bins` first",
            dir.join(bin).display()
        );
    }
    dir.to_path_buf()
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding a free port");
    listener.local_addr().expect("a bound address").port()
}

/// A scratch directory for one test, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
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
struct Server {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Server {
    fn start(scratch: &Scratch, port: u16) -> Self {
        let log = scratch.0.join(format!(
            "server-{}.log",
            Instant::now().elapsed().as_nanos()
        ));
        let child = Command::new(bin_dir().join("chat-server"))
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
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
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn url(&self) -> String {
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
struct Tmux {
    socket: String,
    /// The socket file, removed on drop (tmux 3.3 leaves it behind).
    socket_path: Option<PathBuf>,
}

static SOCKETS: AtomicUsize = AtomicUsize::new(0);

impl Tmux {
    fn start(scratch: &Scratch, name: &str, command: &str) -> Self {
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

    fn run(&self, args: &[&str]) -> String {
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

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p"])
    }

    /// Types `text` literally, then presses Enter.
    fn type_line(&self, text: &str) {
        self.run(&["send-keys", "-l", text]);
        self.run(&["send-keys", "Enter"]);
    }

    /// Polls the screen until `done` holds; fails with the screen after the deadline.
    fn wait_for(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
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

    fn wait_for_text(&self, text: &str) -> String {
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

fn client_command(name: &str, server: &Server) -> String {
    format!(
        "{} --name {name} --server {}",
        bin_dir().join("chat-tui").display(),
        server.url()
    )
}

/// The display column where `text` starts on the screen line holding it.
fn column_of(screen: &str, text: &str) -> usize {
    let line = screen
        .lines()
        .find(|l| l.contains(text))
        .unwrap_or_else(|| panic!("{text:?} is not on the screen:\n{screen}"));
    let at = line.find(text).expect("the line holds the text");
    line[..at].chars().count()
}

#[test]
fn alice_sends_to_bob_right_aligned_for_her_and_left_aligned_for_him() {
    let scratch = Scratch::new("send");
    let server = Server::start(&scratch, free_port());
    let alice = Tmux::start(&scratch, "alice", &client_command("alice", &server));
    let bob = Tmux::start(&scratch, "bob", &client_command("bob", &server));
    alice.wait_for_text("logged in as alice");
    bob.wait_for_text("logged in as bob");
    alice.wait_for("bob online", |s| s.contains("2 online"));

    let text = "hello bob, 你好 from alice";
    alice.type_line(text);
    let on_bob = bob.wait_for_text("from alice");
    let on_alice = alice.wait_for("the acknowledged message", |s| {
        s.contains("from alice") && s.contains("you ·")
    });

    // 100 columns: a 20-column conversation list, then the message pane.
    let mine = column_of(&on_alice, "hello bob");
    let theirs = column_of(&on_bob, "hello bob");
    assert!(
        mine > 60,
        "alice's own message should be on the right:\n{on_alice}"
    );
    assert!(theirs < 25, "bob sees it on the left:\n{on_bob}");
    let line = on_alice
        .lines()
        .find(|l| l.contains("from alice"))
        .expect("shown");
    assert!(
        line.trim_end().ends_with("from alice"),
        "it ends at the right edge:\n{on_alice}"
    );
    // Bob sees who sent it, above the bubble.
    let header = on_bob
        .lines()
        .take_while(|l| !l.contains("from alice"))
        .last()
        .expect("a header line");
    assert!(header.contains("alice"), "sender's name above:\n{on_bob}");
}

#[test]
fn bob_reconnects_by_himself_after_the_server_restarts_and_the_next_message_arrives() {
    let scratch = Scratch::new("restart");
    let port = free_port();
    let mut server = Server::start(&scratch, port);
    let alice = Tmux::start(&scratch, "alice", &client_command("alice", &server));
    let bob = Tmux::start(&scratch, "bob", &client_command("bob", &server));
    alice.wait_for_text("logged in as alice");
    bob.wait_for_text("logged in as bob");
    alice.type_line("before the restart");
    bob.wait_for_text("before the restart");

    server.kill();
    bob.wait_for_text("reconnecting");
    alice.wait_for_text("reconnecting");
    alice.type_line("typed while the server was down");
    alice.wait_for_text("1 queued");

    let _server = Server::start(&scratch, port);
    bob.wait_for_text("reconnected as bob");
    alice.wait_for_text("reconnected as alice");
    // The message typed offline is sent once alice is back, and acknowledged: it shows once
    // and the queue is empty. Bob gets it once, live or, when alice was back first, in the
    // history that his resumed login brings.
    let on_bob = bob.wait_for_text("typed while the server was down");
    assert_eq!(
        on_bob.matches("typed while the server was down").count(),
        1,
        "delivered once:\n{on_bob}"
    );
    let on_alice = alice.wait_for("the queue drained", |s| {
        !s.contains("queued") && s.contains("typed while the server was down")
    });
    assert_eq!(
        on_alice.matches("typed while the server was down").count(),
        1,
        "shown once:\n{on_alice}"
    );
    alice.wait_for("both online", |s| s.contains("2 online"));

    alice.type_line("after the restart");
    let on_bob = bob.wait_for_text("after the restart");
    assert!(on_bob.contains("● online"), "{on_bob}");
}

#[test]
fn a_message_with_escape_sequences_leaves_the_terminal_unchanged() {
    let scratch = Scratch::new("escapes");
    let server = Server::start(&scratch, free_port());
    let bob = Tmux::start(&scratch, "bob", &client_command("bob", &server));
    bob.wait_for_text("logged in as bob");
    let title_before = bob.run(&["display-message", "-p", "#{pane_title}"]);

    // Clear the screen, turn text red, set the window title, leave the alternate screen, ring.
    let hostile = "\u{1b}[2J\u{1b}[31mRED\u{1b}]0;pwned\u{7}\u{1b}[?1049l\u{9b}2J end";
    let mut mallory = Command::new(bin_dir().join("chat-tui"))
        .args(["--plain", "--name", "mallory", "--server", &server.url()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting chat-tui --plain");
    let mut stdin = mallory.stdin.take().expect("piped stdin");
    writeln!(stdin, "{hostile}").expect("writing to chat-tui --plain");
    drop(stdin);
    let on_bob = bob.wait_for_text("RED");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = mallory.try_wait().expect("waiting for chat-tui --plain") {
            break status;
        }
        assert!(start.elapsed() < DEADLINE, "chat-tui --plain did not exit");
        std::thread::sleep(POLL);
    };
    assert!(status.success(), "--plain exits cleanly at end of input");

    assert!(
        on_bob.contains("␛[2J␛[31mRED␛]0;pwned␇␛[?1049l�2J end"),
        "the escapes show as placeholders:\n{on_bob}"
    );
    assert!(
        on_bob.contains("logged in as bob"),
        "nothing was cleared:\n{on_bob}"
    );
    assert!(on_bob.contains("● online"), "{on_bob}");
    assert_eq!(
        bob.run(&["display-message", "-p", "#{pane_title}"]),
        title_before,
        "the title is unchanged"
    );
    assert_eq!(
        bob.run(&["display-message", "-p", "#{alternate_on}"])
            .trim(),
        "1",
        "still on the alternate screen"
    );
    // No cell took the red colour the message asked for: the message text is drawn in the
    // bubble's own colours (white on grey).
    let styled = bob.run(&["capture-pane", "-p", "-e"]);
    let red_line = styled
        .lines()
        .find(|l| l.contains("RED"))
        .expect("the message is on the screen");
    assert!(
        !red_line.contains("\u{1b}[31m"),
        "the message turned text red: {red_line:?}"
    );
}

#[test]
fn a_taken_nickname_shows_the_reason_and_another_one_logs_in() {
    let scratch = Scratch::new("nick");
    let server = Server::start(&scratch, free_port());
    let first = Tmux::start(&scratch, "first", &client_command("carol", &server));
    first.wait_for_text("logged in as carol");
    let command = format!(
        "{} --server {}",
        bin_dir().join("chat-tui").display(),
        server.url()
    );
    let second = Tmux::start(&scratch, "second", &command);
    second.wait_for_text("nickname:");
    second.type_line("carol");
    let screen = second.wait_for_text("already");
    assert!(
        screen.contains("carol"),
        "the reason names the nickname:\n{screen}"
    );
    // The refused name stays in the field; change it and log in.
    second.run(&[
        "send-keys",
        "BSpace",
        "BSpace",
        "BSpace",
        "BSpace",
        "BSpace",
    ]);
    second.type_line("dave");
    second.wait_for_text("logged in as dave");
    first.wait_for_text("dave joined");
}

#[test]
fn quitting_restores_the_terminal() {
    let scratch = Scratch::new("quit");
    let server = Server::start(&scratch, free_port());
    // After the client ends, the shell reports its exit status and `cat` keeps the pane open.
    let command = format!(
        "sh -c '{}; echo \"chat-tui exited $?\"; exec cat'",
        client_command("erin", &server)
    );
    let tmux = Tmux::start(&scratch, "erin", &command);
    tmux.wait_for_text("logged in as erin");
    let flag = |name: &str| {
        tmux.run(&["display-message", "-p", &format!("#{{{name}}}")])
            .trim()
            .to_owned()
    };
    assert_eq!(flag("alternate_on"), "1", "full screen while running");
    assert_eq!(flag("mouse_any_flag"), "1", "mouse reported while running");
    tmux.type_line("/quit");
    tmux.wait_for_text("chat-tui exited 0");
    assert_eq!(flag("alternate_on"), "0", "back on the normal screen");
    assert_eq!(flag("mouse_any_flag"), "0", "mouse reporting off");
    assert_eq!(flag("cursor_flag"), "1", "cursor visible");
    // Raw mode is off: the terminal echoes the typed line, then `cat` prints it once more
    // (in raw mode there would be no echo, only cat's copy).
    tmux.type_line("echoed");
    tmux.wait_for("the line echoed and printed by cat", |s| {
        s.matches("echoed").count() == 2
    });
}
