//! I9 and recovery: invalidations attempted while Redis is down are kept
//! and delivered, nothing they cover is served meanwhile, and the cache
//! reconnects by itself after a restart.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::Duration;

use cachette::{cached, invalidates, Cache};

use crate::support::{eventually, RedisServer};

/// A cache that gives up on a dead Redis quickly.
fn impatient(timeout_ms: u64) -> cachette::CacheBuilder {
    Cache::builder()
        .command_timeout(Duration::from_millis(timeout_ms))
        .connect_timeout(Duration::from_millis(timeout_ms))
}

#[cached(cache = cache, key = "doc:<id>", ttl = 300)]
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
    let cache = impatient(300).connect(&server.url()).await.unwrap();
    let src = AtomicU64::new(0);
    assert_eq!(doc(&cache, &src, 0).await, 0);
    assert_eq!(doc(&cache, &src, 0).await, 0);
    assert_eq!(cache.stats().hits, 1);

    server.kill();
    update(&cache, &src, 0).await.unwrap(); // the write commits, the bust fails
    assert_eq!(cache.stats().pending_busts, 1);
    assert_eq!(
        doc(&cache, &src, 0).await,
        1,
        "read through while Redis is down"
    );

    server.restart(); // comes back with the old entry and its old versions
    let raw: Option<Vec<u8>> = redis::cmd("GET")
        .arg("cachette:e:{doc:0}")
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
    eventually("the pending bust to be delivered", || {
        cache.stats().pending_busts == 0
    })
    .await;
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
    let cache = impatient(300)
        .max_pending_busts(2)
        .connect(&server.url())
        .await
        .unwrap();
    let src = AtomicU64::new(0);
    doc(&cache, &src, 9).await;
    server.kill();
    for id in 0..3 {
        update(&cache, &src, id).await.unwrap();
    }
    assert_eq!(
        cache.stats().pending_busts,
        3,
        "no bust is dropped past the bound"
    );
    server.restart(); // empty: no persistence
                      // Over the bound: even doc:9, which no pending bust names, is read through.
    let misses = cache.stats().misses;
    let value = doc(&cache, &src, 9).await;
    if cache.stats().pending_busts > 0 {
        assert_eq!(cache.stats().misses, misses, "read through, not filled");
    }
    assert_eq!(value, 3 + 9);
    eventually("the pending busts to be delivered", || {
        cache.stats().pending_busts == 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_breaker_stops_calling_redis_until_a_probe_succeeds() {
    let mut server = RedisServer::start();
    let cache = impatient(200)
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
    let proxy = crate::proxy::FaultProxy::start(server.port).await;
    let cache = Cache::builder()
        .command_timeout(Duration::from_secs(5))
        .connect(&proxy.url())
        .await
        .unwrap();
    let src = AtomicU64::new(0);
    assert_eq!(doc(&cache, &src, 1).await, 1);

    proxy.set(crate::proxy::Mode::Stall);
    src.fetch_add(10, SeqCst); // the database write the bust is for
    let cancelled =
        tokio::time::timeout(Duration::from_millis(100), cache.invalidate_keys(["doc:1"])).await;
    assert!(cancelled.is_err(), "the bust was still waiting for Redis");
    assert_eq!(cache.stats().pending_busts, 1, "kept though cancelled");
    assert_eq!(doc(&cache, &src, 1).await, 11, "read through while pending");

    proxy.set(crate::proxy::Mode::Pass);
    eventually("the cancelled bust to be delivered", || {
        cache.stats().pending_busts == 0
    })
    .await;
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
        eventually("the kept bust to be delivered", || {
            cache.stats().pending_busts == 0
        })
        .await;
        assert_eq!(doc(&cache, &src, 2).await, 12);
    }
}
