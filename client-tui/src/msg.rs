//! What happened ([`Msg`]) and what to do about it ([`Cmd`]).

use crossterm::event::{Event, KeyEvent, KeyEventKind, MouseEvent};
use protocol::{ClientFrame, ServerFrame};

/// What the network task reports.
#[derive(Debug, Clone, PartialEq)]
pub enum NetEvent {
    /// Trying to connect; `attempt` is 0 for the first try.
    Connecting { attempt: u32 },
    /// The WebSocket is open; nothing has been sent on it yet.
    Connected,
    /// The connection failed or was lost; the next try comes after `retry_in_ms`.
    Disconnected {
        reason: String,
        attempt: u32,
        retry_in_ms: u64,
    },
    /// A frame from the server.
    FrameReceived(ServerFrame),
}

/// Something that happened, fed to `update`.
#[derive(Debug, Clone, PartialEq)]
pub enum Msg {
    KeyPressed(KeyEvent),
    Pasted(String),
    Mouse(MouseEvent),
    Resized(u16, u16),
    Net(NetEvent),
    /// A line read in `--plain` mode: a message or a `/command`, as if typed and sent.
    LineEntered(String),
    /// `--plain` input ended: quit once the outbox is empty.
    InputEnded,
    /// A second passed (for countdowns in the status bar).
    Tick,
}

impl Msg {
    /// The message for a terminal event; `None` for events the client ignores (key releases,
    /// focus changes).
    pub fn from_terminal(event: Event) -> Option<Self> {
        match event {
            Event::Key(key) if key.kind == KeyEventKind::Press => Some(Self::KeyPressed(key)),
            Event::Paste(text) => Some(Self::Pasted(text)),
            Event::Mouse(mouse) => Some(Self::Mouse(mouse)),
            Event::Resize(w, h) => Some(Self::Resized(w, h)),
            _ => None,
        }
    }
}

/// Something `update` wants done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cmd {
    /// Send a frame to the server (dropped by the network task when not connected; own messages
    /// stay in the app's outbox until acknowledged, so nothing typed is lost).
    Send(ClientFrame),
    /// A line for `--plain` output (the full-screen client ignores it).
    Print(String),
    /// Ring the terminal bell (a mention or a direct message out of view).
    Bell,
    /// Ask the terminal for a desktop notification (OSC 777 and OSC 9); text is sanitized.
    Notify { title: String, body: String },
    /// Set the terminal title (OSC 2); the text is sanitized.
    SetTitle(String),
    /// Leave the client.
    Quit,
}
