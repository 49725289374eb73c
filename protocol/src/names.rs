//! Validated names: [`Nick`] for people, [`RoomName`] for rooms.
//!
//! Both follow the same rules, so that names stay readable and safe to print anywhere:
//! 1 to 32 characters, each a Unicode letter or digit (so `张伟` and `Zoë` work) or one of
//! `_`, `-`, `.`. Whitespace, control characters and other punctuation are refused.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::sync::Arc;
use thiserror::Error;

/// The longest name, in characters (Unicode scalar values).
pub const MAX_NAME_CHARS: usize = 32;

/// Why a name was refused. The `Display` text is written for the person who typed it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NameError {
    #[error("the name is empty")]
    Empty,
    #[error("the name is longer than {max} characters", max = MAX_NAME_CHARS)]
    TooLong,
    #[error("the name contains whitespace")]
    Whitespace,
    #[error("the name contains a control character")]
    Control,
    #[error("the name contains {0:?}; use letters, digits, '_', '-' or '.'")]
    Forbidden(char),
}

fn check(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.chars().nth(MAX_NAME_CHARS).is_some() {
        return Err(NameError::TooLong);
    }
    for (i, c) in name.chars().enumerate() {
        if c.is_control() {
            return Err(NameError::Control);
        }
        if c.is_whitespace() {
            return Err(NameError::Whitespace);
        }
        let mark_after_base = i > 0 && is_combining_mark(c);
        if !(c.is_alphanumeric() || matches!(c, '_' | '-' | '.') || mark_after_base) {
            return Err(NameError::Forbidden(c));
        }
    }
    Ok(())
}

/// Combining diacritics, so that a decomposed `e\u{301}` spells `é`. Most marks of other
/// scripts (Devanagari vowel signs, for one) are alphabetic already.
fn is_combining_mark(c: char) -> bool {
    matches!(c,
        '\u{0300}'..='\u{036F}'
        | '\u{1AB0}'..='\u{1AFF}'
        | '\u{1DC0}'..='\u{1DFF}'
        | '\u{20D0}'..='\u{20FF}'
        | '\u{FE20}'..='\u{FE2F}')
}

macro_rules! name_type {
    ($(#[$doc:meta])* $ty:ident) => {
        $(#[$doc])*
        ///
        /// Shared text: a clone is a reference-count bump, not a copy.
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $ty(Arc<str>);

        impl $ty {
            /// Checks `name` against the naming rules.
            pub fn parse(name: &str) -> Result<Self, NameError> {
                check(name)?;
                Ok(Self(name.into()))
            }

            /// The name as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::str::FromStr for $ty {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
                ser.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(de)?;
                Self::parse(&raw).map_err(serde::de::Error::custom)
            }
        }
    };
}

name_type!(
    /// A person's nickname, unique among the users online.
    Nick
);
name_type!(
    /// The name of a chat room, such as `lobby`.
    RoomName
);

impl Nick {
    /// The name given to the `n`th anonymous visitor of the seed group page.
    pub fn guest(n: u64) -> Self {
        Self(format!("guest-{n}").into())
    }

    /// The name the server writes its own notices under.
    pub fn system() -> Self {
        Self(crate::SYSTEM_NICK.into())
    }

    /// Whether this name is kept for the server: `system` and `guest-<digits>`, in any case.
    /// Nobody can log in under a reserved name.
    pub fn is_reserved(&self) -> bool {
        let lower = self.0.to_lowercase();
        if lower == crate::SYSTEM_NICK {
            return true;
        }
        lower
            .strip_prefix("guest-")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    }
}

impl RoomName {
    /// The default room, where the seed group page talks.
    pub fn lobby() -> Self {
        // Every connection is in the lobby: one copy of its name serves them all.
        static LOBBY: std::sync::LazyLock<RoomName> =
            std::sync::LazyLock::new(|| RoomName(crate::DEFAULT_ROOM.into()));
        LOBBY.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_as_people_write_them_are_accepted() {
        for name in [
            "alice",
            "张伟",
            "Zoë",
            "bob_2",
            "x-y",
            "a.b",
            "田中さん",
            "٣٣",
            "e\u{301}",
        ] {
            assert!(Nick::parse(name).is_ok(), "{name} should be accepted");
        }
        assert!(Nick::parse(&"字".repeat(32)).is_ok());
    }

    #[test]
    fn bad_names_are_refused_with_a_reason() {
        assert_eq!(Nick::parse(""), Err(NameError::Empty));
        assert_eq!(Nick::parse(&"a".repeat(33)), Err(NameError::TooLong));
        assert_eq!(Nick::parse(&"字".repeat(33)), Err(NameError::TooLong));
        assert_eq!(Nick::parse("a b"), Err(NameError::Whitespace));
        assert_eq!(Nick::parse("a\u{3000}b"), Err(NameError::Whitespace));
        assert_eq!(Nick::parse("a\tb"), Err(NameError::Control));
        assert_eq!(Nick::parse("\u{1b}[31m"), Err(NameError::Control));
        assert_eq!(Nick::parse("<b>"), Err(NameError::Forbidden('<')));
        assert_eq!(
            Nick::parse("\u{301}e"),
            Err(NameError::Forbidden('\u{301}'))
        );
        assert_eq!(Nick::parse("a/b"), Err(NameError::Forbidden('/')));
        assert_eq!(
            Nick::parse("a\u{200b}b"),
            Err(NameError::Forbidden('\u{200b}'))
        );
        assert_eq!(
            NameError::TooLong.to_string(),
            "the name is longer than 32 characters"
        );
    }

    #[test]
    fn system_and_guest_names_are_reserved() {
        for name in ["system", "System", "guest-1", "GUEST-42"] {
            assert!(Nick::parse(name).expect("valid").is_reserved(), "{name}");
        }
        for name in ["guest", "guest-", "guest-x", "guest-1a", "systems"] {
            assert!(!Nick::parse(name).expect("valid").is_reserved(), "{name}");
        }
        assert!(Nick::guest(3).is_reserved());
    }

    #[test]
    fn deserializing_checks_the_rules() {
        let ok: Nick = serde_json::from_str("\"张伟\"").expect("valid");
        assert_eq!(ok.as_str(), "张伟");
        let err = serde_json::from_str::<Nick>("\"a b\"").expect_err("invalid");
        assert!(err.to_string().contains("whitespace"), "{err}");
    }
}
