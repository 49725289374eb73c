//! End to end over TLS: the real `chat-server` serving `wss://` with a test certificate made
//! here (rcgen), and `chat-tui` trusting exactly that certificate with `--ca`.
//!
//! Needs the binaries built next to this test (`cargo build --workspace --bins`) and tmux.

mod e2e_support;

use e2e_support::*;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// Writes a self-signed certificate for `localhost` and its key; returns (cert, key) paths.
fn test_certificate(scratch: &Scratch) -> (PathBuf, PathBuf) {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".into()])
        .expect("making a test certificate");
    let cert = scratch.0.join("cert.pem");
    let key = scratch.0.join("key.pem");
    std::fs::write(&cert, made.cert.pem()).expect("writing cert.pem");
    std::fs::write(&key, made.signing_key.serialize_pem()).expect("writing key.pem");
    (cert, key)
}

#[test]
fn alice_and_bob_chat_over_wss_trusting_the_test_certificate() {
    let scratch = Scratch::new("wss");
    let (cert, key) = test_certificate(&scratch);
    let server = Server::start_tls(&scratch, free_port(), &cert, &key);
    let client = |name: &str| {
        format!(
            "{} --name {name} --server wss://localhost:{} --ca {}",
            client_bin().display(),
            server.port,
            cert.display()
        )
    };
    let alice = Tmux::start(&scratch, "alice", &client("alice"));
    let bob = Tmux::start(&scratch, "bob", &client("bob"));
    alice.wait_for_text("logged in as alice");
    bob.wait_for_text("logged in as bob");
    let on_bob = bob.wait_for("the secure server in the status bar", |s| {
        s.contains("wss://localhost")
    });
    assert!(on_bob.contains("● online"), "{on_bob}");

    alice.type_line("sealed with TLS 🔒");
    bob.wait_for_text("sealed with TLS");
    alice.wait_for("the acknowledged message", |s| {
        s.contains("sealed with TLS") && s.contains("you ·")
    });
}

#[test]
fn a_wss_server_without_ca_is_refused_at_start_with_a_message_naming_ca() {
    let out = Command::new(client_bin())
        .args([
            "--plain",
            "--name",
            "alice",
            "--server",
            "wss://localhost:1",
        ])
        .env_remove("CHAT_CA")
        .stdin(Stdio::null())
        .output()
        .expect("running chat-tui");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--ca FILE"), "{err}");
}

#[test]
fn a_client_trusting_another_certificate_does_not_log_in() {
    let scratch = Scratch::new("wss-untrusted");
    let (cert, key) = test_certificate(&scratch);
    let other = Scratch::new("wss-other");
    let (other_cert, _) = test_certificate(&other);
    let server = Server::start_tls(&scratch, free_port(), &cert, &key);
    let command = format!(
        "{} --name mallory --server wss://localhost:{} --ca {}",
        client_bin().display(),
        server.port,
        other_cert.display()
    );
    let client = Tmux::start(&scratch, "mallory", &command);
    client.wait_for_text("reconnecting");
    assert!(!client.screen().contains("logged in"));
}
