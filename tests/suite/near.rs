//! The near-cache (I12): hits served from process memory after an ordering
//! round trip, never older than what a read of Redis would return, for a
//! caller that started after another process's invalidation returned.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use cachette::{cached, Cache};

use crate::support::proxy::{FaultProxy, Mode};
use crate::support::{builder, eventually, RedisServer};

/// What the "database" holds: one number a write bumps.
#[derive(Clone, Default)]
struct Db(Arc<AtomicU64>);

impl Db {
    fn write(&self) -> u64 {
        self.0.fetch_add(1, SeqCst) + 1
    }
}

async fn read(cache: &Cache, db: &Db, key: &str, tag: &str) -> u64 {
    let db = db.clone();
    cache
        .get_or_fetch(key, &[tag], Duration::from_secs(600), async move {
            Ok::<_, String>(db.0.load(SeqCst))
        })
        .await
        .unwrap()
}

#[cached(cache = cache, key = "swr:<id>", ttl = 600, tags = ["t:<id>"], strategy = "swr", unkeyed = [db])]
async fn swr_read(cache: &Cache, db: &Db, id: u64) -> u64 {
    let _ = id;
    db.0.load(SeqCst)
}

#[cached(cache = cache, key = "lock:<id>", ttl = 600, tags = ["t:<id>"], strategy = "lock", unkeyed = [db])]
async fn lock_read(cache: &Cache, db: &Db, id: u64) -> u64 {
    let _ = id;
    db.0.load(SeqCst)
}

#[cached(cache = cache, key = "early:<id>", ttl = 600, tags = ["t:<id>"], strategy = "early", unkeyed = [db])]
async fn early_read(cache: &Cache, db: &Db, id: u64) -> u64 {
    let _ = id;
    db.0.load(SeqCst)
}

/// Reads until a read is served from memory (a fill's own invalidation
/// messages may keep the first lookups after it from being kept).
async fn warm<F, Fut>(cache: &Cache, mut read: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = u64>,
{
    let before = cache.stats().near_hits;
    for _ in 0..20 {
        read().await;
        if cache.stats().near_hits > before {
            return;
        }
    }
    panic!("never served from memory: {:?}", cache.stats());
}

/// A server, a cache A on it, a cache B on it through a fault proxy, and
/// the database, with "k" (tag "t") kept in B's memory.
async fn through_a_proxy() -> (RedisServer, FaultProxy, Cache, Cache, Db) {
    let server = RedisServer::start();
    let proxy = FaultProxy::start(server.port).await;
    let a = server.cache().await;
    let b = builder().connect(&proxy.url()).await.unwrap();
    let db = Db::default();
    db.write();
    warm(&b, || read(&b, &db, "k", "t")).await;
    (server, proxy, a, b, db)
}

/// A read served from memory: the hits grow, and Redis ran no lookup for
/// it (only the ordering `PING`).
async fn assert_near_hit(
    cache: &Cache,
    server: &RedisServer,
    f: impl std::future::Future<Output = u64>,
    want: u64,
) {
    let before = cache.stats().near_hits;
    server.reset_stats();
    assert_eq!(f.await, want);
    assert_eq!(cache.stats().near_hits, before + 1, "{:?}", cache.stats());
    let calls = server.command_calls();
    assert!(
        calls.iter().all(|(name, _)| name == "ping"),
        "a near hit read Redis: {calls:?}"
    );
}

/// Two processes' caches on two connections: B keeps an entry in memory,
/// A invalidates it (by key, by tag) and returns; a read on B that starts
/// afterwards gets the new value, for every strategy (aside, swr, lock,
/// early).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidation_by_another_cache_reaches_memory_before_the_next_read() {
    let server = RedisServer::start();
    let (a, b) = (server.cache().await, server.cache().await);
    let db = Db::default();
    db.write();

    // Key and tag busts, aside.
    for (round, bust_key) in [(0, true), (1, false)] {
        let key = format!("user:{round}");
        let tag = format!("org:{round}");
        // A miss fills; a later read of Redis is kept in memory.
        let now = db.0.load(SeqCst);
        warm(&b, || read(&b, &db, &key, &tag)).await;
        assert_near_hit(&b, &server, read(&b, &db, &key, &tag), now).await;
        let new = db.write();
        if bust_key {
            a.invalidate_keys([&key]).await.unwrap();
        } else {
            a.invalidate_tags([&tag]).await.unwrap();
        }
        assert_eq!(read(&b, &db, &key, &tag).await, new, "round {round}: stale");
        // A fill by A is what B reads next.
        let newer = db.write();
        a.invalidate_keys([&key]).await.unwrap();
        assert_eq!(read(&a, &db, &key, &tag).await, newer);
        assert_eq!(
            read(&b, &db, &key, &tag).await,
            newer,
            "round {round}: A's fill"
        );
    }

    // swr, lock and early entries.
    let now = db.0.load(SeqCst);
    warm(&b, || swr_read(&b, &db, 1)).await;
    warm(&b, || lock_read(&b, &db, 1)).await;
    warm(&b, || early_read(&b, &db, 1)).await;
    assert_near_hit(&b, &server, swr_read(&b, &db, 1), now).await;
    assert_near_hit(&b, &server, lock_read(&b, &db, 1), now).await;
    assert_near_hit(&b, &server, early_read(&b, &db, 1), now).await;
    let new = db.write();
    a.invalidate_tags(["t:1"]).await.unwrap();
    assert_eq!(
        swr_read(&b, &db, 1).await,
        new,
        "swr served an invalidated entry"
    );
    assert_eq!(
        lock_read(&b, &db, 1).await,
        new,
        "lock served an invalidated entry"
    );
    assert_eq!(
        early_read(&b, &db, 1).await,
        new,
        "early served an invalidated entry"
    );
}

/// B's connection delivers everything 200 ms late (the invalidation
/// message too). A busts and returns; a read on B that starts afterwards
/// waits for its ordering reply, which comes behind the message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_invalidation_message_is_waited_for() {
    let (_server, proxy, a, b, db) = through_a_proxy().await;

    proxy.set(Mode::DelayDown(Duration::from_millis(200)));
    db.write();
    a.invalidate_tags(["t"]).await.unwrap();
    assert_eq!(
        read(&b, &db, "k", "t").await,
        2,
        "served before the message"
    );
    proxy.set(Mode::Pass);
}

/// A caller that arrives while an ordering `PING` is on its way does not
/// use it: that `PING` may have run before an invalidation the caller must
/// see. The first caller's `PING` is held (its reply stalled), A busts, a
/// second caller starts: it waits for a `PING` of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_does_not_take_an_ordering_round_trip_sent_before_it() {
    let (_server, proxy, a, b, db) = through_a_proxy().await;
    let orderings = b.stats().near_orderings;

    // The first caller's PING goes out; its reply is held.
    proxy.set(Mode::StallDown);
    let first = tokio::spawn({
        let (b, db) = (b.clone(), db.clone());
        async move { read(&b, &db, "k", "t").await }
    });
    eventually("the first PING to be sent", || {
        b.stats().near_orderings > orderings
    })
    .await;
    // An invalidation that returns after that PING ran.
    db.write();
    a.invalidate_tags(["t"]).await.unwrap();
    let second = tokio::spawn({
        let (b, db) = (b.clone(), db.clone());
        async move { read(&b, &db, "k", "t").await }
    });
    eventually("the second PING to be sent", || {
        b.stats().near_orderings > orderings + 1
    })
    .await;
    proxy.set(Mode::Pass);
    let (first, second) = (first.await.unwrap(), second.await.unwrap());
    assert!(first == 1 || first == 2, "{first}");
    assert_eq!(second, 2, "the second caller took the first caller's PING");
}

/// A lost connection empties what it read; so does `FLUSHALL`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_connection_or_a_flush_empties_memory() {
    let (server, proxy, _, b, db) = through_a_proxy().await;
    let hits = b.stats().near_hits;
    assert!(hits >= 1);

    proxy.reset_all();
    eventually("the lost connection to empty memory", || {
        b.stats().near_flushes >= 1
    })
    .await;
    // The next reads reconnect and read Redis (no near hit on the old
    // connection's lookup).
    let answered = |b: &Cache| b.stats().hits + b.stats().misses;
    let before = answered(&b);
    while answered(&b) == before {
        assert_eq!(read(&b, &db, "k", "t").await, 1);
    }
    assert_eq!(
        b.stats().near_hits,
        hits,
        "a lookup of a lost connection was served"
    );
    // Kept again, on the new connection.
    warm(&b, || read(&b, &db, "k", "t")).await;

    // A flush: the entry is gone from Redis, and from memory.
    let flushes = b.stats().near_flushes;
    redis::cmd("FLUSHALL").exec(&mut server.raw()).unwrap();
    eventually("the flush message", || b.stats().near_flushes > flushes).await;
    db.write();
    assert_eq!(
        read(&b, &db, "k", "t").await,
        2,
        "served from memory after FLUSHALL"
    );
}

/// Redis tracks at most 10 names: it invalidates the ones it forgets, so
/// memory only ever loses entries. Writers and readers on many keys see no
/// stale read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tracking_table_that_overflows_only_costs_misses() {
    let server = RedisServer::start();
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("tracking-table-max-keys")
        .arg(10)
        .exec(&mut server.raw())
        .unwrap();
    let cache = server.cache().await;
    let work = crate::scenarios::workload::start(&cache, 40, 16);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let report = work.finish().await;
    crate::scenarios::workload::check("near-cache, tracking table of 10", 0, &report, &cache);
    assert!(cache.stats().near_invalidations > 0, "{:?}", cache.stats());
}

/// An ACL user that may not turn tracking on: one warning, and every call
/// reads Redis as without the near-cache.
#[tokio::test]
async fn a_server_that_refuses_tracking_turns_the_near_cache_off() {
    let server = RedisServer::start();
    server.add_documented_acl_user(&["-client|tracking"]);
    let logs = crate::support::logs::Logs::capture();
    let url = format!("redis://app:s3cret@127.0.0.1:{}", server.port);
    let cache = builder().connect(&url).await.unwrap();
    let db = Db::default();
    db.write();
    for _ in 0..3 {
        assert_eq!(read(&cache, &db, "k", "t").await, 1);
    }
    let stats = cache.stats();
    assert_eq!(
        (stats.hits, stats.misses, stats.near_hits),
        (2, 1, 0),
        "{stats:?}"
    );
    let text = logs.text();
    assert_eq!(text.matches("the near-cache is off").count(), 1, "{text}");
}

async fn read_tags(cache: &Cache, db: &Db, key: &str, tags: &[&str]) -> u64 {
    let db = db.clone();
    cache
        .get_or_fetch(key, tags, Duration::from_secs(600), async move {
            Ok::<_, String>(db.0.load(SeqCst))
        })
        .await
        .unwrap()
}

/// A kept lookup is served only to a call that would read the same names:
/// the same key under other tags is validated against those tags, as a
/// lookup of Redis would be.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_of_the_same_key_with_other_tags_is_checked_against_them() {
    let server = RedisServer::start();
    let (a, b) = (server.cache().await, server.cache().await);
    let db = Db::default();
    db.write();
    warm(&b, || read_tags(&b, &db, "k", &["org:1"])).await;
    let new = db.write();
    a.invalidate_tags(["org:2"]).await.unwrap();
    assert_eq!(
        read_tags(&b, &db, "k", &["org:2"]).await,
        new,
        "served what was read under another tag, after a bust of this one"
    );
}

/// A read that a test polls by hand.
type Started = std::pin::Pin<Box<dyn std::future::Future<Output = u64> + Send>>;

/// A future to poll once, then keep or drop.
fn started(f: impl std::future::Future<Output = u64> + Send + 'static) -> Started {
    Box::pin(f)
}

/// Polls each of `reads` once, in order; each must still be waiting.
async fn poll_once<'a>(
    reads: impl IntoIterator<Item = &'a mut Started>,
    context: impl Fn() -> String,
) {
    let mut reads: Vec<&mut Started> = reads.into_iter().collect();
    std::future::poll_fn(|cx| {
        for read in reads.iter_mut() {
            assert!(read.as_mut().poll(cx).is_pending(), "{}", context());
        }
        std::task::Poll::Ready(())
    })
    .await;
}

/// The caller that opened an ordering round trip stops (dropped, or kept
/// and never polled again) while others wait for it: they are served,
/// without errors, within the command timeout; later reads of the
/// connection are served from memory as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_that_stops_waiting_holds_up_nobody() {
    let server = RedisServer::start();
    let proxy = FaultProxy::start(server.port).await;
    // Generous: a loaded machine must not time the round trips out while
    // the proxy holds them.
    let timeout = Duration::from_secs(2);
    let b = Cache::builder()
        .command_timeout(timeout)
        .connect(&proxy.url())
        .await
        .unwrap();
    let db = Db::default();
    db.write();
    warm(&b, || read(&b, &db, "k", "t")).await;
    let before = b.stats();
    for drop_it in [true, false] {
        // Replies are held while the first caller opens the round trip and
        // five more join it.
        proxy.set(Mode::StallDown);
        let mut first = started({
            let (b, db) = (b.clone(), db.clone());
            async move { read(&b, &db, "k", "t").await }
        });
        let mut others: Vec<_> = (0..5)
            .map(|_| {
                let (b, db) = (b.clone(), db.clone());
                started(async move { read(&b, &db, "k", "t").await })
            })
            .collect();
        poll_once(std::iter::once(&mut first).chain(others.iter_mut()), || {
            format!("{:?}", b.stats())
        })
        .await;
        let kept = if drop_it {
            drop(first);
            None
        } else {
            Some(first)
        };
        proxy.set(Mode::Pass);
        for f in others {
            let got = tokio::time::timeout(timeout * 3, f).await;
            assert_eq!(got, Ok(1), "drop_it {drop_it}: a caller was held up");
        }
        drop(kept);
    }
    assert_eq!(b.stats().errors, before.errors, "{:?}", b.stats());
    // A caller dropped right after it opened a round trip. The reply is
    // held while it is polled: on a loaded machine the round trip could
    // otherwise be answered before that one poll ends.
    proxy.set(Mode::StallDown);
    let mut first = started({
        let (b, db) = (b.clone(), db.clone());
        async move { read(&b, &db, "k", "t").await }
    });
    poll_once([&mut first], || format!("{:?}", b.stats())).await;
    drop(first);
    proxy.set(Mode::Pass);
    for _ in 0..10 {
        assert_eq!(read(&b, &db, "k", "t").await, 1);
    }
    let after = b.stats();
    assert_eq!(after.errors, before.errors, "{after:?}");
    assert!(!after.breaker_open, "{after:?}");
    assert!(after.near_hits >= before.near_hits + 10, "{after:?}");
}

/// A value of a type whose clone shares state (`Arc<Mutex<_>>`): with
/// `keep_decoded(false)` every hit decodes its own, on both backends.
#[derive(Clone, Debug)]
pub struct Shared(Arc<std::sync::Mutex<u64>>);

impl serde::Serialize for Shared {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(*self.0.lock().unwrap())
    }
}

impl<'de> serde::Deserialize<'de> for Shared {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = <u64 as serde::Deserialize>::deserialize(d)?;
        Ok(Shared(Arc::new(std::sync::Mutex::new(n))))
    }
}

#[cached(cache = cache, key = "shared:<id>", ttl = 600)]
async fn shared_read(cache: &Cache, id: u64) -> Shared {
    let _ = id;
    Shared(Arc::new(std::sync::Mutex::new(1)))
}

/// Whether one caller's change to its value reaches the next hit.
async fn hits_share_state(cache: &Cache) -> bool {
    for _ in 0..6 {
        assert_eq!(*shared_read(cache, 7).await.0.lock().unwrap(), 1);
    }
    *shared_read(cache, 7).await.0.lock().unwrap() = 999;
    *shared_read(cache, 7).await.0.lock().unwrap() == 999
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_kept_decoded_can_be_turned_off() {
    let server = RedisServer::start();
    let near = builder()
        .keep_decoded(false)
        .connect(&server.url())
        .await
        .unwrap();
    assert!(!hits_share_state(&near).await, "near-cache");
    assert!(near.stats().near_hits > 0, "{:?}", near.stats());
    let memory = Cache::builder().keep_decoded(false).memory();
    assert!(!hits_share_state(&memory).await, "embedded backend");
    // The default keeps them (documented on `keep_decoded`).
    assert!(hits_share_state(&Cache::memory()).await);
}

/// A round trip opened by a caller on a runtime that then stops running (a
/// current-thread runtime of a sync wrapper whose `block_on` returned after
/// one poll) is sent from the runtime that drives the connection: a caller
/// of another runtime that joins it is served.
#[test]
fn a_round_trip_opened_on_a_runtime_that_stops_holds_up_nobody() {
    let main = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = RedisServer::start();
    let db = Db::default();
    db.write();
    let (proxy, cache) = main.block_on(async {
        // Through a proxy, so that the round trip the side runtime opens
        // has its reply held: it cannot come back within that one poll.
        let proxy = FaultProxy::start(server.port).await;
        let cache = Cache::builder()
            .command_timeout(Duration::from_secs(2))
            .connect(&proxy.url())
            .await
            .unwrap();
        warm(&cache, || read(&cache, &db, "k", "t")).await;
        (proxy, cache)
    });
    let side = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    proxy.set(Mode::StallDown);
    side.block_on(async {
        let mut once = started({
            let (cache, db) = (cache.clone(), db.clone());
            async move { read(&cache, &db, "k", "t").await }
        });
        poll_once([&mut once], || {
            format!("the read was served at once: {:?}", cache.stats())
        })
        .await;
    });
    proxy.set(Mode::Pass);
    let got = main.block_on(async {
        tokio::time::timeout(Duration::from_secs(5), read(&cache, &db, "k", "t")).await
    });
    assert_eq!(got, Ok(1), "{:?}", cache.stats());
    drop(side);
}
