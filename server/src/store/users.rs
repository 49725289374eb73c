//! Users: who has logged in, registered names, last seen, direct-chat partners.

use super::{Store, StoreError};
use protocol::Nick;
use rusqlite::{OptionalExtension, params};

impl Store {
    /// Registered nicknames with their password hashes (PHC strings).
    pub fn registered_users(&self) -> Result<Vec<(Nick, String)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT nick, password FROM users WHERE password IS NOT NULL")?;
        let users = stmt
            .query_map([], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
            })?
            .filter_map(|r| r.ok())
            .filter_map(|(nick, hash)| Nick::parse(&nick).ok().map(|n| (n, hash)))
            .collect();
        Ok(users)
    }

    /// Records that `nick` went offline at `ts`.
    pub fn set_last_seen(&mut self, nick: &Nick, ts: i64) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("UPDATE users SET last_seen = ?2 WHERE nick = ?1")?
            .execute(params![nick.as_str(), ts])?;
        Ok(())
    }

    /// When `nick` last went offline: `None` for a name never seen, `Some(None)` for one that
    /// has not gone offline since it was first seen.
    pub fn last_seen(&self, nick: &Nick) -> Result<Option<Option<i64>>, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT last_seen FROM users WHERE nick = ?1")?
            .query_row(params![nick.as_str()], |row| row.get::<_, Option<i64>>(0))
            .optional()?)
    }

    /// Registers `nick` with a password hash.
    pub fn set_password(&mut self, nick: &Nick, hash: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE users SET password = ?2 WHERE nick = ?1",
            params![nick.as_str(), hash],
        )?;
        Ok(())
    }

    /// Every nickname that has ever logged in.
    pub fn known_users(&self) -> Result<Vec<Nick>, StoreError> {
        let mut stmt = self.conn.prepare("SELECT nick FROM users")?;
        let nicks = stmt
            .query_map([], |row| row.get::<_, String>(0))?
            .filter_map(|n| n.ok().and_then(|n| Nick::parse(&n).ok()))
            .collect();
        Ok(nicks)
    }

    /// Remembers `nick` as a known user.
    pub fn add_user(&mut self, nick: &Nick, ts: i64) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO users (nick, first_ts) VALUES (?1, ?2) ON CONFLICT (nick) DO NOTHING",
            )?
            .execute(params![nick.as_str(), ts])?;
        Ok(())
    }

    /// The people `nick` has had direct chats with (also when those messages have been
    /// deleted or pruned since).
    pub fn direct_partners(&self, nick: &Nick) -> Result<Vec<Nick>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT partner FROM dm_partners WHERE nick = ?1")?;
        let partners = stmt
            .query_map(params![nick.as_str()], |row| row.get::<_, String>(0))?
            .filter_map(|n| n.ok().and_then(|n| Nick::parse(&n).ok()))
            .collect();
        Ok(partners)
    }
}
