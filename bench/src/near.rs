//! The near-cache beside redis-rs's own client-side cache (`cache-aio`):
//! stale reads in a two-cache workload, and memory with many keys.
//!
//! ```text
//! cd bench && cargo run --release -- stale SECONDS  # stale reads, cachette and cache-aio
//! cd bench && cargo run --release -- memory N       # RSS and Redis memory, N keys kept
//! ```

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cachette::Cache;
use redis::aio::MultiplexedConnection;
use redis::caching::CacheConfig;
use redis::AsyncConnectionConfig;

use crate::server::RedisServer;

/// A connection with redis-rs's client-side cache (RESP3, tracking).
pub async fn cache_aio(url: &str) -> MultiplexedConnection {
    let client = redis::Client::open(format!("{url}?protocol=resp3")).unwrap();
    client
        .get_multiplexed_async_connection_with_config(
            &AsyncConnectionConfig::new().set_cache_config(CacheConfig::new()),
        )
        .await
        .unwrap()
}

/// What every reader saw and every writer finished, for counting stale
/// reads afterwards.
#[derive(Default)]
struct Record {
    /// (id, version seen, when the read started)
    reads: Mutex<Vec<(u64, u64, Instant)>>,
    /// (id, version written, when its invalidation returned)
    writes: Mutex<Vec<(u64, u64, Instant)>>,
}

impl Record {
    /// Reads that returned a version older than one whose write (and
    /// invalidation) had returned before the read started.
    fn stale(&self) -> (usize, usize, usize) {
        let writes = self.writes.lock().unwrap();
        let reads = self.reads.lock().unwrap();
        let mut by_id: HashMap<u64, Vec<(Instant, u64)>> = HashMap::new();
        for (id, v, at) in writes.iter() {
            by_id.entry(*id).or_default().push((*at, *v));
        }
        let stale = reads
            .iter()
            .filter(|(id, seen, started)| {
                let newest = by_id
                    .get(id)
                    .into_iter()
                    .flatten()
                    .filter(|(at, _)| at < started)
                    .map(|(_, v)| *v)
                    .max()
                    .unwrap_or(0);
                *seen < newest
            })
            .count();
        (reads.len(), writes.len(), stale)
    }
}

const IDS: u64 = 20;
const READERS: usize = 16;

/// Reads one of `IDS` items (`read(id, source)`: the value it returned).
type Read = Arc<dyn Fn(u64, Arc<Source>) -> BoxFuture<u64> + Send + Sync>;
/// Writes version `v` of an item and invalidates it (`write(n, id, v)`;
/// `n` picks a key or a tag bust); returns once the invalidation has.
type Write = Arc<dyn Fn(u64, u64, u64) -> BoxFuture<()> + Send + Sync>;
type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;
/// The "database": each item's latest version.
type Source = Vec<AtomicU64>;

/// `READERS` tasks read and one task writes (a write every millisecond)
/// for `window`; what each read saw and when each write returned.
async fn run(window: Duration, read: Read, write: Write) -> Record {
    let source: Arc<Source> = Arc::new((0..IDS).map(|_| AtomicU64::new(1)).collect());
    let record = Arc::new(Record::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for r in 0..READERS {
        let (read, source, record, stop) =
            (read.clone(), source.clone(), record.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = r as u64;
            while !stop.load(SeqCst) {
                n += 7;
                let id = n % IDS;
                let started = Instant::now();
                let seen = read(id, source.clone()).await;
                record.reads.lock().unwrap().push((id, seen, started));
                // A local hit may never wait: let the other tasks run.
                tokio::task::yield_now().await;
            }
        }));
    }
    {
        let (source, record, stop) = (source.clone(), record.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(SeqCst) {
                n += 3;
                let id = n % IDS;
                let v = source[id as usize].fetch_add(1, SeqCst) + 1;
                write(n, id, v).await;
                record.writes.lock().unwrap().push((id, v, Instant::now()));
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }));
    }
    tokio::time::sleep(window).await;
    stop.store(true, SeqCst);
    for t in tasks {
        t.await.unwrap();
    }
    Arc::try_unwrap(record).unwrap_or_else(|_| unreachable!("every task ended"))
}

/// Process B reads, process A writes and invalidates: for cachette, two
/// caches with connections of their own (B with the near-cache on); for
/// `cache-aio`, A's plain `SET` of the new value and B's cached `GET`.
pub async fn stale(seconds: u64) {
    let server = RedisServer::start();
    let url = server.url();
    let window = Duration::from_secs(seconds);

    // cachette.
    // With `CACHETTE_BENCH_LEASE_MS`, both processes read under a lease.
    let connect = || {
        Cache::builder()
            .command_timeout(Duration::from_secs(1))
            .near_cache_lease(crate::lease_from_env())
            .connect(&url)
    };
    let (a, b) = (connect().await.unwrap(), connect().await.unwrap());
    let reader = b.clone();
    let read: Read = Arc::new(move |id, source| {
        let b = reader.clone();
        Box::pin(async move {
            b.get_or_fetch(
                &format!("item:{id}"),
                &[&format!("group:{}", id % 4)],
                Duration::from_secs(300),
                // The source is read in the body, as a query would be.
                async move { Ok::<_, String>(source[id as usize].load(SeqCst)) },
            )
            .await
            .unwrap()
        })
    });
    let write: Write = Arc::new(move |n, id, _| {
        let a = a.clone();
        Box::pin(async move {
            if n.is_multiple_of(2) {
                a.invalidate_keys([format!("item:{id}")]).await.unwrap();
            } else {
                a.invalidate_tags([format!("group:{}", id % 4)])
                    .await
                    .unwrap();
            }
        })
    });
    let (reads, writes, stale) = run(window, read, write).await.stale();
    let s = b.stats();
    println!("| library | reads | writes | stale reads | served from process memory |");
    println!("|---|---|---|---|---|");
    println!(
        "| cachette, near-cache on | {reads} | {writes} | **{stale}** | {} ({:.0}%) |",
        s.near_hits,
        100.0 * s.near_hits as f64 / reads.max(1) as f64
    );

    // redis-rs cache-aio: the write is the `SET` itself.
    let writer = cache_aio_plain(&url).await;
    let reader = cache_aio(&url).await;
    let set = |writer: MultiplexedConnection, id: u64, v: u64| async move {
        let _: () = redis::cmd("SET")
            .arg(format!("aio:item:{id}"))
            .arg(v)
            .query_async(&mut writer.clone())
            .await
            .unwrap();
    };
    for id in 0..IDS {
        set(writer.clone(), id, 1).await;
    }
    let conn = reader.clone();
    let read: Read = Arc::new(move |id, _| {
        let mut conn = conn.clone();
        Box::pin(async move {
            redis::cmd("GET")
                .arg(format!("aio:item:{id}"))
                .query_async(&mut conn)
                .await
                .unwrap()
        })
    });
    let write: Write = Arc::new(move |_, id, v| Box::pin(set(writer.clone(), id, v)));
    let (reads, writes, stale) = run(window, read, write).await.stale();
    let hits = reader
        .get_cache_statistics()
        .map(|s| s.hit)
        .unwrap_or_default();
    println!(
        "| redis-rs `cache-aio` | {reads} | {writes} | **{stale}** | {hits} ({:.0}%) |",
        100.0 * hits as f64 / reads.max(1) as f64
    );
    drop(server);
}

async fn cache_aio_plain(url: &str) -> MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// The process's resident memory, in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}

/// A field of `INFO`.
async fn info(conn: &mut MultiplexedConnection, field: &str) -> u64 {
    let text: String = redis::cmd("INFO").query_async(conn).await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
}

/// `n` distinct keys filled by one cache (near-cache off), then read by
/// another with the near-cache at its default budget: the process's RSS
/// and Redis's memory before and after, and how many names Redis tracks.
pub async fn memory(n: u64) {
    let server = RedisServer::start();
    let url = server.url();
    let mut admin = cache_aio_plain(&url).await;
    let value = crate::user(1);
    let fill = |cache: Cache, reverse: bool| {
        let value = value.clone();
        async move {
            let next = Arc::new(AtomicU64::new(0));
            let tasks: Vec<_> = (0..64)
                .map(|_| {
                    let (cache, next, value) = (cache.clone(), next.clone(), value.clone());
                    tokio::spawn(async move {
                        loop {
                            let i = next.fetch_add(1, SeqCst);
                            if i >= n {
                                break;
                            }
                            let i = if reverse { n - 1 - i } else { i };
                            let value = value.clone();
                            cache
                                .get_or_fetch(
                                    &format!("user:{i}"),
                                    &[&format!("org:{}", i % 1000)],
                                    Duration::from_secs(3600),
                                    async move { Ok::<_, String>(value) },
                                )
                                .await
                                .unwrap();
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
        }
    };
    let writer = Cache::builder()
        .near_cache(false)
        .command_timeout(Duration::from_secs(5))
        .connect(&url)
        .await
        .unwrap();
    fill(writer.clone(), false).await;
    let redis_before = info(&mut admin, "used_memory").await;
    let rss_before = rss();
    let reader = Cache::builder()
        .command_timeout(Duration::from_secs(5))
        .connect(&url)
        .await
        .unwrap();
    let started = Instant::now();
    fill(reader.clone(), false).await;
    let took = started.elapsed();
    let redis_after = info(&mut admin, "used_memory").await;
    let rss_after = rss();
    let tracked = info(&mut admin, "tracking_total_keys").await;
    let held = reader.stats().near_entries;
    let messages = reader.stats().near_invalidations;
    // A second pass, the last read first: what is served from memory is
    // what was kept.
    let near_before = reader.stats().near_hits;
    fill(reader.clone(), true).await;
    let kept = reader.stats().near_hits - near_before;
    println!("| {n} keys, near-cache at its default budget | |");
    println!("|---|---|");
    println!("| first read by a second cache (hits from Redis, kept) | {took:.1?} |");
    println!("| lookups the near-cache holds after it (`stats().near_entries`) | {held} |");
    println!("| invalidation messages applied meanwhile (`near_invalidations`) | {messages} |");
    println!(
        "| served from memory on a second pass, last read first (what stayed kept) | {kept} |"
    );
    println!(
        "| process RSS before / after | {} / {} (+{}) |",
        mib(rss_before),
        mib(rss_after),
        mib(rss_after.saturating_sub(rss_before))
    );
    println!(
        "| Redis `used_memory` before / after | {} / {} (+{}: the tracking table) |",
        mib(redis_before),
        mib(redis_after),
        mib(redis_after.saturating_sub(redis_before))
    );
    println!("| names Redis tracks (`tracking_total_keys`) | {tracked} |");
    drop(server);
}
