//! End to end through the chat features: the real `chat-server` and two `chat-tui` clients in
//! tmux. A reply with its quote, an edit, a deletion, a typing notice and a search, each
//! waited for on the other screen (polled until it shows or a deadline passes).
//!
//! Needs the binaries built next to this test (`cargo build --workspace --bins`) and tmux.

mod e2e_support;

use e2e_support::*;

#[test]
fn alice_replies_edits_and_deletes_while_bob_watches_then_bob_searches() {
    let scratch = Scratch::new("features");
    let server = Server::start(&scratch, free_port());
    let alice = Tmux::start(&scratch, "alice", &client_command("alice", &server));
    let bob = Tmux::start(&scratch, "bob", &client_command("bob", &server));
    alice.wait_for_text("logged in as alice");
    bob.wait_for_text("logged in as bob");
    alice.wait_for("bob online", |s| s.contains("2 online"));
    let title = |tmux: &Tmux| tmux.run(&["display-message", "-p", "#{pane_title}"]);
    wait_until("alice's title", || {
        title(&alice).contains("chat-tui · alice")
    });

    bob.type_line("who wants lunch?");
    alice.wait_for_text("who wants lunch?");

    // Typing shows on the other screen.
    alice.run(&["send-keys", "-l", "me"]);
    bob.wait_for_text("alice is typing…");

    // Select bob's message, answer it.
    alice.run(&["send-keys", "C-u", "C-Up", "C-r"]);
    alice.wait_for_text("reply to bob: who wants lunch?");
    alice.type_line("me too, @bob");
    let on_bob = bob.wait_for_text("me too, @bob");
    assert!(on_bob.contains("↳ bob: who wants lunch?"), "{on_bob}");

    // Edit the last own message.
    alice.wait_for("the reply acknowledged", |s| s.contains("you ·"));
    alice.type_line("/edit");
    alice.wait_for_text("editing your message");
    alice.run(&["send-keys", "C-u"]);
    alice.type_line("me three");
    bob.wait_for_text("me three (edited)");

    // Delete it.
    alice.run(&["send-keys", "C-Up"]);
    alice.type_line("/delete");
    let on_bob = bob.wait_for_text("message deleted");
    assert!(!on_bob.contains("me three"), "{on_bob}");

    // Search, and open the result.
    bob.type_line("/search lunch");
    bob.wait_for_text("Search: lunch");
    bob.wait_for_text("bob: who wants lunch?");
    bob.run(&["send-keys", "Enter"]);
    bob.wait_for("the results closed", |s| !s.contains("Search: lunch"));

    // A direct message while alice looks at the lobby: counted in her list and title.
    bob.type_line("/msg alice psst");
    alice.wait_for_text("@bob");
    wait_until("the unread total in alice's title", || {
        title(&alice).contains("(1) chat-tui · alice")
    });
}
