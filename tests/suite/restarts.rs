//! I10: a restart only causes misses. A Redis restarted from an RDB
//! snapshot, or from an AOF that lost its last second, comes back with
//! entries and the versions they were valid under, from before
//! invalidations that had returned `Ok`. Versions are named in the run id
//! of the server process that holds them, so what comes back is under
//! names nobody reads any more.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cachette::{cached, Cache};

use crate::support::RedisServer;

/// A fake database: a version per id.
#[derive(Default)]
struct Db(Mutex<HashMap<u64, u64>>);

impl Db {
    fn version(&self, id: u64) -> u64 {
        self.0.lock().unwrap().get(&id).copied().unwrap_or(0)
    }

    fn write(&self, id: u64) {
        *self.0.lock().unwrap().entry(id).or_insert(0) += 1;
    }
}

#[cached(cache = cache, key = "row:<id>", ttl = 300, tags = ["shard:<shard>"], unkeyed = [db])]
async fn row(cache: &Cache, db: &Db, id: u64, shard: u64) -> u64 {
    let _ = shard;
    db.version(id)
}

/// How the server keeps its data, and what a crash loses.
#[derive(Clone, Copy, Debug)]
enum Persistence {
    /// An RDB snapshot (`SAVE`) taken after the fills, before the busts.
    Rdb,
    /// AOF with `appendfsync everysec`, whose last second (the busts) is
    /// lost: the AOF files are put back as they were before the busts.
    AofEverysecLosingItsLastSecond,
    /// AOF with `appendfsync always`: nothing acknowledged is lost.
    AofAlways,
}

impl Persistence {
    fn args(self) -> &'static [&'static str] {
        match self {
            Persistence::Rdb => &[],
            Persistence::AofEverysecLosingItsLastSecond => {
                &["--appendonly", "yes", "--appendfsync", "everysec"]
            }
            Persistence::AofAlways => &["--appendonly", "yes", "--appendfsync", "always"],
        }
    }
}

/// What one restart did to the reads that followed it.
struct Outcome {
    /// Reads after the restart that returned a version older than the
    /// database's (all of them came after the busts returned).
    stale: usize,
    /// Reads after the restart that ran the body.
    misses: u64,
    reads: usize,
    /// From the restart until the first hit.
    recovered: Duration,
    /// Entries still stored after the restart (the snapshot brought them
    /// back).
    entries_back: usize,
}

const IDS: u64 = 100;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// Fills every row, keeps the data as `persistence` would, writes and
/// busts half the rows by key and a shard by tag (all returning `Ok`),
/// crashes Redis (`SIGKILL`), restarts it on the same port and directory,
/// and reads every row through the writer's cache and a fresh one.
async fn restart_after_busts(persistence: Persistence) -> Outcome {
    restart_after_busts_over(persistence, false).await
}

/// As [`restart_after_busts`], with `rest` every cache reaching Redis
/// through Upstash's REST protocol.
async fn restart_after_busts_over(persistence: Persistence, rest: bool) -> Outcome {
    let mut server = RedisServer::start_with(persistence.args());
    #[cfg(feature = "upstash")]
    let rest = rest.then(|| cachette_rest_server::RestServer::start(&server.url()));
    #[cfg(not(feature = "upstash"))]
    assert!(!rest, "REST needs the upstash feature");
    let cache_of = |server: &RedisServer| {
        let url = server.url();
        #[cfg(feature = "upstash")]
        let rest = rest.as_ref().map(|r| (r.url.clone(), r.token.clone()));
        async move {
            #[cfg(feature = "upstash")]
            if let Some((rest, token)) = rest {
                return crate::support::builder()
                    .connect_upstash(&rest, &token)
                    .await
                    .unwrap();
            }
            crate::support::builder().connect(&url).await.unwrap()
        }
    };
    let cache = cache_of(&server).await;
    let db = Db::default();
    for id in 0..IDS {
        row(&cache, &db, id, id % 4).await;
    }
    let kept = server.dir().join("kept");
    match persistence {
        Persistence::Rdb => redis::cmd("SAVE").exec(&mut server.raw()).unwrap(),
        Persistence::AofEverysecLosingItsLastSecond => {
            // Written to the file before each reply; what is copied now is
            // what a crash within the next second could leave on disk.
            copy_dir(&server.dir().join("appendonlydir"), &kept);
        }
        Persistence::AofAlways => {}
    }
    for id in (0..IDS).step_by(2) {
        db.write(id);
        cache.invalidate_keys([format!("row:{id}")]).await.unwrap();
    }
    for id in (1..IDS).step_by(4) {
        db.write(id); // shard 1
    }
    cache.invalidate_tags(["shard:1"]).await.unwrap();

    server.kill();
    if let Persistence::AofEverysecLosingItsLastSecond = persistence {
        let aof = server.dir().join("appendonlydir");
        std::fs::remove_dir_all(&aof).unwrap();
        copy_dir(&kept, &aof);
    }
    server.restart();
    let restarted = Instant::now();
    let entries_back: Vec<String> = redis::cmd("KEYS")
        .arg("cachette:e:*")
        .query(&mut server.raw())
        .unwrap();

    let fresh = cache_of(&server).await;
    let mut outcome = Outcome {
        stale: 0,
        misses: 0,
        reads: 0,
        recovered: Duration::ZERO,
        entries_back: entries_back.len(),
    };
    let mut recovered = None;
    for reader in [&cache, &fresh] {
        for id in 0..IDS {
            let before = reader.stats();
            // The writer's connection broke with the restart: its first
            // calls may read through while it reconnects.
            let seen = row(reader, &db, id, id % 4).await;
            let after = reader.stats();
            outcome.reads += 1;
            if seen < db.version(id) {
                outcome.stale += 1;
            }
            outcome.misses += after.misses - before.misses;
            if recovered.is_none() && after.hits > before.hits {
                recovered = Some(restarted.elapsed());
            }
        }
    }
    // Caching works again: the rows read above are hits now.
    for id in 0..IDS {
        row(&fresh, &db, id, id % 4).await;
        if recovered.is_none() {
            recovered = Some(restarted.elapsed());
        }
    }
    outcome.recovered = recovered.unwrap_or_default();
    assert!(fresh.stats().hits >= IDS, "{:?}", fresh.stats());
    outcome
}

fn report(name: &str, outcome: &Outcome) {
    eprintln!(
        "RELIABILITY | restart, {name} | {} entries back from disk | {} reads after it | {} stale | {} misses | first hit {:.0} ms after the restart |",
        outcome.entries_back,
        outcome.reads,
        outcome.stale,
        outcome.misses,
        outcome.recovered.as_secs_f64() * 1000.0,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_from_an_rdb_snapshot_serves_nothing_busted_before_it() {
    rdb_snapshot(false).await;
}

/// Fills, snapshots, busts, crashes and restarts from the snapshot (over
/// REST with `rest`): the snapshot brings entries back, none is served.
async fn rdb_snapshot(rest: bool) {
    let outcome = restart_after_busts_over(Persistence::Rdb, rest).await;
    report(
        if rest {
            "RDB snapshot, over REST"
        } else {
            "RDB snapshot"
        },
        &outcome,
    );
    assert!(
        outcome.entries_back > 0,
        "the snapshot brought entries back"
    );
    assert_eq!(
        outcome.stale, 0,
        "a busted entry came back with the snapshot"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_from_an_aof_that_lost_its_last_second_serves_nothing_busted_before_it() {
    let outcome = restart_after_busts(Persistence::AofEverysecLosingItsLastSecond).await;
    report("AOF everysec, last second lost", &outcome);
    assert!(outcome.entries_back > 0, "the AOF brought entries back");
    assert_eq!(outcome.stale, 0, "a busted entry came back with the AOF");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_from_an_aof_that_lost_nothing_serves_nothing_stale() {
    let outcome = restart_after_busts(Persistence::AofAlways).await;
    report("AOF always", &outcome);
    assert_eq!(outcome.stale, 0);
}

#[cfg(feature = "upstash")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_rest_a_restart_from_an_rdb_snapshot_serves_nothing_busted_before_it() {
    rdb_snapshot(true).await;
}
