//! In-process coalescing: concurrent misses of one key run the body once.
//!
//! The first caller to miss leads a flight; the others wait for it to end
//! and then read the cache again. Re-reading, rather than being handed the
//! leader's value, keeps I1: a caller that arrived after an invalidation
//! sees the new versions and does not accept an entry filled before it.
//!
//! A result that is not stored ("not found": `None`, `Ok(None)`) leaves no
//! entry to read again. Its leader hands the versions it read before its
//! body to the followers that joined **before its body started**: the body
//! read its source inside each of their calls, so its "not found" is an
//! answer each may return (a row created before a follower's call began
//! was created before that read, or its bust changed a version), once the
//! follower reads the same versions again (no bust came in between).
//! Followers that joined later may have begun after a create that busts
//! none of their names: they take nothing, and join the next flight
//! together ([`Ended::Absent`] without tokens), whose leader lets them join
//! before it starts.
//! A flight ends when its guard drops, whether the leader finished, was
//! cancelled or panicked, so followers never hang on a lost leader.

use std::collections::HashMap;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::Arc;

use crate::shim::{self as checked, AtomicU64, Mutex, Weakening};
use crate::version::Token;

/// What a flight's leader hands its followers: the versions it read before
/// its body, when its result was one that is not stored.
pub(crate) type Handed = Option<Arc<[Token]>>;

/// How a followed flight ended, for its follower.
pub(crate) enum Ended {
    /// Read the cache again: the leader stored its result, or failed.
    Plain,
    /// "Not found", not stored: the versions its leader read, for a follower
    /// that joined before the body started; `None` for one that joined later.
    Absent(Handed),
}

use tokio::sync::watch;

/// Epoch buckets: a key's bucket counts the flights ended for keys that
/// hash there.
const BUCKETS: usize = 64;

/// A running flight, in the map: its id, its end, and whether its body
/// started.
type Flight = (u64, watch::Receiver<Handed>, bool);

struct Shared {
    map: Mutex<HashMap<String, Flight>>,
    epochs: [AtomicU64; BUCKETS],
}

impl Default for Shared {
    fn default() -> Self {
        Shared {
            map: Mutex::new(HashMap::new()),
            epochs: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl Shared {
    fn bucket(&self, key: &str) -> &AtomicU64 {
        // FNV-1a: cheap, and good enough to spread keys over the buckets.
        let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        &self.epochs[(hash as usize) % BUCKETS]
    }
}

#[derive(Default)]
pub(crate) struct Flights {
    shared: Arc<Shared>,
    next_id: AtomicU64,
}

pub(crate) enum Role {
    Leader(FlightGuard),
    Follower(Follower),
}

/// Held by the leader; dropping it ends the flight.
pub(crate) struct FlightGuard {
    shared: Arc<Shared>,
    key: String,
    id: u64,
    done: watch::Sender<Handed>,
}

impl FlightGuard {
    /// Whether callers wait for this flight.
    pub(crate) fn followed(&self) -> bool {
        self.done.receiver_count() > 1
    }

    /// The leader's body starts: callers that join from now on come too
    /// late to be handed its "not found".
    pub(crate) fn start(&self) {
        let mut map = checked::lock(&self.shared.map);
        if let Some(flight) = map.get_mut(&self.key).filter(|f| f.0 == self.id) {
            flight.2 = true;
        }
    }

    /// The flight's result is not stored; it was computed after reading
    /// `tokens`.
    pub(crate) fn absent(&self, tokens: Arc<[Token]>) {
        self.done.send_replace(Some(tokens));
    }
}

pub(crate) struct Follower {
    end: watch::Receiver<Handed>,
    /// Joined before the leader's body started.
    early: bool,
}

impl Follower {
    /// Waits until the flight ends.
    ///
    /// # Cancel safety
    /// Dropping this future only stops waiting.
    pub(crate) async fn wait(mut self) -> Ended {
        // `changed` fails once the sender drops: the flight's end.
        while self.end.changed().await.is_ok() {}
        match self.end.borrow().clone() {
            Some(tokens) if self.early => Ended::Absent(Some(tokens)),
            Some(_) => Ended::Absent(None),
            None => Ended::Plain,
        }
    }
}

/// Pending once: lets the tasks woken with this one run first.
pub(crate) struct YieldOnce(bool);

impl YieldOnce {
    pub(crate) fn new() -> Self {
        YieldOnce(false)
    }
}

impl std::future::Future for YieldOnce {
    type Output = ();
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if self.0 {
            return std::task::Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    }
}

impl Flights {
    /// A number that changes whenever a flight of `key` ends. A caller that
    /// read the cache, then finds it must lead, compares it with the value
    /// taken before its read: if it changed, a flight filled meanwhile and
    /// the read is worth repeating before running the body.
    pub(crate) fn epoch(&self, key: &str) -> u64 {
        self.shared.bucket(key).load(Acquire)
    }

    /// Follows the running flight for `key`, if there is one; starts none.
    pub(crate) fn running(&self, key: &str) -> Option<Follower> {
        let map = checked::lock(&self.shared.map);
        let (_, rx, started) = map.get(key)?;
        rx.has_changed().is_ok().then(|| Follower {
            end: rx.clone(),
            early: !started,
        })
    }

    /// Joins the running flight for `key`, or starts one.
    pub(crate) fn join(&self, key: &str) -> Role {
        let mut map = checked::lock(&self.shared.map);
        if let Some((_, rx, started)) = map.get(key) {
            if rx.has_changed().is_ok() {
                return Role::Follower(Follower {
                    end: rx.clone(),
                    early: !started,
                });
            }
        }
        let id = self.next_id.fetch_add(1, Relaxed);
        let (tx, rx) = watch::channel(None);
        map.insert(key.to_string(), (id, rx, false));
        Role::Leader(FlightGuard {
            shared: self.shared.clone(),
            key: key.to_string(),
            id,
            done: tx,
        })
    }
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        let mut map = checked::lock(&self.shared.map);
        if map.get(&self.key).is_some_and(|(id, _, _)| *id == self.id) {
            map.remove(&self.key);
        }
        if checked::weakened(Weakening::EpochAfterUnlock) {
            drop(map);
            self.shared.bucket(&self.key).fetch_add(1, Release);
            return;
        }
        // Under the lock: a caller that joins after the flight left the map
        // sees the new epoch.
        self.shared.bucket(&self.key).fetch_add(1, Release);
    }
}
