//! Plain counters, readable without any metrics dependency.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// A snapshot of a cache's counters, from [`Cache::stats`](crate::Cache::stats).
///
/// Counters only grow; take two snapshots and subtract to measure an
/// interval. More counters may be added.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::time::Duration;
/// let cache = cachette::Cache::memory();
/// let before = cache.stats();
/// let load = || async { Ok::<_, std::io::Error>(7u32) };
/// cache.get_or_fetch("n", &[], Duration::from_secs(9), load()).await.unwrap();
/// cache.get_or_fetch("n", &[], Duration::from_secs(9), load()).await.unwrap();
/// let after = cache.stats();
/// assert_eq!((after.misses - before.misses, after.hits - before.hits), (1, 1));
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups that ran the function's body (including invalidated and
    /// undecodable entries).
    pub misses: u64,
    /// Backend operations that failed; the call read through or the bust
    /// reported the error.
    pub errors: u64,
    /// Keys and tags invalidated (each name counts once).
    pub invalidations: u64,
    /// Stored values that could not be decoded (corrupt, foreign, or written
    /// by an incompatible version); each was treated as a miss.
    pub decode_failures: u64,
    /// `swr` reads that returned a value past its fresh window while a
    /// refresh ran.
    pub stale_hits: u64,
    /// Calls whose body failed and that were given a value past its TTL
    /// instead (`stale_if_error`).
    pub stale_on_error: u64,
    /// Background refreshes started (`swr` and `early`).
    pub refreshes: u64,
    /// `lock` misses that found another caller computing and waited.
    pub lock_waits: u64,
    /// Waits that reached `lock_wait` and computed the value themselves.
    pub lock_timeouts: u64,
    /// Calls that joined another caller's run of the body in this process
    /// instead of running it.
    pub coalesced: u64,
    /// Keys and tags whose invalidation failed and is being retried (a
    /// gauge, not a counter). While it is above zero, entries they name
    /// are read through.
    pub pending_invalidations: u64,
    /// The former name of `pending_invalidations`, the same number.
    #[deprecated(since = "0.1.0", note = "renamed `pending_invalidations`")]
    pub pending_busts: u64,
    /// Stored values rejected by the signature check (with a signing key).
    pub signature_failures: u64,
    /// Values not cached because they were larger than `max_value_bytes`.
    pub too_large: u64,
    /// Times the circuit breaker opened.
    pub breaker_opens: u64,
    /// Whether the circuit breaker is open now.
    pub breaker_open: bool,
    /// Lookups served from the near-cache (process memory, after an
    /// ordering round trip) instead of a read of Redis.
    pub near_hits: u64,
    /// Ordering round trips sent for the near-cache (one serves every
    /// caller waiting when it is sent).
    pub near_orderings: u64,
    /// Names invalidated in the near-cache by messages from Redis.
    pub near_invalidations: u64,
    /// Times the near-cache was emptied (a flush, a lost connection).
    pub near_flushes: u64,
    /// Lookups the near-cache holds now (approximate: its upkeep runs in
    /// the background).
    pub near_entries: u64,
    /// Near-cache hits served under a lease, with no round trip (counted
    /// in `near_hits` too; see `CacheBuilder::near_cache_lease`).
    pub near_lease_hits: u64,
    /// Refresh round trips sent for lease hits (also in `near_orderings`).
    pub near_lease_refreshes: u64,
    /// Requests a batch read sent to look up its elements: one per chunk
    /// of at most 256 elements (one per master per chunk on a cluster);
    /// none for elements served by the near-cache or the embedded backend.
    pub batch_lookups: u64,
    /// Calls in a [`scope::bypass`](crate::scope::bypass) that ran their
    /// body around the cache.
    pub scope_bypasses: u64,
    /// Calls in a [`scope::refresh`](crate::scope::refresh) that ran their
    /// body and stored its value whatever the cache held.
    pub scope_refreshes: u64,
    /// Calls past their `soft_timeout` that returned the value kept past
    /// its TTL while the body went on in the background.
    pub soft_timeouts: u64,
    /// Calls that reached their `hard_timeout` and returned the timeout
    /// error.
    pub hard_timeouts: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Bumped by every hit, from every core: striped.
    pub hits: Striped,
    pub misses: AtomicU64,
    pub errors: AtomicU64,
    pub invalidations: AtomicU64,
    pub decode_failures: AtomicU64,
    pub stale_hits: AtomicU64,
    pub stale_on_error: AtomicU64,
    pub refreshes: AtomicU64,
    pub lock_waits: AtomicU64,
    pub lock_timeouts: AtomicU64,
    pub coalesced: AtomicU64,
    pub breaker_opens: AtomicU64,
    pub too_large: AtomicU64,
    pub signature_failures: AtomicU64,
    pub batch_lookups: AtomicU64,
    pub scope_bypasses: AtomicU64,
    pub scope_refreshes: AtomicU64,
    pub soft_timeouts: AtomicU64,
    pub hard_timeouts: AtomicU64,
}

impl Counters {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    // The deprecated field is still filled in.
    #[allow(deprecated)]
    pub(crate) fn snapshot(&self) -> Stats {
        Stats {
            hits: self.hits.load(),
            misses: self.misses.load(Relaxed),
            errors: self.errors.load(Relaxed),
            invalidations: self.invalidations.load(Relaxed),
            decode_failures: self.decode_failures.load(Relaxed),
            stale_hits: self.stale_hits.load(Relaxed),
            stale_on_error: self.stale_on_error.load(Relaxed),
            refreshes: self.refreshes.load(Relaxed),
            lock_waits: self.lock_waits.load(Relaxed),
            lock_timeouts: self.lock_timeouts.load(Relaxed),
            coalesced: self.coalesced.load(Relaxed),
            pending_invalidations: 0,
            pending_busts: 0,
            breaker_opens: self.breaker_opens.load(Relaxed),
            too_large: self.too_large.load(Relaxed),
            signature_failures: self.signature_failures.load(Relaxed),
            breaker_open: false,
            near_hits: 0,
            near_orderings: 0,
            near_invalidations: 0,
            near_flushes: 0,
            near_entries: 0,
            near_lease_hits: 0,
            near_lease_refreshes: 0,
            batch_lookups: self.batch_lookups.load(Relaxed),
            scope_bypasses: self.scope_bypasses.load(Relaxed),
            scope_refreshes: self.scope_refreshes.load(Relaxed),
            soft_timeouts: self.soft_timeouts.load(Relaxed),
            hard_timeouts: self.hard_timeouts.load(Relaxed),
        }
    }
}

/// Stripes of a [`Striped`] counter.
const STRIPES: usize = 8;

/// A counter that every hit bumps, from every core: one cache line per
/// stripe, each thread bumping its own, so that cores hitting at once do
/// not take one line from each other at every hit. Read by summing.
///
/// The stripes are on the heap: a struct holding counters stays small on
/// the stack (loom's threads have little of it).
#[derive(Default)]
pub(crate) struct Striped(Box<[Line; STRIPES]>);

/// One stripe, alone on its cache line (two, for the adjacent-line
/// prefetcher).
#[derive(Default)]
#[repr(align(128))]
struct Line(AtomicU64);

thread_local! {
    /// This thread's stripe.
    static STRIPE: usize = {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        NEXT.fetch_add(1, Relaxed) % STRIPES
    };
}

impl std::fmt::Debug for Striped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.load().fmt(f)
    }
}

impl Striped {
    pub(crate) fn bump(&self) {
        let i = STRIPE.try_with(|s| *s).unwrap_or(0);
        self.0[i].0.fetch_add(1, Relaxed);
    }

    pub(crate) fn load(&self) -> u64 {
        self.0.iter().map(|l| l.0.load(Relaxed)).sum()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_striped_counter_counts_every_bump_of_every_thread() {
        let c = std::sync::Arc::new(super::Striped::default());
        let threads: Vec<_> = (0..12)
            .map(|_| {
                let c = c.clone();
                std::thread::spawn(move || (0..1000).for_each(|_| c.bump()))
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(c.load(), 12_000);
    }
}
