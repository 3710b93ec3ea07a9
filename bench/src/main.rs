//! Side-by-side benchmark: raw `redis` GET, cachette (macro and programmatic,
//! Redis and embedded), the `cached` crate's Redis-backed macro, and the
//! hand-written cache-aside with tag sets. One process, one redis-server on
//! loopback started here, alternating rounds so that noise hits every
//! variant alike. Prints Markdown; see BENCHMARKS.md.
//!
//! ```text
//! cd bench && cargo run --release            # full run
//! cd bench && cargo run --release -- quick   # shorter rounds
//! cd bench && cargo run --release -- hits N  # only N cachette hits (for profiling)
//! cd bench && cargo run --release -- raw N   # only N raw GETs (for profiling)
//! cd bench && cargo run --release -- cluster # Redis Cluster beside a single Redis
//! cd bench && cargo run --release -- junk N  # Redis memory after N misses (hostile.rs)
//! cd bench && cargo run --release -- pending N LIMIT # N undelivered busts (hostile.rs)
//! cd bench && cargo run --release -- spans quick     # a hit, with and without a subscriber
//! cd bench && cargo run --release -- concurrent N # 64 tasks of N hits: PINGs per hit
//! cd bench && cargo run --release -- stale SECONDS # stale reads beside cache-aio (the near-cache)
//! cd bench && cargo run --release -- memory N   # memory with N keys kept (the near-cache)
//! cd bench && cargo run --release -- batches [near] # batch reads (CACHETTE_BENCH_LEASE_MS for a lease)
//! ```

mod alloc;
mod batches;
mod cluster;
mod codecs;
mod hostile;
mod leases;
mod near;
mod server;
mod upstash;

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use cachette::{cached, Cache};
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};

#[global_allocator]
static ALLOC: alloc::Counting = alloc::Counting;

/// About 200 bytes of JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    id: u64,
    name: String,
    email: String,
    org: String,
    roles: Vec<String>,
    created_at: String,
    active: bool,
    score: f64,
}

fn user(id: u64) -> User {
    User {
        id,
        name: "Ada Lovelace".into(),
        email: "ada.lovelace@example.com".into(),
        org: "analytical-engines".into(),
        roles: vec!["admin".into(), "editor".into(), "billing".into()],
        created_at: "2026-11-27T12:00:00Z".into(),
        active: true,
        score: 98.25,
    }
}

static REDIS: OnceLock<Cache> = OnceLock::new();
static MEMORY: OnceLock<Cache> = OnceLock::new();
static URL: OnceLock<String> = OnceLock::new();

fn redis_cache() -> &'static Cache {
    REDIS.get().expect("set in main")
}

fn memory_cache() -> &'static Cache {
    MEMORY.get().expect("set in main")
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct DbError(String);

#[cached(cache = redis_cache(), key = "user:<id>", ttl = 300, tags = ["org:<org>"])]
async fn cachette_user(id: u64, org: &str) -> Result<User, DbError> {
    let _ = org;
    Ok(user(id))
}

#[cached(cache = redis_cache(), key = "swr:<id>", ttl = 300, tags = ["org:<org>"], strategy = "swr")]
async fn cachette_swr_user(id: u64, org: &str) -> Result<User, DbError> {
    let _ = org;
    Ok(user(id))
}

#[cached(cache = memory_cache(), key = "user:<id>", ttl = 300, tags = ["org:<org>"])]
async fn embedded_user(id: u64, org: &str) -> Result<User, DbError> {
    let _ = org;
    Ok(user(id))
}

#[cached::macros::concurrent_cached(
    map_error = r##"|e| DbError(format!("{e:?}"))"##,
    ty = "cached::AsyncRedisCache<u64, User>",
    create = r##" {
        cached::AsyncRedisCache::builder("bench-cached-crate")
            .ttl(cached::time::Duration::from_secs(300))
            .connection_string(URL.get().unwrap())
            .build()
            .await
            .expect("cached crate's redis store")
    } "##
)]
async fn cached_crate_user(id: u64) -> Result<User, DbError> {
    Ok(user(id))
}

/// The seed article's cache-aside with tag sets, written by hand.
mod seed {
    use super::*;

    pub async fn get(conn: &ConnectionManager, id: u64, org: &str) -> Result<User, DbError> {
        let key = format!("seed:user:{id}");
        let cached: Option<Vec<u8>> = redis::cmd("GET")
            .arg(&key)
            .query_async(&mut conn.clone())
            .await
            .unwrap();
        if let Some(bytes) = cached {
            if let Ok(user) = serde_json::from_slice(&bytes) {
                return Ok(user);
            }
        }
        let value = user(id);
        fill(conn, &key, &value, &[&format!("org:{org}")]).await;
        Ok(value)
    }

    pub async fn fill(conn: &ConnectionManager, key: &str, value: &User, tags: &[&str]) {
        let mut conn = conn.clone();
        let json = serde_json::to_vec(value).unwrap();
        let _: () = redis::cmd("SETEX")
            .arg(key)
            .arg(300)
            .arg(json)
            .query_async(&mut conn)
            .await
            .unwrap();
        for tag in tags {
            let _: () = redis::cmd("SADD")
                .arg(format!("seed:tag:{tag}"))
                .arg(key)
                .query_async(&mut conn)
                .await
                .unwrap();
            let _: () = redis::cmd("EXPIRE")
                .arg(format!("seed:tag:{tag}"))
                .arg(300)
                .query_async(&mut conn)
                .await
                .unwrap();
        }
    }

    pub async fn invalidate_tag(conn: &ConnectionManager, tag: &str) {
        let mut conn = conn.clone();
        let set = format!("seed:tag:{tag}");
        let keys: Vec<String> = redis::cmd("SMEMBERS")
            .arg(&set)
            .query_async(&mut conn)
            .await
            .unwrap();
        if !keys.is_empty() {
            let _: () = redis::cmd("DEL")
                .arg(keys)
                .arg(&set)
                .query_async(&mut conn)
                .await
                .unwrap();
        }
    }
}

/// Commands the server has run so far (`INFO commandstats`, this one
/// included).
async fn commands_run(conn: &ConnectionManager) -> u64 {
    let text: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut conn.clone())
        .await
        .unwrap();
    text.lines()
        .filter_map(|l| l.split("calls=").nth(1))
        .filter_map(|rest| rest.split(',').next()?.parse::<u64>().ok())
        .sum()
}

async fn raw_get(conn: &ConnectionManager) -> User {
    let bytes: Vec<u8> = redis::cmd("GET")
        .arg("raw:user:1")
        .query_async(&mut conn.clone())
        .await
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

type Op = Arc<dyn Fn() -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

fn op<F, Fut>(f: F) -> Op
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    Arc::new(move || Box::pin(f()))
}

/// An operation run on a clone of `cache`.
fn on_cache<F, Fut>(cache: &Cache, f: F) -> Op
where
    F: Fn(Cache) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let cache = cache.clone();
    op(move || f(cache.clone()))
}

/// A hit of `user:1` (tag `org:7`) through `get_or_fetch`.
async fn user_hit(cache: Cache) {
    cache
        .get_or_fetch("user:1", &["org:7"], Duration::from_secs(300), async {
            Ok::<_, DbError>(user(1))
        })
        .await
        .unwrap();
}

struct Variant {
    name: &'static str,
    op: Op,
    latencies: Vec<Duration>,
    ops: u64,
    busy: Duration,
    allocs: u64,
    alloc_ops: u64,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Prints `variants` as a Markdown table under `## title`: p50 at c=1 and
/// throughput at c=64, each also as a ratio against the first variant
/// (`base`, as the headers call it), and allocations per `op`.
fn ratios_table(title: &str, base: &str, op: &str, variants: &[Variant]) {
    let first = variants[0].summary();
    println!("## {title}\n");
    println!(
        "| variant | p50 (c=1) | p50 / {base} | ops/s (c=64) | ops/s / {base} | allocations per {op} |"
    );
    println!("|---|---|---|---|---|---|");
    for v in variants {
        let s = v.summary();
        println!(
            "| {} | {} | {:.2}x | {:.0} | {:.2}x | {:.1} |",
            v.name,
            micros(s.p50),
            s.p50.as_secs_f64() / first.p50.as_secs_f64(),
            s.ops_per_sec,
            s.ops_per_sec / first.ops_per_sec,
            s.allocs_per_call
        );
    }
}

fn micros(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

/// `CACHETTE_BENCH_LEASE_MS=2`: the Redis caches read under a lease.
fn lease_from_env() -> Duration {
    std::env::var("CACHETTE_BENCH_LEASE_MS")
        .ok()
        .and_then(|ms| ms.parse::<f64>().ok())
        .map_or(Duration::ZERO, |ms| Duration::from_secs_f64(ms / 1000.0))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "quick");
    if args.first().map(String::as_str) == Some("junk") {
        let n = args
            .get(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(1_000_000);
        hostile::junk(n).await;
        return;
    }
    if args.first().map(String::as_str) == Some("pending") {
        let n = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(200_000);
        let limit = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10_000);
        hostile::pending(n, limit).await;
        return;
    }
    if args.first().map(String::as_str) == Some("stale") {
        let secs = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(5);
        near::stale(secs).await;
        return;
    }
    if args.first().map(String::as_str) == Some("memory") {
        let n = args
            .get(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(1_000_000);
        near::memory(n).await;
        return;
    }
    if args.first().map(String::as_str) == Some("cluster") {
        cluster::run(quick).await;
        return;
    }
    if args.first().map(String::as_str) == Some("batches") {
        batches::run(quick, lease_from_env(), args.iter().any(|a| a == "near")).await;
        return;
    }
    if args.first().map(String::as_str) == Some("leases") {
        leases::run().await;
        return;
    }
    if args.first().map(String::as_str) == Some("spans") {
        MEMORY.set(Cache::memory()).unwrap();
        spans(quick).await;
        return;
    }
    if args.first().map(String::as_str) == Some("busts") {
        MEMORY.set(Cache::memory()).unwrap();
        busts(quick).await;
        return;
    }
    let server = server::RedisServer::start();
    let url = server.url();
    URL.set(url.clone()).unwrap();
    let conn_for = || async {
        ConnectionManager::new(redis::Client::open(url.as_str()).unwrap())
            .await
            .unwrap()
    };
    let raw = conn_for().await;
    let lease = lease_from_env();
    let cache = Cache::builder()
        .command_timeout(Duration::from_secs(1))
        .near_cache_lease(lease)
        .connect(&url)
        .await
        .unwrap();
    REDIS.set(cache.clone()).unwrap();
    MEMORY.set(Cache::memory()).unwrap();
    let _: () = redis::cmd("SET")
        .arg("raw:user:1")
        .arg(serde_json::to_vec(&user(1)).unwrap())
        .query_async(&mut raw.clone())
        .await
        .unwrap();

    if args.first().map(String::as_str) == Some("upstash") {
        upstash::run(quick, &url).await;
        return;
    }
    if args.first().map(String::as_str) == Some("codecs") {
        codecs::run(quick, &url, &raw).await;
        return;
    }
    if args.first().map(String::as_str) == Some("raw") {
        let n: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(10_000);
        for _ in 0..n {
            raw_get(&raw).await;
        }
        println!("{n} raw GETs");
        return;
    }
    if args.first().map(String::as_str) == Some("concurrent") {
        // 64 tasks of hits at once: how many ordering round trips they share.
        let n: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(2_000);
        cachette_user(1, "7").await.unwrap();
        cachette_user(1, "7").await.unwrap();
        let before = cache.stats();
        let commands_before = commands_run(&raw).await;
        let started = Instant::now();
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                tokio::spawn(async move {
                    for _ in 0..n {
                        cachette_user(1, "7").await.unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let elapsed = started.elapsed();
        let after = cache.stats();
        let commands = commands_run(&raw).await - commands_before - 1;
        let hits = after.near_hits - before.near_hits;
        let pings = after.near_orderings - before.near_orderings;
        println!(
            "{} hits in {:?} ({:.0}/s); near hits {hits}, ordering PINGs {pings}; Redis ran {commands} commands ({:.3} per hit, INFO commandstats)",
            64 * n,
            elapsed,
            (64 * n) as f64 / elapsed.as_secs_f64(),
            commands as f64 / (64 * n) as f64
        );
        return;
    }
    if args.first().map(String::as_str) == Some("hits") {
        let n: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(10_000);
        cachette_user(1, "7").await.unwrap();
        for _ in 0..n {
            cachette_user(1, "7").await.unwrap();
        }
        println!("{n} hits, stats {:?}", cache.stats());
        return;
    }

    let mut variants = vec![
        Variant::new(
            "raw `redis` GET + decode (baseline)",
            op({
                let raw = raw.clone();
                move || {
                    let raw = raw.clone();
                    async move {
                        raw_get(&raw).await;
                    }
                }
            }),
        ),
        Variant::new(
            "redis-rs `cache-aio` GET + decode (a local copy, not checked)",
            op({
                let aio = near::cache_aio(&url).await;
                move || {
                    let aio = aio.clone();
                    async move {
                        let bytes: Vec<u8> = redis::cmd("GET")
                            .arg("raw:user:1")
                            .query_async(&mut aio.clone())
                            .await
                            .unwrap();
                        std::hint::black_box(serde_json::from_slice::<User>(&bytes).unwrap());
                    }
                }
            }),
        ),
        Variant::new(
            "cachette hit, macro",
            op(|| async {
                cachette_user(1, "7").await.unwrap();
            }),
        ),
        Variant::new(
            "cachette hit, programmatic",
            op(|| async {
                redis_cache()
                    .get_or_fetch("user:1", &["org:7"], Duration::from_secs(300), async {
                        Ok::<_, DbError>(user(1))
                    })
                    .await
                    .unwrap();
            }),
        ),
        Variant::new(
            "cachette hit, swr",
            op(|| async {
                cachette_swr_user(1, "7").await.unwrap();
            }),
        ),
        Variant::new(
            "`cached` crate hit (concurrent_cached, AsyncRedisCache)",
            op(|| async {
                cached_crate_user(1).await.unwrap();
            }),
        ),
        Variant::new(
            "hand-written seed pattern hit",
            op({
                let raw = raw.clone();
                move || {
                    let raw = raw.clone();
                    async move {
                        seed::get(&raw, 1, "7").await.unwrap();
                    }
                }
            }),
        ),
        Variant::new(
            "cachette hit, embedded backend",
            op(|| async {
                embedded_user(1, "7").await.unwrap();
            }),
        ),
        Variant::new(
            "JSON decode of the payload alone (no cache)",
            op({
                let json = serde_json::to_vec(&user(1)).unwrap();
                move || {
                    let json = json.clone();
                    async move {
                        std::hint::black_box(serde_json::from_slice::<User>(&json).unwrap());
                    }
                }
            }),
        ),
    ];
    measure(&mut variants, quick, Some(1_000)).await;

    let base = variants[0].summary();
    println!("## Hits\n");
    println!("| variant | p50 (c=1) | p99 (c=1) | p50 / raw | ops/s (c=64) | ops/s / raw | allocations per hit |");
    println!("|---|---|---|---|---|---|---|");
    for v in &variants {
        let s = v.summary();
        println!(
            "| {} | {} | {} | {:.2}x | {:.0} | {:.2}x | {:.1} |",
            v.name,
            micros(s.p50),
            micros(s.p99),
            s.p50.as_secs_f64() / base.p50.as_secs_f64(),
            s.ops_per_sec,
            s.ops_per_sec / base.ops_per_sec,
            s.allocs_per_call
        );
    }

    // A hit from memory waits for a round trip sent after it arrived, so
    // 64 callers serve at most 64 hits per round trip (Little's law).
    let near_p50 = variants[2].summary().p50;
    println!(
        "\nCeiling for 64 callers that each wait one round trip (64 / the macro hit's p50 at c=1): {:.0} ops/s, {:.2}x raw",
        64.0 / near_p50.as_secs_f64(),
        64.0 / near_p50.as_secs_f64() / base.ops_per_sec
    );

    // Miss then fill, one fresh key per call.
    let n = if quick { 500 } else { 2_000 };
    let mut fill_cachette = Vec::new();
    let mut fill_seed = Vec::new();
    for i in 0..n {
        let t = Instant::now();
        cachette_user(1_000_000 + i, "fill").await.unwrap();
        fill_cachette.push(t.elapsed());
        let t = Instant::now();
        seed::get(&raw, 1_000_000 + i, "fill").await.unwrap();
        fill_seed.push(t.elapsed());
    }
    fill_cachette.sort();
    fill_seed.sort();
    println!("\n## Miss then fill (c=1, {n} fresh keys)\n");
    println!("| variant | p50 | p99 |");
    println!("|---|---|---|");
    println!(
        "| cachette (lookup, versions created, SET) | {} | {} |",
        micros(percentile(&fill_cachette, 0.5)),
        micros(percentile(&fill_cachette, 0.99))
    );
    println!(
        "| seed pattern (GET, SETEX, SADD, EXPIRE) | {} | {} |",
        micros(percentile(&fill_seed, 0.5)),
        micros(percentile(&fill_seed, 0.99))
    );

    // A tag bust with 1 and with 100,000 entries under the tag.
    println!("\n## Bust of one tag\n");
    println!("| entries under the tag | cachette `invalidate_tags` | seed `SMEMBERS` + `DEL` |");
    println!("|---|---|---|");
    let big = if quick { 20_000 } else { 100_000 };
    // Load the bust script first, so that neither row pays for it.
    cache.invalidate_tags(["warm-up"]).await.unwrap();
    for entries in [1u64, big] {
        let tag = format!("bust{entries}");
        fill_many(entries, &tag, &raw).await;
        let t = Instant::now();
        cache.invalidate_tags([format!("org:{tag}")]).await.unwrap();
        let ours = t.elapsed();
        let t = Instant::now();
        seed::invalidate_tag(&raw, &format!("org:{tag}")).await;
        let theirs = t.elapsed();
        println!("| {entries} | {} | {} |", micros(ours), micros(theirs));
    }
    drop(server);
}

/// Fills `n` entries under `org:<tag>` for both cachette and the seed
/// pattern, 64 at a time.
async fn fill_many(n: u64, tag: &str, raw: &ConnectionManager) {
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let (next, raw, tag) = (next.clone(), raw.clone(), tag.to_string());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                cachette_user(10_000_000 + i, &tag).await.unwrap();
                seed::fill(
                    &raw,
                    &format!("seed:user:{}", 10_000_000 + i),
                    &user(i),
                    &[&format!("org:{tag}")],
                )
                .await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// A `&mut` argument that stands for a transaction.
struct Tx;

#[cachette::invalidates(keys = ["bust:<id>"], cache = memory_cache())]
async fn bust_plain(id: u64) {}

/// The same bust from a function with a `&mut` argument: each bust also
/// asks whether it runs inside `deferred` (and warned once, at the first).
#[cachette::invalidates(keys = ["bust:<id>"], cache = memory_cache())]
async fn bust_through_tx(tx: &mut Tx, id: u64) {
    let _ = tx;
}

/// What the `deferred` check of a `&mut`-taking `#[invalidates]` costs a
/// bust, beside the same bust without it (embedded backend, alternating).
async fn busts(quick: bool) {
    let mut variants = vec![
        Variant::new(
            "bust, no `&mut` argument",
            op(|| async {
                bust_plain(1).await;
            }),
        ),
        Variant::new(
            "bust through a `&mut` argument (checked for `deferred`)",
            op(|| async {
                bust_through_tx(&mut Tx, 1).await;
            }),
        ),
    ];
    measure(&mut variants, quick, Some(1_000)).await;
    ratios_table("Busts", "plain", "bust", &variants);
}

/// A layer that records every span's fields as text, as a span exporter
/// would (and drops them at close): what a listening subscriber costs.
struct Recording;

impl<S> tracing_subscriber::Layer<S> for Recording
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        SPANS_RECORDED.fetch_add(1, Ordering::Relaxed);
        let mut fields = Fields(String::new());
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(fields);
        }
    }

    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        if let Some(span) = ctx.span(id) {
            if let Some(fields) = span.extensions_mut().get_mut::<Fields>() {
                values.record(fields);
            }
        }
    }
}

struct Fields(String);

/// Spans the recording layer saw: printed, to show they were made.
static SPANS_RECORDED: AtomicU64 = AtomicU64::new(0);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write;
        let _ = write!(self.0, "{}={value:?} ", field.name());
    }
}

/// An in-memory hit of a `#[cached]` function with nobody listening, and
/// the same hit under a subscriber that records its spans (set as the
/// default of each call's future): alternating rounds.
async fn spans(quick: bool) {
    let dispatch = tracing::Dispatch::new(tracing_subscriber::layer::SubscriberExt::with(
        tracing_subscriber::registry(),
        Recording,
    ));
    // The subscriber is made a default once before any span's callsite
    // registers: a callsite registered while no default was ever set is
    // asked of the global dispatcher only (none), and stays off.
    tracing::dispatcher::with_default(&dispatch, || drop(tracing::debug_span!("warm")));
    {
        use tracing::instrument::WithSubscriber;
        embedded_user(1, "org")
            .with_subscriber(dispatch.clone())
            .await
            .unwrap();
        let before = SPANS_RECORDED.load(Ordering::Relaxed);
        embedded_user(1, "org")
            .with_subscriber(dispatch.clone())
            .await
            .unwrap();
        let hit = SPANS_RECORDED.load(Ordering::Relaxed) - before;
        assert!(hit >= 2, "a hit made {hit} spans");
        println!("spans per hit: {hit}");
    }
    let mut variants = vec![
        Variant::new(
            "memory hit, no subscriber",
            op(|| async {
                embedded_user(1, "org").await.unwrap();
            }),
        ),
        Variant::new(
            "memory hit, spans recorded",
            op(move || {
                let dispatch = dispatch.clone();
                async move {
                    use tracing::instrument::WithSubscriber;
                    embedded_user(1, "org")
                        .with_subscriber(dispatch)
                        .await
                        .unwrap();
                }
            }),
        ),
    ];
    measure(&mut variants, quick, Some(1_000)).await;
    ratios_table("Spans", "none", "hit", &variants);
}

/// What a variant measured.
struct Summary {
    p50: Duration,
    p99: Duration,
    ops_per_sec: f64,
    allocs_per_call: f64,
}

/// Warms every variant (fills, connections, scripts), then runs rounds in
/// which each variant in turn measures latency at one caller (and, with
/// `alloc_calls`, allocations), then each its throughput at 64 callers: a
/// noisy neighbour hits every variant alike.
async fn measure(variants: &mut [Variant], quick: bool, alloc_calls: Option<u64>) {
    for v in variants.iter() {
        for _ in 0..100 {
            (v.op)().await;
        }
    }
    let rounds = if quick { 3 } else { 7 };
    let per_round = if quick { 1_000 } else { 3_000 };
    let window = Duration::from_millis(if quick { 400 } else { 1_000 });
    for _ in 0..rounds {
        for v in variants.iter_mut() {
            v.latency_round(per_round).await;
            if let Some(n) = alloc_calls {
                v.alloc_round(n).await;
            }
        }
        for v in variants.iter_mut() {
            v.throughput_round(64, window).await;
        }
    }
}

impl Variant {
    fn summary(&self) -> Summary {
        let mut lat = self.latencies.clone();
        lat.sort();
        Summary {
            p50: percentile(&lat, 0.5),
            p99: percentile(&lat, 0.99),
            ops_per_sec: self.ops as f64 / self.busy.as_secs_f64(),
            allocs_per_call: self.allocs as f64 / self.alloc_ops.max(1) as f64,
        }
    }

    fn new(name: &'static str, op: Op) -> Self {
        Variant {
            name,
            op,
            latencies: Vec::new(),
            ops: 0,
            busy: Duration::ZERO,
            allocs: 0,
            alloc_ops: 0,
        }
    }

    async fn latency_round(&mut self, n: usize) {
        for _ in 0..n {
            let t = Instant::now();
            (self.op)().await;
            self.latencies.push(t.elapsed());
        }
    }

    /// Heap allocations per call, the `Box` of the benchmark's own closure
    /// excluded.
    async fn alloc_round(&mut self, n: u64) {
        let before = alloc::count();
        for _ in 0..n {
            (self.op)().await;
        }
        // One allocation per call is the benchmark's boxed future.
        self.allocs += (alloc::count() - before).saturating_sub(n);
        self.alloc_ops += n;
    }

    async fn throughput_round(&mut self, concurrency: usize, window: Duration) {
        let done = Arc::new(AtomicU64::new(0));
        let start = Instant::now();
        let deadline = start + window;
        let mut tasks = Vec::new();
        for _ in 0..concurrency {
            let (op, done) = (self.op.clone(), done.clone());
            tasks.push(tokio::spawn(async move {
                while Instant::now() < deadline {
                    op().await;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        self.busy += start.elapsed();
        self.ops += done.load(Ordering::Relaxed);
    }
}
