//! Wire types shared by the chat server and its clients.
//!
//! - [`native`]: the typed JSON frames of our own protocol (`chat.v1` subprotocol),
//!   tagged by `"type"`. Documented with an example each in `PROTOCOL.md`.
//! - [`seed`]: the frames of the original tutorial pages (`/my_ws/<name>` single chat).
//! - [`names`]: validated nicknames and room names ([`Nick`], [`RoomName`]).
//! - [`error`]: stable error codes carried by error frames ([`ErrorCode`]).

pub mod error;
pub mod names;
pub mod native;
pub mod seed;

pub use error::ErrorCode;
pub use names::{NameError, Nick, RoomName};
pub use native::{
    ChatMessage, ClientFrame, Cursor, Limits, MsgId, Quote, RoomInfo, ServerFrame, Target,
};
pub use seed::SeedChat;

/// The WebSocket subprotocol that selects the native protocol.
pub const SUBPROTOCOL: &str = "chat.v1";

/// The room that the seed's group chat page talks in, and that every user joins at login.
pub const DEFAULT_ROOM: &str = "lobby";

/// The highest `count` of a [`ServerFrame::Unread`]: a conversation with more unread messages
/// is counted as this many (clients show "999+"), so a count costs the server the same however
/// long ago the user last read.
pub const MAX_UNREAD: u64 = 1000;

/// The sender name of notices that the server itself writes to seed pages.
pub const SYSTEM_NICK: &str = "system";
