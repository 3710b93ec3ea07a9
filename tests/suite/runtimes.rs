//! A cache may be used from any runtime, any number of them (I13): built on
//! one tokio runtime, used from others, current-thread ones included, whose
//! first runtime is then dropped or left idle. No connection, driver,
//! ordering round trip or bust delivery may wait on a runtime that nobody
//! drives.
//!
//! Every call under test runs on a thread of its own with a wall-clock
//! bound: a hang that never returns `Pending` cannot be caught by a tokio
//! timer.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use cachette::{cached, invalidates, Cache, CacheBuilder};
use tokio::runtime::Runtime;

use crate::support::proxy::FaultProxy;
use crate::support::{builder, RedisServer};

/// What the "database" holds: one number a write bumps.
#[derive(Clone, Default)]
pub(crate) struct Db(pub(crate) Arc<AtomicU64>);

#[cached(cache = cache, key = "doc:<id>", ttl = 600, unkeyed = [db])]
async fn doc(cache: &Cache, db: &Db, id: u64) -> u64 {
    let _ = id;
    db.0.load(SeqCst)
}

#[invalidates(cache = cache, keys = ["doc:<id>"])]
async fn update_doc(cache: &Cache, db: &Db, id: u64) -> Result<(), String> {
    let _ = id;
    db.0.fetch_add(1, SeqCst);
    Ok(())
}

pub(crate) fn current_thread() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

pub(crate) fn multi_thread() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Runs `f` on a thread of its own and waits for it at most `limit` of
/// wall-clock time.
fn bounded<T: Send + 'static>(
    limit: Duration,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("{what} did not return within {limit:?}: a hang"))
}

/// How a test's cache reaches its servers.
#[derive(Clone)]
enum Target {
    Single(String),
    #[cfg(feature = "cluster")]
    Cluster(Vec<String>),
    #[cfg(feature = "upstash")]
    Rest(String, String),
}

impl Target {
    async fn connect(&self, builder: CacheBuilder) -> Cache {
        match self {
            Target::Single(url) => builder.connect(url).await.unwrap(),
            #[cfg(feature = "cluster")]
            Target::Cluster(urls) => builder.connect_cluster(urls.clone()).await.unwrap(),
            #[cfg(feature = "upstash")]
            Target::Rest(url, token) => builder.connect_upstash(url, token).await.unwrap(),
        }
    }

    fn lazy(&self, builder: CacheBuilder) -> Cache {
        match self {
            Target::Single(url) => builder.connect_lazy(url).unwrap(),
            #[cfg(feature = "cluster")]
            Target::Cluster(_) => unreachable!("no lazy cluster"),
            #[cfg(feature = "upstash")]
            Target::Rest(url, token) => builder.connect_upstash_lazy(url, token).unwrap(),
        }
    }
}

/// Finding 1: a key kept in memory on runtime A, which is then dropped; a
/// call on runtime B returns (it spun forever, at 100% CPU).
fn a_kept_hit_survives_its_runtime(target: Target, lazy: bool) {
    let db = Db::default();
    db.0.store(1, SeqCst);
    let first = current_thread();
    let cache = {
        let (target, db) = (target.clone(), db.clone());
        bounded(
            Duration::from_secs(30),
            "the first runtime's reads",
            move || {
                first.block_on(async {
                    let cache = if lazy {
                        target.lazy(builder())
                    } else {
                        target.connect(builder()).await
                    };
                    for _ in 0..4 {
                        assert_eq!(doc(&cache, &db, 7).await, 1);
                    }
                    cache
                })
                // `first` is dropped here, with everything spawned on it.
            },
        )
    };
    let second = multi_thread();
    let c = cache.clone();
    let got = bounded(
        Duration::from_secs(20),
        "a call on a second runtime",
        move || {
            second.block_on(async {
                let mut got = Vec::new();
                for _ in 0..4 {
                    got.push(doc(&c, &db, 7).await);
                }
                got
            })
        },
    );
    assert_eq!(got, vec![1; 4], "{:?}", cache.stats());
    let stats = cache.stats();
    assert!(
        stats.hits >= 3,
        "the second runtime is served hits: {stats:?}"
    );
}

#[test]
fn a_kept_hit_survives_the_runtime_that_connected() {
    let server = RedisServer::start();
    a_kept_hit_survives_its_runtime(Target::Single(server.url()), false);
}

#[test]
fn a_kept_hit_survives_the_runtime_of_the_first_lazy_call() {
    let server = RedisServer::start();
    a_kept_hit_survives_its_runtime(Target::Single(server.url()), true);
}

/// Findings 2 and 3: the cache is built inside `block_on` of a
/// current-thread runtime A that stays alive but idle. On runtime B the
/// source changes and a bust returns; a reader elsewhere (its own
/// connections, through a proxy: another process, as far as Redis and
/// the pending busts are concerned) reads the new value within a bound,
/// and the cache keeps using Redis from B (hits, not errors).
fn a_bust_from_another_runtime_is_delivered_while_the_first_idles(target: Target, reader: Target) {
    let db = Db::default();
    db.0.store(1, SeqCst);
    let idle = current_thread();
    let writer = idle.block_on(target.connect(builder()));
    // `idle` stays alive, and nobody drives it from now on.
    let busy = multi_thread();
    let (w, d) = (writer.clone(), db.clone());
    bounded(
        Duration::from_secs(60),
        "the busy runtime's work",
        move || {
            busy.block_on(async move {
                let reader = reader.connect(builder()).await;
                for _ in 0..4 {
                    assert_eq!(doc(&reader, &d, 7).await, 1);
                }
                // The writer's own reads on B: served, and from Redis.
                for _ in 0..30 {
                    assert_eq!(doc(&w, &d, 7).await, 1);
                }
                let stats = w.stats();
                assert!(
                    stats.hits >= 20 && stats.errors == 0,
                    "a cache whose first runtime idles still uses Redis: {stats:?}"
                );
                update_doc(&w, &d, 7).await.unwrap();
                let deadline = std::time::Instant::now() + Duration::from_secs(10);
                loop {
                    if doc(&reader, &d, 7).await == 2 {
                        break;
                    }
                    assert!(
                        std::time::Instant::now() < deadline,
                        "the bust made on another runtime never reached Redis: writer {:?}",
                        w.stats()
                    );
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                assert_eq!(w.stats().pending_invalidations, 0, "{:?}", w.stats());
            })
        },
    );
    drop(idle);
}

#[test]
fn a_bust_from_another_runtime_reaches_redis_while_the_first_idles() {
    let server = RedisServer::start();
    // The proxy runs on worker threads of its own runtime.
    let rt = multi_thread();
    let proxy = rt.block_on(FaultProxy::start(server.port));
    a_bust_from_another_runtime_is_delivered_while_the_first_idles(
        Target::Single(server.url()),
        Target::Single(proxy.url()),
    );
    drop(rt);
}

#[cfg(feature = "cluster")]
#[test]
fn on_a_cluster_a_cache_is_used_from_any_runtime() {
    let cluster = crate::support::RedisCluster::start();
    a_kept_hit_survives_its_runtime(Target::Cluster(cluster.urls()), false);
    // The reader is a second cache with other seed nodes: another
    // identity, so its pending busts are not shared with the writer's.
    let urls = cluster.urls()[1..].to_vec();
    a_bust_from_another_runtime_is_delivered_while_the_first_idles(
        Target::Cluster(cluster.urls()),
        Target::Cluster(urls),
    );
}

#[cfg(feature = "upstash")]
#[test]
fn over_rest_a_cache_is_used_from_any_runtime() {
    let backing = crate::support::upstash::start();
    let rest = backing.rest();
    let target = Target::Rest(rest.url.clone(), rest.token.clone());
    a_kept_hit_survives_its_runtime(target.clone(), false);
    a_kept_hit_survives_its_runtime(target.clone(), true);
    // The proxy runs on worker threads of its own runtime.
    let rt = multi_thread();
    let proxy = rt.block_on(FaultProxy::start(backing.redis.port));
    a_bust_from_another_runtime_is_delivered_while_the_first_idles(
        target,
        Target::Single(proxy.url()),
    );
    drop(rt);
}

/// A connection that goes silent (its peer blackholed: no reply, no FIN,
/// no RST) only times out, and the client never reports it broken: the
/// session ends after repeated timeouts and a bound with nothing heard,
/// and the next call connects again and is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_only_times_out_is_replaced() {
    let server = RedisServer::start();
    let proxy = FaultProxy::start(server.port).await;
    let cache = crate::support::impatient(Duration::from_millis(200))
        .connect(&proxy.url())
        .await
        .unwrap();
    let db = Db::default();
    db.0.store(1, SeqCst);
    for _ in 0..4 {
        assert_eq!(doc(&cache, &db, 7).await, 1);
    }
    assert!(proxy.silence_open() >= 1);
    let hits = cache.stats().hits;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    // A different key every time: the near-cache cannot serve it.
    let mut id = 100;
    loop {
        id += 1;
        // Fails open while the connection is silent: the body's value.
        assert_eq!(doc(&cache, &db, id).await, 1);
        assert_eq!(doc(&cache, &db, id).await, 1);
        if cache.stats().hits > hits {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the silent connection was never replaced: {:?}",
            cache.stats()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A service with a stale-while-revalidate read, on an injected clock.
#[derive(Clone)]
struct Swr {
    cache: Cache,
    db: Db,
    /// Set to hold a refresh in its body.
    gate: Arc<tokio::sync::Notify>,
    held: Arc<std::sync::atomic::AtomicBool>,
}

impl Swr {
    #[cached(cache = self.cache, key = "swr:<id>", ttl = 60, strategy = "swr", stale_ttl = "10m", lock_ttl = "200ms")]
    async fn read(&self, id: u64) -> u64 {
        let _ = id;
        let v = self.db.0.load(SeqCst);
        if self.held.swap(false, SeqCst) {
            self.gate.notified().await;
        }
        v
    }
}

fn swr_service(clock: &crate::support::ManualClock) -> Swr {
    Swr {
        cache: Cache::builder().clock(clock.clone()).memory(),
        db: Db::default(),
        gate: Arc::default(),
        held: Arc::default(),
    }
}

/// A background refresh runs the application's code on the caller's
/// runtime. One started on a runtime that is then never driven again (it
/// never ends) no longer keeps another from starting once the lock's TTL
/// has passed: stale hits on another runtime refresh the entry.
#[test]
fn a_refresh_stranded_on_an_idle_runtime_does_not_stop_the_next() {
    let clock = crate::support::ManualClock::default();
    let s = swr_service(&clock);
    let main = multi_thread();
    s.db.0.store(1, SeqCst);
    assert_eq!(main.block_on(s.read(1)), 1);
    clock.advance(Duration::from_secs(61));
    s.db.0.store(2, SeqCst);
    // A stale hit on a runtime that is never driven again: its refresh is
    // spawned there, held in its body if it ever starts.
    s.held.store(true, SeqCst);
    let idle = current_thread();
    assert_eq!(idle.block_on(s.read(1)), 1, "served stale");
    let stats = s.cache.stats();
    // Within the lock's TTL, no second refresh.
    assert_eq!(main.block_on(s.read(1)), 1);
    assert_eq!(s.cache.stats().refreshes, stats.refreshes);
    // Past it, the next stale hit refreshes (the stranded one may hold the
    // fleet lock until its TTL, on the real clock: a bounded wait).
    clock.advance(Duration::from_secs(1));
    s.held.store(false, SeqCst);
    let refreshed = main.block_on(async {
        let tries = async {
            for _ in 0..200 {
                if s.read(1).await == 2 {
                    return true;
                }
                s.cache.refreshes_settled().await;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            false
        };
        tokio::time::timeout(Duration::from_secs(10), tries)
            .await
            .unwrap_or(false)
    });
    assert!(refreshed, "never refreshed: {:?}", s.cache.stats());
    drop(idle);
}

/// Inside `deferred`, cached calls store nothing; a stale hit there starts
/// no background refresh either (it would store outside the scope). The
/// next stale hit outside refreshes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_hit_inside_deferred_starts_no_refresh() {
    let clock = crate::support::ManualClock::default();
    let s = swr_service(&clock);
    s.db.0.store(1, SeqCst);
    assert_eq!(s.read(1).await, 1);
    clock.advance(Duration::from_secs(61));
    s.db.0.store(2, SeqCst);
    let before = s.cache.stats().refreshes;
    let served = cachette::deferred(async { s.read(1).await }).await;
    assert_eq!(served, 1, "served stale inside the scope");
    settled(&s.cache).await;
    assert_eq!(
        s.cache.stats().refreshes,
        before,
        "no refresh from inside the scope"
    );
    assert_eq!(s.read(1).await, 1, "still the stale entry");
    settled(&s.cache).await;
    assert_eq!(s.read(1).await, 2, "refreshed from outside the scope");
}

async fn settled(cache: &Cache) {
    tokio::time::timeout(Duration::from_secs(10), cache.refreshes_settled())
        .await
        .expect("the refreshes never settled");
}
