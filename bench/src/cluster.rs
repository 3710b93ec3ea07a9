//! Hit and bust costs on a Redis Cluster beside a single Redis, in one run:
//! a single redis-server with one replica, and a cluster of three masters
//! with one replica each, all on loopback. Each table row is measured in
//! alternating rounds with its baseline, a raw GET on the same topology.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cachette::{Cache, ReplicaAcks};

use crate::server::{RedisCluster, RedisServer};
use crate::{measure, micros, op, percentile, user, DbError, Op, Variant};

async fn hit(cache: &Cache, key: &str, tags: &[&str]) {
    cache
        .get_or_fetch(key, tags, Duration::from_secs(300), async {
            Ok::<_, DbError>(user(1))
        })
        .await
        .unwrap();
}

fn hit_op(cache: &Cache, key: &'static str, tags: &'static [&'static str]) -> Op {
    let cache = cache.clone();
    op(move || {
        let cache = cache.clone();
        async move { hit(&cache, key, tags).await }
    })
}

fn raw_op<C>(conn: C) -> Op
where
    C: redis::aio::ConnectionLike + Clone + Send + Sync + 'static,
{
    op(move || {
        let mut conn = conn.clone();
        async move {
            let bytes: Vec<u8> = redis::cmd("GET")
                .arg("raw:user:1")
                .query_async(&mut conn)
                .await
                .unwrap();
            std::hint::black_box(serde_json::from_slice::<crate::User>(&bytes).unwrap());
        }
    })
}

async fn builder() -> cachette::CacheBuilder {
    Cache::builder()
        .command_timeout(Duration::from_secs(1))
        .replica_ack_timeout(Duration::from_secs(1))
        .near_cache_lease(crate::lease_from_env())
}

/// p50 and p99 of `n` calls of `bust`, each on fresh names.
async fn bust_latency<F, Fut>(n: usize, mut bust: F) -> (Duration, Duration)
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut took = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        bust(i).await;
        took.push(t.elapsed());
    }
    took.sort();
    (percentile(&took, 0.5), percentile(&took, 0.99))
}

pub async fn run(quick: bool) {
    let single = RedisServer::start();
    let replica = RedisServer::start_with(&["--replicaof", "127.0.0.1", &single.port.to_string()]);
    let cluster = RedisCluster::start();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut c = redis::Client::open(single.url())
            .unwrap()
            .get_connection()
            .unwrap();
        let info: String = redis::cmd("INFO").arg("replication").query(&mut c).unwrap();
        if info.contains("state=online") {
            break;
        }
        assert!(Instant::now() < deadline, "the replica did not sync");
        std::thread::sleep(Duration::from_millis(50));
    }

    let payload = serde_json::to_vec(&user(1)).unwrap();
    let single_raw = redis::aio::ConnectionManager::new(redis::Client::open(single.url()).unwrap())
        .await
        .unwrap();
    let cluster_raw = redis::cluster::ClusterClient::new(cluster.urls())
        .unwrap()
        .get_async_connection()
        .await
        .unwrap();
    let mut set = redis::cmd("SET");
    set.arg("raw:user:1").arg(&payload);
    set.exec_async(&mut single_raw.clone()).await.unwrap();
    set.exec_async(&mut cluster_raw.clone()).await.unwrap();
    let on_single = builder().await.connect(&single.url()).await.unwrap();
    let on_cluster = builder()
        .await
        .connect_cluster(cluster.urls())
        .await
        .unwrap();
    let on_cluster_no_acks = builder()
        .await
        .replica_acks(ReplicaAcks::Off)
        .connect_cluster(cluster.urls())
        .await
        .unwrap();
    let on_single_no_acks = builder()
        .await
        .replica_acks(ReplicaAcks::Off)
        .connect(&single.url())
        .await
        .unwrap();

    // user:1 and its tag org:acme hash to different masters; so do the
    // three tags of the last row.
    let mut variants = vec![
        Variant::new(
            "single: raw GET + decode (baseline)",
            raw_op(single_raw.clone()),
        ),
        Variant::new(
            "single: cachette hit, 1 tag",
            hit_op(&on_single, "user:1", &["org:acme"]),
        ),
        Variant::new(
            "cluster: raw GET + decode (baseline)",
            raw_op(cluster_raw.clone()),
        ),
        Variant::new(
            "cluster: cachette hit, no tag",
            hit_op(&on_cluster, "user:1", &[]),
        ),
        Variant::new(
            "cluster: cachette hit, 1 tag on another master",
            hit_op(&on_cluster, "user:1", &["org:acme"]),
        ),
        Variant::new(
            "cluster: cachette hit, 3 tags on 3 masters",
            hit_op(&on_cluster, "user:1", &["group:0", "group:1", "group:2"]),
        ),
    ];
    measure(&mut variants, quick, None).await;
    println!("## Hits: single Redis and Redis Cluster\n");
    println!("| variant | p50 (c=1) | p99 (c=1) | p50 / its raw GET | ops/s (c=64) | ops/s / its raw GET |");
    println!("|---|---|---|---|---|---|");
    let mut base = variants[0].summary();
    for (i, v) in variants.iter().enumerate() {
        if i == 2 {
            base = v.summary();
        }
        let s = v.summary();
        println!(
            "| {} | {} | {} | {:.2}x | {:.0} | {:.2}x |",
            v.name,
            micros(s.p50),
            micros(s.p99),
            s.p50.as_secs_f64() / base.p50.as_secs_f64(),
            s.ops_per_sec,
            s.ops_per_sec / base.ops_per_sec
        );
    }

    // Busts, c=1, each on fresh names.
    let n = if quick { 300 } else { 1_000 };
    println!("\n## Busts (c=1, {n} each, fresh names)\n");
    println!("| topology | invalidation | replica acks | p50 | p99 |");
    println!("|---|---|---|---|---|");
    let seq = Arc::new(AtomicU64::new(0));
    let rows: [(&str, &Cache, &str, usize); 8] = [
        ("single", &on_single_no_acks, "off", 1),
        ("single", &on_single, "auto (WAIT 1)", 1),
        ("single", &on_single, "auto (WAIT 1)", 10),
        ("cluster", &on_cluster_no_acks, "off", 1),
        ("cluster", &on_cluster, "auto (WAIT 1 per master)", 1),
        ("cluster", &on_cluster_no_acks, "off", 10),
        ("cluster", &on_cluster, "auto (WAIT 1 per master)", 10),
        ("cluster", &on_cluster, "auto (WAIT 1 per master)", 100),
    ];
    for (topology, cache, acks, names) in rows {
        // Load the script and learn the replicas first.
        cache.invalidate_keys(["warm-up"]).await.unwrap();
        let (p50, p99) = bust_latency(n, |_| {
            let seq = seq.clone();
            async move {
                let i = seq.fetch_add(1, Ordering::Relaxed);
                let keys: Vec<String> = (0..names).map(|k| format!("b:{i}:{k}")).collect();
                let tags: Vec<String> = (0..names).map(|k| format!("t:{i}:{k}")).collect();
                cache.invalidate(&keys, &tags).await.unwrap();
            }
        })
        .await;
        println!(
            "| {topology} | {names} key{s} + {names} tag{s} | {acks} | {} | {} |",
            micros(p50),
            micros(p99),
            s = if names == 1 { "" } else { "s" }
        );
    }
    drop((replica, single, cluster));
}
