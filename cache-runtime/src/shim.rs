//! The one swap point for loom (feature `__loom`, checked in `loom.rs`):
//! the primitives the checked parts use, std's otherwise, and the
//! weakenings that prove each check can fail.
//!
//! A weakening is a known mistake a primitive avoids, written where the
//! primitive is as one `if shim::weakened(Weakening::..)` branch that does
//! it the wrong way. Outside the loom checks [`weakened`] is a constant
//! `false`, so the branch is compiled away and production code carries no
//! `cfg` for loom; the checks turn one weakening on at a time and must see
//! loom fail.

#[cfg(feature = "__loom")]
pub(crate) use loom::sync::{
    atomic::{AtomicBool, AtomicU32, AtomicU64},
    Mutex, MutexGuard,
};
#[cfg(not(feature = "__loom"))]
pub(crate) use std::sync::{
    atomic::{AtomicBool, AtomicU32, AtomicU64},
    Mutex, MutexGuard,
};

/// Locks `mutex`, whether a thread panicked in it or not (see `sync.rs`).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// A mistake the primitive avoids, turned on for one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(dead_code)] // constructed only in the loom checks
pub(crate) enum Weakening {
    None,
    /// The pending set's "anything kept" flag cleared after its lock is
    /// let go.
    MarkAfterUnlock,
    /// The breaker's probe permit not given back when its call is dropped
    /// (a cancelled probe would keep the breaker open).
    ProbeKeptWhenDropped,
    /// The near-cache keeps a lookup that an invalidation message overtook
    /// while it was in flight.
    KeepOvertaken,
    /// A flight's epoch bumped after its entry left the map and the lock
    /// was let go.
    EpochAfterUnlock,
    /// The ordering batch's names taken before the batch is closed.
    ProbesTakenBeforeClose,
    /// A batch whose sending task was dropped unsent left unanswered (the
    /// task's runtime gone: I13).
    UnsentBatchUnanswered,
    /// A connection's confirmation kept in two words (its instant and its
    /// lease), read one at a time.
    TornConfirmation,
    /// The refresh slot checked, then taken, in two steps.
    RefreshCheckedThenSet,
}

#[cfg(feature = "__loom")]
thread_local! {
    // loom runs a check's threads on the test's own thread.
    static WEAKENING: std::cell::Cell<Weakening> = const { std::cell::Cell::new(Weakening::None) };
}

/// Turns `weakening` on for the checks that follow (`None`: all off).
#[cfg(all(test, feature = "__loom"))]
pub(crate) fn weaken(weakening: Weakening) {
    WEAKENING.with(|w| w.set(weakening));
}

/// Whether `weakening` is on: only ever in a loom check.
#[inline(always)]
pub(crate) fn weakened(weakening: Weakening) -> bool {
    #[cfg(feature = "__loom")]
    return WEAKENING.with(|w| w.get() == weakening);
    #[cfg(not(feature = "__loom"))]
    {
        let _ = weakening;
        false
    }
}
