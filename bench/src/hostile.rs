//! Figures for hostile conditions (RELIABILITY.md): what Redis and this
//! process hold after many misses on ids that do not exist, and how a
//! large set of undelivered invalidations is delivered.
//!
//! ```text
//! cachette-bench junk 1000000       # misses on absent ids, then on present ones
//! cachette-bench pending 200000     # undelivered busts while writes are paused
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cachette::Cache;

use crate::server::RedisServer;

fn info_field(conn: &mut redis::Connection, section: &str, field: &str) -> u64 {
    let info: String = redis::cmd("INFO").arg(section).query(conn).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// `n` misses through `get_or_fetch`, 64 at a time, each for a distinct id,
/// returning an error (an absent row) or a value.
async fn misses(cache: &Cache, n: u64, present: bool) -> Duration {
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..64)
        .map(|_| {
            let (cache, next) = (cache.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let id = next.fetch_add(1, Ordering::Relaxed);
                    if id >= n {
                        return;
                    }
                    let key = format!("user:{}:{id}", if present { "p" } else { "a" });
                    let _ = cache
                        .get_or_fetch(&key, &[], Duration::from_secs(300), async move {
                            if present {
                                Ok(id)
                            } else {
                                Err("no such row")
                            }
                        })
                        .await;
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    started.elapsed()
}

pub async fn junk(n: u64) {
    let server = RedisServer::start();
    let mut raw = redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let cache = Cache::builder()
        .command_timeout(Duration::from_secs(2))
        .connect(&server.url())
        .await
        .unwrap();
    println!("| misses | keys in Redis | Redis used_memory | took |");
    println!("|---|---|---|---|");
    let base = info_field(&mut raw, "memory", "used_memory");
    let took = misses(&cache, n, false).await;
    let keys: u64 = redis::cmd("DBSIZE").query(&mut raw).unwrap();
    let used = info_field(&mut raw, "memory", "used_memory");
    println!(
        "| {n} on absent ids (errors, not cached) | {keys} | +{:.1} MiB | {:.1} s |",
        used.saturating_sub(base) as f64 / 1048576.0,
        took.as_secs_f64()
    );
    let base = used;
    let took = misses(&cache, n, true).await;
    let keys: u64 = redis::cmd("DBSIZE").query(&mut raw).unwrap();
    let used = info_field(&mut raw, "memory", "used_memory");
    let ttls: Vec<i64> = (0..5)
        .map(|_| {
            let key: String = redis::cmd("RANDOMKEY").query(&mut raw).unwrap();
            redis::cmd("PTTL").arg(key).query(&mut raw).unwrap()
        })
        .collect();
    println!(
        "| {n} on present ids (cached, TTL 300 s) | {keys} | +{:.1} MiB | {:.1} s |",
        used.saturating_sub(base) as f64 / 1048576.0,
        took.as_secs_f64()
    );
    println!("\nTTLs of random keys after the second run (ms): {ttls:?}");
}

pub async fn pending(n: usize, limit: usize) {
    let server = RedisServer::start();
    let mut raw = redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let cache = Cache::builder()
        .command_timeout(Duration::from_millis(500))
        .max_pending_invalidations(limit)
        .connect(&server.url())
        .await
        .unwrap();
    let tags: Vec<String> = (0..n).map(|i| format!("bulk:{i}")).collect();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("slowlog-log-slower-than")
        .arg(1000)
        .query(&mut raw)
        .unwrap();
    let _: () = redis::cmd("SLOWLOG").arg("RESET").query(&mut raw).unwrap();
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(3_000)
        .arg("WRITE")
        .query(&mut raw)
        .unwrap();
    let before = crate::alloc::live();
    let failed = cache.invalidate_tags(&tags).await.is_err();
    drop(tags);
    // What stays allocated once the failed bust is gone: the pending set.
    let after = crate::alloc::live();
    let pending = cache.stats().pending_invalidations;
    let _: () = redis::cmd("CLIENT").arg("UNPAUSE").query(&mut raw).unwrap();
    let unpaused = Instant::now();
    while cache.stats().pending_invalidations > 0 {
        assert!(
            unpaused.elapsed() < Duration::from_secs(120),
            "not delivered"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let delivered = unpaused.elapsed();
    let slow: Vec<redis::Value> = redis::cmd("SLOWLOG")
        .arg("GET")
        .arg(10_000)
        .query(&mut raw)
        .unwrap();
    let slowest = slow
        .iter()
        .filter_map(|e| match e {
            redis::Value::Array(parts) => match parts.get(2) {
                Some(redis::Value::Int(us)) => Some(*us),
                _ => None,
            },
            _ => None,
        })
        .max()
        .unwrap_or(0);
    println!(
        "| {n} names, max_pending_invalidations {limit} | bust failed: {failed} | pending shown: {pending} | held while pending: {:.1} MiB | delivered {:.2} s after the pause ended | {} commands over 1 ms, slowest {:.1} ms |",
        after.saturating_sub(before) as f64 / 1048576.0,
        delivered.as_secs_f64(),
        slow.len(),
        slowest as f64 / 1000.0
    );
}
