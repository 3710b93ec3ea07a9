//! The cache handle, its builder, and the read and invalidation paths shared
//! by every backend.

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::backend::{memory::MemoryBackend, name, Backend, Bust, Kind, Names};
use crate::breaker::{Breaker, Tripped};
use crate::codec::Codec;
use crate::entry::{self, Meta};
use crate::error::Error;
use crate::flight::Flights;
use crate::mode::ResultMode;
use crate::pending::{self, Pending};
use crate::policy::{Clock, FastRandom, Policy, Random, Strategy, SystemClock};
use crate::read::NoRefresh;
use crate::replicas::ReplicaAcks;
use crate::signing::Signer;
use crate::stats::{Counters, Stats};
use crate::version::Token;

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
    namespace: String,
    pub(crate) codec: Codec,
    version_ttl: Duration,
    pub(crate) counters: Counters,
    pub(crate) flights: Flights,
    /// Entry keys with a background refresh running in this process.
    pub(crate) refreshing: Mutex<HashSet<String>>,
    /// Signalled whenever a background refresh ends.
    pub(crate) refreshes_done: tokio::sync::Notify,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) random: Arc<dyn Random>,
    /// Busts not yet delivered (I9).
    pub(crate) pending: Pending,
    pub(crate) breaker: Breaker,
    max_value_bytes: usize,
    warned_too_large: WarnOnce,
    pub(crate) signer: Option<Signer>,
}

/// Remembers which keys were warned about, up to a bound (past it, it
/// stops warning rather than grow).
#[derive(Default)]
struct WarnOnce(Mutex<HashSet<String>>);

impl WarnOnce {
    const LIMIT: usize = 10_000;

    fn first_time(&self, key: &str) -> bool {
        let mut seen = self.0.lock().unwrap_or_else(|e| e.into_inner());
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
            .field("namespace", &self.inner.namespace)
            .finish_non_exhaustive()
    }
}

/// Settings for a [`Cache`], from [`Cache::builder`].
///
/// ```
/// use std::time::Duration;
/// let cache = cachette::Cache::builder()
///     .namespace("shop")
///     .capacity(50_000)
///     .memory();
/// ```
#[derive(Clone)]
#[must_use]
pub struct CacheBuilder {
    namespace: String,
    connect_timeout: Duration,
    command_timeout: Duration,
    codec: Codec,
    capacity: u64,
    version_ttl: Duration,
    clock: Arc<dyn Clock>,
    random: Arc<dyn Random>,
    max_pending_busts: usize,
    breaker: (u32, Duration),
    max_value_bytes: usize,
    signer: Option<Signer>,
    replica_acks: ReplicaAcks,
    replica_ack_timeout: Duration,
    #[cfg(feature = "tls")]
    root_ca: Option<Vec<u8>>,
}

impl fmt::Debug for CacheBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheBuilder")
            .field("namespace", &self.namespace)
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .field("codec", &self.codec)
            .field("capacity", &self.capacity)
            .field("version_ttl", &self.version_ttl)
            .finish_non_exhaustive()
    }
}

impl Default for CacheBuilder {
    fn default() -> Self {
        CacheBuilder {
            namespace: "cachette".into(),
            connect_timeout: Duration::from_secs(1),
            command_timeout: Duration::from_millis(50),
            codec: Codec::Json,
            capacity: 10_000,
            version_ttl: Duration::from_secs(24 * 3600),
            clock: Arc::new(SystemClock),
            random: Arc::new(FastRandom),
            max_pending_busts: 10_000,
            breaker: (5, Duration::from_secs(1)),
            max_value_bytes: 1 << 20,
            signer: None,
            replica_acks: ReplicaAcks::Auto,
            replica_ack_timeout: Duration::from_millis(100),
            #[cfg(feature = "tls")]
            root_ca: None,
        }
    }
}

impl CacheBuilder {
    /// Prefix of every key the library writes (default `cachette`). Caches
    /// with different namespaces never see each other's entries.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// How long to wait for a connection to Redis (default 1 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long to wait for one Redis command (default 50 ms). Past it the
    /// call reads through to the function's body.
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// How values are serialized (default JSON).
    pub fn codec(mut self, codec: Codec) -> Self {
        self.codec = codec;
        self
    }

    /// Most entries the embedded backend holds (default 10,000); the least
    /// useful are evicted past it. Redis bounds itself with `maxmemory`.
    pub fn capacity(mut self, entries: u64) -> Self {
        self.capacity = entries;
        self
    }

    /// How long a version written by an invalidation lives (default 24 h).
    /// When it expires, entries that recorded it become misses; it never
    /// makes an invalidated entry valid again.
    pub fn version_ttl(mut self, ttl: Duration) -> Self {
        self.version_ttl = ttl.max(Duration::from_millis(1));
        self
    }

    /// The clock read for freshness windows (`swr`) and early refresh
    /// (`early`), and to time bodies. Entry TTLs in the backend always
    /// follow real time.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The random source of early refresh.
    pub fn random(mut self, random: impl Random) -> Self {
        self.random = Arc::new(random);
        self
    }

    /// How many undelivered invalidations (keys and tags) this process keeps
    /// track of one by one (default 10,000). An invalidation that fails is
    /// retried with backoff, and entries it names are not served until it
    /// is delivered; past this many, nothing is served from the cache until
    /// every one is delivered. None is ever dropped.
    pub fn max_pending_busts(mut self, names: usize) -> Self {
        self.max_pending_busts = names;
        self
    }

    /// Largest stored value, in bytes (default 1 MiB). A larger value is
    /// returned to its caller but not cached, with one warning per key.
    pub fn max_value_bytes(mut self, bytes: usize) -> Self {
        self.max_value_bytes = bytes;
        self
    }

    /// Trusts these PEM certificates for `rediss://` instead of the system's
    /// roots (a private CA, say).
    #[cfg(feature = "tls")]
    pub fn tls_root_certificates(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_ca = Some(pem.into());
        self
    }

    /// Signs every stored value with HMAC-SHA256 under `key`, over the
    /// backend key and the value: a tampered value, one written by anything
    /// without the key, or one copied under another key is a miss (counted
    /// in `Stats::signature_failures`) and is overwritten. Every process
    /// sharing the namespace needs the same key; turning signing on makes
    /// existing unsigned entries misses.
    pub fn signing_key(mut self, key: impl AsRef<[u8]>) -> Self {
        self.signer = Some(Signer::new(key.as_ref()));
        self
    }

    /// The circuit breaker: after `failures` consecutive backend failures,
    /// reads stop calling Redis for `cool_down` (annotated functions run
    /// their bodies at once), then one call probes; its success closes the
    /// breaker. Default: 5 failures, 1 s.
    pub fn circuit_breaker(mut self, failures: u32, cool_down: Duration) -> Self {
        self.breaker = (failures, cool_down);
        self
    }

    /// Whether invalidations wait for replicas to hold them before they
    /// return (default [`ReplicaAcks::Auto`]: one replica wherever the
    /// master has any). See [`ReplicaAcks`].
    pub fn replica_acks(mut self, acks: ReplicaAcks) -> Self {
        self.replica_acks = acks;
        self
    }

    /// How long an invalidation waits for replicas (default 100 ms). Past
    /// it, the invalidation fails, is kept and retried, and what it names
    /// is not served by this process until it is delivered.
    pub fn replica_ack_timeout(mut self, timeout: Duration) -> Self {
        self.replica_ack_timeout = timeout;
        self
    }

    /// Builds a cache on the embedded backend.
    pub fn memory(self) -> Cache {
        let backend = Backend::Memory(MemoryBackend::new(self.capacity));
        self.finish(backend)
    }

    /// Connects to Redis at `url` (`redis://`, `rediss://`, `redis+unix://`).
    ///
    /// # Errors
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) for a malformed or
    /// unsupported URL, [`ErrorKind::Auth`](crate::ErrorKind::Auth) when
    /// the server refuses the credentials, and
    /// [`ErrorKind::Connection`](crate::ErrorKind::Connection) or
    /// [`ErrorKind::Timeout`](crate::ErrorKind::Timeout) when it cannot be
    /// reached.
    #[cfg(feature = "redis")]
    pub async fn connect(self, url: &str) -> Result<Cache, Error> {
        self.check_namespace()?;
        let backend = crate::backend::redis::RedisBackend::connect(url, &self.settings()).await?;
        Ok(self.finish(Backend::Redis(backend)))
    }

    /// Connects to a Redis Cluster through any of `nodes` (the client
    /// discovers the rest, follows MOVED and ASK redirections, and
    /// refreshes its slot map after a failover).
    ///
    /// Reads go to masters only. Invalidations of keys and tags on
    /// different nodes are sent to all of them at once, and by default wait
    /// for a replica of each (see [`replica_acks`](Self::replica_acks)).
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), cachette::Error> {
    /// let cache = cachette::Cache::builder()
    ///     .namespace("shop")
    ///     .connect_cluster(["redis://10.0.0.1:6379", "redis://10.0.0.2:6379"])
    ///     .await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`connect`](Self::connect), for the cluster as a whole.
    #[cfg(feature = "cluster")]
    pub async fn connect_cluster<I, S>(self, nodes: I) -> Result<Cache, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.check_namespace()?;
        let nodes: Vec<String> = nodes.into_iter().map(|n| n.as_ref().to_string()).collect();
        let backend =
            crate::backend::redis::RedisBackend::connect_cluster(&nodes, &self.settings()).await?;
        Ok(self.finish(Backend::Redis(backend)))
    }

    /// A namespace with braces would move the cluster hash tag of every
    /// name into the namespace, putting all of them in one slot.
    #[cfg(feature = "redis")]
    fn check_namespace(&self) -> Result<(), Error> {
        if self.namespace.contains(['{', '}']) {
            return Err(Error::new(
                crate::ErrorKind::Config,
                "the namespace must not contain `{` or `}`",
            ));
        }
        Ok(())
    }

    /// Like [`connect`](Self::connect), but connects on first use.
    #[cfg(feature = "redis")]
    pub(crate) fn connect_lazy(self, url: &str) -> Result<Cache, Error> {
        let backend = crate::backend::redis::RedisBackend::lazy(url, &self.settings())?;
        Ok(self.finish(Backend::Redis(backend)))
    }

    #[cfg(feature = "redis")]
    fn settings(&self) -> crate::backend::redis::Settings {
        crate::backend::redis::Settings {
            connect_timeout: self.connect_timeout,
            command_timeout: self.command_timeout,
            #[cfg(feature = "tls")]
            root_ca: self.root_ca.clone(),
            acks: self.replica_acks,
            ack_timeout: self.replica_ack_timeout,
        }
    }

    fn finish(self, backend: Backend) -> Cache {
        Cache {
            inner: Arc::new(Inner {
                backend,
                namespace: self.namespace,
                codec: self.codec,
                version_ttl: self.version_ttl,
                counters: Counters::default(),
                flights: Flights::default(),
                refreshing: Mutex::new(HashSet::new()),
                refreshes_done: tokio::sync::Notify::new(),
                clock: self.clock,
                random: self.random,
                pending: Pending::new(self.max_pending_busts),
                breaker: Breaker::new(self.breaker.0, self.breaker.1),
                max_value_bytes: self.max_value_bytes,
                warned_too_large: WarnOnce::default(),
                signer: self.signer,
            }),
        }
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
            if self
                .inner
                .refreshing
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_empty()
            {
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
    /// `key` and `tags` are used as given (see [`KeyBuilder`](crate::KeyBuilder)
    /// to render a template the way the macros do). The cache fails open:
    /// if the backend fails, `fetch` runs and its result is returned.
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
        let policy = Policy::new(Strategy::Aside, ttl).function("Cache::get_or_fetch");
        self.fetch::<ResultMode, _, _, NoRefresh, _>(&policy, key, tags, fetch, None)
            .await
    }

    /// The backend names an invalidation of `keys` and `tags` bumps and
    /// drops.
    pub(crate) fn bust_of<K, KS, T, TS>(&self, keys: K, tags: T) -> Bust
    where
        K: IntoIterator<Item = KS>,
        KS: AsRef<str>,
        T: IntoIterator<Item = TS>,
        TS: AsRef<str>,
    {
        let ns = &self.inner.namespace;
        let mut bust = Bust::default();
        for key in keys {
            let key = key.as_ref();
            bust.versions.push(name(ns, Kind::KeyVersion, key));
            bust.entries.push(name(ns, Kind::Entry, key));
        }
        bust.versions.extend(
            tags.into_iter()
                .map(|t| name(ns, Kind::TagVersion, t.as_ref())),
        );
        bust
    }

    /// Keeps a bust that may not have been delivered, and makes sure the
    /// retry task runs.
    pub(crate) fn keep_undelivered(&self, bust: &Bust) {
        if self.inner.pending.add(bust) {
            self.spawn_bust_retry();
        }
    }

    /// Delivers pending busts with backoff until none is left (I9).
    fn spawn_bust_retry(&self) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            self.inner.pending.stop_retrying();
            return;
        };
        let cache = self.clone();
        handle.spawn(async move {
            let inner = &cache.inner;
            // A runtime that shuts down drops this task; the next bust
            // (failed or not) must then start another.
            let mut running = RetryTask {
                pending: &inner.pending,
                finished: false,
            };
            let mut attempt = 0;
            loop {
                tokio::time::sleep(pending::backoff(attempt)).await;
                let (bust, generation) = inner.pending.snapshot();
                match inner.backend.bust(&bust, inner.version_ttl).await {
                    Ok(()) => {
                        tracing::info!(names = bust.versions.len(), "cachette: pending invalidations delivered");
                        if inner.pending.delivered(&bust, generation) {
                            // `delivered` cleared the flag; a new task may
                            // already have set it again.
                            running.finished = true;
                            return;
                        }
                        attempt = 0;
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, attempt, "cachette: pending invalidations still undelivered");
                        attempt += 1;
                    }
                }
            }
        });
    }

    pub(crate) fn lock_key(&self, key: &str) -> String {
        name(&self.inner.namespace, Kind::Lock, key)
    }

    pub(crate) fn names<S: AsRef<str>>(&self, key: &str, tags: &[S]) -> Names {
        Names::new(&self.inner.namespace, key, tags)
    }

    /// The tokens to record in a fill: the ones just read, with any missing
    /// version created first.
    pub(crate) async fn capture(
        &self,
        names: &Names,
        read: Vec<Option<Token>>,
        ttl: Duration,
    ) -> Result<Vec<Token>, Error> {
        if read.iter().all(Option::is_some) {
            return Ok(read.into_iter().flatten().collect());
        }
        let missing: Vec<&str> = names
            .versions()
            .zip(&read)
            .filter(|(_, t)| t.is_none())
            .map(|(k, _)| k)
            .collect();
        let ttl = ttl.max(self.inner.version_ttl);
        let mut created = self.inner.backend.ensure(&missing, ttl).await?.into_iter();
        Ok(read
            .into_iter()
            .map(|t| {
                t.or_else(|| created.next())
                    .expect("one token per missing version")
            })
            .collect())
    }

    pub(crate) async fn fill<T: serde::Serialize>(
        &self,
        entry_key: &str,
        key: &str,
        tokens: &[Token],
        meta: Meta,
        value: &T,
        ttl: Duration,
    ) {
        if ttl.is_zero() {
            return;
        }
        let Some(mut blob) = entry::begin(tokens, meta, 128) else {
            tracing::warn!(key, "cachette: more than 254 tags; not cached");
            return;
        };
        if let Err(e) = self.inner.codec.encode_into(&mut blob, value) {
            tracing::warn!(key, error = %e, "cachette: value failed to serialize; returned uncached");
            return;
        }
        if let Some(signer) = &self.inner.signer {
            signer.sign(entry_key, &mut blob);
        }
        if blob.len() > self.inner.max_value_bytes {
            Counters::bump(&self.inner.counters.too_large);
            if self.inner.warned_too_large.first_time(key) {
                tracing::warn!(
                    key,
                    bytes = blob.len(),
                    limit = self.inner.max_value_bytes,
                    "cachette: value larger than max_value_bytes; not cached (warned once per key)"
                );
            }
            return;
        }
        if let Err(e) = self.inner.backend.store(entry_key, blob, ttl).await {
            self.backend_error("fill", key, &e);
        }
    }

    pub(crate) fn backend_error(&self, op: &str, key: &str, e: &Error) {
        Counters::bump(&self.inner.counters.errors);
        tracing::warn!(key, op, error = %e, "cachette: backend failed; reading through");
        if self.inner.breaker.failure() == Tripped::Opened {
            Counters::bump(&self.inner.counters.breaker_opens);
            tracing::warn!("cachette: circuit breaker opened; calls read through without Redis");
        }
    }

    pub(crate) fn backend_ok(&self) {
        if self.inner.breaker.success() {
            tracing::info!("cachette: circuit breaker closed; the backend answers again");
        }
    }

    pub(crate) fn decode_failure(&self, key: &str, e: &dyn fmt::Display) {
        Counters::bump(&self.inner.counters.decode_failures);
        tracing::debug!(key, error = %e, "cachette: stored value did not decode; refetching");
    }

    /// Invalidates keys, exactly as rendered (see [`KeyBuilder`](crate::KeyBuilder)).
    ///
    /// When it returns `Ok`, no read that starts afterwards returns a value
    /// computed before the call. One round trip whatever the number of keys.
    ///
    /// # Errors
    /// The backend failed; the keys may not be invalidated.
    pub async fn invalidate_keys<I, S>(&self, keys: I) -> Result<(), Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.invalidate_from("Cache::invalidate_keys", keys, std::iter::empty::<&str>())
            .await
    }

    /// Invalidates every entry filled with any of these tags, exactly as
    /// rendered. One round trip, whatever the number of tags and entries.
    ///
    /// # Errors
    /// The backend failed; the tags may not be invalidated.
    pub async fn invalidate_tags<I, S>(&self, tags: I) -> Result<(), Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.invalidate_from("Cache::invalidate_tags", std::iter::empty::<&str>(), tags)
            .await
    }

    /// Invalidates keys and tags together, in one round trip.
    ///
    /// # Errors
    /// The backend failed; nothing may have been invalidated.
    pub async fn invalidate<K, KS, T, TS>(&self, keys: K, tags: T) -> Result<(), Error>
    where
        K: IntoIterator<Item = KS>,
        KS: AsRef<str>,
        T: IntoIterator<Item = TS>,
        TS: AsRef<str>,
    {
        self.invalidate_from("Cache::invalidate", keys, tags).await
    }

    /// [`invalidate`](Self::invalidate), reported as coming from `function`.
    pub(crate) async fn invalidate_from<K, KS, T, TS>(
        &self,
        function: &'static str,
        keys: K,
        tags: T,
    ) -> Result<(), Error>
    where
        K: IntoIterator<Item = KS>,
        KS: AsRef<str>,
        T: IntoIterator<Item = TS>,
        TS: AsRef<str>,
    {
        let bust = self.bust_of(keys, tags);
        if self.inner.pending.orphaned() {
            // Names are pending but no task delivers them (it ran without a
            // runtime, or its runtime shut down).
            self.spawn_bust_retry();
        }
        if bust.versions.is_empty() {
            return Ok(());
        }
        let n = bust.versions.len() as u64;
        // If this future is dropped mid-bust (a caller's timeout, a
        // `select!`), the guard keeps the bust as undelivered (I9).
        let guard = KeepIfDropped {
            cache: self,
            bust: Some(&bust),
        };
        let sent = self.inner.backend.bust(&bust, self.inner.version_ttl).await;
        guard.disarm();
        match sent {
            Ok(()) => {
                self.inner
                    .counters
                    .invalidations
                    .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                tracing::debug!(function, names = ?bust.versions, outcome = "invalidated", "cachette");
                #[cfg(feature = "metrics")]
                metrics::counter!("cachette_invalidations_total", "function" => function)
                    .increment(n);
                Ok(())
            }
            Err(e) => {
                Counters::bump(&self.inner.counters.errors);
                tracing::error!(
                    function,
                    names = ?bust.versions,
                    error = %e,
                    "cachette: invalidation failed; kept and retried, and what it names is not served until it is delivered"
                );
                self.keep_undelivered(&bust);
                #[cfg(feature = "metrics")]
                metrics::counter!("cachette_errors_total", "function" => function, "op" => "invalidate")
                    .increment(1);
                Err(e)
            }
        }
    }
}

/// Keeps a bust as undelivered when the future sending it is dropped
/// before it finished.
struct KeepIfDropped<'a> {
    cache: &'a Cache,
    bust: Option<&'a Bust>,
}

impl KeepIfDropped<'_> {
    fn disarm(mut self) {
        self.bust = None;
    }
}

impl Drop for KeepIfDropped<'_> {
    fn drop(&mut self) {
        if let Some(bust) = self.bust {
            tracing::error!(
                names = ?bust.versions,
                "cachette: invalidation cancelled before it finished; kept and retried, and what it names is not served until it is delivered"
            );
            self.cache.keep_undelivered(bust);
        }
    }
}

/// Marks the retry task as gone when it is dropped before it finished.
struct RetryTask<'a> {
    pending: &'a Pending,
    finished: bool,
}

impl Drop for RetryTask<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.pending.stop_retrying();
        }
    }
}
