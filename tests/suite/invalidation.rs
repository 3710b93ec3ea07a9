//! I1 (no stale read after an invalidation returns), I2 (lost bookkeeping
//! only causes misses) and I4 (nothing immortal), on both backends.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

use cachette::{cached, invalidates, Cache};
use tokio::sync::oneshot;

use crate::support::{each_backend, RedisServer};

/// Holds one fill after its body has read the source, until released.
struct Gate {
    read_done: oneshot::Sender<()>,
    release: oneshot::Receiver<()>,
}

/// A fake database of user versions, with a cache and a gate for the next
/// read.
struct Db {
    cache: Cache,
    rows: Mutex<HashMap<u64, u64>>,
    gate: Mutex<Option<Gate>>,
    reads: AtomicU64,
}

impl Db {
    fn new(cache: Cache) -> Arc<Db> {
        Arc::new(Db {
            cache,
            rows: Mutex::new(HashMap::new()),
            gate: Mutex::new(None),
            reads: AtomicU64::new(0),
        })
    }

    fn write(&self, id: u64) -> u64 {
        let mut rows = self.rows.lock().unwrap();
        let v = rows.entry(id).or_insert(0);
        *v += 1;
        *v
    }

    #[cached(cache = self.cache, key = "user:<id>", ttl = 300, tags = ["org:<org>"])]
    async fn get_user(&self, id: u64, org: &str) -> Result<u64, String> {
        self.get_user_uncached(id, org).await
    }

    #[cached(cache = self.cache, key = "user:<id>", ttl = 300, tags = ["org:<org>"], strategy = "lock")]
    async fn get_user_locked(&self, id: u64, org: &str) -> Result<u64, String> {
        self.get_user_uncached(id, org).await
    }

    async fn get_user_uncached(&self, id: u64, _org: &str) -> Result<u64, String> {
        self.reads.fetch_add(1, SeqCst);
        let version = self.rows.lock().unwrap().get(&id).copied().unwrap_or(0);
        let gate = self.gate.lock().unwrap().take();
        if let Some(gate) = gate {
            gate.read_done.send(()).unwrap();
            gate.release.await.unwrap();
        }
        Ok(version)
    }

    async fn read(&self, locked: bool, id: u64, org: &str) -> Result<u64, String> {
        if locked {
            self.get_user_locked(id, org).await
        } else {
            self.get_user(id, org).await
        }
    }

    #[invalidates(cache = self.cache, keys = ["user:<id>"])]
    async fn update_busting_key(&self, id: u64, org: &str) -> Result<u64, String> {
        let _ = org;
        Ok(self.write(id))
    }

    #[invalidates(cache = self.cache, tags = ["org:<org>"])]
    async fn update_busting_tag(&self, id: u64, org: &str) -> Result<u64, String> {
        Ok(self.write(id))
    }

    async fn update(&self, bust: Bust, id: u64, org: &str) -> u64 {
        match bust {
            Bust::Key => self.update_busting_key(id, org).await.unwrap(),
            Bust::Tag => self.update_busting_tag(id, org).await.unwrap(),
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum Bust {
    Key,
    Tag,
}

/// Holds a fill after it read the old version, runs an update and its
/// invalidation, releases the fill, then reads: the new version must win.
/// Runs once with no version stored yet (cold) and once with versions
/// already stored.
pub(crate) async fn stale_set_race_is_closed(cache: Cache, bust: Bust, locked: bool) {
    let db = Db::new(cache);
    for round in ["cold", "warm"] {
        if round == "warm" {
            // Make the next read a miss whose versions already exist.
            db.update(bust, 1, "acme").await;
        }
        let (read_tx, read_rx) = oneshot::channel();
        let (release_tx, release_rx) = oneshot::channel();
        *db.gate.lock().unwrap() = Some(Gate {
            read_done: read_tx,
            release: release_rx,
        });
        let before = db.rows.lock().unwrap().get(&1).copied().unwrap_or(0);
        let reader = tokio::spawn({
            let db = db.clone();
            async move { db.read(locked, 1, "acme").await }
        });
        read_rx.await.unwrap();
        let new = db.update(bust, 1, "acme").await;
        release_tx.send(()).unwrap();
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

#[tokio::test]
async fn stale_set_race_is_closed_for_key_busts() {
    for (cache, _server) in each_backend().await {
        stale_set_race_is_closed(cache, Bust::Key, false).await;
    }
}

#[tokio::test]
async fn stale_set_race_is_closed_for_tag_busts() {
    for (cache, _server) in each_backend().await {
        stale_set_race_is_closed(cache, Bust::Tag, false).await;
    }
}

/// I1 and I7 with `strategy = "lock"`: holding the lock does not make a
/// fill that raced an invalidation valid.
#[tokio::test]
async fn stale_set_race_is_closed_for_lock_strategy_fills() {
    for bust in [Bust::Key, Bust::Tag] {
        for (cache, _server) in each_backend().await {
            stale_set_race_is_closed(cache, bust, true).await;
        }
    }
}

#[tokio::test]
async fn a_bust_reaches_every_entry_under_a_tag_and_no_other() {
    for (cache, _server) in each_backend().await {
        a_tag_bust_reaches_its_entries_only(cache).await;
    }
}

pub(crate) async fn a_tag_bust_reaches_its_entries_only(cache: Cache) {
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

#[tokio::test]
async fn a_failed_update_does_not_bust() {
    #[invalidates(cache = cache, keys = ["user:<id>"])]
    async fn failing_update(cache: &Cache, id: u64) -> Result<(), String> {
        let _ = id;
        Err("constraint violated".into())
    }
    for (cache, _server) in each_backend().await {
        let db = Db::new(cache.clone());
        db.get_user(1, "acme").await.unwrap();
        assert!(failing_update(&cache, 1).await.is_err());
        assert_eq!(cache.stats().invalidations, 0);
        let reads = db.reads.load(SeqCst);
        db.get_user(1, "acme").await.unwrap();
        assert_eq!(db.reads.load(SeqCst), reads, "still a hit");
    }
}

/// I2: version keys lost to eviction, expiry or a flush never revalidate an
/// invalidated entry; they only cause misses.
#[tokio::test]
async fn lost_versions_only_cause_misses() {
    let server = RedisServer::start();
    let db = Db::new(server.cache().await);
    let mut raw = server.raw();
    db.get_user(1, "acme").await.unwrap();
    let tag = crate::support::tag_version_name(&server, "org:acme");
    let entry = crate::support::entry_name(&server, "user:1");

    // The tag's version disappears (evicted): the entry is a miss.
    let _: () = redis::cmd("DEL").arg(&tag).query(&mut raw).unwrap();
    let reads = db.reads.load(SeqCst);
    db.get_user(1, "acme").await.unwrap();
    assert_eq!(db.reads.load(SeqCst), reads + 1);

    // An entry is invalidated, then the version the bust wrote is lost: the
    // old entry must still not be served.
    db.write(1);
    let old_entry: Vec<u8> = redis::cmd("GET").arg(&entry).query(&mut raw).unwrap();
    db.update_busting_tag(1, "acme").await.unwrap();
    let _: () = redis::cmd("DEL").arg(&tag).query(&mut raw).unwrap();
    // Put the stale entry back, as if the bust had raced an older fill.
    let _: () = redis::cmd("SET")
        .arg(&entry)
        .arg(old_entry)
        .arg("EX")
        .arg(300)
        .query(&mut raw)
        .unwrap();
    assert_eq!(
        db.get_user(1, "acme").await.unwrap(),
        2,
        "stale entry served after losing its version"
    );

    // FLUSHALL mid-run: everything is a miss, then caching resumes.
    let _: () = redis::cmd("FLUSHALL").query(&mut raw).unwrap();
    let reads = db.reads.load(SeqCst);
    assert_eq!(db.get_user(1, "acme").await.unwrap(), 2);
    assert_eq!(db.get_user(1, "acme").await.unwrap(), 2);
    assert_eq!(db.reads.load(SeqCst), reads + 1);
}

/// I4: every key the library writes carries a TTL.
#[tokio::test]
async fn every_key_written_has_a_ttl() {
    let server = RedisServer::start();
    let db = Db::new(server.cache().await);
    for id in 0..20 {
        db.get_user(id, "acme").await.unwrap();
        db.get_user(id, "beta").await.unwrap();
    }
    db.update_busting_key(3, "acme").await.unwrap();
    db.update_busting_tag(4, "beta").await.unwrap();
    db.cache.invalidate_tags(["never-used"]).await.unwrap();
    db.cache.invalidate_keys(["never-filled"]).await.unwrap();
    let mut raw = server.raw();
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut raw).unwrap();
    assert!(keys.len() > 20, "{keys:?}");
    for key in keys {
        assert!(
            key.starts_with("cachette:"),
            "{key} is outside the namespace"
        );
        let ttl: i64 = redis::cmd("PTTL").arg(&key).query(&mut raw).unwrap();
        assert!(ttl > 0, "{key} has no TTL ({ttl})");
    }
}
