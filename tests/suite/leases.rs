//! Lease reads (`CacheBuilder::near_cache_lease`): near-cache hits with no
//! round trip while a recent one is known, and busts that wait the lease
//! out, so that a read which starts after a bust returned still never sees
//! an older value. Time is injected where it is the point.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cachette::{Cache, Stats};

use crate::support::proxy::{FaultProxy, Mode};
use crate::support::{builder, eventually, tag_version_name, RedisServer};

/// A monotonic clock the test moves by hand.
#[derive(Clone)]
struct Hand(Arc<Mutex<Instant>>);

impl Hand {
    fn new() -> Hand {
        Hand(Arc::new(Mutex::new(Instant::now())))
    }
    fn advance(&self, by: Duration) {
        *self.0.lock().unwrap() += by;
    }
}

impl cachette::Monotonic for Hand {
    fn now(&self) -> Instant {
        *self.0.lock().unwrap()
    }
}

/// A cache at `url` reading under `lease`, on a clock moved by hand.
async fn by_hand(url: &str, lease: Duration) -> (Cache, Hand) {
    let hand = Hand::new();
    let cache = builder()
        .near_cache_lease(lease)
        .monotonic_clock(hand.clone())
        .connect(url)
        .await
        .unwrap();
    (cache, hand)
}

#[derive(Clone, Default)]
struct Db(Arc<AtomicU64>);

async fn read(cache: &Cache, db: &Db) -> u64 {
    let db = db.clone();
    cache
        .get_or_fetch("k", &["t"], Duration::from_secs(600), async move {
            Ok::<_, String>(db.0.load(SeqCst))
        })
        .await
        .unwrap()
}

const LEASE: Duration = Duration::from_millis(2);

/// Reads until one is served under a lease.
async fn until_a_lease_hit(cache: &Cache, db: &Db) {
    let before = cache.stats().near_lease_hits;
    for _ in 0..50 {
        read(cache, db).await;
        if cache.stats().near_lease_hits > before {
            return;
        }
    }
    panic!("never served under a lease: {:?}", cache.stats());
}

fn counts(s: &Stats) -> (u64, u64, u64) {
    (s.near_hits, s.near_lease_hits, s.near_orderings)
}

/// A hit is served under a lease with no round trip while its
/// confirmation is at most the lease old, and never once it is older.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confirmation_older_than_the_lease_is_never_used() {
    let server = RedisServer::start();
    let (b, hand) = by_hand(&server.url(), LEASE).await;
    let db = Db::default();
    until_a_lease_hit(&b, &db).await;

    // The clock stands still: hits need no round trip.
    server.reset_stats();
    let (hits, leased, orderings) = counts(&b.stats());
    for _ in 0..10 {
        read(&b, &db).await;
    }
    assert_eq!(counts(&b.stats()), (hits + 10, leased + 10, orderings));
    assert!(
        server.command_calls().is_empty(),
        "a lease hit reached Redis: {:?}",
        server.command_calls()
    );

    // Just past the lease: the next hit waits for a round trip.
    hand.advance(LEASE + Duration::from_micros(1));
    let (hits, leased, orderings) = counts(&b.stats());
    read(&b, &db).await;
    let after = counts(&b.stats());
    assert_eq!(after.0, hits + 1, "{:?}", b.stats());
    assert_eq!(
        after.1, leased,
        "a confirmation older than the lease was used"
    );
    assert_eq!(after.2, orderings + 1);
    // Its reply is a fresh confirmation, taken at the hand's time.
    read(&b, &db).await;
    assert_eq!(b.stats().near_lease_hits, leased + 1);
}

/// One refresh at a time: with its reply held, every hit is still served
/// under the lease and no second refresh starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_refresh_round_trip_is_single_flight() {
    let server = RedisServer::start();
    let proxy = FaultProxy::start(server.port).await;
    let (b, hand) = by_hand(&proxy.url(), LEASE).await;
    let db = Db::default();
    until_a_lease_hit(&b, &db).await;
    let refreshes = b.stats().near_lease_refreshes;

    // Less than half the lease left: a hit starts a refresh; its reply is
    // held.
    hand.advance(LEASE * 3 / 4);
    proxy.set(Mode::StallDown);
    let leased = b.stats().near_lease_hits;
    let calls: Vec<_> = (0..64)
        .map(|_| {
            let (b, db) = (b.clone(), db.clone());
            tokio::spawn(async move { read(&b, &db).await })
        })
        .collect();
    for call in calls {
        call.await.unwrap();
    }
    let s = b.stats();
    assert_eq!(s.near_lease_hits, leased + 64, "{s:?}");
    assert_eq!(s.near_lease_refreshes, refreshes + 1, "{s:?}");

    proxy.set(Mode::Pass);
}

/// A reconnect drops the confirmation: the first hit on the new connection
/// waits for a round trip, with the clock standing still.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_drops_the_confirmation() {
    let server = RedisServer::start();
    let proxy = FaultProxy::start(server.port).await;
    let (b, _still) = by_hand(&proxy.url(), LEASE).await;
    let db = Db::default();
    until_a_lease_hit(&b, &db).await;
    let flushes = b.stats().near_flushes;
    proxy.reset_all();
    eventually("the lost connection", || b.stats().near_flushes > flushes).await;
    // Read until a hit from memory on the new connection: not under a
    // lease, though the clock has not moved.
    let (hits, leased, _) = counts(&b.stats());
    while b.stats().near_hits == hits {
        read(&b, &db).await;
    }
    assert_eq!(
        b.stats().near_lease_hits,
        leased,
        "a confirmation outlived its connection"
    );
}

/// A reader whose own lease is larger than the namespace's uses the
/// namespace's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_with_a_larger_lease_uses_the_namespace_s() {
    let server = RedisServer::start();
    let name = cachette::admin::lease_name("cachette");
    redis::cmd("ZADD")
        .arg(&name)
        .arg(2_000)
        .arg(2_000)
        .exec(&mut server.raw())
        .unwrap();
    let (b, hand) = by_hand(&server.url(), Duration::from_millis(50)).await;
    let db = Db::default();
    until_a_lease_hit(&b, &db).await;
    hand.advance(Duration::from_millis(3));
    let leased = b.stats().near_lease_hits;
    read(&b, &db).await;
    assert_eq!(
        b.stats().near_lease_hits,
        leased,
        "a 3 ms old confirmation used under a 2 ms namespace lease"
    );
}

/// Every bust waits the namespace's lease after Redis acknowledged it,
/// even from a process with no lease of its own: with the writer's replies
/// delayed 20 ms, it returns no sooner than 20 ms + the wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bust_returns_no_sooner_than_its_wait_after_the_acknowledgement() {
    let server = RedisServer::start();
    let lease = Duration::from_millis(5);
    let reader = builder()
        .near_cache_lease(lease)
        .connect(&server.url())
        .await
        .unwrap();
    let db = Db::default();
    until_a_lease_hit(&reader, &db).await;
    let proxy = FaultProxy::start(server.port).await;
    let writer = builder()
        .near_cache(false)
        .connect(&proxy.url())
        .await
        .unwrap();
    proxy.set(Mode::DelayDown(Duration::from_millis(20)));
    let wait = lease + lease / 500 + Duration::from_micros(100);
    for _ in 0..3 {
        let started = Instant::now();
        writer.invalidate_tags(["t"]).await.unwrap();
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(20) + wait,
            "returned {took:?} after the call, less than the acknowledgement's delay plus {wait:?}"
        );
    }
}

/// The checker of the two-process tests: a reader process B with a lease
/// behind a proxy that delays what it receives by `delay`, reading all the
/// time; a writer process A that writes the database, then busts (with
/// `bust`), then marks the write complete. Returns the stale reads: reads
/// that started after a write was complete and returned an older value.
async fn stale_reads<F, Fut>(delay: Duration, lease: Duration, rounds: u64, bust: F) -> u64
where
    F: Fn(Cache, RedisServer) -> Fut,
    Fut: std::future::Future<Output = RedisServer>,
{
    let mut server = RedisServer::start();
    let proxy = FaultProxy::start(server.port).await;
    let a = builder()
        .near_cache(false)
        .connect(&server.url())
        .await
        .unwrap();
    let b = builder()
        .near_cache_lease(lease)
        .connect(&proxy.url())
        .await
        .unwrap();
    let db = Db::default();
    until_a_lease_hit(&b, &db).await;
    proxy.set(Mode::DelayDown(delay));
    let complete = Arc::new(AtomicU64::new(0));
    let stale = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (b, db, complete, stale, stop) = (
            b.clone(),
            db.clone(),
            complete.clone(),
            stale.clone(),
            stop.clone(),
        );
        tokio::spawn(async move {
            while !stop.load(SeqCst) {
                let before = complete.load(SeqCst);
                if read(&b, &db).await < before {
                    stale.fetch_add(1, SeqCst);
                }
            }
        })
    };
    for _ in 0..rounds {
        let v = db.0.fetch_add(1, SeqCst) + 1;
        server = bust(a.clone(), server).await;
        complete.store(v, SeqCst);
        let before = complete.load(SeqCst);
        if read(&b, &db).await < before {
            stale.fetch_add(1, SeqCst);
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    stop.store(true, SeqCst);
    reader.await.unwrap();
    assert!(
        b.stats().near_lease_hits > 0,
        "the checker saw no lease hit: {:?}",
        b.stats()
    );
    drop(server);
    stale.load(SeqCst)
}

/// Two processes: a read that starts after another process's bust
/// returned never sees the old value, with the reader's replies delayed
/// 1 ms, about the lease, and 30 ms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_after_another_process_s_bust_never_sees_the_old_value() {
    let lease = Duration::from_millis(5);
    for delay in [1, 5, 30] {
        let stale = stale_reads(
            Duration::from_millis(delay),
            lease,
            60,
            |a, server| async move {
                a.invalidate_tags(["t"]).await.unwrap();
                server
            },
        )
        .await;
        assert_eq!(
            stale, 0,
            "{stale} stale reads with replies delayed {delay} ms"
        );
    }
}

/// The same checker catches a writer that skips the wait: a raw `SET` of
/// the tag's version, as a writer outside cachette would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checker_catches_a_writer_that_does_not_wait() {
    let lease = Duration::from_millis(5);
    let stale = stale_reads(
        Duration::from_millis(2),
        lease,
        200,
        |_a, server| async move {
            let name = tag_version_name(&server, "t");
            redis::cmd("SET")
                .arg(&name)
                .arg(format!("raw-{:?}", Instant::now()))
                .exec(&mut server.raw())
                .unwrap();
            server
        },
    )
    .await;
    assert!(stale > 0, "a writer that does not wait went unnoticed");
}
