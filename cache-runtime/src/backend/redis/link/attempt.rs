//! Making a link's connection: one attempt at a time, in a task of its
//! own on cachette's runtime, that connects, turns tracking on where the
//! near-cache wants it, and learns the origin of the server it reached
//! before the session is handed out.

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;

use super::session::{learn, Learned};
use super::{gone, Link, Session, State, MAX_BACKOFF};
use crate::backend::redis::near::tracking::Tracking;
use crate::error::{Error, ErrorKind};

/// One connection attempt, in its task.
pub(super) struct Attempt {
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
                "the connection attempt could not run",
            )));
        }
    }
}

/// Whether the server refused a command (rather than the connection
/// failing): what a server without RESP3 or tracking, or an ACL without
/// them, answers.
fn refused(e: &redis::RedisError) -> bool {
    !(gone(e) || e.is_io_error() || e.is_timeout() || e.is_connection_refusal())
}

impl Link {
    /// Marks `attempt` as running and spawns it, on cachette's own runtime
    /// (`crate::background`): the connection's driver runs where the
    /// attempt ran, and a caller's runtime may be dropped, or never driven
    /// again, while other runtimes use the connection.
    pub(super) fn start_attempt(
        self: &Arc<Self>,
        state: &mut State,
        backoff: Duration,
        attempt: u64,
    ) -> Result<(), Error> {
        let runtime = crate::background::handle()?;
        *state = State::Connecting {
            backoff,
            attempt,
            since: Instant::now(),
        };
        // Made before the task: if the task is dropped before it ends, the
        // attempt is marked as over.
        let guard = Attempt {
            link: self.clone(),
            attempt,
            over: false,
        };
        use tracing::instrument::WithSubscriber as _;
        runtime.spawn(
            async move {
                let mut guard = guard;
                let made = guard.link.connect().await;
                guard.end(made);
            }
            .with_current_subscriber(),
        );
        Ok(())
    }

    pub(super) fn unreachable(&self) -> Error {
        Error::new(
            ErrorKind::Connection,
            format!("{} is unreachable; reconnecting", self.target),
        )
    }

    /// Connects and learns who answers; with tracking, in RESP3 with
    /// `CLIENT TRACKING` on, unless the server refuses it.
    pub(super) async fn connect(&self) -> Result<Session, Error> {
        if let Some(tracking) = self.tracking.as_ref().filter(|t| t.is_on()) {
            match tracking.connect(&self.config).await {
                Ok((mut conn, id)) => {
                    let learned = self.learn(&mut conn).await?;
                    let tracked = match Tracking::start(&mut conn).await {
                        Ok(()) => true,
                        Err(e) if refused(&e) => {
                            tracking.off(&self.target, &e);
                            false
                        }
                        Err(e) => {
                            return Err(crate::backend::redis::connect::connect_error(
                                Error::from(e),
                                &self.target,
                            ))
                        }
                    };
                    let mut session = self.session_of(conn, learned);
                    session.conn_id = id;
                    session.tracked = tracked;
                    return Ok(session);
                }
                Err(e) if refused(&e) && Error::from(e.clone()).kind() != ErrorKind::Auth => {
                    // No RESP3 here: connect as without the near-cache.
                    tracking.off(&self.target, &e);
                }
                Err(e) => {
                    return Err(crate::backend::redis::connect::connect_error(
                        Error::from(e),
                        &self.target,
                    ))
                }
            }
        }
        let mut conn = self
            .client
            .get_multiplexed_async_connection_with_config(&self.config)
            .await
            .map_err(|e| {
                crate::backend::redis::connect::connect_error(Error::from(e), &self.target)
            })?;
        let learned = self.learn(&mut conn).await?;
        let mut session = self.session_of(conn, learned);
        session.conn_id = crate::backend::redis::near::tracking::next_conn();
        Ok(session)
    }

    /// Asks a new connection who answers (see `session::learn`).
    pub(super) async fn learn(&self, conn: &mut MultiplexedConnection) -> Result<Learned, Error> {
        let learned = learn(conn)
            .await
            .map_err(|e| self.info_error(e))?
            .ok_or_else(|| self.no_run_id())?;
        if learned.replica {
            tracing::warn!(target = %self.target, "cachette: connected to a replica, which refuses fills and invalidations; point cachette at the master");
        }
        Ok(learned)
    }

    pub(super) fn info_error(&self, e: redis::RedisError) -> Error {
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
            crate::backend::redis::connect::connect_error(e, &self.target)
        }
    }

    pub(super) fn no_run_id(&self) -> Error {
        Error::new(
            ErrorKind::Backend,
            format!("{} did not say its run id (`INFO server`)", self.target),
        )
    }

    /// Connects now, for `connect`, which fails when the server cannot be
    /// reached.
    pub(crate) async fn connect_now(self: &Arc<Self>) -> Result<(), Error> {
        // On cachette's runtime, for the same reason as `start_attempt`.
        let link = self.clone();
        let session = crate::background::run(async move { link.connect().await }).await??;
        *self.state() = State::Up(Arc::new(session));
        self.changes.send_modify(|n| *n += 1);
        Ok(())
    }
}
