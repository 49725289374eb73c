//! Frame-time benchmark: a conversation of 10,000 messages, drawn at 120×40.
//!
//! Run in release: `cargo run --release -p client-tui --example frame_bench`.
//! Measures (1) redrawing the screen, (2) a message arriving then the next frame, which must
//! show it, both into ratatui's `TestBackend`, and (3) the same as (2) through the crossterm
//! backend writing the escape sequences to a sink (everything but the terminal itself); prints
//! mean, median, 99th percentile and worst of each.

use client_tui::app::{App, ConnState};
use client_tui::msg::{Msg, NetEvent};
use client_tui::update::update;
use client_tui::view;
use protocol::{ChatMessage, Nick, RoomName, ServerFrame, Target};
use ratatui::backend::{CrosstermBackend, TestBackend};
use ratatui::layout::Rect;
use ratatui::{Terminal, TerminalOptions, Viewport};
use std::time::{Duration, Instant};

const HISTORY: u64 = 10_000;
const ROUNDS: usize = 2_000;
const T0: i64 = 1_764_032_400_000;

fn nick(s: &str) -> Nick {
    Nick::parse(s).expect("valid nickname")
}

fn message(id: u64, from: &str, text: String) -> Msg {
    Msg::Net(NetEvent::FrameReceived(ServerFrame::Message(ChatMessage {
        id,
        ts: T0 + id as i64 * 1000,
        from: nick(from),
        target: Target::Room(RoomName::lobby()),
        text,
        reply_to: None,
        edited: None,
        deleted: false,
    })))
}

fn text_for(id: u64) -> String {
    match id % 4 {
        0 => format!("message {id}: short"),
        1 => format!("message {id}: 你好，这是一条中文消息，测试双宽字符的换行。👋🎉"),
        2 => format!("message {id}: {}", "lorem ipsum dolor sit amet ".repeat(8)),
        _ => format!("message {id}: https://example.com/{}", "x".repeat(150)),
    }
}

fn stats(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
    let pct = |p: f64| samples[((samples.len() - 1) as f64 * p) as usize];
    println!(
        "{name}: mean {:?}, median {:?}, p99 {:?}, max {:?} ({} frames)",
        mean,
        pct(0.5),
        pct(0.99),
        samples[samples.len() - 1],
        samples.len()
    );
}

fn main() {
    let mut app = App::new("ws://127.0.0.1:9527", Some(nick("alice")), "bench".into());
    app.conn = ConnState::Online;
    update(&mut app, Msg::Resized(120, 40));
    let senders = ["bob", "carol", "张伟", "alice"];
    for id in 1..=HISTORY {
        update(
            &mut app,
            message(id, senders[id as usize % 4], text_for(id)),
        );
    }
    assert_eq!(app.active_conv().entries.len() as u64, HISTORY);
    let mut terminal = Terminal::new(TestBackend::new(120, 40)).expect("test terminal");

    let start = Instant::now();
    terminal
        .draw(|f| view::draw(&app, f))
        .expect("drawing into a test backend");
    println!("first frame (cold wrap cache): {:?}", start.elapsed());

    let mut redraw = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let start = Instant::now();
        terminal
            .draw(|f| view::draw(&app, f))
            .expect("drawing into a test backend");
        redraw.push(start.elapsed());
    }

    let mut incoming = Vec::with_capacity(ROUNDS);
    for round in 0..ROUNDS as u64 {
        let id = HISTORY + 1 + round;
        let text = format!("fresh {id}");
        let start = Instant::now();
        update(&mut app, message(id, "bob", text.clone()));
        terminal
            .draw(|f| view::draw(&app, f))
            .expect("drawing into a test backend");
        incoming.push(start.elapsed());
        let shown = format!("{}", terminal.backend());
        assert!(
            shown.contains(&text),
            "message {id} is in the very next frame"
        );
    }

    let mut terminal = Terminal::with_options(
        CrosstermBackend::new(std::io::sink()),
        TerminalOptions {
            viewport: Viewport::Fixed(Rect::new(0, 0, 120, 40)),
        },
    )
    .expect("a terminal writing to a sink");
    let mut through_crossterm = Vec::with_capacity(ROUNDS);
    for round in 0..ROUNDS as u64 {
        let id = HISTORY + ROUNDS as u64 + 1 + round;
        let start = Instant::now();
        update(&mut app, message(id, "carol", format!("fresh {id}")));
        terminal
            .draw(|f| view::draw(&app, f))
            .expect("drawing into a sink");
        through_crossterm.push(start.elapsed());
    }

    println!("history of {HISTORY} messages, then {ROUNDS} more per run; 120x40 terminal");
    stats("redraw", redraw);
    stats("message arrives + next frame", incoming);
    stats("message arrives + next frame, crossterm", through_crossterm);
}
