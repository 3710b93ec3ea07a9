//! I9: invalidations that could not be delivered are kept and retried with
//! backoff; until they are delivered, no cache of this process on the same
//! server and namespace serves entries they may affect, and past a bound
//! none serves from the cache at all.
//!
//! One task at a time delivers them. It holds a lease that it renews before
//! every wait; a lease that lapses (its task's runtime was dropped, or is no
//! longer driven) lets the next caller start another task, so pending names
//! never sit without a task delivering them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use crate::names::{Bust, Name, Subject};

/// Each pending name with the generation of the last failed bust that
/// named it: a delivery only clears the names no bust has failed on since
/// the delivery's snapshot was taken.
#[derive(Default)]
struct State {
    keys: HashMap<Name<'static>, u64>,
    tags: HashMap<Name<'static>, u64>,
    generation: u64,
    /// The task delivering them, if one runs.
    lease: Option<Lease>,
    next_lease: u64,
}

struct Lease {
    id: u64,
    /// Past this, the task is presumed gone.
    until: Instant,
}

impl State {
    fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.tags.is_empty()
    }
}

pub(crate) struct Pending {
    state: Mutex<State>,
    /// Fast path of the read: false while nothing is pending.
    any: AtomicBool,
    /// Past this many pending names, nothing is served from the cache.
    limit: usize,
}

/// The right to run the delivery task. Dropping it without
/// [`forget`](Claim::forget) gives the right back, so a task dropped before
/// it ever ran (its runtime shut down, or never polled it) does not leave
/// pending names without a task.
pub(crate) struct Claim {
    pending: Arc<Pending>,
    id: u64,
    released: bool,
}

impl Claim {
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// The task ended and the state already knows it.
    fn forget(mut self) {
        self.released = true;
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if !self.released {
            let mut state = self.pending.state();
            if state.lease.as_ref().is_some_and(|l| l.id == self.id) {
                state.lease = None;
            }
        }
    }
}

/// How a delivery went for the state.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum After {
    /// Names are left: go on.
    More,
    /// Nothing is left; the lease is given back.
    Done,
}

/// Pending sets by (server, namespace).
type Registry = HashMap<(String, String), Weak<Pending>>;

static REGISTRY: Mutex<Option<Registry>> = Mutex::new(None);

impl Pending {
    pub(crate) fn new(limit: usize) -> Self {
        Pending {
            state: Mutex::new(State::default()),
            any: AtomicBool::new(false),
            limit,
        }
    }

    /// The pending set of `namespace` on `target`, shared by every cache of
    /// this process built for them.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn shared(target: &str, namespace: &str, limit: usize) -> Arc<Pending> {
        let mut registry = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
        let map = registry.get_or_insert_with(HashMap::new);
        map.retain(|_, p| p.strong_count() > 0);
        let id = (target.to_string(), namespace.to_string());
        if let Some(p) = map.get(&id).and_then(Weak::upgrade) {
            return p;
        }
        let p = Arc::new(Pending::new(limit));
        map.insert(id, Arc::downgrade(&p));
        p
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps a bust that failed.
    pub(crate) fn add(&self, bust: &Bust) {
        let mut state = self.state();
        state.generation += 1;
        let generation = state.generation;
        for k in &bust.keys {
            state.keys.insert(k.clone(), generation);
        }
        for t in &bust.tags {
            state.tags.insert(t.clone(), generation);
        }
        self.any.store(true, Ordering::Release);
    }

    /// Whether a read of `subject` must bypass the cache.
    pub(crate) fn blocks(&self, subject: &Subject<'_>) -> bool {
        if !self.any.load(Ordering::Acquire) {
            return false;
        }
        let state = self.state();
        // Maps are covariant: the stored names can be looked up by names
        // of a shorter lifetime.
        let (keys, tags): (&HashMap<Name<'_>, u64>, &HashMap<Name<'_>, u64>) =
            (&state.keys, &state.tags);
        keys.len() + tags.len() > self.limit
            || keys.contains_key(subject.key())
            || subject.tags().iter().any(|t| tags.contains_key(t))
    }

    /// Whether any name is pending (cheap).
    pub(crate) fn any(&self) -> bool {
        self.any.load(Ordering::Acquire)
    }

    /// The right to start the delivery task, when names are pending and no
    /// task holds a live lease.
    pub(crate) fn claim(self: &Arc<Self>) -> Option<Claim> {
        if !self.any() {
            return None;
        }
        let mut state = self.state();
        let now = Instant::now();
        if state.is_empty() || state.lease.as_ref().is_some_and(|l| l.until > now) {
            return None;
        }
        state.next_lease += 1;
        let id = state.next_lease;
        state.lease = Some(Lease {
            id,
            until: now + Self::FIRST_LEASE,
        });
        Some(Claim {
            pending: self.clone(),
            id,
            released: false,
        })
    }

    /// How long a task that was just started may take to run at all.
    const FIRST_LEASE: Duration = Duration::from_secs(5);

    /// Renews `claim`'s lease for `period`; false if another task took
    /// over (this one's lease had lapsed), which must then stop.
    pub(crate) fn renew(&self, claim: &Claim, period: Duration) -> bool {
        let mut state = self.state();
        match &mut state.lease {
            Some(lease) if lease.id == claim.id => {
                lease.until = Instant::now() + period;
                true
            }
            _ => false,
        }
    }

    /// What to deliver now, and the generation it was taken at.
    pub(crate) fn snapshot(&self) -> (Bust, u64) {
        let state = self.state();
        let bust = Bust {
            keys: state.keys.keys().cloned().collect(),
            tags: state.tags.keys().cloned().collect(),
        };
        (bust, state.generation)
    }

    /// Forgets what `bust`, taken at `generation`, delivered: a name that a
    /// later bust failed on stays, since that bust's write may have come
    /// after the delivered one. When nothing is left, `claim`'s lease is
    /// given back in the same step, so that a bust failing right after
    /// starts a new task.
    pub(crate) fn delivered(
        &self,
        bust: &Bust,
        generation: u64,
        claim: Claim,
    ) -> (After, Option<Claim>) {
        let mut state = self.state();
        for k in &bust.keys {
            if state.keys.get(k).is_some_and(|g| *g <= generation) {
                state.keys.remove(k);
            }
        }
        for t in &bust.tags {
            if state.tags.get(t).is_some_and(|g| *g <= generation) {
                state.tags.remove(t);
            }
        }
        if !state.is_empty() {
            return (After::More, Some(claim));
        }
        self.any.store(false, Ordering::Release);
        if state.lease.as_ref().is_some_and(|l| l.id == claim.id) {
            state.lease = None;
        }
        drop(state);
        claim.forget();
        (After::Done, None)
    }

    pub(crate) fn len(&self) -> usize {
        if !self.any.load(Ordering::Acquire) {
            return 0;
        }
        let state = self.state();
        state.keys.len() + state.tags.len()
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
        Bust::of(names, std::iter::empty::<&str>())
    }

    #[test]
    fn a_delivery_does_not_clear_a_bust_that_failed_after_its_snapshot() {
        let pending = Arc::new(Pending::new(100));
        pending.add(&bust(&["a", "b"]));
        let claim = pending.claim().expect("starts the retry task");
        let (snapshot, generation) = pending.snapshot();
        // While the snapshot is on its way, a newer bust of `a` fails.
        pending.add(&bust(&["a"]));
        assert!(pending.claim().is_none(), "the task already runs");
        let (after, claim) = pending.delivered(&snapshot, generation, claim);
        assert_eq!(after, After::More);
        assert_eq!(pending.len(), 1, "`a` is still pending");
        let (snapshot, generation) = pending.snapshot();
        assert_eq!(snapshot.keys.len(), 1);
        let (after, claim) = pending.delivered(&snapshot, generation, claim.unwrap());
        assert_eq!((after, claim.is_none()), (After::Done, true));
        assert_eq!(pending.len(), 0);
    }

    #[test]
    fn a_claim_dropped_before_its_task_ran_lets_the_next_caller_start_one() {
        let pending = Arc::new(Pending::new(100));
        pending.add(&bust(&["a"]));
        let claim = pending.claim().unwrap();
        assert!(pending.claim().is_none());
        drop(claim); // the task was dropped unpolled
        assert!(pending.claim().is_some(), "no task would deliver `a`");
    }

    #[test]
    fn a_lapsed_lease_is_taken_over_and_its_task_told_to_stop() {
        let pending = Arc::new(Pending::new(100));
        pending.add(&bust(&["a"]));
        let first = pending.claim().unwrap();
        assert!(pending.renew(&first, Duration::ZERO));
        std::thread::sleep(Duration::from_millis(2));
        let second = pending.claim().expect("the first task stopped renewing");
        assert!(!pending.renew(&first, Duration::from_secs(1)), "superseded");
        assert!(pending.renew(&second, Duration::from_secs(1)));
        drop(first); // does not release the second's lease
        assert!(pending.claim().is_none());
    }

    #[test]
    fn a_delivery_that_empties_the_set_gives_the_lease_back() {
        let pending = Arc::new(Pending::new(100));
        pending.add(&bust(&["a"]));
        let claim = pending.claim().unwrap();
        let (snapshot, generation) = pending.snapshot();
        let _ = pending.delivered(&snapshot, generation, claim);
        pending.add(&bust(&["b"]));
        assert!(pending.claim().is_some(), "a new failure starts a new task");
    }
}
