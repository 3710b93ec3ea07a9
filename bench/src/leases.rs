//! `cachette-bench leases`: what a lease costs a bust, and how many
//! ordering round trips a busy connection sends under it.
//!
//! For each lease (none, 1, 2 and 5 ms), in a namespace of its own: the
//! p50 of a one-tag bust at one caller (the writer's own lease and the
//! namespace's set, settled), and, with 64 callers hitting one entry for
//! two seconds, the round trips the reader's connection sent (orderings,
//! refreshes included) per second, beside the `2/L` the issue bounds them
//! by.

use std::time::{Duration, Instant};

use cachette::Cache;

use crate::server::RedisServer;
use crate::user;

/// The 30 days cachette gives the namespace's lease, in milliseconds.
const LIFETIME_MS: u64 = 30 * 24 * 3600 * 1000;

async fn read(cache: &Cache) -> crate::User {
    cache
        .get_or_fetch("user:1", &["org:7"], Duration::from_secs(300), async {
            Ok::<_, String>(user(1))
        })
        .await
        .unwrap()
}

pub async fn run() {
    let server = RedisServer::start();
    let url = server.url();
    let mut raw = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    println!("## Leases: busts and round trips\n");
    println!("| lease | bust p50 (c=1) | bust p99 | round trips/s on the reader's connection (64 callers hitting) | 2/L | lease hits/s |");
    println!("|---|---|---|---|---|---|");
    for ms in [0u64, 1, 2, 5] {
        let lease = Duration::from_millis(ms);
        let ns = format!("bench{ms}");
        let cache = Cache::builder()
            .namespace(&ns)
            .command_timeout(Duration::from_secs(1))
            .near_cache_lease(lease)
            .connect(&url)
            .await
            .unwrap();
        for _ in 0..200 {
            read(&cache).await;
        }
        if ms > 0 {
            // Settled: not taken for made again after a loss.
            let _: () = redis::cmd("PEXPIRE")
                .arg(cachette::admin::lease_name(&ns))
                .arg(LIFETIME_MS - 10_000)
                .query(&mut raw)
                .unwrap();
            for _ in 0..200 {
                read(&cache).await;
            }
        }
        let mut busts = Vec::new();
        for i in 0..200 {
            let tag = format!("t{i}");
            let started = Instant::now();
            cache.invalidate_tags([tag.as_str()]).await.unwrap();
            busts.push(started.elapsed());
        }
        busts.sort();
        let (p50, p99) = (busts[busts.len() / 2], busts[busts.len() * 99 / 100]);
        for _ in 0..200 {
            read(&cache).await;
        }
        let before = cache.stats();
        let started = Instant::now();
        let window = Duration::from_secs(2);
        let callers: Vec<_> = (0..64)
            .map(|_| {
                let cache = cache.clone();
                tokio::spawn(async move {
                    while started.elapsed() < window {
                        std::hint::black_box(read(&cache).await);
                    }
                })
            })
            .collect();
        for c in callers {
            c.await.unwrap();
        }
        let secs = started.elapsed().as_secs_f64();
        let after = cache.stats();
        let trips = (after.near_orderings - before.near_orderings) as f64 / secs;
        let leased = (after.near_lease_hits - before.near_lease_hits) as f64 / secs;
        let bound = if ms > 0 {
            format!("{:.0}", 2000.0 / ms as f64)
        } else {
            "-".into()
        };
        println!(
            "| {} | {} | {} | {:.0} | {} | {:.0} |",
            if ms > 0 {
                format!("{ms} ms")
            } else {
                "none".into()
            },
            crate::micros(p50),
            crate::micros(p99),
            trips,
            bound,
            leased
        );
    }
}
