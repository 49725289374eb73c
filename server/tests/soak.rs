//! A bounded soak: 1,000 clients connect, chat and leave in waves against the real binary.
//! Afterwards no message is missing and the server's memory is back near where it started.

mod common;

use common::{Binary, Client, TestServer, to_user};
use protocol::ServerFrame;
use std::collections::HashSet;

const CLIENTS: usize = 1000;
const WAVE: usize = 100;
const MESSAGES_EACH: usize = 5;

/// One wave: `WAVE` clients log in at once, each sends its messages to `sink` and waits for
/// every ack, then all leave.
async fn wave(server: &TestServer, first: usize) {
    let mut tasks = Vec::with_capacity(WAVE);
    for i in first..first + WAVE {
        let server = TestServer::at(server.addr);
        tasks.push(tokio::spawn(async move {
            let mut client: Client = server.native(&format!("user{i}")).await;
            for m in 0..MESSAGES_EACH {
                let id = format!("{i}-{m}");
                client.send(&to_user(&id, "sink", &id)).await;
            }
            for _ in 0..MESSAGES_EACH {
                assert!(matches!(client.reply().await, ServerFrame::Ack { .. }));
            }
        }));
    }
    for task in tasks {
        task.await.expect("a client of the wave");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_clients_come_and_go_without_loss_or_lasting_memory() {
    let binary = Binary::start(&["--ephemeral"]).await;
    let server = binary.as_test_server();
    let mut sink = server.native("sink").await;
    let received = tokio::spawn(async move {
        let mut texts = HashSet::new();
        while texts.len() < CLIENTS * MESSAGES_EACH + WAVE * MESSAGES_EACH {
            let m = sink.message().await;
            assert!(texts.insert(m.text.clone()), "{} arrived twice", m.text);
        }
        texts
    });

    // A first wave warms up allocator pools and tables; memory is measured after it.
    wave(&server, CLIENTS).await;
    let baseline = binary.rss_kib();
    for first in (0..CLIENTS).step_by(WAVE) {
        wave(&server, first).await;
    }
    let texts = received.await.expect("the sink got every message");
    for i in 0..CLIENTS {
        for m in 0..MESSAGES_EACH {
            assert!(
                texts.contains(&format!("{i}-{m}")),
                "message {i}-{m} is missing"
            );
        }
    }
    let after = binary.rss_kib();
    eprintln!(
        "soak: {CLIENTS} clients, {} messages; server RSS {baseline} KiB after warm-up, {after} KiB after",
        CLIENTS * MESSAGES_EACH
    );
    // Near the baseline: what one wave of connections costs would be a leak's first sign.
    assert!(
        after <= baseline + 8 * 1024,
        "RSS grew from {baseline} KiB to {after} KiB"
    );
}
