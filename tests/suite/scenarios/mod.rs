//! Scenarios that several suites run (each backend, a cluster), each
//! named by the invariant it checks: I1 (no stale read after an
//! invalidation returns) through the stale-set race, tag busts and
//! stale-while-revalidate; `workload` is the stale-read checker under
//! faults.

pub mod workload;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

use cachette::{cached, invalidates, Cache};

use std::time::Duration;

use crate::support::source::{Gate, Source};
use crate::support::ManualClock;

/// A fake database of user versions, with a cache and a gate for the next
/// read.
pub struct Db {
    pub cache: Cache,
    pub rows: Mutex<HashMap<u64, u64>>,
    pub gate: Gate,
    pub reads: AtomicU64,
}

impl Db {
    pub fn new(cache: Cache) -> Arc<Db> {
        Arc::new(Db {
            cache,
            rows: Mutex::new(HashMap::new()),
            gate: Gate::default(),
            reads: AtomicU64::new(0),
        })
    }

    pub fn write(&self, id: u64) -> u64 {
        let mut rows = self.rows.lock().unwrap();
        let v = rows.entry(id).or_insert(0);
        *v += 1;
        *v
    }

    #[cached(cache = self.cache, key = "user:<id>", ttl = 300, tags = ["org:<org>"])]
    pub async fn get_user(&self, id: u64, org: &str) -> Result<u64, String> {
        self.load_user(id, org).await
    }

    #[cached(cache = self.cache, key = "user:<id>", ttl = 300, tags = ["org:<org>"], strategy = "lock")]
    pub async fn get_user_locked(&self, id: u64, org: &str) -> Result<u64, String> {
        self.load_user(id, org).await
    }

    pub async fn load_user(&self, id: u64, _org: &str) -> Result<u64, String> {
        self.reads.fetch_add(1, SeqCst);
        let version = self.rows.lock().unwrap().get(&id).copied().unwrap_or(0);
        self.gate.pass().await;
        Ok(version)
    }

    pub async fn read(&self, locked: bool, id: u64, org: &str) -> Result<u64, String> {
        if locked {
            self.get_user_locked(id, org).await
        } else {
            self.get_user(id, org).await
        }
    }

    #[invalidates(cache = self.cache, keys = ["user:<id>"])]
    pub async fn update_busting_key(&self, id: u64, org: &str) -> Result<u64, String> {
        let _ = org;
        Ok(self.write(id))
    }

    #[invalidates(cache = self.cache, tags = ["org:<org>"])]
    pub async fn update_busting_tag(&self, id: u64, org: &str) -> Result<u64, String> {
        Ok(self.write(id))
    }

    pub async fn update(&self, bust: Bust, id: u64, org: &str) -> u64 {
        match bust {
            Bust::Key => self.update_busting_key(id, org).await.unwrap(),
            Bust::Tag => self.update_busting_tag(id, org).await.unwrap(),
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub enum Bust {
    Key,
    Tag,
}

/// Holds a fill after it read the old version, runs an update and its
/// invalidation, releases the fill, then reads: the new version must win.
/// Runs once with no version stored yet (cold) and once with versions
/// already stored.
pub async fn stale_set_race_is_closed(cache: Cache, bust: Bust, locked: bool) {
    let db = Db::new(cache);
    for round in ["cold", "warm"] {
        if round == "warm" {
            // Make the next read a miss whose versions already exist.
            db.update(bust, 1, "acme").await;
        }
        let (reached, release) = db.gate.hold_next(false);
        let before = db.rows.lock().unwrap().get(&1).copied().unwrap_or(0);
        let reader = tokio::spawn({
            let db = db.clone();
            async move { db.read(locked, 1, "acme").await }
        });
        reached.notified().await;
        let new = db.update(bust, 1, "acme").await;
        release.notify_one();
        assert_eq!(
            reader.await.unwrap().unwrap(),
            before,
            "{round}: the raced read saw the old row"
        );

        let after = db.read(locked, 1, "acme").await.unwrap();
        assert_eq!(
            after,
            new,
            "{round} {bust:?} bust on {}: stale value served",
            db.cache.backend_name()
        );
        // And the fresh value is cached again.
        let reads = db.reads.load(SeqCst);
        assert_eq!(db.read(locked, 1, "acme").await.unwrap(), new);
        assert_eq!(db.reads.load(SeqCst), reads, "the fresh value is a hit");
    }
}

pub async fn a_tag_bust_reaches_its_entries_only(cache: Cache) {
    let db = Db::new(cache);
    for id in 0..50 {
        db.get_user(id, "acme").await.unwrap();
    }
    db.get_user(99, "other").await.unwrap();
    let reads = db.reads.load(SeqCst);
    db.update_busting_tag(7, "acme").await.unwrap();
    for id in 0..50 {
        let want = u64::from(id == 7);
        assert_eq!(db.get_user(id, "acme").await.unwrap(), want);
    }
    assert_eq!(
        db.reads.load(SeqCst),
        reads + 50,
        "every acme entry was refetched"
    );
    db.get_user(99, "other").await.unwrap();
    assert_eq!(
        db.reads.load(SeqCst),
        reads + 50,
        "the other org's entry is still a hit"
    );
}

/// A service whose reads go through each strategy, over a [`Source`].
#[derive(Clone)]
pub struct Svc {
    pub cache: Cache,
    pub src: Source,
}

impl Svc {
    #[cached(cache = self.cache, key = "aside:<id>", ttl = 60)]
    pub async fn aside(&self, id: u64) -> u64 {
        self.src.read().await + id
    }

    #[cached(cache = self.cache, key = "swr:<id>", ttl = 60, tags = ["t:<id>"], strategy = "swr", stale_ttl = "10m")]
    pub async fn swr(&self, id: u64) -> Result<u64, String> {
        Ok(self.src.read().await + id)
    }

    #[cached(cache = self.cache, key = "early:<id>", ttl = 60, strategy = "early", beta = 1.0, unkeyed = [clock])]
    pub async fn early(&self, id: u64, clock: &ManualClock) -> u64 {
        // The body "takes" one second of the injected clock.
        clock.advance(Duration::from_secs(1));
        self.src.read().await + id
    }
}

pub fn svc(cache: Cache) -> Svc {
    Svc {
        cache,
        src: Source::default(),
    }
}

/// `cache` must read `clock`.
pub async fn swr_serves_stale_and_refreshes_once(cache: Cache, clock: &ManualClock) {
    let s = svc(cache.clone());
    s.src.version.store(100, SeqCst);
    assert_eq!(s.swr(1).await.unwrap(), 101);

    // Past the fresh window: 200 callers get the old value while one
    // refresh is held in its body.
    clock.advance(Duration::from_secs(61));
    s.src.version.store(200, SeqCst);
    let (reached, release) = s.src.hold_next(false);
    let calls: Vec<_> = (0..200)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.swr(1).await })
        })
        .collect();
    for call in calls {
        assert_eq!(
            call.await.unwrap().unwrap(),
            101,
            "served stale without waiting: {:?}",
            cache.stats()
        );
    }
    reached.notified().await;
    assert_eq!(s.src.runs(), 2, "exactly one refresh");
    assert_eq!(cache.stats().refreshes, 1);
    assert_eq!(cache.stats().stale_hits, 200);
    release.notify_one();
    cache.refreshes_settled().await;
    assert_eq!(
        s.swr(1).await.unwrap(),
        201,
        "the refreshed value is served"
    );
    assert_eq!(s.src.runs(), 2);

    // Past both windows: a plain miss.
    clock.advance(Duration::from_secs(60 + 601));
    s.src.version.store(300, SeqCst);
    assert_eq!(s.swr(1).await.unwrap(), 301);
    assert_eq!(s.src.runs(), 3);
    assert_eq!(cache.stats().refreshes, 1);
}

/// `cache` must read `clock`.
pub async fn swr_refresh_that_raced_a_bust_loses(cache: Cache, clock: &ManualClock) {
    let s = svc(cache.clone());
    s.src.version.store(0, SeqCst);
    s.swr(1).await.unwrap();
    clock.advance(Duration::from_secs(61));
    s.src.version.store(10, SeqCst);
    let (reached, release) = s.src.hold_next(false);
    assert_eq!(s.swr(1).await.unwrap(), 1, "stale, refresh started");
    reached.notified().await; // the refresh has read version 10
    s.src.version.store(20, SeqCst);
    cache.invalidate_tags(["t:1"]).await.unwrap();
    release.notify_one();
    cache.refreshes_settled().await;
    assert_eq!(
        s.swr(1).await.unwrap(),
        21,
        "the raced refresh's value was served"
    );
    assert_eq!(s.swr(1).await.unwrap(), 21);
}
