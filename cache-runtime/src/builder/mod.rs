//! Settings of a cache (`CacheBuilder`); building one on a backend is in
//! `connect.rs`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::codec::Codec;
use crate::policy::{Clock, FastRandom, Random, SystemClock};
use crate::replicas::ReplicaAcks;
use crate::signing::Signer;

mod connect;

/// Settings for a [`Cache`](crate::Cache), from
/// [`Cache::builder`](crate::Cache::builder).
///
/// ```
/// use std::time::Duration;
/// let cache = cachette::Cache::builder()
///     .namespace("shop")
///     .max_memory_bytes(256 << 20)
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
    /// The listener of `on_event`.
    events: crate::events::Listener,
    /// `disabled`: every call runs its body.
    disabled: bool,
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    server_functions: bool,
    replica_acks: ReplicaAcks,
    replica_ack_timeout: Duration,
    /// Whether the near-cache is on, and its budget in bytes.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    near_cache: (bool, u64),
    /// The near-cache's lease (zero: none).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    near_cache_lease: Duration,
    /// Busts take a missing namespace lease for a lost one.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    assume_lease_readers: bool,
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    monotonic: Arc<dyn crate::policy::Monotonic>,
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
            events: crate::events::Listener::default(),
            disabled: false,
            server_functions: false,
            replica_acks: ReplicaAcks::Auto,
            replica_ack_timeout: Duration::from_millis(100),
            near_cache: (true, DEFAULT_NEAR_CACHE_BYTES),
            near_cache_lease: Duration::ZERO,
            assume_lease_readers: false,
            monotonic: Arc::new(crate::policy::SystemMonotonic),
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
    pub fn max_memory_bytes(mut self, bytes: u64) -> Self {
        self.max_memory = bytes;
        self
    }

    /// The former name of [`max_memory_bytes`](Self::max_memory_bytes).
    #[deprecated(
        since = "0.1.0",
        note = "renamed `max_memory_bytes`, like the other byte sizes"
    )]
    pub fn max_memory(self, bytes: u64) -> Self {
        self.max_memory_bytes(bytes)
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
    pub fn max_pending_invalidations(mut self, names: usize) -> Self {
        self.max_pending_busts = names;
        self
    }

    /// The former name of
    /// [`max_pending_invalidations`](Self::max_pending_invalidations).
    #[deprecated(
        since = "0.1.0",
        note = "renamed `max_pending_invalidations`: the API says \"invalidation\" throughout"
    )]
    pub fn max_pending_busts(self, names: usize) -> Self {
        self.max_pending_invalidations(names)
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

    /// Calls `listener` with every [`Event`](crate::Event): hits, misses,
    /// stale values served, fills, busts (sent, failed, kept for retry,
    /// delivered), the breaker opening and closing, and the near-cache
    /// emptied. For counting, tests ([`testing::Recorder`](crate::testing::Recorder))
    /// and alerts.
    ///
    /// The listener runs on the task that raised the event, right after
    /// the step it reports, holding none of the cache's locks: its cost is
    /// added to the call's, so keep it short (bump a counter, send on a
    /// channel with `try_send`), and never block or wait in it. A listener
    /// that panics is caught (warned about once); the call goes on. With
    /// none, an event costs one branch.
    ///
    /// Each call adds a listener: every one is told, in the order they
    /// were added (a metrics listener and a test's
    /// [`Recorder`](crate::testing::Recorder) both hear every event).
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use std::sync::Arc;
    /// use cachette::{Cache, EventKind};
    ///
    /// let fills = Arc::new(AtomicU64::new(0));
    /// let counted = fills.clone();
    /// let cache = Cache::builder()
    ///     .on_event(move |event| {
    ///         if event.kind == EventKind::Fill {
    ///             counted.fetch_add(1, Ordering::Relaxed);
    ///         }
    ///     })
    ///     .memory();
    /// ```
    pub fn on_event(
        mut self,
        listener: impl Fn(&crate::Event<'_>) + Send + Sync + 'static,
    ) -> Self {
        self.events = self.events.and(Arc::new(listener));
        self
    }

    /// A cache that caches nothing: every call runs its body, nothing is
    /// read or stored; invalidations are still sent to its backend (on
    /// Redis, they bust the other processes' entries). For
    /// tests of code that takes a cache, and for turning caching off by
    /// configuration. Events are still raised (misses are `Bypass`).
    pub fn disabled(mut self) -> Self {
        self.disabled = true;
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
    /// (default 64 MiB); past it, the least used are dropped. To turn the
    /// near-cache off, use [`near_cache(false)`](Self::near_cache): a
    /// budget of `0` still does, as it did, but says once (a warning) that
    /// this spelling is deprecated.
    #[cfg(feature = "redis")]
    pub fn near_cache_bytes(mut self, bytes: u64) -> Self {
        self.near_cache.1 = bytes;
        self
    }

    /// Serves near-cache hits with no round trip at all while a recent
    /// one is known: a lease read. Off by default (`Duration::ZERO`).
    ///
    /// Without a lease each hit from the near-cache waits for an ordering
    /// round trip sent after it arrived (shared by every caller waiting
    /// then). With a lease of Δ, a hit is served at once while the last
    /// such round trip on its connection was sent less than Δ ago, and a
    /// hit with less than half of it left sends one refresh in the
    /// background (at most one per connection in flight: about 2/Δ
    /// round trips a second on a busy connection, none on an idle one).
    /// On a Redis Cluster, every slot a hit read must be confirmed so on
    /// the connection it was read on.
    ///
    /// What it costs: **every invalidation of the namespace, from every
    /// process, then returns only Δ·1.002 + 0.1 ms after Redis
    /// acknowledged it**, so that no read which starts after it returned
    /// can be served from an older confirmation; and **about 1.05 s** (the
    /// longest lease) for 2.2 s after the namespace's lease is made, on
    /// the first deploy or after it was lost from Redis. The first process
    /// with a lease that finds the namespace's missing (a reader's round
    /// trip, or a bust) makes it its own; a process with a larger lease
    /// serves hits under the namespace's, and says so once in the log.
    /// Every bust reads it back and waits for it.
    ///
    /// What it assumes: clocks that run at the right rate to within
    /// 500 ppm (NTP slews the monotonic clock by at most that), a machine
    /// that does not suspend, and every writer of the namespace on a
    /// version of cachette that waits and knows leases are in use: one
    /// with a lease of its own (this option, with its near-cache off if it
    /// reads nothing) or
    /// [`assume_lease_readers`](Self::assume_lease_readers). See
    /// `guide::redis`, "Lease reads", for the upgrade rule. At most
    /// ~1.05 s; a longer lease is cut to that (with a warning). No effect
    /// on the embedded backend, nor on a REST connection's reads (it has
    /// no near-cache); its busts wait like any other.
    #[cfg(feature = "redis")]
    pub fn near_cache_lease(mut self, lease: Duration) -> Self {
        self.near_cache_lease = lease;
        self
    }

    /// This process busts a namespace whose readers may use
    /// [`near_cache_lease`](Self::near_cache_lease), though it has no lease
    /// of its own (a job, a writer-only service; `cachette bust` does
    /// this). Its busts then take a namespace lease they find missing, or
    /// cannot read, for one that was lost while readers still use it, and
    /// wait the longest lease there is (about 1.05 s) rather than nothing.
    /// A process with a lease of its own, or that has read the namespace's
    /// once, does so already. Without it, a bust that finds the lease
    /// missing waits nothing: right where no reader uses a lease, but a
    /// read can be stale if the lease was just lost (`guide::redis`,
    /// "Lease reads").
    #[cfg(feature = "redis")]
    pub fn assume_lease_readers(mut self) -> Self {
        self.assume_lease_readers = true;
        self
    }

    /// The monotonic clock lease reads measure with (the system's by
    /// default): a test injects one to move time by hand.
    pub fn monotonic_clock(mut self, clock: impl crate::policy::Monotonic) -> Self {
        self.monotonic = Arc::new(clock);
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
}
