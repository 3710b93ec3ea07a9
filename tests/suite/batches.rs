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
        assert_eq!(lookups, u64::from(backing.is_some()), "{}", cache.backend_name());
    }
}
