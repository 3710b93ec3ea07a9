//! In-process coalescing: concurrent misses of one key run the body once.
//!
//! The first caller to miss leads a flight; the others wait for it to end
//! and then read the cache again. Re-reading, rather than being handed the
//! leader's value, keeps I1: a caller that arrived after an invalidation
//! sees the new versions and does not accept an entry filled before it.
//! A flight ends when its guard drops, whether the leader finished, was
//! cancelled or panicked, so followers never hang on a lost leader.

use std::collections::HashMap;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::Arc;

use crate::sync::checked::{self, AtomicU64, Mutex};

use tokio::sync::watch;

/// Epoch buckets: a key's bucket counts the flights ended for keys that
/// hash there.
const BUCKETS: usize = 64;

struct Shared {
    map: Mutex<HashMap<String, (u64, watch::Receiver<()>)>>,
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
    _done: watch::Sender<()>,
}

pub(crate) struct Follower(watch::Receiver<()>);

impl Follower {
    /// Waits until the flight ends.
    ///
    /// # Cancel safety
    /// Dropping this future only stops waiting.
    pub(crate) async fn wait(mut self) {
        // The sender is never used to send: `changed` returns when it drops.
        while self.0.changed().await.is_ok() {}
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

    /// Joins the running flight for `key`, or starts one.
    pub(crate) fn join(&self, key: &str) -> Role {
        let mut map = checked::lock(&self.shared.map);
        if let Some((_, rx)) = map.get(key) {
            if rx.has_changed().is_ok() {
                return Role::Follower(Follower(rx.clone()));
            }
        }
        let id = self.next_id.fetch_add(1, Relaxed);
        let (tx, rx) = watch::channel(());
        map.insert(key.to_string(), (id, rx));
        Role::Leader(FlightGuard {
            shared: self.shared.clone(),
            key: key.to_string(),
            id,
            _done: tx,
        })
    }
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        let mut map = checked::lock(&self.shared.map);
        if map.get(&self.key).is_some_and(|(id, _)| *id == self.id) {
            map.remove(&self.key);
        }
        #[cfg(feature = "__loom")]
        if crate::loom::weakened(crate::loom::Weakening::EpochAfterUnlock) {
            drop(map);
            self.shared.bucket(&self.key).fetch_add(1, Release);
            return;
        }
        // Under the lock: a caller that joins after the flight left the map
        // sees the new epoch.
        self.shared.bucket(&self.key).fetch_add(1, Release);
    }
}
