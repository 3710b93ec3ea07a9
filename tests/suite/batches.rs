//! Batch reads (`#[cached(batch = "id in ids")]`): every element's entry
//! read in one request, the body run once for the elements that missed,
//! each element stored under its own versions; the linked single-key
//! function (`one`) shares the entries and gathers concurrent misses.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

use cachette::{cached, invalidates, Cache};
use serde::{Deserialize, Serialize};

use crate::support::each_backend;
use crate::support::source::Gate;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct User {
    id: u64,
    name: String,
}

/// A table of users, which records what each query was asked.
#[derive(Clone, Default)]
pub struct Db {
    rows: Arc<Mutex<HashMap<u64, String>>>,
    asked: Arc<Mutex<Vec<Vec<u64>>>>,
    gate: Gate,
    /// The next query fails.
    fail: Arc<AtomicU64>,
    /// Every query also returns this id, asked or not.
    extra: Arc<Mutex<Option<u64>>>,
}

impl Db {
    fn with(ids: impl IntoIterator<Item = u64>) -> Db {
        let db = Db::default();
        for id in ids {
            db.set(id, &format!("user {id}"));
        }
        db
    }

    fn set(&self, id: u64, name: &str) {
        self.rows.lock().unwrap().insert(id, name.to_string());
    }

    async fn select(&self, ids: &[u64]) -> Result<HashMap<u64, User>, String> {
        self.asked.lock().unwrap().push(ids.to_vec());
        let found = {
            let rows = self.rows.lock().unwrap();
            let mut found: HashMap<u64, User> = ids
                .iter()
                .filter_map(|id| {
                    rows.get(id).map(|name| {
                        (
                            *id,
                            User {
                                id: *id,
                                name: name.clone(),
                            },
                        )
                    })
                })
                .collect();
            if let Some(extra) = *self.extra.lock().unwrap() {
                found.insert(
                    extra,
                    User {
                        id: extra,
                        name: format!("user {extra}"),
                    },
                );
            }
            found
        };
        self.gate.pass().await;
        if self.fail.swap(0, SeqCst) == 1 {
            return Err("the database is down".to_string());
        }
        Ok(found)
    }

    fn asked(&self) -> Vec<Vec<u64>> {
        self.asked.lock().unwrap().clone()
    }

    /// How many times each id was asked.
    fn runs(&self) -> BTreeMap<u64, usize> {
        let mut runs = BTreeMap::new();
        for ids in self.asked() {
            for id in ids {
                *runs.entry(id).or_default() += 1;
            }
        }
        runs
    }
}

#[cached(
    batch = "id in ids",
    key = "user:<id>",
    ttl = 300,
    tags = ["org:<org>"],
    cache = cache,
    unkeyed = [db],
    one = get_user
)]
pub async fn get_users(
    cache: &Cache,
    db: &Db,
    org: &str,
    ids: &[u64],
) -> Result<HashMap<u64, User>, String> {
    db.select(ids).await
}

#[invalidates(keys = ["user:<id>"], cache = cache)]
async fn rename(cache: &Cache, db: &Db, id: u64, name: &str) -> Result<(), String> {
    db.set(id, name);
    Ok(())
}

#[invalidates(tags = ["org:<org>"], cache = cache)]
async fn rename_org(cache: &Cache, db: &Db, org: &str, name: &str) -> Result<(), String> {
    for row in db.rows.lock().unwrap().values_mut() {
        *row = name.to_string();
    }
    let _ = org;
    Ok(())
}

#[tokio::test]
async fn ninety_of_a_hundred_cached_cost_one_lookup_and_one_body_call() {
    for (cache, backing) in each_backend().await {
        let db = Db::with(1..=100);
        let first: Vec<u64> = (1..=100).filter(|i| i % 10 != 0).collect();
        let got = get_users(&cache, &db, "acme", &first).await.unwrap();
        assert_eq!(got.len(), 90);
        let all: Vec<u64> = (1..=100).collect();
        if let Some(b) = &backing {
            b.redis.reset_stats();
        }
        let before = cache.stats();
        let got = get_users(&cache, &db, "acme", &all).await.unwrap();
        let after = cache.stats();
        assert_eq!(got.len(), 100);
        assert_eq!(got[&30].name, "user 30");
        let asked = db.asked();
        assert_eq!(asked.len(), 2, "{asked:?}");
        assert_eq!(asked[1], vec![10, 20, 30, 40, 50, 60, 70, 80, 90, 100]);
        assert_eq!(after.hits - before.hits, 90);
        assert_eq!(after.misses - before.misses, 10);
        let lookups = after.batch_lookups - before.batch_lookups;
        assert_eq!(
            lookups,
            u64::from(backing.is_some()),
            "{}",
            cache.backend_name()
        );
    }
}

#[tokio::test]
async fn an_element_busted_while_the_body_runs_is_not_stored() {
    for (cache, _backing) in each_backend().await {
        let db = Db::with(1..=5);
        let (reached, release) = db.gate.hold_next(false);
        let read = {
            let (cache, db) = (cache.clone(), db.clone());
            tokio::spawn(async move { get_users(&cache, &db, "acme", &[1, 2, 3, 4, 5]).await })
        };
        reached.notified().await;
        // The body has read user 3; it is renamed and busted before the
        // fill.
        rename(&cache, &db, 3, "renamed").await.unwrap();
        release.notify_one();
        let got = read.await.unwrap().unwrap();
        assert_eq!(got[&3].name, "user 3", "the read began before the rename");
        let got = get_users(&cache, &db, "acme", &[1, 2, 3, 4, 5])
            .await
            .unwrap();
        assert_eq!(got[&3].name, "renamed", "{}", cache.backend_name());
        assert_eq!(db.asked(), vec![vec![1, 2, 3, 4, 5], vec![3]]);
    }
}

#[tokio::test]
async fn busts_reach_what_a_batch_filled_and_the_linked_function_shares_it() {
    for (cache, _backing) in each_backend().await {
        let db = Db::with(1..=4);
        get_users(&cache, &db, "acme", &[1, 2, 3]).await.unwrap();
        // The single-key function is served what the batch filled.
        let one = get_user(&cache, &db, "acme", 2).await.unwrap().unwrap();
        assert_eq!(one.name, "user 2");
        assert_eq!(db.asked().len(), 1);
        // And the batch what the single-key function filled.
        get_user(&cache, &db, "acme", 4).await.unwrap().unwrap();
        assert_eq!(db.asked().len(), 2);
        let got = get_users(&cache, &db, "acme", &[1, 2, 3, 4]).await.unwrap();
        assert_eq!(got.len(), 4);
        assert_eq!(db.asked().len(), 2, "{}", cache.backend_name());
        // A tag bust reaches every element.
        rename_org(&cache, &db, "acme", "all renamed")
            .await
            .unwrap();
        let got = get_users(&cache, &db, "acme", &[1, 2, 3, 4]).await.unwrap();
        assert!(got.values().all(|u| u.name == "all renamed"), "{got:?}");
        assert_eq!(db.asked()[2], vec![1, 2, 3, 4]);
        // A key bust reaches the element through the single-key function.
        rename(&cache, &db, 1, "one").await.unwrap();
        assert_eq!(
            get_user(&cache, &db, "acme", 1)
                .await
                .unwrap()
                .unwrap()
                .name,
            "one"
        );
        // Another org is another entry, and another gathering.
        assert_eq!(
            get_user(&cache, &db, "other", 1)
                .await
                .unwrap()
                .unwrap()
                .name,
            "one"
        );
        assert_eq!(db.asked().len(), 5);
    }
}

#[tokio::test]
async fn overlapping_batches_run_each_elements_body_once() {
    for (cache, _backing) in each_backend().await {
        let db = Db::with(1..=15);
        let (reached, release) = db.gate.hold_next(false);
        let first = {
            let (cache, db) = (cache.clone(), db.clone());
            let ids: Vec<u64> = (1..=10).collect();
            tokio::spawn(async move { get_users(&cache, &db, "acme", &ids).await })
        };
        reached.notified().await;
        let before = cache.stats().coalesced;
        let second = {
            let (cache, db) = (cache.clone(), db.clone());
            let ids: Vec<u64> = (5..=15).collect();
            tokio::spawn(async move { get_users(&cache, &db, "acme", &ids).await })
        };
        // The second follows 5..=10: it waits for the first's flights.
        crate::support::eventually("the second batch follows", || {
            cache.stats().coalesced - before == 6
        })
        .await;
        release.notify_one();
        let (a, b) = (
            first.await.unwrap().unwrap(),
            second.await.unwrap().unwrap(),
        );
        assert_eq!((a.len(), b.len()), (10, 11));
        let runs = db.runs();
        assert!(
            runs.values().all(|n| *n == 1),
            "{runs:?} on {}",
            cache.backend_name()
        );
        assert_eq!(runs.len(), 15);
    }
}

#[tokio::test]
async fn concurrent_misses_of_the_linked_function_are_gathered() {
    for (cache, _backing) in each_backend().await {
        let db = Db::with(1..=64);
        let calls = (1..=64).map(|id| {
            let (cache, db) = (cache.clone(), db.clone());
            tokio::spawn(async move { get_user(&cache, &db, "acme", id).await })
        });
        let calls: Vec<_> = calls.collect();
        for (id, call) in (1..=64).zip(calls) {
            assert_eq!(call.await.unwrap().unwrap().unwrap().id, id);
        }
        let asked = db.asked();
        assert!(
            asked.len() == 1,
            "{} body calls for 64 misses on {}: {asked:?}",
            asked.len(),
            cache.backend_name()
        );
        assert_eq!(db.runs().len(), 64);
        // Each stored its own element: all hits now.
        let before = cache.stats();
        get_users(&cache, &db, "acme", &(1..=64).collect::<Vec<_>>())
            .await
            .unwrap();
        assert_eq!(cache.stats().hits - before.hits, 64);
    }
}

#[tokio::test]
async fn duplicates_empty_inputs_unasked_elements_and_errors() {
    for (cache, backing) in each_backend().await {
        let db = Db::with(1..=5);
        // Duplicates: each element once, in the order first given.
        let got = get_users(&cache, &db, "acme", &[3, 1, 3, 2, 1])
            .await
            .unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(db.asked(), vec![vec![3, 1, 2]]);
        // Empty: no request, no body.
        let before = cache.stats();
        if let Some(b) = &backing {
            b.redis.reset_stats();
        }
        let got = get_users(&cache, &db, "acme", &[]).await.unwrap();
        assert!(got.is_empty());
        assert_eq!(cache.stats().batch_lookups, before.batch_lookups);
        if let Some(b) = &backing {
            assert!(
                b.redis.command_calls().iter().all(|(c, _)| c != "getrange"),
                "{:?}",
                b.redis.command_calls()
            );
        }
        assert_eq!(db.asked().len(), 1);
        // An element the body was not given is neither stored nor returned.
        *db.extra.lock().unwrap() = Some(99);
        let got = get_users(&cache, &db, "acme", &[4]).await.unwrap();
        *db.extra.lock().unwrap() = None;
        assert_eq!(got.keys().collect::<Vec<_>>(), vec![&4]);
        let got = get_users(&cache, &db, "acme", &[99]).await.unwrap();
        assert!(got.is_empty(), "99 was stored: {got:?}");
        assert_eq!(db.asked().last().unwrap(), &vec![99]);
        // An element not found is not stored (no `none_ttl`): asked again.
        get_users(&cache, &db, "acme", &[99]).await.unwrap();
        assert_eq!(db.asked().last().unwrap(), &vec![99]);
        let calls = db.asked().len();
        // An `Err`: returned, nothing stored.
        db.fail.store(1, SeqCst);
        let err = get_users(&cache, &db, "acme", &[5]).await.unwrap_err();
        assert_eq!(err, "the database is down");
        let got = get_users(&cache, &db, "acme", &[5]).await.unwrap();
        assert_eq!(got[&5].name, "user 5");
        assert_eq!(db.asked().len(), calls + 2, "{}", cache.backend_name());
    }
}

#[tokio::test]
async fn ten_thousand_elements_are_read_in_chunks() {
    for (cache, backing) in each_backend().await {
        let db = Db::with(1..=10_000);
        let ids: Vec<u64> = (1..=10_000).collect();
        get_users(&cache, &db, "acme", &ids).await.unwrap();
        let before = cache.stats();
        assert_eq!(before.errors, 0, "{}", cache.backend_name());
        let got = get_users(&cache, &db, "acme", &ids).await.unwrap();
        assert_eq!(got.len(), 10_000);
        assert_eq!(
            cache.stats().hits - before.hits,
            10_000,
            "{}",
            cache.backend_name()
        );
        let chunks = cache.stats().batch_lookups - before.batch_lookups;
        // 256 elements a request.
        let expected = if backing.is_some() { 40 } else { 0 };
        assert_eq!(chunks, expected, "{}", cache.backend_name());
        assert_eq!(db.asked().len(), 1);
    }
}

#[invalidates(calls = [get_user(cache, db, org, id)])]
async fn rename_one(cache: &Cache, db: &Db, org: &str, id: u64, name: &str) -> Result<(), String> {
    db.set(id, name);
    Ok(())
}

#[invalidates(calls = [get_users(cache, db, org, ids)])]
async fn rename_many(
    cache: &Cache,
    db: &Db,
    org: &str,
    ids: &[u64],
    name: &str,
) -> Result<(), String> {
    for id in ids {
        db.set(*id, name);
    }
    Ok(())
}

#[tokio::test]
async fn calls_and_companions_of_a_batch_function() {
    for (cache, _backing) in each_backend().await {
        let db = Db::with(1..=6);
        get_users(&cache, &db, "acme", &[1, 2, 3, 4, 5, 6])
            .await
            .unwrap();
        // `calls` naming the linked single-key function reaches the batch's
        // entry of that element.
        rename_one(&cache, &db, "acme", 2, "two").await.unwrap();
        // `calls` naming the batch function busts each element's key.
        rename_many(&cache, &db, "acme", &[4, 5], "four or five")
            .await
            .unwrap();
        let got = get_users(&cache, &db, "acme", &[1, 2, 3, 4, 5, 6])
            .await
            .unwrap();
        assert_eq!(got[&2].name, "two");
        assert_eq!(got[&5].name, "four or five");
        assert_eq!(db.asked().last().unwrap(), &vec![2, 4, 5]);
        // The key companion names each element's entry.
        let keys = get_users_key(&cache, &db, "acme", &[7, 8, 7]);
        let keys: Vec<&str> = keys.iter().map(|k| k.key()).collect();
        assert_eq!(keys, vec!["user:7", "user:8"]);
        // `_uncached` reads and stores nothing; `_refresh` fills every
        // element given, hit or not.
        let calls = db.asked().len();
        get_users_uncached(&cache, &db, "acme", &[1, 2])
            .await
            .unwrap();
        assert_eq!(db.asked().len(), calls + 1);
        db.set(1, "warmed");
        get_users_refresh(&cache, &db, "acme", &[1, 2, 3])
            .await
            .unwrap();
        assert_eq!(db.asked().last().unwrap(), &vec![1, 2, 3]);
        let got = get_users(&cache, &db, "acme", &[1, 2, 3]).await.unwrap();
        assert_eq!(got[&1].name, "warmed");
        assert_eq!(db.asked().len(), calls + 2, "{}", cache.backend_name());
    }
}

#[cfg(feature = "cluster")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_one_pipeline_per_master() {
    let cluster = crate::support::RedisCluster::start();
    let cache = cluster.cache().await;
    let db = Db::with(1..=100);
    let ids: Vec<u64> = (1..=100).collect();
    let masters: std::collections::BTreeSet<u16> = ids
        .iter()
        .map(|id| cluster.master_of(&format!("user:{id}")))
        .collect();
    assert_eq!(
        masters.len(),
        3,
        "the elements spread over the three masters"
    );
    get_users(&cache, &db, "acme", &ids).await.unwrap();
    let before = cache.stats();
    let got = get_users(&cache, &db, "acme", &ids).await.unwrap();
    assert_eq!(got.len(), 100);
    let after = cache.stats();
    assert_eq!(after.hits - before.hits, 100);
    // The tag's version is on one of those masters: one pipeline each.
    assert_eq!(after.batch_lookups - before.batch_lookups, 3);
    // A bust of one element reaches it alone.
    rename(&cache, &db, 42, "forty-two").await.unwrap();
    let got = get_users(&cache, &db, "acme", &ids).await.unwrap();
    assert_eq!(got[&42].name, "forty-two");
    assert_eq!(db.asked().last().unwrap(), &vec![42]);
}

#[tokio::test]
async fn near_cache_hits_are_served_from_memory() {
    let server = crate::support::RedisServer::start();
    let cache = crate::support::builder()
        .near_cache(true)
        .connect(&server.url())
        .await
        .unwrap();
    let db = Db::with(1..=20);
    let ids: Vec<u64> = (1..=20).collect();
    // Filled, then read (and kept in memory).
    get_users(&cache, &db, "acme", &ids).await.unwrap();
    get_users(&cache, &db, "acme", &ids).await.unwrap();
    let before = cache.stats();
    get_users(&cache, &db, "acme", &ids).await.unwrap();
    let after = cache.stats();
    assert_eq!(after.near_hits - before.near_hits, 20);
    assert_eq!(after.batch_lookups, before.batch_lookups);
    // A bust of one element: that one is read again, the others stay.
    rename(&cache, &db, 7, "seven").await.unwrap();
    crate::support::delivered(&cache).await;
    let got = get_users(&cache, &db, "acme", &ids).await.unwrap();
    assert_eq!(got[&7].name, "seven");
    assert_eq!(db.asked().last().unwrap(), &vec![7]);
}

/// The other collection forms, `none_ttl` and the lock strategy.
#[cached(
    batch = "sku in skus",
    key = "price:<sku>",
    ttl = 300,
    none_ttl = 60,
    strategy = "lock",
    cache = cache,
    unkeyed = [runs]
)]
async fn prices(
    cache: &Cache,
    runs: &Arc<Mutex<Vec<Vec<String>>>>,
    skus: impl IntoIterator<Item = String>,
) -> Vec<(String, u32)> {
    let skus: Vec<String> = skus.into_iter().collect();
    runs.lock().unwrap().push(skus.clone());
    skus.into_iter()
        .filter(|s| s != "missing")
        .map(|s| {
            let price = s.len() as u32;
            (s, price)
        })
        .collect()
}

#[cached(batch = "n in ns", key = "square:<n>", ttl = 300, cache = cache)]
async fn squares(cache: &Cache, ns: Vec<u32>) -> Result<BTreeMap<u32, u64>, std::io::Error> {
    Ok(ns
        .into_iter()
        .map(|n| (n, u64::from(n) * u64::from(n)))
        .collect())
}

#[tokio::test]
async fn other_collections_none_ttl_and_the_lock_strategy() {
    for (cache, _backing) in each_backend().await {
        let runs = Arc::new(Mutex::new(Vec::new()));
        let skus = || ["ab", "missing", "abc"].map(String::from);
        let got = prices(&cache, &runs, skus()).await;
        assert_eq!(got, vec![("ab".to_string(), 2), ("abc".to_string(), 3)]);
        // "missing" was stored as not found (`none_ttl`): no body call.
        let got = prices(&cache, &runs, skus()).await;
        assert_eq!(got.len(), 2);
        assert_eq!(runs.lock().unwrap().len(), 1, "{}", cache.backend_name());
        let got = squares(&cache, vec![3, 1, 2]).await.unwrap();
        assert_eq!(
            got.into_iter().collect::<Vec<_>>(),
            vec![(1, 1), (2, 4), (3, 9)]
        );
        let before = cache.stats().hits;
        squares(&cache, vec![2, 3]).await.unwrap();
        assert_eq!(cache.stats().hits - before, 2);
    }
}

#[tokio::test]
async fn concurrent_linked_calls_of_one_element_all_get_its_value() {
    for (cache, _backing) in each_backend().await {
        let db = Db::with(1..=3);
        for _ in 0..2 {
            // Cold, then warm.
            let (a, b, c) = tokio::join!(
                get_user(&cache, &db, "acme", 1),
                get_user(&cache, &db, "acme", 1),
                get_user(&cache, &db, "acme", 1),
            );
            for got in [a, b, c] {
                assert_eq!(
                    got.unwrap().unwrap().name,
                    "user 1",
                    "{}",
                    cache.backend_name()
                );
            }
        }
        assert_eq!(db.runs()[&1], 1, "{:?}", db.asked());
    }
}

#[tokio::test]
async fn a_linked_call_in_a_deferred_scope_reads_as_its_scope_says() {
    for (cache, _backing) in each_backend().await {
        let db = Db::with(1..=3);
        get_users(&cache, &db, "acme", &[1, 2]).await.unwrap();
        let (outside, inside) = tokio::join!(
            get_user(&cache, &db, "acme", 2),
            cachette::deferred(async {
                // Held by the scope: the entry it names is not served inside.
                rename(&cache, &db, 1, "newest").await.unwrap();
                get_user(&cache, &db, "acme", 1).await
            })
        );
        assert_eq!(outside.unwrap().unwrap().name, "user 2");
        assert_eq!(
            inside.unwrap().unwrap().name,
            "newest",
            "{}",
            cache.backend_name()
        );
        // Delivered when the scope ended.
        assert_eq!(
            get_user(&cache, &db, "acme", 1)
                .await
                .unwrap()
                .unwrap()
                .name,
            "newest"
        );
    }
}

cachette::names! {
    /// Every member of one team.
    tag TeamTag = "team:<team>";
}

#[cached(batch = "id in ids", key = "member:<id>", ttl = 300, tags = [TeamTag { team }], cache = cache, unkeyed = [db], one = member)]
async fn members(
    cache: &Cache,
    db: &Db,
    team: &str,
    ids: &[u64],
) -> Result<HashMap<u64, User>, String> {
    db.select(ids).await
}

#[invalidates(tags = [TeamTag { team }], cache = cache)]
async fn rename_team(cache: &Cache, db: &Db, team: &str, name: &str) -> Result<(), String> {
    for row in db.rows.lock().unwrap().values_mut() {
        *row = name.to_string();
    }
    Ok(())
}

#[tokio::test]
async fn a_declared_tag_reaches_every_element() {
    for (cache, _backing) in each_backend().await {
        let db = Db::with(1..=3);
        members(&cache, &db, "red", &[1, 2, 3]).await.unwrap();
        assert_eq!(
            member(&cache, &db, "red", 2).await.unwrap().unwrap().name,
            "user 2"
        );
        rename_team(&cache, &db, "red", "renamed").await.unwrap();
        let got = members(&cache, &db, "red", &[1, 2, 3]).await.unwrap();
        assert!(got.values().all(|u| u.name == "renamed"), "{got:?}");
        // Another team: another gathering, another entry set.
        assert_eq!(
            member(&cache, &db, "blue", 2).await.unwrap().unwrap().name,
            "renamed"
        );
        assert_eq!(db.asked().len(), 3, "{}", cache.backend_name());
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ProductRef {
    tenant: String,
    id: u64,
}

impl std::fmt::Display for ProductRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.tenant, self.id)
    }
}

/// The key leaves out the tenant: elements of two tenants share entries.
#[cached(batch = "r in refs", key = "product:<r.id>", ttl = 300, cache = cache)]
async fn products_by_ref(cache: &Cache, refs: &[ProductRef]) -> HashMap<ProductRef, String> {
    refs.iter()
        .map(|r| (r.clone(), format!("{}'s {}", r.tenant, r.id)))
        .collect()
}

#[tokio::test]
async fn elements_that_render_one_key_are_warned_of() {
    let cache = Cache::memory();
    let r = |tenant: &str, id| ProductRef {
        tenant: tenant.into(),
        id,
    };
    let logs = crate::support::logs::Logs::capture();
    products_by_ref(&cache, &[r("initech", 2), r("umbrella", 2)]).await;
    let text = logs.text();
    assert!(text.contains("rendered the same key"), "{text}");
    assert!(text.contains("product:2"), "{text}");
}
