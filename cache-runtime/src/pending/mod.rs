//! I9: invalidations that could not be delivered are kept and retried with
//! backoff; until they are delivered, no cache of this process in the same
//! namespace serves entries they may affect.
//!
//! - **One set per server and namespace.** Each server and namespace has
//!   one pending set in the process, shared by every cache built for them,
//!   so one handle's failed bust keeps the others from serving what it
//!   names. The server is known by its address, database and user as the
//!   URL gives them (so `redis://h:1` and `redis://h:1/0` are one server;
//!   two host names for one address are not).
//! - **Bounded.** Past `max_pending_invalidations` names, a set forgets them and
//!   remembers one thing instead: *everything* in the namespace is pending.
//!   Delivering that is one namespace-wide step (a new epoch, which every
//!   entry records), whatever the number of names it replaces; until then
//!   nothing is served from the cache.
//! - **Chunked.** Names are delivered a bounded chunk at a time, each
//!   chunk cleared as soon as it is delivered, so no command holds Redis
//!   for long and progress is never lost to a timeout.
//! - **Generations.** Each pending name records the generation of the last
//!   failed bust that named it: a delivery only clears names no bust has
//!   failed on since the delivery's snapshot was taken; a later bust of a
//!   name that succeeds clears the earlier failures of that name.
//! - **One task, leased.** One task at a time delivers a set. It holds a
//!   lease that it renews before every wait; a lease that lapses (its
//!   task's runtime was dropped, or is no longer driven) lets the next
//!   caller start another task.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};

use crate::shim::{self as checked, AtomicBool, Weakening};
use std::time::{Duration, Instant};

use crate::names::{Bust, Name, Subject};

mod deliver;
pub(crate) use deliver::{spawn_delivery, Courier};

/// Most names delivered by one command.
pub(crate) const CHUNK: usize = 500;

/// Each pending name with the generation of the last failed bust that
/// named it.
#[derive(Default)]
struct State {
    keys: HashMap<Name<'static>, u64>,
    tags: HashMap<Name<'static>, u64>,
    /// Everything in the namespace is pending, since the failure of this
    /// generation (the names were too many to keep).
    everything: Option<u64>,
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
        self.keys.is_empty() && self.tags.is_empty() && self.everything.is_none()
    }

    fn names(&self) -> usize {
        self.keys.len() + self.tags.len()
    }
}

pub(crate) struct Pending {
    state: checked::Mutex<State>,
    /// This set holds anything: the read's fast path.
    any: AtomicBool,
    /// Past this many names, the set keeps "everything" instead.
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

/// What to deliver next.
#[derive(Debug)]
pub(crate) enum Work {
    /// These keys and tags (at most [`CHUNK`]).
    Names(Bust),
    /// A new epoch for the namespace: every entry in it is invalidated.
    Everything,
}

/// How a delivery went for the state.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum After {
    /// Work is left: go on.
    More,
    /// Nothing is left; the lease is given back.
    Done,
}

/// Pending sets by (server, namespace).
type Registry = HashMap<(String, String), Weak<Pending>>;

static REGISTRY: Mutex<Option<Registry>> = Mutex::new(None);

impl Pending {
    /// A set of its own (the embedded backend, which nothing else shares).
    pub(crate) fn new(limit: usize) -> Arc<Self> {
        Arc::new(Pending {
            state: checked::Mutex::new(State::default()),
            any: AtomicBool::new(false),
            limit: limit.max(1),
        })
    }

    /// The pending set of `namespace` on `server` (its canonical address),
    /// shared by every cache of this process built for them.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn shared(server: &str, namespace: &str, limit: usize) -> Arc<Pending> {
        let mut registry = crate::sync::lock(&REGISTRY);
        let registry = registry.get_or_insert_with(Registry::new);
        registry.retain(|_, p| p.strong_count() > 0);
        let id = (server.to_string(), namespace.to_string());
        if let Some(p) = registry.get(&id).and_then(Weak::upgrade) {
            return p;
        }
        let p = Self::new(limit);
        registry.insert(id, Arc::downgrade(&p));
        p
    }

    /// Whether anything is pending (cheap).
    pub(crate) fn any(&self) -> bool {
        self.any.load(Ordering::Acquire)
    }

    fn state(&self) -> checked::MutexGuard<'_, State> {
        checked::lock(&self.state)
    }

    /// Notes that the set holds something, or nothing. Called with the
    /// state lock held, so that the flag and the set agree.
    fn mark(&self, _held: &checked::MutexGuard<'_, State>, busy: bool) {
        self.any.store(busy, Ordering::Release);
    }

    /// Keeps a bust that failed.
    pub(crate) fn add(&self, bust: &Bust) {
        let mut state = self.state();
        state.generation += 1;
        let generation = state.generation;
        if state.everything.is_some() {
            state.everything = Some(generation);
        } else if state.names() + bust.len() > self.limit {
            // Too many to keep one by one: one namespace-wide step instead.
            state.keys = HashMap::new();
            state.tags = HashMap::new();
            state.everything = Some(generation);
            tracing::error!(
                limit = self.limit,
                "cachette: more undelivered invalidations than max_pending_invalidations; the whole namespace will be invalidated once Redis answers, and nothing is served from the cache until then"
            );
        } else {
            for k in &bust.keys {
                state.keys.insert(k.clone(), generation);
            }
            for t in &bust.tags {
                state.tags.insert(t.clone(), generation);
            }
        }
        self.mark(&state, true);
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
        state.everything.is_some()
            || keys.contains_key(subject.key())
            || subject.tags().iter().any(|t| tags.contains_key(t))
    }

    /// The right to start the delivery task, when something is pending and
    /// no task holds a live lease.
    pub(crate) fn claim(self: &Arc<Self>) -> Option<Claim> {
        if !self.any.load(Ordering::Acquire) {
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

    /// The generation now: a bust sent after this point covers every
    /// failure recorded so far.
    pub(crate) fn generation(&self) -> u64 {
        self.state().generation
    }

    /// What to deliver next, and the generation it was taken at.
    pub(crate) fn snapshot(&self) -> (Work, u64) {
        let state = self.state();
        let work = if state.everything.is_some() {
            Work::Everything
        } else {
            let keys: Vec<Name<'static>> = state.keys.keys().take(CHUNK).cloned().collect();
            let room = CHUNK - keys.len();
            let tags = state.tags.keys().take(room).cloned().collect();
            Work::Names(Bust { keys, tags })
        };
        (work, state.generation)
    }

    /// Forgets the names of `bust` that no bust has failed on since
    /// `generation`.
    fn clear(state: &mut State, bust: &Bust, generation: u64) {
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
    }

    /// Forgets what `work`, taken at `generation`, delivered: a name that a
    /// later bust failed on stays, since that bust's write may have come
    /// after the delivered one. When nothing is left, `claim`'s lease is
    /// given back in the same step, so that a bust failing right after
    /// starts a new task.
    pub(crate) fn delivered(
        &self,
        work: &Work,
        generation: u64,
        claim: Claim,
    ) -> (After, Option<Claim>) {
        let mut state = self.state();
        match work {
            Work::Names(bust) => Self::clear(&mut state, bust, generation),
            Work::Everything => {
                if state.everything.is_some_and(|g| g <= generation) {
                    state.everything = None;
                }
            }
        }
        if !state.is_empty() {
            return (After::More, Some(claim));
        }
        if state.lease.as_ref().is_some_and(|l| l.id == claim.id) {
            state.lease = None;
        }
        // Under the lock: an `add` right after must not be overwritten.
        if checked::weakened(Weakening::MarkAfterUnlock) {
            drop(state);
            self.any.store(false, Ordering::Release);
            claim.forget();
            return (After::Done, None);
        }
        self.mark(&state, false);
        drop(state);
        after_unlock();
        claim.forget();
        (After::Done, None)
    }

    /// A bust of these names, sent after `generation`, was delivered: it
    /// covers the earlier failures of the same names.
    pub(crate) fn covered(&self, bust: &Bust, generation: u64) {
        if !self.any.load(Ordering::Acquire) {
            return;
        }
        let mut state = self.state();
        Self::clear(&mut state, bust, generation);
        if state.is_empty() && state.lease.is_none() {
            // Under the lock, as in `delivered`.
            self.mark(&state, false);
        }
        drop(state);
        after_unlock();
    }

    /// Whether the set holds anything, whatever the flag says.
    #[cfg(all(test, feature = "__loom"))]
    pub(crate) fn holds_anything(&self) -> bool {
        !self.state().is_empty()
    }

    /// Pending names (a set that holds "everything" counts its limit).
    pub(crate) fn len(&self) -> usize {
        if !self.any.load(Ordering::Acquire) {
            return 0;
        }
        let state = self.state();
        if state.everything.is_some() {
            self.limit.max(1)
        } else {
            state.names()
        }
    }
}

// Where tests stand in for a thread preempted right after it let go of
// the state lock.
#[cfg(test)]
thread_local! {
    static AFTER_UNLOCK: std::cell::RefCell<Option<Box<dyn FnMut()>>> = const { std::cell::RefCell::new(None) };
}

#[cfg(test)]
fn pause_after_unlock(hook: Option<Box<dyn FnMut()>>) {
    AFTER_UNLOCK.with(|h| *h.borrow_mut() = hook);
}

fn after_unlock() {
    #[cfg(test)]
    AFTER_UNLOCK.with(|h| {
        if let Some(hook) = h.borrow_mut().as_mut() {
            hook()
        }
    });
}

#[cfg(test)]
mod tests;
