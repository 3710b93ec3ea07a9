//! A session: one connection and the origin of the server it reached, and
//! how that origin is learned (`INFO`) and shared by every session of the
//! process with one server process.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::MultiplexedConnection;

/// One connection, and who answers on it.
pub(crate) struct Session {
    pub conn: MultiplexedConnection,
    /// Shared by every session of the process with this server process
    /// (keyed by its run id, however it was reached): bumped when one of
    /// them learns that the server may hold other data than its origin
    /// names (see [`ends_session`]).
    pub(super) server: Arc<AtomicU64>,
    /// `server` when this session's origin was learned: an older session
    /// asks again before it is used.
    pub(super) ended: u64,
    /// The origin of every version read or written on this connection:
    /// 8 hex digits naming the server's run id, then 8 naming its
    /// replication id (see [`origin`]).
    pub run: Arc<str>,
    pub(super) generation: u64,
    /// Replication ids (as stored) that versions carried under this
    /// session's run id, checked against the server since: foreign. The
    /// last [`CHECKED`] only.
    pub(super) checked: Vec<[u8; 8]>,
    /// The server said it was a replica when this session was made.
    pub(super) replica: bool,
    /// The session must ask its server again before its next command
    /// (a replica refused a write: it may have been promoted since).
    pub(super) recheck_due: std::sync::atomic::AtomicBool,
    /// The connection's id in the process (kept when the session is asked
    /// again on the same connection).
    pub conn_id: u64,
    /// `CLIENT TRACKING` is on for the connection: what it reads may be
    /// kept in the near-cache.
    pub tracked: bool,
    /// Replies and timeouts on the connection, to end a session that only
    /// times out.
    pub(super) heard: Heard,
    /// The latest ordering round trip answered on this session's
    /// connection, for lease reads (`near/lease.rs`): a new session starts
    /// with none.
    pub confirmation: Arc<crate::backend::redis::near::lease::Confirmation>,
}

/// How many timeouts in a row, with no reply for at least the link's
/// silence bound (see `Link::silent_for`), end a session.
pub(super) const TIMEOUTS_TO_END: u32 = 3;

/// When a session's connection last answered, and how many of its
/// commands timed out since. A connection that stays silent (its peer
/// blackholed, a proxy that stopped forwarding) is never reported broken
/// by the client, so the session ends on timeouts: after
/// [`TIMEOUTS_TO_END`] in a row and no reply for a bound. A Redis that is
/// merely slow costs at most one new connection per bound, since a new
/// session starts from the reply that made it.
pub(crate) struct Heard {
    /// Milliseconds since `since` of the last reply.
    last: AtomicU64,
    since: std::time::Instant,
    timeouts: std::sync::atomic::AtomicU32,
}

impl Heard {
    pub(super) fn new() -> Heard {
        Heard {
            last: AtomicU64::new(0),
            since: std::time::Instant::now(),
            timeouts: std::sync::atomic::AtomicU32::new(0),
        }
    }

    /// The connection answered. Written at most once a millisecond, so
    /// that hits from every core share the line read-only.
    pub(super) fn reply(&self) {
        let now = self.since.elapsed().as_millis() as u64;
        if self.last.load(Ordering::Relaxed) < now {
            self.last.fetch_max(now, Ordering::Relaxed);
        }
        if self.timeouts.load(Ordering::Relaxed) != 0 {
            self.timeouts.store(0, Ordering::Relaxed);
        }
    }

    /// A command timed out; whether the session should end: enough
    /// timeouts in a row, and nothing heard for `silent_for`.
    pub(super) fn timed_out(&self, silent_for: Duration) -> bool {
        let n = self.timeouts.fetch_add(1, Ordering::Relaxed) + 1;
        let last = Duration::from_millis(self.last.load(Ordering::Relaxed));
        n >= TIMEOUTS_TO_END && self.since.elapsed().saturating_sub(last) >= silent_for
    }
}

/// How many checked replication ids a session remembers.
pub(super) const CHECKED: usize = 16;

/// How often a link asks its server again because of a version's
/// replication id, or because a server known as a replica refused a
/// write: more often, such versions count as foreign (a miss) and such
/// refusals as expected, so neither crafted versions nor a cache pointed
/// at a replica make every call pay a round trip.
pub(super) const CHECKS_EVERY: Duration = Duration::from_secs(1);

impl Session {
    /// Makes every session of the process with this server process ask it
    /// again who it is before its next command (see [`ends_session`]).
    pub(crate) fn changed(&self) {
        self.server.fetch_add(1, Ordering::AcqRel);
    }

    /// Whether `raw`, a stored version, was written by this server process
    /// under another replication id that was not checked yet: either this
    /// session's origin is older than the server's (a replica attached, a
    /// promotion), or the version came back with a copy of the data taken
    /// from elsewhere. Asking the server again tells which.
    pub(crate) fn drifted(&self, raw: &[u8]) -> Option<[u8; 8]> {
        let run = self.run.as_bytes();
        if raw.len() != run.len() + crate::version::TOKEN_LEN
            || raw[..8] != run[..8]
            || raw[8..16] == run[8..16]
        {
            return None;
        }
        let replid: [u8; 8] = raw[8..16].try_into().ok()?;
        (!self.checked.contains(&replid)).then_some(replid)
    }
}

/// Whether an error means the connection cannot be used again. A reply
/// that is late is not one: the server may be slow or paused, and the
/// connection serves again once it answers.
pub(crate) fn gone(e: &redis::RedisError) -> bool {
    !e.is_timeout() && (e.is_unrecoverable_error() || e.is_connection_dropped())
}

/// Whether an error ends the sessions of every link to the server that
/// sent it: the server may no longer hold the data their origin names. One
/// that refuses writes (`READONLY`) was made a replica, and one that sends
/// a slot elsewhere (`MOVED`) gave it away or was demoted; the next
/// sessions ask again who answers.
pub(crate) fn ends_session(e: &redis::RedisError) -> bool {
    use redis::{ErrorKind, ServerErrorKind};
    matches!(
        e.kind(),
        ErrorKind::Server(ServerErrorKind::ReadOnly | ServerErrorKind::Moved)
    )
}

/// What a server said of itself.
pub(super) struct Learned {
    pub(super) run_id: String,
    pub(super) origin: String,
    pub(super) replica: bool,
    /// The count of changes of this server process the process had seen
    /// before asking (see [`Learned::ended`]).
    pub(super) seen: Option<(Arc<AtomicU64>, u64)>,
}

impl Learned {
    /// The count a new session records: the one read before asking, when
    /// the process already knew this server process (a change noticed
    /// while asking then makes the new session ask again); else the one
    /// now, since nothing could have counted a change of it before.
    pub(super) fn ended(&self, server: &Arc<AtomicU64>) -> u64 {
        match &self.seen {
            Some((counter, before)) if Arc::ptr_eq(counter, server) => *before,
            _ => server.load(Ordering::Acquire),
        }
    }
}

/// The count of changes of the server process with run id `run_id`, shared
/// by every session of this process with it, however it was reached.
pub(super) fn counter_of(run_id: &str) -> Arc<AtomicU64> {
    use std::collections::HashMap;
    use std::sync::Weak;
    static SERVERS: Mutex<Option<HashMap<String, Weak<AtomicU64>>>> = Mutex::new(None);
    let mut servers = crate::sync::lock(&SERVERS);
    let servers = servers.get_or_insert_with(HashMap::new);
    if let Some(shared) = servers.get(run_id).and_then(Weak::upgrade) {
        return shared;
    }
    servers.retain(|_, w| w.strong_count() > 0);
    let shared = Arc::new(AtomicU64::new(0));
    servers.insert(run_id.to_string(), Arc::downgrade(&shared));
    shared
}

/// Asks the server for its run id, its replication id and its role, in one
/// round trip: the origin of the versions it holds, and whether it is a
/// replica. `None` when it does not say its run id.
pub(super) async fn learn(conn: &mut MultiplexedConnection) -> redis::RedisResult<Option<Learned>> {
    // Two commands, not `INFO server replication`: servers before 7 take
    // one section at a time.
    let (server, replication): (String, String) = redis::pipe()
        .cmd("INFO")
        .arg("server")
        .cmd("INFO")
        .arg("replication")
        .query_async(conn)
        .await?;
    let replica = replication.lines().any(|l| l.trim() == "role:slave");
    let Some(run_id) = server
        .lines()
        .find_map(|l| l.strip_prefix("run_id:"))
        .map(|id| id.trim().to_string())
    else {
        return Ok(None);
    };
    Ok(origin(&server, &replication).map(|origin| Learned {
        seen: None,
        run_id,
        origin,
        replica,
    }))
}

/// The first error among pipeline replies (kept in place by
/// `ignore_errors`) that ends the session (see [`ends_session`]).
pub(crate) fn ending(replies: &[redis::Value]) -> redis::RedisResult<()> {
    for reply in replies {
        if let redis::Value::ServerError(e) = reply {
            let e = redis::RedisError::from(e.clone());
            if ends_session(&e) {
                return Err(e);
            }
        }
    }
    Ok(())
}

/// The origin of the versions on a server: 8 hex digits of a hash of its
/// run id (`INFO server`), then 8 of a hash of its replication id (`INFO
/// replication`).
///
/// The run id changes when the process restarts (its data may come from
/// an older snapshot). The replication id changes when the server takes
/// its data from a master (a full resync replaces it) and when it is
/// promoted: a master that was demoted, resynced from another and
/// promoted back is the same process with other data. It also changes
/// with no change of data (a master makes its first replication backlog
/// when a replica first attaches, and a new one after `repl-backlog-ttl`);
/// a version of the same run id under another replication id makes a
/// session ask again ([`Session::drifted`]), so sessions made before and
/// after converge on the server's current origin. A server that does not
/// report a replication id is with_origin by its run id alone.
pub(crate) fn origin(server: &str, replication: &str) -> Option<String> {
    use sha2::Digest;
    let field = |info: &str, name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .map(str::trim)
            .filter(|v| v.len() >= 16 && v.bytes().all(|b| b.is_ascii_hexdigit()))
            .map(str::to_owned)
    };
    let run = field(server, "run_id")?;
    let replid = field(replication, "master_replid").unwrap_or_default();
    let hex4 = |text: &str| -> String {
        let digest = sha2::Sha256::digest(text.as_bytes());
        digest[..4].iter().map(|b| format!("{b:02x}")).collect()
    };
    Some(hex4(&run) + &hex4(&replid))
}

#[cfg(test)]
mod tests {
    use super::origin;

    const SERVER: &str = "# Server\r\nredis_version:7.0.15\r\nrun_id:0123456789abcdef0123456789abcdef01234567\r\ntcp_port:6379\r\n";
    const REPLICATION: &str = "# Replication\r\nrole:master\r\nconnected_slaves:0\r\nmaster_replid:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\nmaster_replid2:0000000000000000000000000000000000000000\r\n";

    #[test]
    fn the_scope_follows_the_run_id_and_the_replication_id() {
        let s = origin(SERVER, REPLICATION).unwrap();
        assert_eq!(s.len(), 16);
        assert!(s.bytes().all(|b| b.is_ascii_hexdigit()));
        let restarted = SERVER.replace("run_id:0", "run_id:1");
        let restarted = origin(&restarted, REPLICATION).unwrap();
        assert_ne!(restarted[..8], s[..8], "a restart changes the run's part");
        let resynced = REPLICATION.replace("master_replid:a", "master_replid:b");
        let resynced = origin(SERVER, &resynced).unwrap();
        assert_eq!(resynced[..8], s[..8], "the same process");
        assert_ne!(resynced[8..], s[8..], "another copy of the data");
        // `master_replid2` is not `master_replid`.
        let second = REPLICATION.replace("replid2:0", "replid2:1");
        assert_eq!(origin(SERVER, &second).unwrap(), s);
        // Without a replication id, the run id alone.
        assert!(origin(SERVER, "").is_some());
        assert_ne!(origin(SERVER, "").unwrap(), s);
        assert_eq!(origin("redis_version:7\r\n", REPLICATION), None);
        assert_eq!(origin("run_id:xyz\r\n", REPLICATION), None);
    }
}
