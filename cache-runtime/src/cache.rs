//! The cache handle: what it holds, and its public operations. Reading
//! lives in `read.rs`, invalidating in `invalidate.rs`, settings in
//! `builder.rs`.

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::backend::Backend;
use crate::breaker::Breaker;
use crate::builder::CacheBuilder;
use crate::codec::Codec;
#[cfg(feature = "redis")]
use crate::error::Error;
use crate::flight::Flights;
use crate::mode::ResultMode;
use crate::names::{Function, Namespace};
use crate::pending::Pending;
use crate::policy::{Clock, Policy, Random, Strategy};
use crate::read::{Call, NoRefresh};
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

pub(crate) struct Inner {
    pub(crate) backend: Backend,
    pub(crate) namespace: Namespace,
    pub(crate) codec: Codec,
    pub(crate) version_ttl: Duration,
    pub(crate) counters: Counters,
    pub(crate) flights: Flights,
    /// Entries with a background refresh running in this process.
    pub(crate) refreshing: Mutex<HashSet<String>>,
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
    pub(crate) signer: Option<Signer>,
    /// Logs show keys and tags in full (else template and hash).
    pub(crate) log_full_names: bool,
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
    /// Starts building a cache with custom settings.
    pub fn builder() -> CacheBuilder {
        CacheBuilder::default()
    }

    /// A cache on the embedded backend with default settings.
    pub fn memory() -> Cache {
        Cache::builder().memory()
    }

    /// Connects to Redis with default settings; see [`CacheBuilder::connect`].
    ///
    /// # Errors
    /// As [`CacheBuilder::connect`].
    #[cfg(feature = "redis")]
    pub async fn connect(url: &str) -> Result<Cache, Error> {
        Cache::builder().connect(url).await
    }

    /// Connects to a Redis Cluster with default settings; see
    /// [`CacheBuilder::connect_cluster`].
    ///
    /// # Errors
    /// As [`CacheBuilder::connect_cluster`].
    #[cfg(feature = "cluster")]
    pub async fn connect_cluster<I, S>(nodes: I) -> Result<Cache, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Cache::builder().connect_cluster(nodes).await
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        let mut stats = self.inner.counters.snapshot();
        stats.pending_busts = self.inner.pending.len() as u64;
        stats.breaker_open = self.inner.breaker.is_open();
        stats
    }

    /// Waits until the background refreshes (`swr`, `early`) started
    /// through this cache have finished: for tests, and before shutdown.
    pub async fn refreshes_settled(&self) {
        loop {
            let notified = self.inner.refreshes_done.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if crate::sync::lock(&self.inner.refreshing).is_empty() {
                return;
            }
            notified.await;
        }
    }

    /// Which backend this cache uses: `"memory"`, `"redis"` or
    /// `"redis-cluster"`.
    pub fn backend_name(&self) -> &'static str {
        self.inner.backend.label()
    }

    /// Returns the cached value of `key` if it is valid, else awaits `fetch`
    /// and caches its `Ok` value for `ttl` under `key`, tagged with `tags`.
    ///
    /// `key` and `tags` name what the attributes name when their templates
    /// render the same text (see [`KeyBuilder`](crate::KeyBuilder) and
    /// [`escape`](crate::escape)): an invalidation of the key or a tag
    /// reaches these entries too. The entries themselves are this
    /// function's, for values of type `T`: an annotated function with the
    /// same key, or a call with another `T`, has entries of its own.
    ///
    /// The cache fails open: if the backend fails, `fetch` runs and its
    /// result is returned.
    pub async fn get_or_fetch<T, E, Fut>(
        &self,
        key: &str,
        tags: &[&str],
        ttl: Duration,
        fetch: Fut,
    ) -> Result<T, E>
    where
        T: serde::Serialize + serde::de::DeserializeOwned,
        Fut: Future<Output = Result<T, E>>,
    {
        const POLICY: Policy = Policy::new(Strategy::Aside, Duration::ZERO);
        let policy = Policy { ttl, ..POLICY };
        let function = Function::named(
            "Cache::get_or_fetch",
            &["Cache::get_or_fetch<", std::any::type_name::<T>(), ">"].concat(),
        );
        let call = Call::new(self, &policy, function, key, tags);
        self.fetch::<ResultMode, _, _, NoRefresh, _>(call, fetch, None)
            .await
    }
}
