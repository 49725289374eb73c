//! The frames of the original tutorial's single-chat page (`/my_ws/<name>`).
//!
//! The page sends `{"message", "from_user", "to_user"}` and shows `from_user-->message` for every
//! JSON object it receives. The group page (`/my_ws`) speaks plain text and needs no type.

use serde::{Deserialize, Serialize};

/// A single-chat frame, in both directions.
///
/// From a page, `from_user` is whatever the page typed and is never trusted: the server replaces
/// it with the name the connection logged in under. Missing fields read as empty, as the page
/// may send an empty input box.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeedChat {
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub from_user: String,
    #[serde(default)]
    pub to_user: String,
    /// The server's message id, on frames the server delivers (the page ignores it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<crate::MsgId>,
    /// When the server accepted the message, in milliseconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts: Option<i64>,
}

impl SeedChat {
    /// A notice from the server to the seed page of `to_user`, shown there as `system-->text`.
    pub fn notice(to_user: &str, text: impl Into<String>) -> Self {
        Self {
            message: text.into(),
            from_user: crate::SYSTEM_NICK.to_owned(),
            to_user: to_user.to_owned(),
            id: None,
            ts: None,
        }
    }

    /// The frame as JSON text.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("seed frames always serialize")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_the_seed_page_sends() {
        // Exactly what `JSON.stringify(send_str)` produces in myapp.html.
        let raw = r#"{"message":"你好","from_user":"alice","to_user":"bob"}"#;
        let chat: SeedChat = serde_json::from_str(raw).expect("parses");
        assert_eq!(chat.message, "你好");
        assert_eq!(chat.to_user, "bob");
        assert_eq!(serde_json::to_string(&chat).expect("serializes"), raw);
    }
}
