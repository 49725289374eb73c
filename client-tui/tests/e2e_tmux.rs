//! End to end: the real `chat-server` and `chat-tui` binaries, each client in its own tmux
//! server (a real terminal), screens read with `capture-pane` and polled until the expected text
//! shows or a deadline passes (the screen is printed on failure).
//!
//! Needs the binaries built next to this test (`cargo build --workspace --bins`) and tmux.

mod e2e_support;

use e2e_support::*;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Instant;

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
    let mut mallory = Command::new(client_bin())
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
    let command = format!("{} --server {}", client_bin().display(), server.url());
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

/// Runs a client in a shell that reports its exit status and then keeps the pane open with
/// `cat`; returns the tmux and a way to read one of tmux's pane flags.
fn client_in_shell(scratch: &Scratch, server: &Server, name: &str) -> Tmux {
    let command = format!(
        "sh -c '{}; echo \"chat-tui exited $?\"; exec cat'",
        client_command(name, server)
    );
    let tmux = Tmux::start(scratch, name, &command);
    tmux.wait_for_text(&format!("logged in as {name}"));
    assert_eq!(
        flag(&tmux, "alternate_on"),
        "1",
        "full screen while running"
    );
    assert_eq!(
        flag(&tmux, "mouse_any_flag"),
        "1",
        "mouse reported while running"
    );
    tmux
}

fn flag(tmux: &Tmux, name: &str) -> String {
    tmux.run(&["display-message", "-p", &format!("#{{{name}}}")])
        .trim()
        .to_owned()
}

/// The client has ended with `status`; the terminal is as it was before it started.
fn assert_restored(tmux: &Tmux, status: &str) {
    tmux.wait_for_text(&format!("chat-tui exited {status}"));
    assert_eq!(flag(tmux, "alternate_on"), "0", "back on the normal screen");
    assert_eq!(flag(tmux, "mouse_any_flag"), "0", "mouse reporting off");
    assert_eq!(flag(tmux, "cursor_flag"), "1", "cursor visible");
    // Raw mode is off: the terminal echoes the typed line, then `cat` prints it once more
    // (in raw mode there would be no echo, only cat's copy).
    tmux.type_line("echoed");
    tmux.wait_for("the line echoed and printed by cat", |s| {
        s.matches("echoed").count() == 2
    });
}

#[test]
fn quitting_restores_the_terminal() {
    let scratch = Scratch::new("quit");
    let server = Server::start(&scratch, free_port());
    let tmux = client_in_shell(&scratch, &server, "erin");
    tmux.type_line("/quit");
    assert_restored(&tmux, "0");
}

#[test]
fn a_terminated_client_restores_the_terminal() {
    let scratch = Scratch::new("term");
    let server = Server::start(&scratch, free_port());
    let tmux = client_in_shell(&scratch, &server, "fay");
    // The pane runs `sh`; its one child is chat-tui.
    let shell = flag(&tmux, "pane_pid");
    let children = std::fs::read_to_string(format!("/proc/{shell}/task/{shell}/children"))
        .expect("reading the shell's children");
    let client = children.split_whitespace().next().expect("chat-tui runs");
    let killed = Command::new("kill")
        .args(["-TERM", client])
        .status()
        .expect("running kill");
    assert!(killed.success());
    assert_restored(&tmux, "0");
}

#[test]
fn a_registered_nickname_asks_for_its_password() {
    let scratch = Scratch::new("register");
    let server = Server::start(&scratch, free_port());
    let first = Tmux::start(&scratch, "first", &client_command("gwen", &server));
    first.wait_for_text("logged in as gwen");
    first.type_line("/register correct horse battery");
    first.wait_for_text("gwen is registered");
    first.type_line("/quit");

    let second = Tmux::start(&scratch, "second", &client_command("gwen", &server));
    // The server refuses the login without the password; the login screen says why and
    // puts the cursor in the password box.
    let screen = second.wait_for_text("password:");
    assert!(!screen.contains("logged in as"), "{screen}");
    second.type_line("correct horse battery");
    let screen = second.wait_for_text("logged in as gwen");
    assert!(
        !screen.contains("correct horse"),
        "the password is not shown:\n{screen}"
    );
}
