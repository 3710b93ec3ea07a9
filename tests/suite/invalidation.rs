//! I1 (no stale read after an invalidation returns), I2 (lost bookkeeping
//! only causes misses) and I4 (nothing immortal), on both backends.

use std::sync::atomic::Ordering::SeqCst;

use cachette::{invalidates, Cache};

use crate::scenarios::{a_tag_bust_reaches_its_entries_only, stale_set_race_is_closed, Bust, Db};
use crate::support::{each_backend, RedisServer};

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
