//! Building a cache on a backend: the embedded one, a single Redis, a
//! Redis Cluster or Upstash's REST API, each reached now or on first use.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::CacheBuilder;
use crate::backend::{memory::MemoryBackend, Backend};
use crate::breaker::Breaker;
use crate::cache::{Cache, Inner, WarnOnce};
#[cfg(feature = "redis")]
use crate::error::Error;
use crate::flight::Flights;
use crate::names::Namespace;
use crate::pending::Pending;
use crate::stats::Counters;

impl CacheBuilder {
    /// Builds a cache on the embedded backend.
    pub fn memory(self) -> Cache {
        #[cfg(feature = "redis")]
        if !self.near_cache_lease.is_zero() {
            crate::loud::warn_once("lease on memory", "", || {
                "cachette: near_cache_lease has no effect on the embedded backend (a hit is served from memory already, and busts reach it at once)".into()
            });
        }
        let backend = Backend::memory(MemoryBackend::new(self.max_memory, self.keep_decoded));
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
        let backend = crate::background::entered(Backend::connect(url, &self.settings())).await?;
        Ok(self.finish_shared(backend, namespace))
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
        let backend =
            crate::background::entered(Backend::connect_cluster(&nodes, &self.settings())).await?;
        Ok(self.finish_shared(backend, namespace))
    }

    /// As [`connect_cluster`](Self::connect_cluster), without reaching the
    /// cluster now: it reads the slot map on first use, and until the
    /// cluster answers, annotated functions run their bodies (as with
    /// [`connect_lazy`](Self::connect_lazy)).
    ///
    /// # Errors
    /// Only for no node, or a malformed or unsupported URL
    /// ([`ErrorKind::Config`](crate::ErrorKind::Config)).
    #[cfg(feature = "cluster")]
    pub fn connect_cluster_lazy<I, S>(self, nodes: I) -> Result<Cache, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let namespace = Namespace::new(self.namespace.clone())?;
        let nodes: Vec<String> = nodes.into_iter().map(|n| n.as_ref().to_string()).collect();
        let backend = Backend::connect_cluster_lazy(&nodes, &self.settings())?;
        Ok(self.finish_shared(backend, namespace))
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
        let backend = Backend::connect_lazy(url, &self.settings())?;
        Ok(self.finish_shared(backend, namespace))
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
        let backend =
            crate::background::entered(Backend::upstash(url, token, &self.settings())).await?;
        Ok(self.finish_shared(backend, namespace))
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
        let backend = Backend::upstash_lazy(url, token, &self.settings())?;
        Ok(self.finish_shared(backend, namespace))
    }

    /// The undelivered busts of every cache of this process on the same
    /// server, database and user (however the URL spells them) and
    /// namespace: one handle's pending bust blocks the entries it names for
    /// all of them (I9).
    #[cfg(feature = "redis")]
    fn finish_shared(self, backend: Backend, namespace: Namespace) -> Cache {
        let pending = match backend.identity() {
            Some(identity) => {
                Pending::shared(&identity, namespace.as_str(), self.max_pending_busts)
            }
            None => Pending::new(self.max_pending_busts),
        };
        self.finish(backend, namespace, pending)
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
                (true, 0) => {
                    crate::loud::warn_once("near_cache_bytes(0)", "", || {
                        "cachette: near_cache_bytes(0) turns the near-cache off, a deprecated spelling; write near_cache(false)".into()
                    });
                    None
                }
                (true, bytes) => Some(bytes),
                (false, _) => None,
            },
            keep_decoded: self.keep_decoded,
            lease: Arc::new(crate::backend::redis::near::lease::Lease::new(
                self.near_cache_lease,
                self.assume_lease_readers,
                crate::names::lease_name(&Namespace::unchecked(self.namespace.clone())),
                self.monotonic.clone(),
            )),
            events: self.events.clone(),
            scripting: if self.server_functions {
                crate::backend::redis::scripts::Scripting::Functions
            } else {
                crate::backend::redis::scripts::Scripting::Eval
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
                events: self.events,
                disabled: self.disabled,
                warned_zero_ttl: WarnOnce::default(),
                warned_unasked: WarnOnce::default(),
                loaders: Default::default(),
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

    /// A cache on Redis at `url` with default settings, reached on first
    /// use; see [`CacheBuilder::connect_lazy`], the way a service should
    /// build its cache.
    ///
    /// # Errors
    /// As [`CacheBuilder::connect_lazy`].
    #[cfg(feature = "redis")]
    pub fn connect_lazy(url: &str) -> Result<Cache, Error> {
        Cache::builder().connect_lazy(url)
    }

    /// A cache on a Redis Cluster with default settings, reached on first
    /// use; see [`CacheBuilder::connect_cluster_lazy`].
    ///
    /// # Errors
    /// As [`CacheBuilder::connect_cluster_lazy`].
    #[cfg(feature = "cluster")]
    pub fn connect_cluster_lazy<I, S>(nodes: I) -> Result<Cache, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Cache::builder().connect_cluster_lazy(nodes)
    }

    /// A cache on an Upstash database with default settings, reached on
    /// first use; see [`CacheBuilder::connect_upstash_lazy`].
    ///
    /// # Errors
    /// As [`CacheBuilder::connect_upstash_lazy`].
    #[cfg(feature = "upstash")]
    pub fn connect_upstash_lazy(url: &str, token: &str) -> Result<Cache, Error> {
        Cache::builder().connect_upstash_lazy(url, token)
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
