//! End to end: `chat-tui --plain` against the real `chat-server`, reading commands from stdin
//! and printing one line per message.
//!
//! Needs the binaries built next to this test (`cargo build --workspace --bins`).

mod e2e_support;

use e2e_support::*;

#[test]
fn plain_mode_reads_commands_and_prints_one_line_per_message() {
    let scratch = Scratch::new("plain");
    let server = Server::start(&scratch, free_port());
    let mut bob = Plain::start("bob", &server);
    bob.wait_for_line("logged in as bob");
    let mut alice = Plain::start("alice", &server);
    alice.wait_for_line("logged in as alice");
    alice.send("hi bob");
    alice.send("/msg bob 你好\u{1b}[31m");
    alice.send("/join rust");
    alice.wait_for_line("you joined #rust");
    assert!(
        alice.finish(),
        "alice exits cleanly at the end of her input"
    );

    let line = bob.wait_for_line("hi bob");
    assert!(line.ends_with("#lobby <alice> hi bob"), "{line}");
    let line = bob.wait_for_line("你好");
    assert!(line.ends_with("@alice <alice> 你好␛[31m"), "{line}");
    bob.send("/who");
    let line = bob.wait_for_line("in #lobby");
    assert!(line.contains("bob"), "{line}");
    assert!(bob.finish(), "bob exits cleanly at the end of his input");
}
