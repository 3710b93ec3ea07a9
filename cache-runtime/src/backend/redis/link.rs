//! A link to one Redis server: one multiplexed connection at a time, made
//! again after it breaks, each one bound to the scope of the data it
//! reached (the server's run id and replication id).
//!
//! Why not a reconnecting connection that hides its reconnects: a server
//! restarted from an older snapshot (RDB, or an AOF that lost its last
//! second) brings entries back together with the versions they were valid
//! under, undoing invalidations that had returned `Ok` (I10). So does a
//! master that was demoted, took an older copy from another server (a full
//! resync) and was promoted back. Stored versions therefore carry the
//! scope of the server that holds them. A command is built for one
//! [`Session`] and sent on that session's connection only, which never
//! reconnects: it cannot reach a restarted server with the scope of the
//! old one. A new connection learns the scope (`INFO server`, `INFO
//! replication`) before anything else is sent on it, and under a new scope
//! every version is new, so everything from before is a miss.
//!
//! A server that stops taking writes (`READONLY`: it was made a replica)
//! ends its session too, so that the next one learns the new scope.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client};

use crate::error::{Error, ErrorKind};

/// One connection, and who answers on it.
pub(crate) struct Session {
    pub conn: MultiplexedConnection,
    /// Shared by every session of the process with this server process
    /// (keyed by its run id, however it was reached): bumped when one of
    /// them learns that the server may hold other data than its scope
    /// names (see [`ends_session`]).
    server: Arc<AtomicU64>,
    /// `server` when this session's scope was learned: an older session
    /// asks again before it is used.
    ended: u64,
    /// The scope of every version read or written on this connection:
    /// 8 hex digits naming the server's run id, then 8 naming its
    /// replication id (see [`scope`]).
    pub run: Arc<str>,
    generation: u64,
    /// Replication ids (as stored) that versions carried under this
    /// session's run id, checked against the server since: foreign. The
    /// last [`CHECKED`] only.
    checked: Vec<[u8; 8]>,
    /// The server said it was a replica when this session was made.
    replica: bool,
    /// The session must ask its server again before its next command
    /// (a replica refused a write: it may have been promoted since).
    recheck_due: std::sync::atomic::AtomicBool,
}

/// How many checked replication ids a session remembers.
const CHECKED: usize = 16;

/// How often a link asks its server again because of a version's
/// replication id, or because a server known as a replica refused a
/// write: more often, such versions count as foreign (a miss) and such
/// refusals as expected, so neither crafted versions nor a cache pointed
/// at a replica make every call pay a round trip.
const CHECKS_EVERY: Duration = Duration::from_secs(1);

impl Session {
    /// Makes every session of the process with this server process ask it
    /// again who it is before its next command (see [`ends_session`]).
    pub(crate) fn changed(&self) {
        self.server.fetch_add(1, Ordering::AcqRel);
    }

    /// Whether `raw`, a stored version, was written by this server process
    /// under another replication id that was not checked yet: either this
    /// session's scope is older than the server's (a replica attached, a
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

enum State {
    /// No connection; one may be tried from `retry_at`.
    Down {
        retry_at: Instant,
        backoff: Duration,
        error: Option<Error>,
    },
    /// A task is connecting (attempt `attempt`, started `since`).
    Connecting {
        backoff: Duration,
        attempt: u64,
        since: Instant,
    },
    Up(Arc<Session>),
}

pub(crate) struct Link {
    client: Client,
    config: AsyncConnectionConfig,
    /// Where the link goes, for errors and logs.
    target: String,
    state: Mutex<State>,
    /// Bumped whenever `state` leaves `Connecting`.
    changes: tokio::sync::watch::Sender<u64>,
    next_generation: std::sync::atomic::AtomicU64,
    /// How long an attempt may take before another may start (its task's
    /// runtime may be gone, or no longer driven).
    attempt_bound: Duration,
    /// Held while the session is asked again who answers: one question at
    /// a time, the others take its answer.
    rechecking: tokio::sync::Mutex<()>,
    /// When the link last asked again because of a version's replication
    /// id.
    drift_checked: Mutex<Option<Instant>>,
}

/// One connection attempt, in its task.
struct Attempt {
    link: Arc<Link>,
    attempt: u64,
    over: bool,
}

impl Attempt {
    /// Records how the attempt went, if it is still the current one.
    fn end(&mut self, made: Result<Session, Error>) {
        self.over = true;
        let link = &self.link;
        let mut state = link.state();
        let backoff = match &*state {
            State::Connecting {
                backoff, attempt, ..
            } if *attempt == self.attempt => *backoff,
            // Superseded: another attempt took over.
            _ => return,
        };
        *state = match made {
            Ok(session) => State::Up(Arc::new(session)),
            Err(e) => {
                tracing::debug!(target = %link.target, error = %e, "cachette: connection attempt failed");
                State::Down {
                    retry_at: Instant::now() + backoff,
                    backoff: (backoff * 2).min(MAX_BACKOFF),
                    error: Some(e),
                }
            }
        };
        drop(state);
        link.changes.send_modify(|n| *n += 1);
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if !self.over {
            self.end(Err(Error::new(
                ErrorKind::Connection,
                "the connection attempt was dropped with its runtime",
            )));
        }
    }
}

/// Waits between failed connection attempts: 50 ms doubling to 2 s. While
/// waiting, operations fail at once (and read through).
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

impl Link {
    /// A link that connects on first use.
    pub(crate) fn new(
        client: Client,
        config: AsyncConnectionConfig,
        connect_timeout: Duration,
        target: String,
    ) -> Arc<Link> {
        Arc::new(Link {
            rechecking: tokio::sync::Mutex::new(()),
            drift_checked: Mutex::new(None),
            attempt_bound: connect_timeout * 2 + Duration::from_secs(1),
            client,
            config,
            target,
            state: Mutex::new(State::Down {
                retry_at: Instant::now(),
                backoff: FIRST_BACKOFF,
                error: None,
            }),
            changes: tokio::sync::watch::Sender::new(0),
            next_generation: std::sync::atomic::AtomicU64::new(1),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        crate::sync::lock(&self.state)
    }

    /// The current session, connecting first if there is none. Fails at
    /// once while a failed attempt's backoff runs.
    ///
    /// # Cancel safety
    /// The connection attempt runs in a task of its own: a caller that
    /// stops waiting does not stop it.
    pub(crate) async fn session(self: &Arc<Self>) -> Result<Arc<Session>, Error> {
        loop {
            let stale = {
                let mut state = self.state();
                match &*state {
                    State::Up(session) => {
                        if session.ended == session.server.load(Ordering::Acquire)
                            && !session.recheck_due.load(Ordering::Acquire)
                        {
                            return Ok(session.clone());
                        }
                        // Another link to the server learned something.
                        Ok(session.clone())
                    }
                    State::Connecting { backoff, since, .. } => {
                        if since.elapsed() > self.attempt_bound {
                            // That attempt's task is gone: start another.
                            let backoff = *backoff;
                            let attempt = self.next_generation.fetch_add(1, Ordering::Relaxed);
                            self.start_attempt(&mut state, backoff, attempt)?;
                        }
                        Err(self.changes.subscribe())
                    }
                    State::Down {
                        retry_at,
                        backoff,
                        error,
                    } => {
                        if Instant::now() < *retry_at {
                            return Err(error.clone().unwrap_or_else(|| self.unreachable()));
                        }
                        let backoff = *backoff;
                        let attempt = self.next_generation.fetch_add(1, Ordering::Relaxed);
                        self.start_attempt(&mut state, backoff, attempt)?;
                        Err(self.changes.subscribe())
                    }
                }
            };
            match stale {
                // Ask again on the same connection.
                Ok(session) => self.recheck(&session, None).await?,
                // The state changes when the attempt ends.
                Err(mut changed) => {
                    if changed.changed().await.is_err() {
                        return Err(self.unreachable());
                    }
                }
            }
        }
    }

    /// Asks the server of `session` again who it is, on the same
    /// connection (so the same process: only its replication id and role
    /// can have changed), and puts a session with what it says in its
    /// place. `drifted` is a replication id a version carried under this
    /// run id: if the server does not have it, it is remembered as foreign.
    /// One question at a time per link: a caller that waited for another's
    /// finds the session replaced and asks nothing.
    pub(crate) async fn recheck(
        &self,
        session: &Session,
        drifted: Option<[u8; 8]>,
    ) -> Result<(), Error> {
        let _one = self.rechecking.lock().await;
        if !matches!(&*self.state(), State::Up(current) if current.generation == session.generation)
        {
            return Ok(());
        }
        let before_count = session.server.load(Ordering::Acquire);
        let before = (session.server.clone(), before_count);
        let mut conn = session.conn.clone();
        let learned = match learn(&mut conn).await {
            Ok(learned) => learned.map(|l| Learned {
                seen: Some(before),
                ..l
            }),
            Err(e) => {
                if gone(&e) {
                    self.broken(session);
                }
                return Err(self.info_error(e));
            }
        };
        let Some(learned) = learned else {
            self.broken(session);
            return Err(self.no_run_id());
        };
        if learned.scope.as_bytes()[..8] != session.run.as_bytes()[..8] {
            // Cannot happen on one connection; never judge across processes.
            self.broken(session);
            return Err(self.unreachable());
        }
        let mut checked = session.checked.clone();
        if let Some(replid) = drifted {
            if learned.scope.as_bytes()[8..16] != replid {
                if checked.len() == CHECKED {
                    checked.remove(0);
                }
                checked.push(replid);
            }
        }
        if (learned.scope != *session.run || learned.replica != session.replica)
            && session.server.load(Ordering::Acquire) == before_count
        {
            // The server changed since this session asked, and no other
            // session said so yet: every session with it asks again.
            session.changed();
        }
        let mut fresh = self.session_of(conn, learned);
        fresh.checked = checked;
        let mut state = self.state();
        if let State::Up(current) = &*state {
            if current.generation == session.generation {
                *state = State::Up(Arc::new(fresh));
            }
        }
        Ok(())
    }

    /// Whether this link may ask its server again now for a reason that
    /// an attacker or a misconfiguration can repeat (at most once every
    /// [`CHECKS_EVERY`]).
    pub(crate) fn may_check_drift(&self) -> bool {
        let mut last = crate::sync::lock(&self.drift_checked);
        let now = Instant::now();
        if last.is_some_and(|at| now.duration_since(at) < CHECKS_EVERY) {
            return false;
        }
        *last = Some(now);
        true
    }

    /// A session on `conn` for what the server said.
    fn session_of(&self, conn: MultiplexedConnection, learned: Learned) -> Session {
        let server = counter_of(&learned.run_id);
        Session {
            conn,
            ended: learned.ended(&server),
            server,
            run: learned.scope.into(),
            generation: self.next_generation.fetch_add(1, Ordering::Relaxed),
            checked: Vec::new(),
            replica: learned.replica,
            recheck_due: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Marks `attempt` as running and spawns it.
    fn start_attempt(
        self: &Arc<Self>,
        state: &mut State,
        backoff: Duration,
        attempt: u64,
    ) -> Result<(), Error> {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            *state = State::Down {
                retry_at: Instant::now(),
                backoff: FIRST_BACKOFF,
                error: None,
            };
            return Err(Error::new(
                ErrorKind::Config,
                "cachette needs a tokio runtime to connect to Redis",
            ));
        };
        *state = State::Connecting {
            backoff,
            attempt,
            since: Instant::now(),
        };
        // Made before the task: if the task is dropped before it ends (its
        // runtime shut down), the attempt is marked as over.
        let guard = Attempt {
            link: self.clone(),
            attempt,
            over: false,
        };
        runtime.spawn(async move {
            let mut guard = guard;
            let made = guard.link.connect().await;
            guard.end(made);
        });
        Ok(())
    }

    fn unreachable(&self) -> Error {
        Error::new(
            ErrorKind::Connection,
            format!("{} is unreachable; reconnecting", self.target),
        )
    }

    /// Connects and learns who answers.
    async fn connect(&self) -> Result<Session, Error> {
        let mut conn = self
            .client
            .get_multiplexed_async_connection_with_config(&self.config)
            .await
            .map_err(|e| super::connect::connect_error(Error::from(e), &self.target))?;
        let learned = learn(&mut conn)
            .await
            .map_err(|e| self.info_error(e))?
            .ok_or_else(|| self.no_run_id())?;
        if learned.replica {
            tracing::warn!(target = %self.target, "cachette: connected to a replica, which refuses fills and invalidations; point cachette at the master");
        }
        Ok(self.session_of(conn, learned))
    }

    fn info_error(&self, e: redis::RedisError) -> Error {
        let e = Error::from(e);
        if e.kind() == ErrorKind::Auth {
            Error::new(
                ErrorKind::Auth,
                format!(
                    "{} refused `INFO`, which cachette needs to notice restarts and \
                     failovers (grant `+info`)",
                    self.target
                ),
            )
            .with_source(e)
        } else {
            super::connect::connect_error(e, &self.target)
        }
    }

    fn no_run_id(&self) -> Error {
        Error::new(
            ErrorKind::Backend,
            format!("{} did not say its run id (`INFO server`)", self.target),
        )
    }

    /// Connects now, for `connect`, which fails when the server cannot be
    /// reached.
    pub(crate) async fn connect_now(self: &Arc<Self>) -> Result<(), Error> {
        let session = self.connect().await?;
        *self.state() = State::Up(Arc::new(session));
        self.changes.send_modify(|n| *n += 1);
        Ok(())
    }

    /// Reports that `session`'s connection failed: the next caller makes a
    /// new one.
    pub(crate) fn broken(&self, session: &Session) {
        let mut state = self.state();
        if let State::Up(current) = &*state {
            if current.generation == session.generation {
                *state = State::Down {
                    retry_at: Instant::now(),
                    backoff: FIRST_BACKOFF,
                    error: None,
                };
            }
        }
    }

    /// A command on `session` failed with `e`: a lost connection is made
    /// again; an error that may mean the server changed (see
    /// [`ends_session`]) makes every session of the process with that
    /// server ask it again who it is before its next command. A refusal
    /// from a server that said it was a replica only makes this session
    /// ask again (at most once every [`CHECKS_EVERY`]); if the answer
    /// changed, every session asks.
    pub(crate) fn failed(&self, session: &Session, e: &redis::RedisError) {
        if gone(e) {
            self.broken(session);
        } else if ends_session(e) {
            let read_only = e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly);
            if session.replica && read_only {
                if self.may_check_drift() {
                    session.recheck_due.store(true, Ordering::Release);
                }
            } else {
                session.changed();
            }
        }
    }

    /// Runs `op` on the current session; a failure that ends the session
    /// (see [`ends_session`]) marks it broken.
    pub(crate) async fn run<T, F, Fut>(self: &Arc<Self>, op: F) -> Result<T, Error>
    where
        F: FnOnce(Arc<Session>) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let session = self.session().await?;
        match op(session.clone()).await {
            Ok(v) => Ok(v),
            Err(e) => {
                self.failed(&session, &e);
                Err(Error::from(e))
            }
        }
    }
}

/// Whether an error means the connection cannot be used again. A reply
/// that is late is not one: the server may be slow or paused, and the
/// connection serves again once it answers.
pub(crate) fn gone(e: &redis::RedisError) -> bool {
    !e.is_timeout() && (e.is_unrecoverable_error() || e.is_connection_dropped())
}

/// Whether an error ends the sessions of every link to the server that
/// sent it: the server may no longer hold the data their scope names. One
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
struct Learned {
    run_id: String,
    scope: String,
    replica: bool,
    /// The count of changes of this server process the process had seen
    /// before asking (see [`Learned::ended`]).
    seen: Option<(Arc<AtomicU64>, u64)>,
}

impl Learned {
    /// The count a new session records: the one read before asking, when
    /// the process already knew this server process (a change noticed
    /// while asking then makes the new session ask again); else the one
    /// now, since nothing could have counted a change of it before.
    fn ended(&self, server: &Arc<AtomicU64>) -> u64 {
        match &self.seen {
            Some((counter, before)) if Arc::ptr_eq(counter, server) => *before,
            _ => server.load(Ordering::Acquire),
        }
    }
}

/// The count of changes of the server process with run id `run_id`, shared
/// by every session of this process with it, however it was reached.
fn counter_of(run_id: &str) -> Arc<AtomicU64> {
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
/// round trip: the scope of the versions it holds, and whether it is a
/// replica. `None` when it does not say its run id.
async fn learn(conn: &mut MultiplexedConnection) -> redis::RedisResult<Option<Learned>> {
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
    Ok(scope(&server, &replication).map(|scope| Learned {
        seen: None,
        run_id,
        scope,
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

/// The scope of the versions on a server: 8 hex digits of a hash of its
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
/// after converge on the server's current scope. A server that does not
/// report a replication id is scoped by its run id alone.
fn scope(server: &str, replication: &str) -> Option<String> {
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
    use super::scope;

    const SERVER: &str = "# Server\r\nredis_version:7.0.15\r\nrun_id:0123456789abcdef0123456789abcdef01234567\r\ntcp_port:6379\r\n";
    const REPLICATION: &str = "# Replication\r\nrole:master\r\nconnected_slaves:0\r\nmaster_replid:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\nmaster_replid2:0000000000000000000000000000000000000000\r\n";

    #[test]
    fn the_scope_follows_the_run_id_and_the_replication_id() {
        let s = scope(SERVER, REPLICATION).unwrap();
        assert_eq!(s.len(), 16);
        assert!(s.bytes().all(|b| b.is_ascii_hexdigit()));
        let restarted = SERVER.replace("run_id:0", "run_id:1");
        let restarted = scope(&restarted, REPLICATION).unwrap();
        assert_ne!(restarted[..8], s[..8], "a restart changes the run's part");
        let resynced = REPLICATION.replace("master_replid:a", "master_replid:b");
        let resynced = scope(SERVER, &resynced).unwrap();
        assert_eq!(resynced[..8], s[..8], "the same process");
        assert_ne!(resynced[8..], s[8..], "another copy of the data");
        // `master_replid2` is not `master_replid`.
        let second = REPLICATION.replace("replid2:0", "replid2:1");
        assert_eq!(scope(SERVER, &second).unwrap(), s);
        // Without a replication id, the run id alone.
        assert!(scope(SERVER, "").is_some());
        assert_ne!(scope(SERVER, "").unwrap(), s);
        assert_eq!(scope("redis_version:7\r\n", REPLICATION), None);
        assert_eq!(scope("run_id:xyz\r\n", REPLICATION), None);
    }
}
