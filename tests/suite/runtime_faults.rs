//! A cache used from any runtime (I13), under faults: a silenced cluster
//! node, a nested executor, a runtime without timers, a breaker probe
//! stranded on an idle runtime. Each test here was first a probe of the
//! review of the runtimes change, and failed before its fix.

use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cachette::{cached, Cache};

use crate::runtimes::{current_thread, multi_thread, Db};
use crate::support::proxy::FaultProxy;
use crate::support::{builder, impatient, RedisServer};

/// The same function as `runtimes.rs`'s, under a key of its own.
#[cached(cache = cache, key = "rt-doc:<id>", ttl = 600, unkeyed = [db])]
async fn doc(cache: &Cache, db: &Db, id: u64) -> u64 {
    let _ = id;
    db.0.load(SeqCst)
}

/// Runs `f` on a thread of its own; `None` if it did not return within
/// `limit` (the thread is left behind).
fn bounded<T: Send + 'static>(
    limit: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit).ok()
}

/// A minimal executor that parks the thread (what `futures::executor::block_on` does).
pub(crate) fn park_on<F: std::future::Future>(f: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

/// On a cluster, a master's read connection goes silent (a proxy stops
/// forwarding, no FIN, no RST), with the near-cache off so that hits are
/// plain lookups: its lookups' timeouts end the session, which is replaced
/// (the slot map's refresh asks another master first, so nothing else
/// would notice).
#[cfg(feature = "cluster")]
#[test]
fn on_a_cluster_a_silent_master_connection_is_replaced() {
    let cluster = crate::support::RedisCluster::start();
    let masters = cluster.masters();
    // The master that does not serve slot 0: not the first refresh candidate.
    let (silent, _) = masters
        .iter()
        .find(|(_, ranges)| !ranges.iter().any(|(a, _)| *a == 0))
        .cloned()
        .unwrap();
    let seed = masters
        .iter()
        .find(|(_, ranges)| ranges.iter().any(|(a, _)| *a == 0))
        .unwrap()
        .0;
    let rt = multi_thread();
    let proxy = rt.block_on(FaultProxy::start(silent));
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("cluster-announce-port")
        .arg(proxy.port)
        .query(&mut cluster.node_at(silent).raw())
        .unwrap();
    // Wait until the seed announces the master at the proxy's port.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let slots: Vec<redis::Value> = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query(&mut cluster.node_at(seed).raw())
            .unwrap();
        let announced = slots.iter().any(|range| match range {
            redis::Value::Array(parts) => matches!(
                parts.get(2),
                Some(redis::Value::Array(m)) if matches!(m.get(1), Some(redis::Value::Int(p)) if *p == i64::from(proxy.port))
            ),
            _ => false,
        });
        if announced {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the proxy port never announced: {slots:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let seed_url = format!("redis://127.0.0.1:{seed}");
    let outcome = rt.block_on(async move {
        let cache = impatient(Duration::from_millis(200))
            .circuit_breaker(1_000_000, Duration::from_millis(1))
            // Without the near-cache, hits are plain lookups.
            .near_cache(false)
            .connect_cluster([seed_url])
            .await
            .unwrap();
        let db = Db::default();
        db.0.store(1, SeqCst);
        for id in 0..30 {
            doc(&cache, &db, id).await;
        }
        for id in 0..30 {
            assert_eq!(doc(&cache, &db, id).await, 1);
        }
        let through_proxy = proxy.open_count();
        let silenced = proxy.silence_open();
        let start = Instant::now();
        let mut slow_last = 0;
        let mut sweeps = 0;
        while start.elapsed() < Duration::from_secs(8) && sweeps < 200 {
            if sweeps > 0 && slow_last == 0 && proxy.open_count() >= 1 {
                break;
            }
            sweeps += 1;
            let mut set = tokio::task::JoinSet::new();
            for id in 0..30 {
                let (c, d) = (cache.clone(), db.clone());
                set.spawn(async move {
                    let t = Instant::now();
                    assert_eq!(doc(&c, &d, id).await, 1);
                    t.elapsed()
                });
            }
            slow_last = 0;
            while let Some(took) = set.join_next().await {
                if took.unwrap() >= Duration::from_millis(150) {
                    slow_last += 1;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        (
            through_proxy,
            silenced,
            proxy.open_count(),
            slow_last,
            sweeps,
            cache.stats(),
        )
    });
    let (through_proxy, silenced, reconnected, slow_last, sweeps, stats) = outcome;
    eprintln!(
        "connections through the proxy before {through_proxy}, silenced {silenced}, new ones {reconnected}, \
         slow reads in the last sweep {slow_last}/30 after {sweeps} sweeps; {stats:?}"
    );
    assert!(silenced >= 1);
    assert!(
        reconnected >= 1 && slow_last == 0,
        "the silent master's session was never replaced: {reconnected} new connections, \
         {slow_last}/30 reads still time out after 8 s"
    );
}

/// A cached call driven by a plain parking executor inside a
/// current-thread runtime's `block_on` (a nested `block_on`): the caller's
/// runtime is blocked, so cachette's deadlines are on its own timer, and
/// on a silent connection the call still returns the body's value.
#[test]
fn a_nested_executor_on_a_silent_connection_still_times_out() {
    let server = RedisServer::start();
    let rt = multi_thread();
    let proxy = rt.block_on(FaultProxy::start(server.port));
    let db = Db::default();
    db.0.store(1, SeqCst);
    let cache = rt.block_on(async {
        let cache = impatient(Duration::from_millis(200))
            .connect(&proxy.url())
            .await
            .unwrap();
        assert_eq!(doc(&cache, &db, 7).await, 1);
        cache
    });
    // Healthy: the nested call returns (its driver is on cachette's runtime).
    let (c, d) = (cache.clone(), db.clone());
    let healthy = bounded(Duration::from_secs(10), move || {
        current_thread().block_on(async move { park_on(doc(&c, &d, 7)) })
    });
    assert_eq!(healthy, Some(1), "nested call on a healthy connection");
    assert!(proxy.silence_open() >= 1);
    let (c, d) = (cache.clone(), db.clone());
    let t = Instant::now();
    let silent = bounded(Duration::from_secs(10), move || {
        current_thread().block_on(async move { park_on(doc(&c, &d, 8)) })
    });
    eprintln!(
        "nested call on the silent connection: {silent:?} after {:?}",
        t.elapsed()
    );
    // For comparison, the same call driven by the runtime itself.
    let (c, d) = (cache.clone(), db.clone());
    let t = Instant::now();
    let direct = bounded(Duration::from_secs(10), move || {
        current_thread().block_on(doc(&c, &d, 9))
    });
    eprintln!(
        "direct call on the silent connection: {direct:?} after {:?}",
        t.elapsed()
    );
    assert_eq!(
        silent,
        Some(1),
        "a nested call on a silent connection never returned"
    );
    drop(rt);
}

/// A runtime built without the time driver (`enable_io` only) is served:
/// cachette's deadlines are on its own timer.
#[test]
fn a_runtime_without_timers_is_served() {
    let server = RedisServer::start();
    let rt = multi_thread();
    let db = Db::default();
    db.0.store(1, SeqCst);
    let cache = rt.block_on(async {
        let cache = builder().connect(&server.url()).await.unwrap();
        assert_eq!(doc(&cache, &db, 7).await, 1);
        cache
    });
    let (c, d) = (cache.clone(), db.clone());
    let got = std::thread::spawn(move || {
        let no_timers = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .unwrap();
        no_timers.block_on(doc(&c, &d, 7))
    })
    .join();
    eprintln!(
        "{:?}",
        got.as_ref().map_err(|e| e
            .downcast_ref::<String>()
            .cloned()
            .or(e.downcast_ref::<&str>().map(|s| s.to_string())))
    );
    assert_eq!(
        got.ok(),
        Some(1),
        "a call on a runtime without timers panicked"
    );
    drop(rt);
}

/// The circuit breaker's half-open probe is taken by a call on a
/// current-thread runtime that then idles with the call parked: once the
/// probe has been out for its bound, another call probes, and the breaker
/// closes on a healthy Redis.
#[test]
fn a_breaker_probe_stranded_on_an_idle_runtime_lets_another_probe() {
    use crate::support::proxy::Mode;
    let server = RedisServer::start();
    let rt = multi_thread();
    let proxy = Arc::new(rt.block_on(FaultProxy::start(server.port)));
    let db = Db::default();
    db.0.store(1, SeqCst);
    let cache = rt.block_on(async {
        let cache = impatient(Duration::from_millis(200))
            .circuit_breaker(2, Duration::from_millis(300))
            .near_cache(false)
            .connect(&proxy.url())
            .await
            .unwrap();
        assert_eq!(doc(&cache, &db, 7).await, 1);
        assert_eq!(doc(&cache, &db, 7).await, 1);
        proxy.set(Mode::Stall);
        for id in 100..103 {
            assert_eq!(doc(&cache, &db, id).await, 1);
        }
        assert!(cache.stats().breaker_open, "{:?}", cache.stats());
        // Slow but within the command timeout from now on.
        proxy.set(Mode::DelayDown(Duration::from_millis(100)));
        tokio::time::sleep(Duration::from_millis(400)).await;
        cache
    });
    let idle = current_thread();
    {
        let (c, d) = (cache.clone(), db.clone());
        idle.block_on(async move {
            tokio::spawn(async move { doc(&c, &d, 7).await });
            tokio::time::sleep(Duration::from_millis(5)).await;
        });
    }
    // `idle` stays alive, never driven again; Redis is healthy.
    proxy.set(Mode::Pass);
    let (c, d) = (cache.clone(), db.clone());
    let (open_after, hits_gained, stats) = bounded(Duration::from_secs(30), move || {
        rt.block_on(async move {
            let hits = c.stats().hits;
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(3) {
                assert_eq!(doc(&c, &d, 7).await, 1);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let s = c.stats();
            (s.breaker_open, s.hits - hits, s)
        })
    })
    .expect("returned");
    eprintln!("3 s after Redis is healthy again: breaker open {open_after}, hits gained {hits_gained}; {stats:?}");
    assert!(
        !open_after && hits_gained > 0,
        "a probe parked on an idle runtime keeps the breaker open for every runtime"
    );
    drop(idle);
}
