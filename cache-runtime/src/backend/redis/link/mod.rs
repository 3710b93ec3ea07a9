//! A link to one Redis server: one multiplexed connection at a time, made
//! again after it breaks, each one bound to the origin of the data it
//! reached (the server's run id and replication id).
//!
//! Why not a reconnecting connection that hides its reconnects: a server
//! restarted from an older snapshot (RDB, or an AOF that lost its last
//! second) brings entries back together with the versions they were valid
//! under, undoing invalidations that had returned `Ok` (I10). So does a
//! master that was demoted, took an older copy from another server (a full
//! resync) and was promoted back. Stored versions therefore carry the
//! origin of the server that holds them. A command is built for one
//! [`Session`] and sent on that session's connection only, which never
//! reconnects: it cannot reach a restarted server with the origin of the
//! old one. A new connection learns the origin (`INFO server`, `INFO
//! replication`) before anything else is sent on it, and under a new origin
//! every version is new, so everything from before is a miss.
//!
//! A server that stops taking writes (`READONLY`: it was made a replica)
//! ends its session too, so that the next one learns the new origin.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client};

use crate::error::{Error, ErrorKind};

mod attempt;
mod session;
pub(crate) use self::session::origin;

use self::session::{counter_of, learn, Learned, CHECKED, CHECKS_EVERY, TIMEOUTS_TO_END};
pub(crate) use self::session::{ending, ends_session, gone, Session};
use super::connect::Target;
use super::near::lease::Confirmation;
use super::near::tracking::Tracking;
use super::near::Near;

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
    target: Target,
    state: Mutex<State>,
    /// Bumped whenever `state` leaves `Connecting`.
    changes: tokio::sync::watch::Sender<u64>,
    next_generation: std::sync::atomic::AtomicU64,
    /// How long an attempt may take before another may start (its task's
    /// runtime may be gone, or no longer driven).
    attempt_bound: Duration,
    /// The command timeout: an operation dropped after that long timed out.
    command_timeout: Duration,
    /// How long a session may go without a reply, through repeated
    /// timeouts, before it ends (see `session::Heard`).
    silent_for: Duration,
    /// Held while the session is asked again who answers: one question at
    /// a time, the others take its answer.
    rechecking: tokio::sync::Mutex<()>,
    /// When the link last asked again because of a version's replication
    /// id.
    drift_checked: Mutex<Option<Instant>>,
    /// The near-cache this link's connections feed, if any.
    tracking: Option<Tracking>,
}

/// How long a session may go without a reply before its timeouts end it:
/// twice the command timeout, and at least a second.
fn silent_for(command_timeout: Duration) -> Duration {
    (command_timeout * 2).max(Duration::from_secs(1))
}

/// Counts an operation dropped after the command timeout as a timeout (the
/// backend's deadline, which drops it, cannot say which session it was on).
struct Watch<'a> {
    link: &'a Link,
    session: &'a Session,
    started: Instant,
    over: bool,
}

impl Drop for Watch<'_> {
    fn drop(&mut self) {
        if !self.over && self.started.elapsed() >= self.link.command_timeout {
            self.link.timed_out(self.session);
        }
    }
}

/// Waits between failed connection attempts: 50 ms doubling to 2 s. While
/// waiting, operations fail at once (and read through).
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

impl Link {
    /// A link that connects on first use; with `tracking`, its connections
    /// feed the near-cache.
    pub(crate) fn new(
        client: Client,
        config: AsyncConnectionConfig,
        (connect_timeout, command_timeout): (Duration, Duration),
        target: Target,
        tracking: Option<Tracking>,
    ) -> Arc<Link> {
        Arc::new(Link {
            tracking,
            command_timeout,
            silent_for: silent_for(command_timeout),
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
        if learned.origin.as_bytes()[..8] != session.run.as_bytes()[..8] {
            // Cannot happen on one connection; never judge across processes.
            self.broken(session);
            return Err(self.unreachable());
        }
        let mut checked = session.checked.clone();
        if let Some(replid) = drifted {
            if learned.origin.as_bytes()[8..16] != replid {
                if checked.len() == CHECKED {
                    checked.remove(0);
                }
                checked.push(replid);
            }
        }
        if (learned.origin != *session.run || learned.replica != session.replica)
            && session.server.load(Ordering::Acquire) == before_count
        {
            // The server changed since this session asked, and no other
            // session said so yet: every session with it asks again.
            session.changed();
        }
        if learned.origin != *session.run {
            // What the near-cache kept was judged in the old origin.
            if let Some(near) = self.near() {
                near.flush();
            }
        }
        let mut fresh = self.session_of(conn, learned);
        fresh.checked = checked;
        fresh.conn_id = session.conn_id;
        fresh.tracked = session.tracked;
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
            run: learned.origin.into(),
            generation: self.next_generation.fetch_add(1, Ordering::Relaxed),
            checked: Vec::new(),
            replica: learned.replica,
            recheck_due: std::sync::atomic::AtomicBool::new(false),
            conn_id: 0,
            tracked: false,
            heard: session::Heard::new(),
            confirmation: Arc::new(Confirmation::new(
                self.tracking
                    .as_ref()
                    .and_then(|t| t.near.lease.as_ref())
                    .map_or_else(Instant::now, |l| l.clock.now()),
            )),
        }
    }

    /// The current session, if one is up and needs no question first.
    pub(crate) fn current(&self) -> Option<Arc<Session>> {
        match &*self.state() {
            State::Up(session)
                if session.ended == session.server.load(Ordering::Acquire)
                    && !session.recheck_due.load(Ordering::Acquire) =>
            {
                Some(session.clone())
            }
            _ => None,
        }
    }

    /// The near-cache this link feeds, while tracking is on.
    pub(crate) fn near(&self) -> Option<&Arc<Near>> {
        self.tracking
            .as_ref()
            .filter(|t| t.is_on())
            .map(|t| &t.near)
    }

    /// Waits for an ordering round trip on `session`'s connection sent
    /// after this call began (see `tracking.rs`; `probes`: names, one per
    /// slot, it must still serve; `read_lease`: it reads the namespace's
    /// lease too, on a cluster).
    pub(crate) async fn order(
        &self,
        session: &Session,
        probes: &[(u16, &str)],
        read_lease: bool,
    ) -> Result<(), Error> {
        match &self.tracking {
            Some(tracking) => {
                let ordered = tracking
                    .order(
                        &session.conn,
                        session.conn_id,
                        &session.confirmation,
                        probes,
                        read_lease,
                    )
                    .await;
                match &ordered {
                    Ok(()) => session.heard.reply(),
                    // An ACL without the command it sends.
                    Err(e) if e.is_auth() => tracking.off(&self.target, e),
                    Err(e) if e.kind() == ErrorKind::Timeout => self.timed_out(session),
                    Err(_) => {}
                }
                ordered
            }
            None => Ok(()),
        }
    }

    /// Starts one refresh round trip on `session`'s connection for lease
    /// reads, unless one is in flight; nobody waits for it (`probes`: on
    /// a cluster, the slots it confirms).
    pub(crate) fn refresh(&self, session: &Session, probes: &[(u16, &str)]) {
        if let Some(tracking) = &self.tracking {
            tracking.refresh(
                &session.conn,
                session.conn_id,
                &session.confirmation,
                probes,
            );
        }
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
    ///
    /// An operation that times out, or that is dropped after the command
    /// timeout (the backend's deadline ended it), counts towards ending
    /// the session (see `session::Heard`).
    pub(crate) async fn run<T, F, Fut>(self: &Arc<Self>, op: F) -> Result<T, Error>
    where
        F: FnOnce(Arc<Session>) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let session = self.session().await?;
        match self.watched(&session, op(session.clone())).await {
            Ok(v) => Ok(v),
            Err(e) => {
                self.failed(&session, &e);
                Err(Error::from(e))
            }
        }
    }

    /// Runs `op`, a command on `session`, counting its reply or its timeout
    /// (an operation dropped after the command timeout counts as one)
    /// towards ending the session (see `session::Heard`).
    pub(crate) async fn watched<T>(
        &self,
        session: &Session,
        op: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> redis::RedisResult<T> {
        let mut watch = Watch {
            link: self,
            session,
            started: Instant::now(),
            over: false,
        };
        let result = op.await;
        watch.over = true;
        match &result {
            Ok(_) => session.heard.reply(),
            Err(e) if e.is_timeout() => self.timed_out(session),
            // The server answered, with an error.
            Err(e) if !gone(e) && !e.is_io_error() => session.heard.reply(),
            Err(_) => {}
        }
        result
    }

    /// A command on `session` timed out: after enough of them with nothing
    /// heard for `silent_for`, the session ends and the next caller
    /// connects again.
    fn timed_out(&self, session: &Session) {
        if session.heard.timed_out(self.silent_for) {
            tracing::warn!(
                target = %self.target,
                timeouts = TIMEOUTS_TO_END,
                silent_ms = self.silent_for.as_millis() as u64,
                "cachette: the connection only times out; connecting again"
            );
            self.broken(session);
        }
    }
}
