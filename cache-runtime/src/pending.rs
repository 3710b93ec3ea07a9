//! I9: invalidations that could not be delivered are kept and retried with
//! backoff; until they are delivered, this process does not serve entries
//! they may affect, and past a bound it does not serve from the cache at all.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::backend::{Bust, Names};

#[derive(Default)]
struct State {
    versions: HashSet<String>,
    entries: HashSet<String>,
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
        state.versions.extend(bust.versions.iter().cloned());
        state.entries.extend(bust.entries.iter().cloned());
        self.any.store(true, Ordering::Release);
        !std::mem::replace(&mut state.retrying, true)
    }

    /// Whether a read of `names` must bypass the cache.
    pub(crate) fn blocks(&self, names: &Names) -> bool {
        if !self.any.load(Ordering::Acquire) {
            return false;
        }
        let state = self.state();
        state.versions.len() > self.limit || names.versions().any(|v| state.versions.contains(v))
    }

    /// What to deliver now.
    pub(crate) fn snapshot(&self) -> Bust {
        let state = self.state();
        Bust {
            versions: state.versions.iter().cloned().collect(),
            entries: state.entries.iter().cloned().collect(),
        }
    }

    /// Forgets what `bust` delivered. Returns true when nothing is left, in
    /// which case the retry task ends.
    pub(crate) fn delivered(&self, bust: &Bust) -> bool {
        let mut state = self.state();
        for v in &bust.versions {
            state.versions.remove(v);
        }
        for e in &bust.entries {
            state.entries.remove(e);
        }
        let empty = state.versions.is_empty() && state.entries.is_empty();
        if empty {
            state.retrying = false;
            self.any.store(false, Ordering::Release);
        }
        empty
    }

    /// The retry task gives up (no runtime); a later bust restarts it.
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
