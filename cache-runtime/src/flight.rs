//! In-process coalescing: concurrent misses of one key run the body once.
//!
//! The first caller to miss leads a flight; the others wait for it to end
//! and then read the cache again. Re-reading, rather than being handed the
//! leader's value, keeps I1: a caller that arrived after an invalidation
//! sees the new versions and does not accept an entry filled before it.
//! A flight ends when its guard drops, whether the leader finished, was
//! cancelled or panicked, so followers never hang on a lost leader.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

type Map = Mutex<HashMap<String, (u64, watch::Receiver<()>)>>;

#[derive(Default)]
pub(crate) struct Flights {
    map: Arc<Map>,
    next_id: AtomicU64,
}

pub(crate) enum Role {
    Leader(FlightGuard),
    Follower(Follower),
}

/// Held by the leader; dropping it ends the flight.
pub(crate) struct FlightGuard {
    map: Arc<Map>,
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
    /// Joins the running flight for `key`, or starts one.
    pub(crate) fn join(&self, key: &str) -> Role {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, rx)) = map.get(key) {
            if rx.has_changed().is_ok() {
                return Role::Follower(Follower(rx.clone()));
            }
        }
        let id = self.next_id.fetch_add(1, Relaxed);
        let (tx, rx) = watch::channel(());
        map.insert(key.to_string(), (id, rx));
        Role::Leader(FlightGuard {
            map: self.map.clone(),
            key: key.to_string(),
            id,
            _done: tx,
        })
    }
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.get(&self.key).is_some_and(|(id, _)| *id == self.id) {
            map.remove(&self.key);
        }
    }
}
