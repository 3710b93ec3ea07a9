//! `cachette-bench batches`: a batch read of 100 elements beside 100
//! single-key calls and a raw pipelined `MGET` of 100 same-sized strings,
//! in alternating rounds; cold reads with one body call beside a hundred;
//! and 64 concurrent single-key misses through the link, in body calls.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use cachette::{cached, invalidates, Cache};
use redis::aio::ConnectionManager;

use crate::server::RedisServer;
use crate::{user, DbError, User};

static CACHE: OnceLock<Cache> = OnceLock::new();
static BODY_CALLS: AtomicU64 = AtomicU64::new(0);

fn cache() -> &'static Cache {
    CACHE.get().expect("set in run")
}

#[cached(
    batch = "id in ids",
    key = "buser:<id>",
    ttl = 300,
    tags = ["borg:<org>"],
    cache = cache(),
    one = batch_one
)]
async fn batch_users(org: &str, ids: &[u64]) -> Result<HashMap<u64, User>, DbError> {
    let _ = org;
    BODY_CALLS.fetch_add(1, Ordering::Relaxed);
    Ok(ids.iter().map(|id| (*id, user(*id))).collect())
}

/// A single-key function over the same keys, not linked (its own body).
#[cached(key = "suser:<id>", ttl = 300, tags = ["borg:<org>"], cache = cache())]
async fn single_user(id: u64, org: &str) -> Result<User, DbError> {
    let _ = org;
    BODY_CALLS.fetch_add(1, Ordering::Relaxed);
    Ok(user(id))
}

#[invalidates(tags = ["borg:<org>"], cache = cache())]
async fn bust_org(org: &str) {
    let _ = org;
}

const N: u64 = 100;

fn p50(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

pub async fn run(quick: bool, lease: Duration, near: bool) {
    let server = RedisServer::start();
    let url = server.url();
    let raw = ConnectionManager::new(redis::Client::open(url.as_str()).unwrap())
        .await
        .unwrap();
    let mut builder = Cache::builder().command_timeout(Duration::from_secs(2));
    if near {
        builder = builder.near_cache(true);
    }
    if !lease.is_zero() {
        builder = builder.near_cache_lease(lease);
    }
    CACHE.set(builder.connect(&url).await.unwrap()).unwrap();
    let ids: Vec<u64> = (1..=N).collect();
    let keys: Vec<String> = ids.iter().map(|id| format!("raw:b:{id}")).collect();
    let blob = serde_json::to_vec(&user(1)).unwrap();
    for key in &keys {
        let _: () = redis::cmd("SET")
            .arg(key)
            .arg(&blob)
            .query_async(&mut raw.clone())
            .await
            .unwrap();
    }
    // Warm: filled, then read once (kept by a near-cache).
    for _ in 0..2 {
        batch_users("7", &ids).await.unwrap();
        for id in &ids {
            single_user(*id, "7").await.unwrap();
        }
    }
    let rounds = if quick { 20 } else { 60 };
    let per_round = if quick { 20 } else { 50 };
    let (mut batch, mut singles, mut mget, mut mget_decode) = (vec![], vec![], vec![], vec![]);
    for _ in 0..rounds {
        let t = Instant::now();
        for _ in 0..per_round {
            let got = batch_users("7", &ids).await.unwrap();
            assert_eq!(got.len(), N as usize);
        }
        batch.push(t.elapsed() / per_round);
        let t = Instant::now();
        for _ in 0..per_round {
            let got: Vec<Vec<u8>> = redis::cmd("MGET")
                .arg(&keys)
                .query_async(&mut raw.clone())
                .await
                .unwrap();
            assert_eq!(got.len(), N as usize);
        }
        mget.push(t.elapsed() / per_round);
        let t = Instant::now();
        for _ in 0..per_round {
            let got: Vec<Vec<u8>> = redis::cmd("MGET")
                .arg(&keys)
                .query_async(&mut raw.clone())
                .await
                .unwrap();
            let users: Vec<User> = got
                .iter()
                .map(|b| serde_json::from_slice(b).unwrap())
                .collect();
            std::hint::black_box(users);
        }
        mget_decode.push(t.elapsed() / per_round);
        let t = Instant::now();
        for _ in 0..(per_round / 5).max(1) {
            for id in &ids {
                std::hint::black_box(single_user(*id, "7").await.unwrap());
            }
        }
        singles.push(t.elapsed() / (per_round / 5).max(1));
    }
    let (batch, singles, mget, mget_decode) =
        (p50(batch), p50(singles), p50(mget), p50(mget_decode));
    let rate = |d: Duration| 1.0 / d.as_secs_f64();
    let mode = match (near, lease.is_zero()) {
        (_, false) => format!("near-cache, {} ms lease", lease.as_secs_f64() * 1000.0),
        (true, true) => "near-cache, no lease".to_string(),
        (false, true) => "no near-cache".to_string(),
    };
    println!("## Batch reads: 100 elements, all hits ({mode})\n");
    println!("| variant | p50 per 100 elements | calls of 100/s | vs raw `MGET` |");
    println!("|---|---|---|---|");
    for (name, d) in [
        ("raw pipelined `MGET` of 100 (baseline)", mget),
        ("raw `MGET` of 100 + JSON decode", mget_decode),
        ("`#[cached(batch)]`, one call of 100", batch),
        ("100 calls of a single-key `#[cached]`", singles),
    ] {
        println!(
            "| {name} | {:.1} µs | {:.0} | {:.2}x |",
            d.as_secs_f64() * 1e6,
            rate(d),
            rate(d) / rate(mget)
        );
    }
    println!();

    // Cold: every element misses (the org's tag busted before each round).
    let (mut cold_batch, mut cold_singles) = (vec![], vec![]);
    let (mut batch_bodies, mut single_bodies) = (0, 0);
    for _ in 0..(rounds / 2).max(5) {
        bust_org("7").await;
        let before = BODY_CALLS.load(Ordering::Relaxed);
        let t = Instant::now();
        batch_users("7", &ids).await.unwrap();
        cold_batch.push(t.elapsed());
        batch_bodies = BODY_CALLS.load(Ordering::Relaxed) - before;
        let before = BODY_CALLS.load(Ordering::Relaxed);
        let t = Instant::now();
        for id in &ids {
            single_user(*id, "7").await.unwrap();
        }
        cold_singles.push(t.elapsed());
        single_bodies = BODY_CALLS.load(Ordering::Relaxed) - before;
    }
    println!("## Batch reads: 100 elements, all misses ({mode})\n");
    println!("| variant | p50 | body calls |");
    println!("|---|---|---|");
    println!(
        "| `#[cached(batch)]`, one call of 100 | {:.2} ms | {batch_bodies} |",
        p50(cold_batch).as_secs_f64() * 1e3
    );
    println!(
        "| 100 calls of a single-key `#[cached]` | {:.2} ms | {single_bodies} |",
        p50(cold_singles).as_secs_f64() * 1e3
    );
    println!();

    // 64 concurrent single-key misses through the link.
    bust_org("7").await;
    let before = BODY_CALLS.load(Ordering::Relaxed);
    let tasks: Vec<_> = (1..=64u64)
        .map(|id| tokio::spawn(async move { batch_one("7", id).await.unwrap() }))
        .collect();
    for t in tasks {
        assert!(t.await.unwrap().is_some());
    }
    let linked = BODY_CALLS.load(Ordering::Relaxed) - before;
    bust_org("7").await;
    let before = BODY_CALLS.load(Ordering::Relaxed);
    let tasks: Vec<_> = (1..=64u64)
        .map(|id| tokio::spawn(async move { single_user(id, "7").await.unwrap() }))
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let unlinked = BODY_CALLS.load(Ordering::Relaxed) - before;
    println!("## 64 concurrent single-key misses ({mode})\n");
    println!("| function | body calls |");
    println!("|---|---|");
    println!("| linked to the batch (`one = batch_one`) | {linked} |");
    println!("| a single-key `#[cached]` | {unlinked} |");
    println!();
}
