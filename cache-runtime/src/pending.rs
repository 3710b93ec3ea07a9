//! I9: invalidations that could not be delivered are kept and retried with
//! backoff; until they are delivered, this process does not serve entries
//! they may affect, and past a bound it does not serve from the cache at all.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::backend::{Bust, Names};

/// Each pending name with the generation of the last failed bust that
/// named it: a delivery only clears the names no bust has failed on since
/// the delivery's snapshot was taken.
#[derive(Default)]
struct State {
    versions: HashMap<String, u64>,
    entries: HashMap<String, u64>,
    generation: u64,
    /// A retry task is running.
    retrying: bool,
}

pub(crate) struct Pending {
    state: Mutex<State>,
    /// Fast path of the read: false while nothing is pending.
    any: AtomicBool,
    /// Past this many pending names, nothing is served from the cache.
    limit: usize,
}

impl Pending {
    pub(crate) fn new(limit: usize) -> Self {
        Pending {
            state: Mutex::new(State::default()),
            any: AtomicBool::new(false),
            limit,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps a bust that failed. Returns true if the caller must start the
    /// retry task.
    pub(crate) fn add(&self, bust: &Bust) -> bool {
        let mut state = self.state();
        state.generation += 1;
        let generation = state.generation;
        for v in &bust.versions {
            state.versions.insert(v.clone(), generation);
        }
        for e in &bust.entries {
            state.entries.insert(e.clone(), generation);
        }
        self.any.store(true, Ordering::Release);
        !std::mem::replace(&mut state.retrying, true)
    }

    /// Whether a read of `names` must bypass the cache.
    pub(crate) fn blocks(&self, names: &Names) -> bool {
        if !self.any.load(Ordering::Acquire) {
            return false;
        }
        let state = self.state();
        state.versions.len() > self.limit
            || names.versions().any(|v| state.versions.contains_key(v))
    }

    /// What to deliver now, and the generation it was taken at.
    pub(crate) fn snapshot(&self) -> (Bust, u64) {
        let state = self.state();
        let bust = Bust {
            versions: state.versions.keys().cloned().collect(),
            entries: state.entries.keys().cloned().collect(),
        };
        (bust, state.generation)
    }

    /// Forgets what `bust`, taken at `generation`, delivered: a name that a
    /// later bust failed on stays, since that bust's write may have come
    /// after the delivered one. Returns true when nothing is left, in which
    /// case the retry task ends.
    pub(crate) fn delivered(&self, bust: &Bust, generation: u64) -> bool {
        let mut state = self.state();
        for v in &bust.versions {
            if state.versions.get(v).is_some_and(|g| *g <= generation) {
                state.versions.remove(v);
            }
        }
        for e in &bust.entries {
            if state.entries.get(e).is_some_and(|g| *g <= generation) {
                state.entries.remove(e);
            }
        }
        let empty = state.versions.is_empty() && state.entries.is_empty();
        if empty {
            state.retrying = false;
            self.any.store(false, Ordering::Release);
        }
        empty
    }

    /// Whether names are pending with no retry task running; if so, the
    /// caller must start one (this marks it as running).
    pub(crate) fn orphaned(&self) -> bool {
        if !self.any.load(Ordering::Acquire) {
            return false;
        }
        let mut state = self.state();
        let pending = !state.versions.is_empty() || !state.entries.is_empty();
        pending && !std::mem::replace(&mut state.retrying, true)
    }

    /// The retry task is gone (no runtime, or its runtime shut down); the
    /// next bust restarts it.
    pub(crate) fn stop_retrying(&self) {
        self.state().retrying = false;
    }

    pub(crate) fn len(&self) -> usize {
        if !self.any.load(Ordering::Acquire) {
            return 0;
        }
        self.state().versions.len()
    }
}

/// Backoff between delivery attempts: 10 ms doubling to 2 s.
pub(crate) fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(10u64.saturating_mul(1 << attempt.min(8))).min(Duration::from_secs(2))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bust(names: &[&str]) -> Bust {
        Bust {
            versions: names.iter().map(|n| n.to_string()).collect(),
            entries: Vec::new(),
        }
    }

    #[test]
    fn a_delivery_does_not_clear_a_bust_that_failed_after_its_snapshot() {
        let pending = Pending::new(100);
        assert!(pending.add(&bust(&["a", "b"])), "starts the retry task");
        let (snapshot, generation) = pending.snapshot();
        // While the snapshot is on its way, a newer bust of `a` fails.
        assert!(!pending.add(&bust(&["a"])), "the task already runs");
        assert!(!pending.delivered(&snapshot, generation));
        assert_eq!(pending.len(), 1, "`a` is still pending");
        let (snapshot, generation) = pending.snapshot();
        assert_eq!(snapshot.versions, ["a"]);
        assert!(pending.delivered(&snapshot, generation), "now empty");
        assert_eq!(pending.len(), 0);
    }
}
