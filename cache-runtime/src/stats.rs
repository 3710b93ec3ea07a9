//! Plain counters, readable without any metrics dependency.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// A snapshot of a cache's counters, from [`Cache::stats`](crate::Cache::stats).
///
/// Counters only grow; take two snapshots and subtract to measure an
/// interval. More counters may be added.
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
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub errors: AtomicU64,
    pub invalidations: AtomicU64,
    pub decode_failures: AtomicU64,
}

impl Counters {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    pub(crate) fn snapshot(&self) -> Stats {
        Stats {
            hits: self.hits.load(Relaxed),
            misses: self.misses.load(Relaxed),
            errors: self.errors.load(Relaxed),
            invalidations: self.invalidations.load(Relaxed),
            decode_failures: self.decode_failures.load(Relaxed),
        }
    }
}
