//! chat-tui, the terminal client of the chat: the Elm architecture, with a network task.
//!
//! - [`app`]: all state ([`app::App`]): conversations, entries, outbox, input, connection.
//! - [`msg`]: what happened ([`msg::Msg`]) and what to do ([`msg::Cmd`]).
//! - [`update`]: `Msg` → new state + `Cmd`s; no I/O, tested by calling it.
//! - [`view`]: state → frame (bubbles, status bar, conversation list, help, login).
//! - [`input`]: the line editor of the message box.
//! - [`commands`]: `/msg`, `/join`, … and Tab completion.
//! - [`net`]: the network task (connect, reconnect with backoff and jitter).
//! - [`sanitize`]: control characters → visible placeholders.
//! - [`plain`]: the `--plain` line mode.
//! - [`terminal`]: entering the full screen and restoring the terminal on every exit path.

pub mod app;
pub mod commands;
pub mod input;
pub mod msg;
pub mod net;
pub mod plain;
pub mod sanitize;
pub mod terminal;
pub mod update;
pub mod view;
