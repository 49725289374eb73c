//! The full-screen terminal: raw mode, alternate screen, mouse and bracketed paste, restored on
//! every way out: normal return, error (the guard's `Drop`) and panic (a hook).

use crossterm::event::{
    DisableBracketedPaste, DisableMouseCapture, EnableBracketedPaste, EnableMouseCapture,
};
use crossterm::execute;
use ratatui::DefaultTerminal;
use std::io::Write;
use std::sync::Once;

/// Restores the terminal when dropped.
#[derive(Debug)]
pub struct TerminalGuard(());

/// Enters the full-screen mode. Keep the guard alive as long as the screen is used.
pub fn enter() -> anyhow::Result<(DefaultTerminal, TerminalGuard)> {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
    });
    let terminal = ratatui::try_init()?;
    let guard = TerminalGuard(());
    execute!(std::io::stdout(), EnableMouseCapture, EnableBracketedPaste)?;
    // Save the title on the terminal's title stack (XTWINOPS; ignored where unknown), so the
    // one the client sets is taken back on the way out.
    let mut out = std::io::stdout();
    let _ = out.write_all(b"\x1b[22;0t").and_then(|()| out.flush());
    Ok((terminal, guard))
}

/// Leaves the full-screen mode; harmless when called twice.
pub fn restore() {
    let _ = execute!(
        std::io::stdout(),
        DisableMouseCapture,
        DisableBracketedPaste
    );
    let mut out = std::io::stdout();
    let _ = out.write_all(b"\x1b[23;0t").and_then(|()| out.flush());
    ratatui::restore();
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore();
    }
}

/// Rings the terminal bell.
pub fn bell() {
    let mut out = std::io::stdout();
    let _ = out.write_all(b"\x07").and_then(|()| out.flush());
}

/// Text for inside an OSC sequence: no control characters (so it cannot end the sequence
/// early or start another), no `;` (the field separator), at most 200 characters.
pub fn osc_text(text: &str) -> String {
    crate::sanitize::sanitize_line(text)
        .replace(';', ",")
        .chars()
        .take(200)
        .collect()
}

/// Sets the terminal title (OSC 2).
pub fn set_title(title: &str) {
    let mut out = std::io::stdout();
    let _ = write!(out, "\x1b]2;{}\x07", osc_text(title)).and_then(|()| out.flush());
}

/// Asks the terminal for a desktop notification: OSC 777 (urxvt, foot, kitty, …) and OSC 9
/// (iTerm2, Windows Terminal, …); terminals that know neither ignore both.
pub fn notify(title: &str, body: &str) {
    let mut out = std::io::stdout();
    let (title, body) = (osc_text(title), osc_text(body));
    let _ = write!(
        out,
        "\x1b]777;notify;{title};{body}\x07\x1b]9;{title}: {body}\x07"
    )
    .and_then(|()| out.flush());
}
