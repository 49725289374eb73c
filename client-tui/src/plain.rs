//! `--plain`: a line mode for scripts and screen readers.
//!
//! Reads lines from stdin (messages and the same `/commands`), prints what arrives one line per
//! message, and at the end of input waits until every message is acknowledged, then exits.
//! It runs the same `update` as the full-screen client; only `Cmd::Print` is acted on.

use crate::app::{App, Screen};
use crate::msg::{Cmd, Msg};
use crate::net;
use crate::update::update;
use std::io::Write;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

/// How long to wait, after input ended, for the last messages to be acknowledged.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(15);

/// Runs the line mode; returns the process exit code (0 when everything was sent, 1 when
/// messages were left unsent, 2 when the nickname was refused).
pub async fn run(mut app: App, endpoint: net::Endpoint) -> anyhow::Result<i32> {
    // Frames to the network task: it sends them as fast as the socket takes them.
    let (to_net, from_app) = mpsc::channel(256);
    // Events from the network task; it waits when the app is behind.
    let (to_app, mut from_net) = mpsc::channel(1024);
    let net = tokio::spawn(net::run(
        endpoint,
        net::NetConfig::default(),
        to_app,
        from_app,
    ));
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut input_open = true;
    let deadline = tokio::time::sleep(Duration::MAX / 4);
    tokio::pin!(deadline);
    let mut out = std::io::stdout();
    let code = 'run: loop {
        let msg = tokio::select! {
            // Lines are read only once logged in, so `/join` and messages go in order.
            line = lines.next_line(), if input_open && app.is_online() => match line {
                Ok(Some(line)) => Msg::LineEntered(line),
                _ => {
                    input_open = false;
                    deadline.as_mut().reset(tokio::time::Instant::now() + DRAIN_TIMEOUT);
                    Msg::InputEnded
                }
            },
            Some(event) = from_net.recv() => Msg::Net(event),
            () = &mut deadline => {
                eprintln!("chat-tui: {} message(s) not delivered", app.outbox.len());
                break 'run 1;
            }
        };
        for cmd in update(&mut app, msg) {
            match cmd {
                Cmd::Send(frame) => {
                    let _ = to_net.send(frame).await;
                }
                Cmd::Print(line) => {
                    // A closed stdout (a pipe into `head`) ends the program quietly.
                    if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
                        break 'run 0;
                    }
                }
                Cmd::Quit => break 'run 0,
                Cmd::Bell | Cmd::Notify { .. } | Cmd::SetTitle(_) => {}
            }
        }
        if matches!(app.screen, Screen::Login { error: Some(_) }) {
            break 'run 2;
        }
    };
    net.abort();
    Ok(code)
}
