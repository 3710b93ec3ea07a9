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
pub(crate) struct Hand(Arc<Mutex<Instant>>);

impl Hand {
    pub(crate) fn new() -> Hand {
        Hand(Arc::new(Mutex::new(Instant::now())))
    }
    pub(crate) fn advance(&self, by: Duration) {
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

/// The namespace's lifetime for its lease, as cachette gives it (30 days).
const LIFETIME_MS: u64 = 30 * 24 * 3600 * 1000;

/// Makes the namespace's lease look created 10 s ago: busts stop taking it
/// for young (recreated after a loss), which they do for 2.2 s.
fn settle(server: &RedisServer) {
    redis::cmd("PEXPIRE")
        .arg(cachette::admin::lease_name("cachette"))
        .arg(LIFETIME_MS - 10_000)
        .exec(&mut server.raw())
        .unwrap();
}

/// How long one bust of `tag` by `cache` takes.
async fn bust_takes(cache: &Cache) -> Duration {
    let started = Instant::now();
    cache.invalidate_tags(["t"]).await.unwrap();
    started.elapsed()
}

/// What a bust waits for the longest lease there is (about 1.05 s).
const LONGEST_WAIT: Duration = Duration::from_millis(1_050);

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
    redis::cmd("SET")
        .arg(&name)
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
    settle(&server);
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
    stale_reads_by(
        builder().near_cache(false),
        RedisServer::url,
        delay,
        lease,
        rounds,
        bust,
    )
    .await
}

/// `stale_reads` with the writer process built by `writer`.
async fn stale_reads_by<F, Fut>(
    writer: cachette::CacheBuilder,
    writer_url: fn(&RedisServer) -> String,
    delay: Duration,
    lease: Duration,
    rounds: u64,
    bust: F,
) -> u64
where
    F: Fn(Cache, RedisServer) -> Fut,
    Fut: std::future::Future<Output = RedisServer>,
{
    let mut server = RedisServer::start();
    let proxy = FaultProxy::start(server.port).await;
    let a = writer.connect(&writer_url(&server)).await.unwrap();
    let b = builder()
        .near_cache_lease(lease)
        .connect(&proxy.url())
        .await
        .unwrap();
    let db = Db::default();
    until_a_lease_hit(&b, &db).await;
    settle(&server);
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

/// The namespace's lease lost (deleted here; evicted, flushed or expired
/// alike) while a reader still holds confirmations under it: a read that
/// starts after a bust returned still never sees the old value. The
/// reader's lease is 50 ms, its replies are delayed 20 ms, and the writer,
/// with a lease of 2 ms of its own, never read the larger one: it must
/// take the missing lease, and the one created again after it, for one
/// that may be any lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_lease_never_lets_a_read_after_a_bust_see_the_old_value() {
    let lease = Duration::from_millis(50);
    let writer = builder()
        .near_cache(false)
        .near_cache_lease(Duration::from_millis(2));
    let stale = stale_reads_by(
        writer,
        RedisServer::url,
        Duration::from_millis(20),
        lease,
        6,
        |a, server| async move {
            redis::cmd("DEL")
                .arg(cachette::admin::lease_name("cachette"))
                .exec(&mut server.raw())
                .unwrap();
            a.invalidate_tags(["t"]).await.unwrap();
            server
        },
    )
    .await;
    assert_eq!(stale, 0, "{stale} stale reads after the lease was lost");
}

/// What each writer waits once the namespace's lease is lost, or created
/// again by a reader with a smaller lease, or replaced by another type.
/// One that knows leases are in use (a lease of its own, one it has read,
/// or `assume_lease_readers`) waits the longest lease; one that knows none
/// waits nothing (the documented gap), except while the set is young.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_young_or_planted_lease_makes_a_bust_wait_the_longest() {
    let server = RedisServer::start();
    let name = cachette::admin::lease_name("cachette");
    let (url, db) = (server.url(), Db::default());
    let reader = builder()
        .near_cache_lease(Duration::from_millis(50))
        .connect(&url)
        .await
        .unwrap();
    until_a_lease_hit(&reader, &db).await;
    settle(&server);
    let writer = |b: cachette::CacheBuilder| {
        let url = url.clone();
        async move { b.near_cache(false).connect(&url).await.unwrap() }
    };
    let own = writer(builder().near_cache_lease(Duration::from_millis(2))).await;
    let seen = writer(builder()).await;
    let assumed = writer(builder().assume_lease_readers()).await;
    // Settled: each waits the largest it knows (50 ms), and `seen` learns it.
    for (who, w) in [("own", &own), ("seen", &seen), ("assumed", &assumed)] {
        let took = bust_takes(w).await;
        assert!(
            took >= Duration::from_millis(50) && took < LONGEST_WAIT,
            "{who}: a settled 50 ms lease waited {took:?}"
        );
    }
    let all = |label: &'static str| {
        let (own, seen, assumed) = (own.clone(), seen.clone(), assumed.clone());
        async move {
            let (a, b, c) = tokio::join!(bust_takes(&own), bust_takes(&seen), bust_takes(&assumed));
            for (who, took) in [("own", a), ("seen", b), ("assumed", c)] {
                assert!(took >= LONGEST_WAIT, "{label}: {who} waited {took:?}");
            }
        }
    };
    // Lost.
    let del = || {
        redis::cmd("DEL")
            .arg(&name)
            .exec(&mut server.raw())
            .unwrap()
    };
    del();
    // First, before a bust with a lease of its own makes it again.
    let unaware = writer(builder()).await;
    let took = bust_takes(&unaware).await;
    assert!(
        took < LONGEST_WAIT,
        "a process that knows no lease waited {took:?}"
    );
    all("lost").await;

    // Created again by a reader with a 2 ms lease: young, so even the
    // process that knows no lease waits the longest.
    let small = builder()
        .near_cache_lease(Duration::from_millis(2))
        .connect(&url)
        .await
        .unwrap();
    until_a_lease_hit(&small, &db).await;
    let top: String = redis::cmd("GET")
        .arg(&name)
        .query(&mut server.raw())
        .unwrap();
    assert_eq!(top, "2000", "created again with the smaller lease");
    all("young").await;
    let fresh = writer(builder()).await;
    let took = bust_takes(&fresh).await;
    assert!(took >= LONGEST_WAIT, "young, unaware: waited {took:?}");
    // Settled again: what it holds, or what each has learned.
    settle(&server);
    let took = bust_takes(&own).await;
    assert!(
        took >= Duration::from_millis(2) && took < LONGEST_WAIT,
        "settled 2 ms lease: {took:?}"
    );

    // Another type planted there: unreadable, so taken for lost.
    del();
    redis::cmd("HSET")
        .arg(&name)
        .arg("planted")
        .arg(1)
        .exec(&mut server.raw())
        .unwrap();
    // With no lifetime it would be young for ever (for a moment, until a
    // reader's round trip gives it one); given one, merely unreadable.
    settle(&server);
    all("planted").await;
    let took = bust_takes(&writer(builder()).await).await;
    assert!(took < LONGEST_WAIT, "planted, unaware: waited {took:?}");
    // And readers serve nothing under it.
    let leased = small.stats().near_lease_hits;
    for _ in 0..20 {
        read(&small, &db).await;
    }
    let after = small.stats().near_lease_hits;
    assert!(
        after <= leased + 1,
        "{} lease hits under a planted lease",
        after - leased
    );
}

/// A lease given a lifetime cachette never gives it (none, by `PERSIST`,
/// or a year) would keep every bust waiting the longest: a reader's round
/// trip puts the lifetime back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_puts_the_lease_s_lifetime_back() {
    let server = RedisServer::start();
    let name = cachette::admin::lease_name("cachette");
    let (reader, hand) = by_hand(&server.url(), LEASE).await;
    let db = Db::default();
    until_a_lease_hit(&reader, &db).await;
    for (how, ms) in [
        ("PERSIST", None),
        ("PEXPIRE", Some(365 * 24 * 3600 * 1000u64)),
    ] {
        let mut cmd = redis::cmd(how);
        cmd.arg(&name);
        if let Some(ms) = ms {
            cmd.arg(ms);
        }
        cmd.exec(&mut server.raw()).unwrap();
        let pttl = || -> i64 {
            redis::cmd("PTTL")
                .arg(&name)
                .query(&mut server.raw())
                .unwrap()
        };
        // The next round trips read it and put the lifetime back.
        let mut tries = 0;
        while !(0..=LIFETIME_MS as i64).contains(&pttl()) {
            hand.advance(LEASE * 2);
            read(&reader, &db).await;
            tries += 1;
            assert!(tries < 50, "{how}: the lifetime stayed {}", pttl());
        }
    }
}

fn net_out(server: &RedisServer) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("stats")
        .query(&mut server.raw())
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("total_net_output_bytes:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// I14: the namespace's lease is read 32 bytes at a time, whatever was
/// planted there. A value of 32 MiB that would parse as 5 ms (leading
/// zeros) is unreadable: readers serve nothing under it, and neither their
/// round trips nor the busts read it whole. Found by a review's probe: 32
/// MiB sent per round trip when the lease was a sorted set read whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planted_lease_of_any_size_is_read_32_bytes_at_a_time() {
    let server = RedisServer::start();
    let name = cachette::admin::lease_name("cachette");
    let mut planted = "0".repeat(32 << 20);
    planted.push_str("5000");
    redis::cmd("SET")
        .arg(&name)
        .arg(&planted)
        .arg("PX")
        .arg(LIFETIME_MS - 10_000)
        .exec(&mut server.raw())
        .unwrap();
    drop(planted);
    let reader = builder()
        .near_cache_lease(Duration::from_millis(5))
        .connect(&server.url())
        .await
        .unwrap();
    let writer = builder()
        .near_cache(false)
        .connect(&server.url())
        .await
        .unwrap();
    let db = Db::default();
    for _ in 0..5 {
        read(&reader, &db).await;
    }
    let (before, leased) = (net_out(&server), reader.stats().near_lease_hits);
    for _ in 0..20 {
        read(&reader, &db).await;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    for _ in 0..5 {
        let took = bust_takes(&writer).await;
        assert!(
            took < LONGEST_WAIT,
            "a writer that knows no lease waited {took:?}"
        );
    }
    let sent = net_out(&server) - before;
    assert!(
        sent < 256 << 10,
        "{sent} bytes sent for 20 reads and 5 busts"
    );
    assert_eq!(
        reader.stats().near_lease_hits,
        leased,
        "hits under a planted lease"
    );
}

/// A writer deployed with the lease before any reader (the upgrade rule's
/// order) makes the namespace's lease when its bust finds it missing: it
/// waits the longest lease only while the lease is young, then its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_with_a_lease_makes_the_namespace_s_when_it_is_missing() {
    let server = RedisServer::start();
    let writer = builder()
        .near_cache(false)
        .near_cache_lease(Duration::from_millis(2))
        .connect(&server.url())
        .await
        .unwrap();
    let took = bust_takes(&writer).await;
    assert!(took >= LONGEST_WAIT, "missing: waited {took:?}");
    let name = cachette::admin::lease_name("cachette");
    let made: Option<String> = redis::cmd("GET")
        .arg(&name)
        .query(&mut server.raw())
        .unwrap();
    assert_eq!(made.as_deref(), Some("2000"));
    settle(&server);
    let took = bust_takes(&writer).await;
    assert!(
        took >= Duration::from_millis(2) && took < LONGEST_WAIT,
        "settled: waited {took:?}"
    );
}

/// A writer that knows no lease, on an ACL without `PTTL` (one from before
/// lease reads): it reads the lease but not its age, and takes a lease
/// there for young, so it waits the longest lease rather than nothing.
/// Found by a review's probe: 2,203 stale reads before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_that_may_not_read_the_lease_s_age_waits_the_longest() {
    fn without_pttl(server: &RedisServer) -> String {
        server.add_documented_acl_user(&["-pttl"]);
        format!("redis://app:s3cret@127.0.0.1:{}", server.port)
    }
    let stale = stale_reads_by(
        builder().near_cache(false),
        without_pttl,
        Duration::from_millis(20),
        Duration::from_millis(50),
        3,
        |a, server| async move {
            let took = bust_takes(&a).await;
            assert!(took >= LONGEST_WAIT, "waited {took:?}");
            server
        },
    )
    .await;
    assert_eq!(stale, 0, "{stale} stale reads");
}

/// A bust's lease wait is on cachette's timer, whoever polls it: from no
/// runtime at all, and from a runtime without timers, it waits the lease
/// and returns. Found by a review's probe: both panicked ("there is no
/// reactor running", "timers are disabled"), the wait's sleep being made
/// on the caller's timer.
#[test]
fn a_bust_waits_its_lease_from_any_executor() {
    let setup = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = RedisServer::start();
    let (reader, writer) = setup.block_on(async {
        let reader = builder()
            .near_cache_lease(Duration::from_millis(2))
            .connect(&server.url())
            .await
            .unwrap();
        until_a_lease_hit(&reader, &Db::default()).await;
        settle(&server);
        let writer = builder()
            .near_cache(false)
            .connect(&server.url())
            .await
            .unwrap();
        (reader, writer)
    });
    let wait = Duration::from_micros(2_104);
    let timed = |took: Duration, how: &str| {
        assert!(took >= wait && took < LONGEST_WAIT, "{how}: {took:?}");
    };
    let started = Instant::now();
    crate::runtime_faults::park_on(writer.invalidate_tags(["t"])).unwrap();
    timed(started.elapsed(), "no runtime");
    let no_timers = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let started = Instant::now();
    no_timers.block_on(writer.invalidate_tags(["t"])).unwrap();
    timed(started.elapsed(), "a runtime without timers");
    drop(reader);
}
