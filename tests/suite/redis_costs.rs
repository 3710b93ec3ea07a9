//! Command counts against a real Redis (`INFO commandstats` deltas): a read
//! of Redis is one round trip (a bounded `GETRANGE` of the entry and of
//! each of its versions, in one pipeline), a bust of any number of keys and tags one round
//! trip. These count reads of Redis, so the caches here have the
//! near-cache off; what the near-cache costs is counted last.

use cachette::{cached, invalidates, Cache};

use crate::support::RedisServer;

#[cached(cache = cache, key = "u:<id>", ttl = 60, tags = ["a:<id>", "b", "c:<id>"])]
async fn tagged(cache: &Cache, id: u64) -> u64 {
    id
}

#[invalidates(cache = cache, keys = ["u:<id>"], tags = ["a:<id>", "b", "c:<id>"])]
async fn bust_all(cache: &Cache, id: u64) {}

/// A cache whose every lookup reads Redis (no near-cache).
async fn reads_redis(server: &RedisServer) -> Cache {
    crate::support::builder()
        .near_cache(false)
        .connect(&server.url())
        .await
        .unwrap()
}

fn calls(list: &[(String, u64)], name: &str) -> u64 {
    list.iter().find(|(n, _)| n == name).map_or(0, |(_, c)| *c)
}

#[tokio::test]
async fn a_hit_costs_one_round_trip() {
    let server = RedisServer::start();
    let cache = reads_redis(&server).await;
    tagged(&cache, 1).await; // cold: creates versions and fills
    server.reset_stats();
    tagged(&cache, 1).await;
    assert_eq!(cache.stats().hits, 1);
    assert_eq!(server.command_calls(), hit(3));
}

/// What a hit sends, in one pipeline: a `GETRANGE` of the entry, the
/// key's version, each tag's and the namespace's epoch.
fn hit(tags: u64) -> Vec<(String, u64)> {
    vec![("getrange".to_string(), 3 + tags)]
}

#[tokio::test]
async fn a_miss_with_known_versions_costs_two_commands() {
    let server = RedisServer::start();
    let cache = reads_redis(&server).await;
    tagged(&cache, 1).await;
    bust_all(&cache, 1).await; // loads the script; versions now exist
    server.reset_stats();
    tagged(&cache, 1).await;
    assert_eq!(cache.stats().misses, 2);
    assert_eq!(
        server.command_calls(),
        vec![("getrange".to_string(), 6), ("set".to_string(), 1)]
    );
}

#[tokio::test]
async fn a_bust_of_many_tags_and_keys_is_one_round_trip() {
    let server = RedisServer::start();
    let cache = reads_redis(&server).await;
    cache.invalidate_tags(["warm-up"]).await.unwrap(); // loads the script
    for n in [1usize, 10, 200] {
        let tags: Vec<String> = (0..n).map(|i| format!("t{i}")).collect();
        let keys: Vec<String> = (0..n).map(|i| format!("k{i}")).collect();
        server.reset_stats();
        cache.invalidate(&keys, &tags).await.unwrap();
        let calls_now = server.command_calls();
        // One script call; the SETs it makes run inside it, on the server,
        // and are listed by commandstats too. Entries are not deleted: they
        // belong to functions the bust does not know, and stop validating.
        // The namespace's lease and its lifetime are read in the same
        // pipeline (lease reads).
        assert_eq!(calls(&calls_now, "evalsha"), 1, "{calls_now:?}");
        assert_eq!(calls(&calls_now, "set"), 2 * n as u64, "{calls_now:?}");
        assert_eq!(calls(&calls_now, "getrange"), 1, "{calls_now:?}");
        assert_eq!(calls(&calls_now, "pttl"), 1, "{calls_now:?}");
        assert_eq!(calls_now.len(), 4, "{calls_now:?}");
    }
}

#[tokio::test]
async fn a_bust_costs_the_same_whatever_the_entries_under_the_tag() {
    let server = RedisServer::start();
    let cache = reads_redis(&server).await;
    cache.invalidate_tags(["b"]).await.unwrap();
    let mut per_size = Vec::new();
    for entries in [1u64, 2_000] {
        for id in 0..entries {
            tagged(&cache, 10_000 * entries + id).await;
        }
        server.reset_stats();
        cache.invalidate_tags(["b"]).await.unwrap();
        per_size.push(server.command_calls());
    }
    assert_eq!(per_size[0], per_size[1]);
}

#[cached(cache = cache, key = "lk:<id>", ttl = 60, tags = ["a:<id>"], strategy = "lock")]
async fn locked(cache: &Cache, id: u64) -> u64 {
    id
}

#[cached(cache = cache, key = "sw:<id>", ttl = 60, tags = ["a:<id>"], strategy = "swr")]
async fn swr(cache: &Cache, id: u64) -> u64 {
    id
}

#[cached(cache = cache, key = "ea:<id>", ttl = 60, tags = ["a:<id>"], strategy = "early")]
async fn early(cache: &Cache, id: u64) -> u64 {
    id
}

#[tokio::test]
async fn a_hit_costs_one_round_trip_whatever_the_strategy() {
    let server = RedisServer::start();
    let cache = reads_redis(&server).await;
    tagged(&cache, 1).await;
    locked(&cache, 1).await;
    swr(&cache, 1).await;
    early(&cache, 1).await;
    for name in ["aside", "lock", "swr", "early"] {
        server.reset_stats();
        let hits = cache.stats().hits;
        match name {
            "aside" => tagged(&cache, 1).await,
            "lock" => locked(&cache, 1).await,
            "swr" => swr(&cache, 1).await,
            _ => early(&cache, 1).await,
        };
        assert_eq!(cache.stats().hits, hits + 1, "{name}");
        let tags = if name == "aside" { 3 } else { 1 };
        assert_eq!(server.command_calls(), hit(tags), "{name}");
    }
}

#[tokio::test]
async fn a_lock_miss_costs_five_round_trips() {
    let server = RedisServer::start();
    let cache = reads_redis(&server).await;
    locked(&cache, 2).await;
    cache.invalidate_keys(["lk:2"]).await.unwrap(); // versions exist, script loaded
    server.reset_stats();
    locked(&cache, 2).await;
    let list = server.command_calls();
    // The lookup (the entry, the key's version, a tag's and the epoch),
    // SET NX (lock), the lookup again (under the lock), SET (fill), and the
    // release script with the GET and DEL it runs inside.
    assert_eq!(calls(&list, "getrange"), 8, "{list:?}");
    assert_eq!(calls(&list, "set"), 2, "{list:?}");
    assert_eq!(calls(&list, "evalsha"), 1, "{list:?}");
    assert_eq!(calls(&list, "get") + calls(&list, "del"), 2, "{list:?}");
}

/// With the near-cache, a hit of a kept lookup sends one `PING` and reads
/// nothing; 64 concurrent hits share far fewer `PING`s than there are
/// callers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_near_hit_costs_a_shared_ping() {
    let server = RedisServer::start();
    let cache = server.cache().await;
    for _ in 0..5 {
        tagged(&cache, 1).await;
    }
    assert!(cache.stats().near_hits > 0, "{:?}", cache.stats());
    server.reset_stats();
    tagged(&cache, 1).await;
    assert_eq!(server.command_calls(), vec![], "a near hit read Redis");
    let pings = || {
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query(&mut server.raw())
            .unwrap();
        info.lines()
            .find_map(|l| l.strip_prefix("cmdstat_ping:"))
            .and_then(|s| s.split(',').find_map(|kv| kv.strip_prefix("calls=")))
            .map_or(0, |n| n.parse::<u64>().unwrap())
    };
    let before = pings();
    let calls: Vec<_> = (0..64)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move {
                for _ in 0..10 {
                    tagged(&cache, 1).await;
                }
            })
        })
        .collect();
    for call in calls {
        call.await.unwrap();
    }
    let sent = pings() - before;
    assert!(sent < 640 / 4, "{sent} PINGs for 640 hits");
}
