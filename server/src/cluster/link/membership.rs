//! Joining the cluster, registering this node again when Redis is back (perhaps having lost
//! its data), and leaving it at shutdown.

use super::{Claim, Joined, Link};
use crate::cluster::scripts::{APPEND, AWAY, CLAIM, ENSURE_IDS, REAP, RELEASE, SNAPSHOT};
use crate::cluster::{
    CLUSTER, CURSOR_KEY, ClusterConfig, ClusterError, Event, Health, KNOWN, LOG, NEXT_ID, NODES,
    ONLINE, Outgoing, PASSWORDS, RESERVED_IDS, RemoteUser, connect, heartbeat, plain, position,
};
use crate::hub::now_ms;
use crate::store::Store;
use protocol::{Nick, RoomName};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

/// Why the directory could not be loaded.
enum DirectoryError {
    Redis(redis::RedisError),
    Store(crate::store::StoreError),
}

impl Link {
    /// Joins the cluster at `config.url`: checks that `store` belongs to it, reserves ids,
    /// starts the heartbeat, and takes the presence snapshot. Fails when Redis is unreachable.
    pub fn join(
        config: ClusterConfig,
        store: &mut Store,
        health: Arc<Health>,
    ) -> Result<Joined, ClusterError> {
        let url = config.url.clone();
        let unreachable = |err: redis::RedisError| ClusterError::Unreachable {
            url: url.clone(),
            reason: plain(&err),
        };
        let client = redis::Client::open(config.url.as_str()).map_err(unreachable)?;
        let mut conn = connect(&client).map_err(unreachable)?;
        let fresh = format!("{}-{}", config.node_id, now_ms());
        let (set, redis_id): (bool, String) = redis::pipe()
            .cmd("SETNX")
            .arg(CLUSTER)
            .arg(&fresh)
            .cmd("GET")
            .arg(CLUSTER)
            .query(&mut conn)
            .map_err(unreachable)?;
        let cluster_id = match store.meta("cluster")? {
            Some(local) if local != redis_id => {
                if set {
                    // Redis lost its data, not this node: keep the node's identity.
                    redis::cmd("SET")
                        .arg(CLUSTER)
                        .arg(&local)
                        .query::<()>(&mut conn)
                        .map_err(unreachable)?;
                    local
                } else {
                    return Err(ClusterError::OtherCluster {
                        url: config.url.clone(),
                        redis: redis_id,
                        local,
                    });
                }
            }
            Some(local) => local,
            None => {
                store.set_meta("cluster", &redis_id)?;
                redis_id
            }
        };
        let mut link = Self {
            append: redis::Script::new(APPEND),
            claim: redis::Script::new(CLAIM),
            away: redis::Script::new(AWAY),
            release: redis::Script::new(RELEASE),
            reap: redis::Script::new(REAP),
            ensure_ids: redis::Script::new(ENSURE_IDS),
            client,
            conn: Some(conn),
            health,
            reserved: (0, 0),
            reserved_at: std::time::Instant::now(),
            snapshot_at: String::new(),
            backlog: Vec::new(),
            cluster_id,
            config,
        };
        link.load_directory(store).map_err(|e| match e {
            DirectoryError::Redis(err) => unreachable(err),
            DirectoryError::Store(err) => ClusterError::Store(err),
        })?;
        let remote = link.start(store).map_err(unreachable)?;
        Ok(Joined { link, remote })
    }

    /// Brings every user and registered password the cluster knows into the store, however
    /// old (the log may have dropped their entries).
    fn load_directory(&mut self, store: &mut Store) -> Result<(), DirectoryError> {
        let conn = self.conn.as_mut().expect("connected at start");
        type Known = Vec<(String, i64)>;
        type Passwords = Vec<(String, String)>;
        let (known, passwords): (Known, Passwords) = redis::pipe()
            .cmd("HGETALL")
            .arg(KNOWN)
            .cmd("HGETALL")
            .arg(PASSWORDS)
            .query(conn)
            .map_err(DirectoryError::Redis)?;
        for (nick, ts) in known {
            if let Ok(nick) = Nick::parse(&nick) {
                store.add_user(&nick, ts).map_err(DirectoryError::Store)?;
            }
        }
        for (nick, hash) in passwords {
            if let Ok(nick) = Nick::parse(&nick) {
                store
                    .add_user(&nick, now_ms())
                    .map_err(DirectoryError::Store)?;
                store
                    .set_password(&nick, &hash)
                    .map_err(DirectoryError::Store)?;
            }
        }
        Ok(())
    }

    /// Gives Redis, which lost its data, this node's directory of users and passwords.
    fn restore_directory(&mut self, store: &Store) {
        let known = store.known_users().unwrap_or_default();
        let passwords = store.registered_users().unwrap_or_default();
        self.with_conn(|conn, _| {
            let mut pipe = redis::pipe();
            for nick in &known {
                pipe.cmd("HSETNX")
                    .arg(KNOWN)
                    .arg(nick.as_str())
                    .arg(now_ms())
                    .ignore();
            }
            for (nick, hash) in &passwords {
                pipe.cmd("HSETNX")
                    .arg(PASSWORDS)
                    .arg(nick.as_str())
                    .arg(hash)
                    .ignore();
            }
            pipe.query::<()>(conn)
        });
    }

    /// Registers the node afresh: clears what an earlier run under its name left, raises the
    /// id counter past every id stored here, reserves ids, and reads the presence snapshot.
    fn start(&mut self, store: &Store) -> redis::RedisResult<Vec<RemoteUser>> {
        let max = store.max_id().unwrap_or(0);
        let node = self.config.node_id.clone();
        let conn = self.conn.as_mut().expect("connected at start");
        // Whether the log still holds everything after where this node stopped reading.
        let first: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(LOG)
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(1)
            .query(conn)?;
        let read = store.meta(CURSOR_KEY).ok().flatten();
        if let (Some(first), Some(read)) = (first.ids.first(), read)
            && position(&read) < position(&first.id)
        {
            tracing::warn!(
                read,
                first = first.id,
                "this node was away longer than the cluster log keeps: \
                 changes the log dropped meanwhile are missing here"
            );
        }
        self.reap
            .key(NODES)
            .key(ONLINE)
            .key(LOG)
            .arg(self.config.log_cap)
            .arg(now_ms())
            .arg(&node)
            .invoke::<i64>(conn)?;
        heartbeat(conn, &self.config)?;
        self.ensure_ids.key(NEXT_ID).arg(max).invoke::<i64>(conn)?;
        let end: u64 = redis::cmd("INCRBY")
            .arg(NEXT_ID)
            .arg(RESERVED_IDS)
            .query(conn)?;
        let (cursor, remote) = snapshot(conn, &node)?;
        self.snapshot_at = cursor;
        self.reserve(end);
        Ok(remote)
    }

    /// Redis answers again (perhaps having lost its data): registers this node and its
    /// `users` (with their rooms) again, restores the id counter, and appends the backlog.
    pub fn recover(&mut self, store: &Store, users: &[(Nick, Vec<RoomName>, bool)]) {
        self.health.set(true, &"");
        self.conn = None;
        let max = store.max_id().unwrap_or(0).max(self.reserved.1);
        let cluster_id = self.cluster_id.clone();
        let restored = self.with_conn(|conn, link| {
            let lost: bool = redis::cmd("SETNX")
                .arg(CLUSTER)
                .arg(&cluster_id)
                .query(conn)?;
            heartbeat(conn, &link.config)?;
            link.ensure_ids.key(NEXT_ID).arg(max).invoke::<i64>(conn)?;
            // A fresh block of ids for the next outage.
            let end: u64 = redis::cmd("INCRBY")
                .arg(NEXT_ID)
                .arg(RESERVED_IDS)
                .query(conn)?;
            Ok((end, lost))
        });
        let Some((end, lost)) = restored else {
            return;
        };
        self.reserve(end);
        if lost {
            tracing::warn!("Redis lost the cluster's data; registering this node's part again");
            self.restore_directory(store);
        }
        // Who went offline meanwhile is released now, which also frees their names.
        let (gone, backlog): (Vec<Outgoing>, Vec<Outgoing>) = std::mem::take(&mut self.backlog)
            .into_iter()
            .partition(|out| matches!(out.event, Event::Offline { .. }));
        for out in gone {
            if let Event::Offline { nick, .. } = out.event
                && !users.iter().any(|(n, _, _)| *n == nick)
            {
                self.release(&nick);
            }
        }
        for (nick, rooms, away) in users {
            if let Claim::Taken(owner) = self.claim(nick, false) {
                tracing::warn!(nick = %nick, other = owner, "a nickname is online on two nodes");
            }
            if *away {
                self.away(nick);
            }
            let joins: Vec<Outgoing> = rooms
                .iter()
                .map(|room| {
                    let (room, nick) = (room.clone(), nick.clone());
                    Event::Joined { room, nick }.into()
                })
                .collect();
            self.append(&joins);
        }
        if self.append_as(&backlog, true).is_none() {
            self.backlog.extend(backlog);
        } else if !backlog.is_empty() {
            tracing::info!(
                events = backlog.len(),
                "appended what happened while Redis was down"
            );
        }
    }

    /// Who is online on the other nodes now (`None` while Redis is unreachable).
    pub fn online_elsewhere(&mut self) -> Option<Vec<RemoteUser>> {
        let node = self.config.node_id.clone();
        self.with_conn(|conn, _| snapshot(conn, &node))
            .map(|(_, remote)| remote)
    }

    /// Leaves the cluster at shutdown: this node's users go offline at once.
    pub fn leave(&mut self) {
        self.health.stopped.store(true, Relaxed);
        let node = self.config.node_id.clone();
        self.with_conn(|conn, link| {
            link.reap
                .key(NODES)
                .key(ONLINE)
                .key(LOG)
                .arg(link.config.log_cap)
                .arg(now_ms())
                .arg(&node)
                .invoke::<i64>(conn)?;
            redis::cmd("DEL")
                .arg(format!("chat:node:{node}"))
                .query::<()>(conn)
        });
    }
}

/// Who is online on nodes other than `node`, and the log position that view is as of.
fn snapshot(
    conn: &mut redis::Connection,
    node: &str,
) -> redis::RedisResult<(String, Vec<RemoteUser>)> {
    let (cursor, online): (String, Vec<(String, String, Vec<String>)>) =
        redis::Script::new(SNAPSHOT)
            .key(ONLINE)
            .key(LOG)
            .invoke(conn)?;
    let remote = online
        .into_iter()
        .filter(|(_, owner, _)| owner.split('|').next() != Some(node))
        .filter_map(|(nick, _, rooms)| {
            Some(RemoteUser {
                nick: Nick::parse(&nick).ok()?,
                rooms: rooms
                    .iter()
                    .filter_map(|r| RoomName::parse(r).ok())
                    .collect(),
            })
        })
        .collect();
    Ok((cursor, remote))
}
