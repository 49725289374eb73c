//! The full-screen terminal: raw mode, alternate screen, mouse and bracketed paste, restored on
//! every way out: normal return, error (the guard's `Drop`) and panic (a hook).

use crossterm::event::{
    DisableBracketedPaste, DisableMouseCapture, EnableBracketedPaste, EnableMouseCapture,
};
use crossterm::execute;
use ratatui::DefaultTerminal;
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
    Ok((terminal, guard))
}

/// Leaves the full-screen mode; harmless when called twice.
pub fn restore() {
    let _ = execute!(
        std::io::stdout(),
        DisableMouseCapture,
        DisableBracketedPaste
    );
    ratatui::restore();
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore();
    }
}
