//! Settings of a cache, and building one on a backend.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::backend::{memory::MemoryBackend, Backend};
use crate::breaker::Breaker;
use crate::cache::{Cache, Inner, WarnOnce};
use crate::codec::Codec;
#[cfg(feature = "redis")]
use crate::error::Error;
use crate::flight::Flights;
use crate::names::Namespace;
use crate::pending::Pending;
use crate::policy::{Clock, FastRandom, Random, SystemClock};
use crate::replicas::ReplicaAcks;
use crate::signing::Signer;
use crate::stats::Counters;

/// Settings for a [`Cache`], from [`Cache::builder`].
///
/// ```
/// use std::time::Duration;
/// let cache = cachette::Cache::builder()
///     .namespace("shop")
///     .max_memory(256 << 20)
///     .memory();
/// ```
#[derive(Clone)]
#[must_use]
pub struct CacheBuilder {
    namespace: String,
    connect_timeout: Duration,
    command_timeout: Duration,
    codec: Codec,
    max_memory: u64,
    version_ttl: Duration,
    clock: Arc<dyn Clock>,
    random: Arc<dyn Random>,
    max_pending_busts: usize,
    breaker: (u32, Duration),
    max_value_bytes: usize,
    compress_above: Option<usize>,
    signer: Option<Signer>,
    log_full_names: bool,
    keep_decoded: bool,
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    server_functions: bool,
    replica_acks: ReplicaAcks,
    replica_ack_timeout: Duration,
    /// Whether the near-cache is on, and its budget in bytes.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    near_cache: (bool, u64),
    #[cfg(feature = "tls")]
    root_ca: Option<Vec<u8>>,
    /// Built by the library as the process default, not by the user.
    pub(crate) implicit: bool,
}

/// The near-cache's default budget.
const DEFAULT_NEAR_CACHE_BYTES: u64 = 64 << 20;

impl fmt::Debug for CacheBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheBuilder")
            .field("namespace", &self.namespace)
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .field("codec", &self.codec)
            .field("max_memory", &self.max_memory)
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
            max_memory: 64 << 20,
            version_ttl: Duration::from_secs(24 * 3600),
            clock: Arc::new(SystemClock),
            random: Arc::new(FastRandom),
            max_pending_busts: 10_000,
            breaker: (5, Duration::from_secs(1)),
            max_value_bytes: 1 << 20,
            compress_above: None,
            signer: None,
            log_full_names: false,
            keep_decoded: true,
            server_functions: false,
            replica_acks: ReplicaAcks::Auto,
            replica_ack_timeout: Duration::from_millis(100),
            near_cache: (true, DEFAULT_NEAR_CACHE_BYTES),
            #[cfg(feature = "tls")]
            root_ca: None,
            implicit: false,
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

    /// How values are serialized (default JSON; `codec = "..."` on a
    /// function overrides it for that function).
    pub fn codec(mut self, codec: Codec) -> Self {
        self.codec = codec;
        self
    }

    /// Compresses (LZ4) every encoded value larger than `bytes` (feature
    /// `compression`; off by default). A compressed entry is flagged in its
    /// header and decompressed when read; one that claims to decompress to
    /// more than `max_value_bytes` is refused as a miss, so a hostile entry
    /// cannot inflate a reader's memory. `max_value_bytes` bounds values
    /// before compression.
    #[cfg(feature = "compression")]
    pub fn compress_above(mut self, bytes: usize) -> Self {
        self.compress_above = Some(bytes);
        self
    }

    /// How many bytes the embedded backend's entries take at most (default
    /// 64 MiB), names and values counted, with an allowance per entry for
    /// bookkeeping; versions take at most a quarter of that more. The least
    /// useful entries are evicted past it. Redis bounds itself with
    /// `maxmemory`.
    pub fn max_memory(mut self, bytes: u64) -> Self {
        self.max_memory = bytes;
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
    /// retried with backoff, a bounded chunk at a time, and entries it names
    /// are not served until it is delivered. Past this many, the names are
    /// forgotten and replaced by one namespace-wide step: once Redis
    /// answers, every entry of the namespace is invalidated at once (a new
    /// epoch), and until then nothing is served from the cache. Memory
    /// stays bounded, and no invalidation is lost.
    pub fn max_pending_busts(mut self, names: usize) -> Self {
        self.max_pending_busts = names;
        self
    }

    /// Largest stored value, in bytes (default 1 MiB). A larger value is
    /// returned to its caller but not cached, with one warning per key. It
    /// also bounds what a read takes from Redis: an entry found larger
    /// (planted by something else) is cut at the server, never read whole,
    /// and is a miss, counted in `Stats::too_large`.
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
    /// backend name and the value with its expiry: a tampered value, one
    /// written by anything without the key, one copied under another name,
    /// or one kept past its expiry is a miss (counted in
    /// `Stats::signature_failures`) and is overwritten. Entries then record
    /// keyed hashes of their version tokens, so nobody without the key can
    /// revive an invalidated entry by writing a token back. Every process
    /// sharing the namespace needs the same key, and clocks that agree
    /// within a minute; turning signing on makes existing unsigned entries
    /// misses. See `SECURITY.md` for what this does and does not cover.
    ///
    /// ```
    /// let key = [7u8; 32]; // in production: random bytes from a secrets store
    /// let cache = cachette::Cache::builder().signing_key(key)?.memory();
    /// # Ok::<(), cachette::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) for a key shorter
    /// than [`MIN_SIGNING_KEY_LEN`](crate::MIN_SIGNING_KEY_LEN) bytes.
    pub fn signing_key(mut self, key: impl AsRef<[u8]>) -> Result<Self, crate::error::Error> {
        self.signer = Some(Signer::new(key.as_ref())?);
        Ok(self)
    }

    /// Whether logs show keys and tags in full (default `false`). By
    /// default they show the key's template, when the attribute gave one,
    /// and a short hash of the rendered text (`user:<id>#1a2b3c4d`): keys
    /// built from arguments often hold personal data (emails, names) that
    /// logs should not collect. The hash is keyed with the signing key when
    /// there is one, so it cannot be reversed by guessing values.
    pub fn log_full_names(mut self, full: bool) -> Self {
        self.log_full_names = full;
        self
    }

    /// Whether values of `Clone` types are kept decoded beside their bytes
    /// where an entry is held in process memory (the embedded backend, the
    /// near-cache), so that a hit clones the value instead of decoding it
    /// (default `true`). Every hit of an entry then gets a clone of one
    /// decoded value: for a type whose clone shares state (an
    /// `Arc<Mutex<_>>` inside), what one caller changes through it the next
    /// hits see. Turn it off for such types; every hit then decodes.
    pub fn keep_decoded(mut self, on: bool) -> Self {
        self.keep_decoded = on;
        self
    }

    /// Runs cachette's Lua through the functions of a library that an
    /// administrator loaded (`FCALL`), instead of sending scripts
    /// (`EVALSHA`, and `SCRIPT LOAD` when Redis does not know them). The
    /// application's ACL user then needs `+fcall` instead of `+evalsha
    /// +script|load`, so it cannot run Lua of its own. Load the library
    /// once per server (and again after upgrading cachette) with
    /// `FUNCTION LOAD REPLACE` and the text of
    /// [`SERVER_FUNCTIONS`](crate::SERVER_FUNCTIONS); Redis 7 keeps it
    /// across restarts (it is persisted) and replicates it. Default `false`.
    #[cfg(feature = "redis")]
    pub fn server_functions(mut self, on: bool) -> Self {
        self.server_functions = on;
        self
    }

    /// The near-cache (on by default where the server allows it): lookups
    /// kept in process memory and served again after one ordering round
    /// trip shared by every concurrent caller, instead of a round trip
    /// each. It never serves a value that a lookup of Redis would not
    /// (see [`guide::redis`](../cachette/guide/redis/index.html)). It needs
    /// RESP3, `CLIENT TRACKING` and `PING` (Redis 6 or later; ACL
    /// `+client|tracking +ping`); where the server refuses them it turns
    /// itself off with one warning. `false` turns it off.
    #[cfg(feature = "redis")]
    pub fn near_cache(mut self, on: bool) -> Self {
        self.near_cache.0 = on;
        self
    }

    /// The near-cache's budget, in bytes of entries held in process memory
    /// (default 64 MiB); past it, the least used are dropped. `0` turns
    /// the near-cache off.
    #[cfg(feature = "redis")]
    pub fn near_cache_bytes(mut self, bytes: u64) -> Self {
        self.near_cache.1 = bytes;
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
        let backend = Backend::Memory(MemoryBackend::new(self.max_memory, self.keep_decoded));
        // Nothing else shares an embedded backend: its pending busts are
        // its own.
        let pending = Pending::new(self.max_pending_busts);
        let namespace = Namespace::unchecked(self.namespace.clone());
        self.finish(backend, namespace, pending)
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
        let namespace = Namespace::new(self.namespace.clone())?;
        let backend = crate::background::entered(crate::backend::redis::RedisBackend::connect(
            url,
            &self.settings(),
        ))
        .await?;
        let pending = self.shared_pending(&backend, &namespace);
        Ok(self.finish(Backend::Redis(backend), namespace, pending))
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
        let namespace = Namespace::new(self.namespace.clone())?;
        let nodes: Vec<String> = nodes.into_iter().map(|n| n.as_ref().to_string()).collect();
        let backend = crate::background::entered(
            crate::backend::redis::RedisBackend::connect_cluster(&nodes, &self.settings()),
        )
        .await?;
        let pending = self.shared_pending(&backend, &namespace);
        Ok(self.finish(Backend::Redis(backend), namespace, pending))
    }

    /// A cache on Redis at `url` that starts without Redis: it connects on
    /// first use, and again whenever the connection is lost. Until Redis
    /// answers, annotated functions run their bodies (the cache fails
    /// open), and invalidations are kept and retried (I9), so nothing
    /// named in one is served once Redis is back. This is how a service
    /// should build its cache: a Redis outage at deploy time must not stop
    /// the service, and falling back to [`memory`](Self::memory) instead
    /// would split the fleet's caches without a word.
    ///
    /// ```
    /// // Nothing listens on port 1: the cache still builds, and calls read through.
    /// let cache = cachette::Cache::builder().connect_lazy("redis://127.0.0.1:1")?;
    /// assert_eq!(cache.backend_name(), "redis");
    /// # Ok::<(), cachette::Error>(())
    /// ```
    ///
    /// # Errors
    /// Only for a malformed or unsupported URL ([`ErrorKind::Config`](crate::ErrorKind::Config));
    /// [`connect`](Self::connect) also fails when Redis cannot be reached.
    #[cfg(feature = "redis")]
    pub fn connect_lazy(self, url: &str) -> Result<Cache, Error> {
        let namespace = Namespace::new(self.namespace.clone())?;
        let backend = crate::backend::redis::RedisBackend::lazy(url, &self.settings())?;
        let pending = self.shared_pending(&backend, &namespace);
        Ok(self.finish(Backend::Redis(backend), namespace, pending))
    }

    /// Reaches an [Upstash](https://upstash.com) database over its REST API
    /// (HTTPS), as serverless functions do: no connection is kept open
    /// between calls. `url` and `token` are the database's
    /// `UPSTASH_REDIS_REST_URL` and `UPSTASH_REDIS_REST_TOKEN`.
    ///
    /// Entries, versions and invalidations are the same as over TCP, and a
    /// cache reaching the same database over `rediss://` shares them. A hit
    /// is one HTTPS request; concurrent calls share requests. What differs
    /// (no near-cache, replica acknowledgements only when required) is
    /// listed in the guide's `upstash` chapter.
    ///
    /// `http://` is accepted for loopback addresses only (a local REST
    /// server in development); anywhere else the token would cross the
    /// network in clear text.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), cachette::Error> {
    /// let cache = cachette::Cache::builder()
    ///     .namespace("shop")
    ///     .connect_upstash(
    ///         &std::env::var("UPSTASH_REDIS_REST_URL").unwrap(),
    ///         &std::env::var("UPSTASH_REDIS_REST_TOKEN").unwrap(),
    ///     )
    ///     .await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) for a malformed URL
    /// or token;
    /// [`ErrorKind::Auth`](crate::ErrorKind::Auth) when the token is
    /// refused; [`ErrorKind::Connection`](crate::ErrorKind::Connection) or
    /// [`ErrorKind::Timeout`](crate::ErrorKind::Timeout) when the server
    /// cannot be reached; [`ErrorKind::Backend`](crate::ErrorKind::Backend)
    /// when it does not report its run id (see the guide).
    #[cfg(feature = "upstash")]
    pub async fn connect_upstash(self, url: &str, token: &str) -> Result<Cache, Error> {
        let namespace = Namespace::new(self.namespace.clone())?;
        let backend = crate::background::entered(crate::backend::redis::RedisBackend::upstash(
            url,
            token,
            &self.settings(),
        ))
        .await?;
        let pending = self.shared_pending(&backend, &namespace);
        Ok(self.finish(Backend::Redis(backend), namespace, pending))
    }

    /// As [`connect_upstash`](Self::connect_upstash), without a request
    /// now: a cold start pays nothing, and until the server answers,
    /// annotated functions run their bodies (as with
    /// [`connect_lazy`](Self::connect_lazy)).
    ///
    /// # Errors
    /// Only for a malformed URL or token
    /// ([`ErrorKind::Config`](crate::ErrorKind::Config)).
    #[cfg(feature = "upstash")]
    pub fn connect_upstash_lazy(self, url: &str, token: &str) -> Result<Cache, Error> {
        let namespace = Namespace::new(self.namespace.clone())?;
        let backend =
            crate::backend::redis::RedisBackend::upstash_lazy(url, token, &self.settings())?;
        let pending = self.shared_pending(&backend, &namespace);
        Ok(self.finish(Backend::Redis(backend), namespace, pending))
    }

    /// The undelivered busts of every cache of this process on the same
    /// server, database and user (however the URL spells them) and
    /// namespace: one handle's pending bust blocks the entries it names for
    /// all of them (I9).
    #[cfg(feature = "redis")]
    fn shared_pending(
        &self,
        backend: &crate::backend::redis::RedisBackend,
        namespace: &Namespace,
    ) -> Arc<Pending> {
        Pending::shared(
            &backend.identity(),
            namespace.as_str(),
            self.max_pending_busts,
        )
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
            max_entry_bytes: self.max_value_bytes,
            near_cache: match self.near_cache {
                (true, bytes) if bytes > 0 => Some(bytes),
                _ => None,
            },
            keep_decoded: self.keep_decoded,
            scripting: if self.server_functions {
                crate::backend::redis::bust::Scripting::Functions
            } else {
                crate::backend::redis::bust::Scripting::Eval
            },
        }
    }

    fn finish(self, backend: Backend, namespace: Namespace, pending: Arc<Pending>) -> Cache {
        if !self.implicit {
            crate::global::built_explicitly();
        }
        Cache {
            inner: Arc::new(Inner {
                backend,
                namespace,
                codec: self.codec,
                version_ttl: self.version_ttl,
                counters: Counters::default(),
                flights: Flights::default(),
                refreshing: Mutex::new(HashMap::new()),
                refreshes_done: tokio::sync::Notify::new(),
                clock: self.clock,
                random: self.random,
                pending,
                breaker: Breaker::new(self.breaker.0, self.breaker.1),
                max_value_bytes: self.max_value_bytes,
                warned_too_large: WarnOnce::default(),
                signer: self.signer,
                log_full_names: self.log_full_names,
                keep_decoded: self.keep_decoded,
                warned_zero_ttl: WarnOnce::default(),
                warned_stale_on_error: Default::default(),
                warned_round_trip: WarnOnce::default(),
                compress_above: self.compress_above,
                derived: crate::derived::hints(),
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

    /// Reaches an Upstash database over its REST API with default
    /// settings; see [`CacheBuilder::connect_upstash`].
    ///
    /// # Errors
    /// As [`CacheBuilder::connect_upstash`].
    #[cfg(feature = "upstash")]
    pub async fn connect_upstash(url: &str, token: &str) -> Result<Cache, Error> {
        Cache::builder().connect_upstash(url, token).await
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
}
