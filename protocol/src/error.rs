//! Stable error codes. A client matches on the code; the sentence beside it is for people.

use serde::{Deserialize, Serialize};
use std::fmt;

/// What went wrong, as carried in a `{"type":"error"}` frame.
///
/// Codes are stable: new ones may be added, existing ones never change meaning. A client that
/// meets a code it does not know reads it as [`ErrorCode::Unknown`] and shows the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame was not valid JSON, or not a frame this server knows.
    BadFrame,
    /// Binary frames are not part of the protocol.
    BinaryFrame,
    /// The frame or the message text is larger than the server accepts.
    TooLarge,
    /// The message text is empty (or only whitespace).
    EmptyMessage,
    /// The nickname breaks the naming rules; the message says which.
    InvalidNick,
    /// The nickname is reserved (`system`, `guest-N`).
    ReservedNick,
    /// Someone with that nickname is online already.
    NickTaken,
    /// The room name breaks the naming rules.
    InvalidRoom,
    /// The nickname is registered: log in with its password.
    PasswordRequired,
    /// The password does not match the registered nickname.
    WrongPassword,
    /// The nickname is registered already.
    AlreadyRegistered,
    /// The password is too short or too long.
    WeakPassword,
    /// A frame other than `login` came before login.
    NotLoggedIn,
    /// A second `login` on a connection that is logged in.
    AlreadyLoggedIn,
    /// The recipient of a direct message is not online.
    UserOffline,
    /// The recipient of a direct message has never been seen.
    UnknownUser,
    /// The sender is not a member of the room it wrote to.
    NotInRoom,
    /// The user is in as many rooms as a connection may be.
    TooManyRooms,
    /// No message has that id.
    NoSuchMessage,
    /// Only the sender of a message may edit or delete it.
    NotYours,
    /// The client sends faster than it may.
    RateLimited,
    /// The connection fell too far behind and is being closed.
    TooSlow,
    /// The server is shutting down.
    ShuttingDown,
    /// The server failed; the message says what, the client may retry.
    Internal,
    /// A code this build does not know yet.
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// The code as it appears on the wire, e.g. `"nick_taken"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadFrame => "bad_frame",
            Self::BinaryFrame => "binary_frame",
            Self::TooLarge => "too_large",
            Self::EmptyMessage => "empty_message",
            Self::InvalidNick => "invalid_nick",
            Self::ReservedNick => "reserved_nick",
            Self::NickTaken => "nick_taken",
            Self::InvalidRoom => "invalid_room",
            Self::PasswordRequired => "password_required",
            Self::WrongPassword => "wrong_password",
            Self::AlreadyRegistered => "already_registered",
            Self::WeakPassword => "weak_password",
            Self::NotLoggedIn => "not_logged_in",
            Self::AlreadyLoggedIn => "already_logged_in",
            Self::UserOffline => "user_offline",
            Self::UnknownUser => "unknown_user",
            Self::NotInRoom => "not_in_room",
            Self::TooManyRooms => "too_many_rooms",
            Self::NoSuchMessage => "no_such_message",
            Self::NotYours => "not_yours",
            Self::RateLimited => "rate_limited",
            Self::TooSlow => "too_slow",
            Self::ShuttingDown => "shutting_down",
            Self::Internal => "internal",
            Self::Unknown => "unknown",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_str_matches_the_serde_name() {
        for code in [
            ErrorCode::BadFrame,
            ErrorCode::BinaryFrame,
            ErrorCode::TooLarge,
            ErrorCode::EmptyMessage,
            ErrorCode::InvalidNick,
            ErrorCode::ReservedNick,
            ErrorCode::NickTaken,
            ErrorCode::InvalidRoom,
            ErrorCode::PasswordRequired,
            ErrorCode::WrongPassword,
            ErrorCode::AlreadyRegistered,
            ErrorCode::WeakPassword,
            ErrorCode::NotLoggedIn,
            ErrorCode::AlreadyLoggedIn,
            ErrorCode::UserOffline,
            ErrorCode::UnknownUser,
            ErrorCode::NotInRoom,
            ErrorCode::TooManyRooms,
            ErrorCode::NoSuchMessage,
            ErrorCode::NotYours,
            ErrorCode::RateLimited,
            ErrorCode::TooSlow,
            ErrorCode::ShuttingDown,
            ErrorCode::Internal,
            ErrorCode::Unknown,
        ] {
            let json = serde_json::to_string(&code).expect("a code serializes");
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
    }

    #[test]
    fn an_unknown_code_reads_as_unknown() {
        let code: ErrorCode = serde_json::from_str("\"from_the_future\"").expect("parses");
        assert_eq!(code, ErrorCode::Unknown);
    }
}
