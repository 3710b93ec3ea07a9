//! I9 and recovery: invalidations attempted while Redis is down are kept
//! and delivered, nothing they cover is served meanwhile, and the cache
//! reconnects by itself after a restart.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::Duration;

use cachette::{cached, invalidates, Cache};

use crate::support::{delivered, impatient, RedisServer};

#[cached(cache = cache, key = "doc:<id>", ttl = 300, unkeyed = [src])]
async fn doc(cache: &Cache, src: &AtomicU64, id: u64) -> u64 {
    src.load(SeqCst) + id
}

#[invalidates(cache = cache, keys = ["doc:<id>"])]
async fn update(cache: &Cache, src: &AtomicU64, id: u64) -> Result<(), String> {
    let _ = id;
    src.fetch_add(1, SeqCst);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bust_made_while_redis_was_down_is_delivered_and_nothing_stale_is_served_meanwhile() {
    // Persistence on, so the old entry survives the restart.
    let mut server = RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    let cache = impatient(Duration::from_millis(300))
        .connect(&server.url())
        .await
        .unwrap();
    let src = AtomicU64::new(0);
    assert_eq!(doc(&cache, &src, 0).await, 0);
    assert_eq!(doc(&cache, &src, 0).await, 0);
    assert_eq!(cache.stats().hits, 1);

    server.kill();
    update(&cache, &src, 0).await.unwrap(); // the write commits, the bust fails
    assert_eq!(cache.stats().pending_invalidations, 1);
    assert_eq!(
        doc(&cache, &src, 0).await,
        1,
        "read through while Redis is down"
    );

    server.restart(); // comes back with the old entry and its old versions
    let entry = crate::support::entry_name(&server, "doc:0");
    let raw: Option<Vec<u8>> = redis::cmd("GET")
        .arg(entry)
        .query(&mut server.raw())
        .unwrap();
    assert!(raw.is_some(), "the stale entry survived the restart");
    // Whether or not the retry has delivered yet, the old value is never served.
    for _ in 0..50 {
        assert_eq!(
            doc(&cache, &src, 0).await,
            1,
            "a stale value was served after the bust returned"
        );
    }
    delivered(&cache).await;
    // Reads have their own connection, which reconnects on its next use;
    // caching resumes within a few calls.
    let hits = cache.stats().hits;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while cache.stats().hits == hits {
        assert_eq!(doc(&cache, &src, 0).await, 1);
        assert!(
            std::time::Instant::now() < deadline,
            "caching did not resume after the restart"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_pending_bound_nothing_is_served_from_the_cache() {
    let mut server = RedisServer::start();
    let cache = impatient(Duration::from_millis(300))
        .max_pending_invalidations(2)
        .connect(&server.url())
        .await
        .unwrap();
    let src = AtomicU64::new(0);
    doc(&cache, &src, 9).await;
    server.kill();
    for id in 0..3 {
        update(&cache, &src, id).await.unwrap();
    }
    // Past the bound, the names give way to one namespace-wide step.
    assert!(
        cache.stats().pending_invalidations >= 2,
        "{:?}",
        cache.stats()
    );
    server.restart(); // empty: no persistence
                      // Over the bound: even doc:9, which no pending bust names, is read through.
    let misses = cache.stats().misses;
    let value = doc(&cache, &src, 9).await;
    if cache.stats().pending_invalidations > 0 {
        assert_eq!(cache.stats().misses, misses, "read through, not filled");
    }
    assert_eq!(value, 3 + 9);
    delivered(&cache).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_breaker_stops_calling_redis_until_a_probe_succeeds() {
    let mut server = RedisServer::start();
    let cache = impatient(Duration::from_millis(200))
        .circuit_breaker(3, Duration::from_secs(2))
        .connect(&server.url())
        .await
        .unwrap();
    let src = AtomicU64::new(0);
    doc(&cache, &src, 5).await;
    server.kill();
    for _ in 0..3 {
        assert_eq!(
            doc(&cache, &src, 5).await,
            5,
            "the body answers while Redis is down"
        );
    }
    let stats = cache.stats();
    assert_eq!(
        (stats.breaker_opens, stats.breaker_open),
        (1, true),
        "{stats:?}"
    );

    // Open: calls do not reach Redis at all, so no more errors pile up.
    let errors = stats.errors;
    for _ in 0..100 {
        assert_eq!(doc(&cache, &src, 5).await, 5);
    }
    assert_eq!(
        cache.stats().errors,
        errors,
        "an open breaker still called Redis"
    );

    server.restart();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while cache.stats().breaker_open {
        assert!(
            std::time::Instant::now() < deadline,
            "the breaker never closed"
        );
        doc(&cache, &src, 5).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let hits = cache.stats().hits;
    doc(&cache, &src, 5).await;
    doc(&cache, &src, 5).await;
    assert!(
        cache.stats().hits > hits,
        "caching resumed once the probe succeeded"
    );
}

/// I9 when the caller gives up: an invalidation whose future is dropped
/// before Redis answered (a timeout around it, a `select!`) is kept and
/// delivered like a failed one, and what it names is read through until
/// then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidation_cancelled_mid_flight_is_kept_and_delivered() {
    let server = RedisServer::start();
    let proxy = crate::support::proxy::FaultProxy::start(server.port).await;
    let cache = Cache::builder()
        .command_timeout(Duration::from_secs(5))
        .connect(&proxy.url())
        .await
        .unwrap();
    let src = AtomicU64::new(0);
    assert_eq!(doc(&cache, &src, 1).await, 1);

    proxy.set(crate::support::proxy::Mode::Stall);
    src.fetch_add(10, SeqCst); // the database write the bust is for
    let cancelled =
        tokio::time::timeout(Duration::from_millis(100), cache.invalidate_keys(["doc:1"])).await;
    assert!(cancelled.is_err(), "the bust was still waiting for Redis");
    assert_eq!(
        cache.stats().pending_invalidations,
        1,
        "kept though cancelled"
    );
    assert_eq!(doc(&cache, &src, 1).await, 11, "read through while pending");

    proxy.set(crate::support::proxy::Mode::Pass);
    delivered(&cache).await;
    assert_eq!(
        doc(&cache, &src, 1).await,
        11,
        "not the entry from before the write"
    );
}

#[invalidates(cache = cache, keys = ["doc:<id>"])]
async fn update_then_hang(
    cache: &Cache,
    src: &AtomicU64,
    id: u64,
    committed: &tokio::sync::Notify,
) -> Result<(), String> {
    let _ = id;
    src.fetch_add(10, SeqCst); // the write commits...
    committed.notify_one();
    std::future::pending::<()>().await; // ...and the caller gives up here
    Ok(())
}

/// I9 when an `#[invalidates]` call is dropped in its body, after its write
/// committed: the bust it never reached is kept and delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_cancelled_after_its_write_still_busts() {
    for (cache, _server) in crate::support::each_backend().await {
        let src = AtomicU64::new(0);
        assert_eq!(doc(&cache, &src, 2).await, 2);
        assert_eq!(doc(&cache, &src, 2).await, 2, "cached");
        let committed = tokio::sync::Notify::new();
        tokio::select! {
            _ = update_then_hang(&cache, &src, 2, &committed) => unreachable!(),
            _ = committed.notified() => {} // drops the update mid-body
        }
        assert_eq!(doc(&cache, &src, 2).await, 12, "{}", cache.backend_name());
        delivered(&cache).await;
        assert_eq!(doc(&cache, &src, 2).await, 12);
    }
}

/// A breaker probe whose caller is dropped before Redis answered (a
/// timeout, a `select!`) is given back: once Redis answers again, caching
/// resumes within a cool-down instead of staying off until a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_breaker_probe_does_not_keep_the_breaker_open() {
    let server = RedisServer::start();
    let cool_down = Duration::from_millis(300);
    let cache = impatient(Duration::from_millis(100))
        .circuit_breaker(1, cool_down)
        .connect(&server.url())
        .await
        .unwrap();
    let src = AtomicU64::new(0);
    assert_eq!(doc(&cache, &src, 7).await, 7);

    // Every client paused: lookups time out and open the breaker.
    let pause = Duration::from_millis(1500);
    redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(pause.as_millis() as u64)
        .arg("ALL")
        .exec(&mut server.raw())
        .unwrap();
    let paused_at = std::time::Instant::now();
    assert_eq!(doc(&cache, &src, 7).await, 7, "read through");
    assert!(cache.stats().breaker_open, "{:?}", cache.stats());

    // After the cool-down, the next call probes; its caller gives up.
    tokio::time::sleep(cool_down + Duration::from_millis(50)).await;
    let probe = tokio::time::timeout(Duration::from_millis(20), doc(&cache, &src, 7)).await;
    assert!(probe.is_err(), "the probe was still waiting for Redis");
    assert!(paused_at.elapsed() < pause, "the pause ended too early");

    // Once Redis answers, caching resumes within one cool-down.
    tokio::time::sleep(pause.saturating_sub(paused_at.elapsed()) + Duration::from_millis(100))
        .await;
    let resumed_by = std::time::Instant::now() + 3 * cool_down;
    let hits = cache.stats().hits;
    while cache.stats().hits == hits {
        assert!(
            std::time::Instant::now() < resumed_by,
            "caching did not resume: {:?}",
            cache.stats()
        );
        assert_eq!(doc(&cache, &src, 7).await, 7);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// I9 when the task that retries undelivered busts is dropped before it
/// ever ran (it was spawned on a short-lived runtime that ended): a later
/// failed bust on another runtime starts a new one, and everything is
/// delivered once Redis accepts busts again.
#[test]
fn a_retry_task_dropped_with_its_runtime_is_replaced() {
    let server = RedisServer::start();
    server.add_documented_acl_user(&[]);
    let app_url = format!("redis://app:s3cret@127.0.0.1:{}", server.port);
    let main = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let src = AtomicU64::new(0);
    let (cache, other) = main.block_on(async {
        let cache = impatient(Duration::from_secs(1))
            .connect(&app_url)
            .await
            .unwrap();
        // Another process, reading the same Redis.
        let other = server.cache().await;
        assert_eq!(doc(&other, &src, 1).await, 1);
        (cache, other)
    });

    server.allow_busts(false);
    let failed = std::thread::scope(|s| {
        s.spawn(|| {
            let short = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            short.block_on(cache.invalidate_keys(["doc:0"]))
        })
        .join()
        .unwrap()
    });
    assert!(
        failed.is_err(),
        "the bust in the short-lived runtime failed"
    );

    main.block_on(async {
        src.fetch_add(10, SeqCst); // the write the next bust is for
        assert!(cache.invalidate_keys(["doc:1"]).await.is_err());
        server.allow_busts(true);
        delivered(&cache).await;
        assert_eq!(
            doc(&other, &src, 1).await,
            11,
            "another process read the value from before the write"
        );
    });
}

/// I9 across handles: two caches of one process on the same Redis and
/// namespace share their undelivered busts, so one handle's failed bust
/// keeps the other from serving what it names, however their URLs spell
/// the server (here, one names database 0 and the other does not).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undelivered_busts_block_every_handle_on_the_same_server_and_namespace() {
    let server = RedisServer::start();
    server.add_documented_acl_user(&[]);
    let url = format!("redis://app:s3cret@127.0.0.1:{}", server.port);
    let a = impatient(Duration::from_secs(1))
        .connect(&url)
        .await
        .unwrap();
    let b = impatient(Duration::from_secs(1))
        .connect(&format!("{url}/0"))
        .await
        .unwrap();
    let src = AtomicU64::new(0);
    assert_eq!(doc(&b, &src, 3).await, 3);
    assert_eq!(doc(&b, &src, 3).await, 3, "cached");

    server.allow_busts(false);
    src.fetch_add(10, SeqCst);
    assert!(a.invalidate_keys(["doc:3"]).await.is_err());
    assert_eq!(
        doc(&b, &src, 3).await,
        13,
        "the other handle served what a pending bust names"
    );
    server.allow_busts(true);
    delivered(&a).await;
    assert_eq!(doc(&b, &src, 3).await, 13);
}

/// A service starts while Redis is down: `connect_lazy` builds the cache
/// at once, calls run their bodies until Redis answers, an invalidation
/// made meanwhile is kept and delivered, and caching starts once Redis is
/// up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_starts_while_redis_is_down() {
    let mut server = RedisServer::start();
    server.kill();
    let cache = impatient(Duration::from_millis(200))
        .connect_lazy(&server.url())
        .unwrap();
    let src = AtomicU64::new(0);
    for _ in 0..3 {
        assert_eq!(doc(&cache, &src, 4).await, 4, "the body answers");
    }
    src.fetch_add(10, SeqCst);
    assert!(cache.invalidate_keys(["doc:4"]).await.is_err());
    assert_eq!(cache.stats().pending_invalidations, 1);

    server.restart();
    delivered(&cache).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while cache.stats().hits == 0 {
        assert_eq!(doc(&cache, &src, 4).await, 14);
        assert!(
            std::time::Instant::now() < deadline,
            "caching did not start: {:?}",
            cache.stats()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A reconnection attempt whose runtime shuts down (it was started by a
/// call in a short-lived runtime) does not leave the connection "being
/// made" for good: the next call starts another, and caching resumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnection_dropped_with_its_runtime_is_made_again() {
    let server = RedisServer::start();
    let cache = impatient(Duration::from_millis(300))
        .circuit_breaker(3, Duration::from_millis(200))
        .connect(&server.url())
        .await
        .unwrap();
    let src = AtomicU64::new(0);
    assert_eq!(doc(&cache, &src, 6).await, 6);
    // Every connection of the cache is cut; the next call finds it lost.
    let _: redis::Value = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("normal")
        .arg("SKIPME")
        .arg("yes")
        .query(&mut server.raw())
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(doc(&cache, &src, 6).await, 6, "read through");
    // A call in a short-lived runtime starts the reconnection, then the
    // runtime is dropped with it.
    let short = cache.clone();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let src = AtomicU64::new(0);
            tokio::select! {
                biased;
                _ = doc(&short, &src, 6) => {}
                _ = std::future::ready(()) => {}
            }
        });
    })
    .join()
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let hits = cache.stats().hits;
    while cache.stats().hits == hits {
        assert!(
            std::time::Instant::now() < deadline,
            "caching never resumed: {:?}",
            cache.stats()
        );
        assert_eq!(doc(&cache, &src, 6).await, 6);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
