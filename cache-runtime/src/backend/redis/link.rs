//! A link to one Redis server: one multiplexed connection at a time, made
//! again after it breaks, each one bound to the run id of the server
//! process it reached.
//!
//! Why not a reconnecting connection that hides its reconnects: a server
//! restarted from an older snapshot (RDB, or an AOF that lost its last
//! second) brings entries back together with the versions they were valid
//! under, undoing invalidations that had returned `Ok` (I10). Version names
//! therefore carry the run id of the server that holds them. A command is
//! built for one [`Session`] and sent on that session's connection only,
//! which never reconnects: it cannot reach a restarted server with the
//! names of the old one. A new connection learns the new run id (`INFO
//! server`) before anything else is sent on it, and under the new run id
//! every version is new, so everything from before the restart is a miss.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client};

use crate::error::{Error, ErrorKind};

/// One connection, and who answers on it.
pub(crate) struct Session {
    pub conn: MultiplexedConnection,
    /// The first 16 hex digits of the server's run id: the scope of every
    /// version name read or written on this connection.
    pub run: Arc<str>,
    generation: u64,
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
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current session, connecting first if there is none. Fails at
    /// once while a failed attempt's backoff runs.
    ///
    /// # Cancel safety
    /// The connection attempt runs in a task of its own: a caller that
    /// stops waiting does not stop it.
    pub(crate) async fn session(self: &Arc<Self>) -> Result<Arc<Session>, Error> {
        loop {
            let mut changed = {
                let mut state = self.state();
                match &*state {
                    State::Up(session) => return Ok(session.clone()),
                    State::Connecting { backoff, since, .. } => {
                        if since.elapsed() > self.attempt_bound {
                            // That attempt's task is gone: start another.
                            let backoff = *backoff;
                            let attempt = self
                                .next_generation
                                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            self.start_attempt(&mut state, backoff, attempt)?;
                        }
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
                        let attempt = self
                            .next_generation
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        self.start_attempt(&mut state, backoff, attempt)?;
                    }
                }
                self.changes.subscribe()
            };
            // The state changes when the attempt ends.
            if changed.changed().await.is_err() {
                return Err(self.unreachable());
            }
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
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query_async(&mut conn)
            .await
            .map_err(|e| {
                let e = Error::from(e);
                if e.kind() == ErrorKind::Auth {
                    Error::new(
                        ErrorKind::Auth,
                        format!(
                            "{} refused `INFO server`, which cachette needs to notice restarts \
                             (grant `+info`)",
                            self.target
                        ),
                    )
                    .with_source(e)
                } else {
                    super::connect::connect_error(e, &self.target)
                }
            })?;
        let run = run_id(&info).ok_or_else(|| {
            Error::new(
                ErrorKind::Backend,
                format!("{} did not say its run id (`INFO server`)", self.target),
            )
        })?;
        Ok(Session {
            conn,
            run: run.into(),
            generation: self
                .next_generation
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        })
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

    /// Runs `op` on the current session; a failure that means the
    /// connection is gone marks it broken.
    pub(crate) async fn run<T, F, Fut>(self: &Arc<Self>, op: F) -> Result<T, Error>
    where
        F: FnOnce(Arc<Session>) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let session = self.session().await?;
        match op(session.clone()).await {
            Ok(v) => Ok(v),
            Err(e) => {
                if gone(&e) {
                    self.broken(&session);
                }
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

/// The first 16 hex digits of `run_id:` in `INFO server`.
fn run_id(info: &str) -> Option<String> {
    let id = info.lines().find_map(|l| l.strip_prefix("run_id:"))?.trim();
    (id.len() >= 16 && id.bytes().all(|b| b.is_ascii_hexdigit())).then(|| id[..16].to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_run_id_is_read_from_info() {
        let info = "# Server\r\nredis_version:7.0.15\r\nrun_id:0123456789abcdef0123456789abcdef01234567\r\ntcp_port:6379\r\n";
        assert_eq!(super::run_id(info).as_deref(), Some("0123456789abcdef"));
        assert_eq!(super::run_id("redis_version:7\r\n"), None);
        assert_eq!(super::run_id("run_id:xyz\r\n"), None);
    }
}
