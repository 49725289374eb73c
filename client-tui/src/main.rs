//! `chat-tui`: the terminal chat client.
//!
//! Reads the command line, then runs the full-screen client (terminal guard, event loop joining
//! keys, the network task and a clock) or the `--plain` line mode. The modules live in the
//! library (`lib.rs` has the map).

use anyhow::Context;
use clap::Parser;
use client_tui::app::{App, Screen};
use client_tui::msg::{Cmd, Msg};
use client_tui::update::update;
use client_tui::{net, plain, terminal, view};
use futures_util::StreamExt;
use protocol::Nick;
use std::time::Duration;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

/// The terminal chat client.
#[derive(Debug, Parser)]
#[command(name = "chat-tui", version, about)]
struct Cli {
    /// Your nickname; without it, the client asks on a login screen.
    #[arg(long, env = "CHAT_NAME")]
    name: Option<String>,
    /// The chat server (the `/ws` path is added when none is given).
    #[arg(long, env = "CHAT_SERVER", default_value = "ws://127.0.0.1:9527")]
    server: String,
    /// The password of a registered nickname (better given in the environment, where other
    /// users cannot read it from the process list).
    #[arg(long, env = "CHAT_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// A PEM file of the certificate(s) to trust for a `wss://` server: its CA, or its
    /// self-signed certificate (no system certificates are loaded).
    #[arg(long, env = "CHAT_CA", value_name = "FILE")]
    ca: Option<std::path::PathBuf>,
    /// Also ask the terminal for a desktop notification (OSC 777 and OSC 9) on a mention or a
    /// direct message out of view; off by default (the bell rings either way).
    #[arg(long, env = "CHAT_NOTIFY")]
    notify: bool,
    /// Line mode for scripts and screen readers: read lines from stdin, print messages.
    #[arg(long)]
    plain: bool,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Read before any thread starts: the local offset cannot be read safely afterwards.
    let utc_offset = time::UtcOffset::current_local_offset().map_or(0, |o| o.whole_seconds());
    let url = net::endpoint_url(&cli.server);
    let endpoint = match net::Endpoint::new(url, cli.ca.as_deref()) {
        Ok(endpoint) => endpoint,
        Err(problem) => {
            eprintln!("chat-tui: {problem}");
            std::process::exit(2);
        }
    };
    let prefix = client_prefix();
    let (nick, refused) = match cli.name.as_deref().map(Nick::parse) {
        None => (None, None),
        Some(Ok(nick)) => (Some(nick), None),
        Some(Err(e)) => (None, Some(format!("--name: {e}"))),
    };
    let mut app = App::new(cli.server.clone(), nick, prefix);
    app.utc_offset = utc_offset;
    app.password = cli.password.clone().filter(|p| !p.is_empty());
    if let Some(password) = &app.password {
        app.login_password.set(password);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    if cli.plain {
        if app.nick.is_none() {
            let why = refused.unwrap_or_else(|| "--plain needs --name (or CHAT_NAME)".into());
            eprintln!("chat-tui: {why}");
            std::process::exit(2);
        }
        let code = runtime.block_on(plain::run(app, endpoint))?;
        std::process::exit(code);
    }
    app.load_history = true;
    app.full_screen = true;
    app.notify = cli.notify;
    if let Some(problem) = refused {
        app.screen = Screen::Login {
            error: Some(problem),
        };
        if let Some(name) = cli.name.as_deref() {
            app.login_input.set(name);
        }
    }
    runtime.block_on(run_tui(app, endpoint))
}

/// A prefix for client message ids that differs between runs: the time and the process id.
fn client_prefix() -> String {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    format!("t{millis:x}p{:x}", std::process::id())
}

/// The most events handled before the screen is drawn again, so a burst of messages costs one
/// frame and typing stays responsive.
const EVENTS_PER_FRAME: usize = 512;

async fn run_tui(mut app: App, endpoint: net::Endpoint) -> anyhow::Result<()> {
    // Frames to the network task; it writes them to the socket as they come.
    let (to_net, from_app) = mpsc::channel(256);
    // Events from the network task; it waits (and so reads no further) when the app is behind.
    let (to_app, mut from_net) = mpsc::channel(1024);
    // Ends when the app drops its channel ends (below) or is aborted on the way out.
    let net = tokio::spawn(net::run(
        endpoint,
        net::NetConfig::default(),
        to_app,
        from_app,
    ));
    let (mut terminal, _guard) = terminal::enter()?;
    let size = terminal.size()?;
    app.size = (size.width, size.height);
    let mut keys = crossterm::event::EventStream::new();
    let mut clock = tokio::time::interval(Duration::from_secs(1));
    // Asked to stop (kill, logout): leave through the same door as /quit, restoring the terminal.
    let mut terminate = signal(SignalKind::terminate()).context("watching SIGTERM")?;
    let mut hangup = signal(SignalKind::hangup()).context("watching SIGHUP")?;
    'run: loop {
        terminal.draw(|frame| view::draw(&app, frame))?;
        let first = tokio::select! {
            event = keys.next() => match event {
                Some(event) => Msg::from_terminal(event.context("reading the terminal")?),
                None => break 'run,
            },
            Some(event) = from_net.recv() => Some(Msg::Net(event)),
            _ = clock.tick() => Some(Msg::Tick),
            _ = terminate.recv() => break 'run,
            _ = hangup.recv() => break 'run,
        };
        let mut batch: Vec<Msg> = first.into_iter().collect();
        while batch.len() < EVENTS_PER_FRAME {
            match from_net.try_recv() {
                Ok(event) => batch.push(Msg::Net(event)),
                Err(_) => break,
            }
        }
        for msg in batch {
            for cmd in update(&mut app, msg) {
                match cmd {
                    Cmd::Send(frame) => {
                        // Only fails when the network task ended; the outbox keeps messages.
                        let _ = to_net.send(frame).await;
                    }
                    Cmd::Print(_) => {}
                    Cmd::Bell => terminal::bell(),
                    Cmd::Notify { title, body } => terminal::notify(&title, &body),
                    Cmd::SetTitle(title) => terminal::set_title(&title),
                    Cmd::Quit => break 'run,
                }
            }
        }
    }
    net.abort();
    drop(terminal);
    Ok(())
}
