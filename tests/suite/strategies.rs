//! The strategies: in-process coalescing, the fleet-wide lock,
//! stale-while-revalidate and early refresh, on both backends.

use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

use cachette::{cached, Cache};

use crate::scenarios::{
    svc, swr_refresh_that_raced_a_bust_loses, swr_serves_stale_and_refreshes_once, Svc,
};
use crate::support::child::{spawn_test, wait_bounded, RedisCounter};
use crate::support::source::Source;
use crate::support::{
    each_backend, each_backend_from, eventually, Backing, FixedRandom, ManualClock, RedisServer,
};

/// Every backend, built with a manual clock (and a fixed random draw).
async fn each_backend_with(clock: &ManualClock, draw: f64) -> Vec<(Cache, Option<Backing>)> {
    let builder = Cache::builder()
        .clock(clock.clone())
        .random(FixedRandom(draw))
        .command_timeout(Duration::from_secs(5));
    each_backend_from(builder).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_concurrent_misses_run_the_body_once() {
    for (cache, _server) in each_backend().await {
        let s = svc(cache.clone());
        let (reached, release) = s.src.hold_next(false);
        let calls: Vec<_> = (0..500)
            .map(|_| {
                let s = s.clone();
                tokio::spawn(async move { s.aside(7).await })
            })
            .collect();
        reached.notified().await;
        eventually("499 followers", || cache.stats().coalesced == 499).await;
        release.notify_one();
        for call in calls {
            assert_eq!(call.await.unwrap(), 7);
        }
        assert_eq!(s.src.runs(), 1, "{}", cache.backend_name());
        assert_eq!(cache.stats().misses, 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_finish_when_the_leader_is_cancelled_or_panics() {
    for panic in [false, true] {
        for (cache, _server) in each_backend().await {
            let s = svc(cache.clone());
            let (reached, release) = s.src.hold_next(panic);
            let leader = tokio::spawn({
                let s = s.clone();
                async move { s.aside(1).await }
            });
            reached.notified().await;
            let followers: Vec<_> = (0..20)
                .map(|_| {
                    let s = s.clone();
                    tokio::spawn(async move { s.aside(1).await })
                })
                .collect();
            eventually("20 followers", || cache.stats().coalesced >= 20).await;
            if panic {
                release.notify_one();
                assert!(leader.await.unwrap_err().is_panic());
            } else {
                leader.abort();
                assert!(leader.await.unwrap_err().is_cancelled());
            }
            for f in followers {
                assert_eq!(f.await.unwrap(), 1);
            }
            assert_eq!(s.src.runs(), 2, "one follower took over");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swr_serves_stale_at_once_and_refreshes_once() {
    let clock = ManualClock::default();
    for (cache, _server) in each_backend_with(&clock, 0.5).await {
        swr_serves_stale_and_refreshes_once(cache, &clock).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_swr_refresh_that_raced_an_invalidation_cannot_overwrite_it() {
    let clock = ManualClock::default();
    for (cache, _server) in each_backend_with(&clock, 0.5).await {
        swr_refresh_that_raced_a_bust_loses(cache, &clock).await;
    }
}

#[tokio::test]
async fn early_refresh_keeps_hot_keys_from_expiring() {
    let clock = ManualClock::default();
    // ln(1/e) = -1: with a 1 s body, a refresh is due 1 s before expiry.
    for (cache, _server) in each_backend_with(&clock, (-1.0f64).exp()).await {
        let s = svc(cache.clone());
        s.early(1, &clock).await;
        let windows = 5u64;
        let mut reads = 0;
        let start = clock.0.load(SeqCst);
        while clock.0.load(SeqCst) - start < windows * 60_000 {
            clock.advance(Duration::from_millis(500));
            s.early(1, &clock).await;
            cache.refreshes_settled().await;
            reads += 1;
        }
        let stats = cache.stats();
        assert_eq!(stats.misses, 1, "only the first read missed: {stats:?}");
        // One refresh per TTL window (each window is 60 s plus the 1 s body).
        assert!(
            (windows - 1..=windows).contains(&stats.refreshes),
            "{} refreshes in {windows} windows",
            stats.refreshes
        );
        assert_eq!(stats.hits, reads);
    }
}

const ABORT_IN_BODY: &str = "CACHETTE_CHILD_ABORT_IN_BODY";

#[cached(cache = cache, key = "stampede:<id>", ttl = 60, strategy = "lock", lock_ttl = "1s", lock_wait = "5s", unkeyed = [runs])]
async fn stampede(cache: &Cache, runs: &RedisCounter, id: u64) -> String {
    runs.bump().await;
    if std::env::var_os(ABORT_IN_BODY).is_some() {
        std::process::abort();
    }
    // A slow query: long enough for every other caller to arrive.
    tokio::time::sleep(Duration::from_millis(300)).await;
    format!("value-{id}")
}

/// Runs in a child process started by the multi-process tests below; it is
/// not a test of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "entry point of the child processes of the multi-process lock tests"]
async fn lock_child_process() {
    let url = std::env::var("CACHETTE_CHILD_URL").expect("started by a parent test");
    let id: u64 = std::env::var("CACHETTE_CHILD_KEY")
        .unwrap()
        .parse()
        .unwrap();
    let cache = Cache::builder()
        .command_timeout(Duration::from_secs(5))
        .connect(&url)
        .await
        .unwrap();
    let runs = RedisCounter::new(&url, "test:runs").await;
    let ready = RedisCounter::new(&url, "test:ready").await;
    ready.bump().await;
    let go = RedisCounter::new(&url, "test:go").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while go.get().await == 0 {
        assert!(std::time::Instant::now() < deadline, "never told to go");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let calls: Vec<_> = (0..50)
        .map(|_| {
            let (cache, runs) = (cache.clone(), runs.clone());
            tokio::spawn(async move { stampede(&cache, &runs, id).await })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap(), format!("value-{id}"));
    }
}

fn spawn_child(url: &str, id: u64, abort: bool) -> std::process::Child {
    let mut env = vec![
        ("CACHETTE_CHILD_URL", url.to_string()),
        ("CACHETTE_CHILD_KEY", id.to_string()),
    ];
    if abort {
        env.push((ABORT_IN_BODY, "1".to_string()));
    }
    spawn_test("strategies::lock_child_process", &env)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_processes_run_a_locked_body_once() {
    let server = RedisServer::start();
    let url = server.url();
    let children: Vec<_> = (0..4).map(|_| spawn_child(&url, 1, false)).collect();
    let ready = RedisCounter::new(&url, "test:ready").await;
    ready.reaches(4).await;
    RedisCounter::new(&url, "test:go").await.bump().await;
    for child in children {
        let status =
            tokio::task::spawn_blocking(move || wait_bounded(child, Duration::from_secs(60)))
                .await
                .unwrap();
        assert!(status.success(), "a child's callers failed: {status}");
    }
    let runs = RedisCounter::new(&url, "test:runs").await;
    assert_eq!(
        runs.get().await,
        1,
        "200 callers in 4 processes ran the body once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_lock_holder_delays_the_others_at_most_its_lock_ttl() {
    let server = RedisServer::start();
    let url = server.url();
    let runs = RedisCounter::new(&url, "test:runs").await;
    let holder = spawn_child(&url, 2, true);
    RedisCounter::new(&url, "test:go").await.bump().await;
    let status = tokio::task::spawn_blocking(move || wait_bounded(holder, Duration::from_secs(60)))
        .await
        .unwrap();
    assert!(!status.success(), "the holder aborted in its body");
    assert_eq!(runs.get().await, 1);
    let lock = crate::support::only_name(&server, &crate::support::name_pattern('l', "stampede:2"));
    let lock_ttl: i64 = redis::cmd("PTTL")
        .arg(lock)
        .query(&mut server.raw())
        .unwrap();
    assert!(lock_ttl > 0, "the dead holder's lock is still there");

    let cache = server.cache().await;
    let started = std::time::Instant::now();
    let calls: Vec<_> = (0..50)
        .map(|_| {
            let (cache, runs) = (cache.clone(), runs.clone());
            tokio::spawn(async move { stampede(&cache, &runs, 2).await })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap(), "value-2");
    }
    let took = started.elapsed();
    // lock_ttl (1 s) plus the wait bound (5 s).
    assert!(took < Duration::from_secs(6), "callers took {took:?}");
    assert_eq!(
        runs.get().await,
        2,
        "one caller recomputed after the lock lapsed"
    );
    assert_eq!(cache.stats().lock_waits, 1);
}

#[cached(cache = cache, key = "release:<id>", ttl = 60, strategy = "lock", lock_ttl = "200ms", lock_wait = "10s", unkeyed = [src])]
async fn short_lock(cache: &Cache, src: &Source, id: u64) -> u64 {
    src.read().await + id
}

/// I7: a holder that outlived its lock releases nothing of the next
/// holder's, and its late fill does not hide a newer invalidation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lapsed_holder_cannot_release_the_next_holders_lock() {
    let server = RedisServer::start();
    // Two caches stand for two processes: they share Redis, not flights.
    let (a, b) = (server.cache().await, server.cache().await);
    let src = Source::default();
    let lock_value = || -> Option<Vec<u8>> {
        let locks: Vec<String> = redis::cmd("KEYS")
            .arg(crate::support::name_pattern('l', "release:0"))
            .query(&mut server.raw())
            .unwrap();
        let lock = locks.first()?;
        redis::cmd("GET")
            .arg(lock)
            .query(&mut server.raw())
            .unwrap()
    };

    let (a_reached, a_release) = src.hold_next(false);
    let holder_a = tokio::spawn({
        let (a, src) = (a.clone(), src.clone());
        async move { short_lock(&a, &src, 0).await }
    });
    a_reached.notified().await;
    eventually("A's lock to lapse", || lock_value().is_none()).await;

    src.version.store(5, SeqCst);
    b.invalidate_keys(["release:0"]).await.unwrap();
    let (b_reached, b_release) = src.hold_next(false);
    let holder_b = tokio::spawn({
        let (b, src) = (b.clone(), src.clone());
        async move { short_lock(&b, &src, 0).await }
    });
    b_reached.notified().await;
    let b_lock = lock_value().expect("B holds the lock");

    a_release.notify_one();
    assert_eq!(holder_a.await.unwrap(), 0, "A returns what it read");
    assert_eq!(lock_value(), Some(b_lock), "A's release removed B's lock");
    assert_eq!(
        short_lock(&a, &src, 0).await,
        5,
        "A's late fill was served after the bust"
    );

    b_release.notify_one();
    assert_eq!(holder_b.await.unwrap(), 5);
    assert_eq!(lock_value(), None, "B released its lock");
}

/// I1 through coalescing: a caller that arrives after an invalidation and
/// joins a run of the body that began before it is not handed that run's
/// value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_arriving_after_a_bust_does_not_take_an_older_flights_value() {
    for (cache, _server) in each_backend().await {
        let s = svc(cache.clone());
        s.src.version.store(10, SeqCst);
        let (reached, release) = s.src.hold_next(false);
        let early_caller = tokio::spawn({
            let s = s.clone();
            async move { s.aside(0).await }
        });
        reached.notified().await; // the flight has read version 10
        s.src.version.store(20, SeqCst);
        cache.invalidate_keys(["aside:0"]).await.unwrap();
        let late_caller = tokio::spawn({
            let s = s.clone();
            async move { s.aside(0).await }
        });
        eventually("the late caller to join", || cache.stats().coalesced == 1).await;
        release.notify_one();
        assert_eq!(early_caller.await.unwrap(), 10);
        assert_eq!(late_caller.await.unwrap(), 20, "{}", cache.backend_name());
    }
}

/// The swr refresh is deduplicated across processes by the lock: two
/// handles (two processes) both serve stale, one refresh runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swr_refreshes_once_across_processes() {
    let server = RedisServer::start();
    let clock = ManualClock::default();
    let url = server.url();
    let handle = || {
        Cache::builder()
            .clock(clock.clone())
            .command_timeout(Duration::from_secs(5))
            .connect(&url)
    };
    let (a, b) = (svc(handle().await.unwrap()), svc(handle().await.unwrap()));
    let b = Svc {
        src: a.src.clone(),
        ..b
    };
    a.swr(3).await.unwrap();
    clock.advance(Duration::from_secs(61));
    let (reached, release) = a.src.hold_next(false);
    a.swr(3).await.unwrap();
    reached.notified().await; // A's refresh holds the lock, in its body
    b.swr(3).await.unwrap();
    b.cache.refreshes_settled().await; // B's attempt found the lock taken
    release.notify_one();
    a.cache.refreshes_settled().await;
    assert_eq!(a.src.runs(), 2, "one fill and one refresh");
    assert_eq!(
        (a.cache.stats().refreshes, b.cache.stats().refreshes),
        (1, 0)
    );
    assert_eq!(b.cache.stats().stale_hits, 1);
}
