//! What is cached and for how long: `ttl` from an expression and in
//! milliseconds, `ttl_fn`, `none_ttl`, `unless`, and a zero TTL.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::Duration;

use cachette::{cached, Cache};

use crate::support::each_backend;
use crate::support::logs::Logs;

/// Counts the bodies that ran.
#[derive(Default)]
struct Runs(AtomicU64);

impl Runs {
    fn run(&self) {
        self.0.fetch_add(1, SeqCst);
    }
    fn get(&self) -> u64 {
        self.0.load(SeqCst)
    }
}

/// A setting read on every call.
static TTL_MS: AtomicU64 = AtomicU64::new(0);

fn configured_ttl() -> Duration {
    Duration::from_millis(TTL_MS.load(SeqCst))
}

#[cached(key = "configured:<id>", ttl = configured_ttl(), cache = cache, unkeyed = [runs])]
async fn configured(cache: &Cache, runs: &Runs, id: u64) -> u64 {
    runs.run();
    id
}

#[cached(key = "short:<id>", ttl = "2500ms", cache = cache, unkeyed = [runs])]
async fn short(cache: &Cache, runs: &Runs, id: u64) -> u64 {
    runs.run();
    id
}

/// Values below 10 are kept two seconds, others an hour.
fn ttl_of(value: &u64) -> Duration {
    if *value < 10 {
        Duration::from_secs(2)
    } else {
        Duration::from_secs(3600)
    }
}

#[cached(key = "per_value:<id>", ttl = 3600, ttl_fn = ttl_of, cache = cache, unkeyed = [runs])]
async fn per_value(cache: &Cache, runs: &Runs, id: u64) -> Result<u64, String> {
    runs.run();
    Ok(id)
}

#[cached(key = "maybe:<id>", ttl = 3600, none_ttl = "2s", cache = cache, unkeyed = [runs])]
async fn maybe(cache: &Cache, runs: &Runs, id: u64) -> Option<u64> {
    runs.run();
    (id > 0).then_some(id)
}

/// How many bodies ran for each call of `f` in order.
async fn ran<F: std::future::Future>(runs: &Runs, f: F) -> u64 {
    let before = runs.get();
    f.await;
    runs.get() - before
}

/// Every way of setting a TTL, against the backends' own expiry: entries
/// with a short TTL are gone after it, entries with a long one are not.
#[tokio::test]
async fn ttls_from_expressions_values_and_milliseconds_are_kept() {
    for (cache, _server) in each_backend().await {
        let backend = cache.backend_name();
        let r = Runs::default();
        TTL_MS.store(2000, SeqCst);
        configured(&cache, &r, 1).await; // two seconds
        TTL_MS.store(3_600_000, SeqCst);
        configured(&cache, &r, 2).await; // an hour: the setting changed
        short(&cache, &r, 1).await;
        per_value(&cache, &r, 1).await.unwrap(); // two seconds
        per_value(&cache, &r, 11).await.unwrap(); // an hour
        maybe(&cache, &r, 0).await; // None: two seconds
        maybe(&cache, &r, 5).await; // Some: an hour
                                    // All stored.
        assert_eq!(ran(&r, configured(&cache, &r, 1)).await, 0, "{backend}");
        assert_eq!(ran(&r, configured(&cache, &r, 2)).await, 0, "{backend}");
        assert_eq!(ran(&r, short(&cache, &r, 1)).await, 0, "{backend}");
        assert_eq!(ran(&r, per_value(&cache, &r, 1)).await, 0, "{backend}");
        assert_eq!(ran(&r, per_value(&cache, &r, 11)).await, 0, "{backend}");
        assert_eq!(
            ran(&r, maybe(&cache, &r, 0)).await,
            0,
            "{backend}: None cached"
        );
        assert_eq!(ran(&r, maybe(&cache, &r, 5)).await, 0, "{backend}");

        // Well past the short TTLs (the stores above took milliseconds).
        tokio::time::sleep(Duration::from_millis(5000)).await;
        assert_eq!(
            ran(&r, configured(&cache, &r, 1)).await,
            1,
            "{backend}: 2 s TTL"
        );
        assert_eq!(
            ran(&r, configured(&cache, &r, 2)).await,
            0,
            "{backend}: 1 h TTL"
        );
        assert_eq!(
            ran(&r, short(&cache, &r, 1)).await,
            1,
            "{backend}: 2500 ms TTL"
        );
        assert_eq!(
            ran(&r, per_value(&cache, &r, 1)).await,
            1,
            "{backend}: ttl_fn, 2 s"
        );
        assert_eq!(
            ran(&r, per_value(&cache, &r, 11)).await,
            0,
            "{backend}: ttl_fn, 1 h"
        );
        assert_eq!(
            ran(&r, maybe(&cache, &r, 0)).await,
            1,
            "{backend}: none_ttl"
        );
        assert_eq!(ran(&r, maybe(&cache, &r, 5)).await, 0, "{backend}: ttl");
    }
}

#[cached(key = "checked:<id>", ttl = 60, unless = |v: &u64| *v == 0, cache = cache, unkeyed = [runs])]
async fn checked(cache: &Cache, runs: &Runs, id: u64) -> Result<u64, String> {
    runs.run();
    Ok(id)
}

#[cached(key = "zero:<id>", ttl = Duration::ZERO, cache = cache, unkeyed = [runs])]
async fn zero(cache: &Cache, runs: &Runs, id: u64) -> u64 {
    runs.run();
    id
}

/// `unless` keeps a value out of the cache; a zero TTL from an expression
/// stores nothing and warns once per function.
#[tokio::test]
async fn unless_and_a_zero_ttl_store_nothing() {
    for (cache, _server) in each_backend().await {
        let backend = cache.backend_name();
        let r = Runs::default();
        assert_eq!(checked(&cache, &r, 0).await, Ok(0));
        assert_eq!(
            ran(&r, checked(&cache, &r, 0)).await,
            1,
            "{backend}: rejected"
        );
        checked(&cache, &r, 3).await.unwrap();
        assert_eq!(
            ran(&r, checked(&cache, &r, 3)).await,
            0,
            "{backend}: stored"
        );

        let logs = Logs::capture();
        for _ in 0..3 {
            assert_eq!(
                ran(&r, zero(&cache, &r, 1)).await,
                1,
                "{backend}: not stored"
            );
        }
        let text = logs.text();
        assert_eq!(
            text.matches("a TTL of zero").count(),
            1,
            "{backend}: warned once: {text}"
        );
    }
}

/// A source that fails while `failing` is set.
#[derive(Clone, Default)]
struct Flaky {
    failing: std::sync::Arc<std::sync::atomic::AtomicBool>,
    version: std::sync::Arc<AtomicU64>,
}

impl Flaky {
    fn read(&self) -> Result<u64, String> {
        if self.failing.load(SeqCst) {
            Err("the database is down".into())
        } else {
            Ok(self.version.load(SeqCst))
        }
    }
}

#[cached(key = "sie:<id>", ttl = 60, stale_if_error = "10m", cache = cache, unkeyed = [source])]
async fn resilient(cache: &Cache, source: &Flaky, id: u64) -> Result<u64, String> {
    let _ = id;
    source.read()
}

#[cached(key = "sie_lock:<id>", ttl = 60, stale_if_error = "10m", strategy = "lock", cache = cache, unkeyed = [source])]
async fn resilient_locked(cache: &Cache, source: &Flaky, id: u64) -> Result<u64, String> {
    let _ = id;
    source.read()
}

#[cached(key = "sie_swr:<id>", ttl = 60, strategy = "swr", stale_ttl = "1m", stale_if_error = "10m", cache = cache, unkeyed = [source])]
async fn resilient_swr(cache: &Cache, source: &Flaky, id: u64) -> Result<u64, String> {
    let _ = id;
    source.read()
}

/// `stale_if_error`: a failing body gets the value kept past its TTL,
/// within the window, and never an invalidated one.
#[tokio::test]
async fn stale_if_error_serves_an_expired_value_never_an_invalidated_one() {
    let clock = crate::support::ManualClock::default();
    clock.advance(Duration::from_secs(1_000_000));
    let server = crate::support::RedisServer::start();
    let builder = Cache::builder()
        .clock(clock.clone())
        .command_timeout(Duration::from_secs(5));
    let caches = [
        builder.clone().memory(),
        builder.connect(&server.url()).await.unwrap(),
    ];
    for cache in caches {
        for strategy in ["aside", "lock", "swr"] {
            let what = format!("{} {strategy}", cache.backend_name());
            let source = Flaky::default();
            let read = |id: u64| {
                let (cache, source) = (&cache, &source);
                async move {
                    match strategy {
                        "aside" => resilient(cache, source, id).await,
                        "lock" => resilient_locked(cache, source, id).await,
                        _ => resilient_swr(cache, source, id).await,
                    }
                }
            };
            // Past the TTL (and swr's stale window), within the window.
            let past = Duration::from_secs(if strategy == "swr" { 130 } else { 70 });
            source.version.store(1, SeqCst);
            assert_eq!(read(1).await, Ok(1));
            clock.advance(past);
            source.failing.store(true, SeqCst);
            let before = cache.stats().stale_on_error;
            assert_eq!(read(1).await, Ok(1), "{what}: the expired value, on Err");
            assert_eq!(cache.stats().stale_on_error, before + 1, "{what}: counted");
            source.failing.store(false, SeqCst);
            source.version.store(2, SeqCst);
            assert_eq!(read(1).await, Ok(2), "{what}: expired is not a hit");

            // Invalidated: never returned, not even on Err.
            assert_eq!(read(2).await, Ok(2));
            clock.advance(past);
            cache
                .invalidate_keys([format!("sie{}:2", suffix(strategy))])
                .await
                .unwrap();
            source.failing.store(true, SeqCst);
            assert!(
                read(2).await.is_err(),
                "{what}: an invalidated value is never returned"
            );

            // Beyond the window: the error.
            source.failing.store(false, SeqCst);
            assert_eq!(read(3).await, Ok(2));
            clock.advance(past + Duration::from_secs(600));
            source.failing.store(true, SeqCst);
            assert!(read(3).await.is_err(), "{what}: past the window");
            source.failing.store(false, SeqCst);
        }
    }
}

fn suffix(strategy: &str) -> &'static str {
    match strategy {
        "aside" => "",
        "lock" => "_lock",
        _ => "_swr",
    }
}

/// A source whose reads can be held (after reading) and made to fail.
#[derive(Clone, Default)]
struct HeldFlaky {
    flaky: Flaky,
    gate: crate::support::source::Gate,
}

impl HeldFlaky {
    async fn read(&self) -> Result<u64, String> {
        let read = self.flaky.read();
        self.gate.pass().await;
        read
    }
}

#[cached(key = "sie_pending:<id>", ttl = 60, stale_if_error = "10m", cache = cache, unkeyed = [source])]
async fn resilient_held(cache: &Cache, source: &HeldFlaky, id: u64) -> Result<u64, String> {
    let _ = id;
    source.read().await
}

/// A bust that could not be delivered while a failing body ran keeps
/// `stale_if_error` from returning what it names (I9): the error is
/// returned instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_if_error_does_not_serve_what_an_undelivered_bust_names() {
    let server = crate::support::RedisServer::start();
    // Busts run a script; without `EVALSHA` they fail and stay pending,
    // while lookups still work.
    server.add_documented_acl_user(&["-evalsha"]);
    let port = server.url().rsplit(':').next().unwrap().to_string();
    let clock = crate::support::ManualClock::default();
    clock.advance(Duration::from_secs(1_000_000));
    let cache = crate::support::builder()
        .clock(clock.clone())
        .connect(&format!("redis://app:s3cret@127.0.0.1:{port}"))
        .await
        .unwrap();
    let source = HeldFlaky::default();
    source.flaky.version.store(1, SeqCst);
    assert_eq!(resilient_held(&cache, &source, 1).await, Ok(1));
    clock.advance(Duration::from_secs(70));
    source.flaky.failing.store(true, SeqCst);
    let (reached, release) = source.gate.hold_next(false);
    let reader = tokio::spawn({
        let (cache, source) = (cache.clone(), source.clone());
        async move { resilient_held(&cache, &source, 1).await }
    });
    reached.notified().await;
    source.flaky.version.store(2, SeqCst);
    assert!(cache.invalidate_keys(["sie_pending:1"]).await.is_err());
    assert!(cache.stats().pending_invalidations > 0, "kept");
    release.notify_one();
    let got = reader.await.unwrap();
    assert!(cache.stats().pending_invalidations > 0, "still kept");
    assert!(
        got.is_err(),
        "returned {got:?}, which an undelivered bust names"
    );
}

#[cached(key = "longer:<id>", ttl = "200ms", ttl_fn = |_: &u64| Duration::from_secs(3600), cache = cache, unkeyed = [runs])]
async fn longer(cache: &Cache, runs: &Runs, id: u64) -> u64 {
    runs.run();
    id
}

#[cached(key = "none_longer:<id>", ttl = "200ms", none_ttl = "1h", cache = cache, unkeyed = [runs])]
async fn none_longer(cache: &Cache, runs: &Runs, id: u64) -> Option<u64> {
    runs.run();
    let _ = id;
    None
}

#[cached(key = "forever:<id>", ttl = 60, ttl_fn = |_: &u64| Duration::MAX, cache = cache, unkeyed = [runs])]
async fn forever(cache: &Cache, runs: &Runs, id: u64) -> u64 {
    runs.run();
    id
}

#[cached(key = "forever_expr:<id>", ttl = Duration::MAX, cache = cache, unkeyed = [runs])]
async fn forever_expr(cache: &Cache, runs: &Runs, id: u64) -> u64 {
    runs.run();
    id
}

/// A value's TTL longer than its function's (`ttl_fn`, `none_ttl`) is kept
/// whole: its versions are lengthened with it. The longest TTLs (up to
/// `Duration::MAX`) are kept too.
#[tokio::test]
async fn ttls_longer_than_the_functions_are_kept_whole() {
    for (cache, _server) in each_backend().await {
        let backend = cache.backend_name();
        let (r, n, f, e) = (
            Runs::default(),
            Runs::default(),
            Runs::default(),
            Runs::default(),
        );
        longer(&cache, &r, 1).await;
        none_longer(&cache, &n, 1).await;
        forever(&cache, &f, 1).await;
        forever_expr(&cache, &e, 1).await;
        // Past the function's 200 ms: a real expiry, not an interleaving.
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(
            ran(&r, longer(&cache, &r, 1)).await,
            0,
            "{backend}: ttl_fn 1 h"
        );
        assert_eq!(
            ran(&n, none_longer(&cache, &n, 1)).await,
            0,
            "{backend}: none_ttl 1 h"
        );
        assert_eq!(
            ran(&f, forever(&cache, &f, 1)).await,
            0,
            "{backend}: ttl_fn MAX"
        );
        assert_eq!(
            ran(&e, forever_expr(&cache, &e, 1)).await,
            0,
            "{backend}: ttl MAX"
        );
        assert_eq!(cache.stats().errors, 0, "{backend}: no backend error");
    }
}

#[cached(key = "renamed:<id>", ttl = 60, cache = cache, unkeyed = [runs])]
async fn renamed(cache: &Cache, runs: &AtomicU64, id: u64) -> u64 {
    runs.fetch_add(1, SeqCst);
    id
}

/// The settings renamed in CHANGELOG.md keep working under their old
/// names, with the same effect; `Stats::pending_busts` and
/// `pending_invalidations` hold the same number.
#[tokio::test]
#[allow(deprecated)]
async fn renamed_settings_keep_their_old_names() {
    let runs = AtomicU64::new(0);
    for cache in [
        Cache::builder()
            .max_memory(1 << 20)
            .max_pending_busts(3)
            .memory(),
        Cache::builder()
            .max_memory_bytes(1 << 20)
            .max_pending_invalidations(3)
            .memory(),
    ] {
        renamed(&cache, &runs, 1).await;
        renamed(&cache, &runs, 1).await;
        let stats = cache.stats();
        assert_eq!(stats.hits, 1);
        assert_eq!(stats.pending_busts, stats.pending_invalidations);
    }
    // Kept invalidations, counted under both names, past the limit of 3.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cache = crate::support::impatient(Duration::from_millis(100))
        .max_pending_busts(3)
        .connect_lazy(&format!("redis://127.0.0.1:{closed}"))
        .unwrap();
    assert!(cache.invalidate_keys(["a", "b"]).await.is_err());
    let stats = cache.stats();
    assert_eq!(stats.pending_invalidations, 2, "{stats:?}");
    assert_eq!(stats.pending_busts, 2);
}

/// `near_cache(false)` is the one way to turn the near-cache off; the old
/// spelling, a budget of zero, still does, and says so once.
#[tokio::test]
async fn a_zero_near_cache_budget_turns_it_off_and_says_so() {
    let server = crate::support::RedisServer::start();
    let logs = Logs::capture();
    let runs = AtomicU64::new(0);
    for id in [20, 21] {
        let cache = crate::support::builder()
            .near_cache_bytes(0)
            .connect(&server.url())
            .await
            .unwrap();
        renamed(&cache, &runs, id).await;
        renamed(&cache, &runs, id).await;
        assert_eq!(cache.stats().hits, 1);
        assert_eq!(cache.stats().near_hits, 0, "off");
    }
    let text = logs.text();
    assert_eq!(
        text.matches("near_cache(false)").count(),
        1,
        "warned once: {text}"
    );
    let quiet = Logs::capture();
    let cache = crate::support::builder()
        .near_cache(false)
        .connect(&server.url())
        .await
        .unwrap();
    renamed(&cache, &runs, 3).await;
    renamed(&cache, &runs, 3).await;
    assert_eq!(cache.stats().near_hits, 0, "off");
    assert!(!quiet.text().contains("near_cache"), "{}", quiet.text());
}

/// `Cache::connect_lazy` builds with default settings and no server: calls
/// read through until Redis answers, then cache.
#[tokio::test]
async fn cache_connect_lazy_builds_without_redis() {
    let runs = AtomicU64::new(0);
    let cache = Cache::connect_lazy("redis://127.0.0.1:1").unwrap();
    assert_eq!(cache.backend_name(), "redis");
    assert_eq!(renamed(&cache, &runs, 4).await, 4);
    assert_eq!(renamed(&cache, &runs, 4).await, 4);
    assert_eq!(runs.load(SeqCst), 2, "read through");
    let server = crate::support::RedisServer::start();
    let cache = Cache::connect_lazy(&server.url()).unwrap();
    renamed(&cache, &runs, 5).await;
    renamed(&cache, &runs, 5).await;
    assert_eq!(cache.stats().hits, 1);
    assert!(Cache::connect_lazy("not a url").unwrap_err().is_config());
}
