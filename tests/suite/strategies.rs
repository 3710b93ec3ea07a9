//! The strategies: in-process coalescing, the fleet-wide lock,
//! stale-while-revalidate and early refresh, on both backends.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cachette::{cached, Cache};
use tokio::sync::Notify;

use crate::support::{each_backend, eventually, FixedRandom, ManualClock, RedisServer};

/// A fake source: a version number, a count of body runs, and a gate that
/// holds the next body run after it has read the version.
#[derive(Clone, Default)]
struct Source {
    version: Arc<AtomicU64>,
    runs: Arc<AtomicU64>,
    gate: Arc<Mutex<Option<Gate>>>,
}

#[derive(Clone)]
struct Gate {
    reached: Arc<Notify>,
    release: Arc<Notify>,
    /// Panic once released.
    panic: bool,
}

impl Source {
    /// Holds the next body run; returns (reached, release).
    fn hold_next(&self, panic: bool) -> (Arc<Notify>, Arc<Notify>) {
        let gate = Gate {
            reached: Arc::new(Notify::new()),
            release: Arc::new(Notify::new()),
            panic,
        };
        let pair = (gate.reached.clone(), gate.release.clone());
        *self.gate.lock().unwrap() = Some(gate);
        pair
    }

    async fn read(&self) -> u64 {
        self.runs.fetch_add(1, SeqCst);
        let version = self.version.load(SeqCst);
        let gate = self.gate.lock().unwrap().take();
        if let Some(gate) = gate {
            gate.reached.notify_one();
            gate.release.notified().await;
            if gate.panic {
                panic!("the body failed");
            }
        }
        version
    }

    fn runs(&self) -> u64 {
        self.runs.load(SeqCst)
    }
}

#[derive(Clone)]
struct Svc {
    cache: Cache,
    src: Source,
}

impl Svc {
    #[cached(cache = self.cache, key = "aside:<id>", ttl = 60)]
    async fn aside(&self, id: u64) -> u64 {
        self.src.read().await + id
    }

    #[cached(cache = self.cache, key = "swr:<id>", ttl = 60, tags = ["t:<id>"], strategy = "swr", stale_ttl = "10m")]
    async fn swr(&self, id: u64) -> Result<u64, String> {
        Ok(self.src.read().await + id)
    }

    #[cached(cache = self.cache, key = "early:<id>", ttl = 60, strategy = "early", beta = 1.0)]
    async fn early(&self, id: u64, clock: &ManualClock) -> u64 {
        // The body "takes" one second of the injected clock.
        clock.advance(Duration::from_secs(1));
        self.src.read().await + id
    }
}

fn svc(cache: Cache) -> Svc {
    Svc {
        cache,
        src: Source::default(),
    }
}

/// Both backends, built with a manual clock (and a fixed random draw).
async fn each_backend_with(clock: &ManualClock, draw: f64) -> Vec<(Cache, Option<RedisServer>)> {
    let server = RedisServer::start();
    let builder = Cache::builder()
        .clock(clock.clone())
        .random(FixedRandom(draw))
        .command_timeout(Duration::from_secs(5));
    vec![
        (builder.clone().memory(), None),
        (builder.connect(&server.url()).await.unwrap(), Some(server)),
    ]
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
        let s = svc(cache.clone());
        s.src.version.store(100, SeqCst);
        assert_eq!(s.swr(1).await.unwrap(), 101);

        // Past the fresh window: 200 callers get the old value while one
        // refresh is held in its body.
        clock.advance(Duration::from_secs(61));
        s.src.version.store(200, SeqCst);
        let (reached, release) = s.src.hold_next(false);
        let calls: Vec<_> = (0..200)
            .map(|_| {
                let s = s.clone();
                tokio::spawn(async move { s.swr(1).await })
            })
            .collect();
        for call in calls {
            assert_eq!(
                call.await.unwrap().unwrap(),
                101,
                "served stale without waiting"
            );
        }
        reached.notified().await;
        assert_eq!(s.src.runs(), 2, "exactly one refresh");
        assert_eq!(cache.stats().refreshes, 1);
        assert_eq!(cache.stats().stale_hits, 200);
        release.notify_one();
        cache.refreshes_settled().await;
        assert_eq!(
            s.swr(1).await.unwrap(),
            201,
            "the refreshed value is served"
        );
        assert_eq!(s.src.runs(), 2);

        // Past both windows: a plain miss.
        clock.advance(Duration::from_secs(60 + 601));
        s.src.version.store(300, SeqCst);
        assert_eq!(s.swr(1).await.unwrap(), 301);
        assert_eq!(s.src.runs(), 3);
        assert_eq!(cache.stats().refreshes, 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_swr_refresh_that_raced_an_invalidation_cannot_overwrite_it() {
    let clock = ManualClock::default();
    for (cache, _server) in each_backend_with(&clock, 0.5).await {
        let s = svc(cache.clone());
        s.src.version.store(0, SeqCst);
        s.swr(1).await.unwrap();
        clock.advance(Duration::from_secs(61));
        s.src.version.store(10, SeqCst);
        let (reached, release) = s.src.hold_next(false);
        assert_eq!(s.swr(1).await.unwrap(), 1, "stale, refresh started");
        reached.notified().await; // the refresh has read version 10
        s.src.version.store(20, SeqCst);
        cache.invalidate_tags(["t:1"]).await.unwrap();
        release.notify_one();
        cache.refreshes_settled().await;
        assert_eq!(
            s.swr(1).await.unwrap(),
            21,
            "the raced refresh's value was served"
        );
        assert_eq!(s.swr(1).await.unwrap(), 21);
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
