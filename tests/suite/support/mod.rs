//! The test harness: real redis-servers and a Redis Cluster on loopback
//! (`server`, `cluster`), a proxy that injects faults between a cache and
//! its server (`proxy`), child processes of this test binary (`child`), a
//! fake data source whose reads can be held (`source`), and the helpers
//! every test uses below.
//!
//! Every server is started by the test that needs it and stopped when it
//! is dropped; a missing `redis-server` fails the test with install
//! instructions.

pub mod child;
#[cfg(feature = "cluster")]
pub mod cluster;
pub mod logs;
pub mod proxy;
pub mod server;
pub mod source;
#[cfg(feature = "upstash")]
pub mod upstash;

use std::time::{Duration, Instant};

use cachette::{Cache, CacheBuilder};

#[cfg(feature = "cluster")]
pub use self::cluster::RedisCluster;
pub use self::server::RedisServer;

/// The builder of the tests' caches: timeouts generous enough for a loaded
/// two-core machine. Tests that are about timeouts set their own on top.
pub fn builder() -> CacheBuilder {
    Cache::builder().command_timeout(Duration::from_secs(5))
}

/// A builder that gives up on an unreachable or silent Redis quickly.
pub fn impatient(timeout: Duration) -> CacheBuilder {
    Cache::builder()
        .command_timeout(timeout)
        .connect_timeout(timeout)
}

/// What a test's cache stands on: a Redis server, and the REST server in
/// front of it for Upstash's protocol. Kept as long as the test.
pub struct Backing {
    pub redis: RedisServer,
    #[cfg(feature = "upstash")]
    pub rest: Option<cachette_rest_server::RestServer>,
}

impl From<RedisServer> for Backing {
    fn from(redis: RedisServer) -> Backing {
        Backing {
            redis,
            #[cfg(feature = "upstash")]
            rest: None,
        }
    }
}

/// A cache on each backend, each on fresh servers: the embedded one,
/// Redis, and (with the `upstash` feature) Redis through Upstash's REST
/// protocol (see `upstash.rs`).
pub async fn each_backend() -> Vec<(Cache, Option<Backing>)> {
    each_backend_from(builder()).await
}

/// As [`each_backend`], every cache built from `builder`.
pub async fn each_backend_from(builder: CacheBuilder) -> Vec<(Cache, Option<Backing>)> {
    let server = RedisServer::start();
    let redis = builder.clone().connect(&server.url()).await.unwrap();
    #[allow(unused_mut)]
    let mut all = vec![
        (builder.clone().memory(), None),
        (redis, Some(Backing::from(server))),
    ];
    #[cfg(feature = "upstash")]
    all.push(upstash::cache_from(builder).await);
    all
}

/// A clock the test moves by hand.
#[derive(Clone, Default)]
pub struct ManualClock(pub std::sync::Arc<std::sync::atomic::AtomicU64>);

impl ManualClock {
    pub fn advance(&self, by: Duration) {
        self.0
            .fetch_add(by.as_millis() as u64, std::sync::atomic::Ordering::SeqCst);
    }
}

impl cachette::Clock for ManualClock {
    fn now_millis(&self) -> u64 {
        1_000_000 + self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// A "random" source that always draws the same number.
pub struct FixedRandom(pub f64);

impl cachette::Random for FixedRandom {
    fn unit(&self) -> f64 {
        self.0
    }
}

/// Polls `done` until it holds, yielding between tries; panics after 30 s.
pub async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Waits until every undelivered bust of `cache` was delivered.
pub async fn delivered(cache: &Cache) {
    eventually("every pending bust to be delivered", || {
        cache.stats().pending_invalidations == 0
    })
    .await;
}

/// The one backend name on `server` that matches `pattern` (a `KEYS`
/// pattern): tests find names the way an operator would, instead of
/// spelling out the layout, which carries function ids and server run ids.
pub fn only_name(server: &RedisServer, pattern: &str) -> String {
    let mut found: Vec<String> = redis::cmd("KEYS")
        .arg(pattern)
        .query(&mut server.raw())
        .unwrap();
    assert_eq!(found.len(), 1, "names matching {pattern}: {found:?}");
    found.pop().unwrap()
}

/// The pattern of the names of `kind` (`'e'`, `'l'`, `'k'` or `'t'`) for
/// `text` in the `cachette` namespace, from the library that writes them.
pub fn name_pattern(kind: char, text: &str) -> String {
    cachette::__private::name_pattern("cachette", kind, text)
}

/// The name of the one entry stored under `key` in the `cachette`
/// namespace (whatever function owns it).
pub fn entry_name(server: &RedisServer, key: &str) -> String {
    only_name(server, &name_pattern('e', key))
}

/// The name of the version of `tag` in the `cachette` namespace.
pub fn tag_version_name(server: &RedisServer, tag: &str) -> String {
    only_name(server, &name_pattern('t', tag))
}

/// The name of the version of `key` in the `cachette` namespace.
pub fn key_version_name(server: &RedisServer, key: &str) -> String {
    only_name(server, &name_pattern('k', key))
}
