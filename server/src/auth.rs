//! Passwords of registered nicknames: argon2id hashes in PHC string form.
//!
//! Hashing is slow on purpose (tens of milliseconds), so it runs on the blocking pool, never on
//! the sequencer thread.

use argon2::{Argon2, PasswordHasher, PasswordVerifier};

/// Shortest password accepted, in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest password accepted, in characters.
pub const MAX_PASSWORD_CHARS: usize = 128;

/// Why a password cannot be used, worded for the user; `None` when it can.
pub fn weakness(password: &str) -> Option<String> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        Some(format!(
            "the password must be at least {MIN_PASSWORD_CHARS} characters"
        ))
    } else if chars > MAX_PASSWORD_CHARS {
        Some(format!(
            "the password must be at most {MAX_PASSWORD_CHARS} characters"
        ))
    } else {
        None
    }
}

/// A salted argon2id hash of `password`.
pub fn hash(password: &str) -> Result<String, String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Whether `password` matches `hash`. A hash that does not parse matches nothing.
pub fn verify(password: &str, hash: &str) -> bool {
    Argon2::default()
        .verify_password(password.as_bytes(), hash)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let h = hash("correct horse battery").expect("hash");
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify("correct horse battery", &h));
        assert!(!verify("correct horse batterY", &h));
        assert!(!verify("correct horse battery", "not a hash"));
        assert_ne!(h, hash("correct horse battery").expect("hash"), "salted");
    }

    #[test]
    fn passwords_have_a_length_range() {
        assert!(weakness("short").is_some());
        assert!(weakness("長い長い長い長い").is_none());
        assert!(weakness(&"x".repeat(129)).is_some());
    }
}
