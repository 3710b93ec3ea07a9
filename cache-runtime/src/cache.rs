//! The cache handle: what it holds, and its read-only accessors. Building
//! one lives in `builder/`, reading in `read/`, invalidating in
//! `invalidate.rs`.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::backend::Backend;
use crate::breaker::Breaker;
use crate::codec::Codec;
use crate::flight::Flights;
use crate::names::Namespace;
use crate::pending::Pending;
use crate::policy::{Clock, Random};
use crate::signing::Signer;
use crate::stats::{Counters, Stats};

/// A handle to a cache: Redis or the embedded backend.
///
/// Cloning is cheap (one reference count); clones share the connection,
/// the counters and the settings.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::time::Duration;
/// use cachette::Cache;
///
/// let cache = Cache::memory();
/// let load = || async { Ok::<_, std::io::Error>(String::from("Ada")) };
/// let a = cache.get_or_fetch("user:1", &["org:7"], Duration::from_secs(60), load()).await;
/// let b = cache.get_or_fetch("user:1", &["org:7"], Duration::from_secs(60), load()).await;
/// assert_eq!(a.unwrap(), b.unwrap());
/// assert_eq!(cache.stats().hits, 1);
/// # }
/// ```
#[derive(Clone)]
pub struct Cache {
    pub(crate) inner: Arc<Inner>,
}

impl Cache {
    /// Whether `other` is a handle to this very cache (a clone of it).
    pub(crate) fn same_as(&self, other: &Cache) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Whether `other` writes the same names on the same server (it shares
    /// this cache's set of undelivered busts): a bust by either reaches
    /// the other's entries.
    pub(crate) fn shares_names_with(&self, other: &Cache) -> bool {
        Arc::ptr_eq(&self.inner.pending, &other.inner.pending)
    }
}

pub(crate) struct Inner {
    pub(crate) backend: Backend,
    pub(crate) namespace: Namespace,
    pub(crate) codec: Codec,
    pub(crate) version_ttl: Duration,
    pub(crate) counters: Counters,
    pub(crate) flights: Flights,
    /// Entries with a background refresh running in this process.
    /// The running background refreshes: each entry's refresh id, and until
    /// when (the cache's clock, in milliseconds) it keeps another from
    /// starting.
    pub(crate) refreshing: Mutex<HashMap<String, (u64, u64)>>,
    /// Signalled whenever a background refresh ends.
    pub(crate) refreshes_done: tokio::sync::Notify,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) random: Arc<dyn Random>,
    /// Busts not yet delivered (I9), shared by every cache of this process
    /// on the same server and namespace.
    pub(crate) pending: Arc<Pending>,
    pub(crate) breaker: Breaker,
    pub(crate) max_value_bytes: usize,
    pub(crate) warned_too_large: WarnOnce,
    /// Values larger than this many bytes, encoded, are compressed.
    #[cfg_attr(not(feature = "compression"), allow(dead_code))]
    pub(crate) compress_above: Option<usize>,
    /// Functions warned about values that do not survive their codec.
    pub(crate) warned_round_trip: WarnOnce,
    /// Functions warned about a zero TTL.
    pub(crate) warned_zero_ttl: WarnOnce,
    /// Batch functions whose body returned elements it was not given.
    pub(crate) warned_unasked: WarnOnce,
    /// The gatherings of linked single-key misses (`batch.rs`).
    pub(crate) loaders: crate::batch::Loaders,
    /// `stale_if_error` values served, logged at most once a period.
    pub(crate) warned_stale_on_error: crate::telemetry::Every,
    pub(crate) signer: Option<Signer>,
    /// Logs show keys and tags in full (else template and hash).
    pub(crate) log_full_names: bool,
    /// The listener of `CacheBuilder::on_event`.
    pub(crate) events: crate::events::Listener,
    /// `CacheBuilder::disabled`: every call goes around the cache.
    pub(crate) disabled: bool,
    /// Values of `Clone` types are kept decoded (see `keep.rs`).
    pub(crate) keep_decoded: bool,
    /// The tags each key's value derived last (`tags_from`).
    pub(crate) derived: crate::derived::Hints,
}

/// Remembers which keys were warned about, up to a bound (past it, it
/// stops warning rather than grow).
#[derive(Default)]
pub(crate) struct WarnOnce(Mutex<HashSet<String>>);

impl WarnOnce {
    const LIMIT: usize = 10_000;

    pub(crate) fn first_time(&self, key: &str) -> bool {
        let mut seen = crate::sync::lock(&self.0);
        if seen.len() >= Self::LIMIT || seen.contains(key) {
            return false;
        }
        seen.insert(key.to_string())
    }
}

impl fmt::Debug for Cache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("backend", &self.inner.backend.label())
            .field("namespace", &self.inner.namespace.as_str())
            .finish_non_exhaustive()
    }
}

impl Cache {
    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        let mut stats = self.inner.counters.snapshot();
        stats.pending_invalidations = self.inner.pending.len() as u64;
        #[allow(deprecated)]
        {
            stats.pending_busts = stats.pending_invalidations;
        }
        stats.breaker_open = self.inner.breaker.is_open();
        let near = self.inner.backend.near_stats();
        stats.near_hits = near.hits;
        stats.near_orderings = near.orderings;
        stats.near_invalidations = near.invalidations;
        stats.near_flushes = near.flushes;
        stats.near_entries = near.entries;
        stats.near_lease_hits = near.lease_hits;
        stats.near_lease_refreshes = near.refreshes;
        stats
    }

    /// Waits until the background refreshes (`swr`, `early`) started
    /// through this cache have finished: for tests, and before shutdown.
    /// A refresh runs on the runtime of the call that started it; one
    /// whose runtime is no longer driven is not waited for past its lock's
    /// TTL.
    pub async fn refreshes_settled(&self) {
        loop {
            let notified = self.inner.refreshes_done.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let now = self.inner.clock.now_millis();
            if crate::sync::lock(&self.inner.refreshing)
                .values()
                .all(|(_, until)| now >= *until)
            {
                return;
            }
            // The clock may be the application's: looked at again often.
            let _ = tokio::time::timeout(std::time::Duration::from_millis(10), notified).await;
        }
    }

    /// Which backend this cache uses: `"memory"`, `"redis"`,
    /// `"redis-cluster"` or `"upstash"`.
    pub fn backend_name(&self) -> &'static str {
        self.inner.backend.label()
    }
}
