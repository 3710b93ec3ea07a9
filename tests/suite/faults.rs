//! The fault-injection suite: a workload of readers and writers runs while
//! Redis is stalled, killed and restarted, flushed, starved of memory, or
//! has its connections reset. Writers update a fake database and invalidate;
//! readers record the version they saw and when they started. A read is
//! stale if it returned a version older than a write whose invalidation had
//! returned before the read started: there must be none, no bust may be
//! lost, and every key must keep a TTL.

use std::time::{Duration, Instant};

use cachette::Cache;

use crate::scenarios::workload::{self, check, every_key_has_a_ttl};

use crate::support::proxy::{FaultProxy, Mode};
use crate::support::RedisServer;

async fn cache_for(url: &str) -> Cache {
    Cache::builder()
        .command_timeout(Duration::from_millis(50))
        .connect_timeout(Duration::from_millis(200))
        .circuit_breaker(5, Duration::from_millis(200))
        .connect(url)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stalled_for_five_seconds() {
    let server = RedisServer::start();
    let proxy = FaultProxy::start(server.port).await;
    let cache = cache_for(&proxy.url()).await;
    let work = workload::start(&cache, 20, 64);
    tokio::time::sleep(Duration::from_millis(500)).await;
    proxy.set(Mode::Stall);
    let stalled = Instant::now();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let resumed = Instant::now();
    proxy.set(Mode::Pass);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    // Reads from half a second into the stall on: the breaker is open
    // (apart from one probe per cool-down).
    let window = (stalled + Duration::from_millis(500), resumed);
    let report = work.finish_with_window(Some(window)).await;
    if let Some((p50, p99)) = report.window {
        eprintln!(
            "RELIABILITY | stall 5 s, reads while the breaker is open | p50 {:.3} ms | p99 {:.3} ms |",
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3
        );
    }
    check("stall 5 s", 1, &report, &cache);
    every_key_has_a_ttl(&server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_and_restarted() {
    let mut server = RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    let cache = cache_for(&server.url()).await;
    let work = workload::start(&cache, 20, 64);
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.kill(); // invalidations go on while it is down
    tokio::time::sleep(Duration::from_millis(1000)).await;
    server.restart(); // back with its old entries
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let report = work.finish().await;
    check("SIGKILL and restart", 1, &report, &cache);
    every_key_has_a_ttl(&server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flushall_mid_run() {
    let server = RedisServer::start();
    let cache = cache_for(&server.url()).await;
    let work = workload::start(&cache, 20, 64);
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let _: () = redis::cmd("FLUSHALL").query(&mut server.raw()).unwrap();
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    let report = work.finish().await;
    check("FLUSHALL", 3, &report, &cache);
    every_key_has_a_ttl(&server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maxmemory_evicts_entries_and_versions() {
    let server =
        RedisServer::start_with(&["--maxmemory", "2mb", "--maxmemory-policy", "allkeys-lru"]);
    let cache = cache_for(&server.url()).await;
    let work = workload::start(&cache, 2_000, 2_048);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let report = work.finish().await;
    let info: String = redis::cmd("INFO")
        .arg("stats")
        .query(&mut server.raw())
        .unwrap();
    let evicted: usize = info
        .lines()
        .find_map(|l| l.strip_prefix("evicted_keys:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    check("maxmemory 2 MB, allkeys-lru", evicted, &report, &cache);
    assert!(
        evicted > 0,
        "nothing was evicted: the scenario did not bite"
    );
    every_key_has_a_ttl(&server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_reset_repeatedly() {
    let server = RedisServer::start();
    let proxy = FaultProxy::start(server.port).await;
    let cache = cache_for(&proxy.url()).await;
    let work = workload::start(&cache, 20, 64);
    let mut resets = 0;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        resets += proxy.reset_all();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let report = work.finish().await;
    check("connections reset every 100 ms", resets, &report, &cache);
    every_key_has_a_ttl(&server);
}
