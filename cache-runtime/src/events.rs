//! Events: what [`CacheBuilder::on_event`](crate::CacheBuilder::on_event)
//! is told. A listener runs on the task that raised the event, holding
//! none of the cache's locks, after the step it reports; one that panics
//! is caught, warned about once, and the call goes on.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EventKind {
    /// A call was served a valid entry (from Redis, the embedded backend
    /// or the near-cache).
    Hit,
    /// A call found no valid entry and ran its body (raised as the call
    /// ends, after its `Fill`).
    Miss,
    /// A call was served a value past its TTL, still valid by versions:
    /// `swr`'s stale window, `stale_if_error` after a failed body, or
    /// `soft_timeout` while the body goes on.
    StaleServed,
    /// A body's value was stored.
    Fill,
    /// A call ran its body over whatever was cached, to replace it: in a
    /// [`scope::refresh`](crate::scope::refresh), through a `_refresh`
    /// companion, or for the tower layer's `no-cache` (raised as the call
    /// ends, after its `Fill` if the value was stored).
    Refreshed,
    /// A call ran its body around the cache (the backend failed or its
    /// breaker is open, an undelivered bust names the entry, or a
    /// [`scope::bypass`](crate::scope::bypass)).
    Bypass,
    /// A call waited for another caller's body in this process, which
    /// found nothing, and returned that.
    Coalesced,
    /// A call reached its `hard_timeout`.
    TimedOut,
    /// Keys and tags were invalidated (`names` of them).
    Bust,
    /// An invalidation failed to reach the backend (each attempt).
    BustFailed,
    /// A failed invalidation was kept, to be retried until delivered;
    /// meanwhile what it names is read through.
    BustKept,
    /// Kept invalidations were delivered (`names` of them, or the whole
    /// namespace when too many were kept).
    BustDelivered,
    /// The circuit breaker opened: calls read through without the backend.
    BreakerOpened,
    /// The circuit breaker closed: the backend answers again.
    BreakerClosed,
    /// The near-cache was emptied (a flush, a lost connection).
    NearFlushed,
}

/// One event, as a listener is given it.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Event<'a> {
    /// What happened.
    pub kind: EventKind,
    /// The cached function of a call, or the function that invalidated
    /// (its path, as logs show it); empty where there is none (the
    /// breaker, the near-cache, a delivery of kept invalidations).
    pub function: &'a str,
    /// The key template of the call's function, as the attribute wrote
    /// it; empty where there is none. Never the rendered key.
    pub template: &'a str,
    /// How many keys and tags a bust event names; zero otherwise.
    pub names: usize,
}

impl<'a> Event<'a> {
    pub(crate) fn new(kind: EventKind, function: &'a str) -> Event<'a> {
        Event {
            kind,
            function,
            template: "",
            names: 0,
        }
    }

    pub(crate) fn template(self, template: &'a str) -> Event<'a> {
        Event { template, ..self }
    }

    pub(crate) fn names(self, names: usize) -> Event<'a> {
        Event { names, ..self }
    }
}

/// A listener of events.
pub(crate) type OnEvent = dyn Fn(&Event<'_>) + Send + Sync;

/// The listeners of a cache, if it has any.
#[derive(Clone, Default)]
pub(crate) struct Listener(Option<Arc<Listening>>);

struct Listening {
    /// Every listener, in the order they were added.
    on_event: Vec<Arc<OnEvent>>,
    /// A panic of a listener was warned about.
    warned: AtomicBool,
}

impl Listener {
    /// These listeners and `on_event` after them.
    pub(crate) fn and(&self, on_event: Arc<OnEvent>) -> Listener {
        let mut all = self
            .0
            .as_ref()
            .map_or_else(Vec::new, |l| l.on_event.clone());
        all.push(on_event);
        Listener(Some(Arc::new(Listening {
            on_event: all,
            warned: AtomicBool::new(false),
        })))
    }

    /// Tells every listener, if there is one, of the event `make` makes
    /// (made only then). A listener that panics is caught; the ones after
    /// it are still told.
    pub(crate) fn emit<'a>(&self, make: impl FnOnce() -> Event<'a>) {
        let Some(listening) = &self.0 else { return };
        let event = make();
        for on_event in &listening.on_event {
            if catch_unwind(AssertUnwindSafe(|| on_event(&event))).is_err()
                && !listening.warned.swap(true, Ordering::Relaxed)
            {
                crate::loud::warn(&format!(
                    "cachette: an on_event listener panicked on a {:?} event; the call went on \
                     (warned once per cache)",
                    event.kind
                ));
            }
        }
    }
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Listener(..)"
        } else {
            "Listener(none)"
        })
    }
}
