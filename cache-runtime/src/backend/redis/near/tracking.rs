//! A link whose connections feed the near-cache: RESP3 with `CLIENT
//! TRACKING` on, invalidation messages applied in the connection's read
//! loop, and the ordering `PING` that proves them applied, one for every
//! caller waiting when it is sent.
//!
//! A server that refuses RESP3 (`HELLO 3`), `CLIENT TRACKING` or `PING`
//! turns the near-cache off for the link, with one warning; everything else
//! works as without it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use crate::shim::{self as checked, Weakening};

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, PushInfo, PushKind, Value};

use super::lease::{self, Confirmation, Refreshing};
use super::Near;
use crate::error::{Error, ErrorKind};

pub(crate) struct Tracking {
    pub near: Arc<Near>,
    /// How long an ordering round trip may take.
    timeout: std::time::Duration,
    /// The same server, spoken to in RESP3.
    client: Client,
    /// Off for good once the server refused what tracking needs.
    on: AtomicBool,
    /// The ordering round trip that callers may still join, on its
    /// connection.
    open: Open,
}

/// Connection ids, unique in the process: what a kept lookup names to be
/// served only after a `PING` on the connection it was read on.
static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

/// A new connection id.
pub(crate) fn next_conn() -> u64 {
    NEXT_CONN.fetch_add(1, Ordering::Relaxed)
}

/// The batch that callers of a connection may still join.
type Open = Arc<checked::Mutex<Option<(u64, Arc<Batch>)>>>;

/// One ordering round trip and the callers waiting for it.
struct Batch {
    /// `None`: it was never sent (its task was dropped with its runtime).
    answer: std::sync::OnceLock<Option<Result<(), Error>>>,
    answered: tokio::sync::Notify,
    /// On a cluster, one name per slot its callers read, each of which
    /// the round trip reads (added under the `open` lock, read once it is
    /// closed).
    probes: checked::Mutex<Vec<(u16, Box<str>)>>,
    /// Told once its opener has let the callers already running on its
    /// runtime join (a permit, so never missed).
    gathered: tokio::sync::Notify,
    /// Where its answer is recorded for lease reads: its opener's
    /// connection's confirmation.
    confirmation: Arc<Confirmation>,
    /// The refresh slot of its connection, when a lease hit opened it:
    /// given back with the answer.
    refresh: checked::Mutex<Option<Refreshing>>,
    /// On a cluster, its round trip also reads the namespace's lease (its
    /// connection is to the master that holds it, and a caller knew none).
    reads_lease: AtomicBool,
}

/// How long the sending task waits for the opener to let others join, if
/// the opener is never polled again (its runtime idle): the least a tokio
/// timer waits.
const GATHER_BOUND: std::time::Duration = std::time::Duration::from_millis(1);

/// Tells the sending task that its batch has gathered, when its opener has
/// yielded once, or is dropped first.
struct Gathered<'a>(&'a Batch);

impl Drop for Gathered<'_> {
    fn drop(&mut self) {
        self.0.gathered.notify_one();
    }
}

impl Batch {
    fn new(confirmation: Arc<Confirmation>) -> Batch {
        Batch {
            answer: std::sync::OnceLock::new(),
            answered: tokio::sync::Notify::new(),
            probes: checked::Mutex::new(Vec::new()),
            gathered: tokio::sync::Notify::new(),
            confirmation,
            refresh: checked::Mutex::new(None),
            reads_lease: AtomicBool::new(false),
        }
    }

    /// Gives the batch its answer (the first one counts) and wakes its
    /// callers.
    fn answer(&self, answer: Option<Result<(), Error>>) {
        let _ = self.answer.set(answer);
        self.answered.notify_waiters();
        drop(checked::lock(&self.refresh).take());
    }

    /// Waits for the answer.
    async fn wait(&self) -> Option<Result<(), Error>> {
        loop {
            let answered = self.answered.notified();
            tokio::pin!(answered);
            answered.as_mut().enable();
            if let Some(answer) = self.answer.get() {
                return answer.clone();
            }
            answered.await;
        }
    }
}

/// Closes a batch to newcomers; if it goes before an answer (its task
/// dropped), its callers are told to start another.
struct Sending {
    open: Open,
    batch: Arc<Batch>,
}

impl Sending {
    /// Closes the batch and takes the names its round trip must read: no
    /// caller can join it, or add a name, after this.
    fn closed(&self) -> Vec<(u16, Box<str>)> {
        if checked::weakened(Weakening::ProbesTakenBeforeClose) {
            let probes = std::mem::take(&mut *checked::lock(&self.batch.probes));
            self.close();
            return probes;
        }
        self.close();
        std::mem::take(&mut *checked::lock(&self.batch.probes))
    }

    fn close(&self) {
        let mut open = checked::lock(&self.open);
        if open
            .as_ref()
            .is_some_and(|(_, b)| Arc::ptr_eq(b, &self.batch))
        {
            *open = None;
        }
    }
}

impl Drop for Sending {
    fn drop(&mut self) {
        self.close();
        if checked::weakened(Weakening::UnsentBatchUnanswered) {
            return;
        }
        if self.batch.answer.get().is_none() {
            self.batch.answer(None);
        }
    }
}

impl Tracking {
    /// Tracking for a link to the server `client` reaches, feeding `near`.
    pub(crate) fn new(
        client: &Client,
        near: Arc<Near>,
        timeout: std::time::Duration,
    ) -> Result<Tracking, Error> {
        let info = client.get_connection_info().clone();
        let settings = info
            .redis_settings()
            .clone()
            .set_protocol(redis::ProtocolVersion::RESP3);
        let info = info.set_redis_settings(settings);
        let client = Client::open(info).map_err(Error::from)?;
        Ok(Tracking {
            near,
            timeout,
            client,
            on: AtomicBool::new(true),
            open: Open::default(),
        })
    }

    pub(crate) fn is_on(&self) -> bool {
        self.on.load(Ordering::Acquire)
    }

    /// Turns the near-cache off for this link, saying why once.
    pub(crate) fn off(&self, target: &dyn std::fmt::Display, why: &dyn std::fmt::Display) {
        if self.on.swap(false, Ordering::AcqRel) {
            self.near.flush();
            tracing::warn!(target = %target, reason = %why, "cachette: the near-cache is off for this server (it needs RESP3, `CLIENT TRACKING` and `PING`, and `EXISTS` on a cluster); every call reads Redis");
        }
    }

    /// Connects in RESP3 with the invalidation messages of the new
    /// connection applied to the near-cache; returns its id.
    pub(crate) async fn connect(
        &self,
        config: &AsyncConnectionConfig,
    ) -> redis::RedisResult<(MultiplexedConnection, u64)> {
        let id = next_conn();
        let near = self.near.clone();
        let config = config.clone().set_push_sender(move |info: PushInfo| {
            apply(&near, info);
            Ok::<(), std::convert::Infallible>(())
        });
        let conn = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        Ok((conn, id))
    }

    /// Turns tracking on for a new connection: `CLIENT TRACKING ON`, and a
    /// `PING` to know the ordering round trip is allowed.
    pub(crate) async fn start(conn: &mut MultiplexedConnection) -> redis::RedisResult<()> {
        redis::pipe()
            .cmd("CLIENT")
            .arg("TRACKING")
            .arg("ON")
            .ignore()
            .cmd("PING")
            .ignore()
            .query_async::<()>(conn)
            .await
    }

    /// Waits for a round trip on connection `id` sent after this call
    /// began, and for its reply: every invalidation made before it is
    /// applied. Callers that arrive before it is sent join it.
    ///
    /// It is a `PING`, or, with `probes` (on a cluster: one name for each
    /// slot the caller read on this node), an `EXISTS` of one name per slot
    /// that any of its callers read: a node that no longer serves one of
    /// those slots (a master demoted to replica, a node cut off, a slot
    /// handed to another master) refuses it, as it would a lookup, where it
    /// would answer a `PING`.
    ///
    /// The round trip is sent by a task of its own, on cachette's runtime
    /// (`crate::background`), which drives the connection too: a caller
    /// that stops waiting (cancelled, or never polled again) holds up
    /// nobody. No caller waits more than twice the command timeout, and a
    /// round trip that was never sent is an error, never a retry: nothing
    /// here goes round without waiting.
    ///
    /// With `read_lease` (on a cluster, on the master that holds the
    /// namespace's lease), the round trip reads the lease too.
    pub(crate) async fn order(
        &self,
        conn: &MultiplexedConnection,
        id: u64,
        confirmation: &Arc<Confirmation>,
        probes: &[(u16, &str)],
        read_lease: bool,
    ) -> Result<(), Error> {
        let (batch, opened) = self.join_or_open(id, confirmation, probes);
        if read_lease {
            batch.reads_lease.store(true, Ordering::Release);
        }
        if opened {
            self.send(conn.clone(), &batch);
            let _gathered = Gathered(&batch);
            tokio::task::yield_now().await;
        }
        match tokio::time::timeout(self.timeout * 2, batch.wait()).await {
            Ok(Some(answer)) => answer,
            Ok(None) => Err(Error::new(
                ErrorKind::Connection,
                "the ordering round trip could not be sent",
            )),
            Err(_) => {
                Sending {
                    open: self.open.clone(),
                    batch,
                }
                .close();
                Err(Error::new(
                    ErrorKind::Timeout,
                    "the ordering round trip was not answered within twice the command timeout",
                ))
            }
        }
    }

    /// Starts one ordering round trip on connection `id` that nobody
    /// waits for, to renew its confirmation (`near/lease.rs`), unless a
    /// refresh is in flight there already. It joins a batch open on the
    /// connection, if any.
    pub(crate) fn refresh(
        &self,
        conn: &MultiplexedConnection,
        id: u64,
        confirmation: &Arc<Confirmation>,
        probes: &[(u16, &str)],
    ) {
        let Some(slot) = confirmation.start_refresh() else {
            return;
        };
        self.near.counters.refreshes.fetch_add(1, Ordering::Relaxed);
        let (batch, opened) = self.join_or_open(id, confirmation, probes);
        *checked::lock(&batch.refresh) = Some(slot);
        if batch.answer.get().is_some() {
            // Answered meanwhile: the slot is free again.
            drop(checked::lock(&batch.refresh).take());
        }
        if opened {
            self.send(conn.clone(), &batch);
            // Nobody else of this caller's runtime is let in.
            batch.gathered.notify_one();
        }
    }

    /// Joins the batch open on connection `id`, or opens one (`true`),
    /// adding `probes` to the names its round trip reads.
    fn join_or_open(
        &self,
        id: u64,
        confirmation: &Arc<Confirmation>,
        probes: &[(u16, &str)],
    ) -> (Arc<Batch>, bool) {
        let mut open = checked::lock(&self.open);
        let (batch, opened) = match &*open {
            Some((on, batch)) if *on == id => (batch.clone(), false),
            _ => {
                let batch = Arc::new(Batch::new(confirmation.clone()));
                *open = Some((id, batch.clone()));
                (batch, true)
            }
        };
        if !probes.is_empty() {
            let mut all = checked::lock(&batch.probes);
            for (slot, name) in probes {
                if !all.iter().any(|(s, _)| s == slot) {
                    all.push((*slot, Box::from(*name)));
                }
            }
        }
        (batch, opened)
    }

    /// Spawns the task that closes `batch` and sends its round trip.
    fn send(&self, mut conn: MultiplexedConnection, batch: &Arc<Batch>) {
        // Made before the task: dropped with a task that never ran, it
        // answers the batch (`None`).
        let sending = Sending {
            open: self.open.clone(),
            batch: batch.clone(),
        };
        let (near, timeout) = (self.near.clone(), self.timeout);
        let _ = crate::background::spawn(async move {
            // Lets the callers that are already running on the opener's
            // runtime join: until the opener has yielded once (or was
            // dropped), for at most `GATHER_BOUND` (it may never run again).
            let _ = tokio::time::timeout(GATHER_BOUND, sending.batch.gathered.notified()).await;
            // Closed: whoever comes now waits for the next one, and the
            // names to read are known.
            let probes = sending.closed();
            near.counters.orderings.fetch_add(1, Ordering::Relaxed);
            // For lease reads: the instant before the round trip is
            // queued, and the lease known then.
            let leased = near.lease.as_ref().map(|l| {
                let now = l.clock.now();
                (l.clone(), now, l.now_us(now))
            });
            let sent = async {
                if let (Some((lease, queued, _)), true) = (&leased, probes.is_empty()) {
                    // The namespace's lease, read as the round trip.
                    // Refused (an ACL without `getrange`, a value of another
                    // type planted there) is still a reply behind the
                    // messages: ordered, with no lease known.
                    let mut pipe = redis::pipe();
                    lease::read_cmds(&mut pipe, &lease.name);
                    let read: Vec<Value> = pipe.ignore_errors().query_async(&mut conn).await?;
                    if let Some(then) = lease.after_read(&read, *queued) {
                        // Missing (evicted, flushed, expired, never set):
                        // created again, and learned from the next round
                        // trip; or its lifetime put back.
                        if let Err(e) = then.query_async::<()>(&mut conn).await {
                            crate::loud::warn_once("lease refused", "", || {
                                format!("cachette: the server refused to record the near-cache's lease ({}); hits keep their round trip", Error::from(e))
                            });
                        }
                    }
                    Ok(())
                } else if probes.is_empty() {
                    redis::cmd("PING").query_async::<()>(&mut conn).await
                } else {
                    // Read after the batch closed: no caller sets it later.
                    let lease = leased
                        .as_ref()
                        .map(|(l, queued, _)| (l, *queued))
                        .filter(|_| sending.batch.reads_lease.load(Ordering::Acquire));
                    let mut pipe = redis::pipe();
                    for (_, name) in &probes {
                        pipe.cmd("EXISTS").arg(&**name);
                    }
                    if let Some((lease, _)) = lease {
                        lease::read_cmds(&mut pipe, &lease.name);
                    }
                    let replies: Vec<Value> = pipe.ignore_errors().query_async(&mut conn).await?;
                    // A probe refused (a redirection, a node that no
                    // longer serves its slot) fails the round trip; the
                    // lease's read only teaches what it can.
                    if let Some(Value::ServerError(e)) = replies
                        .iter()
                        .take(probes.len())
                        .find(|r| matches!(r, Value::ServerError(_)))
                    {
                        return Err(redis::RedisError::from(e.clone()));
                    }
                    if let Some(then) =
                        lease.and_then(|(l, queued)| l.after_read(&replies[probes.len()..], queued))
                    {
                        if let Err(e) = then.query_async::<()>(&mut conn).await {
                            crate::loud::warn_once("lease refused", "", || {
                                format!("cachette: the server refused to record the near-cache's lease ({}); hits keep their round trip", Error::from(e))
                            });
                        }
                    }
                    Ok(())
                }
            };
            let answer = match tokio::time::timeout(timeout, sent).await {
                Ok(Ok(())) => {
                    if let Some((_, sent_at, lease_us)) = leased {
                        if probes.is_empty() {
                            sending.batch.confirmation.record(sent_at, lease_us);
                        } else {
                            let slots: Vec<u16> = probes.iter().map(|(slot, _)| *slot).collect();
                            sending
                                .batch
                                .confirmation
                                .record_slots(sent_at, lease_us, &slots);
                        }
                    }
                    Ok(())
                }
                Ok(Err(e)) => Err(Error::from(e)),
                Err(_) => Err(Error::new(
                    ErrorKind::Timeout,
                    "Redis did not answer the ordering round trip within the command timeout",
                )),
            };
            sending.batch.answer(Some(answer));
        });
    }
}

/// Drops what the process knew of the namespace's lease: it is read again
/// before a hit is served under one.
fn forget_lease(near: &Near) {
    if let Some(lease) = &near.lease {
        lease.forget();
    }
}

/// Applies one message of a tracked connection.
fn apply(near: &Near, info: PushInfo) {
    match info.kind {
        PushKind::Invalidate => match info.data.first() {
            Some(Value::Array(names)) => {
                let names: Vec<&[u8]> = names
                    .iter()
                    .filter_map(|n| match n {
                        Value::BulkString(b) => Some(b.as_slice()),
                        _ => None,
                    })
                    .collect();
                if let Some(lease) = &near.lease {
                    if names.iter().any(|n| *n == lease.name.as_bytes()) {
                        lease.forget();
                    }
                }
                near.invalidate(Some(&names));
            }
            // `FLUSHALL`, `FLUSHDB`, or anything not understood: the
            // namespace's lease may be gone too, with no message of its own.
            _ => {
                forget_lease(near);
                near.flush()
            }
        },
        PushKind::Disconnection => {
            forget_lease(near);
            near.flush()
        }
        _ => {}
    }
}

/// The batcher under loom (`crate::loom`): a caller that joins a batch
/// while its sender closes it has its names read by the round trip.
#[cfg(all(test, feature = "__loom"))]
pub(crate) fn a_joined_caller_has_its_names_read() {
    let client = Client::open("redis://127.0.0.1:1").unwrap();
    let near = Arc::new(Near::new(1 << 20, true, None));
    let tracking =
        Arc::new(Tracking::new(&client, near, std::time::Duration::from_secs(1)).unwrap());
    let (batch, opened) = tracking.join_or_open(7, &confirmation(), &[(1, "a")]);
    assert!(opened);
    let caller = {
        let tracking = tracking.clone();
        loom::thread::spawn(move || tracking.join_or_open(7, &confirmation(), &[(2, "b")]))
    };
    // The sending task.
    let sending = Sending {
        open: tracking.open.clone(),
        batch: batch.clone(),
    };
    let read = sending.closed();
    let (joined, _) = caller.join().unwrap();
    if Arc::ptr_eq(&joined, &batch) {
        assert!(
            read.iter().any(|(slot, _)| *slot == 2),
            "a caller joined, and its name is not read"
        );
    }
}

/// The batcher under loom (`crate::loom`, I13): the task that would send a
/// batch is dropped unpolled (the runtime it was spawned on is gone) while
/// a caller joins. The caller either opened a batch of its own, which it
/// sends, or has an answer to wait for: nobody waits on a batch that no
/// one will send.
#[cfg(all(test, feature = "__loom"))]
pub(crate) fn a_caller_of_an_unsent_batch_is_answered() {
    let client = Client::open("redis://127.0.0.1:1").unwrap();
    let near = Arc::new(Near::new(1 << 20, true, None));
    let tracking =
        Arc::new(Tracking::new(&client, near, std::time::Duration::from_secs(1)).unwrap());
    let (batch, opened) = tracking.join_or_open(7, &confirmation(), &[]);
    assert!(opened);
    let caller = {
        let tracking = tracking.clone();
        loom::thread::spawn(move || tracking.join_or_open(7, &confirmation(), &[]))
    };
    // The sending task, dropped before its first poll.
    drop(Sending {
        open: tracking.open.clone(),
        batch,
    });
    let (joined, opened) = caller.join().unwrap();
    assert!(
        opened || joined.answer.get().is_some(),
        "a caller waits for a batch nobody sends"
    );
}

#[cfg(all(test, feature = "__loom"))]
fn confirmation() -> Arc<Confirmation> {
    Arc::new(Confirmation::new(std::time::Instant::now()))
}
