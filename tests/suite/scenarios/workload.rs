//! The stale-read checker (I1, I9, I6), shared by the fault-injection and
//! cluster suites: readers and writers run while a test injects faults.
//! Writers update a fake database and invalidate; readers record the
//! version they saw and when they started. A read is stale if it returned
//! a version older than a write whose invalidation had returned before the
//! read started: [`check`] wants none, and that the workload ran.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cachette::{cached, invalidates, Cache};

use crate::support::{delivered, RedisServer};

#[derive(Default)]
struct World {
    db: Mutex<HashMap<u64, u64>>,
    /// (id, version, when its invalidation returned)
    writes: Mutex<Vec<(u64, u64, Instant)>>,
    /// (id, version seen, when the read started, how long it took)
    reads: Mutex<Vec<(u64, u64, Instant, Duration)>>,
    pad: usize,
}

#[cached(cache = cache, key = "item:<id>", ttl = 60, tags = ["group:<group>"], unkeyed = [world])]
async fn read_item(
    cache: &Cache,
    world: &World,
    id: u64,
    group: u64,
) -> Result<(u64, Vec<u8>), String> {
    let _ = group;
    let version = world.db.lock().unwrap().get(&id).copied().unwrap_or(0);
    Ok((version, vec![7; world.pad]))
}

#[invalidates(cache = cache, keys = ["item:<id>"], tags = ["group:<group>"])]
async fn write_item(cache: &Cache, world: &World, id: u64, group: u64) -> Result<u64, String> {
    let _ = group;
    bump(world, id)
}

/// Like `write_item`, but busts only the item's group tag, so a read is
/// fresh only if tag busts work on their own.
#[invalidates(cache = cache, tags = ["group:<group>"])]
async fn write_item_by_tag(
    cache: &Cache,
    world: &World,
    id: u64,
    group: u64,
) -> Result<u64, String> {
    bump(world, id)
}

fn bump(world: &World, id: u64) -> Result<u64, String> {
    let mut db = world.db.lock().unwrap();
    let v = db.entry(id).or_insert(0);
    *v += 1;
    Ok(*v)
}

pub struct Workload {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    world: Arc<World>,
    cache: Cache,
    ids: u64,
}

pub fn start(cache: &Cache, ids: u64, pad: usize) -> Workload {
    let world = Arc::new(World {
        pad,
        ..World::default()
    });
    let stop = Arc::new(AtomicBool::new(false));
    let seq = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for r in 0..6u64 {
        let (cache, world, stop, seq) = (cache.clone(), world.clone(), stop.clone(), seq.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(SeqCst) {
                let id = (seq.fetch_add(7 + r, SeqCst)) % ids;
                let started = Instant::now();
                let (version, _) = read_item(&cache, &world, id, id % 5).await.unwrap();
                world
                    .reads
                    .lock()
                    .unwrap()
                    .push((id, version, started, started.elapsed()));
                tokio::task::yield_now().await;
            }
        }));
    }
    for w in 0..2u64 {
        let (cache, world, stop) = (cache.clone(), world.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = w;
            while !stop.load(SeqCst) {
                n += 3;
                let id = n % ids;
                let version = if n % 2 == 0 {
                    write_item(&cache, &world, id, id % 5).await.unwrap()
                } else {
                    write_item_by_tag(&cache, &world, id, id % 5).await.unwrap()
                };
                world
                    .writes
                    .lock()
                    .unwrap()
                    .push((id, version, Instant::now()));
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }));
    }
    Workload {
        stop,
        tasks,
        world,
        cache: cache.clone(),
        ids,
    }
}

pub struct Report {
    pub reads: usize,
    pub writes: usize,
    pub stale: usize,
    pub worst: Duration,
    /// p50 and p99 of the reads that started inside `window`, if given.
    pub window: Option<(Duration, Duration)>,
}

impl Workload {
    /// Stops the workload, waits for delivery of every bust, checks the
    /// final reads, and counts stale reads.
    pub async fn finish(self) -> Report {
        self.finish_with_window(None).await
    }

    pub async fn finish_with_window(self, window: Option<(Instant, Instant)>) -> Report {
        self.stop.store(true, SeqCst);
        for t in self.tasks {
            t.await.unwrap();
        }
        let cache = &self.cache;
        delivered(cache).await;
        // After recovery every key reads its latest version.
        for id in 0..self.ids {
            let want = self.world.db.lock().unwrap().get(&id).copied().unwrap_or(0);
            let (got, _) = read_item(cache, &self.world, id, id % 5).await.unwrap();
            assert_eq!(got, want, "item {id} after recovery");
        }
        let writes = self.world.writes.lock().unwrap();
        let reads = self.world.reads.lock().unwrap();
        let mut latest: HashMap<u64, Vec<(Instant, u64)>> = HashMap::new();
        for (id, version, at) in writes.iter() {
            latest.entry(*id).or_default().push((*at, *version));
        }
        let mut stale = 0;
        for (id, seen, started, _) in reads.iter() {
            let newest_done = latest
                .get(id)
                .into_iter()
                .flatten()
                .filter(|(at, _)| at < started)
                .map(|(_, v)| *v)
                .max()
                .unwrap_or(0);
            if *seen < newest_done {
                stale += 1;
            }
        }
        let window = window.map(|(from, to)| {
            let mut took: Vec<Duration> = reads
                .iter()
                .filter(|r| r.2 >= from && r.2 < to)
                .map(|r| r.3)
                .collect();
            took.sort();
            let at = |p: f64| took[((took.len() - 1) as f64 * p) as usize];
            (at(0.5), at(0.99))
        });
        Report {
            reads: reads.len(),
            writes: writes.len(),
            stale,
            worst: reads.iter().map(|r| r.3).max().unwrap_or_default(),
            window,
        }
    }
}

pub fn every_key_has_a_ttl(server: &RedisServer) {
    let mut raw = server.raw();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("cachette:*")
        .query(&mut raw)
        .unwrap();
    for key in keys {
        let ttl: i64 = redis::cmd("PTTL").arg(&key).query(&mut raw).unwrap();
        assert!(ttl > 0 || ttl == -2, "{key} has no TTL ({ttl})");
    }
}

pub fn check(name: &str, faults: usize, report: &Report, cache: &Cache) {
    eprintln!(
        "RELIABILITY | {name} | {} reads, {} writes | {faults} | {} stale | {} lost | {:.1} ms worst call | {} errors, {} breaker opens | {} from the near-cache |",
        report.reads,
        report.writes,
        report.stale,
        cache.stats().pending_invalidations,
        report.worst.as_secs_f64() * 1e3,
        cache.stats().errors,
        cache.stats().breaker_opens,
        cache.stats().near_hits,
    );
    assert_eq!(
        report.stale, 0,
        "{name}: stale reads after a returned invalidation"
    );
    assert!(
        report.reads > 100 && report.writes > 10,
        "{name}: the workload did not run"
    );
}
